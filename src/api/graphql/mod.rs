//! The GraphQL API: a schema generated per role from the watched tables and the policy,
//! answered from the live replica.
//!
//! ```text
//!  request ─► auth (token → Principal) ─► policy (role → grants) ─► role schema (cached)
//!          ─► resolvers: where ∧ row filter ─► query / aggregate engine ─► replica version
//! ```
//!
//! - [`view`]: a table as one role sees it; [`types`], [`aggregates`], [`scalars`] and
//!   [`schema`] generate the role's schema from its views; [`cache`] keeps it until the policy or
//!   a table's shape changes;
//! - [`arguments`] reads `where`/`orderBy`/`groupBy`/keys into the engine's types; [`resolve`]
//!   answers; [`errors`] gives every error an `extensions.code`; [`http`] is the transport;
//! - [`live`] serves subscriptions as live queries, over the WebSocket transport in [`ws`];
//! - [`kpis`]: KPIs (queries, mutations, subscriptions), when the server runs them;
//! - [`notifications`]: contact points, the routing policy and the notification log;
//! - [`workspace`]: each user's saved queries and overview layout, when there is an app
//!   database.
//!
//! Every root field is a pure function of (view, arguments, replica version), which is what
//! the live queries of the next step need to maintain them as subscriptions from deltas.

pub mod admission;
mod aggregates;
pub mod alerts;
mod arguments;
mod cache;
pub mod changes;
pub mod errors;
mod http;
pub mod kpis;
pub mod live;
pub(crate) mod loading;
mod media;
pub mod notifications;
mod output;
mod resolve;
pub mod revocations;
mod scalars;
pub mod schema;
mod session;
mod sse;
mod types;
mod view;
pub mod workspace;
pub(crate) mod ws;

use std::sync::Arc;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use axum::Router;
use axum::routing::get;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::policy::PolicyStore;
use crate::registry::Registry;
use crate::replica::Replica;

pub use alerts::AlertService;
pub use arguments::MAX_ROWS;
pub use cache::SchemaCache;
pub use kpis::KpiService;
pub use live::LiveHub;

/// What the GraphQL endpoints read.
#[derive(Debug)]
pub struct GraphqlState {
    pub auth: Authenticator,
    pub policy: PolicyStore,
    pub registry: Arc<Registry>,
    pub replica: watch::Receiver<Arc<Replica>>,
    pub cache: SchemaCache,
    /// The live runtime subscriptions register with (none: subscriptions are refused).
    pub live: Option<LiveHub>,
    /// The change log `…Changes` subscriptions read (none: the schema has no such fields).
    pub changes: Option<crate::changes::ChangeFeed>,
    /// KPIs (none: the schema has no KPI fields).
    pub kpis: Option<Arc<KpiService>>,
    /// Alerts (none: the schema has no alert fields).
    pub alerts: Option<Arc<AlertService>>,
    /// Users' saved queries and layouts (none: the schema has no such fields).
    pub workspace: Option<workspace::WorkspaceStore>,
    /// Contact points, routing and the outbox's log (none: the schema has no such fields).
    pub notify: Option<Arc<notifications::NotifyService>>,
    /// Token revocation (none: the schema has no such fields).
    pub revocations: Option<Arc<revocations::RevocationService>>,
    /// What the schemas hold beside the tables.
    features: schema::Features,
    /// Live connections and their limits.
    pub admission: Arc<admission::Admission>,
    /// Closes WebSocket connections when the server stops.
    pub shutdown: CancellationToken,
    /// Reserved and open single-connection SSE streams.
    sse: sse::Streams,
}

impl GraphqlState {
    pub fn new(
        auth: Authenticator,
        policy: PolicyStore,
        registry: Arc<Registry>,
        replica: watch::Receiver<Arc<Replica>>,
    ) -> GraphqlState {
        GraphqlState {
            auth,
            policy,
            registry,
            replica,
            cache: SchemaCache::default(),
            live: None,
            changes: None,
            sse: sse::Streams::default(),
            kpis: None,
            alerts: None,
            workspace: None,
            notify: None,
            revocations: None,
            admission: Arc::default(),
            features: schema::Features::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// With KPIs: every role's schema gets the KPI fields, answered by `kpis`.
    pub fn with_kpis(mut self, kpis: KpiService) -> GraphqlState {
        self.kpis = Some(Arc::new(kpis));
        self.features.kpis = true;
        self.cache = SchemaCache::with_features(self.features);
        self
    }

    /// With alerts (which need KPIs): every role's schema gets the alert fields.
    pub fn with_alerts(mut self, alerts: AlertService) -> GraphqlState {
        self.alerts = Some(Arc::new(alerts));
        self.features.alerts = true;
        self.cache = SchemaCache::with_features(self.features);
        self
    }

    /// With users' workspaces (saved queries, overview layouts) kept in `store`.
    pub fn with_workspace(mut self, store: crate::store::Store) -> GraphqlState {
        self.workspace = Some(workspace::WorkspaceStore(store));
        self.features.workspace = true;
        self.cache = SchemaCache::with_features(self.features);
        self
    }

    /// With notifications: contact points, the routing policy and the outbox's log.
    pub fn with_notifications(mut self, service: notifications::NotifyService) -> GraphqlState {
        self.notify = Some(Arc::new(service));
        self.features.notifications = true;
        self.cache = SchemaCache::with_features(self.features);
        self
    }

    /// With `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: crate::config::LimitsConfig) -> GraphqlState {
        self.features.document = schema::DocumentLimits::from(&limits);
        self.cache = SchemaCache::with_features(self.features);
        self.admission = Arc::new(admission::Admission::new(limits));
        self
    }

    /// With token revocation, recorded in `service.store` and enforced by `service.revoked`.
    pub fn with_revocations(mut self, service: revocations::RevocationService) -> GraphqlState {
        self.revocations = Some(Arc::new(service));
        self.features.revocations = true;
        self.cache = SchemaCache::with_features(self.features);
        self
    }

    /// A request with what resolvers read beside its `Scope`.
    pub(crate) fn with_data(&self, request: async_graphql::Request) -> async_graphql::Request {
        let request = request.data(self.registry.clone());
        let request = match &self.kpis {
            Some(kpis) => request.data(kpis.clone()),
            None => request,
        };
        let request = match &self.alerts {
            Some(alerts) => request.data(alerts.clone()),
            None => request,
        };
        let request = match &self.notify {
            Some(notify) => request.data(notify.clone()),
            None => request,
        };
        let request = match &self.revocations {
            Some(revocations) => request.data(revocations.clone()),
            None => request,
        };
        let request = match &self.changes {
            Some(feed) => request.data(feed.clone()),
            None => request,
        };
        match &self.workspace {
            Some(store) => request.data(store.clone()),
            None => request,
        }
    }

    /// With change streams read from `feed`.
    pub fn with_changes(mut self, feed: crate::changes::ChangeFeed) -> GraphqlState {
        self.changes = Some(feed);
        self.features.changes = true;
        self.cache = SchemaCache::with_features(self.features);
        self
    }

    /// With live queries served by `hub`, and connections closed when `shutdown` fires.
    pub fn with_live(mut self, hub: LiveHub, shutdown: CancellationToken) -> GraphqlState {
        self.live = Some(hub);
        self.shutdown = shutdown;
        self
    }
}

/// The type of the operation a request runs, chosen as async-graphql chooses it: the one
/// `name`d, or the document's only one (named or not); `None` when there is no such operation
/// (execution then refuses the request).
fn operation_type(document: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// `/graphql` (POST, GET, WebSocket; a browser is sent to the web app's Explorer),
/// `/graphql/stream` (Server-Sent Events) and `/graphql/schema.graphql`.
pub fn router(state: GraphqlState) -> Router {
    Router::new()
        .route("/graphql", get(http::get).post(http::post))
        .route("/graphql/schema.graphql", get(http::sdl))
        .route("/graphql/stream", get(sse::get).post(sse::post).put(sse::reserve).delete(sse::delete))
        .with_state(Arc::new(state))
}

#[cfg(test)]
mod tests;

//! The HTTP face of `serve`: operations endpoints (`/healthz`, `/readyz`, `/metrics`,
//! `/tables`), the web app when one is configured, and GraphQL beside them.
//!
//! Handlers only read shared state (atomics, the published replica version): serving a scrape
//! never waits on the data flow, and a slow client never slows it down.

pub mod ack;
pub mod graphql;
mod health;
mod metrics;
pub mod tables;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use prometheus_client::collector::Collector;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::change::SourceName;
use crate::pipeline::ApplyStats;
use crate::registry::Registry;
use crate::replica::Replica;
use crate::source::SourceStats;
use crate::watermark::Watermarks;

pub use health::Readiness;

/// One source as the operations endpoints see it.
#[derive(Clone, Debug)]
pub struct SourceView {
    pub name: SourceName,
    pub watermarks: Arc<Watermarks>,
    pub stats: Arc<SourceStats>,
}

/// Everything the endpoints read.
#[derive(Clone, Debug)]
pub struct OpsState {
    pub registry: Arc<Registry>,
    pub sources: Vec<SourceView>,
    pub apply: Arc<ApplyStats>,
    /// What large transactions hold on their way to the replica.
    pub transactions: Arc<crate::tx_memory::TxMemory>,
    pub replica: watch::Receiver<Arc<Replica>>,
    /// The checkpoint writer's counters, when checkpoints are on.
    pub checkpoints: Option<Arc<crate::checkpoint::writer::CheckpointStats>>,
    /// Where to ask each source for a table's resync.
    pub resync: std::collections::HashMap<SourceName, Arc<crate::source::ResyncRequests>>,
    /// When keys are configured, operations that change something (a resync) need a token
    /// whose role has the permission in `policy`.
    pub auth: Option<crate::auth::Authenticator>,
    pub policy: crate::policy::PolicyStore,
    /// The live hub's counters.
    pub live: Option<Arc<crate::live::LiveStats>>,
    /// The notification lanes' counters.
    pub notify: Option<Arc<crate::notify::outbox::NotifyStats>>,
    /// Live connections open and refused by `[limits]`.
    pub admission: Option<Arc<graphql::admission::AdmissionStats>>,
    /// The change log and its streams.
    pub changes: Option<crate::changes::ChangeFeed>,
    /// The cluster bus's counters, when this instance is one of several.
    pub cluster: Option<Arc<crate::cluster::bus::BusStats>>,
    /// In a cluster: whether this instance reads the sources, and how to ask the one that does.
    pub leader: Option<tables::LeaderLink>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {error} (set `listen` to a free address)")]
    Bind { addr: SocketAddr, error: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error(
        "`web_dir` {} holds no built web app (no index.html): build it with `npm ci --prefix web && npm run build --prefix web`, which writes web/out",
        .0.display()
    )]
    WebDir(std::path::PathBuf),
}

/// The router; `extra_metrics` join the data flow's on `/metrics` (the demo adds the
/// simulator's). With a built web app in `web_dir` it is served at `/`, and `/status` sends
/// people to its Status page; without one, `/`, `/status` and `/explorer/` say where the
/// endpoints are and how to get the dashboard (the pages people use live in the web app, not
/// in this binary). The sign-in routes follow `auth`.
pub fn router(
    state: OpsState,
    extra_metrics: Vec<Box<dyn Collector>>,
    web_dir: Option<&std::path::Path>,
    auth: crate::config::AuthConfig,
) -> Router {
    let metrics = metrics::Metrics::new(state.clone(), extra_metrics);
    let ops = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/tables", get(tables::list))
        .route("/tables/{name}/resync", axum::routing::post(tables::resync));
    let ops = match web_dir {
        Some(_) => ops.route("/status", get(|| async { axum::response::Redirect::permanent("/status/") })),
        None => ops.route("/", get(no_web_app)).route("/status", get(no_web_app)).route("/explorer/", get(no_web_app)),
    };
    let router = ops
        .with_state(Arc::new(state))
        .merge(Router::new().route("/metrics", get(metrics::scrape)).with_state(Arc::new(metrics)))
        .merge(web::sign_in_router(auth));
    match web_dir {
        Some(dir) => router.merge(web::app_router(dir)),
        None => router,
    }
}

/// What a browser gets from a server that serves no web app.
async fn no_web_app() -> (axum::http::StatusCode, &'static str) {
    (
        axum::http::StatusCode::NOT_FOUND,
        "opslive: this server serves no dashboard (set `web_dir` to the built web app, \
         `npm ci --prefix web && npm run build --prefix web` writes web/out; `opslive demo` does both).\n\
         API: /graphql (POST, GET, WebSocket), /graphql/schema.graphql, /metrics, /readyz, /healthz, /tables\n",
    )
}

/// A bound listener: binding is separate from serving so that the address (with port 0
/// resolved) can be reported before requests are taken.
pub struct Listener {
    listener: TcpListener,
    pub addr: SocketAddr,
}

impl Listener {
    pub async fn bind(addr: SocketAddr) -> Result<Listener, ApiError> {
        let listener = TcpListener::bind(addr).await.map_err(|error| ApiError::Bind { addr, error })?;
        let addr = listener.local_addr().map_err(|error| ApiError::Bind { addr, error })?;
        Ok(Listener { listener, addr })
    }

    /// Serves `router` until `cancel`, then lets requests in flight finish.
    pub async fn serve(self, router: Router, cancel: CancellationToken) -> Result<(), ApiError> {
        // Live updates are small frames written as they happen: with Nagle's algorithm on, a
        // frame written while the previous one is unacknowledged waits for the peer's delayed
        // ACK (up to 40 ms on Linux), which the hot bench showed as its p99.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY could not be set");
            }
        });
        // The peer's address is what `[limits] connections_per_address` counts.
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await
            .map_err(ApiError::Serve)
    }
}

//! Alerts in GraphQL: rules, their open instances, history and silences, in every role's
//! schema when the server runs alerts.
//!
//! ```text
//!  query ──► alert board (AlertHub's watch) ─► only what the caller may read (see [`read`])
//!  mutation ─► permission (manage_alerts) ─► bound against the replica (nothing stored if it
//!           fails) ─► store ─► AlertHub
//!  subscription ─► a stream following the board, one result per change the caller can see
//! ```
//!
//! - [`types`]: `AlertRule`, `Alert`, `AlertTransition`, `Silence`, the enums and inputs;
//! - [`read`]: who may see a rule and an instance, and the query fields;
//! - [`write`]: the mutations;
//! - [`follow`]: the `alerts` subscription.

mod follow;
mod read;
mod types;
mod write;

use async_graphql::dynamic::{Enum, InputObject, Object, Subscription};

use crate::alert::AlertHub;
use crate::kpi::KpiHub;
use crate::policy::PolicyStore;
use crate::store::Store;

/// What the alert resolvers need. Requests get it (in an `Arc`) as data next to their `Scope`.
#[derive(Clone)]
pub struct AlertService {
    pub hub: AlertHub,
    /// For rules on KPIs: a rule is readable when its KPI is.
    pub kpis: KpiHub,
    pub store: Store,
    pub policy: PolicyStore,
    /// The newest replica version: row alerts are readable when their row is.
    pub replica: tokio::sync::watch::Receiver<std::sync::Arc<crate::replica::Replica>>,
}

impl std::fmt::Debug for AlertService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertService").finish_non_exhaustive()
    }
}

/// Everything alerts add to a role's schema.
pub struct Parts {
    pub objects: Vec<Object>,
    pub inputs: Vec<InputObject>,
    pub enums: Vec<Enum>,
}

/// Adds the query fields to `query`, the mutations to `mutation`, the subscription to
/// `subscription`, and returns the types to register.
pub fn extend(query: Object, mutation: Object, subscription: Subscription) -> (Object, Object, Subscription, Parts) {
    let parts = Parts { objects: types::objects(), inputs: types::inputs(), enums: types::enums() };
    (read::fields(query), write::fields(mutation), follow::fields(subscription), parts)
}

//! KPIs in GraphQL: `kpis`, `kpi(id)`, the `createKpi`/`updateKpi`/`deleteKpi` mutations and
//! the `kpi(id)`/`kpis` subscriptions, in every role's schema when the server runs KPIs.
//!
//! ```text
//!  query ──► board (KpiHub's watch) ─► only what the caller's role may read (kpi::may_read)
//!  mutation ─► permission (manage_kpis) ─► compile_kpi (nothing stored if it fails)
//!           ─► store (app database) ─► KpiHub::define
//!  subscription ─► a stream following the board, one result per change of `seq`
//! ```
//!
//! - [`types`]: `Kpi`, `KpiGroup`, the enums and `KpiInput`;
//! - [`read`]: what a caller may see, and the query fields;
//! - [`write`]: the mutations;
//! - [`follow`]: the subscriptions (real streams, forwarded by the WebSocket transport).

mod comparison;
mod follow;
mod history;
mod read;
mod types;
mod write;

use async_graphql::dynamic::{Enum, InputObject, Object, Subscription};

use crate::kpi::KpiHub;
use crate::policy::PolicyStore;
use crate::store::Store;

pub use read::{KpiOut, readable};

/// What the KPI resolvers need: the runtime's handle, the app database, the policy. Requests
/// get it (in an `Arc`) as data next to their `Scope`.
#[derive(Clone)]
pub struct KpiService {
    pub hub: KpiHub,
    pub store: Store,
    pub policy: PolicyStore,
    /// Values compared with, read from the history.
    pub earlier: comparison::Earlier,
}

impl std::fmt::Debug for KpiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KpiService").finish_non_exhaustive()
    }
}

/// Everything KPIs add to a role's schema.
pub struct Parts {
    pub objects: Vec<Object>,
    pub inputs: Vec<InputObject>,
    pub enums: Vec<Enum>,
    pub mutation: Object,
}

/// Adds the query fields to `query`, the subscription fields to `subscription`, and returns
/// the types and the `Mutation` root to register.
pub fn extend(query: Object, subscription: Subscription) -> (Object, Subscription, Parts) {
    let parts = Parts {
        objects: vec![
            comparison::kpi_fields(types::kpi()),
            comparison::group_fields(types::group()),
            types::source(),
            history::point(),
        ],
        inputs: types::inputs(),
        enums: types::enums(),
        mutation: write::mutation(),
    };
    (history::fields(read::fields(query)), follow::fields(subscription), parts)
}

#[cfg(test)]
mod tests {
    use crate::api::graphql::schema::{Features, build_with, sdl};

    #[test]
    fn every_role_gets_the_kpi_fields_even_without_tables() {
        let schema = build_with(&[], Features { kpis: true, ..Features::default() }).expect("a schema");
        let text = sdl(&schema);
        for wanted in [
            "  kpis(\n",
            "builtin: Boolean\n  ): [Kpi!]!",
            "kpi(id: ID!): Kpi",
            "createKpi(input: KpiInput!): Kpi!",
            "updateKpi(id: ID!, input: KpiInput!): Kpi!",
            "deleteKpi(id: ID!): Boolean!",
            "type AsOf",
            "enum KpiAggregate",
        ] {
            assert!(text.contains(wanted), "{wanted} is missing:\n{text}");
        }
        assert!(!text.contains("noTablesGranted"), "the KPI fields are enough of a schema");
        // Without KPIs, nothing of them.
        let plain = sdl(&build_with(&[], Features::default()).expect("a schema"));
        assert!(!plain.contains("Kpi") && !plain.contains("Mutation"), "{plain}");
    }
}

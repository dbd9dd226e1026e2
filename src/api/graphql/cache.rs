//! Role schemas, built once and reused until the policy or a table's shape changes.
//!
//! A schema depends on two things: the policy version and the table schemas of the replica
//! (tables appear once their source has read its catalog, and change shape on a resync). Each
//! cached schema remembers both; a request whose replica version differs in either gets a
//! fresh one. Building takes a few milliseconds, so two requests racing to build is harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::dynamic::{Schema, SchemaError};

use super::schema::{self, Features};
use super::view::TableView;
use crate::policy::store::Current;
use crate::registry::TableSchema;
use crate::replica::Replica;

#[derive(Default)]
pub struct SchemaCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// What every schema adds beside the tables (fixed for the server's life).
    features: Features,
}

struct Entry {
    generation: u64,
    tables: Vec<Arc<TableSchema>>,
    schema: Schema,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache").finish_non_exhaustive()
    }
}

/// The replica's table schemas in name order (the order of the generated fields).
fn table_schemas(replica: &Replica) -> Vec<Arc<TableSchema>> {
    let mut tables: Vec<Arc<TableSchema>> = replica.tables().map(|t| t.schema.clone()).collect();
    tables.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    tables
}

impl SchemaCache {
    /// A cache whose schemas have the fields of `features`.
    pub fn with_features(features: Features) -> SchemaCache {
        SchemaCache { entries: Mutex::default(), features }
    }

    /// The schema of `role` under `policy` for the tables of `replica`.
    pub fn get(&self, role: &str, policy: &Current, replica: &Replica) -> Result<Schema, SchemaError> {
        let tables = table_schemas(replica);
        let fresh = |e: &Entry| {
            e.generation == policy.generation
                && e.tables.len() == tables.len()
                && e.tables.iter().zip(&tables).all(|(a, b)| Arc::ptr_eq(a, b))
        };
        if let Some(e) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(role).filter(|e| fresh(e)) {
            return Ok(e.schema.clone());
        }
        // Notifications are managed only by roles allowed to: others do not see the fields (and
        // the dashboard offers them no Notifications page).
        let mut features = self.features;
        features.notifications &= policy.policy.may(role, crate::policy::Permission::ManageNotifications);
        features.revocations &= policy.policy.may(role, crate::policy::Permission::RevokeTokens);
        let schema = schema::build_with(&views(role, policy, &tables), features)?;
        let entry = Entry { generation: policy.generation, tables, schema: schema.clone() };
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(role.to_string(), entry);
        Ok(schema)
    }
}

/// The views of the tables `role` is granted. A rule that does not fit its table (a column
/// the table does not have) hides the table and says so in the log: denying is the safe way
/// to be wrong.
pub fn views(role: &str, policy: &Current, tables: &[Arc<TableSchema>]) -> Vec<Arc<TableView>> {
    let mut out = Vec::new();
    for table in tables {
        match policy.policy.grant(role, table) {
            Ok(Some(grant)) => out.push(Arc::new(TableView::new(table.clone(), grant))),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(role, table = %table.spec.name, error = %e, "policy rule does not fit the table; it stays hidden from the role")
            }
        }
    }
    out
}

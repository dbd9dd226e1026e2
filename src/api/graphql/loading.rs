//! Tables the configuration watches but the replica does not hold yet (their source has not
//! read its catalog, so their columns, and hence their GraphQL types, are still unknown).
//!
//! Such a table is not in any schema yet, so a query naming it fails validation with "unknown
//! field". For a table the caller's role is granted, that is really "not ready": the error is
//! relabelled `NOT_READY`, so a client retries instead of concluding the table does not exist.
//! The same holds for a KPI or alert rule defined on such a table: `pending` says so.

use std::sync::Arc;

use async_graphql::Response;

use super::errors::Code;
use crate::policy::Policy;
use crate::policy::names::root_field_name;
use crate::registry::{Registry, TableSpec};
use crate::replica::Replica;

/// The `NOT_READY` error for a definition naming `table` (its GraphQL name) when the
/// configuration watches that table but `replica` does not hold it yet; `None` when the table is
/// held or not watched at all (then the definition itself is wrong).
pub fn pending(table: &str, registry: &Registry, replica: &Replica) -> Option<async_graphql::Error> {
    let spec = registry.tables().find(|t| root_field_name(&t.name) == table && replica.table(t.id).is_none())?;
    Some(super::errors::error(Code::NotReady, not_loaded_message(&spec, replica)))
}

fn not_loaded_message(table: &TableSpec, replica: &Replica) -> String {
    let name = &table.name;
    match replica.never_loaded(table.id) {
        Some(reason) => format!("table `{name}` could not be loaded ({reason}); it is retried on a resync"),
        None => format!("table `{name}` is not loaded yet: its source has not read it; retry shortly"),
    }
}

/// Relabels "unknown field" errors about granted tables that are not loaded yet. Returns
/// whether every error is now `NOT_READY`.
pub fn relabel(response: &mut Response, role: &str, policy: &Policy, registry: &Registry, replica: &Replica) -> bool {
    let missing: Vec<(String, Arc<TableSpec>)> = registry
        .tables()
        .filter(|t| replica.table(t.id).is_none() && policy.mentions(role, &t.name))
        .map(|t| (root_field_name(&t.name), t))
        .collect();
    if missing.is_empty() {
        return false;
    }
    for e in &mut response.errors {
        // async-graphql's wording, possibly followed by a "Did you mean" suggestion.
        let Some((field, rest)) = e.message.strip_prefix("Unknown field \"").and_then(|m| m.split_once('"')) else {
            continue;
        };
        if !rest.starts_with(" on type \"Query\".") {
            continue;
        }
        let table = missing.iter().find(|(root, _)| {
            field.strip_prefix(root.as_str()).is_some_and(|rest| ["", "ByKey", "Aggregate"].contains(&rest))
        });
        if let Some((_, table)) = table {
            e.message = not_loaded_message(table, replica);
            e.extensions.get_or_insert_with(Default::default).set("code", Code::NotReady.as_str());
        }
    }
    response.errors.iter().all(|e| {
        e.extensions.as_ref().and_then(|x| x.get("code")) == Some(&async_graphql::Value::from(Code::NotReady.as_str()))
    })
}

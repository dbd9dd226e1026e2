//! Filters written as JSON (KPI and alert definitions): the same `where` language as GraphQL
//! and the policy file, read by the same parser and bound by the same compiler, so a filter
//! copied from the explorer into a KPI means exactly the same rows.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::filter::Filter;
use super::validate::QueryError;
use crate::policy::compile::{Binding, ClaimValues, CompileError, compile};
use crate::policy::condition::{Claims, Condition, ConditionError};
use crate::policy::names::column_fields;
use crate::registry::TableSchema;

/// Why a JSON filter does not fit its table; every message names the field (`and[1].status.eq`
/// for shape errors, the column and operator for the rest).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("filter: {0}")]
    Shape(#[from] ConditionError),
    #[error("filter: {0}")]
    Bind(#[from] CompileError),
    #[error("filter: {0}")]
    Query(#[from] QueryError),
}

/// Reads `json` (e.g. `{ "createdAt": { "lt": { "ago": "PT10M" } } }`) as a validated filter
/// over the table of `schema`, with columns named as in GraphQL (camelCase). Claims are
/// refused: a definition belongs to no caller's token.
pub fn parse_json_filter(schema: &TableSchema, json: &Json) -> Result<Filter, FilterError> {
    let condition = Condition::parse(json, Claims::Refused)?;
    let columns: HashMap<String, usize> = column_fields(schema).into_iter().map(|(i, n)| (n, i)).collect();
    let filter = compile(&condition, Binding { schema, columns: &columns }, ClaimValues::Unchecked)?;
    Ok(filter.validate(schema)?)
}

//! Field arguments read into the engine's types: `where` to a [`Filter`], `orderBy` to
//! [`OrderBy`]s, `groupBy` to column positions, key arguments to a [`Key`].
//!
//! The schema has already checked shapes and names (only visible columns exist in it); what is
//! left is what a type system cannot say — a date that does not exist, a negative limit — and
//! those are `BAD_USER_INPUT`. The role's row filter is compiled here too, with the caller's
//! claims, and AND-ed with the client's `where` by the resolver.

use async_graphql::Value as Gql;
use async_graphql::dynamic::ObjectAccessor;

use super::errors::{Code, error};
use super::types::DIRECTIONS;
use super::view::TableView;
use crate::auth::Principal;
use crate::change::Key;
use crate::policy::compile::{Binding, ClaimValues, compile};
use crate::policy::condition::{Claims, Condition};
use crate::policy::literal::value_of;
use crate::query::{Filter, OrderBy};
use crate::registry::ColumnType;
use crate::value::Value;

/// Rows one request may return at most; a larger answer must be paged with `limit`/`offset`.
pub const MAX_ROWS: usize = 10_000;

fn bad(message: impl Into<String>) -> async_graphql::Error {
    error(Code::BadUserInput, message)
}

fn json(value: &Gql) -> Result<serde_json::Value, async_graphql::Error> {
    value.clone().into_json().map_err(|e| bad(format!("unreadable argument: {e}")))
}

/// The client's `where`, bound to the visible columns (`Filter::True` when absent).
pub fn where_filter(view: &TableView, args: &ObjectAccessor<'_>) -> Result<Filter, async_graphql::Error> {
    let Some(arg) = args.get("where").filter(|v| !v.is_null()) else { return Ok(Filter::True) };
    let condition =
        Condition::parse(&json(arg.as_value())?, Claims::Refused).map_err(|e| bad(format!("where: {e}")))?;
    // Parsed with claims refused, so there is none to fill in.
    compile(&condition, Binding { schema: &view.schema, columns: &view.visible }, ClaimValues::Unchecked)
        .map_err(|e| bad(format!("where: {e}")))
}

/// The role's row filter for this caller (`Filter::True` when the grant has none). A token
/// lacking a claim the filter needs is FORBIDDEN: answering without the filter would show too
/// much, answering with nothing would hide the mistake.
pub fn policy_filter(view: &TableView, principal: &Principal) -> Result<Filter, async_graphql::Error> {
    let Some(condition) = &view.grant.filter else { return Ok(Filter::True) };
    let binding = Binding { schema: &view.schema, columns: &view.all };
    compile(condition, binding, ClaimValues::Token(&principal.claims)).map_err(|e| {
        if e.is_claim_error() {
            error(Code::Forbidden, format!("table `{}`: {e}", view.field))
        } else {
            // Checked when the schema was built; reaching this is a bug, and must not answer.
            tracing::error!(table = %view.field, error = %e, "the policy's row filter does not compile");
            error(Code::Internal, format!("table `{}`: the policy's row filter cannot be applied", view.field))
        }
    })
}

/// `orderBy`: a list of objects, each key a column in the order given (a single object is a
/// list of one).
pub fn order(view: &TableView, args: &ObjectAccessor<'_>) -> Result<Vec<OrderBy>, async_graphql::Error> {
    let Some(arg) = args.get("orderBy").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items: Vec<&Gql> = match arg.as_value() {
        Gql::List(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        let Gql::Object(keys) = item else { return Err(bad("orderBy: expected objects such as { createdAt: DESC }")) };
        for (name, direction) in keys {
            let direction = match direction {
                Gql::Null => continue,
                Gql::Enum(d) => d.as_str(),
                Gql::String(d) => d.as_str(),
                _ => return Err(bad(format!("orderBy.{name}: expected a direction such as DESC"))),
            };
            let column =
                *view.visible.get(name.as_str()).ok_or_else(|| bad(format!("orderBy: unknown column `{name}`")))?;
            let (_, descending, nulls_first) = DIRECTIONS
                .iter()
                .find(|(n, _, _)| *n == direction)
                .ok_or_else(|| bad(format!("orderBy.{name}: unknown direction `{direction}`")))?;
            out.push(OrderBy { column, descending: *descending, nulls_first: *nulls_first });
        }
    }
    Ok(out)
}

/// `groupBy`: column positions, in the order given, without repeats.
pub fn group_by(view: &TableView, args: &ObjectAccessor<'_>) -> Result<Vec<usize>, async_graphql::Error> {
    let Some(arg) = args.get("groupBy").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items: Vec<&Gql> = match arg.as_value() {
        Gql::List(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        let name = match item {
            Gql::Enum(n) => n.as_str(),
            Gql::String(n) => n.as_str(),
            _ => return Err(bad("groupBy: expected column names such as STATUS")),
        };
        let column = view
            .columns
            .iter()
            .find(|c| c.enum_value == name && c.can.equality)
            .ok_or_else(|| bad(format!("groupBy: unknown column `{name}`")))?;
        if !out.contains(&column.position) {
            out.push(column.position);
        }
    }
    Ok(out)
}

/// `limit` and `offset`. Without `limit`, the answer may hold up to [`MAX_ROWS`] rows and one
/// more is asked for, so that a larger answer is refused rather than cut short silently.
pub fn page(args: &ObjectAccessor<'_>) -> Result<(Option<usize>, usize), async_graphql::Error> {
    let read = |name: &str| -> Result<Option<usize>, async_graphql::Error> {
        match args.get(name).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => {
                let n = v.i64()?;
                usize::try_from(n).map(Some).map_err(|_| bad(format!("`{name}` must not be negative")))
            }
        }
    };
    let offset = read("offset")?.unwrap_or(0);
    match read("limit")? {
        Some(limit) if limit > MAX_ROWS => {
            Err(bad(format!("`limit` is at most {MAX_ROWS}; page through larger answers with `offset`")))
        }
        limit => Ok((limit, offset)),
    }
}

/// The primary key from `…ByKey`'s arguments, each value of its column's own kind.
pub fn key(view: &TableView, args: &ObjectAccessor<'_>) -> Result<Key, async_graphql::Error> {
    let columns = view.key_columns().ok_or_else(|| error(Code::Internal, "the table has no visible key"))?;
    let mut values = Vec::with_capacity(columns.len());
    for column in columns {
        let arg = args.try_get(&column.name)?;
        let value = value_of(&json(arg.as_value())?, &column.ty).map_err(|e| bad(format!("`{}`: {e}", column.name)))?;
        // Keys compare by the replica's own order, where a float4 is not its float8 widening.
        values.push(match (&column.ty, value) {
            (ColumnType::Float4, Value::Float8(f)) => Value::Float4(f as f32),
            (_, v) => v,
        });
    }
    Ok(Key(values.into()))
}

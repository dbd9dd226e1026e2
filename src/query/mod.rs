//! The query engine: filters, ordering and pages over one version of a replica table.
//!
//! Pure on purpose — no I/O, no async, no GraphQL types — so the same code answers a GraphQL
//! query, applies a role's row filter, and (in live queries) decides from a row delta whether a
//! row entered, left or moved inside a result. The semantics are PostgreSQL's, so that a
//! result here equals the same query run in SQL against the source:
//!
//! - three-valued logic ([`Filter`]): a comparison with NULL is unknown, a row passes only when
//!   the filter is TRUE;
//! - `like`/`ilike` with `%`, `_` and `\` ([`like`]), ILIKE folding ASCII only (the C locale);
//! - text compares by bytes (the C collation the tests' clusters are created with), numeric by
//!   value, NaN above every number;
//! - `ORDER BY` puts NULLs last ascending and first descending unless told otherwise, and ties
//!   are broken by primary key so pages are stable ([`order`]).
//!
//! Build a [`Filter`] or [`Query`], [`Query::validate`] it against the table's schema, then
//! [`select`] (or [`matching_rows`] for aggregates).

mod clock;
mod compare;
mod dispatch;
mod filter;
mod json;
mod like;
mod operand;
mod order;
mod plan;
mod select;
mod timeline;
mod validate;

pub use crate::duration::{DurationError, parse_iso as parse_duration};
pub use clock::{Clock, ManualClock, SystemClock, wall_micros};
pub use compare::{Capabilities, capabilities, sql_cmp};
pub use dispatch::Dispatch;
pub use filter::{CompareOp, Filter, Truth};
pub use json::{FilterError, parse_json_filter};
pub use like::{PatternError, check_pattern, like_matches};
pub use operand::{Ago, Operand, TimeKind, comparable};
pub use order::{OrderBy, RowOrder, compare_rows};
pub use plan::matching_rows;
pub use select::{Query, select, select_after};
pub use timeline::Timeline;
pub use validate::{QueryError, type_label};

#[cfg(test)]
mod tests;

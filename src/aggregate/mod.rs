//! The incremental aggregate engine: `count`, `sum`, `avg`, `min`, `max` with `GROUP BY`,
//! maintained row by row.
//!
//! One engine for GraphQL `…Aggregate` queries now, and for live aggregates and KPIs later
//! (windows and rollups are to be added to it, not beside it). Pure: no I/O, no async, no
//! GraphQL types. Results equal PostgreSQL's, types included:
//!
//! | function | int2, int4 | int8 | numeric | float4 | float8 |
//! |---|---|---|---|---|---|
//! | `sum` | int8 | numeric | numeric (largest input scale) | float4 | float8 |
//! | `avg` | numeric | numeric | numeric | float8 | float8 |
//!
//! `avg` over integers and numerics reproduces PostgreSQL's `numeric_div` scale rule (at least
//! 16 significant digits) and rounding, so its text is the same as `psql` prints. Numeric NaN
//! and ±Infinity propagate as in PostgreSQL. Float sums are exact until read (see
//! [`float_sum`]); PostgreSQL's own float sum depends on scan order, so the two agree to
//! within that rounding, not bit for bit. `min`/`max` work on numbers, text (byte order),
//! dates, times, timestamps and intervals; `count(column)` counts non-null values and works on
//! every type.

mod decimal_sum;
mod extremes;
mod float_sum;
mod groups;
mod measure;
mod numeric;

pub use groups::Aggregate;
pub use measure::result_type;

use crate::query::{Filter, matching_rows};
use crate::replica::Table;
use crate::value::Value;

/// An aggregate function applied to one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFn {
    /// `count(column)`: the non-null values (`count(*)` is always in [`GroupResult::count`]).
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFn {
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
        }
    }
}

/// What to compute: groups by these columns, and these measures in each group (plus
/// `count(*)`, always).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AggregateSpec {
    pub group_by: Vec<usize>,
    pub measures: Vec<(AggFn, usize)>,
}

/// One group's results.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupResult {
    /// The values of the `group_by` columns (NULL is a group of its own, as in SQL).
    pub key: Vec<Value>,
    /// `count(*)`.
    pub count: u64,
    /// One value per measure, in the spec's order; NULL when the group has no non-null input.
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    #[error("table `{table}` has no column number {column}")]
    NoSuchColumn { table: String, column: usize },
    #[error("{function} is not defined for column `{column}` of type {ty}")]
    Unsupported { function: &'static str, column: String, ty: String },
    #[error("column `{column}` of type {ty} cannot be grouped by: its values have no equality")]
    NotGroupable { column: String, ty: String },
}

/// Aggregates the rows of one table version that pass `filter` (a validated filter: the
/// user's `where` and the role's row filter together).
pub fn aggregate_table(table: &Table, filter: &Filter, spec: AggregateSpec) -> Result<Aggregate, AggregateError> {
    let mut aggregate = Aggregate::new(spec, &table.schema)?;
    for row in matching_rows(table, filter) {
        aggregate.add(row);
    }
    Ok(aggregate)
}

#[cfg(test)]
mod tests;

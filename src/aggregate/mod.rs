//! The incremental aggregate engine: `count`, `sum`, `avg`, `min`, `max`, `count(DISTINCT)` and
//! `percentile_disc` with `GROUP BY`, over columns, differences of columns and ages, optionally
//! in a sliding time window — maintained row by row.
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
//! every type. `count(DISTINCT x)` works on every type with equality, `percentile_disc` (p50,
//! p90, p95, p99) on the types `min`/`max` support and returns the input's type.
//!
//! A measure reads an [`Input`]: a column, the difference of two columns (`later - earlier`,
//! timestamps giving seconds as `extract(epoch from …)` does), or the age of a timestamp
//! (`now - column`), which is derived when read at a given `now` (see [`Aggregate::groups_at`]).
//! [`WindowedAggregate`] counts only the rows whose timestamp is in a window that slides with
//! time.

mod decimal_sum;
mod distinct;
mod extremes;
mod float_sum;
mod groups;
mod input;
mod measure;
mod numeric;
mod percentile;
mod window;

pub use groups::Aggregate;
pub use input::Input;
pub use measure::result_type;
pub use window::{Span, TimeWindow, WindowedAggregate};

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
    /// `count(DISTINCT column)`: the distinct non-null values.
    CountDistinct,
    /// `percentile_disc(0.5) WITHIN GROUP (ORDER BY column)`, and so on.
    P50,
    P90,
    P95,
    P99,
}

impl AggFn {
    /// Every function, in a stable order.
    pub const ALL: [AggFn; 10] = [
        AggFn::Count,
        AggFn::Sum,
        AggFn::Avg,
        AggFn::Min,
        AggFn::Max,
        AggFn::CountDistinct,
        AggFn::P50,
        AggFn::P90,
        AggFn::P95,
        AggFn::P99,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::CountDistinct => "countDistinct",
            AggFn::P50 => "p50",
            AggFn::P90 => "p90",
            AggFn::P95 => "p95",
            AggFn::P99 => "p99",
        }
    }

    /// The fraction a percentile function passes to `percentile_disc`, as the float8 that
    /// PostgreSQL reads from the literal (`0.9` is not exactly 0.9, and the rank depends on it).
    pub fn percentile(self) -> Option<f64> {
        match self {
            AggFn::P50 => Some(0.5),
            AggFn::P90 => Some(0.9),
            AggFn::P95 => Some(0.95),
            AggFn::P99 => Some(0.99),
            _ => None,
        }
    }
}

/// What to compute: groups by these columns, and these measures in each group (plus
/// `count(*)`, always).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AggregateSpec {
    pub group_by: Vec<usize>,
    pub measures: Vec<(AggFn, Input)>,
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
    #[error("the age of column `{column}` is not defined: it is of type {ty}, not timestamp or timestamptz")]
    NotATimestamp { column: String, ty: String },
    #[error(
        "`{later}` ({later_ty}) - `{earlier}` ({earlier_ty}) is not defined: subtract numbers from numbers of the same kind, or timestamps from timestamps with the same zone semantics"
    )]
    CannotSubtract { later: String, later_ty: String, earlier: String, earlier_ty: String },
    #[error("column `{column}` of type {ty} cannot bound a time window: it must be timestamp or timestamptz")]
    NotWindowable { column: String, ty: String },
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

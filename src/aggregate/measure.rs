//! One measure of one group: an accumulator that takes values in and gives them back.
//!
//! Every accumulator is exact under removal, which is what lets live queries and KPIs follow
//! row deltas instead of recomputing: integer sums in `i128`, numeric sums as exact decimals,
//! float sums exactly in units of 2^-1074, min/max over an ordered multiset
//! ([`super::extremes`]), distinct counts over a counted multiset ([`super::distinct`]) and
//! percentiles over a ranked multiset ([`super::percentile`]).
//!
//! Ages are accumulated as the timestamps they are computed from, with the same structures, and
//! turned into ages only when read at a `now`: `sum(now - t) = n·now - sum(t)`, the smallest
//! age is `now - max(t)`, and percentiles read the timestamps at the mirrored rank.

use bigdecimal::num_bigint::BigInt;

use super::distinct::Distinct;
use super::extremes::Extremes;
use super::float_sum::FloatSum;
use super::input::seconds;
use super::numeric::{NumericSum, pg_div_text, small_decimal_text, small_pg_div_text};
use super::percentile::Ranked;
use super::{AggFn, AggregateError};
use crate::query::{capabilities, type_label};
use crate::registry::ColumnType;
use crate::value::Value;

/// How a measure accumulates, chosen once from the function and the column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    CountValues,
    /// sum of int2/int4: int8.
    SumIntToInt8,
    /// sum of int8: numeric.
    SumIntToNumeric,
    SumNumeric,
    SumFloat4,
    SumFloat8,
    AvgInt,
    AvgNumeric,
    AvgFloat,
    Min,
    Max,
    CountDistinct,
    /// `percentile_disc` with this function's fraction.
    Percentile(AggFn),
    /// Of ages (`now - t`), accumulated as the timestamps `t`.
    AgeSum,
    AgeAvg,
    AgeMin,
    AgeMax,
    AgePercentile(AggFn),
}

/// The type PostgreSQL gives `f(column)`, or `None` when it has no such aggregate (sum of text,
/// min of a boolean, ...). `count` works on every type.
pub fn result_type(f: AggFn, ty: &ColumnType) -> Option<ColumnType> {
    kind(f, ty).map(|k| match k {
        Kind::CountValues | Kind::SumIntToInt8 | Kind::CountDistinct => ColumnType::Int8,
        Kind::SumIntToNumeric | Kind::SumNumeric | Kind::AvgInt | Kind::AvgNumeric => ColumnType::Numeric,
        Kind::SumFloat4 => ColumnType::Float4,
        Kind::SumFloat8 | Kind::AvgFloat => ColumnType::Float8,
        Kind::Min | Kind::Max | Kind::Percentile(_) => ty.clone(),
        Kind::AgeSum | Kind::AgeAvg | Kind::AgeMin | Kind::AgeMax | Kind::AgePercentile(_) => ColumnType::Numeric,
    })
}

/// The type of `f(age)`: ages are numerics of seconds.
pub(crate) fn age_result_type(f: AggFn) -> ColumnType {
    match age_kind(f) {
        Kind::CountValues | Kind::CountDistinct => ColumnType::Int8,
        _ => ColumnType::Numeric,
    }
}

/// How `f` of an age accumulates: every function is defined on ages.
pub(crate) fn age_kind(f: AggFn) -> Kind {
    match f {
        AggFn::Count => Kind::CountValues,
        AggFn::CountDistinct => Kind::CountDistinct,
        AggFn::Sum => Kind::AgeSum,
        AggFn::Avg => Kind::AgeAvg,
        AggFn::Min => Kind::AgeMin,
        AggFn::Max => Kind::AgeMax,
        AggFn::P50 | AggFn::P90 | AggFn::P95 | AggFn::P99 => Kind::AgePercentile(f),
    }
}

pub(crate) fn kind(f: AggFn, ty: &ColumnType) -> Option<Kind> {
    use ColumnType as T;
    Some(match (f, ty) {
        (AggFn::Count, _) => Kind::CountValues,
        (AggFn::CountDistinct, ty) if capabilities(ty).equality => Kind::CountDistinct,
        (AggFn::Sum, T::Int2 | T::Int4) => Kind::SumIntToInt8,
        (AggFn::Sum, T::Int8) => Kind::SumIntToNumeric,
        (AggFn::Sum, T::Numeric) => Kind::SumNumeric,
        (AggFn::Sum, T::Float4) => Kind::SumFloat4,
        (AggFn::Sum, T::Float8) => Kind::SumFloat8,
        (AggFn::Avg, T::Int2 | T::Int4 | T::Int8) => Kind::AvgInt,
        (AggFn::Avg, T::Numeric) => Kind::AvgNumeric,
        (AggFn::Avg, T::Float4 | T::Float8) => Kind::AvgFloat,
        // The types PostgreSQL has min/max for among those the replica decodes.
        (
            AggFn::Min | AggFn::Max | AggFn::P50 | AggFn::P90 | AggFn::P95 | AggFn::P99,
            T::Int2
            | T::Int4
            | T::Int8
            | T::Float4
            | T::Float8
            | T::Numeric
            | T::Text
            | T::Date
            | T::Time
            | T::Timestamp
            | T::TimestampTz
            | T::Interval,
        ) => match f {
            AggFn::Min => Kind::Min,
            AggFn::Max => Kind::Max,
            _ => Kind::Percentile(f),
        },
        _ => return None,
    })
}

/// `f`'s kind for an input of type `ty`, named `label` in the error when `f` does not apply.
pub(crate) fn checked_kind(f: AggFn, ty: &ColumnType, label: &str) -> Result<Kind, AggregateError> {
    kind(f, ty).ok_or_else(|| AggregateError::Unsupported {
        function: f.name(),
        column: label.to_string(),
        ty: type_label(ty),
    })
}

/// The running state of one measure in one group.
#[derive(Clone, Debug)]
pub(crate) enum Accumulator {
    Count(u64),
    Int { sum: i128, count: u64 },
    Numeric(NumericSum),
    Float(FloatSum),
    Extremes(Extremes),
    Distinct(Distinct),
    Ranked(Ranked),
}

impl Accumulator {
    pub(crate) fn new(kind: Kind) -> Accumulator {
        match kind {
            Kind::CountValues => Accumulator::Count(0),
            Kind::SumIntToInt8 | Kind::SumIntToNumeric | Kind::AvgInt | Kind::AgeSum | Kind::AgeAvg => {
                Accumulator::Int { sum: 0, count: 0 }
            }
            Kind::SumNumeric | Kind::AvgNumeric => Accumulator::Numeric(NumericSum::default()),
            Kind::SumFloat4 | Kind::SumFloat8 | Kind::AvgFloat => Accumulator::Float(FloatSum::default()),
            Kind::Min | Kind::Max | Kind::AgeMin | Kind::AgeMax => Accumulator::Extremes(Extremes::default()),
            Kind::CountDistinct => Accumulator::Distinct(Distinct::default()),
            Kind::Percentile(_) | Kind::AgePercentile(_) => Accumulator::Ranked(Ranked::default()),
        }
    }

    /// Takes in one value (NULLs are ignored, as by every SQL aggregate but `count(*)`).
    pub(crate) fn add(&mut self, value: &Value) {
        if value.is_null() {
            return;
        }
        match self {
            Accumulator::Count(n) => *n += 1,
            Accumulator::Int { sum, count } => {
                if let Some(v) = int(value) {
                    *sum += v;
                    *count += 1;
                }
            }
            Accumulator::Numeric(s) => {
                if let Value::Numeric(text) = value {
                    s.add(text);
                }
            }
            Accumulator::Float(s) => {
                if let Some(x) = float(value) {
                    s.add(x);
                }
            }
            Accumulator::Extremes(values) => values.add(value),
            Accumulator::Distinct(values) => values.add(value),
            Accumulator::Ranked(values) => values.insert(value),
        }
    }

    /// Gives back one value taken in before.
    pub(crate) fn remove(&mut self, value: &Value) {
        if value.is_null() {
            return;
        }
        match self {
            Accumulator::Count(n) => *n = n.saturating_sub(1),
            Accumulator::Int { sum, count } => {
                if let Some(v) = int(value) {
                    *sum -= v;
                    *count = count.saturating_sub(1);
                }
            }
            Accumulator::Numeric(s) => {
                if let Value::Numeric(text) = value {
                    s.remove(text);
                }
            }
            Accumulator::Float(s) => {
                if let Some(x) = float(value) {
                    s.remove(x);
                }
            }
            Accumulator::Extremes(values) => values.remove(value),
            Accumulator::Distinct(values) => values.remove(value),
            Accumulator::Ranked(values) => {
                values.remove(value);
            }
        }
    }

    /// The measure's value as PostgreSQL would return it; NULL when no non-null value was
    /// taken in (except the counts, which are then 0). Ages are read at `now`, and are NULL
    /// without one.
    pub(crate) fn value(&self, kind: Kind, now: Option<i64>) -> Value {
        let numeric = |text: String| Value::Numeric(text.into());
        let age = |t: &Value| match (now, t) {
            (Some(now), Value::Timestamp(t) | Value::TimestampTz(t)) => seconds(i128::from(now) - i128::from(*t)),
            _ => Value::Null,
        };
        match (self, kind) {
            (Accumulator::Count(n), _) => Value::Int8(i64::try_from(*n).unwrap_or(i64::MAX)),
            (Accumulator::Distinct(values), _) => Value::Int8(i64::try_from(values.len()).unwrap_or(i64::MAX)),
            (Accumulator::Int { count: 0, .. }, _) => Value::Null,
            (Accumulator::Int { sum, count }, Kind::AgeSum | Kind::AgeAvg) => {
                let Some(now) = now else { return Value::Null };
                // The exact sum of the ages, in microseconds: what PostgreSQL sums (numerics of
                // scale 6) and then divides for the average.
                let small = i128::from(now).checked_mul(i128::from(*count)).and_then(|t| t.checked_sub(*sum));
                match (small, kind == Kind::AgeSum) {
                    (Some(total), true) => numeric(small_decimal_text(total, 6)),
                    (Some(total), false) => numeric(small_pg_div_text(total, 6, *count)),
                    (None, sum_of_ages) => {
                        let total = BigInt::from(now) * BigInt::from(*count) - BigInt::from(*sum);
                        match sum_of_ages {
                            true => numeric(super::numeric::decimal_text(&total, 6)),
                            false => numeric(pg_div_text(&total, 6, *count)),
                        }
                    }
                }
            }
            // PostgreSQL would fail with "bigint out of range" past i64; the exact value is
            // more useful than an error, so it is returned as numeric instead.
            (Accumulator::Int { sum, .. }, Kind::SumIntToInt8) => match i64::try_from(*sum) {
                Ok(v) => Value::Int8(v),
                Err(_) => numeric(sum.to_string()),
            },
            (Accumulator::Int { sum, count }, Kind::AvgInt) => numeric(small_pg_div_text(*sum, 0, *count)),
            (Accumulator::Int { sum, .. }, _) => numeric(sum.to_string()),
            (Accumulator::Numeric(s), Kind::AvgNumeric) => s.avg_text().map_or(Value::Null, numeric),
            (Accumulator::Numeric(s), _) => s.sum_text().map_or(Value::Null, numeric),
            (Accumulator::Float(s), Kind::SumFloat4) => s.sum().map_or(Value::Null, |x| Value::Float4(x as f32)),
            (Accumulator::Float(s), Kind::AvgFloat) => s.avg().map_or(Value::Null, Value::Float8),
            (Accumulator::Float(s), _) => s.sum().map_or(Value::Null, Value::Float8),
            (Accumulator::Extremes(values), Kind::Max) => values.max(),
            // The youngest row has the latest timestamp.
            (Accumulator::Extremes(values), Kind::AgeMin) => age(&values.max()),
            (Accumulator::Extremes(values), Kind::AgeMax) => age(&values.min()),
            (Accumulator::Extremes(values), _) => values.min(),
            (Accumulator::Ranked(values), Kind::AgePercentile(f)) => {
                values.mirrored_percentile(f.percentile().unwrap_or(0.5)).map_or(Value::Null, age)
            }
            (Accumulator::Ranked(values), Kind::Percentile(f)) => values.percentile(f.percentile().unwrap_or(0.5)),
            (Accumulator::Ranked(_), _) => Value::Null,
        }
    }
}

/// An integer, or a timestamp's microseconds (what age sums accumulate).
fn int(value: &Value) -> Option<i128> {
    match value {
        Value::Int2(v) => Some((*v).into()),
        Value::Int4(v) => Some((*v).into()),
        Value::Int8(v) | Value::Timestamp(v) | Value::TimestampTz(v) => Some((*v).into()),
        _ => None,
    }
}

fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Float4(v) => Some((*v).into()),
        Value::Float8(v) => Some(*v),
        _ => None,
    }
}

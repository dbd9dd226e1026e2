//! What a measure reads from a row: a column, the difference of two columns, or the age of a
//! timestamp column.
//!
//! KPIs ask for things like "average time from order to shipment" (a difference) and "oldest
//! open ticket" (an age). A difference is a value of its row, so it is computed once per row
//! and accumulated like a column. An age is not: it grows with time while no row changes, so
//! the timestamps themselves are accumulated and the age is derived when the result is read at
//! a given `now` (see `measure`). Both follow PostgreSQL: `later - earlier` of timestamps is an
//! interval, and `extract(epoch from interval)` is a numeric of seconds with six decimals.

use std::borrow::Cow;
use std::str::FromStr;

use bigdecimal::BigDecimal;

use super::AggregateError;
use super::numeric::{NumericInput, decimal_text, small_decimal_text};
use crate::query::type_label;
use crate::registry::{ColumnType, TableSchema};
use crate::value::Value;

/// What a measure reads from a row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// The column's value.
    Column(usize),
    /// `later - earlier` per row: a number for two numbers of one kind (integers give int8,
    /// numerics numeric, floats float8 — float4 for two float4s, as in PostgreSQL), seconds as
    /// a numeric with six decimals for two timestamps (as `extract(epoch from later - earlier)`);
    /// NULL when either is NULL.
    Diff { later: usize, earlier: usize },
    /// `now - column` for a timestamp(tz) column, in seconds like `Diff`, with `now` given when
    /// the result is read. A `timestamp` without zone is read as UTC.
    Age(usize),
}

/// How a difference is computed, chosen once from the two column types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arithmetic {
    Int,
    Numeric,
    Float4,
    Float8,
    Seconds,
}

/// An [`Input`] checked against the schema.
#[derive(Clone, Debug)]
pub(crate) struct Reader {
    pub(crate) input: Input,
    arithmetic: Option<Arithmetic>,
    /// The type of the values the accumulator takes in (for an age: the timestamps).
    pub(crate) ty: ColumnType,
    /// How errors name the input.
    pub(crate) label: String,
}

const NULL: Value = Value::Null;

impl Reader {
    pub(crate) fn new(input: &Input, schema: &TableSchema) -> Result<Reader, AggregateError> {
        let column = |i: usize| {
            schema
                .columns
                .get(i)
                .ok_or_else(|| AggregateError::NoSuchColumn { table: schema.spec.name.to_string(), column: i })
        };
        Ok(match *input {
            Input::Column(i) => {
                let c = column(i)?;
                Reader { input: input.clone(), arithmetic: None, ty: c.ty.clone(), label: c.name.to_string() }
            }
            Input::Age(i) => {
                let c = column(i)?;
                if !matches!(c.ty, ColumnType::Timestamp | ColumnType::TimestampTz) {
                    return Err(AggregateError::NotATimestamp { column: c.name.to_string(), ty: type_label(&c.ty) });
                }
                Reader { input: input.clone(), arithmetic: None, ty: c.ty.clone(), label: format!("age({})", c.name) }
            }
            Input::Diff { later, earlier } => {
                let (a, b) = (column(later)?, column(earlier)?);
                let (arithmetic, ty) = arithmetic(&a.ty, &b.ty).ok_or_else(|| AggregateError::CannotSubtract {
                    later: a.name.to_string(),
                    later_ty: type_label(&a.ty),
                    earlier: b.name.to_string(),
                    earlier_ty: type_label(&b.ty),
                })?;
                Reader {
                    input: input.clone(),
                    arithmetic: Some(arithmetic),
                    ty,
                    label: format!("{} - {}", a.name, b.name),
                }
            }
        })
    }

    pub(crate) fn is_age(&self) -> bool {
        matches!(self.input, Input::Age(_))
    }

    /// The value the accumulator takes in for this row.
    pub(crate) fn read<'a>(&self, row: &'a [Value]) -> Cow<'a, Value> {
        let get = |i: usize| row.get(i).unwrap_or(&NULL);
        match (&self.input, self.arithmetic) {
            (Input::Column(i), _) => Cow::Borrowed(get(*i)),
            // PostgreSQL cannot subtract from an infinite timestamp (an error); such rows have
            // no age here.
            (Input::Age(i), _) => match get(*i) {
                Value::Timestamp(t) | Value::TimestampTz(t) if finite(*t) => Cow::Borrowed(get(*i)),
                _ => Cow::Owned(Value::Null),
            },
            (Input::Diff { later, earlier }, Some(arithmetic)) => {
                Cow::Owned(subtract(arithmetic, get(*later), get(*earlier)))
            }
            (Input::Diff { .. }, None) => Cow::Owned(Value::Null),
        }
    }
}

impl Reader {
    /// Whether two rows give this input the same value, spelled the same: the columns it
    /// reads are. (Cheaper than reading both, which for a difference computes it twice.)
    pub(crate) fn reads_alike(&self, a: &[Value], b: &[Value]) -> bool {
        match &self.input {
            Input::Column(i) | Input::Age(i) => spelled_alike(a, b, *i),
            Input::Diff { later, earlier } => spelled_alike(a, b, *later) && spelled_alike(a, b, *earlier),
        }
    }
}

/// Whether column `i` of two rows holds the same value spelled the same (or neither row has it).
pub(crate) fn spelled_alike(a: &[Value], b: &[Value], i: usize) -> bool {
    match (a.get(i), b.get(i)) {
        (Some(x), Some(y)) => x.same_spelling(y),
        (x, y) => x.is_none() && y.is_none(),
    }
}

fn finite(t: i64) -> bool {
    t != i64::MIN && t != i64::MAX
}

fn is_int(ty: &ColumnType) -> bool {
    matches!(ty, ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8)
}

/// The arithmetic and result type of `a - b`, when opslive defines it.
fn arithmetic(a: &ColumnType, b: &ColumnType) -> Option<(Arithmetic, ColumnType)> {
    use ColumnType as T;
    Some(match (a, b) {
        _ if is_int(a) && is_int(b) => (Arithmetic::Int, T::Int8),
        (T::Numeric, T::Numeric) => (Arithmetic::Numeric, T::Numeric),
        _ if (*a == T::Numeric && is_int(b)) || (is_int(a) && *b == T::Numeric) => (Arithmetic::Numeric, T::Numeric),
        (T::Float4, T::Float4) => (Arithmetic::Float4, T::Float4),
        (T::Float4 | T::Float8, T::Float4 | T::Float8) => (Arithmetic::Float8, T::Float8),
        (T::Timestamp, T::Timestamp) | (T::TimestampTz, T::TimestampTz) => (Arithmetic::Seconds, T::Numeric),
        _ => return None,
    })
}

/// Exact seconds from microseconds: the text `extract(epoch from interval)` prints (PostgreSQL
/// 14 and later divide the microseconds by 10^6 keeping scale 6: `90.000000`, `-0.500000`).
pub(crate) fn seconds(micros: i128) -> Value {
    Value::Numeric(small_decimal_text(micros, 6).into())
}

/// `a - b` as PostgreSQL computes it. Where PostgreSQL raises an error for the whole query
/// (integer overflow, float overflow, infinite timestamps), the row's difference is NULL.
fn subtract(arithmetic: Arithmetic, a: &Value, b: &Value) -> Value {
    if a.is_null() || b.is_null() {
        return Value::Null;
    }
    match arithmetic {
        Arithmetic::Int => match (int(a), int(b)) {
            (Some(x), Some(y)) => i64::try_from(x - y).map_or(Value::Null, Value::Int8),
            _ => Value::Null,
        },
        Arithmetic::Numeric => numeric_difference(&numeric_text(a), &numeric_text(b)),
        Arithmetic::Float4 => match (a, b) {
            (Value::Float4(x), Value::Float4(y)) => {
                let d = x - y;
                if d.is_infinite() && x.is_finite() && y.is_finite() { Value::Null } else { Value::Float4(d) }
            }
            _ => Value::Null,
        },
        Arithmetic::Float8 => match (float(a), float(b)) {
            (Some(x), Some(y)) => {
                let d = x - y;
                if d.is_infinite() && x.is_finite() && y.is_finite() { Value::Null } else { Value::Float8(d) }
            }
            _ => Value::Null,
        },
        Arithmetic::Seconds => match (a, b) {
            (Value::Timestamp(x), Value::Timestamp(y)) | (Value::TimestampTz(x), Value::TimestampTz(y))
                if finite(*x) && finite(*y) =>
            {
                seconds(i128::from(*x) - i128::from(*y))
            }
            _ => Value::Null,
        },
    }
}

fn int(v: &Value) -> Option<i128> {
    match v {
        Value::Int2(x) => Some((*x).into()),
        Value::Int4(x) => Some((*x).into()),
        Value::Int8(x) => Some((*x).into()),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Float4(x) => Some((*x).into()),
        Value::Float8(x) => Some(*x),
        _ => None,
    }
}

fn numeric_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Numeric(t) => Cow::Borrowed(t),
        other => Cow::Owned(int(other).map_or_else(|| "NaN".to_string(), |i| i.to_string())),
    }
}

/// PostgreSQL's `numeric_sub`: the result has the larger input scale; NaN wins; an infinity
/// minus a finite value keeps its sign, and equal infinities give NaN.
fn numeric_difference(a: &str, b: &str) -> Value {
    use NumericInput as N;
    let text = match (NumericInput::parse(a), NumericInput::parse(b)) {
        (N::NaN, _) | (_, N::NaN) | (N::PosInf, N::PosInf) | (N::NegInf, N::NegInf) => "NaN".to_string(),
        (N::PosInf, _) | (_, N::NegInf) => "Infinity".to_string(),
        (N::NegInf, _) | (_, N::PosInf) => "-Infinity".to_string(),
        (N::Finite { text: x, scale: sx }, N::Finite { text: y, scale: sy }) => {
            match (BigDecimal::from_str(x), BigDecimal::from_str(y)) {
                (Ok(x), Ok(y)) => {
                    let scale = sx.max(sy);
                    let (unscaled, _) = (x - y).with_scale(scale).into_bigint_and_exponent();
                    decimal_text(&unscaled, scale)
                }
                _ => "NaN".to_string(),
            }
        }
    };
    Value::Numeric(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Value {
        Value::Numeric(s.into())
    }

    #[test]
    fn differences_follow_postgres() {
        assert_eq!(subtract(Arithmetic::Int, &Value::Int4(3), &Value::Int8(10)), Value::Int8(-7));
        assert_eq!(subtract(Arithmetic::Int, &Value::Int8(i64::MIN), &Value::Int8(1)), Value::Null);
        let text = |v: Value| v.to_canonical_string();
        assert_eq!(text(subtract(Arithmetic::Numeric, &n("1.50"), &n("0.125"))), "1.375");
        assert_eq!(text(subtract(Arithmetic::Numeric, &n("2.50"), &n("0.5"))), "2.00");
        assert_eq!(text(subtract(Arithmetic::Numeric, &n("1"), &Value::Int4(3))), "-2");
        assert_eq!(text(subtract(Arithmetic::Numeric, &n("Infinity"), &n("Infinity"))), "NaN");
        assert_eq!(text(subtract(Arithmetic::Numeric, &n("5"), &n("-Infinity"))), "Infinity");
        assert_eq!(text(subtract(Arithmetic::Numeric, &n("-Infinity"), &n("5"))), "-Infinity");
        assert_eq!(
            text(subtract(Arithmetic::Seconds, &Value::TimestampTz(1_500_000), &Value::TimestampTz(2_000_000))),
            "-0.500000"
        );
        assert_eq!(
            text(subtract(Arithmetic::Seconds, &Value::Timestamp(90_000_000), &Value::Timestamp(0))),
            "90.000000"
        );
        assert_eq!(subtract(Arithmetic::Seconds, &Value::TimestampTz(i64::MAX), &Value::TimestampTz(0)), Value::Null);
        assert_eq!(subtract(Arithmetic::Float8, &Value::Float8(f64::MAX), &Value::Float8(-f64::MAX)), Value::Null);
        assert_eq!(subtract(Arithmetic::Float8, &Value::Float4(1.5), &Value::Float8(0.25)), Value::Float8(1.25));
        assert_eq!(subtract(Arithmetic::Int, &Value::Null, &Value::Int4(1)), Value::Null);
    }
}

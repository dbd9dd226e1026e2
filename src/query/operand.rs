//! Right-hand sides of a comparison other than a literal: another column of the same row, or
//! an instant relative to now.
//!
//! `{ onHand: { lt: { column: "reorderPoint" } } }` compares two values of one row, so it
//! never changes unless the row does. `{ createdAt: { lt: { ago: "PT10M" } } }` compares with
//! `now − 10 min`, so its truth moves by itself as time passes: evaluation takes the instant
//! explicitly ([`super::Filter::eval_at`]), and [`next_change`] says when a row's truth can
//! next flip, so live queries wake up for exactly those rows instead of rescanning.

use std::cmp::Ordering;

use super::filter::CompareOp;
use crate::registry::ColumnType;
use crate::value::Value;

const DAY: i64 = 86_400_000_000;

/// What a column is compared with, besides a literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// Another column of the same row (a position in the schema).
    Column(usize),
    /// `now − micros`, re-evaluated at every instant.
    Ago(Ago),
    /// A fixed instant (microseconds since the Unix epoch, UTC): an `Ago` bound to one `now`
    /// where no literal of the column's own kind says the same (date columns).
    Instant(i64),
}

/// `now − micros` for a column of kind `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ago {
    pub micros: i64,
    pub kind: TimeKind,
}

/// The column kinds an `ago` operand applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeKind {
    Date,
    /// Without zone: read as UTC, the zone opslive pins on its source connections.
    Timestamp,
    TimestampTz,
}

impl TimeKind {
    pub fn of(ty: &ColumnType) -> Option<TimeKind> {
        match ty {
            ColumnType::Date => Some(TimeKind::Date),
            ColumnType::Timestamp => Some(TimeKind::Timestamp),
            ColumnType::TimestampTz => Some(TimeKind::TimestampTz),
            _ => None,
        }
    }
}

impl Ago {
    /// The instant it stands for at `now` (saturating: a huge duration reaches -infinity).
    pub fn instant(self, now: i64) -> i64 {
        now.saturating_sub(self.micros)
    }
}

/// A time value as microseconds since the Unix epoch, as PostgreSQL compares a date or a
/// timestamp with a timestamptz (a date is its midnight). ±infinity map to the extremes.
pub(crate) fn time_micros(value: &Value) -> Option<i64> {
    match value {
        Value::Date(i32::MAX) => Some(i64::MAX),
        Value::Date(i32::MIN) => Some(i64::MIN),
        Value::Date(days) => Some(i64::from(*days) * DAY),
        Value::Timestamp(t) | Value::TimestampTz(t) => Some(*t),
        _ => None,
    }
}

/// `value op instant`; `None` (unknown) for NULL.
pub(crate) fn compare_instant(value: &Value, op: CompareOp, instant: i64) -> Option<bool> {
    let micros = time_micros(value)?;
    Some(op.holds(micros.cmp(&instant)))
}

/// The earliest instant after `now` at which `value op (now' − micros)` can change as `now'`
/// grows, or `None` when it never will (NULL, infinity, or already past its only change).
///
/// With `T = value + micros`, the comparison reads `now' ⋛ T`: `lt` turns TRUE at `T + 1`,
/// `lte` at `T`, `gt` turns FALSE at `T`, `gte` at `T + 1`, `eq`/`neq` flip at `T` and back
/// at `T + 1`.
pub(crate) fn ago_next_change(value: &Value, op: CompareOp, ago: Ago, now: i64) -> Option<i64> {
    let micros = time_micros(value)?;
    if micros == i64::MAX || micros == i64::MIN {
        return None;
    }
    let t = micros.checked_add(ago.micros)?;
    let at = match op {
        CompareOp::Lte | CompareOp::Gt => t,
        CompareOp::Lt | CompareOp::Gte => t.checked_add(1)?,
        CompareOp::Eq | CompareOp::Neq => match now.cmp(&t) {
            Ordering::Less => t,
            Ordering::Equal => t.checked_add(1)?,
            Ordering::Greater => return None,
        },
    };
    (at > now).then_some(at)
}

/// The literal an `ago` becomes at `now` for columns whose own kind can say it exactly (so an
/// ordered index can serve it); `None` for dates, which compare with an instant instead.
pub(crate) fn ago_literal(ago: Ago, now: i64) -> Option<Value> {
    match ago.kind {
        TimeKind::Timestamp => Some(Value::Timestamp(ago.instant(now))),
        TimeKind::TimestampTz => Some(Value::TimestampTz(ago.instant(now))),
        TimeKind::Date => None,
    }
}

/// Whether two column types compare with each other under SQL's rules (as [`super::sql_cmp`]
/// compares their values): numbers with numbers, otherwise the same type. JSON, arrays and
/// unknown types compare with nothing.
pub fn comparable(a: &ColumnType, b: &ColumnType) -> bool {
    let number = |t: &ColumnType| {
        matches!(
            t,
            ColumnType::Int2
                | ColumnType::Int4
                | ColumnType::Int8
                | ColumnType::Float4
                | ColumnType::Float8
                | ColumnType::Numeric
        )
    };
    let plain = |t: &ColumnType| !matches!(t, ColumnType::Json | ColumnType::Array(_) | ColumnType::Other(_));
    (number(a) && number(b)) || (plain(a) && a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert!(comparable(&ColumnType::Int4, &ColumnType::Numeric));
        assert!(comparable(&ColumnType::Float4, &ColumnType::Int8));
        assert!(comparable(&ColumnType::Text, &ColumnType::Text));
        assert!(!comparable(&ColumnType::Text, &ColumnType::Int4));
        assert!(!comparable(&ColumnType::Timestamp, &ColumnType::TimestampTz));
        assert!(!comparable(&ColumnType::Json, &ColumnType::Json));
    }

    #[test]
    fn dates_are_their_midnight() {
        assert_eq!(time_micros(&Value::Date(1)), Some(DAY));
        assert_eq!(time_micros(&Value::Date(i32::MAX)), Some(i64::MAX));
        let ago = Ago { micros: 10, kind: TimeKind::TimestampTz };
        // value 0, 10 µs back: `0 < now − 10` turns TRUE at now = 11.
        assert_eq!(ago_next_change(&Value::TimestampTz(0), CompareOp::Lt, ago, 0), Some(11));
        assert_eq!(ago_next_change(&Value::TimestampTz(0), CompareOp::Lt, ago, 11), None);
        assert_eq!(ago_next_change(&Value::TimestampTz(0), CompareOp::Eq, ago, 10), Some(11));
        assert_eq!(ago_next_change(&Value::Null, CompareOp::Eq, ago, 10), None);
        assert_eq!(ago_next_change(&Value::TimestampTz(i64::MAX), CompareOp::Lt, ago, 10), None);
    }
}

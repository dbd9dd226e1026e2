//! SQL comparison of two values, and which comparisons each column type supports.
//!
//! [`Value`]'s own `Ord` is a total order for keys and indexes (NULL first, kinds ranked).
//! A filter needs SQL's comparison instead: NULL compares to nothing, and numbers of different
//! kinds compare by value the way PostgreSQL's implicit casts make them (an integer against a
//! numeric compares exactly; anything against a float compares as float8). Values of unrelated
//! kinds do not compare at all; validation keeps such filters from being built.

use std::cmp::Ordering;

use crate::registry::ColumnType;
use crate::value::{Value, numeric_cmp};

/// SQL's comparison of two non-null values; `None` when either is NULL (the result is
/// unknown) or when the kinds cannot be compared.
pub fn sql_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Null, _) | (_, Null) => None,
        (Int2(_) | Int4(_) | Int8(_), Int2(_) | Int4(_) | Int8(_)) => Some(a.cmp(b)),
        (Numeric(x), Numeric(y)) => Some(numeric_cmp(x, y)),
        (Numeric(x), Int2(_) | Int4(_) | Int8(_)) => int_text(b).map(|y| numeric_cmp(x, &y)),
        (Int2(_) | Int4(_) | Int8(_), Numeric(y)) => int_text(a).map(|x| numeric_cmp(&x, y)),
        (Float4(_) | Float8(_), _) | (_, Float4(_) | Float8(_)) => Some(float_cmp(as_float(a)?, as_float(b)?)),
        (Bool(_), Bool(_))
        | (Text(_), Text(_))
        | (Uuid(_), Uuid(_))
        | (Date(_), Date(_))
        | (Time(_), Time(_))
        | (Timestamp(_), Timestamp(_))
        | (TimestampTz(_), TimestampTz(_))
        | (Interval(_), Interval(_))
        | (Bytes(_), Bytes(_)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn int_text(v: &Value) -> Option<String> {
    match v {
        Value::Int2(x) => Some(x.to_string()),
        Value::Int4(x) => Some(x.to_string()),
        Value::Int8(x) => Some(x.to_string()),
        _ => None,
    }
}

/// A number as float8, as PostgreSQL's implicit casts to `double precision` produce it.
pub(crate) fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Int2(x) => Some(f64::from(*x)),
        Value::Int4(x) => Some(f64::from(*x)),
        Value::Int8(x) => Some(*x as f64),
        Value::Float4(x) => Some(f64::from(*x)),
        Value::Float8(x) => Some(*x),
        // Rust parses `NaN`, `Infinity` and `-Infinity` as PostgreSQL prints them.
        Value::Numeric(s) => s.parse().ok(),
        _ => None,
    }
}

/// PostgreSQL's float order: NaN equals NaN and is above everything else; -0 equals 0.
fn float_cmp(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// The comparisons a column type supports, so that a schema offers only operators that work
/// and validation refuses the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `eq`, `neq`, `in`, `nin`.
    pub equality: bool,
    /// `gt`, `gte`, `lt`, `lte` and `orderBy`.
    pub ordering: bool,
    /// `like`, `ilike`.
    pub like: bool,
}

/// What a column of type `ty` can be filtered and ordered by. Every column supports `isNull`.
///
/// JSON (json and jsonb share one type here), arrays and unknown types get no comparison:
/// PostgreSQL's json has no equality at all, and comparing their text would not match what
/// the database does for jsonb or arrays.
pub fn capabilities(ty: &ColumnType) -> Capabilities {
    match ty {
        ColumnType::Text => Capabilities { equality: true, ordering: true, like: true },
        ColumnType::Json | ColumnType::Array(_) | ColumnType::Other(_) => {
            Capabilities { equality: false, ordering: false, like: false }
        }
        _ => Capabilities { equality: true, ordering: true, like: false },
    }
}

/// Whether a non-null literal of this kind can be compared with a column of type `ty`.
pub(crate) fn literal_fits(ty: &ColumnType, literal: &Value) -> bool {
    use Value as V;
    let numeric_column = matches!(
        ty,
        ColumnType::Int2
            | ColumnType::Int4
            | ColumnType::Int8
            | ColumnType::Float4
            | ColumnType::Float8
            | ColumnType::Numeric
    );
    match literal {
        V::Null => true,
        V::Int2(_) | V::Int4(_) | V::Int8(_) | V::Float4(_) | V::Float8(_) | V::Numeric(_) => numeric_column,
        V::Bool(_) => *ty == ColumnType::Bool,
        V::Text(_) => *ty == ColumnType::Text,
        V::Uuid(_) => *ty == ColumnType::Uuid,
        V::Date(_) => *ty == ColumnType::Date,
        V::Time(_) => *ty == ColumnType::Time,
        V::Timestamp(_) => *ty == ColumnType::Timestamp,
        V::TimestampTz(_) => *ty == ColumnType::TimestampTz,
        V::Interval(_) => *ty == ColumnType::Interval,
        V::Bytes(_) => *ty == ColumnType::Bytes,
        V::Json(_) | V::Array(_) | V::Other { .. } => false,
    }
}

/// Rewrites a literal into the column's own kind when that loses nothing and keeps SQL's
/// meaning, so that comparisons take the fast path and ordered indexes can serve them: an
/// integer for a numeric column becomes numeric, any number for a float column becomes float
/// (PostgreSQL casts it to float8 too). Anything else stays as it is and compares by value.
pub(crate) fn normalize_literal(ty: &ColumnType, literal: Value) -> Value {
    match (ty, &literal) {
        (ColumnType::Numeric, Value::Int2(_) | Value::Int4(_) | Value::Int8(_)) => match int_text(&literal) {
            Some(text) => Value::Numeric(text.into()),
            None => literal,
        },
        (
            ColumnType::Float4 | ColumnType::Float8,
            Value::Int2(_) | Value::Int4(_) | Value::Int8(_) | Value::Numeric(_),
        ) => match as_float(&literal) {
            Some(f) => Value::Float8(f),
            None => literal,
        },
        _ => literal,
    }
}

/// Whether `literal` orders among the column's values by [`Value`]'s own `Ord` exactly as SQL
/// orders them, which is what an index range scan relies on.
pub(crate) fn index_compatible(ty: &ColumnType, literal: &Value) -> bool {
    use Value as V;
    match literal {
        V::Int2(_) | V::Int4(_) | V::Int8(_) => matches!(ty, ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8),
        V::Float4(_) | V::Float8(_) => matches!(ty, ColumnType::Float4 | ColumnType::Float8),
        V::Numeric(_) => *ty == ColumnType::Numeric,
        V::Null | V::Json(_) | V::Array(_) | V::Other { .. } => false,
        _ => literal_fits(ty, literal),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn n(s: &str) -> Value {
        Value::Numeric(s.into())
    }

    #[test]
    fn null_compares_to_nothing() {
        assert_eq!(sql_cmp(&Value::Null, &Value::Null), None);
        assert_eq!(sql_cmp(&Value::Int4(1), &Value::Null), None);
    }

    #[test]
    fn numbers_of_different_kinds_compare_by_value() {
        assert_eq!(sql_cmp(&Value::Int4(2), &n("1.5")), Some(Ordering::Greater));
        assert_eq!(sql_cmp(&n("2.00"), &Value::Int8(2)), Some(Ordering::Equal));
        assert_eq!(sql_cmp(&Value::Int2(7), &Value::Int8(7)), Some(Ordering::Equal));
        assert_eq!(sql_cmp(&Value::Float8(0.5), &n("0.25")), Some(Ordering::Greater));
        assert_eq!(sql_cmp(&Value::Float8(f64::NAN), &Value::Float8(f64::INFINITY)), Some(Ordering::Greater));
        assert_eq!(sql_cmp(&Value::Float8(f64::NAN), &n("NaN")), Some(Ordering::Equal));
        assert_eq!(sql_cmp(&Value::Float4(-0.0), &Value::Int4(0)), Some(Ordering::Equal));
        assert_eq!(sql_cmp(&n("Infinity"), &Value::Int8(i64::MAX)), Some(Ordering::Greater));
    }

    #[test]
    fn text_compares_by_bytes_and_unrelated_kinds_not_at_all() {
        assert_eq!(sql_cmp(&Value::text("B"), &Value::text("a")), Some(Ordering::Less));
        assert_eq!(sql_cmp(&Value::text("é"), &Value::text("z")), Some(Ordering::Greater));
        assert_eq!(sql_cmp(&Value::text("1"), &Value::Int4(1)), None);
        assert_eq!(sql_cmp(&Value::Timestamp(1), &Value::TimestampTz(1)), None);
    }

    #[test]
    fn literals_are_normalized_to_the_column_kind() {
        assert_eq!(normalize_literal(&ColumnType::Numeric, Value::Int4(3)), n("3"));
        assert!(matches!(normalize_literal(&ColumnType::Float4, n("0.5")), Value::Float8(x) if x == 0.5));
        assert!(matches!(normalize_literal(&ColumnType::Int4, n("0.5")), Value::Numeric(_)));
        assert!(index_compatible(&ColumnType::Int4, &Value::Int8(3)));
        assert!(!index_compatible(&ColumnType::Int4, &n("3")));
    }
}

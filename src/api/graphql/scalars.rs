//! Column types as GraphQL types, and row values as GraphQL values.
//!
//! Values keep the canonical JSON form of `src/value.rs`: int8 and numeric travel as strings
//! (`BigInt`, `Numeric`), timestamps as ISO 8601 text, JSON columns as the exact JSON the source
//! stored (numbers keep every digit), so a GraphQL result and `opslive tail` print a value alike.

use async_graphql::dynamic::{Scalar, TypeRef};
use async_graphql::{Name, Number, Value as Gql};

use crate::registry::ColumnType;
use crate::value::Value;

/// The custom scalars, with what they carry (shown by introspection).
pub const CUSTOM_SCALARS: [(&str, &str); 10] = [
    ("BigInt", "A 64-bit integer, as a string of digits: JavaScript numbers cannot hold it."),
    ("Numeric", "An exact decimal as a string (\"12.50\"), or \"NaN\", \"Infinity\", \"-Infinity\"."),
    ("Timestamp", "A date and time without zone, ISO 8601: \"2024-05-31T13:45:00.25\"."),
    ("Timestamptz", "An instant, ISO 8601 in UTC: \"2024-05-31T13:45:00Z\" (input takes any offset)."),
    ("Date", "A calendar date, ISO 8601: \"2024-05-31\"."),
    ("Time", "A time of day: \"13:45:00\"."),
    ("Interval", "A duration, ISO 8601 with PostgreSQL's separate months, days and time: \"P1DT2H\"."),
    ("JSON", "A JSON value, exactly as stored."),
    ("UUID", "A UUID in its hyphenated form."),
    ("Bytea", "Bytes as \"\\\\x\" followed by hex digits."),
];

/// Scalar definitions for the schema, for the names in `used`.
pub fn scalar_types(used: &std::collections::BTreeSet<&'static str>) -> Vec<Scalar> {
    CUSTOM_SCALARS
        .iter()
        .filter(|(name, _)| used.contains(name))
        .map(|(name, description)| {
            let scalar = Scalar::new(*name).description(*description);
            match *name {
                // Integers may come as numbers too (they fit a JSON number when small).
                "BigInt" | "Numeric" => scalar.validator(|v| matches!(v, Gql::String(_) | Gql::Number(_))),
                "JSON" => scalar,
                _ => scalar.validator(|v| matches!(v, Gql::String(_))),
            }
        })
        .collect()
}

/// The GraphQL scalar of a (non-array) column type.
pub fn scalar_name(ty: &ColumnType) -> &'static str {
    match ty {
        ColumnType::Bool => TypeRef::BOOLEAN,
        ColumnType::Int2 | ColumnType::Int4 => TypeRef::INT,
        ColumnType::Int8 => "BigInt",
        ColumnType::Float4 | ColumnType::Float8 => TypeRef::FLOAT,
        ColumnType::Numeric => "Numeric",
        ColumnType::Text | ColumnType::Other(_) => TypeRef::STRING,
        ColumnType::Uuid => "UUID",
        ColumnType::Date => "Date",
        ColumnType::Time => "Time",
        ColumnType::Timestamp => "Timestamp",
        ColumnType::TimestampTz => "Timestamptz",
        ColumnType::Interval => "Interval",
        ColumnType::Json => "JSON",
        ColumnType::Bytes => "Bytea",
        ColumnType::Array(inner) => scalar_name(inner),
    }
}

/// The output type of a column: arrays as lists, NOT NULL columns non-null.
pub fn output_type(ty: &ColumnType, nullable: bool) -> TypeRef {
    let name = scalar_name(ty);
    match (ty, nullable) {
        (ColumnType::Array(_), true) => TypeRef::named_list(name),
        (ColumnType::Array(_), false) => TypeRef::named_list_nn(name),
        (_, true) => TypeRef::named(name),
        (_, false) => TypeRef::named_nn(name),
    }
}

/// A column value as a field's answer: SQL NULL is the field's null (async-graphql refuses a
/// null *value* for a custom scalar; an absent one is GraphQL's null).
pub fn field_value(value: Option<&Value>) -> Option<async_graphql::dynamic::FieldValue<'static>> {
    match value {
        None | Some(Value::Null) => None,
        Some(v) => Some(async_graphql::dynamic::FieldValue::value(to_graphql(v))),
    }
}

/// A row value in its canonical JSON form.
pub fn to_graphql(value: &Value) -> Gql {
    match value {
        Value::Null => Gql::Null,
        Value::Bool(b) => Gql::Boolean(*b),
        Value::Int2(v) => Gql::Number((*v).into()),
        Value::Int4(v) => Gql::Number((*v).into()),
        // f32's shortest text, not the widened f64's digits (1.1, not 1.100000023841858).
        Value::Float4(v) => float(v.to_string().parse().unwrap_or(f64::from(*v))),
        Value::Float8(v) => float(*v),
        Value::Json(text) => raw_json(text),
        Value::Array(items) => Gql::List(items.iter().map(to_graphql).collect()),
        Value::Numeric(s) | Value::Text(s) => Gql::String(s.to_string()),
        Value::Other(other) => Gql::String(other.text.to_string()),
        other => Gql::String(other.to_canonical_string()),
    }
}

fn float(v: f64) -> Gql {
    match Number::from_f64(v) {
        Some(n) => Gql::Number(n),
        None if v.is_nan() => Gql::String("NaN".into()),
        None if v > 0.0 => Gql::String("Infinity".into()),
        None => Gql::String("-Infinity".into()),
    }
}

/// JSON text passed through untouched: async-graphql writes an object holding only this
/// marker key as the raw text (its `raw_value` feature), so numbers keep every digit.
fn raw_json(text: &str) -> Gql {
    let mut map = async_graphql::indexmap::IndexMap::new();
    map.insert(Name::new(async_graphql_raw_token()), Gql::String(text.to_string()));
    Gql::Object(map)
}

/// serde_json's private marker for raw values (what async-graphql's `raw_value` feature looks
/// for).
fn async_graphql_raw_token() -> &'static str {
    "$serde_json::private::RawValue"
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn json(v: &Value) -> String {
        serde_json::to_string(&to_graphql(v)).unwrap()
    }

    #[test]
    fn values_keep_the_canonical_json_form() {
        for v in [
            Value::Int8(9_007_199_254_740_993),
            Value::Int4(-3),
            Value::Float8(0.1),
            Value::Float4(1.1),
            Value::Float8(f64::NAN),
            Value::Float8(f64::NEG_INFINITY),
            Value::Numeric("12.50".into()),
            Value::Json("{\"a\": 1.000000000000000001}".into()),
            Value::TimestampTz(1_500_000),
            Value::Bytes(Arc::from(&b"\x01\xff"[..])),
            Value::Array(Arc::from(vec![Value::Int4(1), Value::Null])),
            Value::Null,
        ] {
            assert_eq!(json(&v), serde_json::to_string(&v).unwrap(), "{v:?}");
        }
    }
}

//! Building blocks of the product's own GraphQL object types (KPIs, alerts, each user's
//! workspace): a field read from its typed parent value, text and instant answers, and an
//! `ID` argument read as the number it stands for.

use async_graphql::Value as Gql;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, TypeRef};

use crate::value::Value;

/// A field whose answer is read from the parent value, a `T`.
pub fn field<T: 'static>(name: &str, ty: TypeRef, read: fn(&T) -> Option<FieldValue<'static>>) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move { Ok(read(ctx.parent_value.try_downcast_ref::<T>()?)) })
    })
}

pub fn text(s: impl Into<String>) -> Option<FieldValue<'static>> {
    Some(FieldValue::value(Gql::String(s.into())))
}

/// An instant (µs since the Unix epoch) as a `Timestamptz`.
pub fn timestamptz(us: i64) -> Option<FieldValue<'static>> {
    text(Value::TimestampTz(us).to_canonical_string())
}

/// An `ID` given as a string of digits or as a number; `None` for anything else.
pub fn numeric_id(value: &Gql) -> Option<i64> {
    match value {
        Gql::String(s) => s.parse().ok(),
        Gql::Number(n) => n.as_i64(),
        _ => None,
    }
}

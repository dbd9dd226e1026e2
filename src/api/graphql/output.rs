//! Building blocks of the product's own GraphQL object types (KPIs, alerts, each user's
//! workspace, notifications): a field read from its typed parent value, text, JSON, enum and
//! instant answers, and an `ID` argument read as the number it stands for.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, ResolverContext, TypeRef};
use async_graphql::{Name, Value as Gql};

use super::errors::{Code, error};

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

/// Any serialisable value as a `JSON` answer.
pub fn json<T: serde::Serialize>(v: &T) -> Option<FieldValue<'static>> {
    let json = serde_json::to_value(v).ok()?;
    Gql::from_json(json).ok().map(FieldValue::value)
}

pub fn enum_value(name: &str) -> Option<FieldValue<'static>> {
    Some(FieldValue::value(Gql::Enum(Name::new(name))))
}

/// An `ID` (the decimal id of a row) from argument `name`; BAD_USER_INPUT when it is not one.
pub fn id_argument(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<i64> {
    let value = ctx.args.try_get(name)?;
    numeric_id(value.as_value()).ok_or_else(|| error(Code::BadUserInput, format!("`{name}` is not an id")))
}

//! The KPI types: `Kpi` and `KpiGroup` (answered from the board's entries), the enums, and
//! `KpiInput`, which mirrors `KpiDefinition` field for field (so a definition's stored JSON and
//! a mutation's input read alike).

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, TypeRef,
};
use async_graphql::{Name, Value as Gql};

use super::read::{GroupOut, KpiOut};
use crate::api::graphql::live::schema::AS_OF;
use crate::api::graphql::output::{text, timestamptz as micros};
use crate::api::graphql::scalars::to_graphql;
use crate::kpi::{Aggregation, GroupValue, KpiValue, SourceKpi, SourceMeasure};
use crate::value::Value;

pub const KPI: &str = "Kpi";
pub const GROUP: &str = "KpiGroup";
pub const AGGREGATE: &str = "KpiAggregate";
pub const COMPARISON: &str = "KpiComparison";
pub const SOURCE: &str = "KpiSource";
pub const MEASURE: &str = "SourceMeasure";
pub const INPUT: &str = "KpiInput";
const VIEW_INPUT: &str = "KpiViewInput";
const WINDOW_INPUT: &str = "KpiWindowInput";

/// A field of `Kpi` read from its entry.
fn kpi_field(name: &str, ty: TypeRef, read: fn(&KpiOut) -> Option<FieldValue<'static>>) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move { Ok(read(ctx.parent_value.try_downcast_ref::<KpiOut>()?)) })
    })
}

/// The exact text of a value (int8 and numeric keep every digit), null for SQL NULL.
pub fn exact(value: &Value) -> Option<FieldValue<'static>> {
    (!value.is_null()).then(|| FieldValue::value(Gql::String(value.to_canonical_string())))
}

/// A value as a float, for charts: numbers only.
pub fn float(value: &Value) -> Option<FieldValue<'static>> {
    let f = match value {
        Value::Int2(v) => f64::from(*v),
        Value::Int4(v) => f64::from(*v),
        Value::Int8(v) => *v as f64,
        Value::Float4(v) => f64::from(*v),
        Value::Float8(v) => *v,
        Value::Numeric(text) => text.parse().ok()?,
        _ => return None,
    };
    async_graphql::Number::from_f64(f).map(|n| FieldValue::value(Gql::Number(n)))
}

pub fn kpi() -> Object {
    let s = TypeRef::STRING;
    Object::new(KPI)
        .description(
            "A KPI: an aggregate over a watched table, kept exact at every source transaction. `seq` grows by one \
             per change of its value.",
        )
        .field(kpi_field("id", TypeRef::named_nn(TypeRef::ID), |k| text(k.0.record.id.0.to_string())))
        .field(kpi_field("name", TypeRef::named_nn(s), |k| text(&k.0.record.definition.name)))
        .field(kpi_field("description", TypeRef::named(s), |k| {
            k.0.record.definition.description.clone().and_then(text)
        }))
        .field(
            kpi_field("table", TypeRef::named(s), |k| {
                k.0.record.builtin.is_none().then(|| text(&k.0.record.definition.table)).flatten()
            })
            .description("The table it aggregates; null for a built-in KPI."),
        )
        .field(
            kpi_field("aggregate", TypeRef::named(AGGREGATE), |k| {
                k.0.record
                    .builtin
                    .is_none()
                    .then(|| FieldValue::value(Gql::Enum(Name::new(k.0.record.definition.aggregate.name()))))
            })
            .description("What it computes; null for a built-in KPI."),
        )
        .field(
            kpi_field("source", TypeRef::named(SOURCE), |k| k.0.record.builtin.clone().map(FieldValue::owned_any))
                .description(
                    "For a built-in KPI, the source whose health it measures (sampled once a second; nobody defines, \
                 changes or deletes it); null for a defined KPI.",
                ),
        )
        .field(kpi_field("column", TypeRef::named(s), |k| k.0.record.definition.column.clone().and_then(text)))
        .field(kpi_field("groupBy", TypeRef::named_nn_list_nn(s), |k| {
            Some(FieldValue::list(k.0.record.definition.group_by.iter().map(|g| FieldValue::value(g.clone()))))
        }))
        .field(kpi_field("unit", TypeRef::named(s), |k| k.0.record.definition.unit.clone().and_then(text)))
        .field(
            kpi_field("definition", TypeRef::named_nn("JSON"), |k| {
                let json = match &k.0.record.builtin {
                    Some(b) => serde_json::json!({ "source": &*b.source, "measure": b.measure }),
                    None => serde_json::to_value(&k.0.record.definition).ok()?,
                };
                Gql::from_json(json).ok().map(FieldValue::value)
            })
            .description("The definition as stored (the shape of `KpiInput`); a built-in KPI's source and measure."),
        )
        .field(kpi_field("value", TypeRef::named(s), |k| k.single().and_then(exact)).description(
            "The value as exact text (integers and decimals keep every digit); null when grouped, not ready, or \
                 SQL NULL (a sum of no rows).",
        ))
        .field(kpi_field("valueFloat", TypeRef::named(TypeRef::FLOAT), |k| k.single().and_then(float)))
        .field(
            kpi_field("groups", TypeRef::named_nn_list_nn(GROUP), |k| {
                let groups: &[Arc<GroupValue>] = match &k.0.value {
                    KpiValue::Groups(groups) => groups,
                    KpiValue::NotReady(_) => &[],
                };
                let names = k.0.compiled.as_ref().map(|c| c.group_names.clone()).unwrap_or_default();
                let (kpi, comparison) = (k.0.record.id, k.0.record.definition.comparison);
                Some(FieldValue::list(groups.iter().map(|g| {
                    FieldValue::owned_any(GroupOut { names: names.clone(), group: g.clone(), kpi, comparison })
                })))
            })
            .description("One per group (an ungrouped KPI has one, with the key `{}`)."),
        )
        .field(kpi_field("ready", TypeRef::named_nn(TypeRef::BOOLEAN), |k| {
            Some(FieldValue::value(matches!(k.0.value, KpiValue::Groups(_))))
        }))
        .field(kpi_field("notReadyReason", TypeRef::named(s), |k| match &k.0.value {
            KpiValue::NotReady(reason) => text(reason),
            KpiValue::Groups(_) => None,
        }))
        .field(kpi_field("seq", TypeRef::named_nn(TypeRef::INT), |k| {
            Some(FieldValue::value(i64::try_from(k.0.seq).unwrap_or(i64::MAX)))
        }))
        .field(kpi_field("asOf", TypeRef::named(AS_OF), |k| Some(FieldValue::owned_any(k.0.as_of))))
        .field(kpi_field("createdBy", TypeRef::named(s), |k| k.0.record.created_by.clone().and_then(text)))
        .field(kpi_field("updatedBy", TypeRef::named(s), |k| k.0.record.updated_by.clone().and_then(text)))
        .field(kpi_field("createdAt", TypeRef::named_nn("Timestamptz"), |k| micros(k.0.record.created_at)))
        .field(kpi_field("updatedAt", TypeRef::named_nn("Timestamptz"), |k| micros(k.0.record.updated_at)))
}

/// A built-in KPI's source and measure.
pub fn source() -> Object {
    let read = |name: &str, ty: TypeRef, f: fn(&SourceKpi) -> FieldValue<'static>| {
        Field::new(name, ty, move |ctx| {
            FieldFuture::new(async move { Ok(Some(f(ctx.parent_value.try_downcast_ref::<SourceKpi>()?))) })
        })
    };
    Object::new(SOURCE)
        .description("What a built-in KPI measures: one figure of one source's health.")
        .field(read("source", TypeRef::named_nn(TypeRef::STRING), |b| FieldValue::value(b.source.to_string())))
        .field(read("measure", TypeRef::named_nn(MEASURE), |b| {
            FieldValue::value(Gql::Enum(Name::new(b.measure.name())))
        }))
}

fn group_field(name: &str, ty: TypeRef, read: fn(&GroupOut) -> Option<FieldValue<'static>>) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move { Ok(read(ctx.parent_value.try_downcast_ref::<GroupOut>()?)) })
    })
}

pub fn group() -> Object {
    Object::new(GROUP)
        .description("One group of a KPI.")
        .field(
            group_field("key", TypeRef::named_nn("JSON"), |g| {
                let mut key = async_graphql::indexmap::IndexMap::new();
                for (name, value) in g.names.iter().zip(&g.group.key) {
                    key.insert(Name::new(name), to_graphql(value));
                }
                Some(FieldValue::value(Gql::Object(key)))
            })
            .description("The group-by columns' values by name, in their canonical JSON form."),
        )
        .field(group_field("value", TypeRef::named(TypeRef::STRING), |g| exact(&g.group.value)))
        .field(group_field("valueFloat", TypeRef::named(TypeRef::FLOAT), |g| float(&g.group.value)))
}

pub fn enums() -> Vec<Enum> {
    let mut aggregate = Enum::new(AGGREGATE).description("What a KPI computes.");
    for a in Aggregation::ALL {
        aggregate = aggregate.item(EnumItem::new(a.name()));
    }
    let comparison = Enum::new(COMPARISON)
        .description("The earlier value a KPI is compared with.")
        .item(EnumItem::new("DAY_BEFORE"))
        .item(EnumItem::new("WEEK_BEFORE"));
    let mut measure = Enum::new(MEASURE).description("A figure of a source's health, kept as a built-in KPI.");
    for m in SourceMeasure::ALL {
        measure = measure.item(EnumItem::new(m.name()).description(m.description()));
    }
    vec![aggregate, comparison, measure]
}

pub fn inputs() -> Vec<InputObject> {
    let s = TypeRef::STRING;
    let input = InputObject::new(INPUT)
        .description("A KPI definition. Checked against the table and the policy before anything is stored.")
        .field(InputValue::new("name", TypeRef::named_nn(s)).description("Unique; at most 120 characters."))
        .field(InputValue::new("description", TypeRef::named(s)))
        .field(InputValue::new("table", TypeRef::named_nn(s)).description("The table's GraphQL name (`orders`)."))
        .field(InputValue::new("aggregate", TypeRef::named_nn(AGGREGATE)))
        .field(
            InputValue::new("column", TypeRef::named(s))
                .description("The column aggregated (GraphQL name); none for COUNT of rows."),
        )
        .field(InputValue::new("expression", TypeRef::named("JSON")).description(
            "Instead of a column: `{\"age\": \"createdAt\"}` or `{\"difference\": {\"later\": …, \"earlier\": …}}`.",
        ))
        .field(
            InputValue::new("filter", TypeRef::named("JSON"))
                .description("A row filter in the language of `where` (`{\"status\": {\"eq\": \"paid\"}}`)."),
        )
        .field(InputValue::new("groupBy", TypeRef::named_nn_list(s)))
        .field(InputValue::new("window", TypeRef::named(WINDOW_INPUT)))
        .field(InputValue::new("comparison", TypeRef::named(COMPARISON)))
        .field(
            InputValue::new("view", TypeRef::named(VIEW_INPUT))
                .description("Count only what this role, with these claims, may read."),
        )
        .field(InputValue::new("unit", TypeRef::named(s)));
    let view = InputObject::new(VIEW_INPUT)
        .field(InputValue::new("role", TypeRef::named(s)))
        .field(InputValue::new("claims", TypeRef::named("JSON")).description("Claims as a token would carry them."));
    let window = InputObject::new(WINDOW_INPUT)
        .field(InputValue::new("column", TypeRef::named_nn(s)).description("A timestamp column."))
        .field(InputValue::new("last", TypeRef::named(s)).description("An ISO 8601 duration (`PT15M`)."))
        .field(InputValue::new("today", TypeRef::named(TypeRef::BOOLEAN)));
    vec![input, view, window]
}

//! The `Subscription` root of a role's schema: every query field again (full results, sent
//! again whenever they change), and `…Patches` for the incremental form (`reset`, then
//! `patch { upserts, removedKeys }`).
//!
//! async-graphql validates subscription documents against these fields and calls their
//! resolvers once, to compile the live query; the updates themselves are written by the live
//! hub, not by async-graphql, which is why the update types' own resolvers never run.

use std::sync::Arc;

use async_graphql::dynamic::{
    Field, FieldFuture, InputValue, Object, Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef,
};

use super::super::errors::{Code, error};
use super::super::scalars::output_type;
use super::super::types;
use super::super::view::TableView;
use super::compile;

pub const AS_OF: &str = "AsOf";

/// Type names of a table's incremental form.
pub struct Names {
    pub update: String,
    pub patch: String,
    pub upsert: String,
    pub key: String,
}

impl Names {
    pub fn of(view: &TableView) -> Names {
        let t = &view.type_name;
        Names {
            update: format!("{t}LiveUpdate"),
            patch: format!("{t}Patch"),
            upsert: format!("{t}Upsert"),
            key: format!("{t}Key"),
        }
    }
}

/// A field whose value only the live runtime writes.
pub(in crate::api::graphql) fn written_by_hub(name: &str, ty: TypeRef) -> Field {
    Field::new(name, ty, |_| {
        FieldFuture::new(async {
            Err::<Option<async_graphql::dynamic::FieldValue>, _>(error(
                Code::Internal,
                "live values are written by the live runtime",
            ))
        })
    })
}

/// A field of `AsOf`: written by the live runtime in live results, read from a
/// [`crate::as_of::AsOf`] where a resolver answers one (a KPI's `asOf`).
fn as_of_field(name: &str, ty: TypeRef, read: fn(&crate::as_of::AsOf) -> Option<String>) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let Some(as_of) = ctx.parent_value.downcast_ref::<crate::as_of::AsOf>() else {
                return Err(error(Code::Internal, "live values are written by the live runtime"));
            };
            Ok(read(as_of).map(async_graphql::dynamic::FieldValue::value))
        })
    })
}

/// The `AsOf` object.
pub fn as_of() -> Object {
    Object::new(AS_OF)
        .description("Where a live result stands in the source's history.")
        .field(as_of_field("position", TypeRef::named_nn(TypeRef::STRING), |a| Some(a.position.to_string())).description(
            "The source position of the last transaction in the result (`X/Y`, the high and low 32 bits in hex: a PostgreSQL LSN, or a MariaDB binlog file number and offset): positions only grow per source.",
        ))
        .field(
            as_of_field("commitTs", TypeRef::named("Timestamptz"), |a| {
                a.commit_ts.map(|us| crate::value::Value::TimestampTz(us).to_canonical_string())
            })
            .description("When that transaction committed at the source (null before the first one seen)."),
        )
}

/// The incremental form's types for one table, when its key is visible (removals are told by
/// key).
pub fn patch_types(view: &TableView) -> Option<Vec<Object>> {
    let key_object = key_object(view)?;
    let names = Names::of(view);
    let upsert = Object::new(&names.upsert)
        .description("A row that entered the result or changed, and its index in the new result.")
        .field(written_by_hub("index", TypeRef::named_nn(TypeRef::INT)))
        .field(written_by_hub("row", TypeRef::named_nn(&view.type_name)));
    let patch = Object::new(&names.patch)
        .description(
            "What changed since the previous update: drop the rows whose keys are in `removedKeys` or `upserts`, \
             then insert each upsert at its `index`, lowest index first.",
        )
        .field(written_by_hub("upserts", TypeRef::named_nn_list_nn(&names.upsert)))
        .field(written_by_hub("removedKeys", TypeRef::named_nn_list_nn(&names.key)));
    let update = Object::new(&names.update)
        .description(
            "One update of an incremental live result: the first (and any after a table reload or a slow \
             connection) has `reset`, the whole result; the others have `patch`. `seq` grows by one per update of \
             this result, so a gap means an update was missed; the server then sends a reset instead.",
        )
        .field(written_by_hub("seq", TypeRef::named_nn(TypeRef::INT)))
        .field(written_by_hub("asOf", TypeRef::named_nn(AS_OF)))
        .field(written_by_hub("reset", TypeRef::named_nn_list(&view.type_name)))
        .field(written_by_hub("patch", TypeRef::named(&names.patch)));
    Some(vec![key_object, upsert, patch, update])
}

/// The table's key object (`OrdersKey`), when its key is visible.
pub fn key_object(view: &TableView) -> Option<Object> {
    let key = view.key_columns()?;
    let names = Names::of(view);
    let mut key_object = Object::new(&names.key).description(format!("The primary key of a `{}` row.", view.field));
    for column in key {
        key_object = key_object.field(written_by_hub(&column.name, output_type(&column.ty, false)));
    }
    Some(key_object)
}

/// Adds the live fields of one table to the subscription root.
pub fn fields(mut root: Subscription, view: &Arc<TableView>) -> Subscription {
    let ops = view.operations();
    let where_arg = || InputValue::new("where", TypeRef::named(types::bool_exp_name(view)));
    let has_order = view.columns.iter().any(|c| c.can.ordering);
    let page_args = |mut field: SubscriptionField| {
        field = field.argument(where_arg());
        if has_order {
            field = field.argument(InputValue::new("orderBy", TypeRef::named_nn_list(types::order_by_name(view))));
        }
        field
            .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT)))
            .argument(InputValue::new("offset", TypeRef::named(TypeRef::INT)))
    };
    if ops.rows {
        let v = view.clone();
        let field = SubscriptionField::new(&view.field, TypeRef::named_nn_list_nn(&view.type_name), move |ctx| {
            let v = v.clone();
            SubscriptionFieldFuture::new(async move { compile::rows(&v, &ctx, compile::Form::Full) })
        })
        .description(format!(
            "`{}` as a live query: the whole result now, and again after each source transaction that changes it.",
            view.field
        ));
        root = root.field(page_args(field));
        if view.key_columns().is_some() {
            let v = view.clone();
            let field = SubscriptionField::new(
                format!("{}Patches", view.field),
                TypeRef::named_nn(Names::of(view).update),
                move |ctx| {
                    let v = v.clone();
                    SubscriptionFieldFuture::new(async move { compile::rows(&v, &ctx, compile::Form::Patches) })
                },
            )
            .description(format!(
                "`{}` as an incremental live query: a `reset` with the whole result, then a `patch` per source \
                 transaction that changes it.",
                view.field
            ));
            root = root.field(page_args(field));
        }
    }
    if ops.by_key
        && let Some(key) = view.key_columns()
    {
        let v = view.clone();
        let mut field =
            SubscriptionField::new(format!("{}ByKey", view.field), TypeRef::named(&view.type_name), move |ctx| {
                let v = v.clone();
                SubscriptionFieldFuture::new(async move { compile::by_key(&v, &ctx) })
            })
            .description("The row with this key (or null), again each time it changes.");
        for column in key {
            field = field.argument(InputValue::new(&column.name, output_type(&column.ty, false)));
        }
        root = root.field(field);
    }
    if ops.aggregate {
        let v = view.clone();
        let mut field = SubscriptionField::new(
            format!("{}Aggregate", view.field),
            TypeRef::named_nn_list_nn(types::group_name(view)),
            move |ctx| {
                let v = v.clone();
                SubscriptionFieldFuture::new(async move { compile::aggregate(&v, &ctx) })
            },
        )
        .description("The aggregate groups, again after each source transaction that changes them.")
        .argument(where_arg());
        if types::column_enum(view).is_some() {
            field = field.argument(InputValue::new("groupBy", TypeRef::named_nn_list(types::column_enum_name(view))));
        }
        root = root.field(field);
    }
    root
}

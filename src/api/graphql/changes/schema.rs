//! The change-stream field of a table and its types.
//!
//! A table gets `…Changes` when its role may use the `changes` operation and sees its whole
//! primary key (a row that leaves is told by key).

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, InputValue, Object, Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef,
};

use super::super::live::schema::Names;
use super::super::types;
use super::super::view::TableView;
use super::compile;

pub const KIND: &str = "ChangeKind";
pub const OP: &str = "ChangeOp";

/// Type names of a table's change stream.
pub struct ChangeNames {
    pub batch: String,
    pub change: String,
}

impl ChangeNames {
    pub fn of(view: &TableView) -> ChangeNames {
        ChangeNames { batch: format!("{}ChangeBatch", view.type_name), change: format!("{}Change", view.type_name) }
    }
}

/// Whether the table has a change stream for this role.
pub fn offered(view: &TableView) -> bool {
    view.operations().changes && view.key_columns().is_some()
}

/// A field the change stream writes (like the live hub's, never resolved by async-graphql).
fn written(name: &str, ty: TypeRef) -> async_graphql::dynamic::Field {
    super::super::live::schema::written_by_hub(name, ty)
}

/// The table's change-stream types (its key object only when `with_key`: the incremental live
/// form may have registered it already).
pub fn types(view: &TableView, with_key: bool) -> Vec<Object> {
    let names = ChangeNames::of(view);
    let key = Names::of(view).key;
    let change = Object::new(&names.change)
        .description(
            "One row change as this subscriber sees it. `ENTER`: the row now matches the subscription's `where` and \
             the role's filter and did not before (`after`); `UPDATE`: it matched before and after (`before` and \
             `after`); `LEAVE`: it matched before and no longer does (`key` only). A truncate is one `LEAVE` with \
             `op: TRUNCATE` and no key: every row left. Rows the subscriber never saw are never mentioned.",
        )
        .field(written("kind", TypeRef::named_nn(KIND)))
        .field(written("op", TypeRef::named_nn(OP)))
        .field(written("key", TypeRef::named(&key)))
        .field(written("before", TypeRef::named(&view.type_name)))
        .field(written("after", TypeRef::named(&view.type_name)));
    let batch = Object::new(&names.batch)
        .description(
            "The changes of one source transaction, in commit order. Keep `cursor`: subscribing again with \
             `after: cursor` sends exactly what came after it, or the error `CURSOR_EXPIRED` when that is no longer \
             possible (read the table again, then subscribe without `after`). The first message of a subscription \
             without `after` has no events: it is the cursor to resume from.",
        )
        .field(written("cursor", TypeRef::named_nn(TypeRef::STRING)))
        .field(written("position", TypeRef::named_nn(TypeRef::STRING)).description(
            "The transaction's source position (`X/Y`: a PostgreSQL LSN, or a MariaDB binlog file number and offset).",
        ))
        .field(written("commitTs", TypeRef::named("Timestamptz")).description("When it committed at the source."))
        .field(written("xid", TypeRef::named("BigInt")).description("The source's transaction id."))
        .field(written("events", TypeRef::named_nn_list_nn(&names.change)));
    let mut out = vec![change, batch];
    if with_key {
        out.push(super::super::live::schema::key_object(view).expect("a change stream's table has a visible key"));
    }
    out
}

/// `ChangeKind` and `ChangeOp`, shared by every table.
pub fn enums() -> Vec<Enum> {
    vec![
        Enum::new(KIND)
            .description("A row change relative to a subscription's filter.")
            .item(EnumItem::new("ENTER").description("The row matches now and did not before."))
            .item(EnumItem::new("UPDATE").description("The row matched before and matches now."))
            .item(EnumItem::new("LEAVE").description("The row matched before and no longer does (or was deleted).")),
        Enum::new(OP)
            .description("What happened at the source.")
            .item(EnumItem::new("INSERT"))
            .item(EnumItem::new("UPDATE"))
            .item(EnumItem::new("DELETE"))
            .item(EnumItem::new("TRUNCATE")),
    ]
}

/// Adds the table's `…Changes` field to the subscription root.
pub fn field(root: Subscription, view: &Arc<TableView>) -> Subscription {
    let v = view.clone();
    let field = SubscriptionField::new(
        format!("{}Changes", view.field),
        TypeRef::named_nn(ChangeNames::of(view).batch),
        move |ctx| {
            let v = v.clone();
            SubscriptionFieldFuture::new(async move { compile::changes(&v, &ctx) })
        },
    )
    .description(format!(
        "Every committed change of `{}` rows this subscription may see, one message per source transaction, \
         resumable from a message's `cursor` (`after`).",
        view.field
    ))
    .argument(InputValue::new("where", TypeRef::named(types::bool_exp_name(view))))
    .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)).description(
        "The `cursor` of the last message you have: the stream goes on from there, or fails with CURSOR_EXPIRED.",
    ));
    root.field(field)
}

//! The GraphQL types generated for one table view: the row object, the `where` input
//! (`…BoolExp`), `orderBy` input, the column enum for `groupBy`, and the aggregate group.
//!
//! Only visible columns appear anywhere, so a hidden column is neither readable nor usable in a
//! filter, an ordering, a grouping or an aggregate — the validator refuses it before any
//! resolver runs, and introspection does not show it.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, TypeRef,
};

use super::aggregates::{GROUP_FUNCTIONS, GroupOut, measure_fields};
use super::scalars::{field_value, output_type, scalar_name};
use super::view::{FieldColumn, TableView};
use crate::change::Row;
use crate::registry::ColumnType;

/// The ordering directions (PostgreSQL's defaults: ascending puts NULLs last, descending first).
pub const ORDER_DIRECTION: &str = "OrderDirection";
pub const DIRECTIONS: [(&str, bool, bool); 6] = [
    ("ASC", false, false),
    ("ASC_NULLS_FIRST", false, true),
    ("ASC_NULLS_LAST", false, false),
    ("DESC", true, true),
    ("DESC_NULLS_FIRST", true, true),
    ("DESC_NULLS_LAST", true, false),
];

/// Shared types that views refer to; registered once, and only when used.
#[derive(Default)]
pub struct Shared {
    pub scalars: BTreeSet<&'static str>,
    /// Comparison inputs by name, with the column type they were made for.
    pub comparisons: std::collections::BTreeMap<String, ColumnType>,
    pub order_direction: bool,
}

pub fn bool_exp_name(view: &TableView) -> String {
    format!("{}BoolExp", view.type_name)
}

pub fn order_by_name(view: &TableView) -> String {
    format!("{}OrderBy", view.type_name)
}

pub fn column_enum_name(view: &TableView) -> String {
    format!("{}Column", view.type_name)
}

pub fn group_name(view: &TableView) -> String {
    format!("{}AggregateGroup", view.type_name)
}

/// The name of the comparison input for a column type: one per scalar, and one `isNull`-only
/// input for types without comparisons (JSON, arrays, unknown types).
fn comparison_name(column: &FieldColumn) -> String {
    let can = column.can;
    if !(can.equality || can.ordering || can.like) || matches!(column.ty, ColumnType::Array(_)) {
        return "NullComparisonExp".into();
    }
    format!("{}ComparisonExp", scalar_name(&column.ty))
}

/// The row object: one field per visible column, read from the row the parent resolved.
pub fn row_object(view: &TableView, shared: &mut Shared) -> Object {
    let mut object = Object::new(&view.type_name).description(format!(
        "A row of `{}` ({}.{}).",
        view.schema.spec.name, view.schema.spec.schema, view.schema.spec.table
    ));
    for column in &view.columns {
        shared.scalars.insert(scalar_name(&column.ty));
        let position = column.position;
        object = object.field(Field::new(&column.name, output_type(&column.ty, column.nullable), move |ctx| {
            FieldFuture::new(async move {
                let row = ctx.parent_value.try_downcast_ref::<Row>()?;
                Ok(field_value(row.get(position)))
            })
        }));
    }
    object
}

/// `…BoolExp`: `and`, `or`, `not` and one comparison per visible column.
pub fn bool_exp(view: &TableView, shared: &mut Shared) -> InputObject {
    let name = bool_exp_name(view);
    let mut input = InputObject::new(&name)
        .description(format!("A condition on `{}` rows; the keys of one object must all hold.", view.field))
        .field(InputValue::new("and", TypeRef::named_nn_list(&name)))
        .field(InputValue::new("or", TypeRef::named_nn_list(&name)))
        .field(InputValue::new("not", TypeRef::named(&name)));
    for column in &view.columns {
        let cmp = comparison_name(column);
        shared.comparisons.entry(cmp.clone()).or_insert_with(|| column.ty.clone());
        input = input.field(InputValue::new(&column.name, TypeRef::named(cmp)));
    }
    input
}

/// The comparison input for one column type, with only the operators the type supports.
pub fn comparison(name: &str, ty: &ColumnType, shared: &mut Shared) -> InputObject {
    let mut input = InputObject::new(name);
    if name == "NullComparisonExp" {
        return input
            .description("Only NULL tests: these values have no comparison.")
            .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)));
    }
    let scalar = scalar_name(ty);
    shared.scalars.insert(scalar);
    let can = crate::query::capabilities(ty);
    if can.equality {
        input = input
            .field(InputValue::new("eq", TypeRef::named(scalar)))
            .field(InputValue::new("neq", TypeRef::named(scalar)))
            .field(InputValue::new("in", TypeRef::named_nn_list(scalar)))
            .field(InputValue::new("nin", TypeRef::named_nn_list(scalar)));
    }
    if can.ordering {
        for op in ["gt", "gte", "lt", "lte"] {
            input = input.field(InputValue::new(op, TypeRef::named(scalar)));
        }
    }
    // `lt: { column: … }` cannot be typed where `lt` takes the scalar, so the other operands
    // get companion fields (Hasura spells them `_clt`); the policy and JSON filters accept
    // these spellings too.
    let comparisons: &[&str] = match (can.equality, can.ordering) {
        (true, true) => &["eq", "neq", "gt", "gte", "lt", "lte"],
        (true, false) => &["eq", "neq"],
        _ => &[],
    };
    for op in comparisons {
        input = input.field(
            InputValue::new(format!("{op}Column"), TypeRef::named(TypeRef::STRING))
                .description(format!("`{op}` another column of the same row, by name (a comparable type)")),
        );
    }
    if crate::query::TimeKind::of(ty).is_some() {
        for op in comparisons {
            input =
                input.field(InputValue::new(format!("{op}Ago"), TypeRef::named(TypeRef::STRING)).description(format!(
                    "`{op}` the instant this long before now, an ISO 8601 duration (\"PT10M\", \"P1DT12H\", \"P2W\"; \
                     no months or years); re-evaluated as time passes, also in live queries"
                )));
        }
    }
    if can.like {
        input = input
            .field(
                InputValue::new("like", TypeRef::named(TypeRef::STRING))
                    .description("SQL LIKE: `%` any run, `_` one character, `\\` escapes."),
            )
            .field(InputValue::new("ilike", TypeRef::named(TypeRef::STRING)).description("LIKE ignoring ASCII case."));
    }
    input
        .description(format!("Comparisons of {scalar} values (SQL semantics: a NULL value matches none of them)."))
        .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)))
}

/// `…OrderBy`: one direction per orderable visible column; `None` when there is none.
pub fn order_by(view: &TableView, shared: &mut Shared) -> Option<InputObject> {
    let orderable: Vec<&FieldColumn> = view.columns.iter().filter(|c| c.can.ordering).collect();
    if orderable.is_empty() {
        return None;
    }
    shared.order_direction = true;
    let mut input = InputObject::new(order_by_name(view))
        .description("Sort keys, applied in the order given; ties are broken by primary key.");
    for column in orderable {
        input = input.field(InputValue::new(&column.name, TypeRef::named(ORDER_DIRECTION)));
    }
    Some(input)
}

pub fn order_direction() -> Enum {
    Enum::new(ORDER_DIRECTION)
        .description("ASC puts NULLs last and DESC puts them first, as PostgreSQL does.")
        .items(DIRECTIONS.iter().map(|(name, _, _)| EnumItem::new(*name)))
}

/// Columns a group can be keyed by (those with equality).
pub fn groupable(view: &TableView) -> Vec<&FieldColumn> {
    view.columns.iter().filter(|c| c.can.equality).collect()
}

/// `…Column`: the groupable columns, for `groupBy`; `None` when there is none.
pub fn column_enum(view: &TableView) -> Option<Enum> {
    let columns = groupable(view);
    if columns.is_empty() {
        return None;
    }
    Some(
        Enum::new(column_enum_name(view))
            .description(format!("Columns of `{}` to group by.", view.field))
            .items(columns.iter().map(|c| EnumItem::new(&c.enum_value))),
    )
}

/// The aggregate group object and its sub-objects (`…GroupKey`, `…SumFields`, …).
pub fn aggregate_types(view: &Arc<TableView>, shared: &mut Shared) -> Vec<Object> {
    let mut out = Vec::new();
    let mut group = Object::new(group_name(view))
        .description("One group: its key (with `groupBy`), `count(*)` and the measures of its rows.")
        .field(Field::new("count", TypeRef::named_nn(TypeRef::INT), |ctx| {
            FieldFuture::new(async move {
                let g = ctx.parent_value.try_downcast_ref::<GroupOut>()?;
                Ok(Some(FieldValue::value(i64::try_from(g.result.count).unwrap_or(i64::MAX))))
            })
        }));
    let key_columns = groupable(view);
    if !key_columns.is_empty() {
        let key_name = format!("{}GroupKey", view.type_name);
        let mut key =
            Object::new(&key_name).description("The group's values of the `groupBy` columns (others are null).");
        for column in key_columns {
            let position = column.position;
            key = key.field(Field::new(&column.name, output_type(&column.ty, true), move |ctx| {
                FieldFuture::new(async move {
                    let g = ctx.parent_value.try_downcast_ref::<GroupOut>()?;
                    Ok(field_value(g.key_value(position)))
                })
            }));
        }
        out.push(key);
        group = group.field(Field::new("key", TypeRef::named_nn(&key_name), |ctx| {
            FieldFuture::new(async move {
                let g = ctx.parent_value.try_downcast_ref::<GroupOut>()?;
                Ok(Some(FieldValue::borrowed_any(g)))
            })
        }));
    }
    for f in GROUP_FUNCTIONS {
        if let Some((field, object)) = measure_fields(view, f, shared) {
            group = group.field(field);
            out.push(object);
        }
    }
    out.push(group);
    out
}

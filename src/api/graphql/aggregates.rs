//! `…Aggregate`: the aggregate group types and the answer to an aggregate query, computed by
//! the one aggregate engine (`crate::aggregate`) that live queries and KPIs reuse.
//!
//! Only the measures the query selects are computed: a `sum { total }` does not pay for every
//! other column's min and max.
//!
//! Each function is a field of the group named as [`AggFn::name`] says (`sum`, `countDistinct`,
//! `p90`), holding one field per visible column it applies to.

use async_graphql::Lookahead;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, Object, TypeRef};

use super::errors::{Code, error};
use super::scalars::{field_value, output_type};
use super::types::Shared;
use super::view::TableView;
use crate::aggregate::{AggFn, AggregateSpec, GroupResult, Input, result_type};
use crate::value::Value;

/// One group of an answer, as the group's fields read it.
#[derive(Debug)]
pub struct GroupOut {
    pub result: GroupResult,
    pub group_by: Vec<usize>,
    pub measures: Vec<(AggFn, Input)>,
}

impl GroupOut {
    /// The group's value of a column, when the column is one of the `groupBy` columns.
    pub fn key_value(&self, position: usize) -> Option<&Value> {
        let i = self.group_by.iter().position(|&p| p == position)?;
        self.result.key.get(i)
    }

    fn measure(&self, f: AggFn, position: usize) -> Option<&Value> {
        let i = self.measures.iter().position(|(g, input)| *g == f && *input == Input::Column(position))?;
        self.result.values.get(i)
    }
}

/// The functions a group offers as fields (`count(column)` is not one: `count` is `count(*)`).
pub const GROUP_FUNCTIONS: [AggFn; 9] = [
    AggFn::Sum,
    AggFn::Avg,
    AggFn::Min,
    AggFn::Max,
    AggFn::CountDistinct,
    AggFn::P50,
    AggFn::P90,
    AggFn::P95,
    AggFn::P99,
];

pub(super) fn label(f: AggFn) -> &'static str {
    match f {
        AggFn::Count => "Count",
        AggFn::Sum => "Sum",
        AggFn::Avg => "Avg",
        AggFn::Min => "Min",
        AggFn::Max => "Max",
        AggFn::CountDistinct => "CountDistinct",
        AggFn::P50 => "P50",
        AggFn::P90 => "P90",
        AggFn::P95 => "P95",
        AggFn::P99 => "P99",
    }
}

/// What a function's fields hold, for the schema's descriptions.
fn describe(f: AggFn) -> String {
    match f {
        AggFn::CountDistinct => "`count(DISTINCT column)` over the group's rows (NULLs not counted).".into(),
        AggFn::P50 | AggFn::P90 | AggFn::P95 | AggFn::P99 => format!(
            "`percentile_disc({}) WITHIN GROUP (ORDER BY column)` over the group's rows: one of the values, of the column's type (null when they hold no value).",
            f.percentile().unwrap_or_default()
        ),
        _ => format!("`{}` of each column over the group's rows (null when they hold no value).", f.name()),
    }
}

/// The columns `f` applies to, with its result type for each.
fn applicable(view: &TableView, f: AggFn) -> Vec<(&super::view::FieldColumn, crate::registry::ColumnType)> {
    view.columns.iter().filter_map(|c| result_type(f, &c.ty).map(|t| (c, t))).collect()
}

/// The group's `sum`/`avg`/`min`/`max` field and its object type (`OrdersSumFields`), when `f`
/// applies to at least one visible column. Result types are PostgreSQL's: `sum` of int4 is a
/// `BigInt`, of int8 and numeric a `Numeric`, `avg` of integers a `Numeric`.
pub fn measure_fields(view: &TableView, f: AggFn, shared: &mut Shared) -> Option<(Field, Object)> {
    let columns = applicable(view, f);
    if columns.is_empty() {
        return None;
    }
    let name = format!("{}{}Fields", view.type_name, label(f));
    let mut object = Object::new(&name).description(describe(f));
    for (column, result) in columns {
        shared.scalars.insert(super::scalars::scalar_name(&result));
        let position = column.position;
        object = object.field(Field::new(&column.name, output_type(&result, true), move |ctx| {
            FieldFuture::new(async move {
                let g = ctx.parent_value.try_downcast_ref::<GroupOut>()?;
                // Every selected measure was computed (see `spec`); a miss is a bug, not a null.
                let v = g.measure(f, position).ok_or_else(|| error(Code::Internal, "a measure was not computed"))?;
                Ok(field_value(Some(v)))
            })
        }));
    }
    let field = Field::new(f.name(), TypeRef::named_nn(&name), |ctx| {
        FieldFuture::new(async move {
            let g = ctx.parent_value.try_downcast_ref::<GroupOut>()?;
            Ok(Some(FieldValue::borrowed_any(g)))
        })
    });
    Some((field, object))
}

/// The measures the query selects, in a stable order.
pub fn spec(view: &TableView, group_by: Vec<usize>, selection: &Lookahead<'_>) -> AggregateSpec {
    let mut measures = Vec::new();
    for f in GROUP_FUNCTIONS {
        let selected = selection.field(f.name());
        if !selected.exists() {
            continue;
        }
        for (column, _) in applicable(view, f) {
            if selected.field(&column.name).exists() {
                measures.push((f, Input::Column(column.position)));
            }
        }
    }
    AggregateSpec { group_by, measures }
}

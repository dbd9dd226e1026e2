//! Binding a [`KpiDefinition`] to its table: names to column positions, the filter and the
//! view's row filter to one engine [`Filter`], the aggregate to the engine's spec.
//!
//! Everything a user can get wrong is found here, with the field at fault, before anything is
//! stored: an unknown table or column, an aggregate the column's type has no meaning for, a
//! filter that does not parse or fit, a window on a column that is not a timestamp, a view
//! whose role or claims do not work.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Map;

use super::definition::{Aggregation, DefinitionError, Expression, KpiDefinition, check_name};
use crate::aggregate::{AggFn, Aggregate, AggregateSpec, Input};
use crate::policy::Policy;
use crate::policy::compile::{Binding, ClaimValues, compile};
use crate::policy::condition::{Claims, Condition};
use crate::policy::names::column_fields;
use crate::query::Filter;
use crate::registry::{ColumnType, TableId, TableSchema};

/// Where rows sit in time, and how far back a windowed KPI looks.
#[derive(Clone, Debug, PartialEq)]
pub enum Span {
    /// The last so many microseconds.
    Last(i64),
    /// Since midnight in the configured time zone.
    Today,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// The timestamp column.
    pub column: usize,
    pub span: Span,
}

/// What the value of each group is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// `count(*)`: the group's row count.
    Rows,
    /// The one measure of the spec.
    Measure,
}

/// A KPI bound to one version of its table.
#[derive(Clone, Debug)]
pub struct CompiledKpi {
    pub table: TableId,
    pub schema: Arc<TableSchema>,
    /// The definition's filter AND the view's row filter.
    pub filter: Filter,
    pub spec: AggregateSpec,
    pub reading: Reading,
    pub window: Option<Window>,
    /// Every column the KPI reads (measure, filter, group-by, window): a reader must be able
    /// to see each of them.
    pub reads: Vec<usize>,
    /// The GraphQL names of the group-by columns, for answers.
    pub group_names: Vec<String>,
    /// Its value moves as time passes with no change (an age): it is read again each second.
    pub time_dependent: bool,
}

/// Binds `def` to the table it names among `tables` (the replica's current schemas).
pub fn compile_kpi(
    def: &KpiDefinition,
    tables: &[Arc<TableSchema>],
    policy: &Policy,
) -> Result<CompiledKpi, DefinitionError> {
    check_name("name", &def.name)?;
    let schema = tables
        .iter()
        .find(|t| crate::policy::names::root_field_name(&t.spec.name) == def.table)
        .ok_or_else(|| {
            let known: Vec<String> =
                tables.iter().map(|t| crate::policy::names::root_field_name(&t.spec.name)).collect();
            DefinitionError::new("table", format!("unknown table `{}` (tables: {})", def.table, known.join(", ")))
        })?
        .clone();
    let fields: HashMap<String, usize> = column_fields(&schema).into_iter().map(|(i, n)| (n, i)).collect();
    let column = |field: &str, name: &str| -> Result<usize, DefinitionError> {
        fields.get(name).copied().ok_or_else(|| {
            let mut known: Vec<&str> = fields.keys().map(String::as_str).collect();
            known.sort_unstable();
            DefinitionError::new(field, format!("unknown column `{name}` (columns: {})", known.join(", ")))
        })
    };
    let mut reads = Vec::new();

    // The measure.
    let (measure, reading) = match (&def.column, &def.expression, def.aggregate) {
        (Some(_), Some(_), _) => {
            return Err(DefinitionError::new("expression", "give either `column` or `expression`, not both"));
        }
        (None, None, Aggregation::Count) => (None, Reading::Rows),
        (None, None, other) => {
            return Err(DefinitionError::new(
                "column",
                format!("{} needs a column (or an expression) to aggregate", other.name()),
            ));
        }
        (Some(name), None, aggregation) => {
            let i = column("column", name)?;
            reads.push(i);
            (Some((function(aggregation), Input::Column(i))), Reading::Measure)
        }
        (None, Some(expression), aggregation) => {
            let input = match expression {
                Expression::Age(c) => {
                    let i = column("expression.age", c)?;
                    reads.push(i);
                    Input::Age(i)
                }
                Expression::Difference { later, earlier } => {
                    let l = column("expression.difference.later", later)?;
                    let e = column("expression.difference.earlier", earlier)?;
                    reads.extend([l, e]);
                    Input::Diff { later: l, earlier: e }
                }
            };
            (Some((function(aggregation), input)), Reading::Measure)
        }
    };

    // Group-by.
    let mut group_by = Vec::new();
    for (n, name) in def.group_by.iter().enumerate() {
        let i = column(&format!("groupBy[{n}]"), name)?;
        if group_by.contains(&i) {
            return Err(DefinitionError::new(format!("groupBy[{n}]"), format!("`{name}` is listed twice")));
        }
        group_by.push(i);
        reads.push(i);
    }
    let field = match (&measure, &def.expression) {
        (None, _) => "groupBy",
        (Some(_), Some(_)) => "expression",
        (Some(_), None) => "column",
    };
    let spec = AggregateSpec { group_by, measures: measure.into_iter().collect() };
    let aggregate = Aggregate::new(spec.clone(), &schema).map_err(|e| DefinitionError::new(field, e.to_string()))?;
    let time_dependent = aggregate.reads_age();

    // The filter: bound to every column of the table (the author's own condition, checked
    // against what readers may see by `may_read`).
    let mut filter = Filter::True;
    if let Some(json) = &def.filter {
        let condition =
            Condition::parse(json, Claims::Refused).map_err(|e| DefinitionError::new("filter", e.to_string()))?;
        for name in condition.columns() {
            reads.push(column("filter", name)?);
        }
        let bound = compile(&condition, Binding { schema: &schema, columns: &fields }, ClaimValues::Unchecked)
            .map_err(|e| DefinitionError::new("filter", e.to_string()))?;
        filter = bound.validate(&schema).map_err(|e| DefinitionError::new("filter", e.to_string()))?;
    }

    // The view.
    if let Some(role) = &def.view.role {
        let view_filter = role_filter(policy, role, &def.view.claims, &schema)
            .map_err(|message| DefinitionError::new("view", message))?;
        filter = filter.and(view_filter);
    } else if !def.view.claims.is_empty() {
        return Err(DefinitionError::new("view.claims", "claims need a `role` to apply to"));
    }

    // The window.
    let window = match &def.window {
        None => None,
        Some(w) => {
            let i = column("window.column", &w.column)?;
            let ty = &schema.columns[i].ty;
            if !matches!(ty, ColumnType::Timestamp | ColumnType::TimestampTz) {
                return Err(DefinitionError::new(
                    "window.column",
                    format!("`{}` is {}, not a timestamp", w.column, crate::query::type_label(ty)),
                ));
            }
            reads.push(i);
            let span = match (&w.last, w.today) {
                (Some(_), true) => {
                    return Err(DefinitionError::new("window", "give either `last` or `today`, not both"));
                }
                (None, false) => return Err(DefinitionError::new("window", "give `last` (e.g. `PT15M`) or `today`")),
                (None, true) => Span::Today,
                (Some(text), false) => {
                    let micros =
                        crate::duration::parse_micros(text).map_err(|e| DefinitionError::new("window.last", e))?;
                    if micros <= 0 {
                        return Err(DefinitionError::new("window.last", "must be longer than zero"));
                    }
                    Span::Last(micros)
                }
            };
            Some(Window { column: i, span })
        }
    };
    reads.sort_unstable();
    reads.dedup();
    let group_names = spec.group_by.iter().map(|&i| name_of(&fields, i)).collect();
    Ok(CompiledKpi { table: schema.id(), schema, filter, spec, reading, window, reads, group_names, time_dependent })
}

fn name_of(fields: &HashMap<String, usize>, i: usize) -> String {
    fields.iter().find(|(_, p)| **p == i).map(|(n, _)| n.clone()).unwrap_or_default()
}

fn function(aggregation: Aggregation) -> AggFn {
    match aggregation {
        Aggregation::Count => AggFn::Count,
        Aggregation::CountDistinct => AggFn::CountDistinct,
        Aggregation::Sum => AggFn::Sum,
        Aggregation::Avg => AggFn::Avg,
        Aggregation::Min => AggFn::Min,
        Aggregation::Max => AggFn::Max,
        Aggregation::P50 => AggFn::P50,
        Aggregation::P90 => AggFn::P90,
        Aggregation::P95 => AggFn::P95,
        Aggregation::P99 => AggFn::P99,
    }
}

/// The row filter `role` gets on the table of `schema` with these claims: what a view reads.
/// An error when the role may not read the table at all, or the claims do not satisfy its rule.
pub fn role_filter(
    policy: &Policy,
    role: &str,
    claims: &Map<String, serde_json::Value>,
    schema: &TableSchema,
) -> Result<Filter, String> {
    if !policy.has_role(role) {
        return Err(format!("role `{role}` is not in the policy"));
    }
    let grant = policy
        .grant(role, schema)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("role `{role}` may not read table `{}`", schema.spec.name))?;
    let Some(condition) = &grant.filter else { return Ok(Filter::True) };
    let all: HashMap<String, usize> = column_fields(schema).into_iter().map(|(i, n)| (n, i)).collect();
    let filter = compile(condition, Binding { schema, columns: &all }, ClaimValues::Token(claims))
        .map_err(|e| format!("role `{role}`: {e}"))?;
    filter.validate(schema).map_err(|e| e.to_string())
}

/// Whether a reader with `role` and `claims` may read a KPI: the role may see every column
/// the KPI reads, and its own row filter admits every row the KPI counts. The second is
/// decided soundly and simply: the reader has no row filter, or the reader's filter is one of
/// the conjuncts of the KPI's filter (so every row that passes the KPI's filter passes the
/// reader's). A KPI therefore never shows a total its reader could not compute themselves.
pub fn may_read(kpi: &CompiledKpi, policy: &Policy, role: &str, claims: &Map<String, serde_json::Value>) -> bool {
    let Ok(Some(grant)) = policy.grant(role, &kpi.schema) else { return false };
    if !kpi.reads.iter().all(|c| grant.columns.contains(c)) {
        return false;
    }
    if grant.filter.is_none() {
        return true;
    }
    let Ok(reader) = role_filter(policy, role, claims, &kpi.schema) else { return false };
    if reader == Filter::True {
        return true;
    }
    conjuncts(&kpi.filter).iter().any(|c| **c == reader)
        || matches!(&reader, Filter::And(parts) if parts.iter().all(|p| conjuncts(&kpi.filter).contains(&p)))
}

fn conjuncts(filter: &Filter) -> Vec<&Filter> {
    match filter {
        Filter::And(parts) => parts.iter().collect(),
        other => vec![other],
    }
}

//! An alert rule as its author defines it, and the same rule bound for evaluation.
//!
//! A rule watches a KPI (one instance per group of the KPI) or the rows of a table (one
//! instance per matching row). It is stored as JSON in the app database; binding checks the
//! durations, the KPI and the table, and says which field is wrong.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::kpi::DefinitionError;
use crate::kpi::KpiId;
use crate::query::Filter;
use crate::registry::TableSchema;

/// How loud an alert is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// When a KPI's value is a problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KpiCondition {
    pub kpi: KpiId,
    /// Fires while the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Fires while the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// Fires while the value is outside `[low, high]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside: Option<Band>,
    /// Fires when no committed transaction has touched the rows the KPI counts for this long
    /// (ISO 8601 or `5m`): a feed that went quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_for: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub low: f64,
    pub high: f64,
}

/// Rows that are each a problem: every row of `table` passing `filter`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RowCondition {
    /// The table's GraphQL name.
    pub table: String,
    /// A filter in the language of GraphQL `where`.
    pub filter: serde_json::Value,
    /// Columns whose values label each instance (besides its key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_columns: Vec<String>,
}

/// A rule as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertRuleDefinition {
    pub name: String,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A summary for people; `{{value}}`, `{{threshold}}`, `{{rule}}`, `{{group}}` and, for row
    /// rules, `{{column}}` of the row are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpi: Option<KpiCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowCondition>,
    /// How long the condition must hold before the alert fires (ISO 8601 or `5m`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// How long an alert keeps firing after its condition clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    /// The most alerts this rule keeps open at once; matches beyond are counted, not opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<usize>,
}

/// Alerts one rule keeps open when its definition does not say: enough for every SKU of a
/// warehouse, few enough that a filter that matches a whole table cannot flood anyone.
pub const DEFAULT_MAX_INSTANCES: usize = 100;

/// The highest cap a rule may set.
pub const MAX_INSTANCES: usize = 10_000;

/// A rule's id: its row in the app database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleId(pub i64);

/// What a bound rule tests.
#[derive(Clone, Debug)]
pub enum Target {
    Kpi {
        kpi: KpiId,
        test: Threshold,
    },
    /// No transaction touched the KPI's rows for `micros`.
    NoData {
        kpi: KpiId,
        micros: i64,
    },
    Rows {
        schema: Arc<TableSchema>,
        filter: Filter,
        labels: Vec<(String, usize)>,
        columns: Vec<(String, usize)>,
    },
}

/// A threshold test on a number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    Above(f64),
    Below(f64),
    Outside(f64, f64),
}

impl Threshold {
    pub fn breached(self, x: f64) -> bool {
        match self {
            Threshold::Above(t) => x > t,
            Threshold::Below(t) => x < t,
            Threshold::Outside(lo, hi) => x < lo || x > hi,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Threshold::Above(t) => format!("> {t}"),
            Threshold::Below(t) => format!("< {t}"),
            Threshold::Outside(lo, hi) => format!("outside [{lo}, {hi}]"),
        }
    }
}

/// A rule ready to evaluate.
#[derive(Clone, Debug)]
pub struct BoundRule {
    pub id: RuleId,
    pub definition: Arc<AlertRuleDefinition>,
    pub target: Target,
    pub for_micros: i64,
    pub keep_firing_micros: i64,
    pub max_instances: usize,
}

fn duration(field: &str, text: &Option<String>) -> Result<i64, DefinitionError> {
    match text {
        None => Ok(0),
        Some(t) => crate::duration::parse_micros(t).map_err(|e| DefinitionError::new(field, e)),
    }
}

/// Binds the parts of a rule that do not depend on a table: name, durations, the KPI test.
/// Row rules are bound by [`bind_rows`] against their table.
pub fn bind(id: RuleId, def: AlertRuleDefinition, rows: Option<RowsBinding>) -> Result<BoundRule, DefinitionError> {
    crate::kpi::definition::check_name("name", &def.name)?;
    let for_micros = duration("for", &def.for_)?;
    let keep_firing_micros = duration("keepFiringFor", &def.keep_firing_for)?;
    let target = match (&def.kpi, &def.rows, rows) {
        (Some(_), Some(_), _) => return Err(DefinitionError::new("kpi", "give either `kpi` or `rows`, not both")),
        (None, None, _) => return Err(DefinitionError::new("kpi", "give `kpi` (a KPI condition) or `rows`")),
        (Some(k), None, _) if k.no_data_for.is_some() => {
            if k.above.is_some() || k.below.is_some() || k.outside.is_some() {
                return Err(DefinitionError::new("kpi.noDataFor", "a no-data rule has no threshold"));
            }
            let micros = duration("kpi.noDataFor", &k.no_data_for)?;
            if micros <= 0 {
                return Err(DefinitionError::new("kpi.noDataFor", "must be longer than zero"));
            }
            Target::NoData { kpi: k.kpi, micros }
        }
        (Some(k), None, _) => {
            let test = match (k.above, k.below, k.outside) {
                (Some(t), None, None) => Threshold::Above(t),
                (None, Some(t), None) => Threshold::Below(t),
                (None, None, Some(b)) if b.low <= b.high => Threshold::Outside(b.low, b.high),
                (None, None, Some(_)) => {
                    return Err(DefinitionError::new("kpi.outside", "`low` must not be above `high`"));
                }
                _ => {
                    return Err(DefinitionError::new(
                        "kpi",
                        "give exactly one of `above`, `below`, `outside` or `noDataFor`",
                    ));
                }
            };
            if [k.above, k.below].into_iter().flatten().any(|t| !t.is_finite()) {
                return Err(DefinitionError::new("kpi", "thresholds must be finite numbers"));
            }
            Target::Kpi { kpi: k.kpi, test }
        }
        (None, Some(_), Some(b)) => {
            Target::Rows { schema: b.schema, filter: b.filter, labels: b.labels, columns: b.columns }
        }
        (None, Some(_), None) => return Err(DefinitionError::new("rows.table", "the table is not loaded")),
    };
    let max_instances = def.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
    if !(1..=MAX_INSTANCES).contains(&max_instances) {
        return Err(DefinitionError::new("maxInstances", format!("between 1 and {MAX_INSTANCES}")));
    }
    Ok(BoundRule { id, definition: Arc::new(def), target, for_micros, keep_firing_micros, max_instances })
}

/// A row rule bound to its table.
#[derive(Clone, Debug)]
pub struct RowsBinding {
    pub schema: Arc<TableSchema>,
    pub filter: Filter,
    /// Label name → column, for the instance's labels.
    pub labels: Vec<(String, usize)>,
    /// Every column the rule reads (key, filter, labels): what provenance shows of a row.
    pub columns: Vec<(String, usize)>,
}

/// Binds a row condition to the table it names among `tables`.
pub fn bind_rows(cond: &RowCondition, tables: &[Arc<TableSchema>]) -> Result<RowsBinding, DefinitionError> {
    use crate::policy::compile::{Binding, ClaimValues, compile};
    use crate::policy::condition::{Claims, Condition};
    use crate::policy::names::{column_fields, root_field_name};
    let schema = tables
        .iter()
        .find(|t| root_field_name(&t.spec.name) == cond.table)
        .cloned()
        .ok_or_else(|| DefinitionError::new("rows.table", format!("unknown table `{}`", cond.table)))?;
    let fields: std::collections::HashMap<String, usize> =
        column_fields(&schema).into_iter().map(|(i, n)| (n, i)).collect();
    let condition = Condition::parse(&cond.filter, Claims::Refused)
        .map_err(|e| DefinitionError::new("rows.filter", e.to_string()))?;
    let filter = compile(&condition, Binding { schema: &schema, columns: &fields }, ClaimValues::Unchecked)
        .map_err(|e| DefinitionError::new("rows.filter", e.to_string()))?
        .validate(&schema)
        .map_err(|e| DefinitionError::new("rows.filter", e.to_string()))?;
    let mut labels = Vec::new();
    for (n, name) in cond.label_columns.iter().enumerate() {
        let i = *fields.get(name).ok_or_else(|| {
            DefinitionError::new(format!("rows.labelColumns[{n}]"), format!("unknown column `{name}`"))
        })?;
        labels.push((name.clone(), i));
    }
    let mut columns: Vec<(String, usize)> = Vec::new();
    let mut add = |name: &str| {
        if let Some(&i) = fields.get(name)
            && !columns.iter().any(|(_, c)| *c == i)
        {
            columns.push((name.to_string(), i));
        }
    };
    for &k in &schema.key {
        if let Some((_, name)) = column_fields(&schema).into_iter().find(|(i, _)| *i == k) {
            add(&name);
        }
    }
    for name in condition.columns() {
        add(name);
    }
    for name in &cond.label_columns {
        add(name);
    }
    Ok(RowsBinding { schema, filter, labels, columns })
}

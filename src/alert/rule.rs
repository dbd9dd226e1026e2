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
    /// Fires when the value crosses a level: an event, which keeps firing for `keepFiringFor`
    /// (5 minutes unless given) and resolves then unless it crosses again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crosses: Option<Crossing>,
    /// Fires while the value has moved by more than a bound within a trailing window: a rate
    /// of change ("orders per minute fell by 30 within 10 minutes").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// Fires when no committed transaction has touched the rows the KPI counts for this long
    /// (ISO 8601 or `5m`): a feed that went quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_for: Option<String>,
}

/// A level and the direction a value must cross it in.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crossing {
    pub value: f64,
    #[serde(default)]
    pub direction: Direction,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    Up,
    Down,
    #[default]
    Either,
}

impl Direction {
    /// Whether moving from `from` to `to` crosses `level` this way. Reaching the level
    /// counts (0 → 5 crosses 5 upwards); leaving it does not (5 → 6 does not cross 5 again).
    pub fn crossed(self, from: f64, to: f64, level: f64) -> bool {
        let up = from < level && to >= level;
        let down = from > level && to <= level;
        match self {
            Direction::Up => up,
            Direction::Down => down,
            Direction::Either => up || down,
        }
    }
}

/// How far a value may move within a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The window (ISO 8601 or `10m`): the value now is compared with the value then.
    pub over: String,
    /// Fires while the value rose by more than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Fires while the change is below this (`-30`: fell by more than 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
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
        test: KpiTest,
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

/// What a KPI rule tests: the value itself, or the value against its past.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KpiTest {
    Level(Threshold),
    Crosses {
        level: f64,
        direction: Direction,
    },
    /// The value now minus the value `micros` ago.
    Change {
        micros: i64,
        test: Threshold,
    },
}

impl KpiTest {
    pub fn describe(self) -> String {
        match self {
            KpiTest::Level(t) => t.describe(),
            KpiTest::Crosses { level, direction: Direction::Up } => format!("crossed {level} upwards"),
            KpiTest::Crosses { level, direction: Direction::Down } => format!("crossed {level} downwards"),
            KpiTest::Crosses { level, direction: Direction::Either } => format!("crossed {level}"),
            KpiTest::Change { micros, test } => format!("change within {} s {}", micros / 1_000_000, test.describe()),
        }
    }
}

/// How long a crossing keeps firing when its rule does not say.
pub const DEFAULT_CROSSING_FIRES_FOR: i64 = 5 * 60 * 1_000_000;

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
    let mut keep_firing_micros = duration("keepFiringFor", &def.keep_firing_for)?;
    let target = match (&def.kpi, &def.rows, rows) {
        (Some(_), Some(_), _) => return Err(DefinitionError::new("kpi", "give either `kpi` or `rows`, not both")),
        (None, None, _) => return Err(DefinitionError::new("kpi", "give `kpi` (a KPI condition) or `rows`")),
        (Some(k), None, _) => {
            let given = [
                k.above.is_some(),
                k.below.is_some(),
                k.outside.is_some(),
                k.crosses.is_some(),
                k.change.is_some(),
                k.no_data_for.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(DefinitionError::new(
                    "kpi",
                    "give exactly one of `above`, `below`, `outside`, `crosses`, `change` or `noDataFor`",
                ));
            }
            let finite = |field: &str, t: Option<f64>| match t {
                Some(t) if !t.is_finite() => Err(DefinitionError::new(field, "must be a finite number")),
                _ => Ok(()),
            };
            finite("kpi.above", k.above)?;
            finite("kpi.below", k.below)?;
            if let Some(micros) =
                k.no_data_for.as_ref().map(|_| duration("kpi.noDataFor", &k.no_data_for)).transpose()?
            {
                if micros <= 0 {
                    return Err(DefinitionError::new("kpi.noDataFor", "must be longer than zero"));
                }
                Target::NoData { kpi: k.kpi, micros }
            } else {
                let test = if let Some(t) = k.above {
                    KpiTest::Level(Threshold::Above(t))
                } else if let Some(t) = k.below {
                    KpiTest::Level(Threshold::Below(t))
                } else if let Some(b) = k.outside {
                    if !(b.low.is_finite() && b.high.is_finite()) {
                        return Err(DefinitionError::new("kpi.outside", "must be finite numbers"));
                    }
                    if b.low > b.high {
                        return Err(DefinitionError::new("kpi.outside", "`low` must not be above `high`"));
                    }
                    KpiTest::Level(Threshold::Outside(b.low, b.high))
                } else if let Some(c) = k.crosses {
                    finite("kpi.crosses.value", Some(c.value))?;
                    KpiTest::Crosses { level: c.value, direction: c.direction }
                } else {
                    let c = k.change.as_ref().expect("one condition is given");
                    let micros = crate::duration::parse_micros(&c.over)
                        .map_err(|e| DefinitionError::new("kpi.change.over", e))?;
                    if micros <= 0 {
                        return Err(DefinitionError::new("kpi.change.over", "must be longer than zero"));
                    }
                    finite("kpi.change.above", c.above)?;
                    finite("kpi.change.below", c.below)?;
                    let test = match (c.above, c.below) {
                        (Some(t), None) => Threshold::Above(t),
                        (None, Some(t)) => Threshold::Below(t),
                        _ => return Err(DefinitionError::new("kpi.change", "give exactly one of `above` or `below`")),
                    };
                    KpiTest::Change { micros, test }
                };
                Target::Kpi { kpi: k.kpi, test }
            }
        }
        (None, Some(_), Some(b)) => {
            Target::Rows { schema: b.schema, filter: b.filter, labels: b.labels, columns: b.columns }
        }
        (None, Some(_), None) => return Err(DefinitionError::new("rows.table", "the table is not loaded")),
    };
    if matches!(target, Target::Kpi { test: KpiTest::Crosses { .. }, .. }) {
        if for_micros > 0 {
            return Err(DefinitionError::new("for", "a crossing is an instant: it cannot hold for a while"));
        }
        if def.keep_firing_for.is_none() {
            keep_firing_micros = DEFAULT_CROSSING_FIRES_FOR;
        }
    }
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

//! The KPIs and alert rules the demo starts with (`fixtures/demo-monitoring.json`), written
//! into the app database before the server starts, so that `opslive demo` shows KPIs moving and
//! alerts firing from the first minute.
//!
//! The server binds them to their tables at start as it binds any stored definition; the
//! fixture's own test (`tests/demo.rs`) checks that every one of them binds and is ready.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value as Json;

use super::DemoError;
use crate::alert::AlertRuleDefinition;
use crate::kpi::{KpiDefinition, SourceKpi};
use crate::store::Store;

pub const FIXTURE: &str = include_str!("../../fixtures/demo-monitoring.json");

#[derive(Deserialize)]
struct Fixture {
    kpis: Vec<KpiDefinition>,
    /// Rules whose `kpi.kpi` is a KPI's name, not its id (`builtin:<source>/<MEASURE>` for a
    /// built-in one).
    rules: Vec<Json>,
}

/// Who the fixture's definitions are recorded as made by.
pub(super) const AUTHOR: &str = "opslive-demo";

/// Writes the fixture's KPIs and rules into the app database. Returns how many of each.
pub async fn seed(store: &Store) -> Result<(usize, usize), DemoError> {
    let fail = |e: &dyn std::fmt::Display| DemoError::Fixtures(format!("the demo's KPIs and alert rules: {e}"));
    let fixture: Fixture = serde_json::from_str(FIXTURE).map_err(|e| fail(&e))?;
    let (kpis, rules) = (fixture.kpis.len(), fixture.rules.len());
    let mut ids = HashMap::new();
    for def in &fixture.kpis {
        let record = store.insert_kpi(def, Some(AUTHOR)).await.map_err(|e| fail(&e))?;
        ids.insert(def.name.clone(), record.id.0);
    }
    for mut rule in fixture.rules {
        if let Some(name) = rule.pointer("/kpi/kpi").and_then(Json::as_str).map(str::to_string) {
            let id = match name.strip_prefix("builtin:").map(SourceKpi::parse_key) {
                Some(Some(builtin)) => store.builtin_kpis(&[builtin]).await.map_err(|e| fail(&e))?[0].id.0,
                _ => {
                    *ids.get(&name).ok_or_else(|| fail(&format!("a rule names KPI `{name}`, which is not defined")))?
                }
            };
            rule["kpi"]["kpi"] = Json::from(id);
        }
        let def: AlertRuleDefinition = serde_json::from_value(rule).map_err(|e| fail(&e))?;
        store.insert_alert_rule(&def, Some(AUTHOR)).await.map_err(|e| fail(&e))?;
    }
    Ok((kpis, rules))
}

//! Built-in KPIs: each source's health — replication lag in bytes and seconds, the WAL its
//! slot retains, the age of the newest heartbeat that came back, changes applied per second.
//!
//! Nobody defines them: every configured source has one of each, stored in the app database
//! (so they keep their ids and their history across restarts) and sampled once a second from
//! the pipeline's own counters. On the board they are KPIs like any other, so alert rules,
//! history, subscriptions and the dashboard treat "replication lag above 30 s" exactly like
//! "orders per minute above 40". They carry no row data: every role may read them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::definition::{Aggregation, KpiDefinition};
use super::engine::{GroupValue, KpiValue};
use crate::change::SourceName;
use crate::value::Value;

/// What a built-in KPI measures of its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceMeasure {
    LagBytes,
    LagSeconds,
    RetainedWalBytes,
    HeartbeatAgeSeconds,
    ChangesPerSecond,
}

impl SourceMeasure {
    pub const ALL: [SourceMeasure; 5] = [
        SourceMeasure::LagBytes,
        SourceMeasure::LagSeconds,
        SourceMeasure::RetainedWalBytes,
        SourceMeasure::HeartbeatAgeSeconds,
        SourceMeasure::ChangesPerSecond,
    ];

    /// The GraphQL enum value.
    pub fn name(self) -> &'static str {
        match self {
            SourceMeasure::LagBytes => "LAG_BYTES",
            SourceMeasure::LagSeconds => "LAG_SECONDS",
            SourceMeasure::RetainedWalBytes => "RETAINED_WAL_BYTES",
            SourceMeasure::HeartbeatAgeSeconds => "HEARTBEAT_AGE_SECONDS",
            SourceMeasure::ChangesPerSecond => "CHANGES_PER_SECOND",
        }
    }

    pub fn parse(name: &str) -> Option<SourceMeasure> {
        SourceMeasure::ALL.into_iter().find(|m| m.name() == name)
    }

    fn title(self) -> &'static str {
        match self {
            SourceMeasure::LagBytes => "replication lag (bytes)",
            SourceMeasure::LagSeconds => "replication lag (seconds)",
            SourceMeasure::RetainedWalBytes => "retained WAL",
            SourceMeasure::HeartbeatAgeSeconds => "heartbeat age",
            SourceMeasure::ChangesPerSecond => "changes per second",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            SourceMeasure::LagBytes | SourceMeasure::RetainedWalBytes => "bytes",
            SourceMeasure::LagSeconds | SourceMeasure::HeartbeatAgeSeconds => "s",
            SourceMeasure::ChangesPerSecond => "changes/s",
        }
    }

    /// The same words as the `/metrics` help of the metric it mirrors.
    pub fn description(self) -> &'static str {
        match self {
            SourceMeasure::LagBytes => "Source log bytes between the server's flushed end and what the replica covers.",
            SourceMeasure::LagSeconds => {
                "While transactions are received but not applied: age of the newest applied commit; else 0."
            }
            SourceMeasure::RetainedWalBytes => {
                "WAL the replication slot keeps on the source's disk (none until the slot is first polled)."
            }
            SourceMeasure::HeartbeatAgeSeconds => {
                "Time since the newest heartbeat that came back through the change stream was written (none before the first)."
            }
            SourceMeasure::ChangesPerSecond => "Row changes applied per second, over the last few seconds.",
        }
    }
}

/// A built-in KPI: one measure of one source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKpi {
    pub source: SourceName,
    pub measure: SourceMeasure,
}

impl SourceKpi {
    /// Every built-in KPI of these sources.
    pub fn all<'a>(sources: impl IntoIterator<Item = &'a SourceName>) -> Vec<SourceKpi> {
        sources
            .into_iter()
            .flat_map(|s| SourceMeasure::ALL.into_iter().map(|measure| SourceKpi { source: s.clone(), measure }))
            .collect()
    }

    /// Its unique key in the app database (`shop/LAG_SECONDS`).
    pub fn key(&self) -> String {
        format!("{}/{}", self.source, self.measure.name())
    }

    pub fn parse_key(key: &str) -> Option<SourceKpi> {
        let (source, measure) = key.rsplit_once('/')?;
        Some(SourceKpi { source: Arc::from(source), measure: SourceMeasure::parse(measure)? })
    }

    /// How it reads where a definition is shown: a name, a unit and a description; no table.
    pub fn definition(&self) -> KpiDefinition {
        KpiDefinition {
            name: format!("{}: {}", self.source, self.measure.title()),
            description: Some(self.measure.description().to_string()),
            table: String::new(),
            aggregate: Aggregation::Max,
            column: None,
            expression: None,
            filter: None,
            group_by: Vec::new(),
            window: None,
            comparison: None,
            view: Default::default(),
            unit: Some(self.measure.unit().to_string()),
        }
    }
}

/// One source's health at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceHealth {
    pub lag_bytes: u64,
    pub lag_seconds: f64,
    /// `None` until the slot is first polled.
    pub retained_wal_bytes: Option<u64>,
    /// `None` before the first heartbeat came back.
    pub heartbeat_age_seconds: Option<f64>,
    pub changes_per_second: f64,
}

impl SourceHealth {
    /// A measure as a KPI value: not ready while it is unknown.
    pub fn value(&self, measure: SourceMeasure) -> KpiValue {
        let bytes = |b: u64| Value::Int8(i64::try_from(b).unwrap_or(i64::MAX));
        // Seconds to the millisecond: a sample a microsecond older is not a new value.
        let seconds = |s: f64| Value::Float8((s * 1000.0).round() / 1000.0);
        let value = match measure {
            SourceMeasure::LagBytes => Some(bytes(self.lag_bytes)),
            SourceMeasure::LagSeconds => Some(seconds(self.lag_seconds)),
            SourceMeasure::RetainedWalBytes => self.retained_wal_bytes.map(bytes),
            SourceMeasure::HeartbeatAgeSeconds => self.heartbeat_age_seconds.map(seconds),
            SourceMeasure::ChangesPerSecond => Some(Value::Float8((self.changes_per_second * 10.0).round() / 10.0)),
        };
        match value {
            Some(value) => KpiValue::Groups(Arc::new([Arc::new(GroupValue { key: Vec::new(), value })])),
            None => KpiValue::NotReady(match measure {
                SourceMeasure::RetainedWalBytes => "the slot has not been polled yet".into(),
                _ => "no heartbeat has come back yet".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_unknown_measures_are_refused() {
        for k in SourceKpi::all(&[Arc::from("shop"), Arc::from("help/desk")]) {
            assert_eq!(SourceKpi::parse_key(&k.key()), Some(k));
        }
        assert_eq!(SourceKpi::parse_key("shop/LAG"), None);
    }

    #[test]
    fn unknown_measures_are_not_ready_and_seconds_are_rounded_to_the_millisecond() {
        let h = SourceHealth { lag_seconds: 1.23456, ..Default::default() };
        assert_eq!(h.value(SourceMeasure::LagSeconds).single(), Some(&Value::Float8(1.235)));
        assert!(matches!(h.value(SourceMeasure::HeartbeatAgeSeconds), KpiValue::NotReady(_)));
        assert!(matches!(h.value(SourceMeasure::RetainedWalBytes), KpiValue::NotReady(_)));
        assert_eq!(h.value(SourceMeasure::LagBytes).single(), Some(&Value::Int8(0)));
    }
}

//! Silences: label matchers over a time range that suppress an alert's notifications (not its
//! evaluation: a silenced alert still changes state and is still recorded and shown).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kpi::DefinitionError;

/// One matcher: a label equals (or, `negated`, differs from) a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    pub label: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negated: bool,
}

impl Matcher {
    /// Whether it holds for `labels` (a missing label is the empty string, as in Alertmanager).
    pub fn holds(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.label).map(String::as_str).unwrap_or("");
        (value == self.value) != self.negated
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    /// µs since the Unix epoch.
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: Option<String>,
    pub created_by: Option<String>,
}

impl Silence {
    pub fn active_at(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether every matcher holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.holds(labels))
    }
}

/// Checks a silence before it is stored.
pub fn check(matchers: &[Matcher], starts_at: i64, ends_at: i64) -> Result<(), DefinitionError> {
    if matchers.is_empty() {
        return Err(DefinitionError::new(
            "matchers",
            "give at least one matcher: a silence of everything is a mistake",
        ));
    }
    if matchers.iter().all(|m| m.negated) {
        return Err(DefinitionError::new("matchers", "at least one matcher must be positive"));
    }
    for (i, m) in matchers.iter().enumerate() {
        if m.label.trim().is_empty() {
            return Err(DefinitionError::new(format!("matchers[{i}].label"), "must not be empty"));
        }
    }
    if ends_at <= starts_at {
        return Err(DefinitionError::new("endsAt", "must be after startsAt"));
    }
    Ok(())
}

/// Whether any active silence covers `labels` at `now`.
pub fn silenced(silences: &[Silence], labels: &BTreeMap<String, String>, now: i64) -> bool {
    silences.iter().any(|s| s.active_at(now) && s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_silence_covers_matching_labels_during_its_range_only() {
        let s = Silence {
            id: 1,
            matchers: vec![
                Matcher { label: "channel".into(), value: "web".into(), negated: false },
                Matcher { label: "team".into(), value: "billing".into(), negated: true },
            ],
            starts_at: 100,
            ends_at: 200,
            comment: None,
            created_by: None,
        };
        assert!(s.matches(&labels(&[("channel", "web"), ("team", "ops")])));
        assert!(!s.matches(&labels(&[("channel", "web"), ("team", "billing")])));
        assert!(!s.matches(&labels(&[("channel", "app")])));
        assert!(silenced(std::slice::from_ref(&s), &labels(&[("channel", "web")]), 150));
        assert!(!silenced(std::slice::from_ref(&s), &labels(&[("channel", "web")]), 200), "ends_at is exclusive");
        assert!(!silenced(&[s], &labels(&[("channel", "web")]), 99));
    }

    #[test]
    fn silences_that_would_cover_everything_are_refused() {
        assert_eq!(check(&[], 0, 1).unwrap_err().field, "matchers");
        let negated = vec![Matcher { label: "a".into(), value: "b".into(), negated: true }];
        assert_eq!(check(&negated, 0, 1).unwrap_err().field, "matchers");
        let ok = vec![Matcher { label: "a".into(), value: "b".into(), negated: false }];
        assert_eq!(check(&ok, 5, 5).unwrap_err().field, "endsAt");
        assert!(check(&ok, 5, 6).is_ok());
    }
}

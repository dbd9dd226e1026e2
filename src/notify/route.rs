//! The routing policy, after Alertmanager's and Grafana's notification policies: an ordered
//! list of routes, each a set of label matchers and the contact points its alerts go to. The
//! first route that matches takes the alert, unless it says `continue`, in which case the next
//! matching routes take it too. An alert's labels for matching are its own plus `alertname`
//! (the rule's name) and `severity` (`info`, `warning`, `critical`).
//!
//! A route may group: alerts whose `groupBy` labels are equal go to a contact point as one
//! message, sent `groupWait` after the first of them (so that a rule opening fifty alerts at
//! once sends one message, not fifty).
//!
//! A route may name mute timings ([`super::mute`]): while one holds, what the route would send
//! is recorded as muted instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::contact::ContactPointId;
use super::mute::MuteTiming;
use crate::alert::silence::Matcher;
use crate::kpi::DefinitionError;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// All must hold; none matches every alert.
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    pub contact_points: Vec<ContactPointId>,
    /// Go on to the next routes after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// Labels whose values make a group (`alertname` for one message per rule); none: each
    /// alert alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// How long a group waits for more alerts before it is sent (`30s`, `PT1M`); none: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<String>,
    /// While an alert keeps firing unacknowledged, it is notified again this often (`4h`);
    /// none: once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<String>,
    /// Names of the policy's mute timings that silence this route while they hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_timings: Vec<String>,
}

/// Where one alert goes: a contact point, and the group it joins there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub contact_point: ContactPointId,
    /// The `groupBy` labels' values (`None`: not grouped).
    pub group: Option<String>,
    /// µs to wait for more of the group.
    pub wait: i64,
    /// µs between reminders of an alert that keeps firing unacknowledged.
    pub repeat: Option<i64>,
    /// The route's mute timings, by name.
    pub mute: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_timings: Vec<MuteTiming>,
}

impl Policy {
    /// The contact points an alert with these labels goes to, each once, in route order.
    pub fn route(&self, labels: &BTreeMap<String, String>) -> Vec<ContactPointId> {
        self.targets(labels).into_iter().map(|t| t.contact_point).collect()
    }

    /// Like [`Policy::route`], with the group each contact point takes the alert in (the first
    /// route that names a contact point decides its grouping).
    pub fn targets(&self, labels: &BTreeMap<String, String>) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        for route in &self.routes {
            if !route.matchers.iter().all(|m| m.holds(labels)) {
                continue;
            }
            let group = (!route.group_by.is_empty()).then(|| {
                let values: Vec<String> = route
                    .group_by
                    .iter()
                    .map(|l| format!("{l}={}", labels.get(l).map(String::as_str).unwrap_or("")))
                    .collect();
                values.join(",")
            });
            let wait = route.group_wait.as_deref().and_then(|w| crate::duration::parse_micros(w).ok()).unwrap_or(0);
            let repeat = route.repeat_interval.as_deref().and_then(|w| crate::duration::parse_micros(w).ok());
            for id in &route.contact_points {
                if !out.iter().any(|t| t.contact_point == *id) {
                    out.push(Target {
                        contact_point: *id,
                        group: group.clone(),
                        wait,
                        repeat,
                        mute: route.mute_timings.clone(),
                    });
                }
            }
            if !route.continue_ {
                break;
            }
        }
        out
    }

    /// The first of the target's mute timings that holds at `at` (µs), by name.
    pub fn muted<'a>(&'a self, target: &Target, at: i64) -> Option<&'a str> {
        if target.mute.is_empty() {
            return None;
        }
        self.mute_timings.iter().find(|m| target.mute.contains(&m.name) && m.holds(at)).map(|m| m.name.as_str())
    }

    /// Checks a policy against the contact points that exist.
    pub fn check(&self, known: &[ContactPointId]) -> Result<(), DefinitionError> {
        for (i, timing) in self.mute_timings.iter().enumerate() {
            timing.check(&format!("muteTimings[{i}]"))?;
            if self.mute_timings[..i].iter().any(|m| m.name == timing.name) {
                return Err(DefinitionError::new(
                    format!("muteTimings[{i}].name"),
                    format!("another mute timing is named `{}`", timing.name),
                ));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            if route.contact_points.is_empty() {
                return Err(DefinitionError::new(
                    format!("routes[{i}].contactPoints"),
                    "name at least one contact point",
                ));
            }
            for (j, id) in route.contact_points.iter().enumerate() {
                if !known.contains(id) {
                    return Err(DefinitionError::new(
                        format!("routes[{i}].contactPoints[{j}]"),
                        format!("there is no contact point {}", id.0),
                    ));
                }
            }
            if let Some(wait) = &route.group_wait {
                match crate::duration::parse_micros(wait) {
                    Ok(w) if (0..=3_600_000_000).contains(&w) => {}
                    Ok(_) => return Err(DefinitionError::new(format!("routes[{i}].groupWait"), "at most an hour")),
                    Err(e) => return Err(DefinitionError::new(format!("routes[{i}].groupWait"), e)),
                }
                if route.group_by.is_empty() {
                    return Err(DefinitionError::new(format!("routes[{i}].groupWait"), "needs `groupBy`"));
                }
            }
            if let Some(every) = &route.repeat_interval {
                match crate::duration::parse_micros(every) {
                    Ok(w) if w >= 1_000_000 => {}
                    Ok(_) => {
                        return Err(DefinitionError::new(format!("routes[{i}].repeatInterval"), "at least a second"));
                    }
                    Err(e) => return Err(DefinitionError::new(format!("routes[{i}].repeatInterval"), e)),
                }
            }
            for (j, name) in route.mute_timings.iter().enumerate() {
                if !self.mute_timings.iter().any(|m| &m.name == name) {
                    return Err(DefinitionError::new(
                        format!("routes[{i}].muteTimings[{j}]"),
                        format!("there is no mute timing named `{name}`"),
                    ));
                }
            }
            for (j, m) in route.matchers.iter().enumerate() {
                if m.label.trim().is_empty() {
                    return Err(DefinitionError::new(format!("routes[{i}].matchers[{j}].label"), "must not be empty"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn m(label: &str, value: &str) -> Matcher {
        Matcher { label: label.into(), value: value.into(), negated: false }
    }

    #[test]
    fn the_first_matching_route_takes_an_alert_unless_it_continues() {
        let policy = Policy {
            routes: vec![
                Route {
                    matchers: vec![m("severity", "critical")],
                    contact_points: vec![ContactPointId(1)],
                    continue_: true,
                    ..Route::default()
                },
                Route {
                    matchers: vec![m("team", "warehouse")],
                    contact_points: vec![ContactPointId(2)],
                    continue_: false,
                    ..Route::default()
                },
                Route {
                    matchers: vec![],
                    contact_points: vec![ContactPointId(3), ContactPointId(1)],
                    continue_: false,
                    ..Route::default()
                },
            ],
            ..Policy::default()
        };
        assert_eq!(
            policy.route(&labels(&[("severity", "critical"), ("team", "warehouse")])),
            [ContactPointId(1), ContactPointId(2)]
        );
        assert_eq!(
            policy.route(&labels(&[("severity", "critical")])),
            [ContactPointId(1), ContactPointId(3)],
            "each once"
        );
        assert_eq!(policy.route(&labels(&[("severity", "warning"), ("team", "warehouse")])), [ContactPointId(2)]);
        assert_eq!(policy.route(&labels(&[("severity", "info")])), [ContactPointId(3), ContactPointId(1)]);
        assert!(Policy::default().route(&labels(&[])).is_empty(), "no policy sends nothing");
    }

    #[test]
    fn a_policy_naming_a_missing_contact_point_is_refused() {
        let policy = Policy {
            routes: vec![Route {
                matchers: vec![],
                contact_points: vec![ContactPointId(7)],
                continue_: false,
                ..Route::default()
            }],
            ..Policy::default()
        };
        assert_eq!(policy.check(&[ContactPointId(1)]).unwrap_err().field, "routes[0].contactPoints[0]");
        assert!(policy.check(&[ContactPointId(7)]).is_ok());
        let empty = Policy { routes: vec![Route::default()], ..Policy::default() };
        assert_eq!(empty.check(&[]).unwrap_err().field, "routes[0].contactPoints");
        let ungrouped_wait = Policy {
            routes: vec![Route {
                contact_points: vec![ContactPointId(7)],
                group_wait: Some("30s".into()),
                ..Route::default()
            }],
            ..Policy::default()
        };
        assert_eq!(ungrouped_wait.check(&[ContactPointId(7)]).unwrap_err().field, "routes[0].groupWait");
    }

    #[test]
    fn a_grouping_route_puts_alerts_with_equal_group_labels_together() {
        let policy = Policy {
            routes: vec![Route {
                contact_points: vec![ContactPointId(1)],
                group_by: vec!["alertname".into(), "warehouse".into()],
                group_wait: Some("30s".into()),
                ..Route::default()
            }],
            ..Policy::default()
        };
        let a = policy.targets(&labels(&[("alertname", "Low stock"), ("warehouse", "WH-BER"), ("sku", "A")]));
        let b = policy.targets(&labels(&[("alertname", "Low stock"), ("warehouse", "WH-BER"), ("sku", "B")]));
        let c = policy.targets(&labels(&[("alertname", "Low stock"), ("warehouse", "WH-MAD"), ("sku", "A")]));
        assert_eq!(a[0].group, b[0].group);
        assert_ne!(a[0].group, c[0].group);
        assert_eq!(a[0].group.as_deref(), Some("alertname=Low stock,warehouse=WH-BER"));
        assert_eq!(a[0].wait, 30_000_000);
    }
}

//! The routing policy, after Alertmanager's and Grafana's notification policies: an ordered
//! list of routes, each a set of label matchers and the contact points its alerts go to. The
//! first route that matches takes the alert, unless it says `continue`, in which case the next
//! matching routes take it too. An alert's labels for matching are its own plus `alertname`
//! (the rule's name) and `severity` (`info`, `warning`, `critical`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::contact::ContactPointId;
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
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub routes: Vec<Route>,
}

impl Policy {
    /// The contact points an alert with these labels goes to, each once, in route order.
    pub fn route(&self, labels: &BTreeMap<String, String>) -> Vec<ContactPointId> {
        let mut out = Vec::new();
        for route in &self.routes {
            let matches = route.matchers.iter().all(|m| {
                let value = labels.get(&m.label).map(String::as_str).unwrap_or("");
                (value == m.value) != m.negated
            });
            if !matches {
                continue;
            }
            for id in &route.contact_points {
                if !out.contains(id) {
                    out.push(*id);
                }
            }
            if !route.continue_ {
                break;
            }
        }
        out
    }

    /// Checks a policy against the contact points that exist.
    pub fn check(&self, known: &[ContactPointId]) -> Result<(), DefinitionError> {
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
                },
                Route {
                    matchers: vec![m("team", "warehouse")],
                    contact_points: vec![ContactPointId(2)],
                    continue_: false,
                },
                Route {
                    matchers: vec![],
                    contact_points: vec![ContactPointId(3), ContactPointId(1)],
                    continue_: false,
                },
            ],
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
            routes: vec![Route { matchers: vec![], contact_points: vec![ContactPointId(7)], continue_: false }],
        };
        assert_eq!(policy.check(&[ContactPointId(1)]).unwrap_err().field, "routes[0].contactPoints[0]");
        assert!(policy.check(&[ContactPointId(7)]).is_ok());
        let empty = Policy { routes: vec![Route::default()] };
        assert_eq!(empty.check(&[]).unwrap_err().field, "routes[0].contactPoints");
    }
}

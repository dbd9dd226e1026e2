//! Which notifications alert transitions cause ([`notices`]) and which reminders are due
//! ([`reminders`]): pure functions of the routing in force, the transitions or the alert
//! board, the silences and the time, run by the alert runtime (no I/O here).

use std::collections::BTreeMap;

use super::Routing;
use super::message::{Content, NoticeKind};
use super::rfc3339;
use crate::alert::engine::{AlertState, Cause, Transition};
use crate::alert::silence::{self, Silence};
use crate::store::notifications::Outgoing;

/// A rule's name and severity, as a notification names them.
pub struct RuleFacts<'a> {
    pub name: &'a str,
    /// `info`, `warning`, `critical`.
    pub severity: String,
}

/// The notifications these transitions cause: a transition into Firing, and one out of Firing
/// (resolved), each to every contact point the policy routes its labels to; one a silence
/// covers is kept, marked silenced, and one its route's mute timing holds for, marked muted.
pub fn notices<'a>(
    routing: &Routing,
    transitions: &[Transition],
    rule: impl Fn(crate::alert::RuleId) -> Option<RuleFacts<'a>>,
    silences: &[Silence],
    now: i64,
) -> Vec<Outgoing> {
    let mut out = Vec::new();
    if routing.policy.routes.is_empty() {
        return out;
    }
    for t in transitions {
        let kind = match (t.from, t.to) {
            (AlertState::Firing, AlertState::Firing) => continue,
            (_, AlertState::Firing) => NoticeKind::Firing,
            (AlertState::Firing, _) => NoticeKind::Resolved,
            _ => continue,
        };
        let Some(facts) = rule(t.rule) else { continue };
        let mut labels: BTreeMap<String, String> = t.labels.clone();
        labels.entry("alertname".into()).or_insert_with(|| facts.name.to_string());
        labels.entry("severity".into()).or_insert_with(|| facts.severity.clone());
        let targets = routing.policy.targets(&labels);
        if targets.is_empty() {
            continue;
        }
        let silenced = silence::silenced(silences, &t.labels, now);
        let content =
            content(routing, kind, t.rule, &facts, &t.instance, &t.labels, &t.summary, t.value.as_ref(), &t.cause);
        for target in targets {
            // Firing and resolved messages are never grouped together.
            let group = target.group.as_ref().map(|g| format!("{}|{g}", kind.name()));
            let mut content = content.clone();
            if kind == NoticeKind::Firing {
                // It went Firing at its cause's time, which is the instance's `since` now.
                content.ack_link = routing.ack_link(t.rule.0, &t.instance, t.cause.at(), target.contact_point);
            }
            let muted = if silenced { None } else { routing.policy.muted(&target, now).map(str::to_string) };
            out.push(Outgoing {
                contact_point: target.contact_point,
                rule: Some(t.rule.0),
                instance: t.instance.clone(),
                cause: t.cause.key(),
                content,
                silenced,
                muted,
                not_before: if group.is_some() { now + target.wait } else { 0 },
                group,
            });
        }
    }
    out
}

/// What a notification about one alert says.
#[allow(clippy::too_many_arguments)]
fn content(
    routing: &Routing,
    kind: NoticeKind,
    rule: crate::alert::RuleId,
    facts: &RuleFacts<'_>,
    instance: &str,
    labels: &BTreeMap<String, String>,
    summary: &str,
    value: Option<&String>,
    cause: &Cause,
) -> Content {
    let (source, position, commit_ts) = match cause {
        Cause::Transaction { source, position, commit_ts } => {
            (Some(source.to_string()), Some(position.to_string()), Some(rfc3339(*commit_ts)))
        }
        Cause::Due { .. } => (None, None, None),
    };
    let link = routing.public_url.as_ref().and_then(|base| {
        let mut url = base.join("alerts/").ok()?;
        url.query_pairs_mut().append_pair("rule", &rule.0.to_string()).append_pair("instance", instance);
        Some(url.to_string())
    });
    Content {
        kind,
        rule_id: Some(rule.0),
        rule: facts.name.to_string(),
        severity: facts.severity.clone(),
        instance: instance.to_string(),
        labels: labels.clone(),
        summary: summary.to_string(),
        value: value.cloned(),
        source,
        position,
        commit_ts,
        at: rfc3339(cause.at()),
        link,
        reminder: None,
        ack_link: None,
    }
}

/// Reminders due now: each alert firing unacknowledged and not silenced, for each contact
/// point whose route repeats, once per whole `repeatInterval` it has been firing. A reminder is
/// unique on its count (`repeat:<since>:<n>`), so writing one again changes nothing.
pub fn reminders(routing: &Routing, board: &crate::alert::AlertBoard, now: i64) -> Vec<Outgoing> {
    let mut out = Vec::new();
    if !routing.policy.routes.iter().any(|r| r.repeat_interval.is_some()) {
        return out;
    }
    for ((rule, key), instance) in &board.instances {
        if instance.state != AlertState::Firing || instance.acknowledged.is_some() {
            continue;
        }
        if silence::silenced(&board.silences, &instance.labels, now) {
            continue;
        }
        let Some(entry) = board.rules.get(rule) else { continue };
        let d = &entry.record.definition;
        let facts = RuleFacts { name: &d.name, severity: d.severity.name().to_lowercase() };
        let mut labels = instance.labels.clone();
        labels.entry("alertname".into()).or_insert_with(|| facts.name.to_string());
        labels.entry("severity".into()).or_insert_with(|| facts.severity.clone());
        for target in routing.policy.targets(&labels) {
            let Some(every) = target.repeat.filter(|e| *e > 0) else { continue };
            if routing.policy.muted(&target, now).is_some() {
                continue;
            }
            let n = (now - instance.since) / every;
            if n < 1 {
                continue;
            }
            let cause = instance.cause.clone().unwrap_or(Cause::Due { at: instance.since });
            let mut content = content(
                routing,
                NoticeKind::Firing,
                *rule,
                &facts,
                key,
                &instance.labels,
                &instance.summary,
                instance.value.as_ref(),
                &cause,
            );
            content.reminder = Some(n);
            content.ack_link = routing.ack_link(rule.0, key, instance.since, target.contact_point);
            out.push(Outgoing {
                contact_point: target.contact_point,
                rule: Some(rule.0),
                instance: key.clone(),
                cause: format!("repeat:{}:{n}", instance.since),
                content,
                silenced: false,
                muted: None,
                group: target.group.map(|g| format!("reminder|{g}")),
                not_before: 0,
            });
        }
    }
    out
}

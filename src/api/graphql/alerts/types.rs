//! The alert types: `AlertRule`, `Alert` (an open instance), `AlertTransition` (history with
//! provenance), `AlertCause`, `Silence`, the enums, and the inputs, which mirror the stored
//! definitions field for field.

use std::sync::Arc;

use async_graphql::dynamic::{Enum, EnumItem, FieldValue, InputObject, InputValue, Object, TypeRef};

use crate::alert::runtime::RuleEntry;
use crate::alert::silence::Silence;
use crate::alert::{AlertState, Cause, Instance, Severity};
use crate::api::graphql::output::{enum_value, field, json, text, timestamptz as time};
use crate::store::alerts::TransitionRecord;

pub const RULE: &str = "AlertRule";
pub const ALERT: &str = "Alert";
pub const TRANSITION: &str = "AlertTransition";
pub const CAUSE: &str = "AlertCause";
pub const SILENCE: &str = "Silence";
pub const MATCHER: &str = "SilenceMatcher";
pub const SEVERITY: &str = "AlertSeverity";
pub const STATE: &str = "AlertState";
pub const RULE_INPUT: &str = "AlertRuleInput";
pub const KPI_CONDITION_INPUT: &str = "AlertKpiConditionInput";
pub const BAND_INPUT: &str = "AlertBandInput";
pub const CROSSING_INPUT: &str = "AlertCrossingInput";
pub const CHANGE_INPUT: &str = "AlertChangeInput";
pub const DIRECTION: &str = "AlertDirection";
pub const ROWS_INPUT: &str = "AlertRowsInput";
pub const MATCHER_INPUT: &str = "SilenceMatcherInput";
pub const WHERE: &str = "AlertsWhere";

/// A rule as a GraphQL value, with its overflow when the caller may know it (it counts rows
/// of every view, so only for those who see all of the rule's alerts).
pub struct RuleOut(pub RuleEntry, pub Option<usize>);

/// An open instance as a GraphQL value.
pub struct AlertOut {
    pub instance: Instance,
    pub rule: RuleEntry,
    pub silenced: bool,
}

pub struct TransitionOut(pub TransitionRecord);

pub struct SilenceOut(pub Silence);

struct CauseOut(Cause);

fn rule() -> Object {
    let s = TypeRef::STRING;
    Object::new(RULE)
        .description("An alert rule: on a KPI (one alert per group) or on rows (one alert per matching row).")
        .field(field::<RuleOut>("id", TypeRef::named_nn(TypeRef::ID), |r| text(r.0.record.id.0.to_string())))
        .field(field::<RuleOut>("name", TypeRef::named_nn(s), |r| text(&r.0.record.definition.name)))
        .field(field::<RuleOut>("severity", TypeRef::named_nn(SEVERITY), |r| {
            enum_value(r.0.record.definition.severity.name())
        }))
        .field(field::<RuleOut>("labels", TypeRef::named_nn("JSON"), |r| json(&r.0.record.definition.labels)))
        .field(field::<RuleOut>("summary", TypeRef::named(s), |r| r.0.record.definition.summary.clone().and_then(text)))
        .field(field::<RuleOut>("kpiId", TypeRef::named(TypeRef::ID), |r| {
            r.0.record.definition.kpi.as_ref().and_then(|k| text(k.kpi.0.to_string()))
        }))
        .field(field::<RuleOut>("table", TypeRef::named(s), |r| {
            r.0.record.definition.rows.as_ref().and_then(|x| text(&x.table))
        }))
        .field(field::<RuleOut>("for", TypeRef::named(s), |r| r.0.record.definition.for_.clone().and_then(text)))
        .field(field::<RuleOut>("keepFiringFor", TypeRef::named(s), |r| {
            r.0.record.definition.keep_firing_for.clone().and_then(text)
        }))
        .field(
            field::<RuleOut>("definition", TypeRef::named_nn("JSON"), |r| json(&r.0.record.definition))
                .description("The definition as stored (the shape of `AlertRuleInput`)."),
        )
        .field(
            field::<RuleOut>("problem", TypeRef::named(s), |r| r.0.problem.clone().and_then(text))
                .description("Why the rule is not evaluated right now (its table is not loaded, its KPI was deleted)."),
        )
        .field(
            field::<RuleOut>("overflow", TypeRef::named(TypeRef::INT), |r| {
                r.1.map(|n| FieldValue::value(n as i64))
            })
            .description(
                "Breaching instances not opened because the rule is at its `maxInstances` cap; null for a role that \
                 sees only some of the rule's alerts (the count would tell it about rows it may not read).",
            ),
        )
        .field(field::<RuleOut>("maxInstances", TypeRef::named_nn(TypeRef::INT), |r| {
            let max = r.0.record.definition.max_instances.unwrap_or(crate::alert::rule::DEFAULT_MAX_INSTANCES);
            Some(FieldValue::value(max as i64))
        }))
        .field(field::<RuleOut>("createdBy", TypeRef::named(s), |r| r.0.record.created_by.clone().and_then(text)))
        .field(field::<RuleOut>("updatedBy", TypeRef::named(s), |r| r.0.record.updated_by.clone().and_then(text)))
        .field(field::<RuleOut>("createdAt", TypeRef::named_nn("Timestamptz"), |r| time(r.0.record.created_at)))
        .field(field::<RuleOut>("updatedAt", TypeRef::named_nn("Timestamptz"), |r| time(r.0.record.updated_at)))
}

fn alert() -> Object {
    let s = TypeRef::STRING;
    Object::new(ALERT)
        .description("An alert that is pending or firing: one instance of a rule.")
        .field(field::<AlertOut>("ruleId", TypeRef::named_nn(TypeRef::ID), |a| text(a.instance.rule.0.to_string())))
        .field(field::<AlertOut>("ruleName", TypeRef::named_nn(s), |a| text(&a.rule.record.definition.name)))
        .field(field::<AlertOut>("instance", TypeRef::named_nn(s), |a| text(&a.instance.key)).description(
            "Which one of the rule's alerts: `\"\"` for an ungrouped KPI, else the JSON of the group's or row's key.",
        ))
        .field(field::<AlertOut>("labels", TypeRef::named_nn("JSON"), |a| json(&a.instance.labels)))
        .field(field::<AlertOut>("state", TypeRef::named_nn(STATE), |a| enum_value(a.instance.state.name())))
        .field(field::<AlertOut>("severity", TypeRef::named_nn(SEVERITY), |a| {
            enum_value(a.rule.record.definition.severity.name())
        }))
        .field(field::<AlertOut>("since", TypeRef::named_nn("Timestamptz"), |a| time(a.instance.since)))
        .field(field::<AlertOut>("activeSince", TypeRef::named_nn("Timestamptz"), |a| time(a.instance.active_since)))
        .field(field::<AlertOut>("value", TypeRef::named(s), |a| a.instance.value.clone().and_then(text)))
        .field(
            field::<AlertOut>("row", TypeRef::named("JSON"), |a| a.instance.row.as_ref().and_then(json))
                .description("For a row rule: the row's columns the rule reads."),
        )
        .field(field::<AlertOut>("summary", TypeRef::named_nn(s), |a| text(&a.instance.summary)))
        .field(
            field::<AlertOut>("cause", TypeRef::named(CAUSE), |a| {
                a.instance.cause.clone().map(|c| FieldValue::owned_any(CauseOut(c)))
            })
            .description("What moved it into its state (unknown for an alert restored after a restart)."),
        )
        .field(field::<AlertOut>("acknowledged", TypeRef::named_nn(TypeRef::BOOLEAN), |a| {
            Some(FieldValue::value(a.instance.acknowledged.is_some()))
        }))
        .field(field::<AlertOut>("acknowledgedBy", TypeRef::named(s), |a| {
            a.instance.acknowledged.as_ref().and_then(|k| k.by.clone()).and_then(text)
        }))
        .field(field::<AlertOut>("acknowledgedAt", TypeRef::named("Timestamptz"), |a| {
            a.instance.acknowledged.as_ref().and_then(|k| time(k.at))
        }))
        .field(field::<AlertOut>("acknowledgementNote", TypeRef::named(s), |a| {
            a.instance.acknowledged.as_ref().and_then(|k| k.note.clone()).and_then(text)
        }))
        .field(
            field::<AlertOut>("silenced", TypeRef::named_nn(TypeRef::BOOLEAN), |a| Some(FieldValue::value(a.silenced)))
                .description("A silence matches its labels now: it is not notified (it is still evaluated and shown)."),
        )
}

fn cause() -> Object {
    let s = TypeRef::STRING;
    Object::new(CAUSE)
        .description("What caused a transition: a committed source transaction, or the passing of time.")
        .field(field::<CauseOut>("source", TypeRef::named(s), |c| match &c.0 {
            Cause::Transaction { source, .. } => text(source.to_string()),
            Cause::Due { .. } => None,
        }))
        .field(field::<CauseOut>("position", TypeRef::named(s), |c| match &c.0 {
            Cause::Transaction { position, .. } => text(position.to_string()),
            Cause::Due { .. } => None,
        }))
        .field(field::<CauseOut>("commitTs", TypeRef::named("Timestamptz"), |c| match &c.0 {
            Cause::Transaction { commit_ts, .. } => time(*commit_ts),
            Cause::Due { .. } => None,
        }))
        .field(
            field::<CauseOut>("dueAt", TypeRef::named("Timestamptz"), |c| match &c.0 {
                Cause::Due { at } => time(*at),
                Cause::Transaction { .. } => None,
            })
            .description(
                "For a time-driven transition: when it came due (`for` elapsed, keep-firing ran out, no data).",
            ),
        )
}

fn transition() -> Object {
    let s = TypeRef::STRING;
    Object::new(TRANSITION)
        .description("A recorded change of an alert's state, with its provenance.")
        .field(field::<TransitionOut>("id", TypeRef::named_nn(TypeRef::ID), |t| text(t.0.id.to_string())))
        .field(field::<TransitionOut>("ruleId", TypeRef::named_nn(TypeRef::ID), |t| {
            text(t.0.transition.rule.0.to_string())
        }))
        .field(field::<TransitionOut>("instance", TypeRef::named_nn(s), |t| text(&t.0.transition.instance)))
        .field(field::<TransitionOut>("labels", TypeRef::named_nn("JSON"), |t| json(&t.0.transition.labels)))
        .field(field::<TransitionOut>("from", TypeRef::named_nn(STATE), |t| enum_value(t.0.transition.from.name())))
        .field(field::<TransitionOut>("to", TypeRef::named_nn(STATE), |t| enum_value(t.0.transition.to.name())))
        .field(field::<TransitionOut>("at", TypeRef::named_nn("Timestamptz"), |t| time(t.0.transition.cause.at())))
        .field(field::<TransitionOut>("cause", TypeRef::named_nn(CAUSE), |t| {
            Some(FieldValue::owned_any(CauseOut(t.0.transition.cause.clone())))
        }))
        .field(field::<TransitionOut>("value", TypeRef::named(s), |t| t.0.transition.value.clone().and_then(text)))
        .field(
            field::<TransitionOut>("before", TypeRef::named("JSON"), |t| t.0.transition.before.as_ref().and_then(json))
                .description("For a row rule: the row before the change, limited to the columns the rule reads."),
        )
        .field(field::<TransitionOut>("after", TypeRef::named("JSON"), |t| {
            t.0.transition.after.as_ref().and_then(json)
        }))
        .field(field::<TransitionOut>("summary", TypeRef::named_nn(s), |t| text(&t.0.transition.summary)))
        .field(field::<TransitionOut>("recordedAt", TypeRef::named_nn("Timestamptz"), |t| time(t.0.recorded_at)))
}

fn silence() -> Object {
    Object::new(SILENCE)
        .description("Suppresses notification of alerts whose labels match, from `startsAt` to `endsAt`.")
        .field(field::<SilenceOut>("id", TypeRef::named_nn(TypeRef::ID), |x| text(x.0.id.to_string())))
        .field(field::<SilenceOut>("matchers", TypeRef::named_nn_list_nn(MATCHER), |x| {
            Some(FieldValue::list(x.0.matchers.iter().map(|m| FieldValue::owned_any(m.clone()))))
        }))
        .field(field::<SilenceOut>("startsAt", TypeRef::named_nn("Timestamptz"), |x| time(x.0.starts_at)))
        .field(field::<SilenceOut>("endsAt", TypeRef::named_nn("Timestamptz"), |x| time(x.0.ends_at)))
        .field(field::<SilenceOut>("comment", TypeRef::named(TypeRef::STRING), |x| x.0.comment.clone().and_then(text)))
        .field(field::<SilenceOut>("createdBy", TypeRef::named(TypeRef::STRING), |x| {
            x.0.created_by.clone().and_then(text)
        }))
}

fn matcher() -> Object {
    use crate::alert::silence::Matcher;
    Object::new(MATCHER)
        .field(field::<Matcher>("label", TypeRef::named_nn(TypeRef::STRING), |m| text(&m.label)))
        .field(field::<Matcher>("value", TypeRef::named_nn(TypeRef::STRING), |m| text(&m.value)))
        .field(field::<Matcher>("negated", TypeRef::named_nn(TypeRef::BOOLEAN), |m| Some(FieldValue::value(m.negated))))
}

pub fn objects() -> Vec<Object> {
    vec![rule(), alert(), cause(), transition(), silence(), matcher()]
}

pub fn enums() -> Vec<Enum> {
    vec![
        Enum::new(SEVERITY).items(Severity::ALL.iter().map(|s| EnumItem::new(s.name()))),
        Enum::new(STATE).items(AlertState::ALL.iter().map(|s| EnumItem::new(s.name()))),
        Enum::new(DIRECTION)
            .description("The way a value crosses a level.")
            .items(["UP", "DOWN", "EITHER"].map(EnumItem::new)),
    ]
}

pub fn inputs() -> Vec<InputObject> {
    let s = TypeRef::STRING;
    vec![
        InputObject::new(RULE_INPUT)
            .description("An alert rule: give `kpi` or `rows`. Durations are ISO 8601 (`PT5M`) or short (`5m`).")
            .field(InputValue::new("name", TypeRef::named_nn(s)))
            .field(InputValue::new("severity", TypeRef::named(SEVERITY)))
            .field(InputValue::new("labels", TypeRef::named("JSON")).description("Labels, an object of strings."))
            .field(InputValue::new("summary", TypeRef::named(s)).description(
                "Text for people: {{rule}}, {{value}}, {{threshold}}, {{group}}, a change rule's {{change}} and a row rule's {{column}} are filled in.",
            ))
            .field(InputValue::new("kpi", TypeRef::named(KPI_CONDITION_INPUT)))
            .field(InputValue::new("rows", TypeRef::named(ROWS_INPUT)))
            .field(InputValue::new("for", TypeRef::named(s)).description("How long the condition must hold before it fires."))
            .field(InputValue::new("keepFiringFor", TypeRef::named(s)).description("How long it keeps firing after it clears."))
            .field(InputValue::new("maxInstances", TypeRef::named(TypeRef::INT)).description(
                "The most alerts the rule keeps open at once (100 by default); matches beyond are counted in `overflow`.",
            )),
        InputObject::new(KPI_CONDITION_INPUT)
            .description("Exactly one of `above`, `below`, `outside`, `crosses`, `change`, `noDataFor`.")
            .field(InputValue::new("kpi", TypeRef::named_nn(TypeRef::ID)))
            .field(InputValue::new("above", TypeRef::named(TypeRef::FLOAT)))
            .field(InputValue::new("below", TypeRef::named(TypeRef::FLOAT)))
            .field(InputValue::new("outside", TypeRef::named(BAND_INPUT)))
            .field(InputValue::new("crosses", TypeRef::named(CROSSING_INPUT)).description(
                "Fires at the transaction whose value crossed the level; keeps firing for `keepFiringFor` (5 minutes unless given).",
            ))
            .field(InputValue::new("change", TypeRef::named(CHANGE_INPUT)).description(
                "Fires while the value now minus the value `over` ago is above or below a bound.",
            ))
            .field(InputValue::new("noDataFor", TypeRef::named(s)).description(
                "Fires when no committed transaction touched the KPI's rows for this long.",
            )),
        InputObject::new(BAND_INPUT)
            .field(InputValue::new("low", TypeRef::named_nn(TypeRef::FLOAT)))
            .field(InputValue::new("high", TypeRef::named_nn(TypeRef::FLOAT))),
        InputObject::new(CROSSING_INPUT)
            .field(InputValue::new("value", TypeRef::named_nn(TypeRef::FLOAT)))
            .field(InputValue::new("direction", TypeRef::named(DIRECTION)).description("EITHER by default.")),
        InputObject::new(CHANGE_INPUT)
            .description("Exactly one of `above`, `below`.")
            .field(InputValue::new("over", TypeRef::named_nn(s)).description("The window: `PT10M` or `10m`."))
            .field(InputValue::new("above", TypeRef::named(TypeRef::FLOAT)).description("Rose by more than this."))
            .field(
                InputValue::new("below", TypeRef::named(TypeRef::FLOAT))
                    .description("Changed by less than this (`-30`: fell by more than 30)."),
            ),
        InputObject::new(ROWS_INPUT)
            .description("Every row of `table` passing `filter` is an alert of its own.")
            .field(InputValue::new("table", TypeRef::named_nn(s)))
            .field(InputValue::new("filter", TypeRef::named_nn("JSON")).description("In the language of `where`."))
            .field(InputValue::new("labelColumns", TypeRef::named_nn_list(s))),
        InputObject::new(MATCHER_INPUT)
            .field(InputValue::new("label", TypeRef::named_nn(s)))
            .field(InputValue::new("value", TypeRef::named_nn(s)))
            .field(InputValue::new("negated", TypeRef::named(TypeRef::BOOLEAN))),
        InputObject::new(WHERE)
            .description("Narrows `alerts`: each given field must match.")
            .field(InputValue::new("state", TypeRef::named_nn_list(STATE)))
            .field(InputValue::new("severity", TypeRef::named_nn_list(SEVERITY)))
            .field(InputValue::new("ruleId", TypeRef::named(TypeRef::ID))),
    ]
}

/// An alert on the board as a GraphQL value.
pub fn alert_out(instance: &Instance, rule: &RuleEntry, silences: &Arc<Vec<Silence>>, now: i64) -> AlertOut {
    AlertOut {
        instance: instance.clone(),
        rule: rule.clone(),
        silenced: crate::alert::silence::silenced(silences, &instance.labels, now),
    }
}

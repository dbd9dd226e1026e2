//! Who may see an alert rule and its alerts, and the query fields `alertRules`, `alerts`,
//! `alertHistory` and `silences`.
//!
//! A rule on a KPI is readable by the roles that may read the KPI (those that could compute
//! it themselves). A rule on rows is readable by a role that may read the table and see every
//! column the rule reads; each of its alerts only when the role may read that very row (its
//! row filter, with the caller's claims, passes the row as the replica holds it), so an alert
//! never reveals a row its reader could not query. A rule that does not bind right now is
//! seen only by roles that manage alerts, so they can repair it.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Value as Gql;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};

use super::AlertService;
use super::types::{ALERT, RULE, RuleOut, SILENCE, SilenceOut, TRANSITION, TransitionOut, WHERE, alert_out};
use crate::alert::rule::bind_rows;
use crate::alert::runtime::{AlertBoard, RuleEntry};
use crate::alert::{AlertState, Instance, RuleId, Severity};
use crate::api::graphql::errors::{Code, error};
use crate::api::graphql::kpis::readable as kpi_readable;
use crate::api::graphql::output::numeric_id;
use crate::api::graphql::resolve::Scope;
use crate::auth::Principal;
use crate::change::Key;
use crate::kpi::KpiBoard;
use crate::policy::compile::{Binding, ClaimValues, compile};
use crate::policy::names::column_fields;
use crate::policy::{Permission, Policy};
use crate::query::Filter;
use crate::replica::Replica;
use crate::store::alerts::HistoryFilter;

/// What one caller may see, judged once per request.
pub struct Reader<'a> {
    pub policy: &'a Policy,
    pub principal: &'a Principal,
    pub kpis: &'a KpiBoard,
    pub replica: &'a Replica,
}

/// How a readable rule's alerts are judged.
enum Access {
    /// Every alert of the rule.
    All,
    /// Only those whose row passes this filter (the reader's row filter).
    Rows { filter: Filter, key_types: Vec<(usize, crate::registry::ColumnType)>, table: crate::registry::TableId },
}

impl Reader<'_> {
    /// Whether every alert of the rule is within what the reader may read.
    pub fn sees_all(&self, rule: &RuleEntry) -> bool {
        matches!(self.access(rule), Some(Access::All))
    }

    fn manages(&self) -> bool {
        self.policy.may(&self.principal.role, Permission::ManageAlerts)
    }

    fn access(&self, rule: &RuleEntry) -> Option<Access> {
        if rule.problem.is_some() {
            return self.manages().then_some(Access::All);
        }
        let def = &rule.record.definition;
        if let Some(k) = &def.kpi {
            let entry = self.kpis.kpis.get(&k.kpi)?;
            return kpi_readable(entry, self.policy, self.principal).then_some(Access::All);
        }
        let rows = def.rows.as_ref()?;
        let tables: Vec<_> = self.replica.tables().map(|t| t.schema.clone()).collect();
        let bound = bind_rows(rows, &tables).ok()?;
        let grant = self.policy.grant(&self.principal.role, &bound.schema).ok()??;
        if !bound.columns.iter().all(|(_, c)| grant.columns.contains(c)) {
            return None;
        }
        let Some(condition) = &grant.filter else { return Some(Access::All) };
        let all: HashMap<String, usize> = column_fields(&bound.schema).into_iter().map(|(i, n)| (n, i)).collect();
        let binding = Binding { schema: &bound.schema, columns: &all };
        let filter = compile(condition, binding, ClaimValues::Token(&self.principal.claims)).ok()?;
        let filter = filter.validate(&bound.schema).ok()?;
        let key_types = bound.schema.key.iter().map(|&i| (i, bound.schema.columns[i].ty.clone())).collect();
        Some(Access::Rows { filter, key_types, table: bound.schema.id() })
    }

    fn sees(&self, access: &Access, instance: &Instance) -> bool {
        match access {
            Access::All => true,
            Access::Rows { filter, key_types, table } => {
                let Ok(serde_json::Value::Array(parts)) = serde_json::from_str::<serde_json::Value>(&instance.key)
                else {
                    return false;
                };
                let mut key = Vec::with_capacity(parts.len());
                for ((_, ty), part) in key_types.iter().zip(&parts) {
                    match crate::policy::literal::value_of(part, ty) {
                        Ok(v) => key.push(v),
                        Err(_) => return false,
                    }
                }
                let row = self.replica.table(*table).and_then(|t| t.get(&Key(key.into())));
                row.is_some_and(|r| filter.matches(r))
            }
        }
    }

    /// The rules the caller may read.
    pub fn rules<'b>(&self, board: &'b AlertBoard) -> Vec<&'b RuleEntry> {
        board.rules.values().filter(|r| self.access(r).is_some()).collect()
    }

    /// The open alerts the caller may read.
    pub fn alerts<'b>(&self, board: &'b AlertBoard) -> Vec<(&'b Instance, &'b RuleEntry)> {
        let mut access: HashMap<RuleId, Option<Access>> = HashMap::new();
        let mut out = Vec::new();
        for ((rule_id, _), instance) in board.instances.iter() {
            let Some(rule) = board.rules.get(rule_id) else { continue };
            let a = access.entry(*rule_id).or_insert_with(|| self.access(rule));
            if let Some(a) = a
                && self.sees(a, instance)
            {
                out.push((&**instance, rule));
            }
        }
        out
    }

    /// Whether the caller may read a recorded transition: its rule is readable and, for a row
    /// rule, the row is readable now or the transition's own images pass the reader's filter.
    pub fn may_read_rule(&self, board: &AlertBoard, rule: RuleId) -> Option<bool> {
        let entry = board.rules.get(&rule)?;
        Some(matches!(self.access(entry), Some(Access::All)))
    }
}

/// The request's alert service.
pub fn service<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Arc<AlertService>> {
    ctx.data::<Arc<AlertService>>().map_err(|_| error(Code::Internal, "alerts are not running on this server"))
}

/// An `ID` argument as a number.
pub fn id_argument(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<i64>> {
    let Some(value) = ctx.args.get(name).filter(|v| !v.is_null()) else { return Ok(None) };
    numeric_id(value.as_value())
        .map(Some)
        .ok_or_else(|| error(Code::BadUserInput, format!("{name}: an id is a number")))
}

/// The `alerts(where:)` narrowing.
#[derive(Clone, Debug, Default)]
pub struct Narrow {
    pub states: Option<Vec<AlertState>>,
    pub severities: Option<Vec<Severity>>,
    pub rule: Option<RuleId>,
}

impl Narrow {
    pub fn read(ctx: &ResolverContext<'_>) -> async_graphql::Result<Narrow> {
        let Some(arg) = ctx.args.get("where").filter(|v| !v.is_null()) else { return Ok(Narrow::default()) };
        let Gql::Object(fields) = arg.as_value() else { return Ok(Narrow::default()) };
        let names = |key: &str| -> Option<Vec<String>> {
            match fields.get(key)? {
                Gql::List(items) => Some(
                    items
                        .iter()
                        .filter_map(|i| match i {
                            Gql::Enum(n) => Some(n.to_string()),
                            Gql::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                Gql::Enum(n) => Some(vec![n.to_string()]),
                _ => None,
            }
        };
        let states = names("state").map(|v| v.iter().filter_map(|s| AlertState::parse(s)).collect());
        let severities = names("severity")
            .map(|v| v.iter().filter_map(|s| Severity::ALL.into_iter().find(|x| x.name() == s)).collect());
        let rule = match fields.get("ruleId") {
            Some(Gql::String(s)) => {
                Some(RuleId(s.parse().map_err(|_| error(Code::BadUserInput, "where.ruleId: an id is a number"))?))
            }
            Some(Gql::Number(n)) => n.as_i64().map(RuleId),
            _ => None,
        };
        Ok(Narrow { states, severities, rule })
    }

    pub fn admits(&self, instance: &Instance, rule: &RuleEntry) -> bool {
        self.states.as_ref().is_none_or(|s| s.contains(&instance.state))
            && self.severities.as_ref().is_none_or(|s| s.contains(&rule.record.definition.severity))
            && self.rule.is_none_or(|r| r == instance.rule)
    }
}

/// What a caller sees of one alert, to tell when the answer changed.
pub type Seen = (RuleId, String, AlertState, bool, u64);

/// The alerts a caller sees on `board`, narrowed, as GraphQL values.
pub fn alert_values(
    board: &AlertBoard,
    reader: &Reader<'_>,
    narrow: &Narrow,
    now: i64,
) -> (Vec<Seen>, Vec<FieldValue<'static>>) {
    let mut key = Vec::new();
    let mut values = Vec::new();
    for (instance, rule) in reader.alerts(board) {
        if !narrow.admits(instance, rule) {
            continue;
        }
        let out = alert_out(instance, rule, &board.silences, now);
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            instance.value.hash(&mut h);
            instance.summary.hash(&mut h);
            out.silenced.hash(&mut h);
            instance.acknowledged.as_ref().map(|a| a.at).hash(&mut h);
            h.finish()
        };
        key.push((instance.rule, instance.key.clone(), instance.state, out.silenced, hash));
        values.push(FieldValue::owned_any(out));
    }
    (key, values)
}

pub fn fields(query: Object) -> Object {
    query
        .field(
            Field::new("alertRules", TypeRef::named_nn_list_nn(RULE), |ctx| {
                FieldFuture::new(async move {
                    let service = service(&ctx)?;
                    let scope = ctx.data::<Scope>()?;
                    let (board, kpis, policy) =
                        (service.hub.current(), service.kpis.current(), service.policy.current().policy);
                    let reader =
                        Reader { policy: &policy, principal: &scope.principal, kpis: &kpis, replica: &scope.replica };
                    let rules = reader.rules(&board);
                    Ok(Some(FieldValue::list(rules.into_iter().map(|r| {
                        let overflow = reader.sees_all(r).then_some(r.overflow);
                        FieldValue::owned_any(RuleOut(r.clone(), overflow))
                    }))))
                })
            })
            .description("The alert rules your role may read."),
        )
        .field(
            Field::new("alerts", TypeRef::named_nn_list_nn(ALERT), |ctx| {
                FieldFuture::new(async move {
                    let service = service(&ctx)?;
                    let scope = ctx.data::<Scope>()?;
                    let narrow = Narrow::read(&ctx)?;
                    let (board, kpis, policy) =
                        (service.hub.current(), service.kpis.current(), service.policy.current().policy);
                    let reader =
                        Reader { policy: &policy, principal: &scope.principal, kpis: &kpis, replica: &scope.replica };
                    let now = chrono::Utc::now().timestamp_micros();
                    Ok(Some(FieldValue::list(alert_values(&board, &reader, &narrow, now).1)))
                })
            })
            .argument(InputValue::new("where", TypeRef::named(WHERE)))
            .description("The alerts pending or firing now that your role may read."),
        )
        .field(
            Field::new("alertHistory", TypeRef::named_nn_list_nn(TRANSITION), |ctx| {
                FieldFuture::new(async move {
                    let service = service(&ctx)?;
                    let scope = ctx.data::<Scope>()?;
                    let rule = id_argument(&ctx, "ruleId")?.map(RuleId);
                    let from = time_argument(&ctx, "from")?;
                    let to = time_argument(&ctx, "to")?;
                    let limit = ctx.args.get("limit").and_then(|v| v.i64().ok()).unwrap_or(100);
                    if !(1..=10_000).contains(&limit) {
                        return Err(error(Code::BadUserInput, "limit: between 1 and 10000"));
                    }
                    let filter = HistoryFilter { rule, from, to, limit };
                    let records = service.store.alert_history(&filter).await.map_err(|e| {
                        tracing::error!(error = %e, "cannot read alert history");
                        error(Code::Internal, "the alert history cannot be read right now")
                    })?;
                    let (board, kpis, policy) =
                        (service.hub.current(), service.kpis.current(), service.policy.current().policy);
                    let reader =
                        Reader { policy: &policy, principal: &scope.principal, kpis: &kpis, replica: &scope.replica };
                    let mut allowed: HashMap<RuleId, bool> = HashMap::new();
                    let visible = records.into_iter().filter(|r| {
                        // Row rules' history holds row images: only readers who may read every
                        // row of the rule see it; rules deleted since are not shown.
                        *allowed
                            .entry(r.transition.rule)
                            .or_insert_with(|| reader.may_read_rule(&board, r.transition.rule).unwrap_or(false))
                    });
                    Ok(Some(FieldValue::list(visible.map(|r| FieldValue::owned_any(TransitionOut(r))))))
                })
            })
            .argument(InputValue::new("ruleId", TypeRef::named(TypeRef::ID)))
            .argument(InputValue::new("from", TypeRef::named("Timestamptz")))
            .argument(InputValue::new("to", TypeRef::named("Timestamptz")))
            .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT)))
            .description(
                "Recorded transitions, newest first (at most `limit`, 100 by default), with their provenance.",
            ),
        )
        .field(
            Field::new("silences", TypeRef::named_nn_list_nn(SILENCE), |ctx| {
                FieldFuture::new(async move {
                    let service = service(&ctx)?;
                    let board = service.hub.current();
                    Ok(Some(FieldValue::list(
                        board.silences.iter().map(|s| FieldValue::owned_any(SilenceOut(s.clone()))),
                    )))
                })
            })
            .description("Silences that have not ended."),
        )
}

/// A `Timestamptz` argument in µs.
pub fn time_argument(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<i64>> {
    let Some(value) = ctx.args.get(name).filter(|v| !v.is_null()) else { return Ok(None) };
    let Gql::String(s) = value.as_value() else {
        return Err(error(Code::BadUserInput, format!("{name}: an RFC 3339 timestamp")));
    };
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.timestamp_micros()))
        .map_err(|e| error(Code::BadUserInput, format!("{name}: `{s}` is not an RFC 3339 timestamp ({e})")))
}

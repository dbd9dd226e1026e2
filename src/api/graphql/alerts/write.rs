//! The mutations: `createAlertRule`, `updateAlertRule`, `deleteAlertRule`,
//! `acknowledgeAlert`, `createSilence`, `expireSilence`.
//!
//! Rules and silences need the `manage_alerts` permission (FORBIDDEN otherwise). A rule is
//! bound against the request's replica version before anything is stored (an invalid one is
//! BAD_USER_INPUT naming the input field, and nothing changes); a rule on a KPI must name a
//! KPI the caller may read. Acknowledging needs only that the caller may read the alert: it
//! is how the people who see an alert say they are on it. Who acknowledged is the token's
//! `sub`.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use async_graphql::Value as Gql;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};
use serde_json::Value as Json;

use super::AlertService;
use super::read::{Reader, id_argument, service, time_argument};
use super::types::{ALERT, MATCHER_INPUT, RULE, RULE_INPUT, RuleOut, SILENCE, SilenceOut, alert_out};
use crate::alert::rule::{AlertRuleDefinition, bind, bind_rows};
use crate::alert::runtime::RuleEntry;
use crate::alert::silence::{self, Matcher};
use crate::alert::{Ack, RuleId};
use crate::api::graphql::errors::{Code, error};
use crate::api::graphql::kpis::readable as kpi_readable;
use crate::api::graphql::loading::pending;
use crate::api::graphql::resolve::Scope;
use crate::kpi::DefinitionError;
use crate::policy::Permission;
use crate::registry::Registry;
use crate::store::StoreError;
use crate::store::alerts::AlertRuleRecord;

pub fn fields(mutation: Object) -> Object {
    let id = || InputValue::new("id", TypeRef::named_nn(TypeRef::ID));
    let input = || InputValue::new("input", TypeRef::named_nn(RULE_INPUT));
    mutation
        .field(
            Field::new("createAlertRule", TypeRef::named_nn(RULE), |ctx| FieldFuture::new(create(ctx)))
                .argument(input())
                .description("Defines an alert rule (needs `manage_alerts`); it is evaluated at once."),
        )
        .field(
            Field::new("updateAlertRule", TypeRef::named_nn(RULE), |ctx| FieldFuture::new(update(ctx)))
                .argument(id())
                .argument(input())
                .description("Replaces a rule (needs `manage_alerts`); its alerts are evaluated afresh."),
        )
        .field(
            Field::new("deleteAlertRule", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| FieldFuture::new(delete(ctx)))
                .argument(id())
                .description("Deletes a rule, its alerts and its history (needs `manage_alerts`)."),
        )
        .field(
            Field::new("acknowledgeAlert", TypeRef::named_nn(ALERT), |ctx| FieldFuture::new(acknowledge(ctx)))
                .argument(InputValue::new("ruleId", TypeRef::named_nn(TypeRef::ID)))
                .argument(InputValue::new("instance", TypeRef::named_nn(TypeRef::STRING)))
                .argument(InputValue::new("note", TypeRef::named(TypeRef::STRING)))
                .description(
                    "Says you are on it: recorded with your token's `sub`, the time and the note; it stops repeated \
                     notifications until the alert resolves.",
                ),
        )
        .field(
            Field::new("createSilence", TypeRef::named_nn(SILENCE), |ctx| FieldFuture::new(create_silence(ctx)))
                .argument(InputValue::new("matchers", TypeRef::named_nn_list_nn(MATCHER_INPUT)))
                .argument(InputValue::new("startsAt", TypeRef::named("Timestamptz")).description("Now when left out."))
                .argument(InputValue::new("endsAt", TypeRef::named("Timestamptz")))
                .argument(
                    InputValue::new("duration", TypeRef::named(TypeRef::STRING))
                        .description("Instead of `endsAt`: `PT2H`, `2h`."),
                )
                .argument(InputValue::new("comment", TypeRef::named(TypeRef::STRING)))
                .description("Suppresses notification of matching alerts for a while (needs `manage_alerts`)."),
        )
        .field(
            Field::new("expireSilence", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| {
                FieldFuture::new(expire_silence(ctx))
            })
            .argument(id())
            .description("Ends a silence now (needs `manage_alerts`); false when it had ended."),
        )
}

fn authorised<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<(&'a Arc<AlertService>, &'a Scope)> {
    let service = service(ctx)?;
    let scope = ctx.data::<Scope>()?;
    if !service.policy.current().policy.may(&scope.principal.role, Permission::ManageAlerts) {
        return Err(error(
            Code::Forbidden,
            format!("role `{}` may not manage alerts (it needs the `manage_alerts` permission)", scope.principal.role),
        ));
    }
    Ok((service, scope))
}

fn bad_input(e: &DefinitionError) -> async_graphql::Error {
    error(Code::BadUserInput, format!("input.{}: {}", e.field, e.message))
        .extend_with(|_, x| x.set("field", format!("input.{}", e.field)))
}

fn store_error(e: StoreError) -> async_graphql::Error {
    match e {
        StoreError::Duplicate(message) => error(Code::BadUserInput, message),
        e => {
            tracing::error!(error = %e, "cannot store an alert rule");
            error(Code::Internal, "the app database cannot be written right now")
        }
    }
}

/// The `input` argument as a stored definition: the GraphQL input is the definition's JSON
/// with the KPI's `ID` as a number.
fn definition(ctx: &ResolverContext<'_>) -> async_graphql::Result<AlertRuleDefinition> {
    let input = ctx.args.try_get("input")?.as_value().clone();
    let mut json = input.into_json().map_err(|e| error(Code::BadUserInput, format!("input: {e}")))?;
    strip_nulls(&mut json);
    if let Some(kpi) = json.pointer_mut("/kpi/kpi")
        && let Json::String(s) = kpi
    {
        let n: i64 = s.parse().map_err(|_| error(Code::BadUserInput, "input.kpi.kpi: a KPI id is a number"))?;
        *kpi = Json::from(n);
    }
    serde_json::from_value(json).map_err(|e| error(Code::BadUserInput, format!("input: {e}")))
}

/// GraphQL sends absent optional fields as nothing, but explicit nulls as null: both mean
/// "not given" here.
fn strip_nulls(json: &mut Json) {
    if let Json::Object(map) = json {
        map.retain(|_, v| !v.is_null());
        for v in map.values_mut() {
            strip_nulls(v);
        }
    }
}

/// Checks a definition against the request's replica and the KPIs the caller may read.
fn check(
    ctx: &ResolverContext<'_>,
    service: &AlertService,
    scope: &Scope,
    def: &AlertRuleDefinition,
) -> async_graphql::Result<()> {
    let rows = match &def.rows {
        Some(r) => {
            let tables: Vec<_> = scope.replica.tables().map(|t| t.schema.clone()).collect();
            match bind_rows(r, &tables) {
                Ok(bound) => Some(bound),
                Err(e) => {
                    let registry = ctx.data::<Arc<Registry>>()?;
                    let pending = (e.field == "rows.table").then(|| pending(&r.table, registry, &scope.replica));
                    return Err(pending.flatten().unwrap_or_else(|| bad_input(&e)));
                }
            }
        }
        None => None,
    };
    bind(RuleId(0), def.clone(), rows).map_err(|e| bad_input(&e))?;
    if let Some(k) = &def.kpi {
        let kpis = service.kpis.current();
        let policy = service.policy.current().policy;
        let readable = kpis.kpis.get(&k.kpi).is_some_and(|e| kpi_readable(e, &policy, &scope.principal));
        if !readable {
            return Err(bad_input(&DefinitionError::new(
                "kpi.kpi",
                format!("there is no KPI {} your role may read", k.kpi.0),
            )));
        }
    }
    Ok(())
}

async fn hand_over(
    service: &AlertService,
    record: AlertRuleRecord,
) -> async_graphql::Result<Option<FieldValue<'static>>> {
    let id = record.id;
    if let Err(e) = service.hub.set_rule(record.clone()).await {
        // Stored and on the board with its problem: the check above passed, so the replica
        // moved on meanwhile (a table was resynced). The caller sees the problem.
        tracing::warn!(rule = id.0, error = %e, "a new alert rule does not bind");
    }
    let entry = service.hub.current().rules.get(&id).cloned().unwrap_or(RuleEntry {
        record: Arc::new(record),
        problem: None,
        overflow: 0,
    });
    let overflow = Some(entry.overflow);
    Ok(Some(FieldValue::owned_any(RuleOut(entry, overflow))))
}

async fn create(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let def = definition(&ctx)?;
    check(&ctx, service, scope, &def)?;
    let record =
        service.store.insert_alert_rule(&def, scope.principal.subject.as_deref()).await.map_err(store_error)?;
    hand_over(service, record).await
}

async fn update(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let id = RuleId(id_argument(&ctx, "id")?.ok_or_else(|| error(Code::BadUserInput, "id is required"))?);
    let def = definition(&ctx)?;
    check(&ctx, service, scope, &def)?;
    let record = service
        .store
        .update_alert_rule(id, &def, scope.principal.subject.as_deref())
        .await
        .map_err(store_error)?
        .ok_or_else(|| error(Code::BadUserInput, format!("there is no alert rule {}", id.0)))?;
    hand_over(service, record).await
}

async fn delete(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, _) = authorised(&ctx)?;
    let id = RuleId(id_argument(&ctx, "id")?.ok_or_else(|| error(Code::BadUserInput, "id is required"))?);
    let deleted = service.store.delete_alert_rule(id).await.map_err(store_error)?;
    service.hub.remove_rule(id);
    Ok(Some(FieldValue::value(deleted)))
}

async fn acknowledge(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let service = service(&ctx)?;
    let scope = ctx.data::<Scope>()?;
    let rule = RuleId(id_argument(&ctx, "ruleId")?.ok_or_else(|| error(Code::BadUserInput, "ruleId is required"))?);
    let instance = ctx.args.try_get("instance")?.string()?.to_string();
    let note = ctx.args.get("note").and_then(|v| v.string().ok().map(str::to_string));
    let missing = || error(Code::BadUserInput, "no such alert is pending or firing (it may have resolved)");
    let (board, kpis, policy) = (service.hub.current(), service.kpis.current(), service.policy.current().policy);
    let reader = Reader { policy: &policy, principal: &scope.principal, kpis: &kpis, replica: &scope.replica };
    // An alert the caller may not read answers like one that does not exist.
    if !reader.alerts(&board).iter().any(|(i, _)| i.rule == rule && i.key == instance) {
        return Err(missing());
    }
    let ack = Ack { by: scope.principal.subject.clone(), at: chrono::Utc::now().timestamp_micros(), note };
    let acknowledged = service.hub.acknowledge(rule, instance, ack).await.map_err(|_| missing())?;
    let entry = board.rules.get(&rule).cloned().ok_or_else(missing)?;
    let now = chrono::Utc::now().timestamp_micros();
    Ok(Some(FieldValue::owned_any(alert_out(&acknowledged, &entry, &board.silences, now))))
}

async fn create_silence(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let matchers_json = ctx.args.try_get("matchers")?.as_value().clone().into_json()?;
    let mut matchers_json = matchers_json;
    strip_nulls_in_list(&mut matchers_json);
    let matchers: Vec<Matcher> =
        serde_json::from_value(matchers_json).map_err(|e| error(Code::BadUserInput, format!("matchers: {e}")))?;
    let now = chrono::Utc::now().timestamp_micros();
    let starts_at = time_argument(&ctx, "startsAt")?.unwrap_or(now);
    let ends_at = match (time_argument(&ctx, "endsAt")?, ctx.args.get("duration").and_then(|v| v.string().ok())) {
        (Some(_), Some(_)) => return Err(error(Code::BadUserInput, "give `endsAt` or `duration`, not both")),
        (Some(t), None) => t,
        (None, Some(d)) => {
            starts_at
                + crate::duration::parse_micros(d).map_err(|e| error(Code::BadUserInput, format!("duration: {e}")))?
        }
        (None, None) => return Err(error(Code::BadUserInput, "give `endsAt` or `duration`")),
    };
    silence::check(&matchers, starts_at, ends_at).map_err(|e| error(Code::BadUserInput, e.to_string()))?;
    let comment = ctx.args.get("comment").and_then(|v| v.string().ok().map(str::to_string));
    let created = service
        .store
        .insert_silence(&matchers, starts_at, ends_at, comment.as_deref(), scope.principal.subject.as_deref())
        .await
        .map_err(store_error)?;
    reload_silences(service).await?;
    Ok(Some(FieldValue::owned_any(SilenceOut(created))))
}

fn strip_nulls_in_list(json: &mut Json) {
    if let Json::Array(items) = json {
        items.iter_mut().for_each(strip_nulls);
    }
}

async fn expire_silence(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, _) = authorised(&ctx)?;
    let id = id_argument(&ctx, "id")?.ok_or_else(|| error(Code::BadUserInput, "id is required"))?;
    let expired = service.store.expire_silence(id).await.map_err(store_error)?;
    reload_silences(service).await?;
    Ok(Some(FieldValue::value(Gql::Boolean(expired))))
}

async fn reload_silences(service: &AlertService) -> async_graphql::Result<()> {
    let silences = service.store.load_silences().await.map_err(store_error)?;
    service.hub.set_silences(silences).await;
    Ok(())
}

//! The mutations: `createKpi`, `updateKpi`, `deleteKpi`.
//!
//! Each needs the `manage_kpis` permission (FORBIDDEN otherwise), then checks the definition
//! by binding it to the request's replica version and the current policy ([`compile_kpi`])
//! before anything is stored: an invalid one is BAD_USER_INPUT naming the input field at
//! fault, and nothing changes. Only then is it stored, and handed to the runtime, which
//! computes its first value before the mutation answers.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};
use serde_json::Value as Json;

use super::KpiService;
use super::read::{KpiOut, id_argument, service};
use super::types::{INPUT, KPI};
use crate::api::graphql::errors::{Code, error};
use crate::api::graphql::loading::pending;
use crate::api::graphql::resolve::Scope;
use crate::kpi::{DefinitionError, KpiDefinition, KpiId, KpiRecord, compile_kpi};
use crate::policy::Permission;
use crate::registry::Registry;
use crate::store::StoreError;

pub fn mutation() -> Object {
    let input = || InputValue::new("input", TypeRef::named_nn(INPUT));
    let id = || InputValue::new("id", TypeRef::named_nn(TypeRef::ID));
    Object::new("Mutation")
        .description("Changes to opslive's own state. Each needs a permission of the caller's role (policy file).")
        .field(
            Field::new("createKpi", TypeRef::named_nn(KPI), |ctx| FieldFuture::new(create(ctx)))
                .argument(input())
                .description("Defines a KPI (needs `manage_kpis`); answers it with its first value."),
        )
        .field(
            Field::new("updateKpi", TypeRef::named_nn(KPI), |ctx| FieldFuture::new(update(ctx)))
                .argument(id())
                .argument(input())
                .description("Replaces a KPI's definition (needs `manage_kpis`); its value is computed afresh."),
        )
        .field(
            Field::new("deleteKpi", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| FieldFuture::new(delete(ctx)))
                .argument(id())
                .description("Deletes a KPI and its history (needs `manage_kpis`); false when there was none."),
        )
}

/// The service and the caller, when the caller's role may manage KPIs.
fn authorised<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<(&'a Arc<KpiService>, &'a Scope)> {
    let service = service(ctx)?;
    let scope = ctx.data::<Scope>()?;
    if !service.policy.current().policy.may(&scope.principal.role, Permission::ManageKpis) {
        return Err(error(
            Code::Forbidden,
            format!("role `{}` may not manage KPIs (it needs the `manage_kpis` permission)", scope.principal.role),
        ));
    }
    Ok((service, scope))
}

fn bad_input(field: &str, message: impl std::fmt::Display) -> async_graphql::Error {
    let field = if field.is_empty() { "input".to_string() } else { format!("input.{field}") };
    error(Code::BadUserInput, format!("{field}: {message}")).extend_with(|_, e| e.set("field", field.clone()))
}

/// Reads and checks `input` against the request's tables and the current policy.
fn definition(ctx: &ResolverContext<'_>, service: &KpiService, scope: &Scope) -> async_graphql::Result<KpiDefinition> {
    let input = ctx.args.try_get("input")?.as_value().clone().into_json().map_err(|e| bad_input("", e))?;
    let def: KpiDefinition = serde_json::from_value(without_nulls(input)).map_err(|e| bad_input("", e))?;
    let tables: Vec<_> = scope.replica.tables().map(|t| t.schema.clone()).collect();
    if let Err(DefinitionError { field, message }) = compile_kpi(&def, &tables, &service.policy.current().policy) {
        let registry = ctx.data::<Arc<Registry>>()?;
        let pending = (field == "table").then(|| pending(&def.table, registry, &scope.replica)).flatten();
        return Err(pending.unwrap_or_else(|| bad_input(&field, message)));
    }
    Ok(def)
}

/// GraphQL's explicit nulls as absent fields, which is what the definition's defaults mean.
fn without_nulls(json: Json) -> Json {
    match json {
        Json::Object(map) => {
            Json::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect())
        }
        other => other,
    }
}

fn stored(e: StoreError) -> async_graphql::Error {
    match e {
        StoreError::KpiNameTaken(_) => bad_input("name", e),
        e => {
            tracing::error!(error = %e, "cannot store a KPI");
            error(Code::Internal, "the KPI cannot be stored right now")
        }
    }
}

/// Hands a stored record to the runtime and answers the board's entry for it.
async fn define(service: &KpiService, record: KpiRecord) -> async_graphql::Result<Option<FieldValue<'static>>> {
    let id = record.id;
    if let Err(e) = service.hub.define(record).await {
        // Stored and checked a moment ago: the table changed meanwhile. The entry says why.
        tracing::warn!(kpi = id.0, error = %e, "a KPI stored but not bound");
    }
    let entry = service.hub.current().kpis.get(&id).cloned();
    let entry = entry.ok_or_else(|| error(Code::Internal, "the KPI runtime has stopped"))?;
    Ok(Some(FieldValue::owned_any(KpiOut(entry))))
}

async fn create(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let def = definition(&ctx, service, scope)?;
    let record = service.store.insert_kpi(&def, scope.principal.subject.as_deref()).await.map_err(stored)?;
    tracing::info!(kpi = record.id.0, "KPI created");
    define(service, record).await
}

/// Built-in KPIs are sampled from the sources, not defined: they cannot be changed.
fn not_builtin(service: &KpiService, id: KpiId) -> async_graphql::Result<()> {
    match service.hub.current().kpis.get(&id).and_then(|e| e.record.builtin.clone()) {
        Some(b) => Err(error(
            Code::BadUserInput,
            format!(
                "id: KPI {} is built in (the {} of source `{}`): it cannot be changed or deleted",
                id.0,
                b.measure.name(),
                b.source
            ),
        )
        .extend_with(|_, e| e.set("field", "id"))),
        None => Ok(()),
    }
}

async fn update(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let id = id_argument(&ctx)?;
    not_builtin(service, id)?;
    let def = definition(&ctx, service, scope)?;
    let record = service.store.update_kpi(id, &def, scope.principal.subject.as_deref()).await.map_err(stored)?;
    let record = record.ok_or_else(|| bad_input_id(id))?;
    tracing::info!(kpi = id.0, "KPI updated");
    define(service, record).await
}

fn bad_input_id(id: KpiId) -> async_graphql::Error {
    error(Code::BadUserInput, format!("id: there is no KPI {}", id.0)).extend_with(|_, e| e.set("field", "id"))
}

async fn delete(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, _) = authorised(&ctx)?;
    let id = id_argument(&ctx)?;
    not_builtin(service, id)?;
    let existed = service.store.delete_kpi(id).await.map_err(stored)?;
    if existed {
        tracing::info!(kpi = id.0, "KPI deleted");
        service.hub.remove(id);
        // Answer once the board no longer has it, so a query right after does not see it.
        let mut board = service.hub.board.clone();
        let gone = board.wait_for(|b| !b.kpis.contains_key(&id));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), gone).await;
    }
    Ok(Some(FieldValue::value(existed)))
}

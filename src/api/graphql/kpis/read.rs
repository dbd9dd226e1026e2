//! Who may see a KPI, and the query fields `kpis` and `kpi(id)`.
//!
//! A KPI is readable by a role that could compute it itself ([`crate::kpi::may_read`]: every
//! column it reads is visible, and its rows are within the role's row filter). A KPI whose
//! definition does not bind right now (its table is not loaded, a column went away) has no
//! compiled form to judge by: only roles that manage KPIs see it, so they can repair it.
//!
//! Built-in KPIs (a source's health) carry no row data and are readable by every role.
//!
//! `kpi(id)` answers null for a KPI the caller may not read, exactly as for one that does not
//! exist (like `…ByKey` for a row the role's filter hides): whether it exists is not leaked.

use std::sync::Arc;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};

use super::KpiService;
use super::types::KPI;
use crate::api::graphql::errors::{Code, error};
use crate::api::graphql::output::numeric_id;
use crate::api::graphql::resolve::Scope;
use crate::auth::Principal;
use crate::kpi::{GroupValue, KpiBoard, KpiEntry, KpiId, KpiValue, may_read};
use crate::policy::{Permission, Policy};
use crate::value::Value;

/// A KPI as a GraphQL value.
pub struct KpiOut(pub std::sync::Arc<KpiEntry>);

impl KpiOut {
    /// The value of an ungrouped, ready KPI.
    pub fn single(&self) -> Option<&Value> {
        if !self.0.record.definition.group_by.is_empty() {
            return None;
        }
        match &self.0.value {
            KpiValue::Groups(groups) => groups.first().map(|g| &g.value),
            KpiValue::NotReady(_) => None,
        }
    }
}

/// One group of a KPI as a GraphQL value.
pub struct GroupOut {
    pub names: Vec<String>,
    pub group: std::sync::Arc<GroupValue>,
    /// The KPI's id and comparison, for the group's `previousValue`.
    pub kpi: KpiId,
    pub comparison: Option<crate::kpi::Comparison>,
}

/// Whether `principal` may read `entry` under `policy`.
pub fn readable(entry: &KpiEntry, policy: &Policy, principal: &Principal) -> bool {
    if entry.record.builtin.is_some() {
        // A source's health carries no row data: everyone watching may see it.
        return true;
    }
    match &entry.compiled {
        Some(compiled) => may_read(compiled, policy, &principal.role, &principal.claims),
        None => policy.may(&principal.role, Permission::ManageKpis),
    }
}

/// The KPIs of `board` that `principal` may read, by id: only built-in ones (`Some(true)`),
/// only defined ones (`Some(false)`), or both.
pub fn visible<'a>(
    board: &'a KpiBoard,
    policy: &Policy,
    principal: &Principal,
    builtin: Option<bool>,
) -> Vec<&'a std::sync::Arc<KpiEntry>> {
    board
        .kpis
        .values()
        .filter(|e| builtin.is_none_or(|b| b == e.record.builtin.is_some()))
        .filter(|e| readable(e, policy, principal))
        .collect()
}

/// The optional `builtin` argument of `kpis`.
pub fn builtin_argument(ctx: &ResolverContext<'_>) -> Option<bool> {
    ctx.args.get("builtin").and_then(|v| v.boolean().ok())
}

pub fn builtin_input() -> InputValue {
    InputValue::new("builtin", TypeRef::named(TypeRef::BOOLEAN)).description(
        "`true`: only the built-in KPIs (each source's health); `false`: only KPIs someone defined; absent: both.",
    )
}

/// The request's KPI service.
pub fn service<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Arc<KpiService>> {
    ctx.data::<Arc<KpiService>>().map_err(|_| error(Code::Internal, "KPIs are not running on this server"))
}

/// An `ID` argument as a KPI id.
pub fn id_argument(ctx: &ResolverContext<'_>) -> async_graphql::Result<KpiId> {
    let value = ctx.args.try_get("id")?;
    numeric_id(value.as_value()).map(KpiId).ok_or_else(|| error(Code::BadUserInput, "id: a KPI id is a number"))
}

pub fn fields(query: Object) -> Object {
    query
        .field(
            Field::new("kpis", TypeRef::named_nn_list_nn(KPI), |ctx| {
                FieldFuture::new(async move {
                    let service = service(&ctx)?;
                    let scope = ctx.data::<Scope>()?;
                    let board = service.hub.current();
                    let policy = service.policy.current().policy;
                    let kpis = visible(&board, &policy, &scope.principal, builtin_argument(&ctx));
                    Ok(Some(FieldValue::list(kpis.into_iter().map(|e| FieldValue::owned_any(KpiOut(e.clone()))))))
                })
            })
            .argument(builtin_input())
            .description("The KPIs your role may read (those it could compute itself, and every source's built-in health KPIs), by id."),
        )
        .field(
            Field::new("kpi", TypeRef::named(KPI), |ctx| {
                FieldFuture::new(async move {
                    let service = service(&ctx)?;
                    let scope = ctx.data::<Scope>()?;
                    let id = id_argument(&ctx)?;
                    let board = service.hub.current();
                    let policy = service.policy.current().policy;
                    let entry = board.kpis.get(&id).filter(|e| readable(e, &policy, &scope.principal));
                    Ok(entry.map(|e| FieldValue::owned_any(KpiOut(e.clone()))))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
            .description("One KPI; null when it does not exist or your role may not read it."),
        )
}

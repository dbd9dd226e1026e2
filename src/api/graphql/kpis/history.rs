//! `kpiHistory(id, from, to, step)`: a KPI's per-minute rollups from the app database, in steps
//! of a minute or more (per step and group: the last value, the lowest, the highest), for the
//! roles that may read the KPI.

use async_graphql::Value as Gql;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};

use super::read::{id_argument, readable, service};
use crate::api::graphql::errors::{Code, error};
use crate::api::graphql::resolve::Scope;
use crate::kpi::KpiId;
use crate::store::kpi_history::HistoryPoint;
use crate::value::Value;

pub const POINT: &str = "KpiHistoryPoint";

/// The most points one answer may hold: a week of minutes for one group.
const MAX_POINTS: i64 = 10_080;

fn time_argument(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<i64>> {
    let Some(value) = ctx.args.get(name).filter(|v| !v.is_null()) else { return Ok(None) };
    let Gql::String(s) = value.as_value() else {
        return Err(error(Code::BadUserInput, format!("{name}: an RFC 3339 timestamp")));
    };
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.timestamp_micros()))
        .map_err(|e| error(Code::BadUserInput, format!("{name}: `{s}` is not an RFC 3339 timestamp ({e})")))
}

/// The history of `id` from `from` to `to` in the steps the `step` argument asks for (a
/// minute when left out); a bad step or a range of too many steps is the caller's error.
pub async fn history_steps(
    ctx: &ResolverContext<'_>,
    id: KpiId,
    from: i64,
    to: i64,
) -> async_graphql::Result<Vec<HistoryPoint>> {
    let service = service(ctx)?;
    let step = match ctx.args.get("step").and_then(|v| v.string().ok()) {
        Some(text) => {
            crate::duration::parse_micros(text).map_err(|e| error(Code::BadUserInput, format!("step: {e}")))?
        }
        None => 60_000_000,
    };
    if step < 60_000_000 || step % 60_000_000 != 0 {
        return Err(error(Code::BadUserInput, "step: whole minutes, at least one (`PT1M`, `PT15M`, `PT1H`)"));
    }
    if to <= from || (to - from) / step > MAX_POINTS {
        return Err(error(
            Code::BadUserInput,
            format!("from/to: a range after its start of at most {MAX_POINTS} steps"),
        ));
    }
    service.store.kpi_history(id, from, to, step).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read KPI history");
        error(Code::Internal, "the KPI history cannot be read right now")
    })
}

pub fn fields(query: Object) -> Object {
    query.field(
        Field::new("kpiHistory", TypeRef::named_nn_list_nn(POINT), |ctx| {
            FieldFuture::new(async move {
                let service = service(&ctx)?;
                let scope = ctx.data::<Scope>()?;
                let id = id_argument(&ctx)?;
                let board = service.hub.current();
                let policy = service.policy.current().policy;
                // A KPI the caller may not read has no history for them, like one that does not exist.
                if !board.kpis.get(&id).is_some_and(|e| readable(e, &policy, &scope.principal)) {
                    return Ok(Some(FieldValue::list(Vec::<FieldValue>::new())));
                }
                let now = chrono::Utc::now().timestamp_micros();
                let to = time_argument(&ctx, "to")?.unwrap_or(now);
                let from = time_argument(&ctx, "from")?.unwrap_or(to - 3_600_000_000);
                let points = history_steps(&ctx, id, from, to).await?;
                Ok(Some(FieldValue::list(points.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .argument(
            InputValue::new("from", TypeRef::named("Timestamptz")).description("An hour before `to` when left out."),
        )
        .argument(InputValue::new("to", TypeRef::named("Timestamptz")).description("Now when left out."))
        .argument(
            InputValue::new("step", TypeRef::named(TypeRef::STRING))
                .description("Whole minutes: `PT1M` (default), `PT15M`, `PT1H`."),
        )
        .description("A KPI's recorded history, per step and group (empty for a KPI your role may not read)."),
    )
}

fn point_field(name: &str, ty: TypeRef, read: fn(&HistoryPoint) -> Option<FieldValue<'static>>) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move { Ok(read(ctx.parent_value.try_downcast_ref::<HistoryPoint>()?)) })
    })
}

fn float(x: Option<f64>) -> Option<FieldValue<'static>> {
    x.and_then(async_graphql::Number::from_f64).map(|n| FieldValue::value(Gql::Number(n)))
}

pub fn point() -> Object {
    Object::new(POINT)
        .description("One step of a KPI's history for one group.")
        .field(point_field("at", TypeRef::named_nn("Timestamptz"), |p| {
            Some(FieldValue::value(Gql::String(Value::TimestampTz(p.at).to_canonical_string())))
        }))
        .field(point_field("group", TypeRef::named("JSON"), |p| {
            serde_json::from_str::<serde_json::Value>(&p.group)
                .ok()
                .and_then(|j| Gql::from_json(j).ok())
                .map(FieldValue::value)
        }))
        .field(point_field("last", TypeRef::named_nn(TypeRef::STRING), |p| {
            Some(FieldValue::value(Gql::String(p.last.clone())))
        }))
        .field(point_field("lastFloat", TypeRef::named(TypeRef::FLOAT), |p| float(p.last_value)))
        .field(point_field("min", TypeRef::named(TypeRef::FLOAT), |p| float(p.min)))
        .field(point_field("max", TypeRef::named(TypeRef::FLOAT), |p| float(p.max)))
}

//! What a KPI's value is compared with, and its recent series: `previousValue` (on `Kpi` and
//! on each `KpiGroup`: the value one day or one week earlier, per the definition's
//! `comparison`) and `series(last, step)`, both read from the recorded history.
//!
//! The history is per minute, so a comparison is the last value of the minute that held the
//! instant one day (week) before now. Subscriptions render these fields on every frame: the
//! earlier values are cached per KPI and minute, so a busy KPI costs one read a minute, not
//! one per frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::Value as Gql;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};

use super::KpiService;
use super::history::{POINT, history_steps};
use super::read::{GroupOut, KpiOut, service};
use crate::api::graphql::errors::{Code, error};
use crate::kpi::history::MINUTE;
use crate::kpi::{Comparison, KpiId};
use crate::store::kpi_history::HistoryPoint;
use crate::value::Value;

/// Each group's earlier point, by (KPI, minute compared with).
type Cache = HashMap<(KpiId, i64), Arc<Vec<HistoryPoint>>>;

/// Earlier values, shared by every request.
#[derive(Clone, Debug, Default)]
pub struct Earlier(Arc<Mutex<Cache>>);

/// Entries kept before the cache starts over (a KPI needs one a minute).
const MOST_CACHED: usize = 4096;

impl Earlier {
    /// Each group's value `comparison` before now, from the history (cached per minute).
    async fn points(
        &self,
        service: &KpiService,
        kpi: KpiId,
        comparison: Comparison,
    ) -> async_graphql::Result<Arc<Vec<HistoryPoint>>> {
        let at = chrono::Utc::now().timestamp_micros() - comparison.offset_micros();
        let minute = at.div_euclid(MINUTE) * MINUTE;
        if let Some(points) = self.0.lock().expect("cache lock").get(&(kpi, minute)) {
            return Ok(points.clone());
        }
        let points = Arc::new(service.store.kpi_values_at(kpi, at).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read KPI history");
            error(Code::Internal, "the KPI history cannot be read right now")
        })?);
        let mut cache = self.0.lock().expect("cache lock");
        if cache.len() >= MOST_CACHED {
            cache.clear();
        }
        cache.insert((kpi, minute), points.clone());
        Ok(points)
    }
}

fn group_text(key: &[Value]) -> String {
    if key.is_empty() { String::new() } else { serde_json::to_string(key).unwrap_or_default() }
}

fn float(x: Option<f64>) -> Option<FieldValue<'static>> {
    x.and_then(async_graphql::Number::from_f64).map(|n| FieldValue::value(Gql::Number(n)))
}

/// The earlier point of one group of a KPI, when the KPI has a comparison and history then.
async fn earlier(
    ctx: &ResolverContext<'_>,
    kpi: KpiId,
    comparison: Option<Comparison>,
    group: String,
) -> async_graphql::Result<Option<HistoryPoint>> {
    let Some(comparison) = comparison else { return Ok(None) };
    let service = service(ctx)?;
    let points = service.earlier.points(service, kpi, comparison).await?;
    Ok(points.iter().find(|p| p.group == group).cloned())
}

fn kpi_earlier(name: &str, ty: TypeRef, read: fn(HistoryPoint) -> Option<FieldValue<'static>>) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let k = ctx.parent_value.try_downcast_ref::<KpiOut>()?;
            if !k.0.record.definition.group_by.is_empty() {
                return Ok(None);
            }
            let (id, comparison) = (k.0.record.id, k.0.record.definition.comparison);
            Ok(earlier(&ctx, id, comparison, String::new()).await?.and_then(read))
        })
    })
}

fn group_earlier(name: &str, ty: TypeRef, read: fn(HistoryPoint) -> Option<FieldValue<'static>>) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let g = ctx.parent_value.try_downcast_ref::<GroupOut>()?;
            let group = group_text(&g.group.key);
            Ok(earlier(&ctx, g.kpi, g.comparison, group).await?.and_then(read))
        })
    })
}

fn at(p: HistoryPoint) -> Option<FieldValue<'static>> {
    Some(FieldValue::value(Gql::String(Value::TimestampTz(p.at).to_canonical_string())))
}

/// `previousValue`, `previousValueFloat`, `previousAt` and `series` on `Kpi`.
pub fn kpi_fields(kpi: Object) -> Object {
    let s = TypeRef::STRING;
    kpi.field(
        kpi_earlier("previousValue", TypeRef::named(s), |p| Some(FieldValue::value(Gql::String(p.last))))
            .description("The value one day or one week earlier (the definition's `comparison`), from the history; null without a comparison, when grouped, or with no history then."),
    )
    .field(kpi_earlier("previousValueFloat", TypeRef::named(TypeRef::FLOAT), |p| float(p.last_value)))
    .field(kpi_earlier("previousAt", TypeRef::named("Timestamptz"), at).description("The minute `previousValue` was recorded in."))
    .field(
        Field::new("series", TypeRef::named_nn_list_nn(POINT), |ctx| {
            FieldFuture::new(async move {
                let k = ctx.parent_value.try_downcast_ref::<KpiOut>()?;
                let id = k.0.record.id;
                let last = match ctx.args.get("last").and_then(|v| v.string().ok()) {
                    Some(text) => crate::duration::parse_micros(text).map_err(|e| error(Code::BadUserInput, format!("last: {e}")))?,
                    None => 3_600_000_000,
                };
                if last <= 0 {
                    return Err(error(Code::BadUserInput, "last: must be longer than zero"));
                }
                let to = chrono::Utc::now().timestamp_micros();
                let points = history_steps(&ctx, id, to - last, to).await?;
                Ok(Some(FieldValue::list(points.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(InputValue::new("last", TypeRef::named(s)).description("How far back: `PT1H` (default), `P1D`."))
        .argument(InputValue::new("step", TypeRef::named(s)).description("Whole minutes: `PT1M` (default), `PT15M`."))
        .description("The recorded history up to now, per step and group (as `kpiHistory`)."),
    )
}

/// `previousValue` and `previousValueFloat` on `KpiGroup`.
pub fn group_fields(group: Object) -> Object {
    group
        .field(
            group_earlier("previousValue", TypeRef::named(TypeRef::STRING), |p| {
                Some(FieldValue::value(Gql::String(p.last)))
            })
            .description("This group's value one day or one week earlier (the KPI's `comparison`)."),
        )
        .field(group_earlier("previousValueFloat", TypeRef::named(TypeRef::FLOAT), |p| float(p.last_value)))
}

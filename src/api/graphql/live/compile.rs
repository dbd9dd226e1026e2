//! A subscription's root field compiled into what the live runtime runs: the engine's
//! [`LiveSpec`] (where ∧ the role's row filter, order, page) and how to write its updates.
//!
//! This runs inside async-graphql's subscription resolver, after the document was parsed and
//! validated against the role's schema and its variables bound, so arguments are read by the
//! same code as the query path's (`arguments`). The resolver hands its result to the
//! transport through the request's [`LiveSlot`] and returns an empty stream: the updates are
//! framed by the hub, serialised once per distinct query, not per subscriber.

use std::sync::Mutex;

use async_graphql::dynamic::{FieldValue, ResolverContext};
use futures_util::stream;

use super::super::arguments::{self, MAX_ROWS};
use super::super::errors::{Code, error};
use super::super::resolve::{self, Scope};
use super::super::view::TableView;
use super::projection::{self, Fields, GroupField, RowField, UpdateField};
use crate::aggregate::{AggFn, Input};
use crate::live::{LiveSpec, Shape};
use crate::query::Query;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// The whole result in every message (plain GraphQL subscriptions).
    Full,
    /// `reset`, then `patch`es.
    Patches,
}

/// How a query's updates are written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Render {
    Rows(Fields<RowField>),
    Row(Fields<RowField>),
    Groups { fields: Fields<GroupField>, group_by: Vec<usize>, measures: Vec<(AggFn, Input)> },
    Patches { fields: Fields<UpdateField>, key: Vec<usize> },
}

/// A compiled subscription.
#[derive(Clone, Debug)]
pub struct LiveRequest {
    pub spec: LiveSpec,
    pub render: Render,
    /// The response key of the root field (its alias, or its name).
    pub field: String,
    /// Equal for subscriptions that can share one computation and one payload.
    pub share: String,
}

impl LiveRequest {
    fn new(spec: LiveSpec, render: Render, field: String) -> LiveRequest {
        // Debug output is structural and deterministic for these types (no maps), so it keys
        // the multiplexing table; the table's schema version is in it so a reshaped table
        // never shares with the old shape.
        let share = format!("{}|{}|{:?}|{:?}|{}", spec.table.0, spec.schema.version, spec.shape, render, field);
        LiveRequest { spec, render, field, share }
    }
}

/// What a subscription's resolver hands the transport.
#[derive(Debug)]
pub enum Handover {
    /// A live query, for the live runtime.
    Live(Box<LiveRequest>),
    /// A change stream, read from the change log at the client's pace.
    Changes(Box<super::super::changes::ChangesRequest>),
}

/// Where the resolver leaves the compiled subscription for the transport.
#[derive(Debug, Default)]
pub struct LiveSlot(Mutex<Option<Handover>>);

impl LiveSlot {
    pub fn take(&self) -> Option<Handover> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, handover: Handover) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(handover);
    }
}

pub(in crate::api::graphql) type Updates = stream::Empty<async_graphql::Result<FieldValue<'static>>>;

fn hand_over(ctx: &ResolverContext<'_>, request: LiveRequest) -> async_graphql::Result<Updates> {
    hand_over_any(ctx, Handover::Live(Box::new(request)))
}

/// Leaves `handover` for the transport; over plain HTTP there is none, and subscriptions are
/// refused with where to find them.
pub(in crate::api::graphql) fn hand_over_any(
    ctx: &ResolverContext<'_>,
    handover: Handover,
) -> async_graphql::Result<Updates> {
    let slot = ctx.data::<std::sync::Arc<LiveSlot>>().map_err(|_| {
        error(
            Code::BadRequest,
            "subscriptions are served over WebSocket at /graphql (graphql-transport-ws or graphql-ws) and over Server-Sent Events at /graphql/stream (graphql-sse)",
        )
    })?;
    slot.put(handover);
    Ok(stream::empty())
}

fn response_key(ctx: &ResolverContext<'_>) -> String {
    let field = ctx.ctx.field();
    field.alias().unwrap_or(field.name()).to_string()
}

pub fn rows(view: &TableView, ctx: &ResolverContext<'_>, form: Form) -> async_graphql::Result<Updates> {
    let scope = ctx.data::<Scope>()?;
    resolve::ready(view, &scope.replica)?;
    let (limit, offset) = arguments::page(&ctx.args)?;
    let query = Query {
        filter: resolve::filter(view, ctx, scope)?,
        order: arguments::order(view, &ctx.args)?,
        // One row past the cap tells an answer that grew too large from one that fits.
        limit: Some(limit.unwrap_or(MAX_ROWS + 1)),
        offset,
    };
    let query = query.validate(&view.schema).map_err(|e| error(Code::BadUserInput, e.to_string()))?;
    let field = ctx.ctx.field();
    let render = match form {
        Form::Full => Render::Rows(projection::row(view, &field)?),
        Form::Patches => Render::Patches { fields: projection::update(view, &field)?, key: view.schema.key.clone() },
    };
    let spec = LiveSpec { table: view.id(), schema: view.schema.clone(), shape: Shape::Rows(query) };
    hand_over(ctx, LiveRequest::new(spec, render, response_key(ctx)))
}

pub fn by_key(view: &TableView, ctx: &ResolverContext<'_>) -> async_graphql::Result<Updates> {
    let scope = ctx.data::<Scope>()?;
    resolve::ready(view, &scope.replica)?;
    let key = arguments::key(view, &ctx.args)?;
    let filter = arguments::policy_filter(view, &scope.principal)?;
    let filter = filter.validate(&view.schema).map_err(|e| error(Code::BadUserInput, e.to_string()))?;
    let render = Render::Row(projection::row(view, &ctx.ctx.field())?);
    let spec = LiveSpec { table: view.id(), schema: view.schema.clone(), shape: Shape::Row { key, filter } };
    hand_over(ctx, LiveRequest::new(spec, render, response_key(ctx)))
}

pub fn aggregate(view: &TableView, ctx: &ResolverContext<'_>) -> async_graphql::Result<Updates> {
    let scope = ctx.data::<Scope>()?;
    resolve::ready(view, &scope.replica)?;
    let filter = resolve::filter(view, ctx, scope)?;
    let group_by = arguments::group_by(view, &ctx.args)?;
    let spec = super::super::aggregates::spec(view, group_by, &ctx.look_ahead());
    // Checked now, so an unusable aggregate is an error of the subscribe, not of a later update.
    crate::aggregate::Aggregate::new(spec.clone(), &view.schema)
        .map_err(|e| error(Code::BadUserInput, e.to_string()))?;
    let render = Render::Groups {
        fields: projection::group(view, &ctx.ctx.field())?,
        group_by: spec.group_by.clone(),
        measures: spec.measures.clone(),
    };
    let spec = LiveSpec { table: view.id(), schema: view.schema.clone(), shape: Shape::Aggregate { filter, spec } };
    hand_over(ctx, LiveRequest::new(spec, render, response_key(ctx)))
}

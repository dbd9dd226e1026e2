//! The root fields' resolvers: rows, one row by key, aggregate groups.
//!
//! Each request reads one replica version (taken once per request, so every field of it sees
//! the same transaction-consistent state) through the caller's view: the client's `where`
//! AND-ed with the role's row filter, then the engine's `select` or aggregate. A table that is
//! not ready answers `NOT_READY`, never partial rows.

use std::sync::Arc;

use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};

use super::aggregates::{self, GroupOut};
use super::arguments::{self, MAX_ROWS};
use super::errors::{Code, error};
use super::view::TableView;
use crate::aggregate::aggregate_table;
use crate::auth::Principal;
use crate::query::{Filter, Query, select};
use crate::replica::{Replica, Table, TableState};

/// What every resolver of one request reads: the caller and the replica version it is
/// answered from.
pub struct Scope {
    pub principal: Principal,
    pub replica: Arc<Replica>,
}

/// The view's table in this request's replica version, if it can be answered from.
fn ready<'a>(view: &TableView, replica: &'a Replica) -> Result<&'a Table, async_graphql::Error> {
    let table = replica
        .table(view.id())
        .ok_or_else(|| error(Code::NotReady, format!("table `{}` is not loaded yet; retry shortly", view.field)))?;
    match &table.state {
        // The schema was built from this very version, so a different shape means a resync
        // began between the two reads: treat it as not ready rather than misread columns.
        TableState::Ready if Arc::ptr_eq(&table.schema, &view.schema) => Ok(table),
        TableState::Ready => Err(error(Code::NotReady, format!("table `{}` changed shape; retry", view.field))),
        TableState::Loading => {
            Err(error(Code::NotReady, format!("table `{}` is loading its snapshot; retry shortly", view.field)))
        }
        TableState::Stale { reason } => {
            Err(error(Code::NotReady, format!("table `{}` is waiting for a resync: {reason}", view.field)))
        }
    }
}

/// The client's `where` and the role's row filter, checked against the table.
fn filter(view: &TableView, ctx: &ResolverContext<'_>, scope: &Scope) -> Result<Filter, async_graphql::Error> {
    let filter = arguments::where_filter(view, &ctx.args)?.and(arguments::policy_filter(view, &scope.principal)?);
    filter.validate(&view.schema).map_err(|e| error(Code::BadUserInput, e.to_string()))
}

pub fn rows(view: Arc<TableView>) -> impl for<'a> Fn(ResolverContext<'a>) -> FieldFuture<'a> + Send + Sync {
    move |ctx| {
        let view = view.clone();
        FieldFuture::new(async move {
            let scope = ctx.data::<Scope>()?;
            let table = ready(&view, &scope.replica)?;
            let (limit, offset) = arguments::page(&ctx.args)?;
            let query = Query {
                filter: filter(&view, &ctx, scope)?,
                order: arguments::order(&view, &ctx.args)?,
                // One row past the cap tells an unbounded answer that is too large from one that fits.
                limit: Some(limit.unwrap_or(MAX_ROWS + 1)),
                offset,
            };
            let query = query.validate(&view.schema).map_err(|e| error(Code::BadUserInput, e.to_string()))?;
            let rows = select(table, &query);
            if limit.is_none() && rows.len() > MAX_ROWS {
                return Err(error(
                    Code::BadUserInput,
                    format!("more than {MAX_ROWS} rows of `{}` match: page with `limit` and `offset`", view.field),
                ));
            }
            Ok(Some(FieldValue::list(rows.into_iter().map(FieldValue::owned_any))))
        })
    }
}

pub fn by_key(view: Arc<TableView>) -> impl for<'a> Fn(ResolverContext<'a>) -> FieldFuture<'a> + Send + Sync {
    move |ctx| {
        let view = view.clone();
        FieldFuture::new(async move {
            let scope = ctx.data::<Scope>()?;
            let table = ready(&view, &scope.replica)?;
            let key = arguments::key(&view, &ctx.args)?;
            let policy = arguments::policy_filter(&view, &scope.principal)?;
            // A row the role's filter hides is answered like a row that does not exist.
            let row = table.get(&key).filter(|row| policy.matches(row)).cloned();
            Ok(row.map(FieldValue::owned_any))
        })
    }
}

pub fn aggregate(view: Arc<TableView>) -> impl for<'a> Fn(ResolverContext<'a>) -> FieldFuture<'a> + Send + Sync {
    move |ctx| {
        let view = view.clone();
        FieldFuture::new(async move {
            let scope = ctx.data::<Scope>()?;
            let table = ready(&view, &scope.replica)?;
            let filter = filter(&view, &ctx, scope)?;
            let group_by = arguments::group_by(&view, &ctx.args)?;
            let spec = aggregates::spec(&view, group_by, &ctx.look_ahead());
            let aggregate =
                aggregate_table(table, &filter, spec.clone()).map_err(|e| error(Code::BadUserInput, e.to_string()))?;
            let groups = aggregate.groups();
            if groups.len() > MAX_ROWS {
                return Err(error(
                    Code::BadUserInput,
                    format!("more than {MAX_ROWS} groups: group by fewer columns or narrow `where`"),
                ));
            }
            let groups = groups.into_iter().map(|result| {
                FieldValue::owned_any(GroupOut {
                    result,
                    group_by: spec.group_by.clone(),
                    measures: spec.measures.clone(),
                })
            });
            Ok(Some(FieldValue::list(groups)))
        })
    }
}

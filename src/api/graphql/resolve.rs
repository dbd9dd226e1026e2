//! The root fields' resolvers: rows, one row by key, aggregate groups.
//!
//! Each request reads one replica version (taken once per request, so every field of it sees
//! the same transaction-consistent state) through the caller's view: the client's `where`
//! AND-ed with the role's row filter, then the engine's `select` or aggregate. A table that is
//! not ready answers `NOT_READY`, never partial rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};

use super::aggregates::{self, GroupOut};
use super::arguments::{self, MAX_ROWS};
use super::errors::{Code, error};
use super::view::TableView;
use crate::aggregate::aggregate_table;
use crate::auth::Principal;
use crate::query::{Filter, Query, select};
use crate::replica::{Replica, Table, TableState};

/// Rows (and groups) one request may return over all its fields: aliases could otherwise ask
/// for [`MAX_ROWS`] many times over.
pub const MAX_ROWS_PER_REQUEST: usize = 50_000;

/// What every resolver of one request reads: the caller and the replica version it is
/// answered from.
pub struct Scope {
    pub principal: Principal,
    pub replica: Arc<Replica>,
    /// Rows this request has returned so far.
    pub rows: AtomicUsize,
    /// The request's instant (µs since the Unix epoch): every field of one request judges
    /// `ago` at the same time, as one SQL statement sees one `now()`.
    pub now: i64,
}

impl Scope {
    pub fn new(principal: Principal, replica: Arc<Replica>) -> Scope {
        Scope { principal, replica, rows: AtomicUsize::new(0), now: crate::query::wall_micros() }
    }

    /// Counts `n` more rows against the request's budget.
    fn spend(&self, n: usize) -> Result<(), async_graphql::Error> {
        let total = self.rows.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if total > MAX_ROWS_PER_REQUEST {
            return Err(error(
                Code::BadUserInput,
                format!("this request asks for more than {MAX_ROWS_PER_REQUEST} rows in all: split it"),
            ));
        }
        Ok(())
    }
}

/// Runs the engine off the async workers: a scan or sort of a large table takes milliseconds,
/// which must not hold up the sockets and the replica's apply loop sharing the runtime.
async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, async_graphql::Error> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "a query task failed");
        error(Code::Internal, "the query failed")
    })
}

/// The view's table in this request's replica version, if it can be answered from.
pub(super) fn ready<'a>(view: &TableView, replica: &'a Replica) -> Result<&'a Table, async_graphql::Error> {
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
        TableState::Quarantined { reason, .. } => {
            Err(error(Code::NotReady, format!("table `{}` is quarantined until it is resynced: {reason}", view.field)))
        }
        TableState::Stale { reason } => {
            Err(error(Code::NotReady, format!("table `{}` is waiting for a resync: {reason}", view.field)))
        }
    }
}

/// The client's `where` and the role's row filter, checked against the table.
pub(super) fn filter(
    view: &TableView,
    ctx: &ResolverContext<'_>,
    scope: &Scope,
) -> Result<Filter, async_graphql::Error> {
    let filter = arguments::where_filter(view, &ctx.args)?.and(arguments::policy_filter(view, &scope.principal)?);
    filter.validate(&view.schema).map_err(|e| error(Code::BadUserInput, e.to_string()))
}

pub fn rows(view: Arc<TableView>) -> impl for<'a> Fn(ResolverContext<'a>) -> FieldFuture<'a> + Send + Sync {
    move |ctx| {
        let view = view.clone();
        FieldFuture::new(async move {
            let scope = ctx.data::<Scope>()?;
            ready(&view, &scope.replica)?;
            let (limit, offset) = arguments::page(&ctx.args)?;
            let query = Query {
                filter: filter(&view, &ctx, scope)?,
                order: arguments::order(&view, &ctx.args)?,
                // One row past the cap tells an unbounded answer that is too large from one that fits.
                limit: Some(limit.unwrap_or(MAX_ROWS + 1)),
                offset,
            };
            let mut query = query.validate(&view.schema).map_err(|e| error(Code::BadUserInput, e.to_string()))?;
            query.filter = query.filter.at(scope.now);
            let (replica, id) = (scope.replica.clone(), view.id());
            let rows = off_runtime(move || replica.table(id).map(|t| select(t, &query)).unwrap_or_default()).await?;
            if limit.is_none() && rows.len() > MAX_ROWS {
                return Err(error(
                    Code::BadUserInput,
                    format!("more than {MAX_ROWS} rows of `{}` match: page with `limit` and `offset`", view.field),
                ));
            }
            scope.spend(rows.len())?;
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
            let row = table.get(&key).filter(|row| policy.matches_at(row, scope.now)).cloned();
            Ok(row.map(FieldValue::owned_any))
        })
    }
}

pub fn aggregate(view: Arc<TableView>) -> impl for<'a> Fn(ResolverContext<'a>) -> FieldFuture<'a> + Send + Sync {
    move |ctx| {
        let view = view.clone();
        FieldFuture::new(async move {
            let scope = ctx.data::<Scope>()?;
            ready(&view, &scope.replica)?;
            let filter = filter(&view, &ctx, scope)?.at(scope.now);
            let group_by = arguments::group_by(&view, &ctx.args)?;
            let spec = aggregates::spec(&view, group_by, &ctx.look_ahead());
            let (replica, id, work_spec) = (scope.replica.clone(), view.id(), spec.clone());
            let groups = off_runtime(move || match replica.table(id) {
                Some(table) => aggregate_table(table, &filter, work_spec).map(|a| a.groups()),
                None => Ok(Vec::new()),
            })
            .await?
            .map_err(|e| error(Code::BadUserInput, e.to_string()))?;
            if groups.len() > MAX_ROWS {
                return Err(error(
                    Code::BadUserInput,
                    format!("more than {MAX_ROWS} groups: group by fewer columns or narrow `where`"),
                ));
            }
            scope.spend(groups.len())?;
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

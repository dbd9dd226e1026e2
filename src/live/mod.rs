//! Live queries: results kept up to date from the replica's deltas, one step per source
//! transaction.
//!
//! ```text
//!  Applied (one transaction's deltas) + the replica version after it
//!      ─► queries on the touched tables ─► window / row / aggregate updated in place
//!      ─► per query: Unchanged | Changed(diff) | NotReady | Ended
//! ```
//!
//! The engine ([`LiveSet`]) is pure: no I/O, no async, no GraphQL. Its [`runtime`] is the task
//! that registers a [`LiveSpec`] per distinct subscription (identical specs are registered
//! once and shared by their subscribers), feeds it every applied batch in order, and hands
//! what comes out to the API's renderer, once per distinct query. Results are maintained, not
//! recomputed: an ordered window moves rows in and out by binary search and refills from the
//! table's ordered index; an aggregate adds and removes the rows that cross its filter. Only
//! table-level events (snapshot, truncate, resync, schema change) rebuild a result, and then
//! the step says so (`reset`), so clients start over instead of diffing.
//!
//! Filters that compare with a time relative to now (`ago`) change by themselves: every step
//! takes its instant (`now`, microseconds since the Unix epoch) from the caller, and such a
//! query keeps a [`Timeline`] of its rows by their next change, which [`LiveSet::advance`]
//! works through when [`LiveSet::next_due`] comes — no write needed, no table rescanned.

pub mod runtime;
mod spec;
mod window;

use std::collections::HashMap;

pub use crate::query::Timeline;
pub use runtime::{LiveRuntime, LiveStats, Render, Shared};
pub use spec::{LiveSpec, Shape};
pub use window::{RowsDiff, Window, diff};

use crate::aggregate::{Aggregate, GroupResult, aggregate_table};
use crate::change::{Key, Row};
use crate::registry::TableId;
use crate::replica::{Applied, Delta, Replica, Table, TableState};

/// A registered live query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// A query's result as it stands.
#[derive(Clone, Debug)]
pub enum Current<'a> {
    Rows(&'a [Row]),
    Row(Option<&'a Row>),
    Groups(Vec<GroupResult>),
}

/// What one step did to a query's result.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The result changed. `reset`: it was rebuilt (the table was reloaded or emptied), so the
    /// diff is against nothing; otherwise `rows` says which rows entered, changed or left
    /// (empty for single-row and aggregate results, whose whole result is the news).
    Changed { reset: bool, rows: RowsDiff },
    /// The table cannot be answered from now (loading, resyncing, quarantined); the result
    /// comes back with a reset once it can.
    NotReady(String),
    /// The table changed shape under the query (other columns): it can no longer be answered.
    Ended(String),
}

#[derive(Debug)]
pub enum LiveError {
    NotReady(String),
    /// The spec does not fit the table (an aggregate over a column it does not apply to).
    Invalid(String),
}

#[derive(Clone, Debug)]
enum State {
    Rows(Window),
    Row(Option<Row>),
    Aggregate(Aggregate),
    /// Waiting for the table to become ready again.
    Waiting,
}

#[derive(Debug)]
struct Entry {
    spec: LiveSpec,
    state: State,
    /// For a time-relative filter: the rows by their next change (rebuilt with the state).
    timeline: Option<Timeline>,
}

/// Every live query, indexed by table.
#[derive(Debug, Default)]
pub struct LiveSet {
    queries: HashMap<QueryId, Entry>,
    by_table: HashMap<TableId, Vec<QueryId>>,
    next: u64,
    /// Query results updated (one per query per step that touched it): what multiplexing
    /// saves is visible here — N identical subscriptions cost one.
    pub evaluations: u64,
}

/// Why a table cannot be answered from, if it cannot.
pub fn not_ready(table: Option<&Table>, name: &str) -> Option<String> {
    let Some(table) = table else { return Some(format!("table `{name}` is not loaded yet; retry shortly")) };
    match &table.state {
        TableState::Ready => None,
        TableState::Loading => Some(format!("table `{name}` is loading its snapshot; results follow when it is ready")),
        TableState::Quarantined { reason, .. } => {
            Some(format!("table `{name}` is quarantined until it is resynced: {reason}"))
        }
        TableState::Stale { reason } => Some(format!("table `{name}` is waiting for a resync: {reason}")),
    }
}

impl LiveSet {
    pub fn new() -> LiveSet {
        LiveSet::default()
    }

    pub fn len(&self) -> usize {
        self.queries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Registers a query and computes its result from `replica` at the instant `now`; the
    /// replica is the version every later step follows on from.
    pub fn add(&mut self, spec: LiveSpec, replica: &Replica, now: i64) -> Result<QueryId, LiveError> {
        let table = replica.table(spec.table);
        if let Some(reason) = not_ready(table, &spec.schema.spec.name) {
            return Err(LiveError::NotReady(reason));
        }
        let table = table.expect("ready tables exist");
        if !spec.fits(&table.schema) {
            return Err(LiveError::NotReady(format!("table `{}` changed shape; retry", spec.schema.spec.name)));
        }
        let state = build(&spec, table, now).map_err(LiveError::Invalid)?;
        let timeline = timeline(&spec, table, now);
        let id = QueryId(self.next);
        self.next += 1;
        self.by_table.entry(spec.table).or_default().push(id);
        self.queries.insert(id, Entry { spec, state, timeline });
        Ok(id)
    }

    pub fn remove(&mut self, id: QueryId) {
        if let Some(entry) = self.queries.remove(&id)
            && let Some(ids) = self.by_table.get_mut(&entry.spec.table)
        {
            ids.retain(|q| *q != id);
            if ids.is_empty() {
                self.by_table.remove(&entry.spec.table);
            }
        }
    }

    pub fn spec(&self, id: QueryId) -> Option<&LiveSpec> {
        self.queries.get(&id).map(|e| &e.spec)
    }

    /// The query's result now; `None` while it waits for its table.
    pub fn current(&self, id: QueryId) -> Option<Current<'_>> {
        Some(match &self.queries.get(&id)?.state {
            State::Rows(w) => Current::Rows(w.visible()),
            State::Row(r) => Current::Row(r.as_ref()),
            State::Aggregate(a) => Current::Groups(a.groups()),
            State::Waiting => return None,
        })
    }

    /// Applies one applied event (a transaction, or a table-level event) to every query on the
    /// tables it touched. `replica` is the version after it; `now` is the instant at which
    /// time-relative filters judge the rows it changed. Returns the queries whose result
    /// changed, in no particular order, at most one step each.
    pub fn apply(&mut self, applied: &Applied, replica: &Replica, now: i64) -> Vec<(QueryId, Step)> {
        if self.queries.is_empty() || applied.deltas.is_empty() {
            return Vec::new();
        }
        // Per touched query: its rows before this step (for the diff), or a reset.
        let mut touched: HashMap<QueryId, Touch> = HashMap::new();
        for delta in &applied.deltas {
            match delta {
                Delta::Row(d) => {
                    let Some(ids) = self.by_table.get(&d.table) else { continue };
                    for id in ids {
                        let entry = self.queries.get_mut(id).expect("indexed queries exist");
                        let (before, after) = (d.before.as_ref(), d.after.as_ref());
                        // Whether the old row passed when it was last judged (for a row whose
                        // truth can still move with time; the others judge the same now).
                        let filed = match (&mut entry.timeline, &entry.state) {
                            (Some(t), state) if !matches!(state, State::Waiting) => {
                                let filter = entry.spec.filter();
                                // An update that changed the key leaves its old key behind.
                                let old_key =
                                    before.map(|r| Key::of(r, &entry.spec.schema.key)).filter(|k| *k != d.key);
                                let moved = old_key.and_then(|k| t.file(&k, None, filter, now));
                                let watched = match &entry.spec.shape {
                                    Shape::Row { key, .. } => d.key == *key,
                                    _ => true,
                                };
                                let filed = if watched { t.file(&d.key, after, filter, now) } else { None };
                                moved.or(filed)
                            }
                            _ => None,
                        };
                        // Most deltas miss most queries: decide that before copying anything.
                        if let State::Rows(w) = &entry.state
                            && entry.timeline.is_none()
                            && !before.is_some_and(|r| w.filter().matches_at(r, now))
                            && !after.is_some_and(|r| w.filter().matches_at(r, now))
                        {
                            continue;
                        }
                        let touch = touched.entry(*id).or_insert_with(|| Touch::before(&entry.state));
                        if matches!(touch, Touch::Reset) {
                            continue;
                        }
                        let changed = match &mut entry.state {
                            State::Rows(w) => w.apply(before, after, now),
                            State::Row(current) => {
                                let Shape::Row { key, filter } = &entry.spec.shape else { unreachable!() };
                                if d.key == *key || before.is_some_and(|b| key_matches(b, key, &entry.spec)) {
                                    let table = replica.table(d.table);
                                    let new =
                                        table.and_then(|t| t.get(key)).filter(|r| filter.matches_at(r, now)).cloned();
                                    let changed = !same_row(current.as_ref(), new.as_ref());
                                    *current = new;
                                    changed
                                } else {
                                    false
                                }
                            }
                            State::Aggregate(a) => {
                                let Shape::Aggregate { filter, .. } = &entry.spec.shape else { unreachable!() };
                                let was = filed.unwrap_or_else(|| before.is_some_and(|r| filter.matches_at(r, now)));
                                let b = before.filter(|_| was);
                                let n = after.filter(|r| filter.matches_at(r, now));
                                if b.is_some() || n.is_some() {
                                    a.apply(b.map(|r| &r[..]), n.map(|r| &r[..]));
                                    true
                                } else {
                                    false
                                }
                            }
                            State::Waiting => false,
                        };
                        if changed && let Touch::Untouched(old) = touch {
                            *touch = Touch::Changed(std::mem::take(old));
                        }
                    }
                }
                Delta::SnapshotBegin { schema } => self.reset_table(schema.id(), &mut touched),
                Delta::SnapshotEnd { table, .. } | Delta::Reset { table, .. } | Delta::SchemaChanged { table, .. } => {
                    self.reset_table(*table, &mut touched)
                }
                Delta::SnapshotRows { .. } | Delta::Consistent { .. } => {}
            }
        }
        let mut out = Vec::new();
        // In registration order, so subscribers see a transaction's updates in a stable order.
        let mut touched: Vec<(QueryId, Touch)> = touched.into_iter().collect();
        touched.sort_unstable_by_key(|(id, _)| *id);
        for (id, touch) in touched {
            let entry = self.queries.get_mut(&id).expect("touched queries exist");
            let table = replica.table(entry.spec.table);
            match touch {
                Touch::Untouched(_) => {}
                Touch::Reset => {
                    self.evaluations += 1;
                    if let Some(step) = rebuild(entry, table, now) {
                        out.push((id, step));
                    }
                }
                Touch::Changed(old) => {
                    self.evaluations += 1;
                    let step = match &mut entry.state {
                        State::Rows(w) => {
                            if w.is_short()
                                && let Some(t) = table
                            {
                                w.refill(t, now);
                            }
                            let rows = diff(w.order(), &old, w.visible());
                            if rows.is_empty() {
                                continue;
                            }
                            Step::Changed { reset: false, rows }
                        }
                        _ => Step::Changed { reset: false, rows: RowsDiff::default() },
                    };
                    out.push((id, step));
                }
            }
        }
        out
    }

    /// The earliest instant at which a time-relative query's result may change with no write;
    /// `None` when no query's can. Call [`LiveSet::advance`] then.
    pub fn next_due(&self) -> Option<i64> {
        self.queries
            .values()
            .filter(|e| !matches!(e.state, State::Waiting))
            .filter_map(|e| e.timeline.as_ref()?.next_due())
            .min()
    }

    /// Moves time-relative results to the instant `now`: each row due by then (see
    /// [`Timeline`]) is judged again and moves in or out. `replica` must be the version the
    /// last [`LiveSet::apply`] was given (the rows the results were built from). Returns the
    /// queries whose result changed, at most one step each, in registration order.
    pub fn advance(&mut self, now: i64, replica: &Replica) -> Vec<(QueryId, Step)> {
        let mut ids: Vec<QueryId> = self
            .queries
            .iter()
            .filter(|(_, e)| e.timeline.as_ref().and_then(Timeline::next_due).is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let mut out = Vec::new();
        for id in ids {
            let entry = self.queries.get_mut(&id).expect("listed queries exist");
            let Some(table) = replica.table(entry.spec.table) else { continue };
            if matches!(entry.state, State::Waiting) {
                continue;
            }
            let timeline = entry.timeline.as_mut().expect("listed for their timeline");
            let due = timeline.take_due(now);
            let filter = entry.spec.filter();
            let old = match &entry.state {
                State::Rows(w) => w.visible().to_vec(),
                _ => Vec::new(),
            };
            let mut changed = false;
            for (key, matched) in due {
                let row = table.get(&key);
                match &mut entry.state {
                    State::Rows(w) => changed |= row.is_some_and(|r| w.retime(r, now)),
                    State::Row(current) => {
                        let new = row.filter(|r| filter.matches_at(r, now)).cloned();
                        changed |= !same_row(current.as_ref(), new.as_ref());
                        *current = new;
                    }
                    State::Aggregate(a) => {
                        if let Some(r) = row
                            && filter.matches_at(r, now) != matched
                        {
                            if matched {
                                a.apply(Some(&r[..]), None)
                            } else {
                                a.apply(None, Some(&r[..]))
                            }
                            changed = true;
                        }
                    }
                    State::Waiting => {}
                }
                timeline.file(&key, row, filter, now);
            }
            self.evaluations += 1;
            let step = match &mut entry.state {
                State::Rows(w) => {
                    if w.is_short() {
                        w.refill(table, now);
                    }
                    let rows = diff(w.order(), &old, w.visible());
                    if rows.is_empty() {
                        continue;
                    }
                    Step::Changed { reset: false, rows }
                }
                _ if changed => Step::Changed { reset: false, rows: RowsDiff::default() },
                _ => continue,
            };
            out.push((id, step));
        }
        out
    }

    fn reset_table(&mut self, table: TableId, touched: &mut HashMap<QueryId, Touch>) {
        for id in self.by_table.get(&table).into_iter().flatten() {
            touched.insert(*id, Touch::Reset);
        }
    }
}

/// What a step has done to one query so far.
enum Touch {
    /// Deltas reached it but did not change it yet; holds its rows before the step.
    Untouched(Vec<Row>),
    Changed(Vec<Row>),
    Reset,
}

impl Touch {
    fn before(state: &State) -> Touch {
        match state {
            State::Rows(w) => Touch::Untouched(w.visible().to_vec()),
            _ => Touch::Untouched(Vec::new()),
        }
    }
}

fn build(spec: &LiveSpec, table: &Table, now: i64) -> Result<State, String> {
    Ok(match &spec.shape {
        Shape::Rows(query) => State::Rows(Window::fill(table, query.clone(), now)),
        Shape::Row { key, filter } => State::Row(table.get(key).filter(|r| filter.matches_at(r, now)).cloned()),
        Shape::Aggregate { filter, spec } => {
            State::Aggregate(aggregate_table(table, &filter.at(now), spec.clone()).map_err(|e| e.to_string())?)
        }
    })
}

/// The timeline of a time-relative query over one table version; `None` for the others.
fn timeline(spec: &LiveSpec, table: &Table, now: i64) -> Option<Timeline> {
    let filter = spec.filter();
    if !filter.is_time_relative() {
        return None;
    }
    Some(match &spec.shape {
        // One row can be in the result: only it needs watching.
        Shape::Row { key, .. } => Timeline::build(table.get(key).map(|r| (key, r)).into_iter(), filter, now),
        _ => Timeline::build(table.rows(), filter, now),
    })
}

/// Rebuilds a query after a table-level event: its new result, or why there is none.
fn rebuild(entry: &mut Entry, table: Option<&Table>, now: i64) -> Option<Step> {
    let was_waiting = matches!(entry.state, State::Waiting);
    if let Some(reason) = not_ready(table, &entry.spec.schema.spec.name) {
        entry.state = State::Waiting;
        // One notice per outage, not one per snapshot chunk.
        return (!was_waiting).then_some(Step::NotReady(reason));
    }
    let table = table.expect("ready tables exist");
    if !entry.spec.fits(&table.schema) {
        entry.state = State::Waiting;
        return Some(Step::Ended(format!(
            "table `{}` changed its columns; subscribe again for the new shape",
            entry.spec.schema.spec.name
        )));
    }
    match build(&entry.spec, table, now) {
        Ok(state) => {
            entry.state = state;
            entry.timeline = timeline(&entry.spec, table, now);
            Some(Step::Changed { reset: true, rows: RowsDiff::default() })
        }
        Err(e) => {
            entry.state = State::Waiting;
            Some(Step::Ended(e))
        }
    }
}

fn key_matches(row: &Row, key: &crate::change::Key, spec: &LiveSpec) -> bool {
    spec.schema.key.iter().zip(key.0.iter()).all(|(&k, v)| row.get(k) == Some(v))
}

fn same_row(a: Option<&Row>, b: Option<&Row>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b) || a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests;

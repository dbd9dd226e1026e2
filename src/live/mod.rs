//! Live queries: results kept up to date from the replica's deltas, one step per source
//! transaction.
//!
//! ```text
//!  Applied (one transaction's deltas) + the replica version after it
//!      ─► queries on the touched tables ─► window / row / aggregate updated in place
//!      ─► per query: Unchanged | Changed(diff) | NotReady | Ended
//! ```
//!
//! Pure: no I/O, no async, no GraphQL. The API layer registers a [`LiveSpec`] per distinct
//! subscription (identical specs are registered once and shared by their subscribers), feeds
//! every applied event in order, and frames what comes out. Results are maintained, not
//! recomputed: an ordered window moves rows in and out by binary search and refills from the
//! table's ordered index; an aggregate adds and removes the rows that cross its filter. Only
//! table-level events (snapshot, truncate, resync, schema change) rebuild a result, and then
//! the step says so (`reset`), so clients start over instead of diffing.

mod spec;
mod window;

use std::collections::HashMap;

pub use spec::{LiveSpec, Shape};
pub use window::{RowsDiff, Window, diff};

use crate::aggregate::{Aggregate, GroupResult, aggregate_table};
use crate::change::Row;
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

    /// Registers a query and computes its result from `replica`, the version every later step
    /// follows on from.
    pub fn add(&mut self, spec: LiveSpec, replica: &Replica) -> Result<QueryId, LiveError> {
        let table = replica.table(spec.table);
        if let Some(reason) = not_ready(table, &spec.schema.spec.name) {
            return Err(LiveError::NotReady(reason));
        }
        let table = table.expect("ready tables exist");
        if !spec.fits(&table.schema) {
            return Err(LiveError::NotReady(format!("table `{}` changed shape; retry", spec.schema.spec.name)));
        }
        let state = build(&spec, table).map_err(LiveError::Invalid)?;
        let id = QueryId(self.next);
        self.next += 1;
        self.by_table.entry(spec.table).or_default().push(id);
        self.queries.insert(id, Entry { spec, state });
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
    /// tables it touched. `replica` is the version after it. Returns the queries whose result
    /// changed, in no particular order, at most one step each.
    pub fn apply(&mut self, applied: &Applied, replica: &Replica) -> Vec<(QueryId, Step)> {
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
                        // Most deltas miss most queries: decide that before copying anything.
                        if let State::Rows(w) = &entry.state
                            && !before.is_some_and(|r| w.filter().matches(r))
                            && !after.is_some_and(|r| w.filter().matches(r))
                        {
                            continue;
                        }
                        let touch = touched.entry(*id).or_insert_with(|| Touch::before(&entry.state));
                        if matches!(touch, Touch::Reset) {
                            continue;
                        }
                        let changed = match &mut entry.state {
                            State::Rows(w) => w.apply(before, after),
                            State::Row(current) => {
                                let Shape::Row { key, filter } = &entry.spec.shape else { unreachable!() };
                                if d.key == *key || before.is_some_and(|b| key_matches(b, key, &entry.spec)) {
                                    let table = replica.table(d.table);
                                    let new = table.and_then(|t| t.get(key)).filter(|r| filter.matches(r)).cloned();
                                    let changed = !same_row(current.as_ref(), new.as_ref());
                                    *current = new;
                                    changed
                                } else {
                                    false
                                }
                            }
                            State::Aggregate(a) => {
                                let Shape::Aggregate { filter, .. } = &entry.spec.shape else { unreachable!() };
                                let b = before.filter(|r| filter.matches(r));
                                let n = after.filter(|r| filter.matches(r));
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
                    if let Some(step) = rebuild(entry, table) {
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
                                w.refill(t);
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

fn build(spec: &LiveSpec, table: &Table) -> Result<State, String> {
    Ok(match &spec.shape {
        Shape::Rows(query) => State::Rows(Window::fill(table, query.clone())),
        Shape::Row { key, filter } => State::Row(table.get(key).filter(|r| filter.matches(r)).cloned()),
        Shape::Aggregate { filter, spec } => {
            State::Aggregate(aggregate_table(table, filter, spec.clone()).map_err(|e| e.to_string())?)
        }
    })
}

/// Rebuilds a query after a table-level event: its new result, or why there is none.
fn rebuild(entry: &mut Entry, table: Option<&Table>) -> Option<Step> {
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
    match build(&entry.spec, table) {
        Ok(state) => {
            entry.state = state;
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

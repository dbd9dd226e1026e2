//! The KPI engine: every defined KPI kept exact at every applied transaction.
//!
//! Pure: no I/O, no async, no clock (every call says what time it is). Each KPI is an
//! incremental aggregate ([`crate::aggregate`], the same engine as GraphQL `…Aggregate`) over
//! the rows of its table that pass its filter, optionally in a time window that slides as time
//! passes; a row delta removes the row's old contribution and adds the new one, so a
//! transaction costs one group lookup per touched KPI, never a scan, and a window expires its
//! old rows from an index, never by rescanning. Table-level events (snapshot, truncate,
//! resync, schema change) rebuild the KPIs of that table from the replica, or mark them not
//! ready.
//!
//! KPIs that compute the same thing (the same table version, filter, window and aggregate:
//! "orders per minute by channel" defined by several people, or the same measure with a
//! different name or view that filters alike) share one computation: a change is applied to it
//! once, and every KPI it serves takes the one value.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use super::compile::{CompiledKpi, Reading, Span};
use crate::aggregate::{self, Aggregate, GroupResult, TimeWindow, WindowedAggregate};
use crate::change::Key;
use crate::live::not_ready;
use crate::query::{Dispatch, Timeline, matching_rows};
use crate::replica::{Applied, Delta, Replica};
use crate::value::Value;

/// A KPI's id: its row in the app database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct KpiId(pub i64);

/// One group's value (an ungrouped KPI has one group with an empty key).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupValue {
    pub key: Vec<Value>,
    pub value: Value,
}

/// A KPI's value: its groups, or why there is none right now.
#[derive(Clone, Debug, PartialEq)]
pub enum KpiValue {
    /// Ordered by key. Each group behind an `Arc`: a transaction changes a group or two, and
    /// the next value shares the others. The list too: the board, the step to the alerts and
    /// the history each hold the same value, and copying it for each KPI sharing a
    /// computation cost an allocation and a count per group.
    Groups(Arc<[Arc<GroupValue>]>),
    /// The table is loading, resyncing or quarantined.
    NotReady(String),
}

impl KpiValue {
    /// The value of an ungrouped KPI (or the first group's).
    pub fn single(&self) -> Option<&Value> {
        match self {
            KpiValue::Groups(groups) => groups.first().map(|g| &g.value),
            KpiValue::NotReady(_) => None,
        }
    }
}

#[derive(Debug)]
enum State {
    Ready(Aggregate),
    Windowed(WindowedAggregate),
    Waiting(String),
}

/// What changed in a KPI's aggregate since its value was last read.
#[derive(Debug, Default)]
enum Dirty {
    #[default]
    Clean,
    /// Only these groups (by key): read them and keep the rest of the value.
    Groups(Vec<Vec<Value>>),
    /// Anything: read every group (a rebuild, a window expiring rows, rows moved by time).
    All,
}

impl Dirty {
    /// The groups of the rows a change takes out and puts in.
    fn rows(&mut self, aggregate: &Aggregate, before: Option<&[Value]>, after: Option<&[Value]>) {
        if let Dirty::All = self {
            return;
        }
        if let Dirty::Clean = self {
            *self = Dirty::Groups(Vec::new());
        }
        if let Dirty::Groups(keys) = self {
            for row in before.into_iter().chain(after) {
                // An update usually stays in its group: that key is noted once (the list is
                // sorted and deduplicated when read).
                let key = aggregate.key_of(row);
                if keys.last().is_none_or(|last| last.as_slice() != key.as_ref()) {
                    keys.push(key.into_owned());
                }
            }
        }
    }
}

/// One computation: an aggregate kept for one or more KPIs that compute the same thing.
#[derive(Debug)]
struct Entry {
    /// The first KPI's compiled form: what every member computes.
    kpi: CompiledKpi,
    /// The KPIs this computation serves, in id order.
    members: Vec<KpiId>,
    state: State,
    value: KpiValue,
    dirty: Dirty,
    /// For a filter relative to now (`createdAt < now − 10 min`): its rows by the instant
    /// their truth next changes by time alone.
    timeline: Option<Timeline>,
}

/// A computation's number in the set.
type Shared = u64;

/// Whether two compiled KPIs compute the same value at every instant: the same version of the
/// same table, the same rows (filter and window) and the same aggregate read the same way.
fn same_computation(a: &CompiledKpi, b: &CompiledKpi) -> bool {
    a.table == b.table
        && a.schema.version == b.schema.version
        && a.reading == b.reading
        && a.time_dependent == b.time_dependent
        && a.spec == b.spec
        && a.window == b.window
        && a.filter == b.filter
}

/// Every KPI, its computation, and the computations by table.
#[derive(Debug)]
pub struct KpiSet {
    kpis: HashMap<KpiId, (CompiledKpi, Shared)>,
    entries: HashMap<Shared, Entry>,
    by_table: HashMap<crate::registry::TableId, Vec<Shared>>,
    /// The same computations by the equality in their filter: a change steps only those it
    /// may meet (KPIs per channel or warehouse cost a lookup, not a filter each).
    dispatch: HashMap<crate::registry::TableId, Dispatch<Shared>>,
    next: Shared,
    /// Where "today" begins.
    time_zone: chrono_tz::Tz,
}

impl Default for KpiSet {
    fn default() -> KpiSet {
        KpiSet::new()
    }
}

impl KpiSet {
    pub fn new() -> KpiSet {
        KpiSet::with_time_zone(chrono_tz::UTC)
    }

    /// KPIs whose `today` windows begin at midnight in `time_zone`.
    pub fn with_time_zone(time_zone: chrono_tz::Tz) -> KpiSet {
        KpiSet {
            kpis: HashMap::new(),
            entries: HashMap::new(),
            by_table: HashMap::new(),
            dispatch: HashMap::new(),
            next: 0,
            time_zone,
        }
    }

    pub fn len(&self) -> usize {
        self.kpis.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kpis.is_empty()
    }

    /// Computations kept: fewer than KPIs where KPIs compute the same thing.
    pub fn computations(&self) -> usize {
        self.entries.len()
    }

    /// Adds (or replaces) a KPI and computes it from `replica` at `now` (µs). A KPI that
    /// computes what another already does joins that computation, whose state is as of the
    /// same replica version: nothing is rebuilt.
    pub fn insert(&mut self, id: KpiId, kpi: CompiledKpi, replica: &Replica, now: i64) {
        self.remove(id);
        let twin = self
            .by_table
            .get(&kpi.table)
            .into_iter()
            .flatten()
            .find(|s| same_computation(&self.entries[*s].kpi, &kpi))
            .copied();
        let shared = match twin {
            Some(shared) => {
                let members = &mut self.entries.get_mut(&shared).expect("indexed computations exist").members;
                let at = members.partition_point(|m| *m < id);
                members.insert(at, id);
                shared
            }
            None => {
                let shared = self.next;
                self.next += 1;
                self.by_table.entry(kpi.table).or_default().push(shared);
                let (state, timeline) = build(&kpi, replica, self.time_zone, now);
                let value = read(&kpi, &state, now);
                let entry = Entry { kpi: kpi.clone(), members: vec![id], state, value, dirty: Dirty::Clean, timeline };
                self.entries.insert(shared, entry);
                self.index_table(kpi.table);
                shared
            }
        };
        self.kpis.insert(id, (kpi, shared));
    }

    /// Indexes the computations of a table again, after one came or went.
    fn index_table(&mut self, table: crate::registry::TableId) {
        let shared = self.by_table.get(&table).into_iter().flatten();
        let dispatch = Dispatch::new(shared.map(|s| (*s, &self.entries[s].kpi.filter)));
        self.dispatch.insert(table, dispatch);
    }

    pub fn remove(&mut self, id: KpiId) {
        let Some((kpi, shared)) = self.kpis.remove(&id) else { return };
        let entry = self.entries.get_mut(&shared).expect("a KPI's computation exists");
        entry.members.retain(|m| *m != id);
        if entry.members.is_empty() {
            self.entries.remove(&shared);
            if let Some(shared_of_table) = self.by_table.get_mut(&kpi.table) {
                shared_of_table.retain(|s| *s != shared);
            }
            self.index_table(kpi.table);
        }
    }

    pub fn value(&self, id: KpiId) -> Option<&KpiValue> {
        self.kpis.get(&id).map(|(_, shared)| &self.entries[shared].value)
    }

    pub fn compiled(&self, id: KpiId) -> Option<&CompiledKpi> {
        self.kpis.get(&id).map(|(kpi, _)| kpi)
    }

    /// The KPIs served by these computations, in id order.
    fn members(&self, shared: impl IntoIterator<Item = Shared>) -> Vec<KpiId> {
        let mut ids: Vec<KpiId> = shared.into_iter().flat_map(|s| self.entries[&s].members.iter().copied()).collect();
        ids.sort_unstable();
        ids
    }

    /// When time alone next changes a KPI: a window's oldest row expires. (KPIs of ages move
    /// continuously; see [`CompiledKpi::time_dependent`].)
    pub fn next_due(&self) -> Option<i64> {
        let windows = self.entries.values().filter_map(|e| match &e.state {
            State::Windowed(w) => w.next_expiry(),
            _ => None,
        });
        let timelines = self
            .entries
            .values()
            .filter(|e| !matches!(e.state, State::Waiting(_)))
            .filter_map(|e| e.timeline.as_ref()?.next_due());
        windows.chain(timelines).min()
    }

    /// Moves every KPI to `now`: windows expire what fell out, rows that became old enough
    /// for (or too old for) a time-relative filter move in or out, ages are read again.
    /// `replica` is the version the last [`KpiSet::apply`] was given. Returns the KPIs whose
    /// value changed.
    pub fn advance(&mut self, now: i64, replica: &Replica) -> Vec<KpiId> {
        let mut changed = Vec::new();
        for (shared, entry) in &mut self.entries {
            let mut moved = retime(entry, replica, now);
            moved |= match &mut entry.state {
                State::Windowed(w) => w.advance(now) || entry.kpi.time_dependent,
                State::Ready(_) => entry.kpi.time_dependent,
                State::Waiting(_) => false,
            };
            if !moved {
                continue;
            }
            entry.dirty = Dirty::Clean;
            let value = read(&entry.kpi, &entry.state, now);
            if value != entry.value {
                entry.value = value;
                changed.push(*shared);
            }
        }
        self.members(changed)
    }

    /// Follows one applied event, at `now`. Returns the KPIs whose value changed (at most
    /// once each), and those whose table changed shape (their definition must be bound
    /// again).
    pub fn apply(&mut self, applied: &Applied, replica: &Replica, now: i64) -> Outcome {
        let mut touched: Vec<Shared> = Vec::new();
        let mut rebuild: Vec<Shared> = Vec::new();
        for delta in &applied.deltas {
            match delta {
                Delta::Row(d) => {
                    let Some(dispatch) = self.dispatch.get(&d.table) else { continue };
                    // Computations neither image can meet are skipped, as they would be below;
                    // their timelines can hold such a row only from a version that could not
                    // pass either (a NULL where they want a value), harmless when it comes due.
                    for id in &dispatch.candidates(d.before.as_deref(), d.after.as_deref()) {
                        let entry = self.entries.get_mut(id).expect("indexed computations exist");
                        let filter = &entry.kpi.filter;
                        // Whether the old row passed when it was last judged, for a row whose
                        // truth can still move with time (the others judge the same now).
                        let filed = match &mut entry.timeline {
                            Some(t) if !matches!(entry.state, State::Waiting(_)) => {
                                let old_key = d
                                    .before
                                    .as_ref()
                                    .map(|r| Key::of(r, &entry.kpi.schema.key))
                                    .filter(|k| *k != d.key);
                                let moved = old_key.and_then(|k| t.file(&k, None, filter, now));
                                moved.or(t.file(&d.key, d.after.as_ref(), filter, now))
                            }
                            _ => None,
                        };
                        let was = filed.unwrap_or_else(|| d.before.as_ref().is_some_and(|r| filter.matches_at(r, now)));
                        let before = d.before.as_ref().filter(|_| was);
                        let after = d.after.as_ref().filter(|r| filter.matches_at(r, now));
                        if before.is_none() && after.is_none() {
                            continue;
                        }
                        let (b, a) = (before.map(|r| &r[..]), after.map(|r| &r[..]));
                        match &mut entry.state {
                            State::Ready(aggregate) => {
                                entry.dirty.rows(aggregate, b, a);
                                aggregate.apply(b, a);
                            }
                            State::Windowed(w) => {
                                if w.advance(now) {
                                    entry.dirty = Dirty::All;
                                }
                                entry.dirty.rows(w.aggregate(), b, a);
                                w.apply(before, after, now);
                            }
                            State::Waiting(_) => continue,
                        }
                        touched.push(*id);
                    }
                }
                Delta::SnapshotBegin { schema } => rebuild.extend(self.of_table(schema.id())),
                Delta::SnapshotEnd { table, .. } | Delta::Reset { table, .. } | Delta::SchemaChanged { table, .. } => {
                    rebuild.extend(self.of_table(*table))
                }
                Delta::SnapshotRows { .. } | Delta::Consistent { .. } => {}
            }
        }
        rebuild.sort_unstable();
        rebuild.dedup();
        let mut reshaped = Vec::new();
        for id in &rebuild {
            let entry = self.entries.get_mut(id).expect("indexed computations exist");
            let same_shape =
                replica.table(entry.kpi.table).is_none_or(|t| t.schema.version == entry.kpi.schema.version);
            entry.dirty = Dirty::All;
            if same_shape {
                (entry.state, entry.timeline) = build(&entry.kpi, replica, self.time_zone, now);
                touched.push(*id);
            } else {
                entry.state = State::Waiting(format!("table `{}` changed its columns", entry.kpi.schema.spec.name));
                reshaped.push(*id);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut changed = Vec::new();
        let all_touched = touched.clone();
        // Windows also move to `now` when the event did not touch them.
        for (id, entry) in &mut self.entries {
            if let State::Windowed(w) = &mut entry.state
                && w.advance(now)
            {
                entry.dirty = Dirty::All;
                touched.push(*id);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            let entry = self.entries.get_mut(&id).expect("indexed computations exist");
            let value = match std::mem::take(&mut entry.dirty) {
                // Ages move every group with time: those are read whole.
                Dirty::Groups(keys) if !entry.kpi.time_dependent => {
                    patch(&entry.kpi, &entry.state, &entry.value, keys, now)
                }
                _ => Some(read(&entry.kpi, &entry.state, now)).filter(|v| *v != entry.value),
            };
            if let Some(value) = value {
                entry.value = value;
                changed.push(id);
            }
        }
        Outcome { changed: self.members(changed), reshaped: self.members(reshaped), touched: self.members(all_touched) }
    }

    fn of_table(&self, table: crate::registry::TableId) -> Vec<Shared> {
        self.by_table.get(&table).cloned().unwrap_or_default()
    }
}

/// What one applied event did to the KPIs.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub changed: Vec<KpiId>,
    pub reshaped: Vec<KpiId>,
    /// The KPIs whose rows the event touched, changed value or not (a no-data rule's "data").
    pub touched: Vec<KpiId>,
}

/// Rows of a time-relative filter that came due by `now`, judged again and moved in or out.
fn retime(entry: &mut Entry, replica: &Replica, now: i64) -> bool {
    let Some(timeline) = &mut entry.timeline else { return false };
    if matches!(entry.state, State::Waiting(_)) || timeline.next_due().is_none_or(|at| at > now) {
        return false;
    }
    let Some(table) = replica.table(entry.kpi.table) else { return false };
    let filter = &entry.kpi.filter;
    let mut moved = false;
    for (key, matched) in timeline.take_due(now) {
        let row = table.get(&key);
        if let Some(r) = row {
            let is = filter.matches_at(r, now);
            if is != matched {
                let (before, after) = if matched { (Some(r), None) } else { (None, Some(r)) };
                match &mut entry.state {
                    State::Ready(a) => a.apply(before.map(|r| &r[..]), after.map(|r| &r[..])),
                    State::Windowed(w) => {
                        w.apply(before, after, now);
                    }
                    State::Waiting(_) => {}
                }
                moved = true;
            }
        }
        timeline.file(&key, row, filter, now);
    }
    moved
}

fn build(kpi: &CompiledKpi, replica: &Replica, time_zone: chrono_tz::Tz, now: i64) -> (State, Option<Timeline>) {
    let table = replica.table(kpi.table);
    if let Some(reason) = not_ready(table, &kpi.schema.spec.name) {
        return (State::Waiting(reason), None);
    }
    let table = table.expect("ready tables exist");
    // A filter relative to now is fixed at `now` to pick the rows (so indexes can serve it),
    // and its rows filed by when each must be judged again.
    let timeline = kpi.filter.is_time_relative().then(|| Timeline::build(table.rows(), &kpi.filter, now));
    let filter = kpi.filter.at(now);
    let Some(window) = &kpi.window else {
        let state = match aggregate::aggregate_table(table, &filter, kpi.spec.clone()) {
            Ok(a) => State::Ready(a),
            Err(e) => State::Waiting(e.to_string()),
        };
        return (state, timeline);
    };
    let span = match window.span {
        Span::Last(micros) => aggregate::Span::Last { micros },
        Span::Today => aggregate::Span::Today { tz: time_zone },
    };
    let window = TimeWindow { column: window.column, span };
    let state = match WindowedAggregate::new(kpi.spec.clone(), &kpi.schema, window, now) {
        Ok(mut w) => {
            for row in matching_rows(table, &filter) {
                w.apply(None, Some(row), now);
            }
            State::Windowed(w)
        }
        Err(e) => State::Waiting(e.to_string()),
    };
    (state, timeline)
}

fn read(kpi: &CompiledKpi, state: &State, now: i64) -> KpiValue {
    let groups = match state {
        State::Waiting(reason) => return KpiValue::NotReady(reason.clone()),
        State::Ready(aggregate) => aggregate.groups_at(now),
        State::Windowed(w) => w.groups_at(now),
    };
    KpiValue::Groups(groups.into_iter().map(|g| Arc::new(group_value(kpi.reading, g))).collect())
}

/// The value after changes to the groups `keys` only: those are read, the others kept.
/// `None` when it is the same as `old`. Costs a lookup per changed group, where reading the
/// whole value costs every group (the benchmark's KPIs by warehouse, channel or SKU).
fn patch(kpi: &CompiledKpi, state: &State, old: &KpiValue, mut keys: Vec<Vec<Value>>, now: i64) -> Option<KpiValue> {
    let (KpiValue::Groups(groups), Some(aggregate)) = (old, state_aggregate(state)) else {
        return Some(read(kpi, state, now)).filter(|v| v != old);
    };
    keys.sort_unstable();
    keys.dedup();
    let mut groups = groups.to_vec();
    let mut changed = false;
    for key in keys {
        let at = groups.binary_search_by(|g| g.key.as_slice().cmp(&key));
        match (aggregate.group_at(&key, now).map(|r| group_value(kpi.reading, r)), at) {
            (Some(g), Ok(i)) if *groups[i] != g => groups[i] = Arc::new(g),
            (Some(_), Ok(_)) => continue,
            (Some(g), Err(i)) => groups.insert(i, Arc::new(g)),
            (None, Ok(i)) => {
                groups.remove(i);
            }
            (None, Err(_)) => continue,
        }
        changed = true;
    }
    changed.then(|| KpiValue::Groups(groups.into()))
}

fn state_aggregate(state: &State) -> Option<&Aggregate> {
    match state {
        State::Ready(a) => Some(a),
        State::Windowed(w) => Some(w.aggregate()),
        State::Waiting(_) => None,
    }
}

fn group_value(reading: Reading, g: GroupResult) -> GroupValue {
    let value = match reading {
        Reading::Rows => Value::Int8(i64::try_from(g.count).unwrap_or(i64::MAX)),
        Reading::Measure => g.values.into_iter().next().unwrap_or(Value::Null),
    };
    GroupValue { key: g.key, value }
}

//! The alert engine: every rule's instances and their states, moved by KPI values, row deltas
//! and the passing of time.
//!
//! Pure: no I/O, no clock. States go Normal → Pending (while `for` runs) → Firing → Resolved;
//! with `keepFiringFor` an instance whose condition clears keeps firing that long. Every change
//! of state is a [`Transition`] carrying its cause: the transaction (source, position, commit
//! time) whose change moved it, or the due time of a time-driven one. Event times are commit
//! times and due times, never "now", so a transaction delivered again after a restart yields
//! the same transitions with the same causes, which the store records once.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use serde_json::{Map, Value as Json};

use super::rule::{BoundRule, KpiTest, RuleId, Target};
use crate::change::{Key, Position, Row, SourceName};
use crate::kpi::{KpiBoard, KpiId, KpiValue};
use crate::query::{Dispatch, Filter, Timeline};
use crate::replica::{Applied, Delta, Replica};
use crate::value::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertState {
    Normal,
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub const ALL: [AlertState; 4] =
        [AlertState::Normal, AlertState::Pending, AlertState::Firing, AlertState::Resolved];

    pub fn name(self) -> &'static str {
        match self {
            AlertState::Normal => "NORMAL",
            AlertState::Pending => "PENDING",
            AlertState::Firing => "FIRING",
            AlertState::Resolved => "RESOLVED",
        }
    }

    pub fn parse(s: &str) -> Option<AlertState> {
        AlertState::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// Why a transition happened.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cause {
    /// A committed transaction changed what the rule reads.
    Transaction { source: SourceName, position: Position, commit_ts: i64 },
    /// Time passed: `for` elapsed, `keepFiringFor` ran out, a rule was evaluated as defined.
    Due { at: i64 },
}

impl Cause {
    /// When it happened (µs since the Unix epoch): commit time or due time.
    pub fn at(&self) -> i64 {
        match self {
            Cause::Transaction { commit_ts, .. } => *commit_ts,
            Cause::Due { at } => *at,
        }
    }

    /// What makes a transition unique with its rule, instance and new state.
    pub fn key(&self) -> String {
        match self {
            Cause::Transaction { source, position, .. } => format!("tx:{source}:{}", position.0),
            Cause::Due { at } => format!("due:{at}"),
        }
    }
}

/// Who acknowledged an instance, when, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    pub by: Option<String>,
    pub at: i64,
    pub note: Option<String>,
}

/// One instance of a rule that is not Normal (serialised: a cluster's leader tells its
/// followers of each one it changed).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    pub rule: RuleId,
    /// `""` for an ungrouped KPI; the JSON of the group key or of the row key.
    pub key: String,
    pub labels: BTreeMap<String, String>,
    pub state: AlertState,
    /// When it entered its state.
    pub since: i64,
    /// When its condition last became true.
    pub active_since: i64,
    /// When time alone moves it next: Pending → Firing, or a cleared Firing → Resolved.
    pub due: Option<i64>,
    /// Whether its condition holds now.
    pub condition: bool,
    /// The value that was tested (KPI rules), as exact text.
    pub value: Option<String>,
    /// The row's columns the rule reads (row rules).
    pub row: Option<Json>,
    pub acknowledged: Option<Ack>,
    /// The cause of the last transition.
    pub cause: Option<Cause>,
    /// The rule's summary for this instance, as of its last evaluation.
    pub summary: String,
}

/// A change of state, with its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub rule: RuleId,
    pub instance: String,
    pub labels: BTreeMap<String, String>,
    pub from: AlertState,
    pub to: AlertState,
    pub cause: Cause,
    pub value: Option<String>,
    /// The row before and after the change, limited to the columns the rule reads.
    pub before: Option<Json>,
    pub after: Option<Json>,
    pub summary: String,
    /// The replica positions a time-driven transition was decided on (filled in by the
    /// runtime; empty for one caused by a transaction, whose position is its cause). A restart
    /// that goes back to an earlier checkpoint decides again whatever was decided beyond it.
    pub basis: Vec<(SourceName, Position)>,
}

/// What one observation of an instance's condition brings.
struct Observation {
    key: String,
    labels: BTreeMap<String, String>,
    condition: bool,
    value: Option<String>,
    before: Option<Json>,
    after: Option<Json>,
    /// For summaries: `{{column}}` of a row, `{{group}}`.
    fields: Map<String, Json>,
    /// A KPI group's value as a number, for tests against it.
    number: Option<f64>,
}

/// A KPI group's recent values, for rules that judge a value against its past.
#[derive(Clone, Debug, Default)]
struct Past {
    /// (when, value) at each change of the value, oldest first. For a change rule the first is
    /// the value as of the window's start; a crossing keeps only the last.
    samples: std::collections::VecDeque<(i64, f64)>,
    /// The last observation's labels and exact value, to judge again as time passes.
    labels: BTreeMap<String, String>,
    value: Option<String>,
}

#[derive(Debug)]
pub struct AlertSet {
    /// Behind `Arc`s: a step reads its rule while it changes instances, and a rule holds
    /// filters, labels and templates that are not copied for that.
    rules: BTreeMap<RuleId, Arc<BoundRule>>,
    /// Persistent, so that publishing the board is a cheap clone rather than a copy of every
    /// instance per transaction (the benchmark showed the copy as a sixth of the CPU).
    instances: imbl::OrdMap<(RuleId, String), Arc<Instance>>,
    /// How many instances each rule has open: whether a rule has any is asked for every
    /// changed KPI, and a range of the persistent map allocates its cursor.
    open: HashMap<RuleId, usize>,
    /// The rules by what they read, rebuilt when a rule changes (not per transaction).
    index: RuleIndex,
    /// No-data rules: when a transaction last touched their KPI's rows.
    quiet: BTreeMap<RuleId, i64>,
    /// Per rule, the instances that breach but were not opened because the rule is at its
    /// cap (by key, so each counts once and leaves when it stops breaching).
    overflow: BTreeMap<RuleId, std::collections::BTreeSet<String>>,
    /// Row rules whose filter is relative to now: their rows by when each must be judged
    /// again (a ticket becomes "open longer than 30 minutes" with no write).
    timelines: BTreeMap<RuleId, Timeline>,
    /// Crossing and change rules: each group's recent values, by (rule, group key).
    past: BTreeMap<(RuleId, String), Past>,
    /// Open instances whose value, row or summary moved without a transition since the last
    /// [`AlertSet::take_moved`]: readers want the new value.
    moved: Vec<(RuleId, String)>,
    /// No instance is due before this (it may be lower than the earliest): `advance` runs on
    /// every transaction and scans the instances only when one may have come due.
    due_floor: i64,
}

/// The rules by what they read. Each list is shared (`Arc`): evaluation holds one while it
/// changes the set, and takes it per changed KPI or row without copying it.
#[derive(Debug, Default)]
struct RuleIndex {
    /// Rules on a KPI's level, change or crossing.
    by_kpi: HashMap<KpiId, Arc<[(RuleId, KpiTest)]>>,
    /// No-data rules by their KPI.
    quiet_by_kpi: HashMap<KpiId, Vec<RuleId>>,
    /// Row rules by their table.
    rows_by_table: HashMap<crate::registry::TableId, Arc<[RuleId]>>,
    /// The same rules by the equality in their filter: a change is judged only by the rules
    /// it may meet (a rule per warehouse costs a lookup, not an evaluation, per other one).
    rows_dispatch: HashMap<crate::registry::TableId, Arc<Dispatch<RuleId>>>,
}

impl RuleIndex {
    fn of(rules: &BTreeMap<RuleId, Arc<BoundRule>>) -> RuleIndex {
        let mut by_kpi: HashMap<KpiId, Vec<(RuleId, KpiTest)>> = HashMap::new();
        let mut quiet_by_kpi: HashMap<KpiId, Vec<RuleId>> = HashMap::new();
        let mut rows_by_table: HashMap<crate::registry::TableId, Vec<(RuleId, &Filter)>> = HashMap::new();
        for r in rules.values() {
            match &r.target {
                Target::Kpi { kpi, test } => by_kpi.entry(*kpi).or_default().push((r.id, *test)),
                Target::NoData { kpi, .. } => quiet_by_kpi.entry(*kpi).or_default().push(r.id),
                Target::Rows { schema, filter, .. } => {
                    rows_by_table.entry(schema.id()).or_default().push((r.id, filter))
                }
            }
        }
        RuleIndex {
            by_kpi: by_kpi.into_iter().map(|(k, v)| (k, v.into())).collect(),
            quiet_by_kpi,
            rows_dispatch: rows_by_table
                .iter()
                .map(|(k, v)| (*k, Arc::new(Dispatch::new(v.iter().copied()))))
                .collect(),
            rows_by_table: rows_by_table
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().map(|(id, _)| id).collect()))
                .collect(),
        }
    }
}

impl Default for AlertSet {
    fn default() -> AlertSet {
        AlertSet::new()
    }
}

impl AlertSet {
    pub fn new() -> AlertSet {
        AlertSet {
            rules: BTreeMap::new(),
            instances: imbl::OrdMap::new(),
            open: HashMap::new(),
            index: RuleIndex::default(),
            quiet: BTreeMap::new(),
            overflow: BTreeMap::new(),
            timelines: BTreeMap::new(),
            past: BTreeMap::new(),
            moved: Vec::new(),
            due_floor: i64::MIN,
        }
    }

    pub fn rules(&self) -> impl Iterator<Item = &BoundRule> {
        self.rules.values().map(|r| &**r)
    }

    pub fn rule(&self, id: RuleId) -> Option<&BoundRule> {
        self.rules.get(&id).map(|r| &**r)
    }

    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values().map(|i| &**i)
    }

    /// Every instance by (rule, key), shared: the runtime publishes it as it is.
    pub fn instance_map(&self) -> &imbl::OrdMap<(RuleId, String), Arc<Instance>> {
        &self.instances
    }

    pub fn instance(&self, rule: RuleId, key: &str) -> Option<&Instance> {
        self.instances.get(&(rule, key.to_string())).map(|i| &**i)
    }

    /// Takes instances back as they were recorded (after a restart): their state, since,
    /// acknowledgement. The next evaluation continues from them, so a firing instance whose
    /// condition still holds does not fire again.
    pub fn restore(&mut self, instances: impl IntoIterator<Item = Instance>) {
        for i in instances {
            self.open_instance((i.rule, i.key.clone()), i);
        }
        self.due_floor = i64::MIN;
    }

    /// Opens (or replaces) an instance.
    fn open_instance(&mut self, key: (RuleId, String), inst: Instance) {
        let rule = key.0;
        if self.instances.insert(key, Arc::new(inst)).is_none() {
            *self.open.entry(rule).or_default() += 1;
        }
    }

    /// Closes an instance (it went back to normal, resolved, or its rule went away).
    fn close_instance(&mut self, key: &(RuleId, String)) {
        if self.instances.remove(key).is_some()
            && let Some(n) = self.open.get_mut(&key.0)
        {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&key.0);
            }
        }
    }

    /// Adds or replaces a rule and evaluates it on what is there now (`cause` is when).
    pub fn set_rule(&mut self, rule: BoundRule, board: &KpiBoard, replica: &Replica, cause: &Cause) -> Vec<Transition> {
        let id = rule.id;
        let replaced = self.rules.insert(id, Arc::new(rule)).is_some();
        self.index = RuleIndex::of(&self.rules);
        let mut out = Vec::new();
        self.overflow.remove(&id);
        self.forget_past(id);
        if replaced {
            // A changed rule starts over: its open instances are re-evaluated below, and the
            // ones its new condition no longer covers resolve.
            for key in self.rule_keys(id) {
                if let Some(inst) = self.instances.get_mut(&key) {
                    Arc::make_mut(inst).condition = false;
                }
            }
        }
        let rule = &self.rules[&id];
        if let Target::NoData { .. } = rule.target {
            // Quiet since now: a rule cannot know what happened before it was defined.
            self.quiet.insert(id, cause.at());
        } else {
            self.quiet.remove(&id);
        }
        // Instances restored after a restart carry no due time: it follows from the rule.
        let for_micros = rule.for_micros;
        for key in self.rule_keys(id) {
            if let Some(inst) = self.instances.get_mut(&key)
                && inst.due.is_none()
                && inst.state == AlertState::Pending
            {
                let inst = Arc::make_mut(inst);
                let at = inst.since + for_micros;
                set_due(inst, at, &mut self.due_floor);
            }
        }
        let rule = &self.rules[&id];
        let mut timeline = None;
        // What a rule reads may not be known yet (a table still loading after a restart, a
        // KPI not ready): its instances stand as they were until it is, never cleared by not
        // knowing (they would fire again once it is known).
        let observations: Vec<Observation> = match &rule.target {
            Target::Kpi { kpi, test } => match board.kpis.get(kpi) {
                Some(entry) if matches!(entry.value, KpiValue::Groups(_)) => {
                    let test = *test;
                    let names = entry.compiled.as_ref().map(|c| c.group_names.clone()).unwrap_or_default();
                    let mut observations = kpi_observations(&entry.value, &names);
                    self.judge(id, test, cause.at(), &mut observations);
                    observations
                }
                _ => return out,
            },
            Target::Rows { schema, filter, labels, columns } => match replica.table(schema.id()) {
                Some(table) if table.state == crate::replica::TableState::Ready => {
                    // A filter relative to now is judged at the cause's instant, and its rows
                    // filed by when each must be judged again.
                    let at = cause.at();
                    timeline = filter.is_time_relative().then(|| Timeline::build(table.rows(), filter, at));
                    crate::query::matching_rows(table, &filter.at(at))
                        .map(|row| row_observation(schema, labels, columns, None, Some(row), true))
                        .collect()
                }
                _ => return out,
            },
            // Restored instances stand until data arrives; new ones come from `advance`.
            Target::NoData { .. } => return out,
        };
        match timeline {
            Some(t) => self.timelines.insert(id, t),
            None => self.timelines.remove(&id),
        };
        out.extend(self.observe_all(id, observations, cause));
        out
    }

    /// Observes every instance a rule has now; its open instances that are not among them
    /// (a group with no rows left, a row no longer there) have cleared.
    fn observe_all(&mut self, id: RuleId, observations: Vec<Observation>, cause: &Cause) -> Vec<Transition> {
        let seen: std::collections::HashSet<String> = observations.iter().map(|o| o.key.clone()).collect();
        let mut out = Vec::new();
        for o in observations {
            out.extend(self.observe(id, o, cause));
        }
        // The rule's own range of the map, not every instance: this runs on every change of a
        // KPI with rules.
        let gone: Vec<String> = self.rule_keys(id).into_iter().map(|(_, k)| k).filter(|k| !seen.contains(k)).collect();
        for key in gone {
            out.extend(self.observe(id, cleared(key), cause));
        }
        out
    }

    /// The keys of a rule's instances.
    fn rule_keys(&self, id: RuleId) -> Vec<(RuleId, String)> {
        self.instances.range((id, String::new())..).take_while(|((r, _), _)| *r == id).map(|(k, _)| k.clone()).collect()
    }

    /// The open instances whose value, row or summary moved since the last call.
    pub fn take_moved(&mut self) -> Vec<(RuleId, String)> {
        std::mem::take(&mut self.moved)
    }

    /// Takes an instance as another instance decided it (`None`: it is Normal again), for a
    /// set that follows a cluster's leader instead of evaluating.
    pub fn mirror(&mut self, rule: RuleId, key: String, instance: Option<Instance>) {
        match instance {
            Some(i) => self.open_instance((rule, key), i),
            None => self.close_instance(&(rule, key)),
        }
    }

    /// A set holding only these instances, as the leader left them, with no rules: what a
    /// follower that takes the lead starts from before it binds its rules again.
    pub fn taking_over(&self) -> AlertSet {
        let mut set = AlertSet::new();
        set.restore(self.instances.values().map(|i| (**i).clone()));
        set
    }

    /// How many breaching instances of a rule are not open because of its cap.
    pub fn overflow(&self, id: RuleId) -> usize {
        self.overflow.get(&id).map_or(0, |o| o.len())
    }

    /// Takes a rule out of evaluation while what it reads cannot be bound (a table not loaded
    /// yet after a restart): its instances stand as they were until it is set again, so an
    /// instance firing before the restart does not fire a second time.
    pub fn unbind_rule(&mut self, id: RuleId) {
        self.forget_past(id);
        self.rules.remove(&id);
        self.index = RuleIndex::of(&self.rules);
        self.quiet.remove(&id);
        self.overflow.remove(&id);
        self.timelines.remove(&id);
    }

    /// Removes a rule and its instances (its history stays in the store).
    pub fn remove_rule(&mut self, id: RuleId) {
        self.forget_past(id);
        self.rules.remove(&id);
        self.index = RuleIndex::of(&self.rules);
        self.quiet.remove(&id);
        self.overflow.remove(&id);
        self.timelines.remove(&id);
        for key in self.rule_keys(id) {
            self.close_instance(&key);
        }
    }

    /// Evaluates the rules on KPIs whose value changed.
    pub fn on_kpis(&mut self, changed: &[(KpiId, KpiValue)], board: &KpiBoard, cause: &Cause) -> Vec<Transition> {
        let mut out = Vec::new();
        if changed.is_empty() {
            return out;
        }
        for (kpi, value) in changed {
            // A transaction changes dozens of KPIs, and most have no rule.
            let Some(rules) = self.index.by_kpi.get(kpi).cloned() else { continue };
            if matches!(value, KpiValue::NotReady(_)) {
                // Not knowing is not normal: instances keep their state until the value is back.
                continue;
            }
            let group_names = board.kpis.get(kpi).and_then(|e| e.compiled.as_ref()).map(|c| &c.group_names[..]);
            for &(id, test) in rules.iter() {
                if let (KpiTest::Level(t), KpiValue::Groups(groups)) = (test, value)
                    && !self.open.contains_key(&id)
                    && self.overflow.get(&id).is_none_or(|o| o.is_empty())
                    && !groups.iter().any(|g| as_f64(&g.value).is_some_and(|x| t.breached(x)))
                {
                    // Nothing open and nothing breaching: observing each group would change
                    // nothing (most rules, most of the time).
                    continue;
                }
                let mut observations = kpi_observations(value, group_names.unwrap_or_default());
                self.judge(id, test, cause.at(), &mut observations);
                // Groups that disappeared (no rows left) are no longer breaching.
                out.extend(self.observe_all(id, observations, cause));
            }
        }
        out
    }

    /// Data arrived for these KPIs: their no-data rules are quiet no longer.
    pub fn on_touched(&mut self, touched: &[KpiId], cause: &Cause) -> Vec<Transition> {
        let ids: Vec<RuleId> =
            touched.iter().filter_map(|kpi| self.index.quiet_by_kpi.get(kpi)).flatten().copied().collect();
        let mut out = Vec::new();
        for id in ids {
            self.quiet.insert(id, cause.at());
            out.extend(self.observe(id, quiet_observation(false), cause));
        }
        out
    }

    /// Evaluates row rules on one applied event's row deltas.
    pub fn on_rows(&mut self, applied: &Applied, replica: &Replica, cause: &Cause) -> Vec<Transition> {
        let mut out = Vec::new();
        if self.index.rows_by_table.is_empty() {
            return out;
        }
        for delta in &applied.deltas {
            match delta {
                Delta::Row(d) => {
                    let Some(dispatch) = self.index.rows_dispatch.get(&d.table) else { continue };
                    // Rules neither image can meet are skipped. Their timelines hold such a row
                    // only from a version that could not pass either (a NULL where they want a
                    // value): judged again when due, it changes nothing and is unfiled then.
                    let row_rules = dispatch.candidates(d.before.as_deref(), d.after.as_deref());
                    for id in row_rules.iter() {
                        let rule = self.rules[id].clone();
                        let Target::Rows { schema, filter, labels, columns } = &rule.target else { continue };
                        let at = cause.at();
                        // Whether the old row passed when it was last judged, for a row whose
                        // truth can still move with time (the others judge the same now).
                        let filed = self.timelines.get_mut(id).and_then(|t| {
                            let old_key = d.before.as_ref().map(|r| Key::of(r, &schema.key)).filter(|k| *k != d.key);
                            let moved = old_key.and_then(|k| t.file(&k, None, filter, at));
                            moved.or(t.file(&d.key, d.after.as_ref(), filter, at))
                        });
                        let was = filed.unwrap_or_else(|| d.before.as_ref().is_some_and(|r| filter.matches_at(r, at)));
                        let is = d.after.as_ref().is_some_and(|r| filter.matches_at(r, at));
                        if !was && !is {
                            continue;
                        }
                        let (before, after) = (d.before.as_ref(), d.after.as_ref());
                        let same_key = matches!((before, after), (Some(b), Some(a)) if schema.key.iter().all(|&i| b[i].same_spelling(&a[i])));
                        if was && is && same_key {
                            let o = row_observation(schema, labels, columns, before, after, true);
                            out.extend(self.observe(*id, o, cause));
                            continue;
                        }
                        if was {
                            // The row left the condition (changed, deleted, or its key moved).
                            let o = row_observation(schema, labels, columns, before, after.filter(|_| same_key), false);
                            out.extend(self.observe(*id, o, cause));
                        }
                        if is {
                            let o = row_observation(schema, labels, columns, before.filter(|_| same_key), after, true);
                            out.extend(self.observe(*id, o, cause));
                        }
                    }
                }
                Delta::Reset { table, .. } | Delta::SnapshotEnd { table, .. } => {
                    // The table was emptied or reloaded: row rules on it are evaluated afresh.
                    let ids = self.index.rows_by_table.get(table).cloned().unwrap_or_default();
                    for &id in ids.iter() {
                        let rule = BoundRule::clone(&self.rules[&id]);
                        out.extend(self.set_rule(rule, &KpiBoard::default(), replica, cause));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// When time alone next moves an instance.
    pub fn next_due(&self) -> Option<i64> {
        let instances = self.instances.values().filter_map(|i| i.due).min();
        instances.into_iter().chain(self.next_due_besides_instances()).min()
    }

    /// When the runtime must next call [`AlertSet::advance`]: never after
    /// [`AlertSet::next_due`], and cheaper to work out. Its instances' part is the bound kept as
    /// due times are set (`due_floor`), not a scan of every open instance (a row rule's
    /// thousands, each time the runtime's queue ran empty). Once a due time was cancelled the
    /// bound may be earlier than any instance is due: `advance` at it then moves nothing and
    /// tightens the bound to the next due instance. After instances were restored it is
    /// `i64::MIN` (at once) until that first `advance`.
    pub fn wake_at(&self) -> Option<i64> {
        let instances = (self.due_floor != i64::MAX).then_some(self.due_floor);
        instances.into_iter().chain(self.next_due_besides_instances()).min()
    }

    /// When time alone next moves something other than an open instance: a no-data rule goes
    /// off, a row of a time-relative row rule comes due, a change rule's window moves.
    fn next_due_besides_instances(&self) -> Option<i64> {
        let rows = self.timelines.values().filter_map(Timeline::next_due);
        let changes = self.past.keys().filter_map(|k| self.window_moves(k));
        self.quiet_due().map(|(_, at)| at).chain(rows).chain(changes).min()
    }

    /// When the start of a change rule's window next passes one of the group's values (which
    /// moves the value the change is measured from).
    fn window_moves(&self, key: &(RuleId, String)) -> Option<i64> {
        let Some(KpiTest::Change { micros, .. }) = self.kpi_test(key.0) else { return None };
        self.past.get(key)?.samples.get(1).map(|(at, _)| at + micros)
    }

    fn kpi_test(&self, id: RuleId) -> Option<KpiTest> {
        match self.rules.get(&id)?.target {
            Target::Kpi { test, .. } => Some(test),
            _ => None,
        }
    }

    fn forget_past(&mut self, id: RuleId) {
        let keys: Vec<(RuleId, String)> =
            self.past.range((id, String::new())..).take_while(|((r, _), _)| *r == id).map(|(k, _)| k.clone()).collect();
        for key in keys {
            self.past.remove(&key);
        }
    }

    /// Sets each observation's condition under `test` at `at`, keeping the past that crossing
    /// and change rules judge against (groups no longer observed are forgotten).
    fn judge(&mut self, id: RuleId, test: KpiTest, at: i64, observations: &mut [Observation]) {
        if let KpiTest::Level(t) = test {
            for o in observations {
                o.condition = o.number.is_some_and(|x| t.breached(x));
            }
            return;
        }
        let seen: std::collections::HashSet<&str> = observations.iter().map(|o| o.key.as_str()).collect();
        let gone: Vec<(RuleId, String)> = self
            .past
            .range((id, String::new())..)
            .take_while(|((r, _), _)| *r == id)
            .filter(|((_, k), _)| !seen.contains(k.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.past.remove(&key);
        }
        for o in observations.iter_mut() {
            let past = self.past.entry((id, o.key.clone())).or_default();
            past.labels = o.labels.clone();
            past.value = o.value.clone();
            let Some(x) = o.number else {
                o.condition = false;
                continue;
            };
            let last = past.samples.back().map(|s| s.1);
            if last != Some(x) {
                past.samples.push_back((at, x));
            }
            o.condition = match test {
                KpiTest::Level(_) => unreachable!("judged above"),
                KpiTest::Crosses { level, direction } => {
                    while past.samples.len() > 1 {
                        past.samples.pop_front();
                    }
                    last.is_some_and(|from| direction.crossed(from, x, level))
                }
                KpiTest::Change { micros, test } => {
                    let change = measure_change(&mut past.samples, at, micros, x);
                    o.fields.insert("change".into(), Json::String(number_text(change)));
                    test.breached(change)
                }
            };
        }
    }

    /// Change rules whose window start passed a value by `now`: each group judged again at
    /// the instant its window moved.
    fn rewindow(&mut self, now: i64) -> Vec<Transition> {
        let due: Vec<((RuleId, String), i64)> = self
            .past
            .keys()
            .filter_map(|k| Some((k.clone(), self.window_moves(k)?)))
            .filter(|(_, at)| *at <= now)
            .collect();
        let mut out = Vec::new();
        for ((id, key), at) in due {
            let Some(KpiTest::Change { micros, test }) = self.kpi_test(id) else { continue };
            let Some(past) = self.past.get_mut(&(id, key.clone())) else { continue };
            let Some(&(_, x)) = past.samples.back() else { continue };
            let change = measure_change(&mut past.samples, at, micros, x);
            let mut fields = Map::new();
            fields.insert("change".into(), Json::String(number_text(change)));
            let o = Observation {
                key,
                labels: past.labels.clone(),
                condition: test.breached(change),
                value: past.value.clone(),
                before: None,
                after: None,
                fields,
                number: Some(x),
            };
            out.extend(self.observe(id, o, &Cause::Due { at }));
        }
        out
    }

    /// No-data rules without an open instance, with when they go off.
    fn quiet_due(&self) -> impl Iterator<Item = (RuleId, i64)> + '_ {
        self.quiet.iter().filter_map(|(id, last)| match self.rules.get(id)?.target {
            Target::NoData { micros, .. } if !self.instances.contains_key(&(*id, String::new())) => {
                Some((*id, last + micros))
            }
            _ => None,
        })
    }

    /// Moves every instance whose due time is at or before `now`, and judges again the rows of
    /// time-relative row rules that came due. `replica` is the version the last event was
    /// evaluated on.
    pub fn advance(&mut self, now: i64, replica: &Replica) -> Vec<Transition> {
        let mut out = self.retime_rows(now, replica);
        out.extend(self.rewindow(now));
        let quiet: Vec<(RuleId, i64)> = self.quiet_due().filter(|(_, at)| *at <= now).collect();
        for (id, at) in quiet {
            out.extend(self.observe(id, quiet_observation(true), &Cause::Due { at }));
        }
        let mut due: Vec<(RuleId, String)> = Vec::new();
        if self.due_floor <= now {
            let mut later = i64::MAX;
            for (k, i) in &self.instances {
                match i.due {
                    Some(d) if d <= now => due.push(k.clone()),
                    Some(d) => later = later.min(d),
                    None => {}
                }
            }
            // What is due now is taken below; what stays is due from `later` on.
            self.due_floor = later;
        }
        for key in due {
            let Some(rule) = self.rules.get(&key.0).cloned() else { continue };
            let Some(inst) = self.instances.get_mut(&key) else { continue };
            let inst = Arc::make_mut(inst);
            let at = inst.due.take().expect("due");
            let cause = Cause::Due { at };
            match inst.state {
                AlertState::Pending if inst.condition => {
                    out.push(transition(&rule, inst, AlertState::Firing, &cause, None, None));
                    inst.state = AlertState::Firing;
                    inst.since = at;
                    inst.cause = Some(cause);
                }
                AlertState::Pending => {
                    // Restored pending, cleared meanwhile: it goes back to normal when due.
                    out.push(transition(&rule, inst, AlertState::Normal, &cause, None, None));
                    self.close_instance(&key);
                }
                AlertState::Firing if !inst.condition => {
                    out.push(transition(&rule, inst, AlertState::Resolved, &cause, None, None));
                    self.close_instance(&key);
                }
                _ => {}
            }
        }
        out
    }

    /// Rows of time-relative row rules due by `now`: each judged at the instant it came due,
    /// so the transition's cause is that instant whenever the timer fires.
    fn retime_rows(&mut self, now: i64, replica: &Replica) -> Vec<Transition> {
        let due: Vec<RuleId> = self
            .timelines
            .iter()
            .filter(|(_, t)| t.next_due().is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in due {
            let Some(rule) = self.rules.get(&id).cloned() else { continue };
            let Target::Rows { schema, filter, labels, columns } = &rule.target else { continue };
            let Some(table) = replica.table(schema.id()) else { continue };
            let rows = self.timelines.get_mut(&id).map(|t| t.take_due_at(now)).unwrap_or_default();
            for (at, key, matched) in rows {
                let row = table.get(&key);
                if let Some(r) = row {
                    let is = filter.matches_at(r, at);
                    if is != matched {
                        let o = row_observation(schema, labels, columns, None, Some(r), is);
                        out.extend(self.observe(id, o, &Cause::Due { at }));
                    }
                }
                if let Some(t) = self.timelines.get_mut(&id) {
                    t.file(&key, row, filter, at);
                }
            }
        }
        out
    }

    /// Records an acknowledgement: it stops repeats until the instance resolves.
    pub fn acknowledge(&mut self, rule: RuleId, key: &str, ack: Ack) -> Result<&Instance, String> {
        let inst = self
            .instances
            .get_mut(&(rule, key.to_string()))
            .ok_or_else(|| "no such alert instance is pending or firing".to_string())?;
        let inst = Arc::make_mut(inst);
        inst.acknowledged = Some(ack);
        Ok(inst)
    }

    /// One instance's condition observed under `cause`: the state machine's single step.
    fn observe(&mut self, id: RuleId, o: Observation, cause: &Cause) -> Option<Transition> {
        let slot = (id, o.key.clone());
        let t = self.step(id, o, cause);
        // A crossing is an event, not a condition that lasts: firing from it runs out
        // `keepFiringFor` after the last crossing even if the value never moves again.
        if let Some(rule) = self.rules.get(&id)
            && matches!(rule.target, Target::Kpi { test: KpiTest::Crosses { .. }, .. })
            && let Some(inst) = self.instances.get_mut(&slot)
            && inst.state == AlertState::Firing
            && inst.condition
        {
            let inst = Arc::make_mut(inst);
            inst.condition = false;
            set_due(inst, cause.at() + rule.keep_firing_micros, &mut self.due_floor);
        }
        t
    }

    fn step(&mut self, id: RuleId, o: Observation, cause: &Cause) -> Option<Transition> {
        let rule = self.rules.get(&id)?.clone();
        let at = cause.at();
        let slot = (id, o.key.clone());
        let open = self.instances.contains_key(&slot);
        if !open {
            let over = self.overflow.entry(id).or_default();
            if !o.condition {
                over.remove(&o.key);
                return None;
            }
            let count = self.instances.range((id, String::new())..).take_while(|((r, _), _)| *r == id).count();
            if count >= rule.max_instances {
                over.insert(o.key);
                return None;
            }
            over.remove(&o.key);
        }
        match self.instances.get_mut(&slot) {
            None if o.condition => {
                let mut labels = rule.definition.labels.clone();
                labels.extend(o.labels.clone());
                let mut inst = Instance {
                    rule: id,
                    key: o.key.clone(),
                    labels,
                    state: AlertState::Normal,
                    since: at,
                    active_since: at,
                    due: None,
                    condition: true,
                    value: o.value.clone(),
                    row: o.after.clone(),
                    acknowledged: None,
                    cause: Some(cause.clone()),
                    summary: String::new(),
                };
                let to = if rule.for_micros > 0 { AlertState::Pending } else { AlertState::Firing };
                let t = transition_with(&rule, &inst, to, cause, o.before.clone(), o.after.clone(), &o.fields);
                inst.summary = t.summary.clone();
                inst.state = to;
                if to == AlertState::Pending {
                    set_due(&mut inst, at + rule.for_micros, &mut self.due_floor);
                }
                self.open_instance(slot, inst);
                Some(t)
            }
            None => None,
            Some(inst) => {
                let inst = Arc::make_mut(inst);
                inst.condition = o.condition;
                // What readers see moved: compared field by field, not by copying them first.
                let mut moved = false;
                if o.value.is_some() && inst.value != o.value {
                    inst.value = o.value.clone();
                    moved = true;
                }
                if o.after.is_some() && inst.row != o.after {
                    inst.row = o.after.clone();
                    moved = true;
                }
                if o.condition {
                    let text = summary(&rule, inst, &o.fields);
                    if inst.summary != text {
                        inst.summary = text;
                        moved = true;
                    }
                }
                if moved {
                    self.moved.push(slot.clone());
                }
                match (inst.state, o.condition) {
                    (AlertState::Pending, true) => None,
                    (AlertState::Pending, false) => {
                        let t = transition_with(&rule, inst, AlertState::Normal, cause, o.before, o.after, &o.fields);
                        self.close_instance(&slot);
                        Some(t)
                    }
                    (AlertState::Firing, true) => {
                        // Breaching again while keep-firing ran: it simply goes on firing.
                        inst.due = None;
                        None
                    }
                    (AlertState::Firing, false) if rule.keep_firing_micros > 0 => {
                        if inst.due.is_none() {
                            set_due(inst, at + rule.keep_firing_micros, &mut self.due_floor);
                        }
                        None
                    }
                    (AlertState::Firing, false) => {
                        let t = transition_with(&rule, inst, AlertState::Resolved, cause, o.before, o.after, &o.fields);
                        self.close_instance(&slot);
                        Some(t)
                    }
                    (AlertState::Normal | AlertState::Resolved, _) => None,
                }
            }
        }
    }
}

/// Sets when an instance is next due, keeping `floor` at or below every instance's due time
/// (see `AlertSet::due_floor`).
fn set_due(inst: &mut Instance, at: i64, floor: &mut i64) {
    inst.due = Some(at);
    *floor = (*floor).min(at);
}

fn transition(
    rule: &BoundRule,
    inst: &Instance,
    to: AlertState,
    cause: &Cause,
    before: Option<Json>,
    after: Option<Json>,
) -> Transition {
    transition_with(rule, inst, to, cause, before, after, &Map::new())
}

fn transition_with(
    rule: &BoundRule,
    inst: &Instance,
    to: AlertState,
    cause: &Cause,
    before: Option<Json>,
    after: Option<Json>,
    fields: &Map<String, Json>,
) -> Transition {
    Transition {
        rule: rule.id,
        instance: inst.key.clone(),
        labels: inst.labels.clone(),
        from: inst.state,
        to,
        cause: cause.clone(),
        value: inst.value.clone(),
        before,
        after,
        summary: summary(rule, inst, fields),
        basis: Vec::new(),
    }
}

/// The rule's summary with its placeholders filled in.
pub fn summary(rule: &BoundRule, inst: &Instance, fields: &Map<String, Json>) -> String {
    let threshold = match &rule.target {
        Target::Kpi { test, .. } => test.describe(),
        Target::NoData { micros, .. } => format!("{} s", micros / 1_000_000),
        Target::Rows { .. } => String::new(),
    };
    let default = match &rule.target {
        Target::Kpi { .. } => "{{rule}}: {{value}} ({{threshold}}){{group}}".to_string(),
        Target::NoData { .. } => "{{rule}}: no data for {{threshold}}".to_string(),
        Target::Rows { .. } => "{{rule}}: {{instance}}".to_string(),
    };
    let template = rule.definition.summary.clone().unwrap_or(default);
    let group = if inst.key.is_empty() || matches!(rule.target, Target::Rows { .. }) {
        String::new()
    } else {
        format!(
            " for {}",
            inst.labels
                .iter()
                .filter(|(k, _)| !rule.definition.labels.contains_key(*k))
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut out = template
        .replace("{{rule}}", &rule.definition.name)
        .replace("{{value}}", inst.value.as_deref().unwrap_or("?"))
        .replace("{{threshold}}", &threshold)
        .replace("{{group}}", &group)
        .replace("{{instance}}", &inst.key);
    let row = fields.is_empty().then(|| inst.row.as_ref().and_then(Json::as_object)).flatten().unwrap_or(fields);
    for (name, value) in row {
        let text = match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &text);
    }
    out
}

/// An instance whose condition no longer holds, with nothing else to say.
fn cleared(key: String) -> Observation {
    Observation {
        key,
        labels: BTreeMap::new(),
        condition: false,
        value: None,
        before: None,
        after: None,
        fields: Map::new(),
        number: None,
    }
}

/// A no-data rule's one instance: quiet (`true`) or not.
fn quiet_observation(quiet: bool) -> Observation {
    Observation { condition: quiet, ..cleared(String::new()) }
}

/// A change as people write it: `51`, not `51.0`.
fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

/// How far `x` (the value now, at `at`) is from the value `micros` ago; drops the values from
/// before the window's start except the one in force then.
fn measure_change(samples: &mut std::collections::VecDeque<(i64, f64)>, at: i64, micros: i64, x: f64) -> f64 {
    while samples.get(1).is_some_and(|(t, _)| *t <= at - micros) {
        samples.pop_front();
    }
    samples.front().map_or(0.0, |(_, then)| x - then)
}

/// A KPI's groups as observations (their condition is judged by the rule's test).
fn kpi_observations(value: &KpiValue, group_names: &[String]) -> Vec<Observation> {
    let KpiValue::Groups(groups) = value else { return Vec::new() };
    groups
        .iter()
        .map(|g| {
            let number = as_f64(&g.value);
            let key = if g.key.is_empty() { String::new() } else { serde_json::to_string(&g.key).unwrap_or_default() };
            let labels: BTreeMap<String, String> =
                group_names.iter().cloned().zip(g.key.iter().map(Value::to_canonical_string)).collect();
            Observation {
                key,
                labels,
                condition: false,
                value: Some(g.value.to_canonical_string()),
                before: None,
                after: None,
                fields: Map::new(),
                number,
            }
        })
        .collect()
}

fn row_key(schema: &crate::registry::TableSchema, row: &Row) -> String {
    let key: Vec<&Value> = schema.key.iter().map(|&i| &row[i]).collect();
    serde_json::to_string(&key).unwrap_or_default()
}

fn image(row: &Row, columns: &[(String, usize)]) -> Json {
    let mut m = Map::new();
    for (name, i) in columns {
        m.insert(name.clone(), serde_json::to_value(&row[*i]).unwrap_or(Json::Null));
    }
    Json::Object(m)
}

fn row_observation(
    schema: &crate::registry::TableSchema,
    labels: &[(String, usize)],
    columns: &[(String, usize)],
    before: Option<&Row>,
    after: Option<&Row>,
    condition: bool,
) -> Observation {
    let row = after.or(before).expect("a row delta has a row");
    let key = row_key(schema, row);
    let mut l = BTreeMap::new();
    for (name, i) in labels {
        l.insert(name.clone(), row[*i].to_canonical_string());
    }
    let after_image = after.map(|r| image(r, columns));
    let fields = match image(row, columns) {
        Json::Object(m) => m,
        _ => Map::new(),
    };
    Observation {
        key,
        labels: l,
        condition,
        value: None,
        before: before.map(|r| image(r, columns)),
        after: after_image,
        fields,
        number: None,
    }
}

/// A KPI value as a number for thresholds: integers, numerics, floats; anything else (a
/// timestamp maximum, NULL over no rows) is not a number and breaches nothing.
pub fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Int2(v) => Some((*v).into()),
        Value::Int4(v) => Some((*v).into()),
        Value::Int8(v) => Some(*v as f64),
        Value::Float4(v) => Some((*v).into()),
        Value::Float8(v) => Some(*v),
        Value::Numeric(t) => t.parse().ok(),
        _ => None,
    }
}

//! The alert runtime: one task that follows the KPI runtime's steps, runs the alert engine on
//! each (and as time passes), records every transition durably, and publishes the alert board.
//!
//! ```text
//!  KPI runtime ── KpiStep (batch, KPI changes) ──►┐
//!  GraphQL ── rules / acknowledge ───────────────►├─► AlertSet (engine) ─► board (watch)
//!  timer (next due) ─────────────────────────────►┘                     ─► writer ─► app database
//! ```
//!
//! Evaluation never waits for the database: transitions go to a writer task in order, which
//! writes them in one database transaction each and only then marks the step's position
//! durable, so a source is never acknowledged past a transition that is not yet recorded.
//! A write that fails is retried until it succeeds (the acknowledgement waits meanwhile).
//!
//! In a cluster only the leader decides ([`Duty`]): it evaluates on transactions and as time
//! passes, records under its epoch (a write refused because a newer leader claimed the cluster
//! stops it), and once a write is committed tells the followers what it changed
//! ([`AlertResults`]). A follower evaluates nothing and records nothing: it shows the leader's
//! instances, and when it takes the lead it binds its rules again on its own replica and
//! carries on from the instances the old leader left, as a restart does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use imbl::OrdMap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::engine::{Ack, AlertSet, Cause, Instance, Transition};
use super::rule::{RuleId, Target, bind, bind_rows};
use super::silence::Silence;
use crate::announce::{Announcement, Announcer, Duty};
use crate::change::{Position, SourceName};
use crate::kpi::{DefinitionError, KpiBoard, KpiId, KpiStep, KpiValue};
use crate::notify::{NotifyLink, RuleFacts, notices};
use crate::replica::Replica;
use crate::store::Store;
use crate::store::alerts::AlertRuleRecord;
use crate::store::fence::until_written;
use crate::store::notifications::Outgoing;
use crate::watermark::DurableMarks;

/// One rule on the board.
#[derive(Clone, Debug)]
pub struct RuleEntry {
    pub record: Arc<AlertRuleRecord>,
    /// Why the rule is not evaluated right now (its table is not loaded, …).
    pub problem: Option<String>,
    /// Breaching instances not opened because the rule is at its cap.
    pub overflow: usize,
}

/// Every rule and open instance: what queries read and subscriptions follow.
#[derive(Clone, Debug, Default)]
pub struct AlertBoard {
    pub rules: OrdMap<RuleId, RuleEntry>,
    pub instances: OrdMap<(RuleId, String), Arc<Instance>>,
    /// Silences that have not ended.
    pub silences: Arc<Vec<Silence>>,
    /// Changes of the board so far.
    pub seq: u64,
}

enum Command {
    SetRule {
        record: Arc<AlertRuleRecord>,
        reply: oneshot::Sender<Result<(), DefinitionError>>,
    },
    RemoveRule {
        id: RuleId,
    },
    Acknowledge {
        rule: RuleId,
        instance: String,
        ack: Ack,
        reply: oneshot::Sender<Result<Instance, String>>,
    },
    Silences {
        silences: Vec<Silence>,
        reply: oneshot::Sender<()>,
    },
    /// What the leader decided (ignored while this instance decides itself).
    Mirror {
        epoch: u64,
        results: AlertResults,
    },
    /// Every open instance as recorded (a follower that missed the leader's word).
    MirrorAll {
        instances: Vec<Instance>,
    },
}

/// What a leader's alert runtime changed in one recorded write: each instance's new state
/// (`None`: Normal again) and the overflow counts that moved.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertResults {
    pub instances: Vec<(RuleId, String, Option<Instance>)>,
    pub overflow: Vec<(RuleId, usize)>,
}

impl AlertResults {
    /// Later results after these (see [`AlertResults::latest`]).
    fn extend(&mut self, later: AlertResults) {
        self.instances.extend(later.instances);
        self.overflow.extend(later.overflow);
    }

    /// Only the newest state of each instance and the newest count of each rule, in the
    /// order they last changed: a group of writes (a backlog's thousands) is told once.
    fn latest(mut self) -> AlertResults {
        let mut seen = std::collections::HashSet::new();
        self.instances.reverse();
        self.instances.retain(|(rule, key, _)| seen.insert((*rule, key.clone())));
        self.instances.reverse();
        let mut counted = std::collections::HashSet::new();
        self.overflow.reverse();
        self.overflow.retain(|(rule, _)| counted.insert(*rule));
        self.overflow.reverse();
        self
    }
}

/// The handle GraphQL and the server use.
#[derive(Clone, Debug)]
pub struct AlertHub {
    commands: mpsc::UnboundedSender<Command>,
    pub board: watch::Receiver<Arc<AlertBoard>>,
    /// Tells the cluster's other instances of a rule, acknowledgement or silence made here.
    announcer: Announcer,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// What the runtime starts from.
pub struct AlertStart {
    pub replica: Arc<Replica>,
    pub kpis: Arc<KpiBoard>,
    pub rules: Vec<AlertRuleRecord>,
    pub instances: Vec<Instance>,
    pub silences: Vec<Silence>,
    pub store: Store,
    pub marks: DurableMarks,
    /// Routing of transitions to contact points (none: nothing is notified).
    pub notify: Option<NotifyLink>,
    /// Whether this instance decides alert state (alone, or leading) or follows the leader.
    pub duty: watch::Receiver<Duty>,
    /// Tells the cluster's other instances of rules, acknowledgements and silences made here,
    /// and, while leading, of what the runtime decided.
    pub announcer: Announcer,
    /// Cancelled when a write is refused because a newer leader claimed the cluster.
    pub fenced: CancellationToken,
}

/// A write for the writer task: transitions, the instances they left, and the position it
/// makes durable.
struct Write {
    transitions: Vec<Transition>,
    instances: Vec<(RuleId, String, Option<Instance>)>,
    /// Notifications the transitions cause, written with them.
    outgoing: Vec<Outgoing>,
    durable: Option<(SourceName, Position)>,
    /// For the followers, once written (leading in a cluster only).
    results: Option<AlertResults>,
}

impl AlertHub {
    pub fn start(start: AlertStart, steps: mpsc::Receiver<KpiStep>, cancel: CancellationToken) -> AlertHub {
        let (commands, rx) = mpsc::unbounded_channel();
        // Bounded: a database that falls behind slows evaluation, and with it the apply loop.
        let (writes, writes_rx) = mpsc::channel(256);
        let mut set = AlertSet::new();
        set.restore(start.instances);
        let mut duty = start.duty;
        duty.borrow_and_update();
        let mut runtime = Runtime {
            set,
            replica: start.replica,
            kpis: start.kpis,
            newer: foldhash::HashMap::default(),
            board: AlertBoard { silences: Arc::new(start.silences), ..AlertBoard::default() },
            published: watch::Sender::new(Arc::new(AlertBoard::default())),
            writes,
            notify: start.notify.clone(),
            telling: start.announcer.tells(),
            duty: duty.clone(),
            store: start.store.clone(),
            overflow_moved: Vec::new(),
            leader_epoch: 0,
        };
        let now = chrono::Utc::now().timestamp_micros();
        let mut startup = Vec::new();
        for record in start.rules {
            startup.extend(runtime.set_rule(Arc::new(record), &Cause::Due { at: now }).1);
        }
        runtime.publish();
        let board = runtime.published.subscribe();
        let writer = Writer {
            store: start.store,
            marks: start.marks,
            notify: start.notify,
            duty,
            announcer: start.announcer.clone(),
            fenced: start.fenced,
        };
        tokio::spawn(writer.run(writes_rx, cancel.clone()));
        tokio::spawn(async move {
            runtime.record(startup, None).await;
            runtime.run(rx, steps).await
        });
        AlertHub { commands, board, announcer: start.announcer }
    }

    /// The same hub, telling nobody: for changes another instance made and announced.
    pub fn quiet(&self) -> AlertHub {
        AlertHub { announcer: Announcer::default(), ..self.clone() }
    }

    /// Adds or replaces a rule; it is evaluated (and on the board) when this returns `Ok`.
    pub async fn set_rule(&self, record: AlertRuleRecord) -> Result<(), DefinitionError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || DefinitionError::new("rule", "the server is shutting down");
        let id = record.id;
        self.commands.send(Command::SetRule { record: Arc::new(record), reply }).map_err(|_| stopped())?;
        let result = answer.await.map_err(|_| stopped())?;
        // Stored either way: a rule that does not bind here is on every board with why.
        self.announcer.announce(Announcement::AlertRule { id: id.0 });
        result
    }

    pub fn remove_rule(&self, id: RuleId) {
        let _ = self.commands.send(Command::RemoveRule { id });
        self.announcer.announce(Announcement::AlertRule { id: id.0 });
    }

    pub async fn acknowledge(&self, rule: RuleId, instance: String, ack: Ack) -> Result<Instance, String> {
        let (reply, answer) = oneshot::channel();
        let stopped = || "the server is shutting down".to_string();
        let announced = Announcement::Acknowledged {
            rule: rule.0,
            instance: instance.clone(),
            by: ack.by.clone(),
            at: ack.at,
            note: ack.note.clone(),
        };
        self.commands.send(Command::Acknowledge { rule, instance, ack, reply }).map_err(|_| stopped())?;
        let acknowledged = answer.await.map_err(|_| stopped())??;
        self.announcer.announce(announced);
        Ok(acknowledged)
    }

    /// The silences now in force (after one was created or expired); on the board when this
    /// returns.
    pub async fn set_silences(&self, silences: Vec<Silence>) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Silences { silences, reply }).is_ok() {
            let _ = done.await;
        }
        self.announcer.announce(Announcement::Silences);
    }

    pub fn current(&self) -> Arc<AlertBoard> {
        self.board.borrow().clone()
    }

    /// What the leader of epoch `epoch` decided; shown here while this instance follows.
    pub fn mirror(&self, epoch: u64, results: AlertResults) {
        let _ = self.commands.send(Command::Mirror { epoch, results });
    }

    /// Every open instance as recorded, replacing what this follower shows.
    pub fn mirror_all(&self, instances: Vec<Instance>) {
        let _ = self.commands.send(Command::MirrorAll { instances });
    }
}

struct Runtime {
    set: AlertSet,
    replica: Arc<Replica>,
    /// The last KPI board handed on with a step, and the values newer than it (the KPI
    /// runtime publishes a backlog's boards once per burst; the steps between carry values).
    kpis: Arc<KpiBoard>,
    newer: foldhash::HashMap<KpiId, KpiValue>,
    board: AlertBoard,
    published: watch::Sender<Arc<AlertBoard>>,
    writes: mpsc::Sender<Write>,
    notify: Option<NotifyLink>,
    /// In a cluster: what is decided here is told to the followers.
    telling: bool,
    duty: watch::Receiver<Duty>,
    /// For acknowledgements made while following (the leader records the instance).
    store: Store,
    /// Rules whose overflow count moved since the last write.
    overflow_moved: Vec<(RuleId, usize)>,
    /// The newest leader's epoch whose results were applied: an older one's are stale.
    leader_epoch: u64,
}

impl Runtime {
    fn leads(&self) -> bool {
        self.duty.borrow().leads()
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, mut steps: mpsc::Receiver<KpiStep>) {
        // Ends when the KPI runtime's steps end (it drains the apply loop at shutdown), so
        // every transition reaches the writer.
        loop {
            if !self.leads() {
                tokio::select! {
                    biased;
                    changed = self.duty.changed() => {
                        if changed.is_ok() && self.duty.borrow_and_update().leads() {
                            self.take_over().await;
                        }
                    }
                    step = steps.recv() => match step {
                        Some(step) => self.follow(step).await,
                        None => break,
                    },
                    Some(command) = commands.recv() => self.command(command).await,
                }
                continue;
            }
            // Steps waiting (a backlog): take them without working out the next wake-up;
            // each step moves time up to its own cause first.
            if let Ok(step) = steps.try_recv() {
                self.step(step).await;
                continue;
            }
            let wait = self.set.wake_at().map(|at| crate::duration::until(at, chrono::Utc::now().timestamp_micros()));
            tokio::select! {
                biased;
                step = steps.recv() => match step {
                    Some(step) => self.step(step).await,
                    None => break,
                },
                Some(command) = commands.recv() => self.command(command).await,
                _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))), if wait.is_some() => {
                    let now = chrono::Utc::now().timestamp_micros();
                    let transitions = self.set.advance(now, &self.replica);
                    self.record(transitions, None).await;
                }
            }
        }
    }

    /// A step while following: the replica and KPIs move on, nothing is evaluated; the
    /// position still reaches the writer, which marks it durable (it records nothing).
    async fn follow(&mut self, step: KpiStep) {
        self.follow_kpis(&step);
        let Some(batch) = &step.batch else { return };
        self.replica = batch.replica.clone();
        if !batch.applied.deltas.iter().all(|d| matches!(d, crate::replica::Delta::Row(_))) {
            // A table was reloaded: a rule that could not bind may now (shown, not evaluated).
            self.rebind_waiting(&Cause::Due { at: batch.at });
            self.publish();
        }
        let durable = batch.applied.tx.as_ref().map(|tx| (tx.source.clone(), tx.position));
        if durable.is_some() {
            let write =
                Write { transitions: Vec::new(), instances: Vec::new(), outgoing: Vec::new(), durable, results: None };
            let _ = self.writes.send(write).await;
        }
    }

    /// This follower now leads: from the instances the old leader left, every rule is bound
    /// and evaluated on this replica, as after a restart (a firing instance whose condition
    /// still holds does not fire again); from here on it decides.
    async fn take_over(&mut self) {
        self.set = self.set.taking_over();
        let now = chrono::Utc::now().timestamp_micros();
        let records: Vec<Arc<AlertRuleRecord>> = self.board.rules.values().map(|r| r.record.clone()).collect();
        let mut transitions = Vec::new();
        for record in records {
            transitions.extend(self.set_rule(record, &Cause::Due { at: now }).1);
        }
        tracing::info!(
            rules = self.board.rules.len(),
            open = self.set.instance_map().len(),
            "alert evaluation taken over from the old leader"
        );
        self.publish();
        self.record(transitions, None).await;
    }

    async fn step(&mut self, step: KpiStep) {
        self.follow_kpis(&step);
        let Some(batch) = &step.batch else {
            // A KPI defined or removed: its rules see the new value now.
            let now = chrono::Utc::now().timestamp_micros();
            let mut transitions = self.set.advance(now, &self.replica);
            transitions.extend(self.set.on_kpis(&step.changed, &self.kpis, &Cause::Due { at: now }));
            self.record(transitions, None).await;
            return;
        };
        let (cause, durable) = match &batch.applied.tx {
            Some(tx) => (
                Cause::Transaction { source: tx.source.clone(), position: tx.position, commit_ts: tx.commit_ts },
                Some((tx.source.clone(), tx.position)),
            ),
            None => (Cause::Due { at: batch.at }, None),
        };
        // Time first, on the rows as they were: what came due before this commit happened
        // before it.
        let mut transitions = self.set.advance(cause.at(), &self.replica);
        // Decided on the replica before this batch: noted now, before it moves.
        decided_on(&mut transitions, &self.replica);
        self.replica = batch.replica.clone();
        transitions.extend(self.set.on_touched(&step.touched, &cause));
        transitions.extend(self.set.on_kpis(&step.changed, &self.kpis, &cause));
        transitions.extend(self.set.on_rows(&batch.applied, &self.replica, &cause));
        if !batch.applied.deltas.iter().all(|d| matches!(d, crate::replica::Delta::Row(_))) {
            // A table was reloaded: row rules that could not bind before may bind now.
            self.rebind_waiting(&cause);
        }
        self.record(transitions, durable).await;
    }

    /// Takes a step's board, or its new values when it has none. A step without a board
    /// changed only values: what `on_kpis` reads from the board (which KPIs exist, their
    /// groups' names) is as the last board says.
    fn follow_kpis(&mut self, step: &KpiStep) {
        match &step.board {
            Some(board) => {
                self.kpis = board.clone();
                self.newer.clear();
            }
            None => {
                for (id, value) in &step.changed {
                    self.newer.insert(*id, value.clone());
                }
            }
        }
    }

    /// The KPI board with every value up to the last step: what a rule bound now is judged on.
    fn kpis_now(&mut self) -> Arc<KpiBoard> {
        if !self.newer.is_empty() {
            self.kpis = Arc::new(self.kpis.with_values(&self.newer));
            self.newer.clear();
        }
        self.kpis.clone()
    }

    fn rebind_waiting(&mut self, cause: &Cause) {
        let waiting: Vec<Arc<AlertRuleRecord>> =
            self.board.rules.values().filter(|r| r.problem.is_some()).map(|r| r.record.clone()).collect();
        for record in waiting {
            let (_, mut transitions) = self.set_rule(record, cause);
            // Written apart from `record`: noted here.
            decided_on(&mut transitions, &self.replica);
            // Recorded with the step's own write by the caller's next record: keep them here.
            if !transitions.is_empty() {
                let writes = self.writes.clone();
                let instances = self.instances_of(&transitions);
                let outgoing = self.notices(&transitions);
                let results = self.told(&instances, Vec::new());
                tokio::spawn(async move {
                    let _ = writes.send(Write { transitions, instances, outgoing, durable: None, results }).await;
                });
            }
        }
    }

    fn tables(&self) -> Vec<Arc<crate::registry::TableSchema>> {
        self.replica.tables().map(|t| t.schema.clone()).collect()
    }

    /// Binds and evaluates a rule; a rule that cannot bind now stays on the board with why.
    fn set_rule(
        &mut self,
        record: Arc<AlertRuleRecord>,
        cause: &Cause,
    ) -> (Result<(), DefinitionError>, Vec<Transition>) {
        let def = record.definition.clone();
        let rows = match &def.rows {
            Some(cond) => match bind_rows(cond, &self.tables()) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.set.unbind_rule(record.id);
                    self.board.rules.insert(record.id, RuleEntry { record, problem: Some(e.to_string()), overflow: 0 });
                    return (Err(e), Vec::new());
                }
            },
            None => None,
        };
        match bind(record.id, def, rows) {
            Ok(rule) => {
                let problem = match &rule.target {
                    Target::Kpi { kpi, .. } | Target::NoData { kpi, .. } if !self.kpis.kpis.contains_key(kpi) => {
                        Some(format!("KPI {} does not exist", kpi.0))
                    }
                    _ => None,
                };
                // A follower binds only to show why a rule would not work; the leader evaluates.
                let transitions = match self.leads() {
                    true => {
                        let kpis = self.kpis_now();
                        self.set.set_rule(rule, &kpis, &self.replica, cause)
                    }
                    false => Vec::new(),
                };
                let overflow = self.board.rules.get(&record.id).map_or(0, |r| r.overflow);
                self.board.rules.insert(record.id, RuleEntry { record, problem, overflow });
                (Ok(()), transitions)
            }
            Err(e) => {
                self.set.unbind_rule(record.id);
                self.board.rules.insert(record.id, RuleEntry { record, problem: Some(e.to_string()), overflow: 0 });
                (Err(e), Vec::new())
            }
        }
    }

    async fn command(&mut self, command: Command) {
        let now = chrono::Utc::now().timestamp_micros();
        match command {
            Command::SetRule { record, reply } => {
                let (result, transitions) = self.set_rule(record, &Cause::Due { at: now });
                self.record(transitions, None).await;
                self.publish();
                let _ = reply.send(result);
            }
            Command::RemoveRule { id } => {
                self.set.remove_rule(id);
                self.board.rules.remove(&id);
                self.publish();
            }
            Command::Silences { silences, reply } => {
                self.board.silences = Arc::new(silences);
                self.publish();
                let _ = reply.send(());
            }
            Command::Acknowledge { rule, instance, ack, reply } => {
                let result = self.set.acknowledge(rule, &instance, ack.clone()).cloned();
                if let Ok(inst) = &result {
                    if self.leads() {
                        let instances = vec![(rule, instance, Some(inst.clone()))];
                        let results = self.told(&instances, Vec::new());
                        let write =
                            Write { transitions: Vec::new(), instances, outgoing: Vec::new(), durable: None, results };
                        let _ = self.writes.send(write).await;
                    } else {
                        // Who, when and why; the leader, told of it, records the instance.
                        if let Err(e) = self.store.record_acknowledgement(rule, &instance, &ack).await {
                            tracing::warn!(error = %e, "cannot record an acknowledgement; the leader records it when told");
                        }
                    }
                    self.publish();
                }
                let _ = reply.send(result);
            }
            Command::Mirror { epoch, results } => {
                if self.leads() || epoch < self.leader_epoch {
                    return;
                }
                self.leader_epoch = epoch;
                for (rule, key, instance) in results.instances {
                    self.set.mirror(rule, key, instance);
                }
                for (rule, n) in results.overflow {
                    if let Some(entry) = self.board.rules.get_mut(&rule) {
                        entry.overflow = n;
                    }
                }
                self.publish();
            }
            Command::MirrorAll { instances } => {
                if self.leads() {
                    return;
                }
                self.set = AlertSet::new();
                self.set.restore(instances);
                self.publish();
            }
        }
    }

    fn instances_of(&self, transitions: &[Transition]) -> Vec<(RuleId, String, Option<Instance>)> {
        let mut out: Vec<(RuleId, String, Option<Instance>)> = Vec::new();
        for t in transitions {
            if out.iter().any(|(r, k, _)| *r == t.rule && *k == t.instance) {
                continue;
            }
            out.push((t.rule, t.instance.clone(), self.set.instance(t.rule, &t.instance).cloned()));
        }
        out
    }

    /// Hands transitions to the writer (with the position they make durable) and publishes.
    /// Time-driven transitions not yet noted were decided on the replica the runtime holds now.
    async fn record(&mut self, mut transitions: Vec<Transition>, durable: Option<(SourceName, Position)>) {
        decided_on(&mut transitions, &self.replica);
        for t in &transitions {
            tracing::info!(rule = t.rule.0, from = t.from.name(), to = t.to.name(), cause = %t.cause.key(), "alert transition");
        }
        let moved = self.set.take_moved();
        let changed = !transitions.is_empty() || !moved.is_empty();
        // Shown at once; recorded behind. A crash before the write is harmless: the source
        // is acknowledged only once it is written, and delivers the transaction again.
        if changed {
            self.publish();
        }
        if changed || durable.is_some() {
            let instances = self.instances_of(&transitions);
            let outgoing = self.notices(&transitions);
            let results = self.told(&instances, moved);
            if self.writes.send(Write { transitions, instances, outgoing, durable, results }).await.is_err() {
                tracing::debug!("alert writer stopped");
            }
        }
    }

    /// What a write tells the followers, in a cluster: the instances it records, those that
    /// moved without a transition, and the overflow counts that moved since the last write.
    /// Repeats are left in: the writer keeps each instance's newest once per group it writes.
    fn told(
        &mut self,
        instances: &[(RuleId, String, Option<Instance>)],
        moved: Vec<(RuleId, String)>,
    ) -> Option<AlertResults> {
        if !self.telling {
            return None;
        }
        let mut told =
            AlertResults { instances: instances.to_vec(), overflow: std::mem::take(&mut self.overflow_moved) };
        told.instances.extend(moved.into_iter().map(|(rule, key)| {
            let now = self.set.instance(rule, &key).cloned();
            (rule, key, now)
        }));
        Some(told)
    }

    /// The notifications the transitions cause, routed as the policy says now.
    fn notices(&self, transitions: &[Transition]) -> Vec<Outgoing> {
        let Some(link) = &self.notify else { return Vec::new() };
        if transitions.is_empty() {
            return Vec::new();
        }
        let routing = link.routing.borrow().clone();
        let rule = |id: RuleId| {
            let entry = self.board.rules.get(&id)?;
            let d = &entry.record.definition;
            Some(RuleFacts { name: d.name.as_str(), severity: d.severity.name().to_lowercase() })
        };
        let now = chrono::Utc::now().timestamp_micros();
        notices(&routing, transitions, rule, &self.board.silences, now)
    }

    fn publish(&mut self) {
        // A follower's overflow counts are the leader's, as told.
        let ids: Vec<RuleId> = if self.leads() { self.board.rules.keys().copied().collect() } else { Vec::new() };
        for id in ids {
            let overflow = self.set.overflow(id);
            if let Some(entry) = self.board.rules.get_mut(&id)
                && entry.overflow != overflow
            {
                entry.overflow = overflow;
                self.overflow_moved.push((id, overflow));
            }
        }
        self.board.instances = self.set.instance_map().clone();
        self.board.seq += 1;
        self.published.send_replace(Arc::new(self.board.clone()));
    }
}

/// Notes the replica positions under each time-driven transition not yet noted: what a
/// restart from an earlier checkpoint must decide again (the store drops it then).
fn decided_on(transitions: &mut [Transition], replica: &Replica) {
    for t in transitions.iter_mut().filter(|t| matches!(t.cause, Cause::Due { .. }) && t.basis.is_empty()) {
        t.basis = replica.applied_positions().map(|(s, p)| (s.clone(), p)).collect();
    }
}

/// The alert writer's side: the app database, the positions it makes durable, and whom it
/// tells once a write is committed.
struct Writer {
    store: Store,
    marks: DurableMarks,
    notify: Option<NotifyLink>,
    duty: watch::Receiver<Duty>,
    announcer: Announcer,
    fenced: CancellationToken,
}

impl Writer {
    /// Writes in order; marks each write's position durable once it is committed. Writes that
    /// queued up while one was being committed go together in the next database transaction
    /// (group commit): a burst of transactions costs a few commits, not one each. A leader's
    /// write carries its epoch; refused (a newer leader claimed the cluster), nothing more is
    /// written or marked and the instance is told it no longer leads.
    async fn run(self, mut writes: mpsc::Receiver<Write>, cancel: CancellationToken) {
        const MOST_AT_ONCE: usize = 512;
        while let Some(first) = writes.recv().await {
            let mut group = vec![first];
            while group.len() < MOST_AT_ONCE
                && let Ok(more) = writes.try_recv()
            {
                group.push(more);
            }
            let Merged { transitions, instances, outgoing, durable, results } = merge(group);
            let fence = self.duty.borrow().fence().cloned();
            if !transitions.is_empty() || !instances.is_empty() {
                let write = || self.store.record_alerts(&transitions, &instances, &outgoing, fence.as_ref());
                let retry = Duration::from_millis(100);
                if !until_written("alert transitions", retry, &cancel, &self.fenced, write).await {
                    return;
                }
                if let Some(link) = self.notify.as_ref().filter(|_| !outgoing.is_empty()) {
                    link.wake();
                }
            }
            // Told once recorded: a follower that starts reads the app database after the
            // last announcement it skips, so it misses nothing that was told before.
            if let (Some(results), Some(fence)) = (results, &fence)
                && (!results.instances.is_empty() || !results.overflow.is_empty())
            {
                let results = serde_json::to_value(&results).expect("alert results serialise");
                self.announcer.announce(Announcement::AlertResults { epoch: fence.epoch, results });
            }
            for (source, position) in durable {
                self.marks.durable(&source, position);
            }
        }
    }
}

/// A group of writes as one.
struct Merged {
    transitions: Vec<Transition>,
    instances: Vec<(RuleId, String, Option<Instance>)>,
    outgoing: Vec<Outgoing>,
    durable: Vec<(SourceName, Position)>,
    results: Option<AlertResults>,
}

/// Writes in order as one: every transition, each instance's last state, every notification,
/// the last position per source, and what to tell.
fn merge(group: Vec<Write>) -> Merged {
    let mut results: Option<AlertResults> = None;
    let mut transitions = Vec::new();
    let mut outgoing = Vec::new();
    let mut instances: Vec<(RuleId, String, Option<Instance>)> = Vec::new();
    let mut at: HashMap<(RuleId, String), usize> = HashMap::new();
    let mut durable: Vec<(SourceName, Position)> = Vec::new();
    for write in group {
        if let Some(later) = write.results {
            results.get_or_insert_with(AlertResults::default).extend(later);
        }
        transitions.extend(write.transitions);
        outgoing.extend(write.outgoing);
        for (rule, key, instance) in write.instances {
            match at.get(&(rule, key.clone())) {
                Some(&i) => instances[i].2 = instance,
                None => {
                    at.insert((rule, key.clone()), instances.len());
                    instances.push((rule, key, instance));
                }
            }
        }
        if let Some((source, position)) = write.durable {
            match durable.iter_mut().find(|(s, _)| *s == source) {
                Some(d) => d.1 = d.1.max(position),
                None => durable.push((source, position)),
            }
        }
    }
    Merged { transitions, instances, outgoing, durable, results: results.map(AlertResults::latest) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(rule: i64, key: &str, value: &str) -> Instance {
        Instance {
            rule: RuleId(rule),
            key: key.into(),
            labels: Default::default(),
            state: super::super::AlertState::Firing,
            since: 1,
            active_since: 1,
            due: None,
            condition: true,
            value: Some(value.into()),
            row: None,
            acknowledged: None,
            cause: Some(Cause::Transaction { source: Arc::from("shop"), position: Position(7), commit_ts: 5 }),
            summary: String::new(),
        }
    }

    #[test]
    fn results_told_hold_each_instances_newest_state_once_and_read_back_as_written() {
        let mut told = AlertResults {
            instances: vec![
                (RuleId(1), "a".into(), Some(instance(1, "a", "1"))),
                (RuleId(1), "b".into(), Some(instance(1, "b", "1"))),
            ],
            overflow: vec![(RuleId(1), 3)],
        };
        told.extend(AlertResults {
            instances: vec![(RuleId(1), "a".into(), Some(instance(1, "a", "2"))), (RuleId(1), "b".into(), None)],
            overflow: vec![(RuleId(1), 4), (RuleId(2), 1)],
        });
        let told = told.latest();
        let expected = AlertResults {
            instances: vec![(RuleId(1), "a".into(), Some(instance(1, "a", "2"))), (RuleId(1), "b".into(), None)],
            overflow: vec![(RuleId(1), 4), (RuleId(2), 1)],
        };
        assert_eq!(told, expected);
        let wire = serde_json::to_value(&told).unwrap();
        assert_eq!(
            serde_json::from_value::<AlertResults>(wire).unwrap(),
            told,
            "the followers read what the leader told"
        );
    }
}

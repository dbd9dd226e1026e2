//! The KPI runtime: one task that owns the KPI engine, follows the apply loop batch by batch,
//! publishes a board of every KPI's current value for readers, and hands each batch's KPI
//! changes on to the alert runtime in order.
//!
//! ```text
//!  apply loop ── Arc<Batch> ──►┐
//!  GraphQL ── define / remove ─►│
//!  serve ── sources' health ───►├─► KpiSet (engine) ─► board (watch: queries, subscriptions)
//!                              │                     ─► KpiStep ─► alert runtime
//! ```
//!
//! Definitions arrive on a channel read between batches, so a new KPI's first value is computed
//! from exactly the replica version the next batch follows on from. The board is a persistent
//! map: publishing a new version shares every unchanged KPI with the previous one.

use std::sync::Arc;

use imbl::OrdMap;
use tokio::sync::{mpsc, oneshot, watch};

use super::compile::{CompiledKpi, compile_kpi};
use super::definition::{DefinitionError, KpiDefinition};
use super::engine::{KpiId, KpiSet, KpiValue};
use super::health::{SourceHealth, SourceKpi};
use crate::announce::{Announcement, Announcer};
use crate::as_of::{AsOf, AsOfs};
use crate::change::SourceName;
use crate::pipeline::Batch;
use crate::policy::PolicyStore;
use crate::registry::TableSchema;
use crate::replica::Replica;

/// A KPI as stored: its definition and who made it.
#[derive(Clone, Debug, PartialEq)]
pub struct KpiRecord {
    pub id: KpiId,
    pub definition: KpiDefinition,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    /// µs since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    /// A built-in KPI (a source's health): sampled, not computed from `definition`, which
    /// only names it.
    pub builtin: Option<SourceKpi>,
}

/// One KPI on the board.
#[derive(Clone, Debug)]
pub struct KpiEntry {
    pub record: Arc<KpiRecord>,
    /// `None` when the definition does not bind to its table right now (the reason is in
    /// `value`).
    pub compiled: Option<Arc<CompiledKpi>>,
    pub value: KpiValue,
    /// Updates of this KPI's value so far (1 is the first).
    pub seq: u64,
    pub as_of: AsOf,
}

impl KpiEntry {
    /// Moves this entry to its next version: a new value, as of a new position if given.
    /// Changed in place when no published board holds the entry (a backlog between publishes).
    fn set_value(&mut self, value: KpiValue, as_of: Option<AsOf>) {
        self.value = value;
        self.seq += 1;
        if let Some(as_of) = as_of {
            self.as_of = as_of;
        }
    }
}

/// Every KPI's current value: what queries read and subscriptions follow.
#[derive(Clone, Debug, Default)]
pub struct KpiBoard {
    /// Entries behind `Arc`s: publishing copies the map's touched nodes, and those copies
    /// then cost a pointer per entry, not the entry's groups (the benchmark's largest cost).
    pub kpis: OrdMap<KpiId, Arc<KpiEntry>>,
}

impl KpiBoard {
    /// This board with newer values of some of its KPIs (a KPI not on it is left out): what
    /// a reader of steps without boards holds as the board after the last of them.
    pub fn with_values<'a>(&self, values: impl IntoIterator<Item = (&'a KpiId, &'a KpiValue)>) -> KpiBoard {
        let mut board = self.clone();
        for (id, value) in values {
            if let Some(entry) = board.kpis.get_mut(id) {
                Arc::make_mut(entry).value = value.clone();
            }
        }
        board
    }
}

/// One batch's effect on the KPIs, for the alert runtime.
#[derive(Clone, Debug)]
pub struct KpiStep {
    /// The batch, when the step follows one (time-driven steps have none).
    pub batch: Option<Arc<Batch>>,
    /// The KPIs whose value changed, with the new value.
    pub changed: Vec<(KpiId, KpiValue)>,
    /// The KPIs whose rows the batch touched (value changed or not).
    pub touched: Vec<KpiId>,
    /// KPIs that were removed.
    pub removed: Vec<KpiId>,
    /// The board after the step, when the step published one. In a backlog the board is
    /// published once per burst (see [`PUBLISH_AT_LEAST_EVERY`]), not per transaction: the
    /// steps in between carry their new values in `changed` and no board.
    pub board: Option<Arc<KpiBoard>>,
}

/// How stale the published board may grow while the runtime works through a backlog of
/// batches. Readers only ever see the newest board (a watch), so publishing each of a burst's
/// transactions cost a copy of the board's touched nodes and an allocation per changed KPI
/// that nobody could see; caught up, every batch that changes a value is published at once.
const PUBLISH_AT_LEAST_EVERY: std::time::Duration = std::time::Duration::from_millis(2);

enum Command {
    Define { record: Arc<KpiRecord>, reply: oneshot::Sender<Result<(), DefinitionError>> },
    Remove { id: KpiId },
    Sample { health: Vec<(SourceName, SourceHealth)> },
}

/// The handle GraphQL and the server use.
#[derive(Clone, Debug)]
pub struct KpiHub {
    commands: mpsc::UnboundedSender<Command>,
    pub board: watch::Receiver<Arc<KpiBoard>>,
    /// Tells the cluster's other instances of a definition made here.
    announcer: Announcer,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl KpiHub {
    /// Starts the runtime on `batches`, from `replica` (the version the first batch follows
    /// on from), with `records` already defined. Each step goes on to `steps` when given.
    pub fn start(
        replica: Arc<Replica>,
        time_zone: chrono_tz::Tz,
        policy: PolicyStore,
        records: Vec<KpiRecord>,
        batches: mpsc::Receiver<Arc<Batch>>,
        steps: Vec<mpsc::Sender<KpiStep>>,
    ) -> KpiHub {
        let (commands, rx) = mpsc::unbounded_channel();
        let mut runtime = Runtime {
            set: KpiSet::with_time_zone(time_zone),
            replica,
            policy,
            board: KpiBoard::default(),
            published: watch::Sender::new(Arc::new(KpiBoard::default())),
            held_since: None,
            as_of: AsOfs::default(),
        };
        for record in records {
            let id = record.id;
            if let Err(e) = runtime.define(Arc::new(record)) {
                // Kept on the board with the reason; bound again when its table loads.
                tracing::info!(kpi = id.0, error = %e, "a stored KPI does not bind yet");
            }
        }
        runtime.publish();
        let board = runtime.published.subscribe();
        tokio::spawn(runtime.run(rx, batches, steps));
        KpiHub { commands, board, announcer: Announcer::default() }
    }

    /// The same hub, telling `announcer` of every definition made through it.
    pub fn announcing(self, announcer: Announcer) -> KpiHub {
        KpiHub { announcer, ..self }
    }

    /// The same hub, telling nobody: for changes another instance made and announced.
    pub fn quiet(&self) -> KpiHub {
        KpiHub { announcer: Announcer::default(), ..self.clone() }
    }

    /// Defines or redefines a KPI; its first value is on the board when this returns `Ok`.
    pub async fn define(&self, record: KpiRecord) -> Result<(), DefinitionError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || DefinitionError::new("kpi", "the server is shutting down");
        let id = record.id;
        self.commands.send(Command::Define { record: Arc::new(record), reply }).map_err(|_| stopped())?;
        let mut board = self.board.clone();
        let result = answer.await.map_err(|_| stopped())?;
        // Stored either way: a definition that does not bind here is on every board with why.
        self.announcer.announce(Announcement::Kpi { id: id.0 });
        // The board is published before the reply; mark it seen so callers read the new one.
        board.borrow_and_update();
        result
    }

    pub fn remove(&self, id: KpiId) {
        let _ = self.commands.send(Command::Remove { id });
        self.announcer.announce(Announcement::Kpi { id: id.0 });
    }

    /// The sources' health now: the built-in KPIs take it as their new values.
    pub fn sample(&self, health: Vec<(SourceName, SourceHealth)>) {
        let _ = self.commands.send(Command::Sample { health });
    }

    pub fn current(&self) -> Arc<KpiBoard> {
        self.board.borrow().clone()
    }
}

/// Hands a step to each of the runtimes after this one (the alerts, the history), in order.
/// Waits while one is full: backpressure up to the apply loop. Sent from here rather than
/// through a task of its own in between, which cost a wake-up per transaction.
async fn hand_on(receivers: &mut Vec<mpsc::Sender<KpiStep>>, step: KpiStep) {
    let mut stopped = Vec::new();
    let last = receivers.len().saturating_sub(1);
    let mut step = Some(step);
    for (i, receiver) in receivers.iter().enumerate() {
        let this = if i == last { step.take() } else { step.clone() };
        let Some(this) = this else { break };
        if receiver.send(this).await.is_err() {
            stopped.push(i);
        }
    }
    for i in stopped.into_iter().rev() {
        tracing::debug!("a runtime after the KPIs stopped");
        receivers.remove(i);
    }
}

struct Runtime {
    set: KpiSet,
    replica: Arc<Replica>,
    policy: PolicyStore,
    board: KpiBoard,
    published: watch::Sender<Arc<KpiBoard>>,
    /// When the board was last published, if it has changed since (a backlog's values held
    /// back, at most [`PUBLISH_AT_LEAST_EVERY`]).
    held_since: Option<std::time::Instant>,
    as_of: AsOfs,
}

impl Runtime {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut batches: mpsc::Receiver<Arc<Batch>>,
        mut steps: Vec<mpsc::Sender<KpiStep>>,
    ) {
        // No cancellation arm: the loop ends when the apply loop's batches end (after it has
        // drained the sources at shutdown), so every batch reaches the writers downstream and
        // the final checkpoint can wait for them.
        loop {
            // Batches waiting (a backlog): take them without working out the next wake-up (a
            // scan of every KPI); `apply` moves windows to each batch's time anyway.
            if let Ok(batch) = batches.try_recv() {
                let step = self.batch(batch, !batches.is_empty());
                hand_on(&mut steps, step).await;
                continue;
            }
            let wait = self.next_wake();
            let step = tokio::select! {
                biased;
                batch = batches.recv() => match batch {
                    Some(batch) => Some(self.batch(batch, !batches.is_empty())),
                    None => break,
                },
                Some(command) = commands.recv() => self.command(command),
                _ = tokio::time::sleep(wait.unwrap_or(std::time::Duration::ZERO)), if wait.is_some() => self.tick(),
            };
            if let Some(step) = step {
                hand_on(&mut steps, step).await;
            }
        }
    }

    /// How long until time alone changes a KPI: a window's next expiry, or the next second
    /// for KPIs of ages.
    fn next_wake(&self) -> Option<std::time::Duration> {
        let now = chrono::Utc::now().timestamp_micros();
        let ages = self.board.kpis.values().any(|e| e.compiled.as_ref().is_some_and(|c| c.time_dependent));
        let second = ages.then(|| (now / 1_000_000 + 1) * 1_000_000);
        let due = [self.set.next_due(), second].into_iter().flatten().min()?;
        Some(crate::duration::until(due, now))
    }

    /// Time passed with no transaction: windows expire rows, ages grow.
    fn tick(&mut self) -> Option<KpiStep> {
        let now = chrono::Utc::now().timestamp_micros();
        let ids = self.set.advance(now, &self.replica);
        if ids.is_empty() {
            return None;
        }
        let mut changed = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(value) = self.set.value(id).cloned() else { continue };
            let Some(entry) = self.board.kpis.get_mut(&id) else { continue };
            Arc::make_mut(entry).set_value(value.clone(), None);
            changed.push((id, value));
        }
        let board = Some(self.publish());
        Some(KpiStep { batch: None, changed, touched: Vec::new(), removed: Vec::new(), board })
    }

    fn tables(&self) -> Vec<Arc<TableSchema>> {
        self.replica.tables().map(|t| t.schema.clone()).collect()
    }

    fn compile(&self, record: &KpiRecord) -> Result<CompiledKpi, DefinitionError> {
        compile_kpi(&record.definition, &self.tables(), &self.policy.current().policy)
    }

    /// Binds and adds a KPI. A definition that no longer binds (its table is not loaded yet,
    /// a column went away) stays on the board with the reason, and is bound again when its
    /// table is reloaded.
    fn define(&mut self, record: Arc<KpiRecord>) -> Result<(), DefinitionError> {
        let id = record.id;
        if let Some(builtin) = &record.builtin {
            let value = KpiValue::NotReady("not sampled yet".into());
            let as_of = self.as_of_for(&builtin.source);
            self.board.kpis.insert(id, Arc::new(KpiEntry { record, compiled: None, value, seq: 1, as_of }));
            return Ok(());
        }
        let result = self.compile(&record);
        let (compiled, value) = match &result {
            Ok(compiled) => {
                self.set.insert(id, compiled.clone(), &self.replica, chrono::Utc::now().timestamp_micros());
                let value = self.set.value(id).cloned().unwrap_or(KpiValue::NotReady(String::new()));
                (Some(Arc::new(compiled.clone())), value)
            }
            Err(e) => {
                self.set.remove(id);
                (None, KpiValue::NotReady(format!("the definition does not fit its table: {e}")))
            }
        };
        let as_of = compiled.as_ref().map(|c| self.as_of_for(&c.schema.spec.source)).unwrap_or_default();
        let seq = self.board.kpis.get(&id).map_or(1, |e| e.seq + 1);
        self.board.kpis.insert(id, Arc::new(KpiEntry { record, compiled, value, seq, as_of }));
        result.map(|_| ())
    }

    fn as_of_for(&self, source: &SourceName) -> AsOf {
        self.as_of.of(source, &self.replica)
    }

    fn publish(&mut self) -> Arc<KpiBoard> {
        let board = Arc::new(self.board.clone());
        self.published.send_replace(board.clone());
        self.held_since = None;
        board
    }

    fn command(&mut self, command: Command) -> Option<KpiStep> {
        match command {
            Command::Define { record, reply } => {
                let id = record.id;
                let result = self.define(record);
                let board = self.publish();
                let _ = reply.send(result);
                let value = board.kpis.get(&id).map(|e| e.value.clone())?;
                let board = Some(board);
                Some(KpiStep {
                    batch: None,
                    changed: vec![(id, value)],
                    touched: Vec::new(),
                    removed: Vec::new(),
                    board,
                })
            }
            Command::Remove { id } => {
                self.set.remove(id);
                self.board.kpis.remove(&id);
                let board = Some(self.publish());
                Some(KpiStep { batch: None, changed: Vec::new(), touched: Vec::new(), removed: vec![id], board })
            }
            Command::Sample { health } => self.sample(&health),
        }
    }

    /// The built-in KPIs whose sampled value differs from their last.
    fn sample(&mut self, health: &[(SourceName, SourceHealth)]) -> Option<KpiStep> {
        let builtins: Vec<(KpiId, SourceKpi)> =
            self.board.kpis.iter().filter_map(|(id, e)| Some((*id, e.record.builtin.clone()?))).collect();
        let mut changed = Vec::new();
        for (id, kpi) in builtins {
            let Some((_, h)) = health.iter().find(|(s, _)| *s == kpi.source) else { continue };
            let value = h.value(kpi.measure);
            if self.board.kpis.get(&id).is_none_or(|old| old.value == value) {
                continue;
            }
            let as_of = self.as_of_for(&kpi.source);
            let Some(entry) = self.board.kpis.get_mut(&id) else { continue };
            Arc::make_mut(entry).set_value(value.clone(), Some(as_of));
            changed.push((id, value));
        }
        if changed.is_empty() {
            return None;
        }
        let board = Some(self.publish());
        Some(KpiStep { batch: None, changed, touched: Vec::new(), removed: Vec::new(), board })
    }

    /// Follows one batch; `more` says whether others are already waiting (a backlog).
    fn batch(&mut self, batch: Arc<Batch>, more: bool) -> KpiStep {
        self.replica = batch.replica.clone();
        self.as_of.follow(&batch);
        let outcome = self.set.apply(&batch.applied, &self.replica, batch.at);
        let mut changed = Vec::with_capacity(outcome.changed.len());
        for id in outcome.changed {
            let Some(value) = self.set.value(id).cloned() else { continue };
            let Some(entry) = self.board.kpis.get_mut(&id) else { continue };
            let as_of = entry.compiled.as_ref().map(|c| self.as_of.of(&c.schema.spec.source, &self.replica));
            Arc::make_mut(entry).set_value(value.clone(), as_of);
            changed.push((id, value));
        }
        // Also KPIs whose definition did not bind before: their table may have just loaded.
        let table_events = batch.applied.tx.is_none();
        let rebinds = table_events || !outcome.reshaped.is_empty();
        if rebinds {
            let unbound: Vec<Arc<KpiRecord>> = self
                .board
                .kpis
                .values()
                .filter(|e| e.compiled.is_none() && e.record.builtin.is_none())
                .map(|e| e.record.clone())
                .chain(outcome.reshaped.iter().filter_map(|id| self.board.kpis.get(id).map(|e| e.record.clone())))
                .collect();
            for record in unbound {
                let id = record.id;
                let before = self.board.kpis.get(&id).map(|e| e.value.clone());
                if self.define(record).is_err() && outcome.reshaped.contains(&id) {
                    tracing::warn!(kpi = id.0, "a KPI no longer fits its table after a schema change");
                }
                let after = self.board.kpis.get(&id).map(|e| e.value.clone());
                if let Some(value) = after.filter(|a| Some(a) != before.as_ref()) {
                    changed.push((id, value));
                }
            }
        }
        // Every batch goes on, changes or not: the alert runtime follows the replica through
        // these steps (a table that finished loading is one), and durable writers mark
        // positions from them.
        if !changed.is_empty() && self.held_since.is_none() {
            self.held_since = Some(std::time::Instant::now());
        }
        // Published when caught up, when held back long enough, and whenever definitions were
        // bound again (the alerts read a KPI's groups' names from the board they are handed).
        let due = self.held_since.is_some_and(|since| !more || since.elapsed() >= PUBLISH_AT_LEAST_EVERY);
        let board = (due || rebinds).then(|| self.publish());
        KpiStep { batch: Some(batch), changed, touched: outcome.touched, removed: Vec::new(), board }
    }
}

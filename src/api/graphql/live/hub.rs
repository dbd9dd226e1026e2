//! The live hub: one task that owns every live query, follows the replica transaction by
//! transaction, and hands each update to the outboxes of its subscribers.
//!
//! ```text
//!  apply loop ── Batch(applied, replica version) ──►┐
//!  connections ── subscribe / stop / gone ─────────►├─► hub ─► LiveSet (engine) ─► render once
//!                                                   │          ─► every subscriber's Outbox
//! ```
//!
//! Time is a third input: a query whose filter compares with a time relative to now (`ago`)
//! changes with no write, so the hub also sleeps until the engine's next due instant
//! (`LiveSet::next_due`) and then advances it; those updates go out with a fresh `seq` like
//! any other, with the `asOf` of the last transaction (the data did not move, the clock did).
//!
//! Subscriptions and batches arrive on channels the hub reads in order, so a new
//! subscription's first result is computed from exactly the replica version the next batch
//! follows on from: no update is missed or applied twice. Subscriptions with the same compiled
//! query and the same answer shape share one entry (`LiveRequest::share`): computed once,
//! serialised once, sent to each.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::compile::{LiveRequest, Render};
use super::outbox::{Delivery, Kind, Outbox, Pushed};
use super::render::{self, AsOf, Json, UpdateBody};
use crate::change::SourceName;
use crate::live::{Current, LiveError, LiveSet, QueryId, RowsDiff, Step};
use crate::pipeline::Batch;
use crate::query::{Clock, SystemClock};
use crate::replica::Replica;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub subscriptions: AtomicU64,
    pub queries: AtomicU64,
    /// Query results updated: one per distinct query per transaction that touched it.
    pub evaluations: AtomicU64,
    /// Payloads written (each shared by every subscriber of its query).
    pub payloads: AtomicU64,
    /// Messages left for subscribers.
    pub deliveries: AtomicU64,
    /// Patches turned into a reset because the client had too many waiting.
    pub resets_for_slow_clients: AtomicU64,
}

enum Command {
    Subscribe {
        request: Box<LiveRequest>,
        outbox: Arc<Outbox>,
        sub: Arc<str>,
        reply: oneshot::Sender<Result<(), LiveError>>,
    },
    Stop {
        outbox: u64,
        sub: Arc<str>,
    },
    Gone {
        outbox: u64,
    },
}

/// The handle connections use.
#[derive(Clone, Debug)]
pub struct LiveHub {
    commands: mpsc::UnboundedSender<Command>,
    pub stats: Arc<LiveStats>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl LiveHub {
    /// Starts the hub on the batches of an apply loop whose replica is `replica` now.
    pub fn start(replica: Arc<Replica>, batches: mpsc::Receiver<Arc<Batch>>, cancel: CancellationToken) -> LiveHub {
        LiveHub::start_with_clock(replica, batches, cancel, Arc::new(SystemClock))
    }

    /// Like [`LiveHub::start`], reading "now" for time-relative filters from `clock`.
    pub fn start_with_clock(
        replica: Arc<Replica>,
        batches: mpsc::Receiver<Arc<Batch>>,
        cancel: CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> LiveHub {
        // Unbounded on purpose: commands are small and each connection sends a bounded number
        // (its subscriptions); blocking a socket's reader on the hub would gain nothing.
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(LiveStats::default());
        let hub = Hub::new(replica, stats.clone(), clock);
        tokio::spawn(hub.run(rx, batches, cancel));
        LiveHub { commands: tx, stats }
    }

    /// Registers a subscription; its first result is in the outbox when this returns `Ok`.
    pub async fn subscribe(&self, request: LiveRequest, outbox: &Arc<Outbox>, sub: Arc<str>) -> Result<(), LiveError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Subscribe { request: Box::new(request), outbox: outbox.clone(), sub, reply };
        if self.commands.send(command).is_err() {
            return Err(LiveError::NotReady("the server is shutting down".into()));
        }
        answer.await.unwrap_or_else(|_| Err(LiveError::NotReady("the server is shutting down".into())))
    }

    pub fn stop(&self, outbox: &Outbox, sub: Arc<str>) {
        let _ = self.commands.send(Command::Stop { outbox: outbox.id, sub });
    }

    /// The connection closed: every subscription of it ends.
    pub fn gone(&self, outbox: &Outbox) {
        let _ = self.commands.send(Command::Gone { outbox: outbox.id });
    }
}

struct Subscriber {
    outbox: Arc<Outbox>,
    sub: Arc<str>,
}

/// One distinct live query and its subscribers.
struct Shared {
    request: LiveRequest,
    query: QueryId,
    /// Updates of this result so far.
    seq: u64,
    subscribers: Vec<Subscriber>,
    /// The last full-form payload: an update whose result is the same is not sent.
    last: Option<FullPayload>,
}

struct Hub {
    set: LiveSet,
    replica: Arc<Replica>,
    shared: HashMap<String, Shared>,
    by_query: HashMap<QueryId, String>,
    /// The last transaction seen per source, for `asOf`.
    as_of: HashMap<SourceName, AsOf>,
    stats: Arc<LiveStats>,
    clock: Arc<dyn Clock>,
}

impl Hub {
    fn new(replica: Arc<Replica>, stats: Arc<LiveStats>, clock: Arc<dyn Clock>) -> Hub {
        let as_of =
            replica.applied_positions().map(|(s, p)| (s.clone(), AsOf { position: p, commit_ts: None })).collect();
        Hub { set: LiveSet::new(), replica, shared: HashMap::new(), by_query: HashMap::new(), as_of, stats, clock }
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut batches: mpsc::Receiver<Arc<Batch>>,
        cancel: CancellationToken,
    ) {
        loop {
            // Recomputed each turn: a batch or a subscription may bring an earlier instant.
            let due = self.set.next_due();
            let wait = due.map(|at| {
                let micros = at.saturating_sub(self.clock.now_micros()).max(0);
                std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0))
            });
            tokio::select! {
                // Batches first: a subscription waits at most one batch, and the data flow
                // never waits on subscribers.
                biased;
                batch = batches.recv() => match batch {
                    Some(batch) => self.batch(batch),
                    None => break,
                },
                Some(command) = commands.recv() => self.command(command),
                _ = async { tokio::time::sleep(wait.unwrap_or_default()).await }, if wait.is_some() => self.advance(),
                _ = cancel.cancelled() => break,
            }
        }
        for shared in self.shared.values() {
            for s in &shared.subscribers {
                s.outbox.push(&s.sub, Delivery::Error(errors("the server is shutting down", "NOT_READY")));
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Subscribe { request, outbox, sub, reply } => {
                let _ = reply.send(self.subscribe(*request, outbox, sub));
            }
            Command::Stop { outbox, sub } => self.drop_where(|s| s.outbox.id == outbox && s.sub == sub),
            Command::Gone { outbox } => self.drop_where(|s| s.outbox.id == outbox),
        }
        self.count();
    }

    fn count(&self) {
        let subs: usize = self.shared.values().map(|s| s.subscribers.len()).sum();
        self.stats.subscriptions.store(subs as u64, Ordering::Relaxed);
        self.stats.queries.store(self.shared.len() as u64, Ordering::Relaxed);
    }

    fn subscribe(&mut self, request: LiveRequest, outbox: Arc<Outbox>, sub: Arc<str>) -> Result<(), LiveError> {
        let key = request.share.clone();
        if !self.shared.contains_key(&key) {
            let query = self.set.add(request.spec.clone(), &self.replica, self.clock.now_micros())?;
            self.by_query.insert(query, key.clone());
            self.shared.insert(key.clone(), Shared { request, query, seq: 1, subscribers: Vec::new(), last: None });
        }
        let as_of = self.as_of_for(&key);
        let shared = self.shared.get_mut(&key).expect("just added");
        let payload = first_payload(&self.set, shared, as_of);
        if let Some(payload) = payload {
            let kind = if matches!(shared.request.render, Render::Patches { .. }) { Kind::Reset } else { Kind::Full };
            outbox.push(&sub, Delivery::Next { payload, kind });
            self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
        }
        shared.subscribers.push(Subscriber { outbox, sub });
        Ok(())
    }

    fn as_of_for(&self, key: &str) -> AsOf {
        let Some(shared) = self.shared.get(key) else { return AsOf::default() };
        let source = &shared.request.spec.schema.spec.source;
        self.as_of
            .get(source)
            .copied()
            .unwrap_or_else(|| AsOf { position: self.replica.applied_position(source), commit_ts: None })
    }

    fn drop_where(&mut self, gone: impl Fn(&Subscriber) -> bool) {
        let mut empty = Vec::new();
        for (key, shared) in &mut self.shared {
            shared.subscribers.retain(|s| !gone(s));
            if shared.subscribers.is_empty() {
                empty.push(key.clone());
            }
        }
        for key in empty {
            if let Some(shared) = self.shared.remove(&key) {
                self.set.remove(shared.query);
                self.by_query.remove(&shared.query);
            }
        }
    }

    fn batch(&mut self, batch: Arc<Batch>) {
        self.replica = batch.replica.clone();
        if let Some(tx) = &batch.applied.tx {
            self.as_of.insert(tx.source.clone(), AsOf { position: tx.position, commit_ts: Some(tx.commit_ts) });
        }
        let before = self.set.evaluations;
        let steps = self.set.apply(&batch.applied, &self.replica, self.clock.now_micros());
        self.stats.evaluations.fetch_add(self.set.evaluations - before, Ordering::Relaxed);
        self.steps(steps);
    }

    /// Time-relative results whose rows are due move in and out.
    fn advance(&mut self) {
        let before = self.set.evaluations;
        let steps = self.set.advance(self.clock.now_micros(), &self.replica);
        self.stats.evaluations.fetch_add(self.set.evaluations - before, Ordering::Relaxed);
        self.steps(steps);
    }

    fn steps(&mut self, steps: Vec<(QueryId, Step)>) {
        let mut ended = Vec::new();
        for (query, step) in steps {
            let Some(key) = self.by_query.get(&query).cloned() else { continue };
            let as_of = self.as_of_for(&key);
            if let Step::Changed { reset, rows } = &step {
                self.changed(&key, *reset, rows, as_of);
                continue;
            }
            let shared = self.shared.get_mut(&key).expect("indexed");
            match step {
                Step::Changed { .. } => {}
                Step::NotReady(reason) => {
                    shared.seq += 1;
                    shared.last = None;
                    let payload = not_ready_payload(&reason, as_of, shared.seq);
                    // An error result stands for the whole state, like a reset.
                    fan_out(shared, Delivery::Next { payload, kind: Kind::Reset }, &self.stats);
                }
                Step::Ended(reason) => {
                    fan_out(shared, Delivery::Error(errors(&reason, "SCHEMA_CHANGED")), &self.stats);
                    ended.push(key);
                }
            }
        }
        if ended.is_empty() {
            return;
        }
        for key in ended {
            if let Some(shared) = self.shared.remove(&key) {
                self.set.remove(shared.query);
                self.by_query.remove(&shared.query);
            }
        }
        self.count();
    }

    fn changed(&mut self, key: &str, reset: bool, rows: &RowsDiff, as_of: AsOf) {
        let shared = self.shared.get_mut(key).expect("indexed");
        let Some(current) = self.set.current(shared.query) else { return };
        match &shared.request.render {
            Render::Patches { fields, key: key_columns } => {
                let Current::Rows(all) = current else { return };
                if rows.is_empty() && !reset {
                    return;
                }
                shared.seq += 1;
                let body =
                    if reset { UpdateBody::Reset(all) } else { UpdateBody::Patch { diff: rows, key: key_columns } };
                let payload = patches_payload(&shared.request.field, fields, &body, as_of, shared.seq, all.len());
                let mut reset_payload: Option<Arc<str>> = None;
                self.stats.payloads.fetch_add(1, Ordering::Relaxed);
                for s in &shared.subscribers {
                    self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
                    let kind = if reset { Kind::Reset } else { Kind::Patch };
                    if s.outbox.push(&s.sub, Delivery::Next { payload: payload.clone(), kind }) == Pushed::NeedsReset {
                        let r = reset_payload.get_or_insert_with(|| {
                            patches_payload(
                                &shared.request.field,
                                fields,
                                &UpdateBody::Reset(all),
                                as_of,
                                shared.seq,
                                all.len(),
                            )
                        });
                        self.stats.resets_for_slow_clients.fetch_add(1, Ordering::Relaxed);
                        s.outbox.replace(&s.sub, Delivery::Next { payload: r.clone(), kind: Kind::Reset });
                    }
                }
            }
            _ => {
                let payload = full_payload(&shared.request, current, as_of, shared.seq + 1);
                // The same answer again (a change to columns or groups the client did not
                // select): nothing it shows changed, so nothing is sent.
                if !reset && shared.last.as_ref().is_some_and(|last| last.data() == payload.data()) {
                    return;
                }
                shared.seq += 1;
                shared.last = Some(payload.clone());
                let payload = payload.text;
                self.stats.payloads.fetch_add(1, Ordering::Relaxed);
                fan_out(shared, Delivery::Next { payload, kind: Kind::Full }, &self.stats);
            }
        }
    }
}

fn fan_out(shared: &Shared, delivery: Delivery, stats: &LiveStats) {
    for s in &shared.subscribers {
        s.outbox.push(&s.sub, delivery.clone());
    }
    stats.deliveries.fetch_add(shared.subscribers.len() as u64, Ordering::Relaxed);
}

/// The first message of a new subscriber: the current result (a reset in the incremental form).
fn first_payload(set: &LiveSet, shared: &mut Shared, as_of: AsOf) -> Option<Arc<str>> {
    let current = set.current(shared.query)?;
    Some(match (&shared.request.render, current) {
        (Render::Patches { fields, .. }, Current::Rows(all)) => {
            patches_payload(&shared.request.field, fields, &UpdateBody::Reset(all), as_of, shared.seq, all.len())
        }
        (_, current) => {
            let payload = full_payload(&shared.request, current, as_of, shared.seq);
            shared.last.get_or_insert_with(|| payload.clone());
            payload.text
        }
    })
}

const TOO_MANY: &str = "more than 10000 rows match this live query: narrow `where` or set `limit`";

/// A full-form message and where its result ends (before `extensions`, which change with every
/// transaction).
#[derive(Clone)]
struct FullPayload {
    text: Arc<str>,
    data_end: usize,
}

impl FullPayload {
    fn data(&self) -> &str {
        &self.text[..self.data_end]
    }
}

/// `{"data":{field: result},"extensions":{"asOf":…,"seq":…}}`
fn full_payload(request: &LiveRequest, current: Current<'_>, as_of: AsOf, seq: u64) -> FullPayload {
    if let Current::Rows(rows) = &current
        && rows.len() > super::super::arguments::MAX_ROWS
    {
        return error_payload(TOO_MANY, "BAD_USER_INPUT", as_of, seq);
    }
    let mut out = Json::new();
    out.raw("{\"data\":{");
    out.string(&request.field);
    out.raw(":");
    match (&request.render, current) {
        (Render::Rows(fields), Current::Rows(rows)) => out.rows(fields, rows),
        (Render::Row(fields), Current::Row(Some(row))) => out.row(fields, row),
        (Render::Groups { fields, group_by, measures }, Current::Groups(groups)) => {
            out.groups(fields, &groups, group_by, measures)
        }
        _ => {
            out.raw("null");
        }
    }
    out.raw("}");
    let data_end = out.0.len();
    out.raw(",\"extensions\":");
    out.extensions(as_of, seq);
    out.raw("}");
    FullPayload { text: Arc::from(out.0), data_end }
}

fn patches_payload(
    field: &str,
    fields: &super::projection::Fields<super::projection::UpdateField>,
    body: &UpdateBody<'_>,
    as_of: AsOf,
    seq: u64,
    total: usize,
) -> Arc<str> {
    if total > super::super::arguments::MAX_ROWS {
        return error_payload(TOO_MANY, "BAD_USER_INPUT", as_of, seq).text;
    }
    let mut out = Json::new();
    out.raw("{\"data\":{");
    out.string(field);
    out.raw(":");
    render::update(&mut out, fields, body, as_of, seq);
    out.raw("}}");
    Arc::from(out.0)
}

/// A result that is only an error (the table is not ready): the subscription stays open and
/// the result follows when it can be answered again.
fn not_ready_payload(reason: &str, as_of: AsOf, seq: u64) -> Arc<str> {
    error_payload(reason, "NOT_READY", as_of, seq).text
}

fn error_payload(message: &str, code: &str, as_of: AsOf, seq: u64) -> FullPayload {
    let mut out = Json::new();
    out.raw("{\"data\":null,\"errors\":");
    out.raw(&errors(message, code));
    let data_end = out.0.len();
    out.raw(",\"extensions\":");
    out.extensions(as_of, seq);
    out.raw("}");
    FullPayload { text: Arc::from(out.0), data_end }
}

/// A JSON array of one GraphQL error with a code.
pub fn errors(message: &str, code: &str) -> Arc<str> {
    let mut out = Json::new();
    out.raw("[{\"message\":");
    out.string(message);
    out.raw(",\"extensions\":{\"code\":");
    out.string(code);
    out.raw("}}]");
    Arc::from(out.0)
}

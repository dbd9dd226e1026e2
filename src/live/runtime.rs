//! The live runtime: one task that owns every live query, follows the apply loop batch by
//! batch, and hands each distinct query's update to the renderer once, for all its
//! subscribers.
//!
//! ```text
//!  apply loop ── Arc<Batch> ──────────────────►┐
//!  API ── subscribe / stop / connection gone ─►├─► LiveSet (engine) ─► Render, once per
//!  clock ── the next due instant (`ago`) ─────►┘                       distinct query ─► subscribers
//! ```
//!
//! Time is a third input: a query whose filter compares with a time relative to now (`ago`)
//! changes with no write, so the runtime also sleeps until the engine's next due instant
//! ([`LiveSet::next_due`]) and then advances it; those updates go out like any other, with the
//! `asOf` of the last transaction (the data did not move, the clock did).
//!
//! Subscriptions and batches arrive on channels read in order, so a new subscription's first
//! result is computed from exactly the replica version the next batch follows on from: no
//! update is missed or applied twice. Subscriptions with the same share key (the same compiled
//! query and the same answer shape) share one entry: computed once, rendered once, sent to
//! each.
//!
//! What a subscription asks for, how a result is written and where a subscriber's messages go
//! belong to the API, behind [`Render`]; this runtime knows no GraphQL and no socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Current, LiveError, LiveSet, LiveSpec, QueryId, RowsDiff, Step};
use crate::as_of::{AsOf, AsOfs};
use crate::pipeline::Batch;
use crate::query::Clock;
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

/// The rendering seam: the API's side of a live query. Each method is called once per
/// distinct query per event and writes its message once for every subscriber in `shared`.
pub trait Render: Send + 'static {
    /// A subscription as the API compiled it: the engine's query and the form of its messages.
    type Request: Send + 'static;
    /// Where one subscriber's messages go.
    type Subscriber: Send + 'static;
    /// What the renderer keeps of a shared result between updates (its last message, say).
    type Memo: Default + Send + 'static;

    fn spec(request: &Self::Request) -> &LiveSpec;
    /// Equal for subscriptions that can share one computation and one message.
    fn share_key(request: &Self::Request) -> &str;
    /// The connection a subscriber came on (closing it ends all of them) and its id there.
    fn connection(subscriber: &Self::Subscriber) -> (u64, &str);

    /// A new subscriber's first message: the result as it stands (`shared.seq`).
    fn first(&self, shared: &mut Shared<Self>, current: Current<'_>, as_of: AsOf, to: &Self::Subscriber)
    where
        Self: Sized;
    /// The result changed; the renderer bumps `shared.seq` if it sends something.
    fn changed(&self, shared: &mut Shared<Self>, current: Current<'_>, reset: bool, rows: &RowsDiff, as_of: AsOf)
    where
        Self: Sized;
    /// The table cannot be answered from for now.
    fn not_ready(&self, shared: &mut Shared<Self>, reason: &str, as_of: AsOf)
    where
        Self: Sized;
    /// The query cannot be answered any more; its subscribers are dropped after this.
    fn ended(&self, shared: &Shared<Self>, reason: &str)
    where
        Self: Sized;
    /// The server is shutting down.
    fn closing(&self, shared: &Shared<Self>)
    where
        Self: Sized;
}

/// One distinct live query and its subscribers.
pub struct Shared<R: Render> {
    pub request: R::Request,
    /// Updates of this result so far: the `seq` of the last message.
    pub seq: u64,
    pub subscribers: Vec<R::Subscriber>,
    pub memo: R::Memo,
    query: QueryId,
}

enum Command<R: Render> {
    Subscribe { request: R::Request, subscriber: R::Subscriber, reply: oneshot::Sender<Result<(), LiveError>> },
    Stop { connection: u64, subscription: Arc<str> },
    Gone { connection: u64 },
}

/// The handle the API registers subscriptions with.
pub struct LiveRuntime<R: Render> {
    commands: mpsc::UnboundedSender<Command<R>>,
    pub stats: Arc<LiveStats>,
}

impl<R: Render> Clone for LiveRuntime<R> {
    fn clone(&self) -> Self {
        LiveRuntime { commands: self.commands.clone(), stats: self.stats.clone() }
    }
}

impl<R: Render> std::fmt::Debug for LiveRuntime<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRuntime").field("stats", &self.stats).finish()
    }
}

impl<R: Render> LiveRuntime<R> {
    /// Starts the runtime on the batches of an apply loop whose replica is `replica` now,
    /// reading "now" for time-relative filters from `clock`.
    pub fn start(
        replica: Arc<Replica>,
        batches: mpsc::Receiver<Arc<Batch>>,
        cancel: CancellationToken,
        clock: Arc<dyn Clock>,
        render: R,
        stats: Arc<LiveStats>,
    ) -> LiveRuntime<R> {
        // Unbounded on purpose: commands are small and each connection sends a bounded number
        // (its subscriptions); blocking a socket's reader on the runtime would gain nothing.
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            set: LiveSet::new(),
            replica,
            shared: HashMap::new(),
            by_query: HashMap::new(),
            as_of: AsOfs::default(),
            stats: stats.clone(),
            clock,
            render,
        };
        tokio::spawn(task.run(rx, batches, cancel));
        LiveRuntime { commands: tx, stats }
    }

    /// Registers a subscription; its first message has been rendered when this returns `Ok`.
    pub async fn subscribe(&self, request: R::Request, subscriber: R::Subscriber) -> Result<(), LiveError> {
        let (reply, answer) = oneshot::channel();
        let shutting_down = || LiveError::NotReady("the server is shutting down".into());
        if self.commands.send(Command::Subscribe { request, subscriber, reply }).is_err() {
            return Err(shutting_down());
        }
        answer.await.unwrap_or_else(|_| Err(shutting_down()))
    }

    pub fn stop(&self, connection: u64, subscription: Arc<str>) {
        let _ = self.commands.send(Command::Stop { connection, subscription });
    }

    /// The connection closed: every subscription of it ends.
    pub fn gone(&self, connection: u64) {
        let _ = self.commands.send(Command::Gone { connection });
    }
}

struct Task<R: Render> {
    set: LiveSet,
    replica: Arc<Replica>,
    shared: HashMap<String, Shared<R>>,
    by_query: HashMap<QueryId, String>,
    as_of: AsOfs,
    stats: Arc<LiveStats>,
    clock: Arc<dyn Clock>,
    render: R,
}

impl<R: Render> Task<R> {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command<R>>,
        mut batches: mpsc::Receiver<Arc<Batch>>,
        cancel: CancellationToken,
    ) {
        loop {
            // Recomputed each turn: a batch or a subscription may bring an earlier instant.
            let wait = self.set.next_due().map(|at| {
                let micros = at.saturating_sub(self.clock.now_micros()).max(0);
                std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0))
            });
            tokio::select! {
                // Batches first: a subscription waits at most one batch, and the data flow
                // never waits on subscribers.
                biased;
                batch = batches.recv() => match batch {
                    Some(batch) => self.batch(&batch),
                    None => break,
                },
                Some(command) = commands.recv() => self.command(command),
                _ = async { tokio::time::sleep(wait.unwrap_or_default()).await }, if wait.is_some() => self.advance(),
                _ = cancel.cancelled() => break,
            }
        }
        for shared in self.shared.values() {
            self.render.closing(shared);
        }
    }

    fn command(&mut self, command: Command<R>) {
        match command {
            Command::Subscribe { request, subscriber, reply } => {
                let _ = reply.send(self.subscribe(request, subscriber));
            }
            Command::Stop { connection, subscription } => {
                self.drop_where(|s| R::connection(s) == (connection, &*subscription))
            }
            Command::Gone { connection } => self.drop_where(|s| R::connection(s).0 == connection),
        }
        self.count();
    }

    fn count(&self) {
        let subs: usize = self.shared.values().map(|s| s.subscribers.len()).sum();
        self.stats.subscriptions.store(subs as u64, Ordering::Relaxed);
        self.stats.queries.store(self.shared.len() as u64, Ordering::Relaxed);
    }

    fn subscribe(&mut self, request: R::Request, subscriber: R::Subscriber) -> Result<(), LiveError> {
        let key = R::share_key(&request).to_string();
        if !self.shared.contains_key(&key) {
            let query = self.set.add(R::spec(&request).clone(), &self.replica, self.clock.now_micros())?;
            self.by_query.insert(query, key.clone());
            let shared = Shared { request, query, seq: 1, subscribers: Vec::new(), memo: R::Memo::default() };
            self.shared.insert(key.clone(), shared);
        }
        let shared = self.shared.get_mut(&key).expect("just added");
        let as_of = self.as_of.of(&R::spec(&shared.request).schema.spec.source, &self.replica);
        if let Some(current) = self.set.current(shared.query) {
            self.render.first(shared, current, as_of, &subscriber);
        }
        shared.subscribers.push(subscriber);
        Ok(())
    }

    fn drop_where(&mut self, gone: impl Fn(&R::Subscriber) -> bool) {
        let mut empty = Vec::new();
        for (key, shared) in &mut self.shared {
            shared.subscribers.retain(|s| !gone(s));
            if shared.subscribers.is_empty() {
                empty.push(key.clone());
            }
        }
        for key in empty {
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(shared) = self.shared.remove(key) {
            self.set.remove(shared.query);
            self.by_query.remove(&shared.query);
        }
    }

    fn batch(&mut self, batch: &Batch) {
        self.replica = batch.replica.clone();
        self.as_of.follow(batch);
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
            let Some(key) = self.by_query.get(&query) else { continue };
            let shared = self.shared.get_mut(key).expect("indexed");
            let as_of = self.as_of.of(&R::spec(&shared.request).schema.spec.source, &self.replica);
            match step {
                Step::Changed { reset, rows } => {
                    if let Some(current) = self.set.current(query) {
                        self.render.changed(shared, current, reset, &rows, as_of);
                    }
                }
                Step::NotReady(reason) => self.render.not_ready(shared, &reason, as_of),
                Step::Ended(reason) => {
                    self.render.ended(shared, &reason);
                    ended.push(key.clone());
                }
            }
        }
        if ended.is_empty() {
            return;
        }
        for key in ended {
            self.remove(&key);
        }
        self.count();
    }
}

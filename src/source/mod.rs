//! Sources: one module per database kind. Each owns its protocol — slots, snapshots, positions,
//! acknowledgements — and emits [`crate::change::SourceEvent`]s. Nothing outside this module
//! sees a protocol type.
//!
//! The contract every kind meets is [`Source`]: run one session into the pipeline's channel
//! (resuming from the replica's position when it can, from a fresh snapshot when it cannot),
//! take resync requests and report health through its [`Wiring`], and acknowledge the final
//! checkpoint's position when the server stops. [`open`] makes one from its configuration by
//! `kind`; [`supervise`] runs it, starting a new session after a failure that may pass.

pub mod mariadb;
pub mod postgres;
mod supervise;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::change::{Position, SourceEvent};
use crate::config::SourceConfig;
use crate::error::SourceError;
use crate::registry::{Registry, TableId, TableSchema};
use crate::store::SourceRecord;
use crate::watermark::Watermarks;
pub use supervise::supervise;

/// One configured source, whatever its kind.
pub trait Source: Send + Sync {
    /// How the app database records it: its kind, and the kind's own names (a slot).
    fn record(&self) -> SourceRecord;

    /// One session, from the resume point the wiring gives at its start (or a fresh snapshot)
    /// until `cancel` or a failure. Each call starts afresh.
    fn run(
        &self,
        out: mpsc::Sender<SourceEvent>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>>;

    /// After the last session: the server keeps what was applied up to `position` (the final
    /// checkpoint's), so the next start resumes there.
    fn acknowledge_final(&self, position: Position) -> BoxFuture<'_, ()>;
}

/// What the server gives a source to run with, whatever its kind.
#[derive(Clone)]
pub struct Wiring {
    pub registry: Arc<Registry>,
    pub watermarks: Arc<Watermarks>,
    pub stats: Arc<SourceStats>,
    pub requests: Arc<ResyncRequests>,
    /// Checkpoints are kept: the source keeps its server-side state (a slot) across restarts.
    pub durable: bool,
    /// Where a session may resume, read when it starts (the newest replica's view).
    pub resume: Arc<dyn Fn() -> Option<Resume> + Send + Sync>,
    pub session: SessionKind,
    /// What a large transaction may hold on its way to the replica (shared with the apply loop).
    pub memory: Arc<crate::tx_memory::TxMemory>,
    /// This instance leads a cluster: a session that still holds the source's slot belongs to
    /// a leader that lost its lease (paused, not dead), and is ended rather than waited for.
    pub take_over: bool,
}

/// What the sessions are for.
#[derive(Clone, Debug, Default)]
pub enum SessionKind {
    /// `serve`: the configured server-side state (a slot), kept while `durable`.
    #[default]
    Serving,
    /// `tail`: one session whose server-side state is its own and ends with it; a snapshot
    /// first or only changes from now on; the raw protocol messages recorded in `capture`
    /// (for decoder tests).
    OneOff { snapshot: bool, capture: Option<std::path::PathBuf> },
}

/// Sends an event downstream; a closed channel means the pipeline is shutting down.
pub(crate) async fn send(
    out: &mpsc::Sender<SourceEvent>,
    ev: SourceEvent,
    source_name: &str,
) -> Result<(), SourceError> {
    out.send(ev).await.map_err(|_| SourceError::Closed(source_name.into()))
}

/// How far an open transaction has gone on in parts (see [`crate::tx_memory`]).
#[derive(Debug, Default)]
pub(crate) struct Parting {
    /// Estimated bytes of the changes read and not yet sent.
    pub bytes: usize,
    /// Parts already sent.
    pub parts: u32,
}

impl Parting {
    pub fn add(&mut self, change: &crate::change::Change) {
        self.bytes += change.approx_bytes();
    }

    /// Sends `tx`, what the open transaction read since its last part, on as its next part
    /// (the last at its commit) once the parts in flight leave room for it.
    pub async fn send(
        &mut self,
        tx: crate::change::Transaction,
        last: bool,
        memory: &Arc<crate::tx_memory::TxMemory>,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<(), SourceError> {
        let claim = memory.send_part(std::mem::take(&mut self.bytes)).await;
        let index = self.parts;
        self.parts += 1;
        let source = tx.source.clone();
        let part = crate::change::TxPart { tx, index, last, claim: Some(Arc::new(claim)) };
        send(out, SourceEvent::Part(part), &source).await
    }
}

/// Source values with no meaning in opslive's types that were read as NULL since start
/// (MariaDB's zero dates), for `/metrics`.
pub fn values_read_as_null() -> u64 {
    mariadb::ZERO_DATES.load(Ordering::Relaxed)
}

/// A source of the configured kind.
pub fn open(name: &str, config: &SourceConfig, wiring: Wiring) -> Result<Arc<dyn Source>, SourceError> {
    match config {
        SourceConfig::Postgres(c) => Ok(Arc::new(postgres::Configured::new(name, c, wiring)?)),
        SourceConfig::Mariadb(c) => Ok(Arc::new(mariadb::Configured::new(name, c, wiring)?)),
    }
}

/// Where a session may resume from: the replica's position for the source and the shapes of
/// the tables it holds.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    pub position: Position,
    /// Tables the replica holds, with their shapes.
    pub tables: Vec<Arc<TableSchema>>,
    /// Tables to copy again on their own (still loading, columns changed).
    pub reload: Vec<TableId>,
    /// Tables set aside until someone asks for a resync — while the session resumes: a fresh
    /// snapshot copies them like the others.
    pub quarantined: Vec<TableId>,
}

impl Resume {
    /// How a watched table, as the source has it `now`, stands against the replica: resumed
    /// with the replica's shape (the one its rows were decoded with), or copied again on its
    /// own, with why (not held: added, or its copy did not finish; its columns changed while
    /// opslive was stopped).
    pub fn plan(&self, now: &TableSchema) -> Result<Arc<TableSchema>, String> {
        let id = now.id();
        match self.tables.iter().find(|t| t.id() == id) {
            _ if self.reload.contains(&id) => Err("not in the replica (added, or its copy did not finish)".into()),
            None => Err("not in the replica (added, or its copy did not finish)".into()),
            Some(held) if !same_shape(held, now) => Err("its columns changed while opslive was stopped".into()),
            Some(held) => Ok(held.clone()),
        }
    }

    /// Where a source may resume in `replica`: `None` before its first transaction or
    /// snapshot.
    pub fn from_replica(replica: &crate::replica::Replica, registry: &Registry, source: &str) -> Option<Resume> {
        use crate::replica::TableState;
        let position = replica.applied_position(source);
        if position == Position::ZERO {
            return None;
        }
        let mut resume = Resume { position, ..Resume::default() };
        for spec in registry.of_source(source) {
            let Some(table) = replica.table(spec.id) else {
                resume.reload.push(spec.id);
                continue;
            };
            match table.state {
                TableState::Ready => {}
                TableState::Quarantined { .. } => resume.quarantined.push(spec.id),
                TableState::Loading | TableState::Stale { .. } => resume.reload.push(spec.id),
            }
            resume.tables.push(table.schema.clone());
        }
        Some(resume)
    }
}

/// Same columns (names, types, order) and key: rows decoded with one read right with the other.
fn same_shape(a: &TableSchema, b: &TableSchema) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| x.name == y.name && x.ty == y.ty)
        && a.key == b.key
}

/// What a source and its supervisor know about its state (exported as metrics and readiness).
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Snapshots abandoned because a table was rewritten while they were taken.
    pub snapshot_retries: AtomicU64,
    /// Streaming from the source right now (set once the consistent point is sent, cleared as
    /// soon as the session ends).
    pub connected: AtomicBool,
    /// Sessions that ended in a failure (retried, or fatal).
    pub failures: AtomicU64,
    /// The current session reads column values in binary form (PostgreSQL's `binary 'true'`).
    pub binary_tuples: AtomicBool,
    /// Sessions that resumed the slot from the replica's position (no snapshot).
    pub resumes: AtomicU64,
    /// Sessions that copied every table (a first start, or the slot or checkpoint was unusable).
    pub snapshots: AtomicU64,
    /// Tables copied again on their own (columns changed, added, quarantined, rewritten).
    pub resyncs: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// When the newest heartbeat that came back through the stream was emitted (µs since the
    /// Unix epoch; 0: none yet).
    pub heartbeat_emitted_at: AtomicI64,
    /// When it came back.
    pub heartbeat_seen_at: AtomicI64,
    /// The slot as the server reports it (polled).
    slot: Mutex<Option<SlotHealth>>,
    /// Row changes applied per second over the last window (f64 bits), kept by serve.
    changes_per_second: AtomicU64,
}

/// Tables someone asked to copy again (the API, the `resync` command), for the source's stream
/// to pick up. Survives reconnects: a request made while the source is away waits for it.
#[derive(Debug, Default)]
pub struct ResyncRequests {
    pending: Mutex<Vec<(TableId, String)>>,
    notify: tokio::sync::Notify,
}

impl ResyncRequests {
    pub fn request(&self, table: TableId, reason: String) {
        self.pending.lock().expect("requests lock").push((table, reason));
        self.notify.notify_one();
    }

    /// Returns when a request may be pending.
    pub async fn wait(&self) {
        self.notify.notified().await
    }

    pub fn take(&self) -> Vec<(TableId, String)> {
        std::mem::take(&mut *self.pending.lock().expect("requests lock"))
    }
}

/// A replication slot's state as the server reports it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SlotHealth {
    /// `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL's `wal_status`).
    pub wal_status: String,
    /// WAL the slot keeps on the server's disk, in bytes.
    pub retained_bytes: u64,
    /// How much more WAL may be written before the slot is at risk (`safe_wal_size`); `None`
    /// when `max_slot_wal_keep_size` is unlimited.
    pub safe_wal_bytes: Option<i64>,
}

impl SourceStats {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }

    /// Records a failed session; the message is the error's, which never carries row values.
    pub fn failed(&self, message: String) {
        self.set_connected(false);
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().expect("stats lock") = Some(message);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("stats lock").clone()
    }

    /// A heartbeat emitted at `emitted_at` (µs) came back through the stream.
    pub fn heartbeat_seen(&self, emitted_at: i64) {
        self.heartbeat_emitted_at.fetch_max(emitted_at, Ordering::Relaxed);
        self.heartbeat_seen_at.store(chrono::Utc::now().timestamp_micros(), Ordering::Relaxed);
    }

    /// Seconds since the newest heartbeat seen was emitted (`None` before the first).
    pub fn heartbeat_age(&self, now_micros: i64) -> Option<f64> {
        let at = self.heartbeat_emitted_at.load(Ordering::Relaxed);
        (at > 0).then(|| (now_micros - at).max(0) as f64 / 1e6)
    }

    pub fn set_changes_per_second(&self, rate: f64) {
        self.changes_per_second.store(rate.to_bits(), Ordering::Relaxed);
    }

    pub fn changes_per_second(&self) -> f64 {
        f64::from_bits(self.changes_per_second.load(Ordering::Relaxed))
    }

    pub fn set_slot(&self, health: Option<SlotHealth>) {
        *self.slot.lock().expect("stats lock") = health;
    }

    pub fn slot(&self) -> Option<SlotHealth> {
        self.slot.lock().expect("stats lock").clone()
    }
}

/// A decoded change as one line of a capture replay (the decoder tests read it):
/// `{"op":…,"key":[…],"before":[…],"after":[…]}`. Values are written as text with
/// `serde_json::to_string`, not built as `serde_json::Value`: a `Value::Json` serialises as a
/// raw value, which `serde_json::Value` would re-parse into f64 numbers and sorted keys, losing
/// exactly what the canonical form keeps. A cell the source did not send (unchanged TOAST,
/// outside a key-only old tuple) is the string "<unsent>", distinct from SQL NULL (`null`).
pub(crate) fn capture_line(c: &crate::change::Change) -> String {
    fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
        serde_json::to_string(v).expect("canonical values serialise")
    }
    let image = |i: &Option<crate::change::Image>| match i {
        None => "null".to_string(),
        Some(i) => {
            let cells: Vec<String> =
                i.0.iter().map(|v| v.as_ref().map_or_else(|| "\"<unsent>\"".into(), json)).collect();
            format!("[{}]", cells.join(","))
        }
    };
    format!(
        "{{\"op\":{},\"key\":{},\"before\":{},\"after\":{}}}",
        json(&c.op),
        json(&c.key.0[..]),
        image(&c.before),
        image(&c.after)
    )
}

//! Sources: one module per database kind. Each owns its protocol — slots, snapshots, positions,
//! acknowledgements — and emits [`crate::change::SourceEvent`]s. Nothing outside this module
//! sees a protocol type.

pub mod postgres;

use std::sync::Mutex;

use crate::registry::TableId;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

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

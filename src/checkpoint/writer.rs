//! The checkpoint writer: a task that writes the newest replica version when it has moved on,
//! and then raises each source's `checkpointed` watermark so the source may be acknowledged.
//!
//! Writing runs on a blocking thread from an immutable replica version: the apply loop never
//! waits for it. The pace adapts to the replica's size: the interval is at least a few times the
//! last write's duration, so a large replica is not rewritten back to back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{CheckpointError, Written};
use crate::change::{Position, SourceName};
use crate::registry::TableId;
use crate::replica::{Replica, TableState};
use crate::watermark::Watermarks;

/// How many write durations must pass between two writes, at least.
const PACE: u32 = 4;

/// Counters of the writer, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct CheckpointStats {
    pub writes: AtomicU64,
    pub failures: AtomicU64,
    pub last_bytes: AtomicU64,
    pub last_rows: AtomicU64,
    pub last_duration_micros: AtomicU64,
    /// Microseconds since the Unix epoch of the last durable write.
    pub last_written_at: AtomicU64,
}

#[derive(Clone)]
pub struct Checkpointer {
    pub data_dir: PathBuf,
    pub origins: HashMap<SourceName, String>,
    pub watermarks: HashMap<SourceName, Arc<Watermarks>>,
    pub stats: Arc<CheckpointStats>,
}

/// What a checkpoint of a replica version would contain, to tell whether it moved on.
#[derive(PartialEq, Eq, Default)]
struct Fingerprint {
    positions: Vec<(SourceName, Position)>,
    tables: Vec<(TableId, Position, usize, bool)>,
}

impl Fingerprint {
    fn of(replica: &Replica) -> Fingerprint {
        let mut positions: Vec<_> = replica.applied_positions().map(|(s, p)| (s.clone(), p)).collect();
        positions.sort();
        let mut tables: Vec<_> =
            replica.tables().map(|t| (t.schema.id(), t.since, t.len(), t.state == TableState::Ready)).collect();
        tables.sort();
        Fingerprint { positions, tables }
    }
}

impl Checkpointer {
    /// Writes `replica` now (blocking) and raises the watermarks on success.
    pub fn write(&self, replica: &Replica) -> Result<Written, CheckpointError> {
        let result = super::write(&self.data_dir, replica, &self.origins);
        match &result {
            Ok(w) => {
                for (source, position) in &w.sources {
                    if let Some(wm) = self.watermarks.get(source) {
                        wm.checkpointed(*position);
                    }
                }
                let s = &self.stats;
                s.writes.fetch_add(1, Ordering::Relaxed);
                s.last_bytes.store(w.bytes, Ordering::Relaxed);
                s.last_rows.store(w.rows, Ordering::Relaxed);
                s.last_duration_micros.store(w.elapsed.as_micros() as u64, Ordering::Relaxed);
                s.last_written_at.store(chrono::Utc::now().timestamp_micros() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// Waits (up to `patience`) until every source's durable consumers have written through
    /// the position `replica` holds for it.
    pub async fn consumers_caught_up(&self, replica: &Replica, patience: Duration, cancel: &CancellationToken) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let behind = replica
                .applied_positions()
                .any(|(s, p)| self.watermarks.get(s).is_some_and(|w| !w.consumers_durable_through(p)));
            if !behind {
                return true;
            }
            if tokio::time::Instant::now() >= deadline || cancel.is_cancelled() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes a checkpoint every `interval` (or slower, see [`PACE`]) while the replica
    /// changes, until `cancel`. The final checkpoint at shutdown is the caller's, once the
    /// apply loop has drained.
    pub async fn run(self, mut versions: watch::Receiver<Arc<Replica>>, interval: Duration, cancel: CancellationToken) {
        let mut last = Fingerprint::default();
        let mut wait = interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return,
            }
            let replica = versions.borrow_and_update().clone();
            let now = Fingerprint::of(&replica);
            if now == last {
                wait = interval;
                continue;
            }
            // A checkpoint is where a restart resumes, so it may not pass what the durable
            // consumers (alert transitions, KPI history) have written: they would never see the
            // rest again. They follow within seconds; this version waits for them, briefly.
            if !self.consumers_caught_up(&replica, Duration::from_secs(10), &cancel).await {
                tracing::debug!("durable consumers are behind this replica version; the checkpoint waits");
                wait = interval;
                continue;
            }
            let this = self.clone();
            let written = tokio::task::spawn_blocking(move || this.write(&replica)).await;
            match written {
                Ok(Ok(w)) => {
                    tracing::debug!(
                        rows = w.rows,
                        bytes = w.bytes,
                        ms = w.elapsed.as_millis() as u64,
                        "checkpoint written"
                    );
                    last = now;
                    wait = interval.max(w.elapsed * PACE);
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot write a checkpoint; the source keeps its log since the last one");
                    wait = interval;
                }
                Err(e) => {
                    tracing::error!(error = %e, "the checkpoint writer failed");
                    wait = interval;
                }
            }
        }
    }
}

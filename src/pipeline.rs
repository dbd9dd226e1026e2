//! The one way through the house: source events → replica → whoever consumes the deltas.
//!
//! A source task feeds a bounded channel (so a slow replica slows the source, and the source's
//! server, rather than growing memory); the apply loop owns the replica, publishes each new
//! version for readers, advances the applied watermark, and hands every [`Applied`] to a sink.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, watch};

use crate::change::{SourceEvent, SourceName};
use crate::replica::{Applied, Replica};
use crate::watermark::Watermarks;

/// Events buffered between a source and the replica. Large enough to carry a burst of small
/// transactions across a scheduling hiccup; a snapshot chunk is one event.
pub const CHANNEL_CAPACITY: usize = 1024;

/// Counters of the apply loop.
#[derive(Debug, Default)]
pub struct ApplyStats {
    pub transactions: AtomicU64,
    pub skipped: AtomicU64,
    pub row_changes: AtomicU64,
    pub snapshot_rows: AtomicU64,
    pub anomalies: AtomicU64,
}

pub struct ApplyLoop {
    pub replica: Replica,
    pub watermarks: HashMap<SourceName, Arc<Watermarks>>,
    /// Every version of the replica, for readers that need a consistent view.
    pub published: watch::Sender<Arc<Replica>>,
    pub stats: Arc<ApplyStats>,
}

impl ApplyLoop {
    pub fn new(watermarks: HashMap<SourceName, Arc<Watermarks>>) -> (ApplyLoop, watch::Receiver<Arc<Replica>>) {
        let (published, rx) = watch::channel(Arc::new(Replica::new()));
        (ApplyLoop { replica: Replica::new(), watermarks, published, stats: Arc::default() }, rx)
    }

    /// Applies events until every sender is gone; `sink` sees each result in order.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<SourceEvent>,
        mut sink: impl FnMut(&SourceEvent, &Applied),
    ) -> Replica {
        while let Some(event) = rx.recv().await {
            let applied = self.apply(&event);
            sink(&event, &applied);
            // Publish once per burst: readers want the newest version, not every step.
            if rx.is_empty() {
                self.published.send_replace(Arc::new(self.replica.clone()));
            }
        }
        self.published.send_replace(Arc::new(self.replica.clone()));
        self.replica
    }

    pub fn apply(&mut self, event: &SourceEvent) -> Applied {
        let applied = self.replica.apply(event);
        let s = &self.stats;
        if !applied.anomalies.is_empty() {
            s.anomalies.fetch_add(applied.anomalies.len() as u64, Ordering::Relaxed);
            for a in &applied.anomalies {
                // Fields only: keys and rows are business data and stay out of logs.
                tracing::warn!(table = a.table.0, kind = ?a.kind, "replica and stream disagree");
            }
        }
        match event {
            SourceEvent::Transaction(tx) => {
                if applied.skipped {
                    s.skipped.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.transactions.fetch_add(1, Ordering::Relaxed);
                    s.row_changes.fetch_add(tx.changes.len() as u64, Ordering::Relaxed);
                }
                if let Some(w) = self.watermarks.get(&tx.source) {
                    w.applied(tx.position);
                }
            }
            SourceEvent::SnapshotRows { rows, .. } => {
                s.snapshot_rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
            SourceEvent::Consistent { source, position } => {
                if let Some(w) = self.watermarks.get(source) {
                    w.received(*position);
                    w.applied(*position);
                }
            }
            SourceEvent::Table(_) => {}
        }
        applied
    }
}

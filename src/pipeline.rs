//! The one way through the house: source events → replica → the engines after apply.
//!
//! A source task feeds a bounded channel (so a slow replica slows the source, and the source's
//! server, rather than growing memory); the apply loop owns the replica, publishes each new
//! version for readers, advances the applied watermark, and hands every [`Batch`] to each of
//! its named [`Consumer`]s (live queries, KPIs and alerts, …) in order, over bounded channels:
//! a consumer that falls far behind makes the loop wait, which is backpressure to the source,
//! never a dropped or reordered batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, watch};

use crate::change::{Op, ResetReason, SourceEvent, SourceName, TableEvent};
use crate::registry::TableId;
use crate::replica::{Applied, Delta, Replica};
use crate::watermark::{DurableMarks, Watermarks};

/// Events buffered between a source and the replica. Large enough to carry a burst of small
/// transactions across a scheduling hiccup; a snapshot chunk is one event.
pub const CHANNEL_CAPACITY: usize = 1024;

/// Batches waiting between the apply loop and one consumer. When a consumer falls this far
/// behind, the apply loop waits: backpressure to the source, as everywhere in the pipeline.
pub const BATCH_CAPACITY: usize = 1024;

/// One applied event with the replica version after it: what the apply loop hands to every
/// consumer, in order. Shared: each consumer reads the same batch.
#[derive(Debug)]
pub struct Batch {
    pub applied: Applied,
    pub replica: Arc<Replica>,
    /// When it was applied (µs since the Unix epoch): the instant time-relative rules are
    /// evaluated at for this batch.
    pub at: i64,
}

impl Batch {
    /// Whether engines after apply have anything to do with this event (snapshot rows of a
    /// loading table and consistency marks are not theirs).
    pub fn wanted(applied: &Applied) -> bool {
        applied.deltas.iter().any(|d| !matches!(d, Delta::SnapshotRows { .. } | Delta::Consistent { .. }))
    }
}

/// An engine after apply: a name for logs and metrics, its bounded inbox and, for a durable
/// consumer, the mark through which acknowledgement waits for it.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub name: &'static str,
    pub batches: mpsc::Sender<Arc<Batch>>,
    pub durable: Vec<DurableMarks>,
}

impl Consumer {
    /// A consumer and the receiving end its runtime reads.
    pub fn channel(name: &'static str) -> (Consumer, mpsc::Receiver<Arc<Batch>>) {
        let (batches, rx) = mpsc::channel(BATCH_CAPACITY);
        (Consumer { name, batches, durable: Vec::new() }, rx)
    }

    /// A consumer whose writes (or the writes of those it hands its work on to) bound what
    /// sources may acknowledge: each source's watermarks wait for its mark in each of `marks`,
    /// which the writers raise as they write.
    pub fn durable(name: &'static str, marks: Vec<DurableMarks>) -> (Consumer, mpsc::Receiver<Arc<Batch>>) {
        let (batches, rx) = mpsc::channel(BATCH_CAPACITY);
        (Consumer { name, batches, durable: marks }, rx)
    }
}

/// Counters of the apply loop, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct ApplyStats {
    pub transactions: AtomicU64,
    pub skipped: AtomicU64,
    pub row_changes: AtomicU64,
    pub snapshot_rows: AtomicU64,
    pub anomalies: AtomicU64,
    /// Per table, by id; a table appears when its snapshot begins.
    tables: Mutex<Vec<Arc<TableCounters>>>,
    /// Per source: commit at the source → applied here, in seconds.
    delays: Mutex<HashMap<SourceName, Histogram>>,
}

/// What happened to one table.
#[derive(Debug, Default)]
pub struct TableCounters {
    pub inserts: AtomicU64,
    pub updates: AtomicU64,
    pub deletes: AtomicU64,
    pub truncates: AtomicU64,
    /// Rows of the current (or last) snapshot applied so far.
    pub snapshot_rows: AtomicU64,
    /// The source's estimate of the table's size when the snapshot began (`u64::MAX`: none).
    pub snapshot_estimated_rows: AtomicU64,
    pub snapshot_done: AtomicBool,
    /// Snapshots begun, including reloads.
    pub snapshots: AtomicU64,
}

/// Buckets of the commit → applied delay: from sub-millisecond to a minute.
const DELAY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

impl ApplyStats {
    /// A copy of the per-table counters that exist so far, by table id.
    pub fn tables(&self) -> Vec<(TableId, Arc<TableCounters>)> {
        let tables = self.tables.lock().expect("stats lock");
        tables.iter().enumerate().map(|(i, c)| (TableId(i as u32), c.clone())).collect()
    }

    /// The commit → applied delay histogram of each source.
    pub fn delays(&self) -> Vec<(SourceName, Histogram)> {
        self.delays.lock().expect("stats lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// The loop's own handles on the shared counters, so that counting a change takes no lock.
#[derive(Default)]
struct Counters {
    tables: Vec<Arc<TableCounters>>,
    delays: HashMap<SourceName, Histogram>,
}

impl Counters {
    fn table(&mut self, stats: &ApplyStats, id: TableId) -> &TableCounters {
        let i = id.0 as usize;
        if i >= self.tables.len() {
            let mut shared = stats.tables.lock().expect("stats lock");
            while shared.len() <= i {
                shared.push(Arc::default());
            }
            self.tables = shared.clone();
        }
        &self.tables[i]
    }

    fn delay(&mut self, stats: &ApplyStats, source: &SourceName) -> &Histogram {
        self.delays.entry(source.clone()).or_insert_with(|| {
            let h = Histogram::new(DELAY_BUCKETS);
            stats.delays.lock().expect("stats lock").insert(source.clone(), h.clone());
            h
        })
    }
}

pub struct ApplyLoop {
    pub replica: Replica,
    pub watermarks: HashMap<SourceName, Arc<Watermarks>>,
    /// Every version of the replica, for readers that need a consistent view.
    pub published: watch::Sender<Arc<Replica>>,
    pub stats: Arc<ApplyStats>,
    counters: Counters,
}

impl ApplyLoop {
    pub fn new(watermarks: HashMap<SourceName, Arc<Watermarks>>) -> (ApplyLoop, watch::Receiver<Arc<Replica>>) {
        ApplyLoop::starting_from(Replica::new(), watermarks)
    }

    /// An apply loop whose replica starts as `replica` (a checkpoint's).
    pub fn starting_from(
        replica: Replica,
        watermarks: HashMap<SourceName, Arc<Watermarks>>,
    ) -> (ApplyLoop, watch::Receiver<Arc<Replica>>) {
        let (published, rx) = watch::channel(Arc::new(replica.clone()));
        (ApplyLoop { replica, watermarks, published, stats: Arc::default(), counters: Counters::default() }, rx)
    }

    /// Applies events until every sender is gone; `sink` sees each result in order, and so
    /// does every consumer (with the replica version after it). A consumer that has stopped is
    /// dropped from the list; the others go on.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<SourceEvent>,
        mut consumers: Vec<Consumer>,
        mut sink: impl FnMut(&SourceEvent, &Applied),
    ) -> Replica {
        while let Some(event) = rx.recv().await {
            let applied = self.apply(&event);
            sink(&event, &applied);
            let mut published = false;
            if !consumers.is_empty() && Batch::wanted(&applied) {
                let replica = Arc::new(self.replica.clone());
                // Readers see this version before any consumer acts on it: a query sent after
                // a subscriber's frame (or an alert) never answers from an older replica.
                self.published.send_replace(replica.clone());
                published = true;
                let at = chrono::Utc::now().timestamp_micros();
                let batch = Arc::new(Batch { applied, replica, at });
                let mut stopped = Vec::new();
                for (i, c) in consumers.iter().enumerate() {
                    // Marked before it is sent, so acknowledgement can never pass a
                    // transaction that sits in a consumer's inbox.
                    if let Some(tx) = &batch.applied.tx {
                        for marks in &c.durable {
                            marks.handed(&tx.source, tx.position);
                        }
                    }
                    // Waits when a consumer falls far behind: backpressure, like the source's channel.
                    if c.batches.send(batch.clone()).await.is_err() {
                        tracing::debug!(consumer = c.name, "consumer stopped");
                        stopped.push(i);
                    }
                }
                for i in stopped.into_iter().rev() {
                    consumers.remove(i);
                }
            }
            // Other events: publish once per burst, readers want the newest version.
            if rx.is_empty() && !published {
                self.published.send_replace(Arc::new(self.replica.clone()));
            }
        }
        self.published.send_replace(Arc::new(self.replica.clone()));
        self.replica
    }

    pub fn apply(&mut self, event: &SourceEvent) -> Applied {
        let applied = self.replica.apply(event);
        self.count(event, &applied);
        applied
    }

    fn count(&mut self, event: &SourceEvent, applied: &Applied) {
        let s = &*self.stats;
        let c = &mut self.counters;
        if !applied.anomalies.is_empty() {
            s.anomalies.fetch_add(applied.anomalies.len() as u64, Ordering::Relaxed);
            for a in &applied.anomalies {
                // Fields only: keys and rows are business data and stay out of logs.
                tracing::warn!(table = a.table.0, kind = ?a.kind, "replica and stream disagree");
            }
            for delta in &applied.deltas {
                if let Delta::Reset { table, reason: ResetReason::Quarantine } = delta {
                    let position = applied.tx.as_ref().map(|tx| tx.position.to_string()).unwrap_or_default();
                    let name = self.replica.table(*table).map(|t| t.schema.spec.to_string()).unwrap_or_default();
                    tracing::warn!(table = %name, position = %position, "the stream contradicted the replica; the table is quarantined until it is resynced");
                }
            }
        }
        match event {
            SourceEvent::Transaction(tx) => {
                if applied.skipped {
                    s.skipped.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.transactions.fetch_add(1, Ordering::Relaxed);
                    s.row_changes.fetch_add(tx.changes.len() as u64, Ordering::Relaxed);
                    for change in &tx.changes {
                        let t = c.table(s, change.table);
                        match change.op {
                            Op::Insert => &t.inserts,
                            Op::Update => &t.updates,
                            Op::Delete => &t.deletes,
                            Op::Truncate => &t.truncates,
                        }
                        .fetch_add(1, Ordering::Relaxed);
                    }
                    let now = chrono::Utc::now().timestamp_micros();
                    c.delay(s, &tx.source).observe((now - tx.commit_ts).max(0) as f64 / 1e6);
                }
                if let Some(w) = self.watermarks.get(&tx.source) {
                    w.applied(tx.position);
                    w.applied_commit(tx.commit_ts);
                }
            }
            SourceEvent::SnapshotRows { table, rows } => {
                s.snapshot_rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
                c.table(s, *table).snapshot_rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
            SourceEvent::Progress { source, position } => {
                if let Some(w) = self.watermarks.get(source) {
                    w.received(*position);
                    w.applied(*position);
                }
            }
            SourceEvent::Consistent { source, position } => {
                if let Some(w) = self.watermarks.get(source) {
                    w.received(*position);
                    w.applied(*position);
                    w.set_consistent(true);
                }
            }
            SourceEvent::Table(TableEvent::SnapshotBegin { schema, estimated_rows }) => {
                let t = c.table(s, schema.id());
                t.snapshots.fetch_add(1, Ordering::Relaxed);
                t.snapshot_rows.store(0, Ordering::Relaxed);
                t.snapshot_estimated_rows.store(estimated_rows.unwrap_or(u64::MAX), Ordering::Relaxed);
                t.snapshot_done.store(false, Ordering::Relaxed);
                if let Some(w) = self.watermarks.get(&schema.spec.source) {
                    w.set_consistent(false);
                }
            }
            SourceEvent::Table(TableEvent::SnapshotEnd { table, .. }) => {
                c.table(s, *table).snapshot_done.store(true, Ordering::Relaxed);
            }
            SourceEvent::Table(
                TableEvent::SchemaChanged { .. } | TableEvent::Quarantined { .. } | TableEvent::ResyncBegin { .. },
            ) => {}
        }
    }
}

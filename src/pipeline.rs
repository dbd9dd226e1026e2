//! The one way through the house: source events → replica → the engines after apply.
//!
//! A source task feeds a bounded channel (so a slow replica slows the source, and the source's
//! server, rather than growing memory); the apply loop owns the replica, publishes each new
//! version for readers, advances the applied watermark, and hands every [`Batch`] to each of
//! its named [`Consumer`]s (live queries, KPIs and alerts, …) in order, over bounded channels:
//! a consumer that falls far behind makes the loop wait, which is backpressure to the source,
//! never a dropped or reordered batch.
//!
//! A large transaction arrives in parts: each is applied as it comes, but its row changes wait
//! here for the last part, and neither readers nor consumers see anything of it before then.
//! Changes that outgrow their share of the transaction memory are let go, and the consumers
//! get, at the commit, each table the transaction touched to read afresh from the replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, watch};

use crate::change::{Change, Op, ResetReason, SourceEvent, SourceName, TableEvent, TxPart};
use crate::registry::TableId;
use crate::replica::{Applied, Delta, Replica, row_bytes};
use crate::tx_memory::TxMemory;
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
    /// What large transactions may hold (shared with the sources).
    pub memory: Arc<TxMemory>,
    counters: Counters,
    /// What the parts of each source's open transaction did, for the consumers at its commit.
    pending: HashMap<SourceName, Pending>,
    /// The cluster bus's publisher: every event, in order, after it is applied.
    pub tap: Option<crate::cluster::bus::Tap>,
    /// A follower asked for the replica: handed to the tap at the next point where no table is
    /// loading and no transaction is half applied.
    replica_wanted: bool,
}

/// The row changes of a transaction applied in parts, waiting for its last part.
#[derive(Debug, Default)]
struct Pending {
    applied: Applied,
    /// Estimated bytes of the row deltas kept (counted in the transaction memory).
    bytes: usize,
    /// Past their share of memory the row deltas are let go: the tables they touched.
    dropped: Option<Vec<TableId>>,
}

impl Pending {
    fn add(&mut self, part: Applied, memory: &TxMemory) {
        self.applied.tx = part.tx;
        self.applied.skipped = part.skipped;
        self.applied.anomalies.extend(part.anomalies);
        for delta in part.deltas {
            let Delta::Row(row) = &delta else {
                self.applied.deltas.push(delta);
                continue;
            };
            if let Some(tables) = &mut self.dropped {
                if !tables.contains(&row.table) {
                    tables.push(row.table);
                }
                continue;
            }
            let bytes = std::mem::size_of::<Delta>()
                + row.before.as_ref().map_or(0, row_bytes)
                + row.after.as_ref().map_or(0, row_bytes);
            if self.bytes + bytes > memory.delta_bytes() {
                self.drop_rows(memory);
                let tables = self.dropped.as_mut().expect("just dropped");
                if !tables.contains(&row.table) {
                    tables.push(row.table);
                }
                continue;
            }
            self.bytes += bytes;
            memory.hold(bytes);
            self.applied.deltas.push(delta);
        }
    }

    /// Lets the row deltas go, keeping the tables they touched.
    fn drop_rows(&mut self, memory: &TxMemory) {
        let mut tables = Vec::new();
        self.applied.deltas.retain(|d| match d {
            Delta::Row(row) => {
                if !tables.contains(&row.table) {
                    tables.push(row.table);
                }
                false
            }
            _ => true,
        });
        self.applied.deltas.shrink_to_fit();
        self.dropped = Some(tables);
        self.release(memory);
    }

    fn release(&mut self, memory: &TxMemory) {
        memory.release(std::mem::take(&mut self.bytes));
    }

    /// What the consumers get at the commit.
    fn finish(mut self, memory: &TxMemory) -> Applied {
        self.release(memory);
        if let Some(tables) = self.dropped.take() {
            let reason = ResetReason::LargeTransaction;
            self.applied.deltas.extend(tables.into_iter().map(|table| Delta::Reset { table, reason: reason.clone() }));
        }
        self.applied
    }
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
        let apply = ApplyLoop {
            replica,
            watermarks,
            published,
            stats: Arc::default(),
            memory: Arc::default(),
            counters: Counters::default(),
            pending: HashMap::new(),
            tap: None,
            replica_wanted: false,
        };
        (apply, rx)
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
        let wanted = self.tap.as_ref().map(|t| t.wanted.clone());
        loop {
            let event = tokio::select! {
                biased;
                () = async {
                    match &wanted {
                        Some(w) => w.notified().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.replica_wanted = true;
                    self.offer_replica().await;
                    continue;
                }
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
            };
            let applied = self.apply(&event);
            sink(&event, &applied);
            let skipped = applied.skipped;
            let whole = match &event {
                SourceEvent::Part(part) => self.gather(part, applied),
                _ => Some(applied),
            };
            // Nothing of a transaction in parts is shown before its last part.
            let mut published = false;
            if let Some(applied) = whole
                && !consumers.is_empty()
                && Batch::wanted(&applied)
            {
                let replica = Arc::new(self.replica.visible());
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
            if self.tap.is_some() {
                self.hand_to_bus(event, skipped).await;
            }
            // Other events: publish once per burst, readers want the newest version.
            if rx.is_empty() && !published {
                self.published.send_replace(Arc::new(self.replica.visible()));
            }
        }
        // A transaction whose last part never came is not shown.
        let replica = self.replica.visible();
        self.published.send_replace(Arc::new(replica.clone()));
        replica
    }

    pub fn apply(&mut self, event: &SourceEvent) -> Applied {
        let applied = self.replica.apply(event);
        // The replica took back a transaction its source is sending again or moved past.
        if let Some(source) = event.positioned_source()
            && !self.replica.in_transaction(source)
            && !matches!(event, SourceEvent::Part(p) if p.last)
            && let Some(mut gone) = self.pending.remove(source)
        {
            gone.release(&self.memory);
        }
        self.count(event, &applied);
        applied
    }

    /// Hands an applied event to the bus, marked in hand first (acknowledgement cannot pass it
    /// before the bus has it), then the replica if a follower waits for it.
    async fn hand_to_bus(&mut self, event: SourceEvent, skipped: bool) {
        let Some(tap) = &self.tap else { return };
        let source = self.source_of(&event);
        if let (Some(source), Some(position), false) = (&source, crate::cluster::bus::position_of(&event), skipped) {
            tap.marks.handed(source, position);
        }
        if tap.events.send(crate::cluster::bus::Tapped::Event { event, source, skipped }).await.is_err() {
            tracing::debug!("the bus publisher stopped");
            self.tap = None;
            return;
        }
        if self.replica_wanted {
            self.offer_replica().await;
        }
    }

    /// The source an event belongs to (table events and snapshot rows by their table).
    fn source_of(&self, event: &SourceEvent) -> Option<SourceName> {
        let table = match event {
            SourceEvent::Table(TableEvent::SnapshotBegin { schema, .. }) => return Some(schema.spec.source.clone()),
            SourceEvent::Table(
                TableEvent::SnapshotEnd { table, .. }
                | TableEvent::SchemaChanged { table, .. }
                | TableEvent::Quarantined { table, .. }
                | TableEvent::ResyncBegin { table, .. },
            )
            | SourceEvent::SnapshotRows { table, .. } => *table,
            _ => return event.positioned_source().cloned(),
        };
        self.replica.table(table).map(|t| t.schema.spec.source.clone())
    }

    /// Hands the bus the replica as of the last event it was handed, once no table is loading
    /// and no transaction is half applied: a follower starts from it and reads the bus from
    /// the next entry on.
    async fn offer_replica(&mut self) {
        let settled = self.pending.is_empty()
            && !self.replica.tables().any(|t| t.state == crate::replica::TableState::Loading)
            && !self.replica.applied_positions().any(|(s, _)| self.replica.in_transaction(s));
        let Some(tap) = &self.tap else { return };
        if !settled {
            return;
        }
        self.replica_wanted = false;
        let replica = Arc::new(self.replica.visible());
        if tap.events.send(crate::cluster::bus::Tapped::Replica(replica)).await.is_err() {
            self.tap = None;
        }
    }

    /// Keeps what a part did until its transaction's last part, and returns it whole then.
    fn gather(&mut self, part: &TxPart, applied: Applied) -> Option<Applied> {
        let source = &part.tx.source;
        let mut pending = self.pending.remove(source).unwrap_or_default();
        if part.index == 0 {
            pending.release(&self.memory);
            pending = Pending::default();
        }
        pending.add(applied, &self.memory);
        if part.last {
            return Some(pending.finish(&self.memory));
        }
        self.pending.insert(source.clone(), pending);
        None
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
        let (tx, last) = match event {
            SourceEvent::Transaction(tx) => (Some(tx), true),
            SourceEvent::Part(part) => (Some(&part.tx), part.last),
            _ => (None, false),
        };
        if let Some(tx) = tx {
            // A part's changes count as it is applied, the transaction at its last part.
            if !applied.skipped {
                count_changes(s, c, &tx.changes);
            }
            if last {
                if applied.skipped {
                    s.skipped.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.transactions.fetch_add(1, Ordering::Relaxed);
                    let now = chrono::Utc::now().timestamp_micros();
                    c.delay(s, &tx.source).observe((now - tx.commit_ts).max(0) as f64 / 1e6);
                }
                if let Some(w) = self.watermarks.get(&tx.source) {
                    w.applied(tx.position);
                    w.applied_commit(tx.commit_ts);
                }
            }
        }
        match event {
            SourceEvent::Transaction(_) | SourceEvent::Part(_) => {}
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

/// Counts a transaction's (or a part's) row changes, in all and per table.
fn count_changes(s: &ApplyStats, c: &mut Counters, changes: &[Change]) {
    s.row_changes.fetch_add(changes.len() as u64, Ordering::Relaxed);
    for change in changes {
        let t = c.table(s, change.table);
        match change.op {
            Op::Insert => &t.inserts,
            Op::Update => &t.updates,
            Op::Delete => &t.deletes,
            Op::Truncate => &t.truncates,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Change, Image, Key, Position, Row, Transaction};
    use crate::registry::{Column, ColumnType, Registry, TableSchema};
    use crate::value::Value;

    fn schema() -> Arc<TableSchema> {
        let reg = Registry::default();
        let id = reg.add("s".into(), "public", "t", "t", vec![], vec![]).unwrap();
        let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
        Arc::new(TableSchema {
            spec: reg.get(id).unwrap().clone(),
            columns: vec![col("id", ColumnType::Int8), col("status", ColumnType::Text)],
            key: vec![0],
            indexed: vec![],
            version: 1,
        })
    }

    fn row(id: i64, status: &str) -> Vec<Value> {
        vec![Value::Int8(id), Value::text(status)]
    }

    fn part(index: u32, last: bool, changes: Vec<Change>) -> SourceEvent {
        let tx = Transaction {
            source: "s".into(),
            position: Position(if last { 20 } else { 13 }),
            commit_ts: 0,
            xid: 7,
            changes,
            table_events: vec![],
        };
        SourceEvent::Part(TxPart { tx, index, last, claim: None })
    }

    fn insert(id: i64) -> Change {
        let key = Key(vec![Value::Int8(id)].into());
        Change { table: TableId(0), op: Op::Insert, key, before: None, after: Some(Image::full(row(id, "bulk"))) }
    }

    fn delete(id: i64) -> Change {
        Change { table: TableId(0), op: Op::Delete, key: Key(vec![Value::Int8(id)].into()), before: None, after: None }
    }

    /// Runs a transaction of 2,000 inserts and their deletes in three parts, and an update of
    /// the one row held, through an apply loop with `budget`: what its consumer got for it, and
    /// the rows readers saw between its parts.
    async fn large_transaction(budget: usize) -> (Batch, usize, Arc<TxMemory>) {
        let (mut apply, versions) = ApplyLoop::new(HashMap::new());
        apply.memory = Arc::new(TxMemory::new(budget));
        let memory = apply.memory.clone();
        let (consumer, mut batches) = Consumer::channel("test");
        let (tx, rx) = mpsc::channel(16);
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let run = tokio::spawn(apply.run(rx, vec![consumer], move |event, _| {
            if let SourceEvent::Progress { .. } = event {
                seen_tx.send(()).unwrap();
            }
        }));
        let s = schema();
        tx.send(SourceEvent::Table(TableEvent::SnapshotBegin { schema: s, estimated_rows: None })).await.unwrap();
        tx.send(SourceEvent::SnapshotRows { table: TableId(0), rows: vec![Row::from(row(1, "open"))] }).await.unwrap();
        let end = TableEvent::SnapshotEnd { table: TableId(0), position: Position(10), rows: 1 };
        tx.send(SourceEvent::Table(end)).await.unwrap();
        tx.send(SourceEvent::Consistent { source: "s".into(), position: Position(10) }).await.unwrap();
        tx.send(part(0, false, (2..1000).map(insert).collect())).await.unwrap();
        tx.send(part(1, false, (1000..2002).map(insert).collect())).await.unwrap();
        // Another source's event between the parts: the loop publishes after it.
        tx.send(SourceEvent::Progress { source: "other".into(), position: Position(5) }).await.unwrap();
        seen.recv().await.unwrap();
        let between = versions.borrow().table(TableId(0)).unwrap().len();
        let update = Change {
            table: TableId(0),
            op: Op::Update,
            key: Key(vec![Value::Int8(1)].into()),
            before: None,
            after: Some(Image::full(row(1, "shipped"))),
        };
        let last: Vec<Change> = (2..2002).map(delete).chain([update]).collect();
        tx.send(part(2, true, last)).await.unwrap();
        drop(tx);
        let mut got = Vec::new();
        while let Some(batch) = batches.recv().await {
            if batch.applied.tx.is_some() {
                got.push(batch);
            }
        }
        let replica = run.await.unwrap();
        assert_eq!(got.len(), 1, "consumers get the transaction once, at its last part");
        let batch = Arc::try_unwrap(got.pop().unwrap()).unwrap();
        assert_eq!(batch.replica.table(TableId(0)).unwrap().len(), 1);
        assert_eq!(
            replica.table(TableId(0)).unwrap().get(&Key(vec![Value::Int8(1)].into())).unwrap()[1],
            Value::text("shipped")
        );
        assert_eq!(memory.held(), 0, "nothing is held after the commit");
        (batch, between, memory)
    }

    #[tokio::test]
    async fn a_transaction_in_parts_reaches_consumers_once_with_every_row_change_when_they_fit() {
        let (batch, between, _) = large_transaction(64 * 1024 * 1024).await;
        assert_eq!(between, 1, "readers saw none of the transaction between its parts");
        let rows = batch.applied.deltas.iter().filter(|d| matches!(d, Delta::Row(_))).count();
        assert_eq!(rows, 2000 + 2000 + 1, "every row change, in order");
    }

    #[tokio::test]
    async fn row_changes_past_their_budget_reach_consumers_as_a_reload_of_the_table() {
        let budget = 64 * 1024;
        let (batch, between, memory) = large_transaction(budget).await;
        assert_eq!(between, 1, "readers saw none of the transaction between its parts");
        assert!(
            matches!(
                &batch.applied.deltas[..],
                [Delta::Reset { table: TableId(0), reason: ResetReason::LargeTransaction }]
            ),
            "{:?}",
            batch.applied.deltas
        );
        assert!(memory.peak() <= memory.delta_bytes(), "peak {}", memory.peak());
    }
}

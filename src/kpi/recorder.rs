//! The history recorder: a task that rolls every KPI value up per minute and writes the
//! rollups to the app database in batches, off the apply path.
//!
//! It follows the KPI runtime's steps in order (every value a transaction gave a KPI, so the
//! minutes' min and max are exact) and samples the whole board once a minute (so a KPI that
//! does not move still has a point per minute while the server runs). It is a durable
//! consumer: a source is acknowledged only up to the last position whose rollups are written;
//! after a crash the rest is delivered again, and merging rollups is idempotent.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::engine::{KpiId, KpiValue};
use super::history::{MINUTE, Rollup, Rollups, merged};
use super::runtime::KpiStep;
use crate::announce::Duty;
use crate::change::{Position, SourceName};
use crate::store::Store;
use crate::store::fence::until_written;
use crate::watermark::DurableMarks;

/// How often rollups are written: a chart's newest point lags at most this much in the
/// database (the live value is always on the board), and so does the next checkpoint, which
/// waits for every durable consumer. A write holds only the minutes touched since the last.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub struct Recorder {
    pub store: Store,
    pub marks: DurableMarks,
    /// History older than this is pruned (µs).
    pub retention: i64,
    /// Whether this instance writes the history: always alone; in a cluster, only while it
    /// leads (every instance computes the same rollups; one writes them, fenced by its epoch).
    pub duty: tokio::sync::watch::Receiver<Duty>,
    /// Cancelled when a write is refused because a newer leader claimed the cluster.
    pub fenced: CancellationToken,
}

/// What one write holds, apart by what they depend on: the rollups transactions touched since
/// the last write and the positions they make durable; then the rollups of samples (built-in
/// KPIs, time-driven changes, the minute's sample), which no transaction delivered again
/// would bring back, and which therefore hold back no position.
///
/// Kept apart so that a source is never held back by a write its transactions do not need:
/// with the app database on the source's server, a fast shutdown waits for the slot's client
/// to confirm the last WAL, and confirming must not wait for that server to take a write.
struct Flush {
    derived: Vec<Rollup>,
    positions: HashMap<SourceName, Position>,
    sampled: Vec<Rollup>,
}

impl Recorder {
    pub async fn run(self, mut steps: mpsc::Receiver<KpiStep>, cancel: CancellationToken) {
        let mut rollups = Rollups::new();
        let mut sampled = Rollups::new();
        // The newest position observed per source, made durable by the next flush.
        let mut pending: HashMap<SourceName, Position> = HashMap::new();
        let mut board = None;
        // Each KPI's value as of the last step: what a step's new values are compared with.
        // Kept here rather than looked up in the previous step's board (a B-tree walk per
        // changed KPI, a percent of the benchmark's CPU).
        let mut last: foldhash::HashMap<KpiId, KpiValue> = foldhash::HashMap::default();
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut sample = tokio::time::interval(Duration::from_micros(MINUTE as u64));
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        // Writes happen in their own task, so that a slow database never stops this loop from
        // taking steps (it would hold up the KPI runtime, the alerts and the apply loop behind
        // it: the benchmark showed the pipeline stalling once a second). One write at a time;
        // while one runs, the next flush's rollups keep accumulating here.
        let (writes, queue) = mpsc::channel::<Flush>(1);
        let writer = tokio::spawn(write_rollups(
            self.store.clone(),
            self.marks.clone(),
            self.duty.clone(),
            self.fenced.clone(),
            queue,
            cancel.clone(),
        ));
        loop {
            tokio::select! {
                step = steps.recv() => {
                    let Some(step) = step else { break };
                    match step.batch.as_ref().and_then(|b| b.applied.tx.as_ref()) {
                        Some(tx) => {
                            for (id, value) in &step.changed {
                                rollups.observe_since(*id, last.get(id), value, tx.commit_ts, tx.position.0);
                            }
                            pending.insert(tx.source.clone(), tx.position);
                        }
                        None => {
                            let now = chrono::Utc::now().timestamp_micros();
                            for (id, value) in &step.changed {
                                sampled.observe(*id, value, now, 0);
                            }
                        }
                    }
                    // Were a value ever to move without being listed, the next step would roll
                    // up groups that kept their value: a value each did hold in that minute.
                    for (id, value) in &step.changed {
                        last.insert(*id, value.clone());
                    }
                    for id in &step.removed {
                        last.remove(id);
                    }
                    if let Some(published) = step.board {
                        board = Some(published);
                    }
                }
                _ = sample.tick() => {
                    if let Some(board) = &board {
                        let now = chrono::Utc::now().timestamp_micros();
                        // The board may be a backlog's last published one: the values since
                        // are in `last`.
                        for (id, entry) in board.kpis.iter() {
                            sampled.observe(*id, last.get(id).unwrap_or(&entry.value), now, 0);
                        }
                    }
                }
                _ = flush.tick() => {
                    if let Ok(permit) = writes.try_reserve() {
                        permit.send(Flush {
                            derived: rollups.drain(),
                            positions: std::mem::take(&mut pending),
                            sampled: sampled.drain(),
                        });
                    }
                }
                _ = prune.tick() => {
                    let (store, before) = (self.store.clone(), chrono::Utc::now().timestamp_micros() - self.retention);
                    tokio::spawn(async move {
                        match store.prune_kpi_history(before).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(rows = n, "KPI history past its retention removed"),
                            Err(e) => tracing::warn!(error = %e, "cannot prune KPI history"),
                        }
                    });
                }
            }
        }
        // The steps end after the apply loop drained at shutdown: what is left is written once
        // more (a crash instead leaves it to the re-delivered transactions).
        let _ = writes.send(Flush { derived: rollups.drain(), positions: pending, sampled: sampled.drain() }).await;
        drop(writes);
        let _ = writer.await;
    }
}

/// Writes each flush in order: what transactions brought is retried while the database is
/// away, and its positions are marked durable once written (at once when there is none);
/// samples that cannot be written go with the next flush.
async fn write_rollups(
    store: Store,
    marks: DurableMarks,
    duty: tokio::sync::watch::Receiver<Duty>,
    fenced: CancellationToken,
    mut queue: mpsc::Receiver<Flush>,
    cancel: CancellationToken,
) {
    // Samples not yet written; merged again with the next ones (merging is idempotent).
    let mut carried = Vec::new();
    while let Some(Flush { derived, positions, sampled }) = queue.recv().await {
        let Duty::Lead { fence } = duty.borrow().clone() else {
            // A follower: the leader writes these; nothing here holds a position back.
            for (source, position) in positions {
                marks.durable(&source, position);
            }
            continue;
        };
        let write = || store.record_rollups(&derived, fence.as_ref());
        if !until_written("KPI history", Duration::from_millis(200), &cancel, &fenced, write).await {
            return;
        }
        for (source, position) in positions {
            marks.durable(&source, position);
        }
        let samples = merged(std::mem::take(&mut carried), sampled);
        if let Err(e) = store.record_rollups(&samples, fence.as_ref()).await {
            tracing::warn!(error = %e, "cannot write sampled KPI history; trying again with the next");
            carried = samples;
        }
    }
}

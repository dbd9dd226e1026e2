//! Per-source watermarks: how far changes have been received, applied, checkpointed and
//! acknowledged.
//!
//! Shared through atomics between the source (which writes `received` and reads what it may
//! acknowledge) and the pipeline (which writes `applied`): the source learns what is durable
//! without anything calling back up the data flow.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::change::Position;

/// How far one durable consumer after apply (alert transitions, KPI history; later the
/// notification outbox and the Redis bus) has made one source's transactions durable.
///
/// The apply loop marks a transaction `handed` before it sends it; the consumer marks it
/// `durable` once everything it derived from it is written. A consumer with nothing in hand
/// (durable ≥ handed) holds nothing back, so a quiet consumer never stops the slot from
/// advancing on heartbeats.
#[derive(Debug, Default)]
pub struct DurableMark {
    pub name: &'static str,
    handed: AtomicU64,
    durable: AtomicU64,
}

impl DurableMark {
    pub fn new(name: &'static str) -> Arc<DurableMark> {
        Arc::new(DurableMark { name, ..DurableMark::default() })
    }

    pub fn handed(&self, p: Position) {
        let before = self.handed.fetch_max(p.0, Ordering::AcqRel);
        // A consumer that had written everything it was handed holds nothing before `p`: what
        // lies between was of no interest to it. Acknowledging up to just before `p` keeps the
        // slot moving without waiting for the consumer to take `p` in.
        if p.0 > before && self.durable.load(Ordering::Acquire) >= before {
            self.durable.fetch_max(p.0 - 1, Ordering::AcqRel);
        }
    }

    pub fn durable(&self, p: Position) {
        self.durable.fetch_max(p.0, Ordering::AcqRel);
    }

    /// The highest position this consumer allows to be acknowledged, if it holds anything back.
    pub fn limit(&self) -> Option<Position> {
        // `durable` first: a consumer that catches up between the two loads is seen as
        // holding back, the safe way to be wrong.
        let durable = self.durable.load(Ordering::Acquire);
        let handed = self.handed.load(Ordering::Acquire);
        (durable < handed).then_some(Position(durable))
    }

    pub fn values(&self) -> (Position, Position) {
        (Position(self.handed.load(Ordering::Acquire)), Position(self.durable.load(Ordering::Acquire)))
    }
}

/// One durable consumer's marks, one per source (positions of different sources do not
/// compare).
#[derive(Clone, Debug, Default)]
pub struct DurableMarks {
    pub name: &'static str,
    marks: std::collections::HashMap<crate::change::SourceName, Arc<DurableMark>>,
}

impl DurableMarks {
    /// A mark per source, each registered with that source's watermarks.
    pub fn register(
        name: &'static str,
        watermarks: &std::collections::HashMap<crate::change::SourceName, Arc<Watermarks>>,
    ) -> DurableMarks {
        let mut marks = std::collections::HashMap::new();
        for (source, w) in watermarks {
            let mark = DurableMark::new(name);
            w.add_consumer(mark.clone());
            marks.insert(source.clone(), mark);
        }
        DurableMarks { name, marks }
    }

    pub fn handed(&self, source: &str, p: Position) {
        if let Some(m) = self.marks.get(source) {
            m.handed(p);
        }
    }

    pub fn durable(&self, source: &str, p: Position) {
        if let Some(m) = self.marks.get(source) {
            m.durable(p);
        }
    }
}

#[derive(Debug, Default)]
pub struct Watermarks {
    received: AtomicU64,
    applied: AtomicU64,
    /// Written in a durable checkpoint (when checkpoints are on).
    checkpointed: AtomicU64,
    /// Checkpoints are on: the source may acknowledge only what they hold.
    durable: AtomicBool,
    acknowledged: AtomicU64,
    /// The source server's own position (its current WAL end), polled by the source: how far
    /// there is to go.
    server: AtomicU64,
    /// Commit time (µs since the Unix epoch) of the newest applied transaction.
    applied_commit_ts: AtomicI64,
    /// Whether the replica holds a complete, consistent copy of the source's tables: set when
    /// the source's consistent point is applied, cleared when one of its tables is reloaded.
    consistent: AtomicBool,
    /// The durable consumers after apply: acknowledgement waits for each of them.
    consumers: Mutex<Vec<Arc<DurableMark>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WatermarkValues {
    pub received: Position,
    pub applied: Position,
    pub checkpointed: Position,
    pub acknowledged: Position,
}

impl Watermarks {
    pub fn received(&self, p: Position) {
        self.received.fetch_max(p.0, Ordering::Relaxed);
    }

    pub fn applied(&self, p: Position) {
        self.applied.fetch_max(p.0, Ordering::Release);
    }

    pub fn acknowledged(&self, p: Position) {
        self.acknowledged.fetch_max(p.0, Ordering::Relaxed);
    }

    pub fn checkpointed(&self, p: Position) {
        self.checkpointed.fetch_max(p.0, Ordering::Release);
    }

    /// Checkpoints are on: from now on only checkpointed positions are acknowledged.
    pub fn set_durable(&self, durable: bool) {
        self.durable.store(durable, Ordering::Release);
    }

    /// Registers a durable consumer of this source's transactions.
    pub fn add_consumer(&self, mark: Arc<DurableMark>) {
        self.consumers.lock().unwrap_or_else(|p| p.into_inner()).push(mark);
    }

    /// Whether every durable consumer has written what it derived from the transactions up to
    /// `p` (or holds nothing): a checkpoint at `p` may then be the resume point, since a restart
    /// delivers only what follows it.
    pub fn consumers_durable_through(&self, p: Position) -> bool {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner()).iter().all(|m| m.limit().is_none_or(|l| l >= p))
    }

    pub fn consumers(&self) -> Vec<Arc<DurableMark>> {
        self.consumers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What the source may acknowledge: the lowest durability watermark that exists —
    /// `checkpointed` when checkpoints are on (a restart resumes from the checkpoint, so the
    /// slot must keep everything after it), otherwise `applied` (a restart takes a fresh
    /// snapshot anyway) — and no further than any durable consumer has written what it
    /// derived (a restart re-delivers the rest to it).
    pub fn ack_target(&self) -> Position {
        let applied = self.applied.load(Ordering::Acquire);
        let mut target = if self.durable.load(Ordering::Acquire) {
            applied.min(self.checkpointed.load(Ordering::Acquire))
        } else {
            applied
        };
        for mark in self.consumers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if let Some(limit) = mark.limit() {
                target = target.min(limit.0);
            }
        }
        Position(target)
    }

    pub fn server(&self, p: Position) {
        self.server.fetch_max(p.0, Ordering::Relaxed);
    }

    pub fn applied_commit(&self, commit_ts_micros: i64) {
        self.applied_commit_ts.fetch_max(commit_ts_micros, Ordering::Relaxed);
    }

    pub fn set_consistent(&self, consistent: bool) {
        self.consistent.store(consistent, Ordering::Release);
    }

    pub fn is_consistent(&self) -> bool {
        self.consistent.load(Ordering::Acquire)
    }

    /// Bytes of source history not yet processed: from what the replica covers (applied, or
    /// acknowledged when the rest was of no interest) to the server's newest known position.
    pub fn lag_bytes(&self) -> u64 {
        let covered = self.applied.load(Ordering::Acquire).max(self.acknowledged.load(Ordering::Relaxed));
        self.server.load(Ordering::Relaxed).saturating_sub(covered)
    }

    /// How far behind the source the replica is, in time: zero when every transaction received
    /// is applied; otherwise the age of the newest applied commit (a bound on how stale the
    /// replica is). WAL the server has not sent yet shows in [`lag_bytes`](Self::lag_bytes)
    /// instead: it may hold nothing watched, and an idle source must not look late.
    pub fn lag_seconds(&self, now_micros: i64) -> f64 {
        let v = self.values();
        let pending = v.received > v.applied;
        let last = self.applied_commit_ts.load(Ordering::Relaxed);
        if !pending || last == 0 { 0.0 } else { (now_micros - last).max(0) as f64 / 1e6 }
    }

    pub fn server_position(&self) -> Position {
        Position(self.server.load(Ordering::Relaxed))
    }

    pub fn values(&self) -> WatermarkValues {
        WatermarkValues {
            received: Position(self.received.load(Ordering::Relaxed)),
            applied: Position(self.applied.load(Ordering::Acquire)),
            checkpointed: Position(self.checkpointed.load(Ordering::Acquire)),
            acknowledged: Position(self.acknowledged.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_consumer_holds_the_acknowledgement_back_until_it_has_written() {
        let w = Watermarks::default();
        let mark = DurableMark::new("alerts");
        w.add_consumer(mark.clone());
        w.applied(Position(100));
        assert_eq!(w.ack_target(), Position(100), "a consumer with nothing in hand holds nothing back");
        mark.handed(Position(150));
        w.applied(Position(150));
        assert_eq!(w.ack_target(), Position(149), "handed but not yet durable: up to just before it");
        w.applied(Position(160));
        mark.handed(Position(160));
        assert_eq!(w.ack_target(), Position(149), "the consumer is still at 150");
        mark.durable(Position(150));
        assert_eq!(w.ack_target(), Position(150));
        assert!(!w.consumers_durable_through(Position(160)), "a checkpoint at 160 waits for the consumer");
        assert!(w.consumers_durable_through(Position(150)));
        mark.durable(Position(160));
        assert_eq!(w.ack_target(), Position(160));
        assert!(w.consumers_durable_through(Position(160)));
        // A heartbeat moves `applied` past everything the consumer was handed.
        w.applied(Position(400));
        assert_eq!(w.ack_target(), Position(400));
    }

    #[test]
    fn checkpoints_and_consumers_both_bound_the_acknowledgement() {
        let w = Watermarks::default();
        w.set_durable(true);
        let mark = DurableMark::new("kpi_history");
        w.add_consumer(mark.clone());
        w.applied(Position(300));
        w.checkpointed(Position(250));
        mark.handed(Position(100));
        mark.handed(Position(300));
        mark.durable(Position(200));
        assert_eq!(w.ack_target(), Position(200));
        mark.durable(Position(300));
        assert_eq!(w.ack_target(), Position(250));
    }
}

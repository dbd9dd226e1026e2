//! Per-source watermarks: how far changes have been received, applied, checkpointed and
//! acknowledged.
//!
//! Shared through atomics between the source (which writes `received` and reads what it may
//! acknowledge) and the pipeline (which writes `applied`): the source learns what is durable
//! without anything calling back up the data flow.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::change::Position;

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

    /// What the source may acknowledge: the lowest durability watermark that exists —
    /// `checkpointed` when checkpoints are on (a restart resumes from the checkpoint, so the
    /// slot must keep everything after it), otherwise `applied` (a restart takes a fresh
    /// snapshot anyway).
    pub fn ack_target(&self) -> Position {
        let applied = self.applied.load(Ordering::Acquire);
        if self.durable.load(Ordering::Acquire) {
            Position(applied.min(self.checkpointed.load(Ordering::Acquire)))
        } else {
            Position(applied)
        }
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

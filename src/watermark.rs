//! Per-source watermarks: how far changes have been received, applied and acknowledged.
//!
//! Shared through atomics between the source (which writes `received` and reads what it may
//! acknowledge) and the pipeline (which writes `applied`): the source learns what is durable
//! without anything calling back up the data flow.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::change::Position;

#[derive(Debug, Default)]
pub struct Watermarks {
    received: AtomicU64,
    applied: AtomicU64,
    acknowledged: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WatermarkValues {
    pub received: Position,
    pub applied: Position,
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

    /// What the source may acknowledge: the lowest durability watermark that exists. While the
    /// replica lives only in memory that is `applied` (a restart takes a fresh snapshot anyway).
    pub fn ack_target(&self) -> Position {
        Position(self.applied.load(Ordering::Acquire))
    }

    pub fn values(&self) -> WatermarkValues {
        WatermarkValues {
            received: Position(self.received.load(Ordering::Relaxed)),
            applied: Position(self.applied.load(Ordering::Acquire)),
            acknowledged: Position(self.acknowledged.load(Ordering::Relaxed)),
        }
    }
}

//! Counters of what the simulator did, readable while it runs (progress logs, server metrics).
//!
//! Plain atomics: workers bump them once per event, and readers only need a recent value,
//! not a consistent snapshot across counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::plan::EventKind;

/// Live counters of a simulation run. Share it (`Arc<SimStats>`) with whatever reports them.
#[derive(Debug, Default)]
pub struct SimStats {
    events: [AtomicU64; EventKind::COUNT],
    skipped: AtomicU64,
    conflicts: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    planned_rate_bits: AtomicU64,
}

impl SimStats {
    /// Committed events of `kind`.
    pub fn events(&self, kind: EventKind) -> u64 {
        self.events[kind.index()].load(Relaxed)
    }

    /// Committed events of every kind.
    pub fn total(&self) -> u64 {
        self.events.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Committed events per kind, in [`EventKind::ALL`] order.
    pub fn by_kind(&self) -> Vec<(EventKind, u64)> {
        EventKind::ALL.into_iter().map(|k| (k, self.events(k))).collect()
    }

    /// Planned events that found nothing to do: the row had moved on, the item was out of stock,
    /// no agent was online.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Relaxed)
    }

    /// Events given up after losing lock races (deadlocks, serialization failures) repeatedly.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Relaxed)
    }

    /// Events the database refused (for example a constraint someone added); logged as warnings.
    pub fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }

    /// Planned events never run because the database could not keep up with the rate.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// The rate the planner currently aims at, events per second (day curve and bursts included).
    pub fn planned_rate(&self) -> f64 {
        f64::from_bits(self.planned_rate_bits.load(Relaxed))
    }

    pub(crate) fn record(&self, kind: EventKind) {
        self.events[kind.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn record_skipped(&self) {
        self.skipped.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_conflict(&self) {
        self.conflicts.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    pub(crate) fn set_planned_rate(&self, rate: f64) {
        self.planned_rate_bits.store(rate.to_bits(), Relaxed);
    }
}

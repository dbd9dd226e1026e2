//! Where the writer's side and the clients' side of every change meet.
//!
//! The writer chooses each order's id itself (`base + n` for the n-th change), so a client can map
//! a row that entered its result back to the change that wrote it without asking anyone: the
//! ledger is a flat array indexed by `n`, written once by the writer (the instant its commit
//! returned) and counted up by the clients (one delivery per subscriber). Plain atomics keep the
//! thousand client tasks from queueing on a lock at 100,000 deliveries a second.
//!
//! A client's frame can arrive before the writer's `COMMIT` call has returned: PostgreSQL hands
//! the WAL to the walsender and the reply to the writer at about the same moment, and opslive
//! can be faster than the writer's own wake-up. Such a delivery counts with a latency of 0 and
//! is counted apart (`early`), so the report says how often it happened.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// `commit_ns` of a change whose insert failed.
const FAILED: u64 = u64::MAX;

pub struct Ledger {
    epoch: Instant,
    base: i64,
    /// Changes from this index on are measured; the ones before warm the system up.
    measured_from: usize,
    /// Nanoseconds since `epoch` + 1 at which the commit returned; 0 while it has not.
    commit_ns: Vec<AtomicU64>,
    delivered: Vec<AtomicU32>,
}

/// What a row that entered a client's result was to the run.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Not written by this run's writer (seed data, other traffic).
    Foreign,
    /// A change of the warm-up.
    Warmup,
    /// A measured change, `latency_us` after its commit returned; `early` when the frame came
    /// before the commit call returned (then the latency is 0).
    Measured { latency_us: u64, early: bool },
}

/// Deliveries of all changes, against the subscribers each should have reached.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryCount {
    /// Changes committed (and so expected to be delivered).
    pub changes: u64,
    pub expected: u64,
    pub delivered: u64,
    /// Expected deliveries that never arrived.
    pub missing: u64,
    /// Deliveries beyond the expected ones (the same row entering a result twice).
    pub extra: u64,
    /// Changes with at least one missing delivery, first few ids.
    pub missing_ids: Vec<i64>,
}

impl Ledger {
    /// A ledger for `changes` changes with ids `base..base + changes`.
    pub fn new(epoch: Instant, base: i64, changes: usize, measured_from: usize) -> Ledger {
        Ledger {
            epoch,
            base,
            measured_from,
            commit_ns: (0..changes).map(|_| AtomicU64::new(0)).collect(),
            delivered: (0..changes).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.commit_ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commit_ns.is_empty()
    }

    pub fn id(&self, n: usize) -> i64 {
        self.base + n as i64
    }

    pub fn measured_from(&self) -> usize {
        self.measured_from
    }

    fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64 + 1
    }

    /// The writer's commit of change `n` returned at `at`.
    pub fn committed(&self, n: usize, at: Instant) {
        self.commit_ns[n].store(self.ns(at), Ordering::Release);
    }

    /// The writer's insert of change `n` failed: nobody should receive it.
    pub fn failed(&self, n: usize) {
        self.commit_ns[n].store(FAILED, Ordering::Release);
    }

    /// A row with key `id` entered a subscriber's result at `arrival`.
    pub fn deliver(&self, id: i64, arrival: Instant) -> Delivery {
        let Some(n) = id.checked_sub(self.base).and_then(|n| usize::try_from(n).ok()).filter(|&n| n < self.len())
        else {
            return Delivery::Foreign;
        };
        self.delivered[n].fetch_add(1, Ordering::Relaxed);
        if n < self.measured_from {
            return Delivery::Warmup;
        }
        let commit = self.commit_ns[n].load(Ordering::Acquire);
        let arrival = self.ns(arrival);
        if commit == 0 || commit == FAILED || commit > arrival {
            Delivery::Measured { latency_us: 0, early: true }
        } else {
            Delivery::Measured { latency_us: (arrival - commit) / 1000, early: false }
        }
    }

    pub fn is_committed(&self, n: usize) -> bool {
        !matches!(self.commit_ns[n].load(Ordering::Acquire), 0 | FAILED)
    }

    /// Changes committed so far (failed ones excluded).
    pub fn commits(&self) -> usize {
        (0..self.len()).filter(|&n| self.is_committed(n)).count()
    }

    pub fn failures(&self) -> usize {
        self.commit_ns.iter().filter(|c| c.load(Ordering::Acquire) == FAILED).count()
    }

    /// Deliveries so far against `expected(n)` subscribers for each committed change `n`.
    pub fn count(&self, expected: impl Fn(usize) -> u32) -> DeliveryCount {
        let mut c = DeliveryCount::default();
        for n in 0..self.len() {
            let got = self.delivered[n].load(Ordering::Relaxed) as u64;
            c.delivered += got;
            if matches!(self.commit_ns[n].load(Ordering::Acquire), 0 | FAILED) {
                c.extra += got;
                continue;
            }
            let want = expected(n) as u64;
            c.changes += 1;
            c.expected += want;
            if got < want {
                c.missing += want - got;
                if c.missing_ids.len() < 10 {
                    c.missing_ids.push(self.id(n));
                }
            } else {
                c.extra += got - want;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn deliveries_are_matched_to_commits() {
        let epoch = Instant::now();
        let ledger = Ledger::new(epoch, 1000, 4, 1);
        let at = |ms: u64| epoch + Duration::from_millis(ms);
        ledger.committed(0, at(1));
        ledger.committed(1, at(10));
        ledger.failed(3);
        assert_eq!(ledger.deliver(999, at(20)), Delivery::Foreign);
        assert_eq!(ledger.deliver(1004, at(20)), Delivery::Foreign);
        assert_eq!(ledger.deliver(1000, at(20)), Delivery::Warmup);
        assert_eq!(ledger.deliver(1001, at(12)), Delivery::Measured { latency_us: 2000, early: false });
        // Change 2 is in flight: its frame came before its commit returned.
        assert_eq!(ledger.deliver(1002, at(12)), Delivery::Measured { latency_us: 0, early: true });
        ledger.committed(2, at(13));
        assert_eq!(ledger.commits(), 3);
        assert_eq!(ledger.failures(), 1);
        // Two subscribers each: change 0 reached one, 1 one, 2 one.
        let count = ledger.count(|_| 2);
        assert_eq!(count.changes, 3);
        assert_eq!(count.expected, 6);
        assert_eq!(count.delivered, 3);
        assert_eq!(count.missing, 3);
        assert_eq!(count.missing_ids, vec![1000, 1001, 1002]);
        for id in [1000, 1001, 1002, 1002] {
            ledger.deliver(id, at(30));
        }
        let count = ledger.count(|_| 2);
        assert_eq!((count.missing, count.extra), (0, 1));
    }
}

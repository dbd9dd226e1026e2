//! The memory a large transaction may take on its way through opslive (`[transactions]
//! buffer_bytes`).
//!
//! A transaction is read whole before it is applied only while it is small. Past a quarter of
//! the budget a source passes on what it holds as a part ([`crate::change::TxPart`]); parts
//! sent and not yet applied may take half of it (a source waits for the apply loop past that);
//! the row changes the engines get at the commit may take the last quarter, past which the
//! apply loop hands them each table the transaction touched to read afresh instead. So a
//! transaction of any size holds at most the budget here, and `held` says how much it holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// The default budget: 64 MiB.
pub const DEFAULT_BUFFER_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct TxMemory {
    limit: usize,
    /// Room for parts in flight, in bytes.
    in_flight: Semaphore,
    held: AtomicUsize,
    peak: AtomicUsize,
}

impl TxMemory {
    pub fn new(limit: usize) -> TxMemory {
        let limit = limit.max(4096);
        TxMemory { limit, in_flight: Semaphore::new(limit / 2), held: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes a source may hold of one open transaction before it passes them on as a part.
    pub fn part_bytes(&self) -> usize {
        self.limit / 4
    }

    /// Bytes of row changes the apply loop keeps for the engines while a transaction is open.
    pub fn delta_bytes(&self) -> usize {
        self.limit / 4
    }

    /// Counts bytes now held.
    pub fn hold(&self, bytes: usize) {
        let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Counts bytes that pass through at once, held only while they are sent (a transaction
    /// small enough to go whole): they count toward the peak, never toward what is held.
    pub fn passed(&self, bytes: usize) {
        self.peak.fetch_max(self.held.load(Ordering::Relaxed) + bytes, Ordering::Relaxed);
    }

    /// Counts bytes no longer held.
    pub fn release(&self, bytes: usize) {
        // Saturating: a miscount must not wrap into a huge figure.
        let _ = self.held.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| Some(h.saturating_sub(bytes)));
    }

    /// Counts a part of `bytes` as held, once parts in flight leave room for it (they stay
    /// within half the budget): the claim gives both back when the part is dropped.
    pub async fn send_part(self: &Arc<Self>, bytes: usize) -> InFlight {
        self.hold(bytes);
        let permits = self.permits(bytes);
        if permits > 0 {
            // The semaphore is never closed.
            self.in_flight.acquire_many(permits).await.expect("the part semaphore stays open").forget();
        }
        InFlight { memory: self.clone(), bytes }
    }

    fn permits(&self, bytes: usize) -> u32 {
        bytes.min(self.limit / 2).min(u32::MAX as usize) as u32
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The most bytes held at once since start.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// A part's claim on the transaction memory: its bytes and its room in flight, given back when
/// the part is dropped — once it is applied, or with a pipeline that closed before it was.
#[derive(Debug)]
pub struct InFlight {
    memory: Arc<TxMemory>,
    bytes: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.memory.in_flight.add_permits(self.memory.permits(self.bytes) as usize);
        self.memory.release(self.bytes);
    }
}

impl Default for TxMemory {
    fn default() -> TxMemory {
        TxMemory::new(DEFAULT_BUFFER_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parts_in_flight_wait_past_half_the_budget_and_the_peak_is_kept() {
        let m = Arc::new(TxMemory::new(64 * 1024));
        let first = m.send_part(20_000).await;
        // A second part would pass half the budget (32 KiB) in flight: it waits for the first.
        let second = tokio::spawn({
            let m = m.clone();
            async move { m.send_part(20_000).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!second.is_finished(), "the second part waits while the first is in flight");
        assert_eq!(m.held(), 40_000, "both are counted, the second as it waits");
        drop(first);
        let second = second.await.unwrap();
        assert_eq!(m.held(), 20_000);
        assert_eq!(m.peak(), 40_000);
        drop(second);
        assert_eq!(m.held(), 0);
    }
}

//! Sources: one module per database kind. Each owns its protocol — slots, snapshots, positions,
//! acknowledgements — and emits [`crate::change::SourceEvent`]s. Nothing outside this module
//! sees a protocol type.

pub mod postgres;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a source and its supervisor know about its state (exported as metrics and readiness).
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Snapshots abandoned because a table was rewritten while they were taken.
    pub snapshot_retries: AtomicU64,
    /// Streaming from the source right now (set once the consistent point is sent, cleared as
    /// soon as the session ends).
    pub connected: AtomicBool,
    /// Sessions that ended in a failure (retried, or fatal).
    pub failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl SourceStats {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }

    /// Records a failed session; the message is the error's, which never carries row values.
    pub fn failed(&self, message: String) {
        self.set_connected(false);
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().expect("stats lock") = Some(message);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("stats lock").clone()
    }
}

//! Sources: one module per database kind. Each owns its protocol — slots, snapshots, positions,
//! acknowledgements — and emits [`crate::change::SourceEvent`]s. Nothing outside this module
//! sees a protocol type.

pub mod postgres;

use std::sync::atomic::AtomicU64;

/// Counters a source keeps about itself (exported as metrics).
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Snapshots abandoned because a table was rewritten while they were taken.
    pub snapshot_retries: AtomicU64,
}

//! Sources: one module per database kind. Each owns its protocol — slots, snapshots, positions,
//! acknowledgements — and emits [`crate::change::SourceEvent`]s. Nothing outside this module
//! sees a protocol type.

pub mod postgres;

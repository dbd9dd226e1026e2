//! opslive: a live operations dashboard driven by change data capture.
//!
//! The data flows one way:
//!
//! ```text
//!  PostgreSQL ──pgoutput──► source ─► SourceEvent ─► replica ─► Applied deltas ─► (live, kpi, alert)
//!                           (per db)  (the seam)     (tables)
//! ```
//!
//! - [`source`] owns each database's protocol and emits [`change::SourceEvent`]s;
//! - [`change`] and [`value`] are the seam: typed rows, positions, table events;
//! - [`replica`] is the in-memory copy, applied purely, returning deltas;
//! - [`live`] keeps live query results up to date from those deltas (pure; the GraphQL
//!   subscriptions in [`api`] run it);
//! - [`pipeline`] wires a source to the replica with backpressure;
//! - [`store`] is opslive's own database; [`config`] the one configuration struct;
//! - [`tail`] and [`serve`] are the commands built on them; [`api`] is serve's HTTP face;
//!   [`bench`] is the load tool that measures live queries end to end.

pub mod aggregate;
pub mod alert;
pub mod announce;
pub mod api;
pub mod as_of;
pub mod auth;
pub mod bench;
pub mod change;
pub mod changes;
pub mod checkpoint;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod duration;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod kpi;
pub mod live;
pub mod notify;
pub mod open_files;
pub mod pipeline;
pub mod policy;
pub mod query;
pub mod reconfigure;
pub mod registry;
pub mod replica;
pub mod serve;
pub mod sim;
pub mod source;
pub mod store;
pub mod tail;
pub mod tx_memory;
pub mod value;
pub mod watched_file;
pub mod watermark;

/// The allocator of every binary built on this crate (server, tools, tests, benches). The stream
/// allocates each row's values on one thread and frees them on another once no replica version
/// holds them; in a profile of the backlog drain glibc's malloc took a quarter of opslive's time
/// (`malloc_consolidate`, `unlink_chunk`, `_int_free`). mimalloc 2 (feature `v2`) removes most of
/// it; mimalloc 3 was no better here, as it spent a third of the time clearing fresh pages.
/// Transparent huge pages are off for it (`no_thp`): with them the kernel compacted and cleared
/// 2 MB pages on first touch, which cost more system time than the allocator saved.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
pub mod api;
pub mod auth;
pub mod bench;
pub mod change;
pub mod checkpoint;
pub mod config;
pub mod demo;
pub mod error;
pub mod live;
pub mod pipeline;
pub mod policy;
pub mod query;
pub mod registry;
pub mod replica;
pub mod serve;
pub mod sim;
pub mod source;
pub mod store;
pub mod tail;
pub mod value;
pub mod watermark;

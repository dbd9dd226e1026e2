//! GraphQL live queries: subscriptions compiled to the live engine's queries, maintained by
//! the live runtime (`crate::live::runtime`), written once per update and delivered through
//! per-connection outboxes.
//!
//! - [`schema`]: the `Subscription` root (every query field, plus `…Patches`);
//! - [`compile`]: a validated subscription field → [`crate::live::LiveSpec`] + how to write it;
//! - [`projection`] and [`render`]: the selection set, and the JSON of each update;
//! - [`frames`]: the runtime's renderer (each update written once, left in every subscriber's
//!   outbox) and the handle connections subscribe through;
//! - [`outbox`]: a connection's waiting messages, coalesced for slow clients.
//!
//! The transport (`super::ws`) only parses frames, authenticates and writes what the outbox
//! holds.

pub mod compile;
pub mod frames;
pub mod outbox;
pub mod projection;
pub mod render;
pub mod schema;

pub use compile::{Handover, LiveRequest, LiveSlot};
pub use frames::LiveHub;
pub use outbox::{Delivery, Outbox};

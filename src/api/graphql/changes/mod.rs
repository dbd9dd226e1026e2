//! Change streams over GraphQL: `ordersChanges(where, after)`, one message per source
//! transaction with news for the subscriber, each event `ENTER`, `UPDATE` or `LEAVE` relative to
//! its `where` and its role's row filter, and a cursor to resume from.
//!
//! - [`schema`]: the subscription field and its types;
//! - [`compile`]: the resolver: filter, cursor and selection checked when subscribing;
//! - [`render`]: one message's JSON, straight from the logged rows;
//! - [`stream`]: the task that reads the change log after the client's cursor, at the pace
//!   its connection drains, so a slow client only lags in the shared log and one that falls off
//!   its end is told `CURSOR_EXPIRED` instead of being handed a gap.

pub mod compile;
pub mod render;
pub mod schema;
pub mod stream;

pub use compile::ChangesRequest;

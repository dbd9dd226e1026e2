//! Change streams: every committed row change of the watched tables, kept for a while in a
//! bounded log so a client that was away can resume from its cursor and miss nothing.
//!
//! ```text
//!  apply loop ── Arc<Batch> ─► feed (one task) ─► ChangeLog: entries by sequence number
//!                                                   ▲ read after a cursor, at each reader's pace
//!  a subscription: cursor ─► entries ─► events for its table, filter and role ─► its client
//! ```
//!
//! The log is shared by every reader: a client that falls behind costs no copy, only its place
//! in the log, and a client that falls off the log's end is told so ([`Expired`]) instead of
//! being handed a gap. [`events`] is pure: it turns one logged transaction into what one
//! subscriber sees — `ENTER`, `UPDATE` or `LEAVE` relative to its filter — from the before and
//! after rows the replica attached to each change (the source sends only the key of a deleted
//! or updated row; the replica knows the rest).

mod cursor;
mod event;
mod feed;
mod log;

pub use cursor::{Cursor, CursorError};
pub use event::{Event, Kind, events};
pub use feed::{ChangeFeed, FeedStats};
pub use log::{Break, ChangeLog, Entry, Expired, Item, LogFigures, Resumed, Retention};

#[cfg(test)]
mod tests;

//! One change stream: reads the change log after the client's cursor and leaves a message per
//! transaction with news for it in its connection's outbox, at the pace the connection drains.
//!
//! Nothing is coalesced or dropped (a change stream is a history, not a state): the reader
//! waits for room instead of piling messages up, so a client that stops reading holds only its
//! place in the shared log, is closed by the connection's write timeout, and comes back with its
//! cursor — or, if it was away for longer than the log reaches, gets `CURSOR_EXPIRED`.
//!
//! A subscriber whose filter nothing matches would otherwise keep the cursor of its first
//! message while the log moves on and evicts it: back after a short blip, it would be told to
//! re-read although it missed nothing. So once the log has moved past the last cursor sent and
//! `[changes] heartbeat_seconds` have passed since, the stream sends a cursor with no events
//! (`xid` and `commitTs` null; `position` that of the last transaction of the table read, or
//! where its source stood when the stream started).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::compile::ChangesRequest;
use super::render::{self, At};
use crate::api::graphql::errors::Code;
use crate::api::graphql::live::frames::errors;
use crate::api::graphql::live::outbox::{Delivery, Kind, Outbox, Pushed};
use crate::changes::{ChangeFeed, Expired, events};

/// Log entries read at once.
const READ_AT_ONCE: usize = 256;

/// Bytes that may wait for the connection before the reader waits for its writer: enough for
/// a burst of transactions in one write, small enough that a thousand lagging clients cost
/// little.
const ROOM: usize = 64 * 1024;

/// Follows the log for one subscription until the stream breaks, the outbox closes, or the
/// task is aborted (the client stopped it, or the connection ended).
pub async fn follow(request: ChangesRequest, feed: ChangeFeed, outbox: Arc<Outbox>, id: Arc<str>) {
    feed.stats.streams.fetch_add(1, Relaxed);
    struct Open<'a>(&'a ChangeFeed);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            self.0.stats.streams.fetch_sub(1, Relaxed);
        }
    }
    let _open = Open(&feed);
    let ChangesRequest { table, source, key, filter, start, announce, mut position, through: had, fields, field } =
        request;
    let send = |payload: String| {
        feed.stats.messages.fetch_add(1, Relaxed);
        outbox.push(&id, Delivery::Next { payload: Arc::from(payload), kind: Kind::Event }) != Pushed::Closed
    };
    if announce
        && !send(render::message(&field, &fields, &key, feed.cursor_at(start, &source), At::Start(position), &[]))
    {
        return;
    }
    let fail = |message: String| {
        feed.stats.expired.fetch_add(1, Relaxed);
        outbox.push(&id, Delivery::Error(errors(&message, Code::CursorExpired.as_str())));
    };
    let mut head = feed.watch();
    let mut seq = start;
    // The sequence number of the last cursor sent, and when.
    let mut sent = (start, tokio::time::Instant::now());
    loop {
        // Marked seen before reading, so an entry appended meanwhile wakes the wait below.
        head.borrow_and_update();
        let (entries, through) = match feed.after(seq, table, READ_AT_ONCE) {
            Ok(read) => read,
            Err(e @ Expired::TooOld { .. }) => {
                return fail(format!("this stream fell behind the change log: {e}"));
            }
            Err(e) => return fail(e.to_string()),
        };
        let full = entries.len() == READ_AT_ONCE;
        for entry in &entries {
            if let Some(tx) = &entry.tx {
                // Resumed from another log: what the client had may arrive here only now.
                if had.is_some_and(|t| tx.position <= t) {
                    continue;
                }
                position = tx.position;
            }
            match events(entry, table, &filter) {
                Err(broke) => {
                    return fail(format!("the table {broke}: read it again, then subscribe without `after`"));
                }
                Ok(found) if found.is_empty() => {}
                Ok(found) => {
                    let Some(tx) = &entry.tx else { continue };
                    let cursor = feed.cursor(entry.seq, tx.position);
                    if !send(render::message(&field, &fields, &key, cursor, At::Tx(tx), &found)) {
                        return;
                    }
                    sent = (entry.seq, tokio::time::Instant::now());
                }
            }
        }
        seq = through;
        if seq > sent.0 && sent.1.elapsed() >= feed.heartbeat {
            if !send(render::message(&field, &fields, &key, feed.cursor_at(seq, &source), At::Start(position), &[])) {
                return;
            }
            sent = (seq, tokio::time::Instant::now());
        }
        outbox.room(ROOM).await;
        if outbox.is_closed() {
            return;
        }
        if full {
            continue;
        }
        // The log moving on, or the heartbeat falling due on what was read without news.
        let due = (seq > sent.0).then_some(sent.1 + feed.heartbeat);
        tokio::select! {
            changed = head.changed() => if changed.is_err() {
                return;
            },
            () = tokio::time::sleep_until(due.unwrap_or(sent.1)), if due.is_some() => {}
        }
    }
}

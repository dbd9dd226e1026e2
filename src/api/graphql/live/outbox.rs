//! One connection's outgoing live messages, bounded by coalescing.
//!
//! The hub never waits for a socket: it leaves each subscription's message here and wakes the
//! connection's writer. A subscription has at most one message waiting; when a newer one comes
//! before the writer took the last, the newer replaces it (a full result supersedes the
//! previous one; two patches in a row become one reset, which the hub supplies). A slow client
//! therefore costs memory bounded by its subscriptions, and gets the latest state when it
//! catches up, never a backlog — and never slows the hub, the replica or other clients.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// A message for one subscription. Payloads are shared by every subscriber of a query.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// A result (`next`/`data`).
    Next { payload: Arc<str>, kind: Kind },
    /// The subscription failed or ended: a JSON array of GraphQL errors, then `complete`.
    Error(Arc<str>),
}

/// What a result is, for coalescing: a newer full result or reset stands for everything
/// before it; a patch only for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Full,
    Reset,
    Patch,
}

/// What happened to a pushed message.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// A patch was already waiting: the caller must push a reset in its place.
    NeedsReset,
    /// The connection is gone.
    Closed,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub struct Outbox {
    pub id: u64,
    waiting: Mutex<Waiting>,
    notify: Notify,
    /// Messages replaced before they were sent (slow client).
    pub coalesced: AtomicU64,
}

#[derive(Debug, Default)]
struct Waiting {
    items: Vec<(Arc<str>, Delivery)>,
    closed: bool,
}

impl Outbox {
    pub fn new() -> Arc<Outbox> {
        Arc::new(Outbox {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            waiting: Mutex::new(Waiting::default()),
            notify: Notify::new(),
            coalesced: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leaves a message for subscription `sub`.
    pub fn push(&self, sub: &Arc<str>, delivery: Delivery) -> Pushed {
        let mut w = self.lock();
        if w.closed {
            return Pushed::Closed;
        }
        let waiting = w.items.iter_mut().find(|(s, d)| s == sub && matches!(d, Delivery::Next { .. }));
        match (waiting, &delivery) {
            // A patch applies to the state the waiting message leads to: together they need a
            // reset to the newest state, which the caller supplies.
            (Some(_), Delivery::Next { kind: Kind::Patch, .. }) => return Pushed::NeedsReset,
            (Some((_, old)), Delivery::Next { .. }) => {
                *old = delivery;
                self.coalesced.fetch_add(1, Ordering::Relaxed);
                return Pushed::Queued;
            }
            _ => w.items.push((sub.clone(), delivery)),
        }
        drop(w);
        self.notify.notify_one();
        Pushed::Queued
    }

    /// Replaces whatever waits for `sub` with `delivery` (a reset after [`Pushed::NeedsReset`]).
    pub fn replace(&self, sub: &Arc<str>, delivery: Delivery) {
        let mut w = self.lock();
        if w.closed {
            return;
        }
        match w.items.iter_mut().find(|(s, d)| s == sub && matches!(d, Delivery::Next { .. })) {
            Some((_, old)) => {
                *old = delivery;
                self.coalesced.fetch_add(1, Ordering::Relaxed);
            }
            None => w.items.push((sub.clone(), delivery)),
        }
        drop(w);
        self.notify.notify_one();
    }

    /// Waits until something is waiting.
    pub async fn ready(&self) {
        loop {
            if !self.lock().items.is_empty() {
                return;
            }
            self.notify.notified().await;
        }
    }

    /// Takes everything waiting, oldest first.
    pub fn take(&self) -> Vec<(Arc<str>, Delivery)> {
        std::mem::take(&mut self.lock().items)
    }

    /// Drops a subscription's waiting messages (the client stopped it).
    pub fn forget(&self, sub: &str) {
        self.lock().items.retain(|(s, _)| &**s != sub);
    }

    /// The connection is gone: nothing more is taken.
    pub fn close(&self) {
        let mut w = self.lock();
        w.closed = true;
        w.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(payload: &str, kind: Kind) -> Delivery {
        Delivery::Next { payload: Arc::from(payload), kind }
    }

    fn waiting(outbox: &Outbox) -> Vec<String> {
        outbox
            .take()
            .into_iter()
            .map(|(s, d)| match d {
                Delivery::Next { payload, .. } => format!("{s}:{payload}"),
                Delivery::Error(e) => format!("{s}:error {e}"),
            })
            .collect()
    }

    #[test]
    fn one_waiting_message_per_subscription() {
        let outbox = Outbox::new();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert_eq!(outbox.push(&a, next("full 1", Kind::Full)), Pushed::Queued);
        assert_eq!(outbox.push(&b, next("reset 1", Kind::Reset)), Pushed::Queued);
        assert_eq!(outbox.push(&a, next("full 2", Kind::Full)), Pushed::Queued);
        // A patch behind a waiting reset or patch cannot be sent as it is.
        assert_eq!(outbox.push(&b, next("patch 2", Kind::Patch)), Pushed::NeedsReset);
        outbox.replace(&b, next("reset 2", Kind::Reset));
        assert_eq!(waiting(&outbox), ["a:full 2", "b:reset 2"]);
        // Once taken, a patch queues normally; an error always queues behind.
        assert_eq!(outbox.push(&b, next("patch 3", Kind::Patch)), Pushed::Queued);
        assert_eq!(outbox.push(&b, Delivery::Error(Arc::from("[]"))), Pushed::Queued);
        assert_eq!(waiting(&outbox), ["b:patch 3", "b:error []"]);
        outbox.close();
        assert_eq!(outbox.push(&a, next("late", Kind::Full)), Pushed::Closed);
    }
}

//! One connection's outgoing live messages, bounded by coalescing.
//!
//! The hub never waits for a socket: it leaves each subscription's messages here and wakes the
//! connection's writer. A newer full result (or reset) replaces whatever waits for its
//! subscription; patches queue behind it, up to [`MAX_WAITING_PATCHES`], after which the hub
//! sends one reset to the newest state instead. A slow client therefore costs memory bounded by
//! its subscriptions (and the queued payloads are shared with every other subscriber); one
//! that is briefly behind catches up on small patches, one that stays behind gets the latest
//! state, never an endless backlog — and it never slows the hub, the replica or other clients.
//!
//! A client may also ask for a subscription to be **paced** (`extensions.minIntervalMs` on the
//! subscribe): a result goes at once when none went in the last interval, and results that
//! come quicker wait until the interval has passed, the newest standing for those before it
//! (patches queue as above). A dashboard's chart of per-status counts needs its exact latest
//! value, not three hundred values a second that the screen shows sixty of; each message the
//! browser skips is a parse and a render its main thread does not pay.
//!
//! A client that stops reading altogether (its socket's buffers full, the writer stuck) would
//! still pin one result per subscription, and results can be large; so the bytes waiting are
//! also capped (`[limits] max_pending_bytes`). Past the cap the outbox drops everything, takes
//! no more, and says so ([`Outbox::overflowed`]): the connection closes, and the client comes
//! back with a fresh result.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A message for one subscription. Payloads are shared by every subscriber of a query.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// A result (`next`/`data`).
    Next { payload: Arc<str>, kind: Kind },
    /// The subscription failed or ended: a JSON array of GraphQL errors, then `complete`.
    Error(Arc<str>),
    /// The operation's results are all sent: `complete`.
    Complete,
}

/// What a result is, for coalescing: a newer full result or reset stands for everything
/// before it; a patch only for itself; an event (a change stream's message) is never dropped
/// nor replaced: its sender paces itself by [`Outbox::room`] instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Full,
    Reset,
    Patch,
    Event,
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

/// Patches one subscription may have waiting before they are replaced by a reset.
pub const MAX_WAITING_PATCHES: usize = 32;

/// The longest interval a client may ask a subscription to be paced at.
pub const MAX_PACE: Duration = Duration::from_secs(60);

/// A paced subscription's interval and the earliest time its next result may go.
#[derive(Debug, Clone, Copy)]
struct Pace {
    every: Duration,
    next_at: Instant,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub struct Outbox {
    pub id: u64,
    waiting: Mutex<Waiting>,
    notify: Notify,
    /// Woken when the writer takes what waits (or the outbox closes): senders that pace
    /// themselves wait on it.
    taken: Notify,
    /// Messages replaced before they were sent (slow client).
    pub coalesced: AtomicU64,
    /// The most payload bytes that may wait.
    cap: usize,
    /// Cancelled when the cap was passed.
    overflow: CancellationToken,
}

#[derive(Debug, Default)]
struct Waiting {
    items: Vec<(Arc<str>, Delivery)>,
    /// Payload bytes in `items`.
    bytes: usize,
    closed: bool,
    paced: HashMap<Arc<str>, Pace>,
}

fn size(delivery: &Delivery) -> usize {
    match delivery {
        Delivery::Next { payload, .. } => payload.len(),
        Delivery::Error(errors) => errors.len(),
        Delivery::Complete => 0,
    }
}

impl Waiting {
    /// When `sub`'s waiting messages may go: now, unless it is paced and its interval has not
    /// passed. An error or `complete` waiting behind a held result lets both go (its end must
    /// not wait, and must not overtake the result).
    fn due_at(&self, sub: &Arc<str>) -> Option<Instant> {
        let pace = self.paced.get(sub)?;
        let ends = self.items.iter().any(|(s, d)| s == sub && !matches!(d, Delivery::Next { .. }));
        (!ends).then_some(pace.next_at)
    }

    /// The earliest time something waiting may go (`None`: nothing waits).
    fn next_due(&self, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for (sub, _) in &self.items {
            let at = self.due_at(sub).map_or(now, |at| at.max(now));
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
            if at == now {
                break;
            }
        }
        earliest
    }

    fn retain(&mut self, keep: impl Fn(&Arc<str>, &Delivery) -> bool) -> usize {
        let before = self.items.len();
        let mut dropped = 0;
        self.items.retain(|(s, d)| {
            let kept = keep(s, d);
            if !kept {
                dropped += size(d);
            }
            kept
        });
        self.bytes -= dropped;
        before - self.items.len()
    }

    fn add(&mut self, sub: &Arc<str>, delivery: Delivery) {
        self.bytes += size(&delivery);
        self.items.push((sub.clone(), delivery));
    }
}

impl Outbox {
    /// An outbox with no cap on the bytes waiting.
    pub fn new() -> Arc<Outbox> {
        Outbox::with_cap(usize::MAX)
    }

    /// An outbox that overflows when more than `cap` payload bytes wait.
    pub fn with_cap(cap: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            waiting: Mutex::new(Waiting::default()),
            notify: Notify::new(),
            taken: Notify::new(),
            coalesced: AtomicU64::new(0),
            cap,
            overflow: CancellationToken::new(),
        })
    }

    /// Resolves once more than the cap waited: the client stopped reading.
    pub async fn overflowed(&self) {
        self.overflow.cancelled().await
    }

    /// Past the cap: drops what waits and closes (the caller then answers `Closed`).
    fn check_cap(&self, w: &mut Waiting) -> bool {
        if w.bytes <= self.cap {
            return false;
        }
        w.items.clear();
        w.bytes = 0;
        w.closed = true;
        self.overflow.cancel();
        self.taken.notify_waiters();
        true
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
        match &delivery {
            Delivery::Next { kind: Kind::Patch, .. } => {
                // Patches queue behind what waits (they are shared, so a queue costs no copy)
                // up to a bound; past it, one reset to the newest state is cheaper to send and
                // to read than the backlog.
                let waiting = w.items.iter().filter(|(s, d)| s == sub && matches!(d, Delivery::Next { .. })).count();
                if waiting >= MAX_WAITING_PATCHES {
                    return Pushed::NeedsReset;
                }
                w.add(sub, delivery);
            }
            Delivery::Next { kind: Kind::Event, .. } => w.add(sub, delivery),
            // A full result or a reset stands for everything before it.
            Delivery::Next { .. } => self.supersede(&mut w, sub, delivery),
            Delivery::Error(_) | Delivery::Complete => w.add(sub, delivery),
        }
        if self.check_cap(&mut w) {
            return Pushed::Closed;
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
        self.supersede(&mut w, sub, delivery);
        if self.check_cap(&mut w) {
            return;
        }
        drop(w);
        self.notify.notify_one();
    }

    fn supersede(&self, w: &mut Waiting, sub: &Arc<str>, delivery: Delivery) {
        let replaced = w.retain(|s, d| !(s == sub && matches!(d, Delivery::Next { .. })));
        self.coalesced.fetch_add(replaced as u64, Ordering::Relaxed);
        w.add(sub, delivery);
    }

    /// Paces subscription `sub`: at most one result per `every` (`None`: every result at once).
    pub fn pace(&self, sub: &Arc<str>, every: Option<Duration>) {
        let mut w = self.lock();
        match every {
            Some(every) if !every.is_zero() => {
                w.paced.insert(sub.clone(), Pace { every, next_at: Instant::now() });
            }
            _ => {
                w.paced.remove(sub);
            }
        }
    }

    /// Waits until something waiting may go (a paced subscription's results wait out its interval).
    pub async fn ready(&self) {
        loop {
            let notified = self.notify.notified();
            let due = self.lock().next_due(Instant::now());
            match due {
                Some(at) if at <= Instant::now() => return,
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Takes everything that may go now, oldest first; a paced subscription's results that came
    /// within its interval stay until it has passed.
    pub fn take(&self) -> Vec<(Arc<str>, Delivery)> {
        let mut w = self.lock();
        let now = Instant::now();
        let items = if w.paced.is_empty() {
            w.bytes = 0;
            std::mem::take(&mut w.items)
        } else {
            let mut due: HashMap<Arc<str>, bool> = HashMap::new();
            for (sub, _) in &w.items {
                if !due.contains_key(sub) {
                    let at = w.due_at(sub);
                    due.insert(sub.clone(), at.is_none_or(|at| at <= now));
                }
            }
            let (taken, held): (Vec<_>, Vec<_>) =
                std::mem::take(&mut w.items).into_iter().partition(|(sub, _)| due[sub]);
            w.items = held;
            w.bytes = w.items.iter().map(|(_, d)| size(d)).sum();
            for (sub, delivery) in &taken {
                if matches!(delivery, Delivery::Next { .. })
                    && let Some(pace) = w.paced.get_mut(sub)
                {
                    pace.next_at = now + pace.every;
                }
            }
            taken
        };
        drop(w);
        self.taken.notify_waiters();
        items
    }

    /// Waits until at most `bytes` wait (or the outbox is closed): a sender that must not
    /// drop anything sends its next message only once the client has taken the last ones.
    pub async fn room(&self, bytes: usize) {
        loop {
            let taken = self.taken.notified();
            tokio::pin!(taken);
            // Registered before the check, so a take between the two is not missed.
            taken.as_mut().enable();
            {
                let w = self.lock();
                if w.closed || w.bytes <= bytes {
                    return;
                }
            }
            taken.await;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Drops a subscription's waiting messages and its pace (the client stopped it).
    pub fn forget(&self, sub: &str) {
        let mut w = self.lock();
        w.retain(|s, _| &**s != sub);
        w.paced.remove(sub);
    }

    /// The connection is gone: nothing more is taken.
    pub fn close(&self) {
        let mut w = self.lock();
        w.closed = true;
        w.items.clear();
        w.bytes = 0;
        drop(w);
        self.taken.notify_waiters();
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
                Delivery::Complete => format!("{s}:complete"),
            })
            .collect()
    }

    #[test]
    fn full_results_supersede_and_patches_queue_up_to_a_bound() {
        let outbox = Outbox::new();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert_eq!(outbox.push(&a, next("full 1", Kind::Full)), Pushed::Queued);
        assert_eq!(outbox.push(&b, next("reset 1", Kind::Reset)), Pushed::Queued);
        assert_eq!(outbox.push(&a, next("full 2", Kind::Full)), Pushed::Queued);
        assert_eq!(outbox.push(&b, next("patch 2", Kind::Patch)), Pushed::Queued);
        assert_eq!(waiting(&outbox), ["b:reset 1", "a:full 2", "b:patch 2"]);
        // Patches queue up to the bound; past it the caller sends one reset instead.
        for n in 0..MAX_WAITING_PATCHES {
            assert_eq!(outbox.push(&b, next(&format!("patch {n}"), Kind::Patch)), Pushed::Queued);
        }
        assert_eq!(outbox.push(&b, next("one too many", Kind::Patch)), Pushed::NeedsReset);
        outbox.replace(&b, next("reset 2", Kind::Reset));
        assert_eq!(outbox.push(&b, Delivery::Error(Arc::from("[]"))), Pushed::Queued);
        assert_eq!(waiting(&outbox), ["b:reset 2", "b:error []"]);
        outbox.close();
        assert_eq!(outbox.push(&a, next("late", Kind::Full)), Pushed::Closed);
    }

    #[tokio::test]
    async fn events_queue_unreplaced_and_a_sender_waits_for_room() {
        let outbox = Outbox::new();
        let a: Arc<str> = Arc::from("a");
        for n in 0..(MAX_WAITING_PATCHES + 5) {
            assert_eq!(outbox.push(&a, next(&format!("e{n}"), Kind::Event)), Pushed::Queued);
        }
        let bytes = outbox.lock().bytes;
        assert_eq!(outbox.lock().items.len(), MAX_WAITING_PATCHES + 5, "none replaced, none refused");
        // Room for more only once the writer took them.
        let waiter = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.room(0).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "{bytes} bytes wait: no room yet");
        assert_eq!(outbox.take().len(), MAX_WAITING_PATCHES + 5);
        waiter.await.unwrap();
        outbox.room(0).await;
        outbox.push(&a, next("x", Kind::Event));
        let waiter = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.room(0).await })
        };
        outbox.close();
        waiter.await.unwrap();
    }

    #[test]
    fn more_bytes_waiting_than_the_cap_close_the_outbox_and_free_them() {
        let outbox = Outbox::with_cap(10);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert_eq!(outbox.push(&a, next("123456", Kind::Full)), Pushed::Queued);
        // A newer result replaces the older one's bytes: still 6 waiting.
        assert_eq!(outbox.push(&a, next("abcdef", Kind::Full)), Pushed::Queued);
        assert_eq!(outbox.push(&b, next("1234", Kind::Reset)), Pushed::Queued);
        assert!(!outbox.overflow.is_cancelled());
        outbox.forget("b");
        assert_eq!(outbox.push(&b, next("wxyz", Kind::Reset)), Pushed::Queued);
        // Taken, the bytes no longer count.
        assert_eq!(waiting(&outbox), ["a:abcdef", "b:wxyz"]);
        assert_eq!(outbox.push(&a, next("0123456789", Kind::Full)), Pushed::Queued);
        assert_eq!(outbox.push(&b, next("!", Kind::Patch)), Pushed::Closed);
        assert!(outbox.overflow.is_cancelled());
        assert!(outbox.take().is_empty(), "what waited is dropped");
        assert_eq!(outbox.push(&a, next("late", Kind::Full)), Pushed::Closed);
    }

    #[tokio::test]
    async fn a_paced_subscription_sends_at_once_then_its_newest_result_once_the_interval_has_passed() {
        let outbox = Outbox::new();
        let (paced, other): (Arc<str>, Arc<str>) = (Arc::from("paced"), Arc::from("other"));
        outbox.pace(&paced, Some(Duration::from_secs(3600)));
        // The first result goes at once: none went in the last interval.
        outbox.push(&paced, next("1", Kind::Full));
        outbox.ready().await;
        assert_eq!(waiting(&outbox), ["paced:1"]);
        // Within the interval results wait, the newest standing for the others; another
        // subscription's results do not wait for them.
        outbox.push(&paced, next("2", Kind::Full));
        outbox.push(&paced, next("3", Kind::Full));
        outbox.push(&other, next("x", Kind::Full));
        outbox.ready().await;
        assert_eq!(waiting(&outbox), ["other:x"]);
        assert_eq!(outbox.lock().bytes, 1, "the held result's bytes still count");
        // Its end does not wait, and does not overtake the held result.
        outbox.push(&paced, Delivery::Complete);
        outbox.ready().await;
        assert_eq!(waiting(&outbox), ["paced:3", "paced:complete"]);

        // A short interval: the held result goes once it has passed, not before.
        let quick: Arc<str> = Arc::from("quick");
        let every = Duration::from_millis(50);
        outbox.pace(&quick, Some(every));
        outbox.push(&quick, next("1", Kind::Full));
        outbox.ready().await;
        let sent = Instant::now();
        assert_eq!(waiting(&outbox), ["quick:1"]);
        outbox.push(&quick, next("2", Kind::Full));
        outbox.ready().await;
        assert!(sent.elapsed() >= every, "ready after {:?}", sent.elapsed());
        assert_eq!(waiting(&outbox), ["quick:2"]);

        // Unpaced again (or forgotten), results go at once.
        outbox.pace(&quick, None);
        outbox.push(&quick, next("3", Kind::Full));
        assert_eq!(waiting(&outbox), ["quick:3"]);
        outbox.pace(&quick, Some(Duration::from_secs(3600)));
        outbox.forget(&quick);
        outbox.push(&quick, next("4", Kind::Full));
        assert_eq!(waiting(&outbox), ["quick:4"]);
    }
}

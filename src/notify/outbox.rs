//! The outbox's sender: one lane per contact point, each sending its contact point's
//! notifications in the order they were written, so a slow or failing channel holds back only
//! itself (never another channel, never the apply path) and drains its backlog in order once
//! it recovers.
//!
//! A send is marked `sending` (committed) before it starts and `sent`, `pending` (retry at a
//! time) or `dead` after. Temporary failures (429, 408, 5xx, timeouts, refused connections)
//! wait with exponential backoff and jitter, or the channel's `Retry-After`; after
//! `max_attempts` the notification is dead-lettered with its last error. Notifications of one
//! group (a route's `groupBy`) go out as one message and share its fate.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::contact::{Channel, ChannelKind, ContactPointId};
use super::message::Content;
use super::secret::SecretBox;
use super::send::{Outcome, send};
use crate::store::notifications::ContactPointRow;
use crate::store::{Store, StoreError};

/// Counters per channel kind, for `/metrics`.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    pub sent: AtomicU64,
    /// Attempts that failed, temporarily or for good.
    pub failed: AtomicU64,
    /// Attempts scheduled again after a temporary failure.
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    /// Sends started again because a restart found them in flight.
    pub repeated: AtomicU64,
}

#[derive(Debug, Default)]
pub struct NotifyStats {
    channels: [ChannelCounters; 4],
    /// Notifications still to send, and the age of the oldest (µs), as last sampled.
    pub depth: AtomicI64,
    pub oldest_age_micros: AtomicI64,
}

impl NotifyStats {
    pub fn channel(&self, kind: ChannelKind) -> &ChannelCounters {
        &self.channels[ChannelKind::ALL.iter().position(|k| *k == kind).expect("every kind is listed")]
    }
}

/// How the lanes send.
#[derive(Clone)]
pub struct Delivery {
    pub store: Store,
    pub secrets: Option<SecretBox>,
    pub client: super::send::Senders,
    /// How long one send may take (the HTTP client has it too).
    pub timeout: Duration,
    pub max_attempts: u32,
    /// The first retry's wait; each next one doubles it, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub stats: Arc<NotifyStats>,
    /// Whether this instance sends, and the epoch its claims of a send carry in a cluster.
    pub duty: watch::Receiver<crate::announce::Duty>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("max_attempts", &self.max_attempts).finish_non_exhaustive()
    }
}

impl Delivery {
    /// The contact point's channel with its secrets opened.
    pub fn channel(&self, row: &ContactPointRow) -> Result<Channel, String> {
        let secrets = match (&row.secret, &self.secrets) {
            (None, _) => serde_json::Value::Null,
            (Some(_), None) => return Err(super::secret::SecretError::NoKey.to_string()),
            (Some(sealed), Some(key)) => {
                let plain = key.open(sealed).map_err(|e| e.to_string())?;
                serde_json::from_slice(&plain).map_err(|e| format!("stored secrets: {e}"))?
            }
        };
        Channel::from_parts(row.kind, &row.settings, &secrets).map_err(|e| e.to_string())
    }
}

/// Starts the lanes: first puts sends a crash left in flight back in line (counted), then
/// keeps one lane per contact point, woken by `wake` when notifications are written.
pub fn start(
    delivery: Delivery,
    wake: watch::Receiver<u64>,
    mut sending: watch::Receiver<crate::announce::Duty>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // A follower's outbox is the leader's to send: what is "in flight" is in flight there.
        tokio::select! {
            ok = sending.wait_for(|s| s.leads()) => if ok.is_err() { return },
            _ = cancel.cancelled() => return,
        }
        loop {
            match delivery.store.requeue_in_flight().await {
                Ok(repeated) => {
                    for (kind, n) in repeated {
                        delivery.stats.channel(kind).repeated.fetch_add(n as u64, Relaxed);
                        tracing::warn!(
                            channel = kind.name(),
                            count = n,
                            "notifications in flight at the last stop are sent again"
                        );
                    }
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the notification outbox; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = cancel.cancelled() => return,
                    }
                }
            }
        }
        let mut lanes: HashMap<ContactPointId, JoinHandle<()>> = HashMap::new();
        let mut wake_lanes = wake.clone();
        loop {
            lanes.retain(|_, lane| !lane.is_finished());
            match delivery.store.contact_points().await {
                Ok(points) => {
                    for point in points {
                        lanes.entry(point.id).or_insert_with(|| {
                            tokio::spawn(lane(delivery.clone(), point.id, wake.clone(), cancel.clone()))
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list contact points"),
            }
            if let Ok((depth, age)) = delivery.store.outbox_depth().await {
                delivery.stats.depth.store(depth, Relaxed);
                delivery.stats.oldest_age_micros.store(age, Relaxed);
            }
            tokio::select! {
                _ = wake_lanes.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = cancel.cancelled() => break,
            }
        }
        for (_, lane) in lanes {
            let _ = lane.await;
        }
    })
}

/// Sends one contact point's notifications in order until the contact point is deleted or
/// the server stops.
async fn lane(delivery: Delivery, id: ContactPointId, mut wake: watch::Receiver<u64>, cancel: CancellationToken) {
    loop {
        // Seen before the outbox is read: a notification written after this wakes the lane.
        wake.borrow_and_update();
        let wait = match step(&delivery, id).await {
            Ok(Step::Sent) => continue,
            Ok(Step::Idle) => None,
            Ok(Step::Until(at)) => Some(Duration::from_micros((at - now()).max(0) as u64)),
            Ok(Step::Gone) => return,
            Err(e @ StoreError::Fenced { .. }) => {
                tracing::error!(contact_point = id.0, error = %e, "notifications not sent: another instance leads the cluster now");
                return;
            }
            Err(e) => {
                tracing::warn!(contact_point = id.0, error = %e, "cannot read the notification outbox");
                Some(Duration::from_secs(1))
            }
        };
        tokio::select! {
            _ = wake.changed() => {}
            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(30))) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

enum Step {
    Sent,
    Idle,
    Until(i64),
    Gone,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Most notifications one grouped message carries; the rest of the group goes in the next.
const MOST_IN_A_GROUP: i64 = 100;

async fn step(delivery: &Delivery, id: ContactPointId) -> Result<Step, StoreError> {
    let Some(point) = delivery.store.contact_point(id).await? else { return Ok(Step::Gone) };
    let Some(n) = delivery.store.next_notification(id).await? else { return Ok(Step::Idle) };
    if n.next_attempt_at > now() {
        return Ok(Step::Until(n.next_attempt_at));
    }
    // A grouped notification takes every other one of its group still waiting along.
    let batch = match &n.group {
        Some(group) => delivery.store.group_members(id, group, MOST_IN_A_GROUP).await?,
        None => vec![n],
    };
    let ids: Vec<i64> = batch.iter().map(|n| n.id).collect();
    let counters = delivery.stats.channel(point.kind);
    let channel = match delivery.channel(&point) {
        Ok(channel) => channel,
        Err(e) => {
            // The configuration, not the channel: wait for it to be mended, lose nothing.
            tracing::error!(contact_point = id.0, error = %e, "cannot open a contact point's settings");
            delivery.store.mark_retry(&ids, &e, now() + 60_000_000).await?;
            return Ok(Step::Sent);
        }
    };
    // Claimed under this leader's epoch: a leader that a newer one replaced sends nothing.
    let fence = delivery.duty.borrow().fence().cloned();
    delivery.store.mark_sending(&ids, fence.as_ref()).await?;
    let first = &batch[0];
    // A member that joined the group since the last attempt has been sent to nobody.
    let before = batch.iter().map(|n| n.delivered_to.max(0) as usize).min().unwrap_or(0);
    let mut delivered_to = before;
    let (client, timeout) = (&delivery.client, delivery.timeout);
    let outcome = if batch.len() == 1 {
        send(client, &channel, &first.content, &[], &first.idempotency_key, timeout, &mut delivered_to).await
    } else {
        let members: Vec<Content> = batch.iter().map(|n| n.content.clone()).collect();
        let content = Content::group(&members);
        send(client, &channel, &content, &members, &first.idempotency_key, timeout, &mut delivered_to).await
    };
    if delivered_to != before && outcome != Outcome::Sent {
        delivery.store.mark_delivered_to(&ids, delivered_to as i32).await?;
    }
    settle(delivery, &ids, first.attempts as u32 + 1, counters, outcome).await?;
    Ok(Step::Sent)
}

/// Records how a send went for every notification it carried.
async fn settle(
    delivery: &Delivery,
    ids: &[i64],
    attempts: u32,
    counters: &ChannelCounters,
    outcome: Outcome,
) -> Result<(), StoreError> {
    match outcome {
        Outcome::Sent => {
            delivery.store.mark_sent(ids).await?;
            counters.sent.fetch_add(1, Relaxed);
        }
        Outcome::Temporary { error, retry_after } if attempts < delivery.max_attempts => {
            counters.failed.fetch_add(1, Relaxed);
            counters.retried.fetch_add(1, Relaxed);
            let wait = retry_after.unwrap_or_else(|| backoff(delivery, attempts)).min(Duration::from_secs(3600));
            tracing::info!(notifications = ?ids, attempts, error = %error, wait_ms = wait.as_millis() as u64, "notification failed; retrying");
            delivery.store.mark_retry(ids, &error, now() + wait.as_micros() as i64).await?;
        }
        Outcome::Temporary { error, .. } | Outcome::Permanent { error } => {
            counters.failed.fetch_add(1, Relaxed);
            counters.dead.fetch_add(1, Relaxed);
            tracing::warn!(notifications = ?ids, attempts, error = %error, "notification given up");
            delivery.store.mark_dead(ids, &error).await?;
        }
    }
    Ok(())
}

/// Exponential backoff with ±20 % jitter, so lanes that failed together do not retry together.
fn backoff(delivery: &Delivery, attempts: u32) -> Duration {
    let base = delivery.backoff.saturating_mul(1 << attempts.saturating_sub(1).min(16)).min(delivery.max_backoff);
    base.mul_f64(0.8 + rand::random::<f64>() * 0.4)
}

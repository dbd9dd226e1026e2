//! Notifications: alert transitions that reach people outside the app, through a durable
//! outbox.
//!
//! ```text
//!  alert runtime ── transitions ─► route (policy, silences) ─► Outgoing
//!      ─► alert writer: transitions + outbox rows in one database transaction
//!      ─► lanes (one per contact point) ─► webhook / Slack / Twilio / email
//! ```
//!
//! - [`contact`]: contact points and their checks; [`secret`]: their secrets at rest;
//! - [`route`]: the routing policy; [`mute`]: its mute timings;
//! - [`notice`]: which notifications transitions cause, and which reminders are due;
//! - [`message`]: what a notification says per channel;
//! - [`send`]: one send (HTTP, or SMTP through lettre) and what its answer means;
//! - [`outbox`]: the lanes that send in order;
//! - [`ack`]: the signed links that acknowledge an alert from its message.
//!
//! Nothing here is on the apply path: routing is a lookup in the alert runtime, the outbox rows
//! ride on the alert writer's transaction, and sending happens in lanes of their own.

pub mod ack;
pub mod contact;
pub mod message;
pub mod mute;
pub mod notice;
pub mod outbox;
pub mod route;
pub mod secret;
pub mod send;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::announce::{Announcement, Announcer};
use crate::config::NotificationsConfig;
use crate::store::notifications::Outgoing;
use crate::store::{Store, StoreError};
use ack::{AckKey, AckTicket};
use contact::ContactPointId;
use message::{Content, NoticeKind};
pub use notice::{RuleFacts, notices, reminders};
use outbox::{Delivery, NotifyStats};
use route::Policy;
use secret::{SecretBox, SecretError};

/// The routing in force, read by the alert runtime on each transition.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    pub policy: Policy,
    pub public_url: Option<Url>,
    /// Signs the acknowledgement links of firing messages (with `public_url`).
    pub ack: Option<AckKey>,
}

impl Routing {
    /// The confirmation page that acknowledges this firing (`since`) of an instance, for a
    /// message to `contact_point`.
    fn ack_link(&self, rule: i64, instance: &str, since: i64, contact_point: ContactPointId) -> Option<String> {
        let ticket = AckTicket { rule, instance: instance.to_string(), since, contact_point };
        self.ack.as_ref()?.link(self.public_url.as_ref()?, &ticket)
    }
}

/// What the alert runtime holds to route transitions and wake the senders.
#[derive(Clone, Debug)]
pub struct NotifyLink {
    pub routing: watch::Receiver<Arc<Routing>>,
    wake: Arc<watch::Sender<u64>>,
}

impl NotifyLink {
    /// New rows are in the outbox: the lanes look.
    pub fn wake(&self) {
        wake(&self.wake);
    }
}

/// The policy stored in the app database; the default (route nothing) when none was set or
/// the stored one does not parse.
async fn stored_policy(store: &Store) -> Result<Policy, StoreError> {
    Ok(match store.notification_policy().await? {
        Some(routes) => serde_json::from_value(routes).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the stored notification policy does not parse; nothing is routed until it is set again");
            Policy::default()
        }),
        None => Policy::default(),
    })
}

/// Tells the lanes that the outbox has new rows (they read it again).
fn wake(lanes: &watch::Sender<u64>) {
    lanes.send_modify(|n| *n = n.wrapping_add(1));
}

pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The notification service: routing for the alert runtime, the lanes that send, and what
/// GraphQL needs to manage contact points and the policy.
#[derive(Clone, Debug)]
pub struct Notifier {
    pub delivery: Delivery,
    routing: Arc<watch::Sender<Arc<Routing>>>,
    wake: Arc<watch::Sender<u64>>,
    /// Tells the cluster's other instances of a policy or contact point changed here.
    announcer: Announcer,
}

impl Notifier {
    /// Reads the stored policy and starts the lanes once `sending` is true (at once for a lone
    /// instance; in a cluster, when this instance leads: one sender for the cluster).
    pub async fn start(
        store: Store,
        config: &NotificationsConfig,
        sending: watch::Receiver<crate::announce::Duty>,
        cancel: CancellationToken,
    ) -> Result<Notifier, NotifyError> {
        let secrets = config.secret_key.as_deref().map(SecretBox::from_base64).transpose()?;
        let ack = config.secret_key.as_deref().map(secret::key_bytes).transpose()?.map(|k| AckKey::derive(&k));
        let policy = stored_policy(&store).await?;
        let routing =
            Arc::new(watch::Sender::new(Arc::new(Routing { policy, public_url: config.public_url.clone(), ack })));
        let (wake, wake_rx) = watch::channel(0u64);
        let timeout = Duration::from_secs_f64(config.timeout_seconds.max(0.1));
        let delivery = Delivery {
            store,
            secrets,
            client: send::client(timeout),
            timeout,
            max_attempts: config.max_attempts.max(1),
            backoff: Duration::from_secs_f64(config.retry_backoff_seconds.max(0.01)),
            max_backoff: Duration::from_secs_f64(config.max_backoff_seconds.max(0.01)),
            stats: Arc::new(NotifyStats::default()),
            duty: sending.clone(),
        };
        outbox::start(delivery.clone(), wake_rx, sending, cancel);
        Ok(Notifier { delivery, routing, wake: Arc::new(wake), announcer: Announcer::default() })
    }

    /// Writes reminders as they come due, following the alert board; stops with `cancel`.
    pub fn start_reminders(
        &self,
        mut board: watch::Receiver<Arc<crate::alert::AlertBoard>>,
        cancel: CancellationToken,
    ) {
        let (store, routing, lanes) = (self.delivery.store.clone(), self.routing.subscribe(), self.wake.clone());
        tokio::spawn(async move {
            // What was written already, so a reminder is written once, not on every tick. Only
            // reminders due now are kept: each is due until the next one of its alert replaces
            // it, or the alert stops firing, and is never due again after that.
            let mut written: std::collections::HashSet<String> = std::collections::HashSet::new();
            loop {
                let now = chrono::Utc::now().timestamp_micros();
                let due = {
                    let routing = routing.borrow().clone();
                    let board = board.borrow_and_update().clone();
                    reminders(&routing, &board, now)
                };
                let due: Vec<(String, Outgoing)> = due.into_iter().map(|o| (o.idempotency_key(), o)).collect();
                let due_keys: std::collections::HashSet<&str> = due.iter().map(|(k, _)| k.as_str()).collect();
                written.retain(|k| due_keys.contains(k.as_str()));
                let (keys, fresh): (Vec<String>, Vec<Outgoing>) =
                    due.into_iter().filter(|(k, _)| !written.contains(k)).unzip();
                if !fresh.is_empty() {
                    match store.enqueue_all(&fresh).await {
                        Ok(()) => {
                            written.extend(keys);
                            self::wake(&lanes);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot write reminders; trying again"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = cancel.cancelled() => return,
                }
            }
        });
    }

    pub fn link(&self) -> NotifyLink {
        NotifyLink { routing: self.routing.subscribe(), wake: self.wake.clone() }
    }

    /// Signs acknowledgement links (when `secret_key` is set).
    pub fn ack_key(&self) -> Option<AckKey> {
        self.routing.borrow().ack.clone()
    }

    pub fn policy(&self) -> Policy {
        self.routing.borrow().policy.clone()
    }

    /// The same notifier, telling `announcer` of every policy and contact point changed here.
    pub fn announcing(self, announcer: Announcer) -> Notifier {
        Notifier { announcer, ..self }
    }

    /// The same notifier, telling nobody: for changes another instance made and announced.
    pub fn quiet(&self) -> Notifier {
        Notifier { announcer: Announcer::default(), ..self.clone() }
    }

    /// A policy just stored is in force for the next transition.
    pub fn set_policy(&self, policy: Policy) {
        self.routing.send_modify(|r| *r = Arc::new(Routing { policy, ..Routing::clone(r) }));
        self.announcer.announce(Announcement::NotificationPolicy);
    }

    /// Reads the stored policy again (another instance replaced it).
    pub async fn reload_policy(&self) -> Result<(), StoreError> {
        let policy = stored_policy(&self.delivery.store).await?;
        self.routing.send_modify(|r| *r = Arc::new(Routing { policy, ..Routing::clone(r) }));
        Ok(())
    }

    /// A contact point was added or changed: its lane starts (on the instance that sends).
    pub fn wake(&self) {
        wake(&self.wake);
        self.announcer.announce(Announcement::ContactPoints);
    }

    pub fn stats(&self) -> Arc<NotifyStats> {
        self.delivery.stats.clone()
    }

    /// Seals a contact point's secrets for storage.
    pub fn seal(&self, secrets: &serde_json::Value) -> Result<Vec<u8>, SecretError> {
        let key = self.delivery.secrets.as_ref().ok_or(SecretError::NoKey)?;
        Ok(key.seal(secrets.to_string().as_bytes()))
    }

    /// Sends a test message to a contact point now and says how it went (not queued: the
    /// answer is the point).
    pub async fn test(&self, id: ContactPointId, by: Option<&str>) -> Result<Option<send::Outcome>, StoreError> {
        let Some(point) = self.delivery.store.contact_point(id).await? else { return Ok(None) };
        let channel = match self.delivery.channel(&point) {
            Ok(c) => c,
            Err(error) => return Ok(Some(send::Outcome::Permanent { error })),
        };
        let now = chrono::Utc::now().timestamp_micros();
        let content = Content {
            kind: NoticeKind::Test,
            rule_id: None,
            rule: format!("Test of contact point {}", point.name),
            severity: "info".into(),
            instance: String::new(),
            labels: BTreeMap::new(),
            summary: format!("A test message from opslive{}", by.map(|b| format!(", sent by {b}")).unwrap_or_default()),
            value: None,
            source: None,
            position: None,
            commit_ts: None,
            at: rfc3339(now),
            link: self.routing.borrow().public_url.as_ref().map(|u| u.to_string()),
            reminder: None,
            ack_link: None,
        };
        let key = format!("test-{}-{now}", id.0);
        let outcome =
            send::send(&self.delivery.client, &channel, &content, &[], &key, self.delivery.timeout, &mut 0).await;
        let counters = self.delivery.stats.channel(point.kind);
        match &outcome {
            send::Outcome::Sent => counters.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            _ => counters.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        Ok(Some(outcome))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

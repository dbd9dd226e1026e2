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
//! - [`route`]: the routing policy; [`message`]: what a notification says per channel;
//! - [`send`]: one send (HTTP, or SMTP through lettre) and what its answer means;
//! - [`outbox`]: the lanes that send in order.
//!
//! Nothing here is on the apply path: routing is a lookup in the alert runtime, the outbox rows
//! ride on the alert writer's transaction, and sending happens in lanes of their own.

pub mod contact;
pub mod message;
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

use crate::alert::engine::{AlertState, Cause, Transition};
use crate::alert::silence::{self, Silence};
use crate::config::NotificationsConfig;
use crate::store::notifications::Outgoing;
use crate::store::{Store, StoreError};
use contact::ContactPointId;
use message::{Content, NoticeKind};
use outbox::{Delivery, NotifyStats};
use route::Policy;
use secret::{SecretBox, SecretError};

/// The routing in force, read by the alert runtime on each transition.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    pub policy: Policy,
    pub public_url: Option<Url>,
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
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A rule's name and severity, as a notification names them.
pub struct RuleFacts<'a> {
    pub name: &'a str,
    /// `info`, `warning`, `critical`.
    pub severity: String,
}

/// The notifications these transitions cause: a transition into Firing, and one out of Firing
/// (resolved), each to every contact point the policy routes its labels to; one a silence
/// covers is kept, marked silenced.
pub fn notices<'a>(
    routing: &Routing,
    transitions: &[Transition],
    rule: impl Fn(crate::alert::RuleId) -> Option<RuleFacts<'a>>,
    silences: &[Silence],
    now: i64,
) -> Vec<Outgoing> {
    let mut out = Vec::new();
    if routing.policy.routes.is_empty() {
        return out;
    }
    for t in transitions {
        let kind = match (t.from, t.to) {
            (AlertState::Firing, AlertState::Firing) => continue,
            (_, AlertState::Firing) => NoticeKind::Firing,
            (AlertState::Firing, _) => NoticeKind::Resolved,
            _ => continue,
        };
        let Some(facts) = rule(t.rule) else { continue };
        let mut labels: BTreeMap<String, String> = t.labels.clone();
        labels.entry("alertname".into()).or_insert_with(|| facts.name.to_string());
        labels.entry("severity".into()).or_insert_with(|| facts.severity.clone());
        let targets = routing.policy.targets(&labels);
        if targets.is_empty() {
            continue;
        }
        let silenced = silence::silenced(silences, &t.labels, now);
        let (source, position, commit_ts) = match &t.cause {
            Cause::Transaction { source, position, commit_ts } => {
                (Some(source.to_string()), Some(position.to_string()), Some(rfc3339(*commit_ts)))
            }
            Cause::Due { .. } => (None, None, None),
        };
        let link = routing.public_url.as_ref().and_then(|base| {
            let mut url = base.join("alerts/").ok()?;
            url.query_pairs_mut().append_pair("rule", &t.rule.0.to_string()).append_pair("instance", &t.instance);
            Some(url.to_string())
        });
        let content = Content {
            kind,
            rule_id: Some(t.rule.0),
            rule: facts.name.to_string(),
            severity: facts.severity.clone(),
            instance: t.instance.clone(),
            labels: t.labels.clone(),
            summary: t.summary.clone(),
            value: t.value.clone(),
            source,
            position,
            commit_ts,
            at: rfc3339(t.cause.at()),
            link,
        };
        for target in targets {
            // Firing and resolved messages are never grouped together.
            let group = target.group.map(|g| format!("{}|{g}", kind.name()));
            out.push(Outgoing {
                contact_point: target.contact_point,
                rule: Some(t.rule.0),
                instance: t.instance.clone(),
                cause: t.cause.key(),
                content: content.clone(),
                silenced,
                not_before: if group.is_some() { now + target.wait } else { 0 },
                group,
            });
        }
    }
    out
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
}

impl Notifier {
    /// Reads the stored policy and starts the lanes.
    pub async fn start(
        store: Store,
        config: &NotificationsConfig,
        cancel: CancellationToken,
    ) -> Result<Notifier, NotifyError> {
        let secrets = config.secret_key.as_deref().map(SecretBox::from_base64).transpose()?;
        let policy = match store.notification_policy().await? {
            Some(routes) => serde_json::from_value(routes).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the stored notification policy does not parse; nothing is routed until it is set again");
                Policy::default()
            }),
            None => Policy::default(),
        };
        let routing = Arc::new(watch::Sender::new(Arc::new(Routing { policy, public_url: config.public_url.clone() })));
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
        };
        outbox::start(delivery.clone(), wake_rx, cancel);
        Ok(Notifier { delivery, routing, wake: Arc::new(wake) })
    }

    pub fn link(&self) -> NotifyLink {
        NotifyLink { routing: self.routing.subscribe(), wake: self.wake.clone() }
    }

    pub fn policy(&self) -> Policy {
        self.routing.borrow().policy.clone()
    }

    /// A policy just stored is in force for the next transition.
    pub fn set_policy(&self, policy: Policy) {
        self.routing.send_modify(|r| *r = Arc::new(Routing { policy, public_url: r.public_url.clone() }));
    }

    /// A contact point was added: its lane starts.
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
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
        };
        let key = format!("test-{}-{now}", id.0);
        let outcome = send::send(&self.delivery.client, &channel, &content, &[], &key, self.delivery.timeout).await;
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

//! Cluster-wide state: every instance's announcements ([`crate::announce`]) reach every other
//! through one Redis Stream, `opslive:<name>:state`.
//!
//! ```text
//!  instance A: GraphQL ─► KPI / alert hub, notifier ─► Announcer ─► XADD state
//!  instance B: XREAD state ─► read the record again from the app database ─► its quiet hubs
//! ```
//!
//! A Stream and not Pub/Sub: an instance that loses Redis for a moment reads on from the last
//! entry it saw once Redis is back, so no acknowledgement or definition made meanwhile is
//! missed; and a starting instance reads from the entry that was last before it read the app
//! database, so a change made while it was loading reaches it too. An announcement names what
//! to read again, so hearing one twice does no harm — except the leader's alert results, which
//! carry the instances it changed (the app database records transitions, not every move of a
//! firing instance's value). The stream keeps the last
//! [`MAX_LEN`] entries; an instance that was away longer than that reads every definition,
//! rule, silence, revocation, the policy and the recorded alert state again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::StreamReadOptions;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::bus::StreamConnection;
use crate::alert::AlertHub;
use crate::alert::engine::Ack;
use crate::alert::rule::RuleId;
use crate::alert::runtime::AlertResults;
use crate::announce::Announcement;
use crate::api::graphql::revocations::RevocationService;
use crate::change::SourceName;
use crate::kpi::KpiHub;
use crate::notify::Notifier;
use crate::registry::Registry;
use crate::source::ResyncRequests;
use crate::store::{Store, StoreError};

/// Entries the stream keeps (approximately): announcements are rare (people make them).
pub const MAX_LEN: usize = 10_000;

/// The id of the stream's last entry, `0-0` when it has none: a starting instance reads what
/// comes after it, taken before it reads the app database.
pub async fn last_id(redis: &mut ConnectionManager, key: &str) -> redis::RedisResult<String> {
    Ok(super::bus::last_entry(redis, key).await?.map(|e| e.id).unwrap_or_else(|| "0-0".into()))
}

/// Writes this instance's announcements to the stream, in order; one that cannot be written
/// is tried again until it is (or the instance stops).
pub async fn publish(
    mut redis: ConnectionManager,
    key: String,
    instance: String,
    mut announcements: mpsc::UnboundedReceiver<Announcement>,
    cancel: CancellationToken,
) {
    loop {
        let announcement = tokio::select! {
            Some(a) = announcements.recv() => a,
            _ = cancel.cancelled() => return,
            else => return,
        };
        let body = serde_json::to_string(&announcement).expect("an announcement serialises");
        loop {
            let written: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(MAX_LEN)
                .arg("*")
                .arg("from")
                .arg(&instance)
                .arg("change")
                .arg(&body)
                .query_async(&mut redis)
                .await;
            match written {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell the cluster of a change made here; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = cancel.cancelled() => return,
                    }
                }
            }
        }
    }
}

/// What an announcement changes on this instance.
pub struct Targets {
    pub store: Store,
    /// Quiet: what they hear is not announced again.
    pub kpis: KpiHub,
    pub alerts: AlertHub,
    pub notifier: Notifier,
    pub revocations: RevocationService,
    pub registry: Arc<Registry>,
    pub resync: HashMap<SourceName, Arc<ResyncRequests>>,
    /// Whether this instance reads the sources (only the leader acts on a resync).
    pub duty: watch::Receiver<crate::announce::Duty>,
}

/// Reads the other instances' announcements from `from` on and applies each, until the
/// instance stops. Redis going away is waited out; the bus's readers report it.
pub async fn follow(
    client: redis::Client,
    key: String,
    instance: String,
    mut from: String,
    targets: Targets,
    cancel: CancellationToken,
) {
    let mut con = StreamConnection::new(client);
    // Checked when (re)connected: the entries after `from` may have been trimmed meanwhile.
    let mut check_trimmed = false;
    loop {
        if check_trimmed {
            let trimmed = tokio::select! {
                t = async { trimmed_past(con.get().await?, &key, &from).await } => t,
                _ = cancel.cancelled() => return,
            };
            match trimmed {
                Ok(true) => {
                    tracing::warn!(
                        "this instance was away longer than the cluster's change stream reaches: reading every KPI, rule, silence, revocation, the policy and the alert state again"
                    );
                    if let Err(e) = targets.reload_all().await {
                        tracing::warn!(error = %e, "cannot read the cluster's state again; it is read at the next change");
                    }
                }
                Ok(false) => {}
                Err(_) => {
                    con.failed().await;
                    continue;
                }
            }
            check_trimmed = false;
        }
        let options = StreamReadOptions::default().count(100).block(1000);
        let read = tokio::select! {
            read = con.read(&key, &from, &options) => read,
            _ = cancel.cancelled() => return,
        };
        let reply = match read {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(error = %e, "lost Redis while reading the cluster's changes; reconnecting");
                check_trimmed = true;
                con.failed().await;
                continue;
            }
        };
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            from = entry.id.clone();
            if entry.get::<String>("from").as_deref() == Some(instance.as_str()) {
                continue;
            }
            let parsed = entry.get::<String>("change").map(|body| serde_json::from_str::<Announcement>(&body));
            match parsed {
                Some(Ok(announcement)) => {
                    if let Err(e) = targets.apply(&announcement).await {
                        tracing::warn!(error = %e, change = ?announcement, "cannot apply a change another instance made; reading everything again");
                        if let Err(e) = targets.reload_all().await {
                            tracing::warn!(error = %e, "cannot read the cluster's state again; it is read at the next change");
                        }
                    }
                }
                // From a newer version of opslive, or damaged: nothing here can use it.
                _ => {
                    tracing::warn!(entry = %entry.id, "ignored a change in the cluster's stream that this version cannot read")
                }
            }
        }
    }
}

/// Whether entries after `from` were trimmed from the stream: Redis keeps the id of the last
/// entry it deleted (7.0 and later).
async fn trimmed_past(con: &mut redis::aio::MultiplexedConnection, key: &str, from: &str) -> redis::RedisResult<bool> {
    let exists: bool = redis::cmd("EXISTS").arg(key).query_async(con).await?;
    if !exists {
        return Ok(false);
    }
    let info: HashMap<String, redis::Value> = redis::cmd("XINFO").arg("STREAM").arg(key).query_async(con).await?;
    let deleted = match info.get("max-deleted-entry-id") {
        Some(v) => redis::from_redis_value_ref::<String>(v).unwrap_or_default(),
        None => return Ok(false),
    };
    Ok(stream_id(&deleted) > stream_id(from))
}

fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl Targets {
    async fn apply(&self, announcement: &Announcement) -> Result<(), StoreError> {
        match announcement {
            Announcement::Kpi { .. } => self.reload_kpis().await,
            Announcement::AlertRule { .. } => self.reload_rules().await,
            Announcement::Silences => {
                self.alerts.set_silences(self.store.load_silences().await?).await;
                Ok(())
            }
            Announcement::Acknowledged { rule, instance, by, at, note } => {
                let ack = Ack { by: by.clone(), at: *at, note: note.clone() };
                // An instance that resolved meanwhile has nothing to acknowledge.
                let _ = self.alerts.acknowledge(RuleId(*rule), instance.clone(), ack).await;
                Ok(())
            }
            Announcement::NotificationPolicy => self.notifier.reload_policy().await,
            Announcement::Revocations => self.revocations.load().await.map(|_| ()),
            Announcement::ContactPoints => {
                self.notifier.wake();
                Ok(())
            }
            Announcement::AlertResults { epoch, results } => {
                match serde_json::from_value::<AlertResults>(results.clone()) {
                    Ok(results) => self.alerts.mirror(*epoch, results),
                    Err(e) => tracing::warn!(error = %e, "ignored alert results this version cannot read"),
                }
                Ok(())
            }
            Announcement::Resync { table, reason } => {
                if self.duty.borrow().leads() {
                    match self.registry.by_name(table).and_then(|spec| Some((self.resync.get(&spec.source)?, spec))) {
                        Some((requests, spec)) => {
                            tracing::info!(table = %spec, "resync requested through another instance");
                            requests.request(spec.id, reason.clone());
                        }
                        None => {
                            tracing::warn!(table = %table, "another instance asked to resync a table this one does not read")
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Brings the KPI runtime to the stored definitions: defines what is new or changed,
    /// removes what was deleted (the built-in KPIs are the sources', not stored).
    async fn reload_kpis(&self) -> Result<(), StoreError> {
        let stored = self.store.load_kpis().await?;
        let board = self.kpis.current();
        let ids: HashSet<_> = stored.iter().map(|r| r.id).collect();
        for record in stored {
            if board.kpis.get(&record.id).is_none_or(|e| *e.record != record) {
                let id = record.id;
                if let Err(e) = self.kpis.define(record).await {
                    tracing::info!(kpi = id.0, error = %e, "a KPI defined on another instance does not bind here yet");
                }
            }
        }
        for (id, entry) in &board.kpis {
            if entry.record.builtin.is_none() && !ids.contains(id) {
                self.kpis.remove(*id);
            }
        }
        Ok(())
    }

    /// Brings the alert runtime to the stored rules.
    async fn reload_rules(&self) -> Result<(), StoreError> {
        let stored = self.store.load_alert_rules().await?;
        let board = self.alerts.current();
        let ids: HashSet<_> = stored.iter().map(|r| r.id).collect();
        for record in stored {
            if board.rules.get(&record.id).is_none_or(|e| *e.record != record) {
                let id = record.id;
                if let Err(e) = self.alerts.set_rule(record).await {
                    tracing::info!(rule = id.0, error = %e, "an alert rule made on another instance does not bind here yet");
                }
            }
        }
        for id in board.rules.keys() {
            if !ids.contains(id) {
                self.alerts.remove_rule(*id);
            }
        }
        Ok(())
    }

    async fn reload_all(&self) -> Result<(), StoreError> {
        self.reload_kpis().await?;
        self.reload_rules().await?;
        self.alerts.set_silences(self.store.load_silences().await?).await;
        // The leader's results told meanwhile are gone with the trimmed entries.
        self.alerts.mirror_all(self.store.read_alert_state().await?);
        self.revocations.load().await?;
        self.notifier.reload_policy().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_by_time_then_sequence() {
        assert!(stream_id("1700000000000-1") > stream_id("1700000000000-0"));
        assert!(stream_id("1700000000001-0") > stream_id("1700000000000-9"));
        assert_eq!(stream_id("0-0"), Some((0, 0)));
        assert_eq!(stream_id("nonsense"), None);
    }

    #[test]
    fn announcements_have_a_stable_wire_form() {
        let a = Announcement::Acknowledged { rule: 3, instance: "".into(), by: Some("ana".into()), at: 5, note: None };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"kind":"acknowledged","rule":3,"instance":"","by":"ana","at":5,"note":null}"#);
        assert_eq!(serde_json::from_str::<Announcement>(&json).unwrap(), a);
        let r = serde_json::to_string(&Announcement::Resync { table: "orders".into(), reason: "r".into() }).unwrap();
        assert_eq!(r, r#"{"kind":"resync","table":"orders","reason":"r"}"#);
    }
}

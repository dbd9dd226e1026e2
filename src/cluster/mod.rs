//! Several opslive instances behind one CDC leader, through Redis.
//!
//! One instance holds the lease ([`lease`]) and reads the sources; it publishes every event its
//! replica applies to a Redis Stream per source ([`bus`]), fenced by its epoch, and counts the
//! bus as a durable consumer: a source is acknowledged only up to what Redis has taken. Every
//! other instance starts from the leader's replica ([`bootstrap`]), applies the same events in
//! order to its own replica and serves its own clients. When the leader dies, another instance
//! takes the lease, reads what is left of the streams, and starts the sources from its replica's
//! positions — the positions the streams reached — so its followers go on from the next entry
//! with nothing missing and nothing twice (positions are checked by every replica).
//!
//! Without a `[cluster]` section an instance reads its sources alone and needs no Redis.

pub mod bootstrap;
pub mod bus;
pub mod codec;
pub mod lease;
pub mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::auth::Secret;
use crate::change::{SourceEvent, SourceName};
use crate::registry::Registry;
use bus::{BusError, BusStats, StreamMark};
use lease::{Holder, Keys, Lease};

/// `[cluster]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// Instances with the same name form one cluster (the keys in Redis are under it).
    #[serde(default = "default_name")]
    pub name: String,
    /// This instance's name in the cluster's logs and lease; default: host name and process id.
    #[serde(default)]
    pub instance: Option<String>,
    /// Where the other instances reach this one's HTTP server (a follower fetches the leader's
    /// replica from it); default: `http://` and the `listen` address.
    #[serde(default)]
    pub advertise_url: Option<String>,
    /// Shared by the cluster's instances (at least 32 bytes): a follower shows it to fetch the
    /// leader's replica. Better given as `OPSLIVE_CLUSTER__SECRET`.
    pub secret: Secret,
    /// How long a lease lasts without renewal: a dead leader is replaced after about this long.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Entries each source's stream keeps (approximately): a follower that falls further behind
    /// than this is rebuilt from the leader.
    #[serde(default = "default_stream_max_len")]
    pub stream_max_len: u64,
    /// With Redis replicas: how many must have the bus's entries (Redis's `WAIT`) before the
    /// positions they carry count as durable and the sources are acknowledged past them.
    /// 0 (the default): the primary's own fsync (`appendfsync always`) is what durable means.
    #[serde(default)]
    pub wait_replicas: u32,
    /// How long one `WAIT` may take before it is asked again (the leader's other Redis work
    /// goes on its own connection meanwhile).
    #[serde(default = "default_wait_timeout_ms")]
    pub wait_timeout_ms: u64,
}

fn default_wait_timeout_ms() -> u64 {
    1_000
}

fn default_name() -> String {
    "opslive".into()
}

fn default_lease_ms() -> u64 {
    // A dead leader is replaced after this and up to a third more (a follower tries every
    // third of it): 3–4 s, "within seconds", without a leader losing its lease to one slow
    // Redis round trip.
    3_000
}

fn default_stream_max_len() -> u64 {
    1_000_000
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("[cluster] {0}")]
    Config(String),
    #[error("cannot reach Redis at {url}: {error}")]
    Redis { url: String, error: redis::RedisError },
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("this instance lost the lead of the cluster ({0}); it stops so that it starts again as a follower")]
    LostLead(String),
}

impl ClusterConfig {
    pub fn check(&self) -> Result<(), ClusterError> {
        if self.secret.expose().len() < 32 {
            return Err(ClusterError::Config("`secret` must be at least 32 bytes".into()));
        }
        if self.lease_ms < 500 {
            return Err(ClusterError::Config("`lease_ms` must be at least 500".into()));
        }
        if self.name.contains(char::is_whitespace) || self.name.is_empty() {
            return Err(ClusterError::Config("`name` must be a word".into()));
        }
        Ok(())
    }

    fn instance(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
            format!("{}-{}", if host.is_empty() { "opslive" } else { &host }, std::process::id())
        })
    }
}

/// This instance's membership: its lease, its connections to Redis.
#[derive(Clone)]
pub struct Cluster {
    pub config: ClusterConfig,
    pub keys: Keys,
    pub lease: Lease,
    pub client: redis::Client,
    pub redis: redis::aio::ConnectionManager,
    pub stats: Arc<BusStats>,
    /// This instance's name in the cluster.
    pub instance: String,
    /// The last entry of the announcements' stream when this instance connected: it hears
    /// every change made after that, including while it reads the app database.
    pub state_from: String,
    /// Cancelled when this instance hands the lead back at a clean stop: after its last
    /// publish and its final checkpoint, so that the next leader continues from a bus that
    /// holds everything this one applied, and this one's final acknowledgement is not refused
    /// by a slot the next leader already streams from.
    pub release: CancellationToken,
}

/// The lead of the cluster, renewed by a task of its own from the moment it was taken.
pub struct Held {
    pub epoch: u64,
    keeper: tokio::task::JoinHandle<Result<(), ClusterError>>,
}

impl Held {
    /// Returns when the lead is lost (an error) or released (see [`Cluster::release`]).
    pub async fn lost(&mut self) -> Result<(), ClusterError> {
        match (&mut self.keeper).await {
            Ok(kept) => kept,
            Err(e) => Err(ClusterError::LostLead(format!("the lease keeper failed: {e}"))),
        }
    }
}

/// How an instance starts.
pub enum Start {
    /// It took the lead: it reads the sources, from its own checkpoint.
    Leader(Held),
    /// Another instance leads: this one starts from the leader's replica and follows the bus.
    Follower { leader: Holder, fetched: Box<bootstrap::Fetched> },
}

impl Cluster {
    pub async fn connect(config: ClusterConfig, listen: SocketAddr) -> Result<Cluster, ClusterError> {
        config.check()?;
        let url = config.redis_url.clone();
        let err = |error| ClusterError::Redis { url: url.clone(), error };
        let client = redis::Client::open(config.redis_url.as_str()).map_err(err)?;
        // A publish of a batch waits for Redis's fsync under `appendfsync always`: allow for it.
        let manager = redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
        let redis = tokio::time::timeout(Duration::from_secs(10), client.get_connection_manager_with_config(manager))
            .await
            .map_err(|_| err(redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))?
            .map_err(err)?;
        let keys = Keys::new(&config.name);
        let advertise = config.advertise_url.clone().unwrap_or_else(|| format!("http://{listen}"));
        let ttl = Duration::from_millis(config.lease_ms);
        let instance = config.instance();
        let lease = Lease::new(redis.clone(), keys.clone(), instance.clone(), advertise, ttl);
        let state_from = state::last_id(&mut redis.clone(), &keys.state()).await.map_err(err)?;
        let release = CancellationToken::new();
        Ok(Cluster { config, keys, lease, client, redis, stats: Arc::default(), instance, state_from, release })
    }

    /// Takes the lead if nobody holds it; otherwise fetches the leader's replica, retrying
    /// (a leader still loading, a leader that just died) until one or the other works.
    pub async fn join(&self, registry: &Registry, cancel: &CancellationToken) -> Result<Option<Start>, ClusterError> {
        let mut delay = Duration::from_millis(200);
        loop {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let url = &self.config.redis_url;
            if let Some(us) =
                self.lease.try_acquire().await.map_err(|error| ClusterError::Redis { url: url.clone(), error })?
            {
                self.became_leader(&us);
                return Ok(Some(Start::Leader(self.hold(us))));
            }
            let holder = self.lease.holder().await.map_err(|error| ClusterError::Redis { url: url.clone(), error })?;
            if let Some(leader) = holder {
                match bootstrap::fetch(&leader.url, &self.config.secret, registry).await {
                    Ok(fetched) => {
                        tracing::info!(leader = %leader.instance, epoch = leader.epoch, rows = fetched.loaded.rows, "following the cluster's leader");
                        return Ok(Some(Start::Follower { leader, fetched: Box::new(fetched) }));
                    }
                    Err(e @ bootstrap::BootstrapError::Tables { .. }) => {
                        return Err(ClusterError::Config(e.to_string()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, leader = %leader.instance, "cannot start from the leader yet; retrying")
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return Ok(None),
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    fn became_leader(&self, us: &Holder) {
        self.stats.leader.store(true, Ordering::Relaxed);
        self.stats.epoch.store(us.epoch, Ordering::Relaxed);
        tracing::info!(instance = %us.instance, epoch = us.epoch, "this instance leads the cluster: it reads the sources");
    }

    /// The connection the bus's publisher writes on: one of its own when it waits for Redis
    /// replicas (a `WAIT` blocks its connection, and lease renewals must not queue behind it),
    /// else the shared one.
    pub async fn publishing_connection(&self) -> Result<redis::aio::ConnectionManager, ClusterError> {
        if self.config.wait_replicas == 0 {
            return Ok(self.redis.clone());
        }
        let url = self.config.redis_url.clone();
        self.client.get_connection_manager().await.map_err(|error| ClusterError::Redis { url, error })
    }

    /// Renews the lease from now on, while this instance loads and starts its sources too.
    fn hold(&self, us: Holder) -> Held {
        let epoch = us.epoch;
        Held { epoch, keeper: tokio::spawn(self.clone().keep_lead(us)) }
    }

    /// Renews the lease until it is lost (taken, or not renewed in time) or handed back
    /// ([`Cluster::release`]), which releases it so another instance takes over at once.
    async fn keep_lead(self, us: Holder) -> Result<(), ClusterError> {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.lease.renew_every()) => {}
                _ = self.release.cancelled() => {
                    if let Err(e) = self.lease.release(&us).await {
                        tracing::warn!(error = %e, "cannot release the lease; it lapses on its own");
                    }
                    return Ok(());
                }
            }
            // Redis counts the lease from when it got the renewal, so this instance counts it
            // from before it sent it; and a Redis that does not answer (a partition) is not
            // waited for past the lease's end: by then another instance may lead.
            let sent = Instant::now();
            let left = self.lease.ttl.saturating_sub(last_renewed.elapsed());
            match tokio::time::timeout(left, self.lease.renew(&us)).await {
                Ok(Ok(true)) => last_renewed = sent,
                Ok(Ok(false)) => return Err(ClusterError::LostLead("the lease was taken or lapsed".into())),
                Err(_) => {
                    return Err(ClusterError::LostLead(
                        "the lease could not be renewed in time: Redis did not answer".into(),
                    ));
                }
                Ok(Err(e)) if last_renewed.elapsed() >= self.lease.ttl => {
                    return Err(ClusterError::LostLead(format!("the lease could not be renewed in time: {e}")));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the lease; retrying"),
            }
        }
    }

    /// A follower's work: reads each source's stream into the apply loop, and tries for the
    /// lease. Returns the new leadership with where each stream ended and how many events the
    /// readers handed on, once this instance took the lead and read everything the streams
    /// held; `None` when it stops first.
    pub async fn follow(
        &self,
        registry: Arc<Registry>,
        from: HashMap<SourceName, StreamMark>,
        sources: Vec<(SourceName, Arc<crate::source::SourceStats>)>,
        tx: mpsc::Sender<SourceEvent>,
        cancel: CancellationToken,
    ) -> Result<Option<(Held, bus::Activation)>, ClusterError> {
        let (drain, draining) = watch::channel(false);
        let sent = Arc::new(AtomicU64::new(0));
        let mut readers = JoinSet::new();
        for (source, source_stats) in sources {
            let reader = bus::Reader {
                source: source_stats,
                client: self.client.clone(),
                key: self.keys.stream(&source),
                registry: registry.clone(),
                from: from.get(&source).cloned().unwrap_or_default(),
                stats: self.stats.clone(),
            };
            let (tx, draining, sent) = (tx.clone(), draining.clone(), sent.clone());
            readers.spawn(async move { (source, reader.run(tx, draining, sent).await) });
        }
        drop(tx);
        let us = loop {
            tokio::select! {
                _ = tokio::time::sleep(self.lease.renew_every()) => {}
                Some(done) = readers.join_next() => {
                    // A reader ends early only on an error: the replica cannot go on exactly.
                    if let Ok((_, Err(e))) = done {
                        return Err(e.into());
                    }
                    continue;
                }
                _ = cancel.cancelled() => return Ok(None),
            }
            match self.lease.try_acquire().await {
                Ok(Some(us)) => break us,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot reach Redis for the lease; retrying"),
            }
        };
        tracing::info!(epoch = us.epoch, "took the lead of the cluster; reading what is left on the bus");
        let held = self.hold(us.clone());
        let _ = drain.send(true);
        let mut streams = HashMap::new();
        while let Some(done) = readers.join_next().await {
            match done {
                Ok((source, Ok(mark))) => {
                    streams.insert(source, mark);
                }
                Ok((_, Err(e))) => return Err(e.into()),
                Err(e) => return Err(ClusterError::LostLead(format!("a bus reader failed: {e}"))),
            }
        }
        self.became_leader(&us);
        let activation = bus::Activation { after_events: sent.load(Ordering::SeqCst), epoch: us.epoch, streams };
        Ok(Some((held, activation)))
    }
}

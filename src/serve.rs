//! `opslive serve`: run every configured source into the replica until told to stop.
//!
//! Each source runs under a supervisor that retries what can be retried (lost connections,
//! server restarts) with backoff and jitter, and stops the server on what cannot (a database not
//! set up for CDC, a table that cannot be decoded) with the source's message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alert::{AlertHub, AlertStart};
use crate::announce::{Announcer, Duty};
use crate::api::graphql::{AlertService, GraphqlState, KpiService, LiveHub};
use crate::api::{ApiError, Listener, OpsState, SourceView};
use crate::auth::{AuthConfigError, Authenticator};
use crate::change::{Position, SourceEvent, SourceName};
use crate::checkpoint::{self, CheckpointError, writer::Checkpointer};
use crate::cluster::bus::{Activation, Publisher, Tap};
use crate::cluster::{Cluster, Start};
use crate::config::{Config, ConfigError};
use crate::error::SourceError;
use crate::kpi::recorder::Recorder;
use crate::kpi::{KpiHub, SourceHealth, SourceKpi};
use crate::pipeline::{ApplyLoop, CHANNEL_CAPACITY, Consumer};
use crate::policy::{Policy, PolicyError, PolicyStore};
use crate::registry::Registry;
use crate::replica::Replica;
use crate::source::SourceStats;
use crate::source::{Resume, Source, Wiring};
use crate::store::fence::Fence;
use crate::store::{Store, StoreError};
use crate::watermark::{DurableMarks, Watermarks};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

pub async fn serve(config: Config, cancel: CancellationToken) -> Result<(), ServeError> {
    // Bound first: a taken port is a configuration error, found before any slot is created.
    let listener = Listener::bind(config.listen).await?;
    serve_on(config, listener, Vec::new(), cancel).await
}

/// Like [`serve`], on a listener the caller has bound (and may have told people about), with
/// more metrics on `/metrics`.
pub async fn serve_on(
    mut config: Config,
    listener: Listener,
    extra_metrics: Vec<Box<dyn prometheus_client::collector::Collector>>,
    cancel: CancellationToken,
) -> Result<(), ServeError> {
    let registry = Arc::new(config.registry()?);
    if let Some(limit) = crate::open_files::raise_to_hard_limit() {
        tracing::debug!(open_files = limit, "open-files limit");
    }
    // Who may read what is settled before any slot is created: a bad policy or key set stops
    // the start with its message.
    let policy = match &config.policy {
        Some(path) => Policy::load(path, &registry)?,
        None => {
            // Info, not a warning: serving only the operations endpoints is a normal setup.
            tracing::info!("no `policy` file is configured: every GraphQL request will be refused");
            Policy::deny_all()
        }
    };
    let policy = PolicyStore::new(policy);
    let auth = Authenticator::from_config(&config.auth).await?;
    crate::api::web::check(&config.auth, listener.addr)?;
    let web_dir = config.web_dir.as_deref().map(crate::api::web::checked_dir).transpose()?;
    let app_url = config
        .app_database_url()
        .ok_or_else(|| ConfigError::Invalid("no sources and no app_database.url: nothing to serve".into()))?;
    let store = Store::open(&app_url, config.app_database_ca_file()).await?;
    // Revoked tokens are refused from the first request on, not once the sources are up.
    let revocations = crate::api::graphql::revocations::RevocationService {
        store: store.clone(),
        policy: policy.clone(),
        revoked: auth.revocations().clone(),
        announcer: Announcer::default(),
    };
    let revoked = revocations.load().await?;
    if revoked > 0 {
        tracing::info!(revocations = revoked, "loaded the revoked tokens");
    }
    let durable = config.checkpoint.enabled;
    let mut watermarks: HashMap<SourceName, Arc<Watermarks>> = HashMap::new();
    let mut origins: HashMap<SourceName, String> = HashMap::new();
    for (name, sc) in &config.sources {
        let w = Arc::new(Watermarks::default());
        w.set_durable(durable);
        watermarks.insert(Arc::from(name.as_str()), w);
        origins.insert(Arc::from(name.as_str()), sc.origin(name));
    }
    // In a cluster: lead (and read the sources) or follow (start from the leader's replica).
    let cluster = match &config.cluster {
        Some(c) => Some(Cluster::connect(c.clone(), listener.addr).await?),
        None => None,
    };
    // A leader hands the lead back once its last events are on the bus and its final
    // checkpoint is written (below); on any other way out, as it returns.
    let release = cluster.as_ref().map(|c| c.release.clone());
    let _release_on_return = release.clone().map(|r| r.drop_guard());
    // What is changed here through the API reaches the cluster's other instances.
    let (announcer, announcements) = match &cluster {
        Some(_) => {
            let (announcer, rx) = Announcer::channel();
            (announcer, Some(rx))
        }
        None => (Announcer::default(), None),
    };
    let revocations =
        crate::api::graphql::revocations::RevocationService { announcer: announcer.clone(), ..revocations };
    let start = match &cluster {
        Some(c) => match c.join(&registry, &cancel).await? {
            Some(start) => Some(start),
            None => return Ok(()),
        },
        None => None,
    };
    let own = || if durable { restore(&config, &registry, &origins, &watermarks) } else { Replica::new() };
    let (replica, role) = match start {
        None => (own(), Role::Alone),
        Some(Start::Leader(us)) => (own(), Role::Leader(us)),
        Some(Start::Follower { fetched, .. }) => {
            let fetched = *fetched;
            let replica = adopt(fetched.loaded, &origins, &watermarks);
            (replica, Role::Follower { streams: fetched.streams })
        }
    };
    let (mut apply, versions) = ApplyLoop::starting_from(replica, watermarks.clone());
    apply.memory = Arc::new(crate::tx_memory::TxMemory::new(config.transactions.buffer_bytes));
    let checkpointer = Checkpointer {
        data_dir: config.data_dir.clone(),
        origins: origins.clone(),
        watermarks: watermarks.clone(),
        stats: Arc::default(),
    };

    let (tx, rx) = mpsc::channel::<SourceEvent>(CHANNEL_CAPACITY);
    let mut views = Vec::new();
    let mut planned = Vec::new();
    let mut resync = HashMap::new();
    for (name, sc) in std::mem::take(&mut config.sources) {
        let source_name: SourceName = Arc::from(name.as_str());
        let w = watermarks[&source_name].clone();
        let stats = Arc::new(SourceStats::default());
        let requests = Arc::new(crate::source::ResyncRequests::default());
        resync.insert(source_name.clone(), requests.clone());
        views.push(SourceView { name: source_name.clone(), watermarks: w.clone(), stats: stats.clone() });
        let resume = {
            let (versions, registry, name) = (versions.clone(), registry.clone(), name.clone());
            Arc::new(move || Resume::from_replica(&versions.borrow(), &registry, &name))
        };
        let wiring = Wiring {
            registry: registry.clone(),
            watermarks: w,
            stats: stats.clone(),
            requests,
            durable,
            resume,
            session: crate::source::SessionKind::Serving,
            memory: apply.memory.clone(),
            take_over: cluster.is_some(),
        };
        planned.push(Planned { name, config: sc, wiring, stats });
    }
    let running: Running = Arc::default();
    let views_for_bus: Vec<(SourceName, Arc<SourceStats>)> =
        views.iter().map(|v| (v.name.clone(), v.stats.clone())).collect();
    let registry_for_bus = registry.clone();
    let sources = SourcePlan { planned, store: store.clone(), tx, running: running.clone(), cancel: cancel.clone() };
    // The bus: every applied event goes to the publisher, which writes it once this instance
    // leads. A leader from the start continues each stream from its last entry, known before
    // the first event is handed on.
    let first_activation = match (&cluster, &role) {
        (Some(c), Role::Leader(held)) => {
            let names = views_for_bus.iter().map(|(name, _)| name.clone());
            let streams = crate::cluster::bus::stream_marks(&c.redis, &c.keys, names)
                .await
                .map_err(crate::cluster::ClusterError::from)?;
            Some(Activation { after_events: 0, epoch: held.epoch, streams })
        }
        _ => None,
    };
    // Deciding alert state, writing KPI history and sending notifications are the leader's
    // (or a lone instance's) work, never twice; a leader's writes carry its epoch, claimed in
    // the app database before the first.
    let duty = match (&cluster, &role) {
        (None, _) => Duty::Lead { fence: None },
        (Some(c), Role::Leader(held)) => claim_lead(&store, c, held.epoch).await?,
        (Some(_), _) => Duty::Follow,
    };
    let following = duty == Duty::Follow;
    let (leading, leading_rx) = watch::channel(duty);
    let fenced = CancellationToken::new();
    // This instance lost the lead: its publisher gives up on what it still holds at once.
    let lost = CancellationToken::new();
    let publishing_con = match &cluster {
        Some(c) => Some(c.publishing_connection().await?),
        None => None,
    };
    let bus = cluster.as_ref().zip(publishing_con).map(|(c, publishing_con)| {
        let marks = DurableMarks::register("bus", &watermarks);
        let (events, tapped) = mpsc::channel(crate::pipeline::BATCH_CAPACITY);
        let wanted = Arc::new(tokio::sync::Notify::new());
        apply.tap = Some(Tap { events, wanted: wanted.clone(), marks: marks.clone() });
        let (activate, activation) = watch::channel(first_activation);
        let (requests, bootstraps) = mpsc::channel(16);
        let publisher = Publisher {
            redis: publishing_con,
            keys: c.keys.clone(),
            max_len: c.config.stream_max_len,
            marks,
            activation,
            bootstraps,
            wanted,
            stats: c.stats.clone(),
            stop: cancel.clone(),
            lost: lost.clone(),
            replicas: (c.config.wait_replicas > 0).then_some(crate::cluster::bus::Replicas {
                count: c.config.wait_replicas,
                timeout_ms: c.config.wait_timeout_ms,
            }),
        };
        let publishing = tokio::spawn(publisher.run(tapped));
        (activate, requests, publishing)
    });

    let stats = apply.stats.clone();
    let memory = apply.memory.clone();
    if let Some(path) = &config.path {
        tokio::spawn(crate::reconfigure::watch(path.clone(), registry.clone(), resync.clone(), cancel.clone()));
    }
    if let Some(path) = &config.policy {
        let reload =
            crate::policy::watch_file(policy.clone(), path.clone(), registry.clone(), versions.clone(), cancel.clone());
        tokio::spawn(reload);
    }
    // Live queries follow the replica event by event, from the version it starts at.
    let (live_tx, live_rx) = Consumer::channel("live");
    let hub = LiveHub::start(versions.borrow().clone(), live_rx, cancel.clone());
    let live_stats = hub.stats.clone();
    // Change streams read a log of the same batches, kept for clients that resume.
    let (changes_tx, changes_rx) = Consumer::channel("changes");
    let heartbeat = config.changes.heartbeat();
    let starts = versions.borrow().applied_positions().map(|(s, p)| (s.clone(), p)).collect();
    let feed =
        crate::changes::ChangeFeed::start(changes_rx, config.changes.retention(), heartbeat, starts, cancel.clone());
    // KPIs beside it, from the definitions stored in the app database; each of their steps
    // goes on to the alert runtime and the history recorder, whose writes bound what the
    // sources may acknowledge (a restart delivers the rest again).
    let alert_marks = DurableMarks::register("alerts", &watermarks);
    let history_marks = DurableMarks::register("kpi_history", &watermarks);
    let (kpi_tx, kpi_rx) = Consumer::durable("kpi", vec![alert_marks.clone(), history_marks.clone()]);
    let mut records = store.load_kpis().await?;
    tracing::info!(kpis = records.len(), "KPIs loaded");
    records.extend(store.builtin_kpis(&SourceKpi::all(views.iter().map(|v| &v.name))).await?);
    let (alert_tx, alert_steps) = mpsc::channel(crate::pipeline::BATCH_CAPACITY);
    let (history_tx, history_steps) = mpsc::channel(crate::pipeline::BATCH_CAPACITY);
    let start = versions.borrow().clone();
    let steps = vec![alert_tx, history_tx];
    let kpi_hub = KpiHub::start(start.clone(), config.kpi.time_zone, policy.clone(), records, kpi_rx, steps)
        .announcing(announcer.clone());
    let positions: Vec<(String, Position)> = start.applied_positions().map(|(s, p)| (s.to_string(), p)).collect();
    let notifier = crate::notify::Notifier::start(store.clone(), &config.notifications, leading_rx, cancel.clone())
        .await?
        .announcing(announcer.clone());
    let alert_start = AlertStart {
        replica: start.clone(),
        kpis: kpi_hub.current(),
        rules: store.load_alert_rules().await?,
        // A follower changes nothing it did not decide: the leader's record stands as it is.
        instances: match following {
            true => store.read_alert_state().await?,
            false => store.load_alert_state(&positions).await?,
        },
        silences: store.load_silences().await?,
        store: store.clone(),
        marks: alert_marks,
        notify: Some(notifier.link()),
        duty: leading.subscribe(),
        announcer: announcer.clone(),
        fenced: fenced.clone(),
    };
    tracing::info!(rules = alert_start.rules.len(), open = alert_start.instances.len(), "alert rules loaded");
    let alert_hub = AlertHub::start(alert_start, alert_steps, cancel.clone());
    notifier.start_reminders(alert_hub.board.clone(), cancel.clone());
    let history = Recorder {
        store: store.clone(),
        marks: history_marks,
        retention: config.kpi.history_retention_micros(),
        duty: leading.subscribe(),
        fenced: fenced.clone(),
    };
    tokio::spawn(history.run(history_steps, cancel.clone()));
    let ack = notifier.ack_key().map(|key| crate::api::ack::AckApi {
        key,
        alerts: alert_hub.clone(),
        auth: auth.clone(),
        store: store.clone(),
    });
    let alerts = AlertService {
        hub: alert_hub.clone(),
        kpis: kpi_hub.clone(),
        store: store.clone(),
        policy: policy.clone(),
        replica: versions.clone(),
    };
    if let (Some(c), Some(announcements)) = (&cluster, announcements) {
        let key = c.keys.state();
        tokio::spawn(crate::cluster::state::publish(
            c.redis.clone(),
            key.clone(),
            c.instance.clone(),
            announcements,
            cancel.clone(),
        ));
        let targets = crate::cluster::state::Targets {
            store: store.clone(),
            kpis: kpi_hub.quiet(),
            alerts: alert_hub.quiet(),
            notifier: notifier.quiet(),
            revocations: crate::api::graphql::revocations::RevocationService {
                announcer: Announcer::default(),
                ..revocations.clone()
            },
            registry: registry.clone(),
            resync: resync.clone(),
            duty: leading.subscribe(),
        };
        let (client, instance, from) = (c.client.clone(), c.instance.clone(), c.state_from.clone());
        tokio::spawn(crate::cluster::state::follow(client, key, instance, from, targets, cancel.clone()));
    }
    let health_kpis = kpi_hub.clone();
    let kpis = KpiService { hub: kpi_hub, store: store.clone(), policy: policy.clone(), earlier: Default::default() };
    let graphql = GraphqlState::new(auth.clone(), policy.clone(), registry.clone(), versions.clone())
        .with_limits(config.limits.clone())
        .with_live(hub, cancel.clone())
        .with_changes(feed.clone())
        .with_kpis(kpis)
        .with_alerts(alerts)
        .with_workspace(store.clone())
        .with_notifications(crate::api::graphql::notifications::NotifyService {
            notifier: notifier.clone(),
            policy: policy.clone(),
        })
        .with_revocations(revocations.clone());
    tokio::spawn(revocations.follow(cancel.clone()));
    let admission = graphql.admission.stats.clone();
    let source_stats: Vec<(SourceName, Arc<SourceStats>)> =
        views.iter().map(|v| (v.name.clone(), v.stats.clone())).collect();
    let ops = OpsState {
        registry: registry.clone(),
        sources: views,
        apply: stats.clone(),
        transactions: memory.clone(),
        replica: versions.clone(),
        checkpoints: durable.then(|| checkpointer.stats.clone()),
        resync,
        auth: auth.is_configured().then(|| auth.clone()),
        policy,
        live: Some(live_stats),
        notify: Some(notifier.stats()),
        admission: Some(admission),
        changes: Some(feed),
        cluster: cluster.as_ref().map(|c| c.stats.clone()),
        leader: cluster
            .is_some()
            .then(|| crate::api::tables::LeaderLink { duty: leading.subscribe(), announcer: announcer.clone() }),
    };
    tracing::info!(addr = %listener.addr, "listening");
    let mut router = crate::api::router(ops, extra_metrics, web_dir.as_deref(), config.auth.clone())
        .merge(crate::api::graphql::router(graphql));
    if let Some(ack) = ack {
        router = router.merge(crate::api::ack::router(ack));
    }
    if let (Some(c), Some((_, requests, _))) = (&cluster, &bus) {
        router = router.merge(crate::cluster::bootstrap::router(crate::cluster::bootstrap::BootstrapApi {
            secret: c.config.secret.clone(),
            requests: Some(requests.clone()),
            origins: origins.clone(),
            registry: registry.clone(),
        }));
    }
    let http = tokio::spawn(listener.serve(router, cancel.clone()));
    let (snap_tx, mut snap_rx) = mpsc::unbounded_channel();
    let applier = tokio::spawn(apply.run(rx, vec![live_tx, changes_tx, kpi_tx], move |event, _| {
        if let SourceEvent::Consistent { source, position } = event {
            let _ = snap_tx.send((source.clone(), *position));
        }
    }));
    let writer = durable.then(|| {
        tokio::spawn(checkpointer.clone().run(versions.clone(), config.checkpoint.interval(), cancel.clone()))
    });

    // Persist watermarks once a second; the database is told what opslive has applied.
    let recorder = {
        let (store, watermarks, cancel, registry) =
            (store.clone(), watermarks.clone(), cancel.clone(), registry.clone());
        let health_kpis = health_kpis.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_log = std::time::Instant::now();
            let mut rates = ChangeRates::default();
            loop {
                rates.sample(&stats, &registry, &source_stats);
                health_kpis.sample(health(&watermarks, &source_stats));
                let stop = tokio::select! {
                    _ = tick.tick() => false,
                    Some((source, position)) = snap_rx.recv() => {
                        if let Err(e) = store.record_snapshot(&source, position).await {
                            tracing::warn!(error = %e, "cannot record the snapshot position");
                        }
                        tracing::info!(source = %source, position = %position, "replica consistent; streaming");
                        false
                    }
                    _ = cancel.cancelled() => true,
                };
                for (name, w) in &watermarks {
                    if let Err(e) = store.record_watermarks(name, w.values()).await {
                        tracing::warn!(error = %e, "cannot record watermarks");
                    }
                }
                if last_log.elapsed() >= Duration::from_secs(30) {
                    last_log = std::time::Instant::now();
                    use std::sync::atomic::Ordering::Relaxed;
                    tracing::info!(
                        transactions = stats.transactions.load(Relaxed),
                        row_changes = stats.row_changes.load(Relaxed),
                        snapshot_rows = stats.snapshot_rows.load(Relaxed),
                        anomalies = stats.anomalies.load(Relaxed),
                        "apply progress"
                    );
                }
                if stop {
                    break;
                }
            }
        })
    };

    // Alone or leading: read the sources now. Following: apply the bus until this instance
    // takes the lead, then read the sources from where the bus ended.
    let store_for_lead = store.clone();
    let role = tokio::spawn(async move {
        // The cluster and the publisher's activation are kept for as long as this instance leads.
        let (_cluster, (_activate, _, mut publishing), mut held) = match (cluster, role, bus) {
            (Some(cluster), Role::Leader(held), Some(bus)) => (cluster, bus, held),
            (Some(cluster), Role::Follower { streams }, Some(bus)) => {
                let followed = cluster
                    .follow(registry_for_bus, streams, views_for_bus, sources.tx.clone(), sources.cancel.clone())
                    .await?;
                let Some((held, activation)) = followed else { return Ok(None) };
                let duty = claim_lead(&store_for_lead, &cluster, held.epoch).await?;
                let _ = bus.0.send(Some(activation));
                let _ = leading.send(duty);
                (cluster, bus, held)
            }
            // Alone: read the sources until they end.
            _ => return sources.start().await?.finish().await.map(|()| None),
        };
        let started = sources.start().await?;
        let cancel = started.cancel.clone();
        tokio::select! {
            done = started.finish() => {
                // The sources stopped; the apply loop applies what they sent before, and the
                // publisher publishes it. The lead is kept until then (and until the final
                // checkpoint: the caller hands it back).
                tokio::select! {
                    published = &mut publishing => match fenced_publisher(published) {
                        Some(e) => Err(e),
                        None => done.map(|()| Some(held)),
                    },
                    kept = held.lost() => {
                        let reason = || crate::cluster::ClusterError::LostLead("the lease keeper ended".into());
                        Err(kept.err().unwrap_or_else(reason).into())
                    }
                }
            }
            kept = held.lost() => {
                cancel.cancel();
                kept.map(|()| None).map_err(ServeError::from)
            }
            _ = fenced.cancelled() => {
                cancel.cancel();
                Err(crate::cluster::ClusterError::LostLead("a newer leader claimed the app database".into()).into())
            }
            published = &mut publishing => {
                cancel.cancel();
                fenced_publisher(published).map_or(Ok(None), Err)
            }
        }
    });
    let (failure, held) = match role.await {
        Ok(Err(e)) => {
            cancel.cancel();
            (Some(e), None)
        }
        Ok(Ok(held)) => (None, held),
        Err(_) => (None, None),
    };
    // Sources end when cancelled; a server with none (only the app database's KPIs, alerts and
    // workspaces, or the operations endpoints) serves until it is stopped, not until its empty
    // set of sources has "ended".
    if failure.is_none() {
        cancel.cancelled().await;
    }
    cancel.cancel();
    // An instance that lost the lead starts again as a follower, from the new leader's replica:
    // its own holds events the bus never took, so it is neither checkpointed nor acknowledged.
    let lost_lead = matches!(failure, Some(ServeError::Cluster(crate::cluster::ClusterError::LostLead(_))));
    if lost_lead {
        lost.cancel();
    }
    let replica = applier.await.ok();
    if let Some(writer) = writer {
        let _ = writer.await;
        if let Some(replica) = replica.filter(|r| !lost_lead && r.applied_positions().next().is_some()) {
            let running = running.lock().expect("running lock").clone();
            final_checkpoint(&checkpointer, replica, &running).await;
        }
    }
    if let (Some(mut held), Some(release)) = (held, &release) {
        release.cancel();
        if let Err(e) = held.lost().await {
            tracing::warn!(error = %e, "the lead was lost before it could be handed back");
        }
    }
    let _ = recorder.await;
    match http.await {
        Ok(Err(e)) if failure.is_none() => return Err(e.into()),
        _ => {}
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How the bus's publisher ended, as the instance's failure: refused (another instance leads)
/// is a lost lead; having published everything is none.
fn fenced_publisher(
    published: Result<Result<(), crate::cluster::bus::BusError>, tokio::task::JoinError>,
) -> Option<ServeError> {
    match published {
        Ok(Err(e)) => Some(crate::cluster::ClusterError::LostLead(e.to_string()).into()),
        _ => None,
    }
}

/// This instance leads the cluster under `epoch`: claimed in the app database before any of
/// its writes, so that every write from an older leader is refused from then on.
async fn claim_lead(store: &Store, cluster: &Cluster, epoch: u64) -> Result<Duty, StoreError> {
    let fence = Fence { cluster: cluster.config.name.clone(), epoch };
    store.claim_epoch(&fence).await?;
    Ok(Duty::Lead { fence: Some(fence) })
}

/// How this instance takes part.
enum Role {
    /// No cluster: it reads its sources.
    Alone,
    Leader(crate::cluster::Held),
    Follower {
        streams: HashMap<SourceName, crate::cluster::bus::StreamMark>,
    },
}

/// The sources that are running, for the last acknowledgement at shutdown.
type Running = Arc<std::sync::Mutex<Vec<(SourceName, Arc<dyn Source>)>>>;

/// A source ready to start: what it is and what it is wired to.
struct Planned {
    name: String,
    config: crate::config::SourceConfig,
    wiring: Wiring,
    stats: Arc<SourceStats>,
}

/// Every configured source, started when this instance is to read them (at once, or when it
/// takes the lead of its cluster).
struct SourcePlan {
    planned: Vec<Planned>,
    store: Store,
    tx: mpsc::Sender<SourceEvent>,
    running: Running,
    cancel: CancellationToken,
}

struct Started {
    sources: JoinSet<Result<(), SourceError>>,
    cancel: CancellationToken,
}

impl SourcePlan {
    async fn start(self) -> Result<Started, ServeError> {
        let mut sources = JoinSet::new();
        for p in self.planned {
            let source = crate::source::open(&p.name, &p.config, p.wiring)?;
            self.store.register_source(&source.record()).await?;
            let name: SourceName = Arc::from(p.name.as_str());
            self.running.lock().expect("running lock").push((name, source.clone()));
            sources.spawn(crate::source::supervise(p.name, source, p.stats, self.tx.clone(), self.cancel.clone()));
        }
        Ok(Started { sources, cancel: self.cancel })
    }
}

impl Started {
    /// Waits for every source to end (they end when cancelled); the first to fail stops the
    /// server with its error.
    async fn finish(mut self) -> Result<(), ServeError> {
        let mut failure = None;
        while let Some(done) = self.sources.join_next().await {
            if let Ok(Err(e)) = done
                && failure.is_none()
            {
                failure = Some(e);
                self.cancel.cancel();
            }
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// A follower's start: the leader's replica, with each source's watermarks set to where it
/// stands in it.
fn adopt(
    loaded: checkpoint::Loaded,
    origins: &HashMap<SourceName, String>,
    watermarks: &HashMap<SourceName, Arc<Watermarks>>,
) -> Replica {
    for (source, mark) in &loaded.sources {
        if origins.get(source) != Some(&mark.origin) {
            tracing::warn!(source = %source, origin = %mark.origin, "the leader reads this source from another slot or server than this configuration names");
        }
        if let Some(w) = watermarks.get(source) {
            w.received(mark.position);
            w.applied(mark.position);
            w.set_consistent(true);
        }
    }
    tracing::info!(rows = loaded.rows, ms = loaded.elapsed.as_millis() as u64, "started from the leader's replica");
    loaded.replica
}

/// The replica from the data directory's checkpoint, with each source's watermarks set to
/// where it stands; an empty replica (every source copies its tables) when there is none or it
/// cannot be used, with the reason in the log.
fn restore(
    config: &Config,
    registry: &Registry,
    origins: &HashMap<SourceName, String>,
    watermarks: &HashMap<SourceName, Arc<Watermarks>>,
) -> Replica {
    match checkpoint::load(&config.data_dir, registry) {
        Ok(loaded) => {
            for note in &loaded.notes {
                tracing::warn!(note = %note, "checkpoint");
            }
            let mut replica = loaded.replica;
            for (source, mark) in &loaded.sources {
                if origins.get(source) != Some(&mark.origin) {
                    tracing::warn!(source = %source, origin = %mark.origin, "the checkpoint was taken on another slot or server; the source takes a fresh snapshot");
                    replica.forget_source(source);
                    continue;
                }
                if let Some(w) = watermarks.get(source) {
                    w.checkpointed(mark.position);
                    w.received(mark.position);
                    w.applied(mark.position);
                }
            }
            tracing::info!(
                path = %checkpoint::path_in(&config.data_dir).display(),
                rows = loaded.rows,
                ms = loaded.elapsed.as_millis() as u64,
                "checkpoint loaded"
            );
            replica
        }
        Err(CheckpointError::Missing(path)) => {
            tracing::info!(path = %path.display(), "no checkpoint yet; every source takes a snapshot");
            Replica::new()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot use the checkpoint; every source takes a fresh snapshot on a new slot");
            Replica::new()
        }
    }
}

/// Row changes per second per source, over a sliding window of one-second samples.
#[derive(Default)]
struct ChangeRates {
    samples: std::collections::VecDeque<(std::time::Instant, HashMap<SourceName, u64>)>,
}

impl ChangeRates {
    const WINDOW: usize = 10;

    fn sample(
        &mut self,
        apply: &crate::pipeline::ApplyStats,
        registry: &Registry,
        sources: &[(SourceName, Arc<SourceStats>)],
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut counts: HashMap<SourceName, u64> = HashMap::new();
        for (id, c) in apply.tables() {
            if let Some(spec) = registry.get(id) {
                *counts.entry(spec.source.clone()).or_default() += c.inserts.load(Relaxed)
                    + c.updates.load(Relaxed)
                    + c.deletes.load(Relaxed)
                    + c.truncates.load(Relaxed);
            }
        }
        let now = std::time::Instant::now();
        if let Some((then, old)) = self.samples.front() {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            for (name, stats) in sources {
                let delta = counts.get(name).copied().unwrap_or(0).saturating_sub(old.get(name).copied().unwrap_or(0));
                stats.set_changes_per_second(delta as f64 / secs);
            }
        }
        self.samples.push_back((now, counts));
        if self.samples.len() > Self::WINDOW {
            self.samples.pop_front();
        }
    }
}

/// Every source's health now, for its built-in KPIs: the same figures `/metrics` shows.
fn health(
    watermarks: &HashMap<SourceName, Arc<Watermarks>>,
    sources: &[(SourceName, Arc<SourceStats>)],
) -> Vec<(SourceName, SourceHealth)> {
    let now = chrono::Utc::now().timestamp_micros();
    sources
        .iter()
        .filter_map(|(name, stats)| {
            let w = watermarks.get(name)?;
            let health = SourceHealth {
                lag_bytes: w.lag_bytes(),
                lag_seconds: w.lag_seconds(now),
                retained_wal_bytes: stats.slot().map(|s| s.retained_bytes),
                heartbeat_age_seconds: stats.heartbeat_age(now),
                changes_per_second: stats.changes_per_second(),
            };
            Some((name.clone(), health))
        })
        .collect()
}

/// Where a source's next session may resume: the replica's position for it, once it has been
/// consistent. Tables it does not hold loaded are copied again on their own.
/// At shutdown, once everything received is applied: one last checkpoint, acknowledged on
/// each slot (the replication session's own last acknowledgement is lost on shutdown).
async fn final_checkpoint(checkpointer: &Checkpointer, replica: Replica, sources: &[(SourceName, Arc<dyn Source>)]) {
    // The alert writer and the history recorder write their last work as they stop; the final
    // checkpoint (the next start's resume point) waits for them, or is not taken.
    if !checkpointer.consumers_caught_up(&replica, Duration::from_secs(10), &CancellationToken::new()).await {
        tracing::warn!("the durable consumers did not finish in time; the next start resumes from the last checkpoint");
        return;
    }
    let writer = checkpointer.clone();
    match tokio::task::spawn_blocking(move || writer.write(&replica)).await {
        Ok(Ok(written)) => {
            tracing::info!(rows = written.rows, ms = written.elapsed.as_millis() as u64, "final checkpoint written");
            for (name, position) in &written.sources {
                if let Some((_, source)) = sources.iter().find(|(s, _)| s == name) {
                    source.acknowledge_final(*position).await;
                }
            }
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot write the final checkpoint; the next start resumes from the last one")
        }
        Err(e) => tracing::error!(error = %e, "the final checkpoint failed"),
    }
}

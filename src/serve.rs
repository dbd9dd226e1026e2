//! `opslive serve`: run every configured source into the replica until told to stop.
//!
//! Each source runs under a supervisor that retries what can be retried (lost connections,
//! server restarts) with backoff and jitter, and stops the server on what cannot (a database not
//! set up for CDC, a table that cannot be decoded) with the source's message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::graphql::GraphqlState;
use crate::api::{ApiError, Listener, OpsState, SourceView};
use crate::auth::{AuthConfigError, Authenticator};
use crate::change::{SourceEvent, SourceName};
use crate::config::{Config, ConfigError, SourceKind};
use crate::error::SourceError;
use crate::pipeline::{ApplyLoop, CHANNEL_CAPACITY};
use crate::policy::{Policy, PolicyError, PolicyStore};
use crate::source::SourceStats;
use crate::source::postgres::PostgresSource;
use crate::store::{SourceRecord, Store, StoreError};
use crate::watermark::Watermarks;

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
}

pub async fn serve(config: Config, cancel: CancellationToken) -> Result<(), ServeError> {
    // Bound first: a taken port is a configuration error, found before any slot is created.
    let listener = Listener::bind(config.listen).await?;
    serve_on(config, listener, Vec::new(), cancel).await
}

/// Like [`serve`], on a listener the caller has bound (and may have told people about), with
/// more metrics on `/metrics`.
pub async fn serve_on(
    config: Config,
    listener: Listener,
    extra_metrics: Vec<Box<dyn prometheus_client::collector::Collector>>,
    cancel: CancellationToken,
) -> Result<(), ServeError> {
    let registry = Arc::new(config.registry()?);
    // Who may read what is settled before any slot is created: a bad policy or key set stops
    // the start with its message.
    let policy = match &config.policy {
        Some(path) => Policy::load(path, &registry)?,
        None => {
            tracing::warn!("no `policy` file is configured: every GraphQL request will be refused");
            Policy::deny_all()
        }
    };
    let policy = PolicyStore::new(policy);
    let auth = Authenticator::from_config(&config.auth).await?;
    let app_url = config
        .app_database_url()
        .ok_or_else(|| ConfigError::Invalid("no sources and no app_database.url: nothing to serve".into()))?;
    let store = Store::open(&app_url).await?;
    let mut watermarks: HashMap<SourceName, Arc<Watermarks>> = HashMap::new();
    let (tx, rx) = mpsc::channel::<SourceEvent>(CHANNEL_CAPACITY);
    let mut sources = JoinSet::new();
    let mut views = Vec::new();
    for (name, sc) in &config.sources {
        match sc.kind {
            SourceKind::Postgres => {}
        }
        let w = Arc::new(Watermarks::default());
        let stats = Arc::new(SourceStats::default());
        watermarks.insert(Arc::from(name.as_str()), w.clone());
        views.push(SourceView { name: Arc::from(name.as_str()), watermarks: w.clone(), stats: stats.clone() });
        let record = SourceRecord {
            name: name.clone(),
            kind: "postgres".into(),
            slot: Some(sc.slot_name(name)),
            publication: Some(sc.publication_name(name)),
        };
        store.register_source(&record).await?;
        let make = {
            let (name, url, registry, chunk) = (name.clone(), sc.url.clone(), registry.clone(), sc.snapshot_chunk_rows);
            let (slot, publication, stats) = (sc.slot_name(&name), sc.publication_name(&name), stats.clone());
            move || -> Result<PostgresSource, SourceError> {
                let mut s =
                    PostgresSource::new(&name, &url, slot.clone(), publication.clone(), registry.clone(), w.clone())?;
                s.chunk_rows = chunk;
                s.stats = stats.clone();
                Ok(s)
            }
        };
        sources.spawn(supervise(name.clone(), make, stats, tx.clone(), cancel.clone()));
    }
    drop(tx);

    let (apply, versions) = ApplyLoop::new(watermarks.clone());
    let stats = apply.stats.clone();
    if let Some(path) = &config.policy {
        let reload =
            crate::policy::watch_file(policy.clone(), path.clone(), registry.clone(), versions.clone(), cancel.clone());
        tokio::spawn(reload);
    }
    let graphql = GraphqlState::new(auth, policy, registry.clone(), versions.clone());
    let ops = OpsState { registry: registry.clone(), sources: views, apply: stats.clone(), replica: versions };
    tracing::info!(addr = %listener.addr, "listening");
    let router = crate::api::router(ops, extra_metrics).merge(crate::api::graphql::router(graphql));
    let http = tokio::spawn(listener.serve(router, cancel.clone()));
    let (snap_tx, mut snap_rx) = mpsc::unbounded_channel();
    let applier = tokio::spawn(apply.run(rx, move |event, _| {
        if let SourceEvent::Consistent { source, position } = event {
            let _ = snap_tx.send((source.clone(), *position));
        }
    }));

    // Persist watermarks once a second; the database is told what opslive has applied.
    let recorder = {
        let (store, watermarks, cancel) = (store.clone(), watermarks.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_log = std::time::Instant::now();
            loop {
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

    let mut failure = None;
    while let Some(done) = sources.join_next().await {
        if let Ok(Err(e)) = done
            && failure.is_none()
        {
            failure = Some(e);
            cancel.cancel();
        }
    }
    cancel.cancel();
    let _ = applier.await;
    let _ = recorder.await;
    match http.await {
        Ok(Err(e)) if failure.is_none() => return Err(e.into()),
        _ => {}
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Runs a source, retrying retryable failures with capped exponential backoff and jitter.
async fn supervise(
    name: String,
    make: impl Fn() -> Result<PostgresSource, SourceError>,
    stats: Arc<SourceStats>,
    out: mpsc::Sender<SourceEvent>,
    cancel: CancellationToken,
) -> Result<(), SourceError> {
    let mut delay = Duration::from_millis(500);
    loop {
        let started = std::time::Instant::now();
        let result = make()?.run(out.clone(), cancel.child_token()).await;
        if cancel.is_cancelled() {
            return Ok(());
        }
        match result {
            Ok(()) => tracing::warn!(source = %name, "replication stream ended; reconnecting"),
            Err(SourceError::Closed(_)) => return Ok(()),
            Err(e) if e.is_retryable() => {
                tracing::error!(source = %name, error = %e, "source failed; retrying");
                stats.failed(e.to_string());
            }
            Err(e) => {
                stats.failed(e.to_string());
                return Err(e);
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            delay = Duration::from_millis(500);
        }
        let jitter = rand::rng().random_range(0.5..1.5);
        tokio::select! {
            _ = tokio::time::sleep(delay.mul_f64(jitter)) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

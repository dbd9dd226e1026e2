//! `opslive bench`: the load tool for live queries.
//!
//! N WebSocket clients hold live queries on `orders` while a paced writer commits single-row
//! inserts into PostgreSQL at rate R; every row that enters a client's result is matched to the
//! instant the writer's commit returned, which gives the latency a dashboard user sees, and is
//! counted against the deliveries the change had to make (a missing one fails the run).
//!
//! By default the run is self-contained, so its figures mean the same on any machine: a private
//! PostgreSQL with the fixtures (the demo's), `opslive serve` of this very binary as a child
//! process on a configuration written for the run, then the clients and the writer, then
//! everything stopped again. `--server`/`--database` point it at a running setup instead.
//!
//! The pieces: [`scenario`] (who watches what, what is written), [`client`] (a subscriber),
//! [`frame`] and [`mirror`] (reading the server's messages), [`writer`] (the paced inserts),
//! [`ledger`] (where commits and deliveries meet), [`latency`], [`server`] and [`usage`] (the
//! server process and its CPU and memory), [`database`] (the source database's preparation),
//! [`report`].

pub mod client;
pub mod database;
pub mod frame;
pub mod latency;
pub mod ledger;
pub mod mirror;
pub mod report;
pub mod scenario;
pub mod server;
pub mod usage;
pub mod writer;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::demo::{self, LocalPostgres};
use client::{Endpoint, Shared, Subscriber, Tally};
use frame::Form;
use latency::LatencyRecorder;
use ledger::Ledger;
use report::{Report, Traffic, Usage, WriterFigures};
use scenario::{LiveQuery, Plan, ScenarioKind, Shape};
use server::ServerProcess;
use writer::Pacer;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    #[error("the source database: {0}")]
    Database(String),
    #[error("the server: {0}")]
    Server(String),
    #[error("{0}")]
    Options(String),
    #[error("no client could subscribe: {0}")]
    NoClients(String),
    #[error("{0}")]
    Io(String),
    #[error("interrupted")]
    Interrupted,
}

/// What to run against.
#[derive(Debug, Clone)]
pub enum Target {
    /// A private PostgreSQL and `exe serve`, both started and stopped by the run.
    Local {
        exe: PathBuf,
        /// PostgreSQL's server binaries (default: found on this machine).
        pg_bin: Option<PathBuf>,
    },
    /// A server and database that are already running.
    External {
        /// `http://host:port` or `ws://host:port/graphql`.
        server: String,
        /// The source database the server watches (with the fixture schema).
        database: String,
        token: String,
        /// The server's process, to read its CPU and memory.
        server_pid: Option<u32>,
    },
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub scenario: ScenarioKind,
    pub shape: Shape,
    pub form: Form,
    pub duration: Duration,
    pub warmup: Duration,
    /// Writer connections.
    pub writers: usize,
    /// How long to wait for the last deliveries after the writer is done.
    pub drain: Duration,
    /// Clients connect from this many loopback addresses (127.0.0.1, .2, …), for servers that
    /// limit connections per address; 0 or 1: the system's choice.
    pub source_ips: usize,
    pub seed: u64,
    pub target: Target,
}

/// Handshakes in flight at once: a thousand SYNs in one go would overflow the listen backlog and
/// turn into retransmits a second later.
const CONNECTING_AT_ONCE: usize = 64;

/// Runs the benchmark; the report says what was measured, including failures (missing
/// deliveries, client errors), which the caller decides how to treat.
pub async fn run(options: BenchOptions, cancel: CancellationToken) -> Result<Report, BenchError> {
    check(&options)?;
    match options.target.clone() {
        Target::Local { exe, pg_bin } => run_local(&options, exe, pg_bin, cancel).await,
        Target::External { server, database, token, server_pid } => {
            let (url, addr) = endpoint_of(&server).await?;
            let readyz = format!("http://{addr}/readyz");
            wait_external_ready(&readyz, &cancel).await?;
            let server = Measured { pid: server_pid, process: None };
            measure(&options, &database, url, addr, token, server, "a running server".into(), cancel).await
        }
    }
}

fn check(o: &BenchOptions) -> Result<(), BenchError> {
    let s = &o.shape;
    if s.clients == 0 || s.queries == 0 || s.limit == 0 || !(s.rate > 0.0 && s.rate.is_finite()) {
        return Err(BenchError::Options("clients, queries, limit and rate must be above 0".into()));
    }
    if s.limit > 10_000 {
        return Err(BenchError::Options("limit is at most 10,000 (the server's)".into()));
    }
    if o.duration.is_zero() {
        return Err(BenchError::Options("the duration must be above 0".into()));
    }
    if s.queries > 26 * 26 * scenario::STATUSES.len() {
        return Err(BenchError::Options(format!("at most {} distinct queries", 26 * 26 * scenario::STATUSES.len())));
    }
    Ok(())
}

async fn run_local(
    options: &BenchOptions,
    exe: PathBuf,
    pg_bin: Option<PathBuf>,
    cancel: CancellationToken,
) -> Result<Report, BenchError> {
    let bin = match &pg_bin {
        Some(dir) => LocalPostgres::binaries_in(dir).map_err(demo::DemoError::from)?,
        None => LocalPostgres::find_binaries().map_err(demo::DemoError::from)?,
    };
    let root = std::env::temp_dir().join(format!("opslive-bench-{}", std::process::id()));
    let port = demo::free_or_any(0);
    // fsync off: the run measures opslive, not this machine's disk flushes (commits still wait
    // for the WAL write, and the walsender still sends only what was written).
    let started =
        demo::fixture_database(bin, root.clone(), port, &[("fsync", "off"), ("max_connections", "200")]).await;
    let outcome = match started {
        Ok(pg) => {
            let outcome = with_database(options, &pg, &root, exe, cancel).await;
            tokio::task::spawn_blocking(move || drop(pg)).await.expect("stopping the database does not panic");
            outcome
        }
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&root);
    outcome
}

async fn with_database(
    options: &BenchOptions,
    pg: &LocalPostgres,
    root: &std::path::Path,
    exe: PathBuf,
    cancel: CancellationToken,
) -> Result<Report, BenchError> {
    let shop = pg.url("shop");
    let text = server_config(&shop, &root.join("opslive"));
    let (files, _) = demo::access::write(&root.join("opslive"), &text)
        .map_err(|e| BenchError::Io(format!("writing the server's configuration in {}: {e}", root.display())))?;
    // The scenario's warehouses go in before the server starts, so they are in its snapshot.
    let prepared = prepared(options, &shop).await?;
    eprintln!("starting opslive serve …");
    let mut process = ServerProcess::start(&exe, &files.config, Duration::from_secs(60)).await?;
    let ready = tokio::select! {
        r = process.wait_ready(Duration::from_secs(300)) => r,
        () = cancel.cancelled() => Err(BenchError::Interrupted),
    };
    if let Err(e) = ready {
        let _ = process.stop(Duration::from_secs(30)).await;
        return Err(e);
    }
    let addr = process.addr;
    let url = format!("ws://{addr}/graphql");
    let ttl = options.warmup + options.duration + Duration::from_secs(3600);
    let token = crate::auth::mint_hs256(&files.secret, "admin", serde_json::Map::new(), ttl)
        .map_err(|e| BenchError::Options(format!("minting a token: {e}")))?;
    let target = format!("opslive serve (pid {}) on a private PostgreSQL", process.pid);
    let server = Measured { pid: Some(process.pid), process: Some(process) };
    measure_prepared(options, &shop, prepared, url, addr, token, server, target, cancel).await
}

/// The example configuration on `shop`, listening on a port of the kernel's choice, with the
/// replica in memory only (a checkpoint every few seconds is not what a latency run measures).
fn server_config(shop: &str, data_dir: &std::path::Path) -> String {
    let example = demo::demo_config(shop, SocketAddr::from(([127, 0, 0, 1], 0)));
    let data_dir_line = "data_dir = \"./data\"";
    assert!(example.contains(data_dir_line), "the example configuration sets data_dir");
    let quoted = serde_json::to_string(&data_dir.display().to_string()).expect("strings serialise");
    format!("{}\n[checkpoint]\nenabled = false\n", example.replace(data_dir_line, &format!("data_dir = {quoted}")))
}

/// The server whose usage is measured, and (when the run started it) its process.
struct Measured {
    pid: Option<u32>,
    process: Option<ServerProcess>,
}

async fn prepared(options: &BenchOptions, database: &str) -> Result<database::Prepared, BenchError> {
    let changes = planned_changes(options);
    database::prepare(database, scenario::warehouses_needed(options.shape.queries), changes).await
}

fn planned_changes(options: &BenchOptions) -> usize {
    Pacer::new(Instant::now(), options.shape.rate).changes_in(options.warmup + options.duration).max(1)
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    options: &BenchOptions,
    database: &str,
    url: String,
    addr: SocketAddr,
    token: String,
    server: Measured,
    target: String,
    cancel: CancellationToken,
) -> Result<Report, BenchError> {
    let prepared = prepared(options, database).await?;
    measure_prepared(options, database, prepared, url, addr, token, server, target, cancel).await
}

/// The run proper, on a ready server; stops the server process when the run started it.
#[allow(clippy::too_many_arguments)]
async fn measure_prepared(
    options: &BenchOptions,
    database: &str,
    prepared: database::Prepared,
    url: String,
    addr: SocketAddr,
    token: String,
    mut server: Measured,
    target: String,
    cancel: CancellationToken,
) -> Result<Report, BenchError> {
    let outcome = scenario_run(options, database, prepared, url, addr, token, &mut server, target, cancel).await;
    if let Some(process) = server.process.take() {
        eprintln!("stopping opslive serve …");
        let stopped = process.stop(Duration::from_secs(30)).await;
        if let (Ok(_), Err(e)) = (&outcome, stopped) {
            return Err(e);
        }
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn scenario_run(
    options: &BenchOptions,
    database: &str,
    prepared: database::Prepared,
    url: String,
    addr: SocketAddr,
    token: String,
    server: &mut Measured,
    target: String,
    cancel: CancellationToken,
) -> Result<Report, BenchError> {
    let shape = options.shape;
    let queries = scenario::live_queries(shape.queries, shape.limit, &prepared.warehouses);
    if queries.len() < shape.queries {
        return Err(BenchError::Database(format!(
            "{} warehouses make only {} distinct queries",
            prepared.warehouses.len(),
            queries.len()
        )));
    }
    let total = planned_changes(options);
    let epoch = Instant::now();
    let measured_from = Pacer::new(epoch, shape.rate).changes_in(options.warmup).min(total.saturating_sub(1));
    let ledger = Arc::new(Ledger::new(epoch, prepared.base, total, measured_from));
    let plan = Arc::new(Plan::new(&queries, prepared.warehouses, &prepared.customers, total, options.seed));
    let source_ips = (0..options.source_ips.min(250))
        .filter(|_| addr.ip().is_loopback() && options.source_ips > 1)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)))
        .collect();
    let shared = Arc::new(Shared {
        endpoint: Endpoint { url, addr, token, source_ips, setup_timeout: Duration::from_secs(60) },
        ledger: ledger.clone(),
        latency: LatencyRecorder::new(16),
        tally: Tally::default(),
        form: options.form,
    });

    eprintln!("subscribing {} clients to {} live queries ({:?}) …", shape.clients, queries.len(), options.form);
    let clients_cancel = cancel.child_token();
    let (subscribers, clients) = subscribe_all(&queries, options.form, shape.clients, &shared, &clients_cancel).await;
    let ready: usize = subscribers.iter().map(|&s| s as usize).sum();
    let stop_clients = async |clients: Vec<tokio::task::JoinHandle<()>>| {
        clients_cancel.cancel();
        for c in clients {
            let _ = c.await;
        }
    };
    if cancel.is_cancelled() {
        stop_clients(clients).await;
        return Err(BenchError::Interrupted);
    }
    if ready == 0 {
        stop_clients(clients).await;
        let why = shared.tally.error_messages().first().map(|(m, _)| m.clone()).unwrap_or_default();
        return Err(BenchError::NoClients(why));
    }
    eprintln!(
        "{ready} of {} clients subscribed; writing {total} changes at {} /s ({} s warm-up, {} s measured) …",
        shape.clients,
        shape.rate,
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64()
    );

    let rss = server.pid.map(|pid| usage::RssSampler::start(Some(pid), Duration::from_millis(100)));
    let own_rss = usage::RssSampler::start(None, Duration::from_millis(100));
    let rss_start = server.pid.and_then(|pid| usage::memory(Some(pid)).ok()).unwrap_or_default();
    // A moment for the writer's connections to open before the first change is due.
    let start = Instant::now() + Duration::from_millis(200);
    let pacer = Pacer::new(start, shape.rate);
    let writer_cancel = cancel.child_token();
    let writer = match writer::spawn(
        database.to_string(),
        options.writers,
        plan.clone(),
        ledger.clone(),
        pacer,
        writer_cancel.clone(),
    ) {
        Ok(w) => w,
        Err(e) => {
            stop_clients(clients).await;
            return Err(e);
        }
    };
    let window_start = pacer.due(measured_from);
    tokio::time::sleep_until(window_start.into()).await;
    let at_start = Snapshot::take(&shared.tally, server.pid);
    let written = tokio::select! {
        w = writer => w,
        () = cancel.cancelled() => {
            writer_cancel.cancel();
            stop_clients(clients).await;
            return Err(BenchError::Interrupted);
        }
    };
    let at_end = Snapshot::take(&shared.tally, server.pid);
    let writer_stats = match written {
        Ok(Ok(stats)) => stats,
        Ok(Err(e)) => {
            stop_clients(clients).await;
            return Err(e);
        }
        Err(_) => {
            stop_clients(clients).await;
            return Err(BenchError::Io("the writer thread ended without a result".into()));
        }
    };
    let expected = |n: usize| plan.expected(n, &queries, &subscribers);
    // The last frames are on their way: wait for them, not longer than the drain allows.
    let drain_until = Instant::now() + options.drain;
    let mut deliveries = ledger.count(expected);
    while deliveries.missing > 0 && Instant::now() < drain_until && !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        deliveries = ledger.count(expected);
    }
    stop_clients(clients).await;
    let server_exited = server.process.as_mut().and_then(|p| p.exited());
    let rss_peak = match rss {
        Some(s) => s.finish().await,
        None => 0,
    };
    let own_peak = own_rss.finish().await;
    if let Some(status) = server_exited {
        let logs = server.process.as_ref().map(|p| p.recent_logs()).unwrap_or_default();
        return Err(BenchError::Server(format!("the server exited during the run ({status}); its last logs:\n{logs}")));
    }

    let window = at_end.at.saturating_duration_since(at_start.at).as_secs_f64().max(1e-9);
    let measured_commits = (measured_from..total).filter(|&n| ledger.is_committed(n)).count();
    let tally = &shared.tally;
    let server_usage = server.pid.map(|pid| {
        let hwm = usage::memory(Some(pid)).map(|m| m.hwm).unwrap_or_default();
        let cpu = match (at_start.server_cpu, at_end.server_cpu) {
            (Some(a), Some(b)) => usage::cpu_percent(a, b),
            _ => 0.0,
        };
        Usage::new(pid, cpu, rss_start.rss, rss_peak, hwm)
    });
    let own_cpu = match (at_start.own_cpu, at_end.own_cpu) {
        (Some(a), Some(b)) => usage::cpu_percent(a, b),
        _ => 0.0,
    };
    let messages = at_end.messages - at_start.messages;
    let bytes = at_end.bytes - at_start.bytes;
    Ok(Report {
        scenario: options.scenario,
        form: options.form,
        target,
        clients: shape.clients,
        clients_ready: ready,
        queries: queries.len(),
        limit: shape.limit,
        writer: WriterFigures {
            connections: options.writers,
            target_rate: shape.rate,
            achieved_rate: measured_commits as f64 / window,
            committed: ledger.commits() as u64,
            failed: ledger.failures() as u64,
            warmup_s: options.warmup.as_secs_f64(),
            window_s: window,
            max_behind_ms: writer_stats.max_behind.as_secs_f64() * 1000.0,
            errors: writer_stats.errors,
        },
        latency: shared.latency.summary(),
        early_deliveries: tally.early.load(Ordering::Relaxed),
        deliveries,
        foreign_rows: tally.foreign.load(Ordering::Relaxed),
        changed_rows: tally.changed.load(Ordering::Relaxed),
        inconsistent_patches: tally.inconsistencies.load(Ordering::Relaxed),
        resets: tally.resets.load(Ordering::Relaxed),
        seq_gaps: tally.seq_gaps.load(Ordering::Relaxed),
        received: Traffic {
            messages,
            bytes,
            messages_per_s: messages as f64 / window,
            bytes_per_s: bytes as f64 / window,
        },
        server: server_usage,
        bench: Usage::new(std::process::id(), own_cpu, 0, own_peak, usage::memory(None).map(|m| m.hwm).unwrap_or(0)),
        client_errors: tally.errors.load(Ordering::Relaxed),
        error_messages: tally.error_messages(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average: at_end.load_average,
    })
}

/// Counters at one instant of the run.
struct Snapshot {
    at: Instant,
    messages: u64,
    bytes: u64,
    server_cpu: Option<usage::CpuReading>,
    own_cpu: Option<usage::CpuReading>,
    load_average: Option<f64>,
}

impl Snapshot {
    fn take(tally: &Tally, server: Option<u32>) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            messages: tally.messages.load(Ordering::Relaxed),
            bytes: tally.bytes.load(Ordering::Relaxed),
            server_cpu: server.and_then(|pid| usage::cpu(Some(pid)).ok()),
            own_cpu: usage::cpu(None).ok(),
            load_average: usage::load_average(),
        }
    }
}

/// Starts every client and waits until each has its first result or has failed; returns the
/// subscribers of each query and the clients' tasks.
async fn subscribe_all(
    queries: &[LiveQuery],
    form: Form,
    clients: usize,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) -> (Vec<u32>, Vec<tokio::task::JoinHandle<()>>) {
    let documents: Vec<Arc<str>> = queries.iter().map(|q| Arc::from(q.document(form))).collect();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = Vec::with_capacity(clients);
    let mut subscribers = vec![0u32; queries.len()];
    let mut answered = 0;
    let note = |r: Result<usize, String>, subscribers: &mut Vec<u32>| match r {
        Ok(q) => subscribers[q] += 1,
        Err(e) => shared.tally.error(e),
    };
    for index in 0..clients {
        let permit = tokio::select! {
            p = connecting.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = cancel.cancelled() => break,
        };
        let query = scenario::query_of_client(index, queries.len());
        let sub = Subscriber { index, query, document: documents[query].clone(), limit: queries[query].limit };
        let (shared, ready_tx, cancel) = (shared.clone(), ready_tx.clone(), cancel.clone());
        // The permit is released when the client reports, so only handshakes count against it.
        let (report_tx, mut report_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            if let Some(r) = report_rx.recv().await {
                let _ = ready_tx.send(r);
            }
            drop(permit);
        });
        tasks.push(tokio::spawn(client::run(sub, shared, report_tx, cancel)));
        while let Ok(r) = ready_rx.try_recv() {
            answered += 1;
            note(r, &mut subscribers);
        }
    }
    drop(ready_tx);
    while answered < tasks.len() {
        let r = tokio::select! {
            r = ready_rx.recv() => r,
            () = cancel.cancelled() => None,
        };
        let Some(r) = r else { break };
        answered += 1;
        note(r, &mut subscribers);
    }
    (subscribers, tasks)
}

/// The WebSocket URL and socket address of `--server` (`http://host:port` or `ws://…/graphql`).
async fn endpoint_of(server: &str) -> Result<(String, SocketAddr), BenchError> {
    let parsed = url::Url::parse(server).map_err(|e| BenchError::Options(format!("--server {server}: {e}")))?;
    let ws = match parsed.scheme() {
        "http" | "ws" => "ws",
        other => {
            return Err(BenchError::Options(format!(
                "--server {server}: `{other}` is not supported (plain http:// or ws:// only)"
            )));
        }
    };
    let host = parsed.host_str().ok_or_else(|| BenchError::Options(format!("--server {server}: no host")))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| BenchError::Options(format!("--server {server}: {e}")))?
        .next()
        .ok_or_else(|| BenchError::Options(format!("--server {server}: no address")))?;
    let path = match parsed.path() {
        "" | "/" => "/graphql",
        p => p,
    };
    Ok((format!("{ws}://{host}:{port}{path}"), addr))
}

async fn wait_external_ready(readyz: &str, cancel: &CancellationToken) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if server::ready(readyz).await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Server(format!("{readyz} did not answer 200 within 60 s")));
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            () = cancel.cancelled() => return Err(BenchError::Interrupted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_configuration_loads_with_checkpoints_off() {
        let dir = std::env::temp_dir().join("opslive-bench-config-test");
        let text = server_config("postgres://postgres@127.0.0.1:5432/shop", &dir);
        let scratch = tempfile::tempdir().unwrap();
        let (files, full) = demo::access::write(scratch.path(), &text).unwrap();
        let config = crate::config::Config::from_toml(&full).unwrap();
        assert!(!config.checkpoint.enabled);
        assert_eq!(config.data_dir, dir);
        assert_eq!(config.listen.port(), 0);
        assert!(config.auth.hs256_secret.is_some());
        assert!(files.policy.exists());
    }

    #[tokio::test]
    async fn server_addresses() {
        let (url, addr) = endpoint_of("http://127.0.0.1:8080").await.unwrap();
        assert_eq!((url.as_str(), addr), ("ws://127.0.0.1:8080/graphql", "127.0.0.1:8080".parse().unwrap()));
        let (url, _) = endpoint_of("ws://127.0.0.1:9000/graphql").await.unwrap();
        assert_eq!(url, "ws://127.0.0.1:9000/graphql");
        assert!(endpoint_of("https://127.0.0.1").await.is_err());
    }
}

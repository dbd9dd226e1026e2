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

pub mod cdc;
pub mod client;
pub mod database;
pub mod floor;
pub mod frame;
pub mod keep_up;
pub mod latency;
pub mod ledger;
pub mod mirror;
mod redis;
pub mod report;
mod run;
pub mod scenario;
pub mod server;
pub mod usage;
pub mod walsender;
pub mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::demo::{self, LocalPostgres};
use frame::Form;
use report::Report;
use run::Run;
use scenario::{ScenarioKind, Shape};
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
        /// Run against the fan-out floor ([`floor`], `exe fanout-floor`) instead of `exe serve`.
        floor: bool,
        /// `exe serve` instances in one cluster (through a Redis the run starts); the clients
        /// are spread over them, round robin. 1: a lone instance, no Redis.
        instances: usize,
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
    /// Clients beside `shape.clients` that subscribe like them and then stop reading: what a
    /// stuck tab or a client on a dead network costs the others.
    pub frozen: usize,
    pub seed: u64,
    pub target: Target,
}

/// Runs the benchmark; the report says what was measured, including failures (missing
/// deliveries, client errors), which the caller decides how to treat.
pub async fn run(options: BenchOptions, cancel: CancellationToken) -> Result<Report, BenchError> {
    check(&options)?;
    // Thousands of client sockets, and the server started below inherits the limit.
    crate::open_files::raise_to_hard_limit();
    match options.target.clone() {
        Target::Local { exe, pg_bin, floor, instances } => {
            run_local(&options, exe, pg_bin, floor, instances, cancel).await
        }
        Target::External { server, database, token, server_pid } => {
            let (url, addr) = endpoint_of(&server).await?;
            let readyz = format!("http://{addr}/readyz");
            wait_external_ready(&readyz, &cancel).await?;
            let server = Measured { pid: server_pid, process: None, followers: Vec::new() };
            let prepared = prepared(&options, &database).await?;
            let target = "a running server".to_string();
            let also = Vec::new();
            let run = Run { options: &options, database: &database, url, addr, also, token, target, cancel };
            measure_prepared(run, prepared, server).await
        }
    }
}

fn check(o: &BenchOptions) -> Result<(), BenchError> {
    let s = &o.shape;
    if s.clients == 0 || s.queries == 0 || s.limit == 0 || !(s.rate > 0.0 && s.rate.is_finite()) {
        return Err(BenchError::Options("clients, queries, limit and rate must be above 0".into()));
    }
    if matches!(o.target, Target::Local { floor: true, .. }) && (o.form != Form::Patches || s.queries != 1) {
        return Err(BenchError::Options(
            "--floor measures the unfiltered live query in the patch form: use --queries 1 --form patches".into(),
        ));
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
    floor: bool,
    instances: usize,
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
            let outcome = if floor {
                with_floor(options, &pg, exe, cancel).await
            } else {
                with_database(options, &pg, &root, exe, instances.max(1), cancel).await
            };
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
    instances: usize,
    cancel: CancellationToken,
) -> Result<Report, BenchError> {
    let shop = pg.url("shop");
    let text = server_config(&shop, &root.join("opslive"));
    let (files, text) = demo::access::write(&root.join("opslive"), &text)
        .map_err(|e| BenchError::Io(format!("writing the server's configuration in {}: {e}", root.display())))?;
    // Several instances: one cluster through a Redis of the run's own, each instance with its
    // own directory and the same token secret.
    let redis = (instances > 1).then(|| redis::LocalRedis::start(&root.join("redis"))).transpose()?;
    let configs = match &redis {
        None => vec![files.config.clone()],
        Some(redis) => {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            let data_dir =
                serde_json::to_string(&root.join("opslive").display().to_string()).expect("strings serialise");
            let mut configs = Vec::with_capacity(instances);
            for i in 0..instances {
                let dir = root.join(format!("opslive-{i}"));
                let own = serde_json::to_string(&dir.display().to_string()).expect("strings serialise");
                let cluster = format!(
                    "\n[cluster]\nredis_url = \"{}\"\nname = \"bench\"\ninstance = \"i{i}\"\nsecret = \"{secret}\"\n",
                    redis.url
                );
                let config = dir.join("opslive.toml");
                std::fs::create_dir_all(&dir)
                    .and_then(|_| std::fs::write(&config, format!("{}{cluster}", text.replace(&data_dir, &own))))
                    .map_err(|e| BenchError::Io(format!("writing {}: {e}", config.display())))?;
                configs.push(config);
            }
            configs
        }
    };
    // The scenario's warehouses go in before the server starts, so they are in its snapshot.
    let prepared = prepared(options, &shop).await?;
    let mut processes = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        // The first leads (it reads the source); the others start from its replica.
        eprintln!(
            "starting opslive serve{} …",
            if instances > 1 { format!(" (instance {} of {instances})", i + 1) } else { String::new() }
        );
        let args = ["serve", "--log", "info", "--log-format", "json", "--config"].map(std::ffi::OsStr::new);
        let args = args.into_iter().chain([config.as_os_str()]);
        match start_ready(&exe, args, Duration::from_secs(300), &cancel).await {
            Ok(p) => processes.push(p),
            Err(e) => {
                for p in processes {
                    let _ = p.stop(Duration::from_secs(30)).await;
                }
                return Err(e);
            }
        }
    }
    let ttl = options.warmup + options.duration + Duration::from_secs(3600);
    let token = crate::auth::mint_hs256(&files.secret, "admin", serde_json::Map::new(), ttl)
        .map_err(|e| BenchError::Options(format!("minting a token: {e}")))?;
    let process = processes.remove(0);
    let target = match instances {
        1 => format!("opslive serve (pid {}) on a private PostgreSQL", process.pid),
        n => format!(
            "{n} opslive serve instances in one cluster (leader pid {}) on a private PostgreSQL and Redis",
            process.pid
        ),
    };
    let outcome = measure_on(process, processes, options, &shop, token, target, prepared, cancel).await;
    drop(redis);
    outcome
}

/// Starts `exe args…` and waits until it answers `/readyz` (stopping it if it does not).
async fn start_ready<'a>(
    exe: &std::path::Path,
    args: impl IntoIterator<Item = &'a std::ffi::OsStr>,
    ready_within: Duration,
    cancel: &CancellationToken,
) -> Result<ServerProcess, BenchError> {
    let mut process = ServerProcess::start(exe, args, Duration::from_secs(60)).await?;
    let ready = tokio::select! {
        r = process.wait_ready(ready_within) => r,
        () = cancel.cancelled() => Err(BenchError::Interrupted),
    };
    if let Err(e) = ready {
        let _ = process.stop(Duration::from_secs(30)).await;
        return Err(e);
    }
    Ok(process)
}

/// The run proper against a server process the run started (and the other instances of its
/// cluster), which it stops after.
#[allow(clippy::too_many_arguments)]
async fn measure_on(
    process: ServerProcess,
    followers: Vec<ServerProcess>,
    options: &BenchOptions,
    database: &str,
    token: String,
    target: String,
    prepared: database::Prepared,
    cancel: CancellationToken,
) -> Result<Report, BenchError> {
    let addr = process.addr;
    let url = format!("ws://{addr}/graphql");
    let also = followers.iter().map(|p| (format!("ws://{}/graphql", p.addr), p.addr)).collect();
    let server = Measured { pid: Some(process.pid), process: Some(process), followers };
    let run = Run { options, database, url, addr, also, token, target, cancel };
    measure_prepared(run, prepared, server).await
}

/// The same run against the fan-out floor (`exe fanout-floor`) on the same database: no
/// configuration and no token, as it checks none.
async fn with_floor(
    options: &BenchOptions,
    pg: &LocalPostgres,
    exe: PathBuf,
    cancel: CancellationToken,
) -> Result<Report, BenchError> {
    let shop = pg.url("shop");
    let prepared = prepared(options, &shop).await?;
    eprintln!("starting the fan-out floor …");
    let limit = options.shape.limit.to_string();
    let args = ["fanout-floor", "--database", shop.as_str(), "--limit", limit.as_str()].map(std::ffi::OsStr::new);
    let process = start_ready(&exe, args, Duration::from_secs(60), &cancel).await?;
    let target = format!("the fan-out floor (pid {}) on a private PostgreSQL", process.pid);
    measure_on(process, Vec::new(), options, &shop, "none".into(), target, prepared, cancel).await
}

/// The example configuration on `shop`, listening on a port of the kernel's choice, with the
/// replica in memory only (a checkpoint every few seconds is not what a latency run measures),
/// and no limit on live connections per subject or address: every bench client is one token on
/// loopback.
fn server_config(shop: &str, data_dir: &std::path::Path) -> String {
    let example = demo::demo_config(shop, SocketAddr::from(([127, 0, 0, 1], 0)));
    let data_dir_line = "data_dir = \"./data\"";
    assert!(example.contains(data_dir_line), "the example configuration sets data_dir");
    let quoted = serde_json::to_string(&data_dir.display().to_string()).expect("strings serialise");
    format!(
        "{}\n[checkpoint]\nenabled = false\n[limits]\nconnections_per_subject = 0\nconnections_per_address = 0\n",
        example.replace(data_dir_line, &format!("data_dir = {quoted}"))
    )
}

/// The server whose usage is measured, and (when the run started it) its process.
pub(crate) struct Measured {
    pid: Option<u32>,
    process: Option<ServerProcess>,
    /// The other instances of a cluster the run started.
    followers: Vec<ServerProcess>,
}

pub(crate) async fn prepared(options: &BenchOptions, database: &str) -> Result<database::Prepared, BenchError> {
    let changes = planned_changes(options);
    database::prepare(database, scenario::warehouses_needed(options.shape.queries), changes).await
}

pub(crate) fn planned_changes(options: &BenchOptions) -> usize {
    Pacer::new(Instant::now(), options.shape.rate).changes_in(options.warmup + options.duration).max(1)
}

/// The run proper, on a ready server; stops the server process when the run started it.
async fn measure_prepared(
    run: Run<'_>,
    prepared: database::Prepared,
    mut server: Measured,
) -> Result<Report, BenchError> {
    let outcome = run.measure(prepared, &mut server).await;
    for follower in std::mem::take(&mut server.followers) {
        let _ = follower.stop(Duration::from_secs(30)).await;
    }
    if let Some(process) = server.process.take() {
        eprintln!("stopping the server …");
        let stopped = process.stop(Duration::from_secs(30)).await;
        if let (Ok(_), Err(e)) = (&outcome, stopped) {
            return Err(e);
        }
    }
    outcome
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

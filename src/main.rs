//! The `opslive` command line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use opslive::config::{Config, SecretUrl};
use opslive::pipeline::{ApplyLoop, CHANNEL_CAPACITY};
use opslive::source::{SessionKind, Wiring};
use opslive::store::Store;
use opslive::tail::TailWriter;
use opslive::watermark::Watermarks;

/// Live operations dashboard driven by change data capture.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Every key can also be set as OPSLIVE_<KEY>, nested keys
    /// joined by `__` (OPSLIVE_SOURCES__SHOP__URL).
    #[arg(long, short, global = true, env = "OPSLIVE_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `opslive=debug` (also RUST_LOG).
    #[arg(long, global = true, env = "OPSLIVE_LOG", default_value = "info")]
    log: String,
    /// Log format.
    #[arg(long, global = true, env = "OPSLIVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Read every configured source into the in-memory replica and keep it current.
    ///
    /// The replica is checkpointed in `data_dir`: a restart loads it and resumes the slot
    /// (no new snapshot). Watermarks are recorded in the app database every second.
    Serve,
    /// Ask a running `serve` to copy one table again on its own (clears a quarantine).
    Resync {
        /// The table's GraphQL name.
        table: String,
        /// The running server's address (default: `listen` from the configuration).
        #[arg(long)]
        server: Option<String>,
        /// A token of the `admin` role, when the server has authentication configured.
        #[arg(long)]
        token: Option<String>,
    },
    /// Print what opslive sees, one JSON object per line: snapshot rows, then every change.
    ///
    /// Uses a temporary replication slot, so it never disturbs a running `serve`. Reads the
    /// sources from the configuration, or from --url and --table without one.
    Tail {
        /// Source to read (default: every source holding a `--table`, all without one).
        #[arg(long)]
        source: Option<String>,
        /// With a configuration: print only these tables (GraphQL names). With --url: the
        /// tables to watch, as `schema.table` or `table`.
        #[arg(long = "table")]
        tables: Vec<String>,
        /// A PostgreSQL (or `mysql://`/`mariadb://`) URL to read without a configuration file.
        #[arg(long)]
        url: Option<String>,
        /// Start from now: no snapshot rows; changes print as the source sent them.
        #[arg(long)]
        no_snapshot: bool,
        /// Also record the raw pgoutput stream to this file (for bug reports and tests).
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Create the app database if needed and apply its migrations.
    Migrate,
    /// The whole product on this machine, from nothing: a private PostgreSQL (wal_level=logical,
    /// its own port) with the shop's fixture data and a private MariaDB (row binlog, its own
    /// port) with the helpdesk's, the traffic simulator writing into both, and `serve` reading
    /// both. Prints the URLs and a `tail` command to watch; Ctrl-C stops everything.
    Demo {
        /// Where the demo database's files go (recreated at each run).
        #[arg(long, default_value = "./data/demo")]
        data_dir: PathBuf,
        /// The demo database's port (when taken, or 0: any free port).
        #[arg(long, default_value_t = 54329)]
        pg_port: u16,
        /// The demo helpdesk's MariaDB port (when taken, or 0: any free port).
        #[arg(long, default_value_t = 33069)]
        mariadb_port: u16,
        /// opslive's HTTP address (when the port is taken: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// No simulated traffic: change the database yourself.
        #[arg(long)]
        no_sim: bool,
        /// Directory of PostgreSQL's server binaries (default: `pg_config --bindir`, else the
        /// newest /usr/lib/postgresql/*/bin).
        #[arg(long)]
        pg_bin: Option<PathBuf>,
        /// The built dashboard (default: `web/out`, here or in the source tree, when built).
        #[arg(long)]
        web_dir: Option<PathBuf>,
        #[command(flatten)]
        traffic: SimArgs,
    },
    /// Mint a development token (HS256, signed with `auth.hs256_secret`) and print it.
    ///
    /// For the demo and for development: production tokens come from the identity provider.
    /// Claims are `key=value`; a value that parses as JSON is taken as JSON, so
    /// `--claim warehouses='["W1","W2"]'` is an array and `--claim region=eu` a string.
    Token {
        /// The role the token carries (in the claim `auth.role_claim`).
        #[arg(long)]
        role: String,
        /// A claim to add, `key=value`; repeat for more.
        #[arg(long = "claim", value_name = "KEY=VALUE", value_parser = opslive::auth::parse_claim)]
        claims: Vec<(String, serde_json::Value)>,
        /// Who the token speaks for (`sub`): recorded with acknowledgements and definitions.
        #[arg(long)]
        sub: Option<String>,
        /// The token's own id (`jti`), to revoke it alone later.
        #[arg(long)]
        jti: Option<String>,
        /// How long the token is valid, e.g. `8h`, `30m`.
        #[arg(long, default_value = "8h", value_parser = opslive::sim::parse_duration)]
        ttl: std::time::Duration,
    },
    /// Write realistic business traffic into a source database until stopped (Ctrl-C).
    ///
    /// Orders are placed across channels and move through their statuses, stock is reserved,
    /// picked and replenished, tickets are opened, assigned, answered and solved, agents come
    /// and go, and payment reconciliation batches are matched, now and then with exceptions.
    /// The volume follows the time of day in each region (quiet at night, peaks late morning and
    /// evening). The database needs the fixture schema and seed data
    /// (fixtures/postgres/schema.sql and seed.sql); nothing is written when they are missing.
    Simulate {
        /// Source to write to (default: the first configured).
        #[arg(long, conflicts_with = "url")]
        source: Option<String>,
        /// A PostgreSQL URL to write to without a configuration file.
        #[arg(long)]
        url: Option<String>,
        /// A MariaDB/MySQL URL where tickets and agents live, apart from the shop (default: the
        /// configured MariaDB source watching `tickets`, if any; else the shop's database).
        #[arg(long)]
        helpdesk_url: Option<String>,
        #[command(flatten)]
        traffic: SimArgs,
    },
    /// Load test of live queries: N WebSocket clients on live queries while a writer commits R
    /// changes/s into PostgreSQL; prints commit → frame latency, deliveries, traffic, and the
    /// server's CPU and memory.
    ///
    /// Self-contained by default: a private PostgreSQL with the fixtures and `opslive serve` of
    /// this binary are started for the run and stopped after it. Exits non-zero when an expected
    /// delivery is missing or a client failed.
    Bench(Box<BenchArgs>),
    /// How fast PostgreSQL CDC drains a backlog: opslive's source and replica beside a consumer
    /// that reads the same WAL over the same transport and discards it (the floor), and
    /// PostgreSQL's own decoding in a backend (the ceiling), on a private PostgreSQL started for
    /// the run. Prints rows/s of each and opslive/floor per round and their medians.
    CdcBench {
        /// Rows in each round's backlog.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Rows per source transaction (1 for single-row transactions).
        #[arg(long, default_value_t = 100)]
        tx_rows: u64,
        /// Backlog drains (0: none).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds of each step of the paced-rate search (0: no search): the rate rises by half
        /// each step until the commit-to-consumer lag's p99 passes one second.
        #[arg(long, default_value_t = 0.0)]
        paced_seconds: f64,
        /// Rows per second of the paced search's first step.
        #[arg(long, default_value_t = 5_000.0)]
        paced_start: f64,
        /// Most steps of the paced search per consumer.
        #[arg(long, default_value_t = 12)]
        paced_steps: usize,
        /// Rows of a burst written while each consumer follows (0: none): its catch-up time.
        #[arg(long, default_value_t = 0)]
        burst_rows: u64,
        /// PostgreSQL's server binaries (default: found on this machine).
        #[arg(long)]
        pg_bin: Option<PathBuf>,
        /// Both consumers ask for binary tuples (`binary 'true'`) instead of text.
        #[arg(long)]
        binary: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The do-nothing fan-out server `opslive bench --floor` measures (see `bench::floor`).
    #[command(hide = true)]
    FanoutFloor {
        /// The database whose `orders` inserts are forwarded (a trigger is added to it).
        #[arg(long)]
        database: String,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Keys in the clients' result.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// spread: 1,000 clients over 100 (warehouse × status) queries, latest 50, 1,000 changes/s;
    /// hot: 1,000 clients on the latest 100 orders, 100 changes/s; custom: set the numbers below.
    #[arg(long, value_enum, default_value_t = opslive::bench::scenario::ScenarioKind::Spread)]
    scenario: opslive::bench::scenario::ScenarioKind,
    /// WebSocket clients, one subscription each (default: the scenario's).
    #[arg(long)]
    clients: Option<usize>,
    /// Committed changes per second (default: the scenario's).
    #[arg(long)]
    rate: Option<f64>,
    /// Distinct live queries; 1 is the unfiltered one (default: the scenario's).
    #[arg(long)]
    queries: Option<usize>,
    /// Rows in each live result (default: the scenario's).
    #[arg(long)]
    limit: Option<usize>,
    /// Live query form: `patches` (reset, then upserts and removed keys) or `full` results.
    #[arg(long, value_enum, default_value_t = opslive::bench::frame::Form::Patches)]
    form: opslive::bench::frame::Form,
    /// Measured time, after the warm-up.
    #[arg(long, default_value = "30s", value_parser = opslive::sim::parse_duration)]
    duration: std::time::Duration,
    /// Writing before the measurement starts (not in the latency figures).
    #[arg(long, default_value = "5s", value_parser = opslive::sim::parse_duration)]
    warmup: std::time::Duration,
    /// Writer connections to PostgreSQL.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// How long to wait for the last deliveries once the writer is done.
    #[arg(long, default_value = "10s", value_parser = opslive::sim::parse_duration)]
    drain: std::time::Duration,
    /// Connect the clients from this many loopback addresses (127.0.0.1 … 127.0.0.N), for a
    /// server that limits connections per address.
    #[arg(long, default_value_t = 1)]
    source_ips: usize,
    /// Also run the scenario with this many more clients that subscribe and then stop reading,
    /// and report both runs (the same numbers without and with them).
    #[arg(long, default_value_t = 0)]
    frozen: usize,
    /// Random seed of the writer's plan (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// A running server to measure instead (`http://127.0.0.1:8080`); needs --database and --token.
    #[arg(long, requires_all = ["database", "token"])]
    server: Option<String>,
    /// The source database that server watches (fixture schema); the writer inserts orders there.
    #[arg(long, requires = "server")]
    database: Option<String>,
    /// A token the server accepts, of a role that sees `orders` (e.g. from `opslive token --role admin`).
    #[arg(long, requires = "server")]
    token: Option<String>,
    /// The running server's process id, to report its CPU and memory.
    #[arg(long, requires = "server")]
    server_pid: Option<u32>,
    /// Directory of PostgreSQL's server binaries for the private database.
    #[arg(long, conflicts_with = "server")]
    pg_bin: Option<PathBuf>,
    /// Measure the fan-out floor instead of opslive: the same clients, writer and database
    /// against a server that only forwards each insert (PostgreSQL's NOTIFY) to every client,
    /// on the same stack; what this machine's loopback and scheduler cost (`--queries 1`).
    #[arg(long, conflicts_with = "server")]
    floor: bool,
    /// Run this many `serve` instances in one cluster (through a Redis the bench starts, from
    /// `redis-server` on this machine) and spread the clients over them, round robin; the report
    /// gives the leader's usage and each follower's.
    #[arg(long, default_value_t = 1, conflicts_with_all = ["server", "floor"])]
    instances: usize,
}

impl BenchArgs {
    fn options(self) -> anyhow::Result<opslive::bench::BenchOptions> {
        let preset = self.scenario.shape();
        let shape = opslive::bench::scenario::Shape {
            clients: self.clients.unwrap_or(preset.clients),
            rate: self.rate.unwrap_or(preset.rate),
            queries: self.queries.unwrap_or(preset.queries),
            limit: self.limit.unwrap_or(preset.limit),
        };
        let target = match (self.server, self.database, self.token) {
            (Some(server), Some(database), Some(token)) => {
                opslive::bench::Target::External { server, database, token, server_pid: self.server_pid }
            }
            _ => opslive::bench::Target::Local {
                exe: std::env::current_exe().context("cannot find this executable to run `serve` from")?,
                pg_bin: self.pg_bin,
                floor: self.floor,
                instances: self.instances,
            },
        };
        Ok(opslive::bench::BenchOptions {
            scenario: self.scenario,
            shape,
            form: self.form,
            duration: self.duration,
            warmup: self.warmup,
            writers: self.writers,
            drain: self.drain,
            source_ips: self.source_ips,
            frozen: self.frozen,
            seed: self.seed.unwrap_or_else(rand::random),
            target,
        })
    }
}

/// The URL of the configured MariaDB source that watches a `tickets` table: where the
/// simulator's helpdesk lives when it is apart from the shop (as in the demo).
fn helpdesk_source(config: &Config) -> Option<String> {
    config.sources.values().find_map(|source| {
        let tickets = source.tables().iter().any(|t| t.table.rsplit('.').next() == Some("tickets"));
        (source.kind() == opslive::config::SourceKind::Mariadb && tickets).then(|| source.url().expose().to_string())
    })
}

/// The simulator's traffic settings (shared by `simulate` and `demo`).
#[derive(clap::Args, Clone)]
struct SimArgs {
    /// Average business events (transactions) per second over a day.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Incident spikes: order intake jumps FACTOR times for about 40 s (a flash sale), then a
    /// wave of tickets follows; the first 15 s after start, then every 4 to 8 minutes.
    /// `--burst` alone means a factor of 5.
    #[arg(long, value_name = "FACTOR", num_args = 0..=1, default_missing_value = "5")]
    burst: Option<f64>,
    /// Real time one simulated day takes, e.g. `10m` to show a whole day's shape in ten
    /// minutes; `24h` follows the wall clock.
    #[arg(long, default_value = "24h", value_parser = opslive::sim::parse_duration)]
    day_length: std::time::Duration,
    /// Simulated time at start: `HH:MM` (UTC, today) or an RFC 3339 timestamp (default: now).
    #[arg(long)]
    start: Option<String>,
    /// Random seed: with the same seed and --start, a run follows the same day and spikes and
    /// plans alike (default: random, logged at start).
    #[arg(long)]
    seed: Option<u64>,
    /// Database connections to write with.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

impl SimArgs {
    fn options(self) -> anyhow::Result<opslive::sim::SimOptions> {
        let start = self
            .start
            .map(|s| opslive::sim::parse_start(&s, chrono::Utc::now().date_naive()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--start: {e}"))?;
        Ok(opslive::sim::SimOptions {
            rate: self.rate,
            burst: self.burst,
            day_length: self.day_length,
            start,
            seed: self.seed.unwrap_or_else(rand::random),
            connections: self.connections,
            helpdesk: None,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Cancelled on Ctrl-C or SIGTERM.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let config = Config::load(cli.config.as_deref())?;
            opslive::serve::serve(config, shutdown_token()).await?;
            Ok(())
        }
        Command::Token { role, claims, sub, jti, ttl } => {
            let config = Config::load(cli.config.as_deref())?;
            let mut claims: serde_json::Map<String, serde_json::Value> = claims.into_iter().collect();
            for (name, value) in [("sub", sub), ("jti", jti)] {
                if let Some(value) = value {
                    if claims.contains_key(name) {
                        anyhow::bail!("`{name}` is given both as --{name} and as --claim");
                    }
                    claims.insert(name.into(), value.into());
                }
            }
            let token = opslive::auth::mint_for(&config.auth, &role, claims, ttl)?;
            println!("{token}");
            Ok(())
        }
        Command::Resync { table, server, token } => {
            let base = match server {
                Some(s) => s,
                None => format!("http://{}", Config::load(cli.config.as_deref())?.listen),
            };
            let url = format!("{}/tables/{}/resync", base.trim_end_matches('/'), table);
            // reqwest is built without a default TLS backend; one is installed once here.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut request = reqwest::Client::new().post(&url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach the server at {base} (is `opslive serve` running?)"))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if !status.is_success() {
                bail!("the server refused ({status}): {}", body.trim());
            }
            eprintln!("{}", body.trim());
            Ok(())
        }
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            let url = config.app_database_url().context("set app_database.url (or configure a source)")?;
            Store::open(&url, config.app_database_ca_file()).await?;
            eprintln!("app database {url} is up to date");
            Ok(())
        }
        Command::Simulate { source, url, helpdesk_url, traffic } => {
            let mut options = traffic.options()?;
            options.helpdesk = helpdesk_url;
            let url = match url {
                Some(url) => url,
                None => {
                    let config = Config::load(cli.config.as_deref())?;
                    if options.helpdesk.is_none() {
                        options.helpdesk = helpdesk_source(&config);
                    }
                    // The simulator writes the PostgreSQL fixture schema.
                    let mut postgres = config.postgres_sources();
                    let pg = match &source {
                        Some(s) => postgres.find(|(name, _)| *name == s).map(|(_, pg)| pg).with_context(|| {
                            format!("no PostgreSQL source named `{s}` in the configuration (the simulator writes to PostgreSQL)")
                        })?,
                        None => postgres.next().map(|(_, pg)| pg).context("the configuration has no PostgreSQL source; pass --url")?,
                    };
                    pg.url.expose().to_string()
                }
            };
            let stats = Arc::new(opslive::sim::SimStats::default());
            opslive::sim::run(&url, options, stats, shutdown_token()).await?;
            Ok(())
        }
        Command::Demo { data_dir, pg_port, mariadb_port, listen, no_sim, pg_bin, web_dir, traffic } => {
            let options = opslive::demo::DemoOptions {
                pg_bin,
                web_dir,
                data_dir,
                pg_port,
                mariadb_port,
                listen,
                sim: if no_sim { None } else { Some(traffic.options()?) },
            };
            opslive::demo::run(options, shutdown_token()).await?;
            Ok(())
        }
        Command::CdcBench {
            rows,
            tx_rows,
            rounds,
            paced_seconds,
            paced_start,
            paced_steps,
            burst_rows,
            pg_bin,
            binary,
            json,
        } => {
            let options = opslive::bench::cdc::CdcOptions {
                rows,
                tx_rows,
                rounds,
                paced_seconds,
                paced_start,
                paced_steps,
                burst_rows,
                pg_bin,
                binary,
            };
            let report = opslive::bench::cdc::run(options, shutdown_token()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(())
        }
        Command::FanoutFloor { database, listen, limit } => {
            // The line the bench's server process waits for, in `serve`'s JSON log form.
            let listening = |addr: std::net::SocketAddr| {
                eprintln!("{}", serde_json::json!({ "fields": { "message": "listening", "addr": addr.to_string() } }));
            };
            opslive::bench::floor::serve(&database, listen, limit, shutdown_token(), listening).await?;
            Ok(())
        }
        Command::Bench(args) => {
            let json = args.json;
            let options = args.options()?;
            // With frozen clients: the same run without them first, for the comparison.
            let mut runs = Vec::new();
            if options.frozen > 0 {
                let baseline = opslive::bench::BenchOptions { frozen: 0, ..options.clone() };
                runs.push(opslive::bench::run(baseline, shutdown_token()).await?);
            }
            runs.push(opslive::bench::run(options, shutdown_token()).await?);
            if json {
                let value = match runs.as_slice() {
                    [only] => serde_json::to_value(only)?,
                    [without, with] => serde_json::json!({ "without_frozen": without, "with_frozen": with }),
                    _ => unreachable!("one or two runs"),
                };
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                for report in &runs {
                    println!("{report}");
                }
                if let [without, with] = runs.as_slice() {
                    println!("{}", opslive::bench::report::frozen_comparison(without, with));
                }
            }
            let failures: Vec<String> = runs.iter().flat_map(|r| r.failures()).collect();
            if !failures.is_empty() {
                bail!("the run failed: {}", failures.join("; "));
            }
            Ok(())
        }
        Command::Tail { source, tables, url, no_snapshot, capture } => {
            let (config, filter) = match url {
                Some(url) => {
                    if tables.is_empty() {
                        bail!("--url needs at least one --table to watch");
                    }
                    SecretUrl::parse(&url).context("--url is not a valid URL")?;
                    let list = tables
                        .iter()
                        .map(|t| format!("{{ table = {} }}", toml_string(t)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let mariadb = url.starts_with("mysql:") || url.starts_with("mariadb:");
                    let kind = if mariadb { "mariadb" } else { "postgres" };
                    // tail keeps no state: the app database a configuration needs without a
                    // PostgreSQL source is never connected to.
                    let app = if mariadb { "[app_database]\nurl = \"postgres://127.0.0.1/unused\"\n" } else { "" };
                    let text = format!(
                        "{app}[sources.tail]\nkind = \"{kind}\"\nurl = {}\ntables = [{list}]\n",
                        toml_string(&url)
                    );
                    (Config::from_toml(&text)?, Vec::new())
                }
                None => (Config::load(cli.config.as_deref())?, tables),
            };
            tail(config, source, filter, !no_snapshot, capture).await
        }
    }
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

async fn tail(
    config: Config,
    source: Option<String>,
    filter: Vec<String>,
    snapshot: bool,
    capture: Option<PathBuf>,
) -> anyhow::Result<()> {
    let registry = Arc::new(config.registry()?);
    let mut wanted = Vec::new();
    for t in &filter {
        let spec = registry.by_name(t).with_context(|| format!("no watched table named `{t}`"))?;
        wanted.push(spec.source.to_string());
    }
    // The named source; else every source holding a table asked for (all without a filter),
    // so tables of several databases print side by side in one commit-ordered stream each.
    let sources: Vec<(&String, &opslive::config::SourceConfig)> = match &source {
        Some(s) => vec![
            config.sources.get_key_value(s).with_context(|| format!("no source named `{s}` in the configuration"))?,
        ],
        None => config.sources.iter().filter(|(name, _)| wanted.is_empty() || wanted.contains(name)).collect(),
    };
    if sources.is_empty() {
        bail!("the configuration has no sources");
    }
    if capture.is_some() && sources.len() > 1 {
        bail!("--capture records one source's stream: choose it with --source");
    }
    let cancel = shutdown_token();
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let memory = Arc::new(opslive::tx_memory::TxMemory::new(config.transactions.buffer_bytes));
    let mut watermarks = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (name, sc) in sources {
        let marks = Arc::new(Watermarks::default());
        // One session of its own, whose server-side state (a temporary slot) ends with it.
        let wiring = Wiring {
            registry: registry.clone(),
            watermarks: marks.clone(),
            stats: Arc::default(),
            requests: Arc::default(),
            durable: false,
            resume: Arc::new(|| None),
            session: SessionKind::OneOff { snapshot, capture: capture.clone() },
            memory: memory.clone(),
            take_over: false,
        };
        let source = opslive::source::open(name, sc, wiring)?;
        watermarks.insert(Arc::from(name.as_str()), marks);
        let (tx, cancel) = (tx.clone(), cancel.clone());
        tasks.spawn(async move {
            let result = source.run(tx, cancel.clone()).await;
            // One source failing ends the tail: its lines would silently stop otherwise.
            cancel.cancel();
            result
        });
    }
    drop(tx);
    // Without a snapshot the tables start empty: changes to rows never copied are expected.
    let replica =
        if snapshot { opslive::replica::Replica::new() } else { opslive::replica::Replica::new().loaded_mid_stream() };
    let (mut apply, _versions) = ApplyLoop::starting_from(replica, watermarks);
    apply.memory = memory;
    let mut writer = TailWriter::new(std::io::stdout().lock(), filter, !snapshot);
    let stop = cancel.clone();
    let mut broken = None;
    // Output goes through a blocking writer; a closed pipe (`| head`) ends tail quietly.
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(apply.run(rx, Vec::new(), |event, applied| {
            if broken.is_none()
                && let Err(e) = writer.write(event, applied)
            {
                broken = Some(e);
                stop.cancel();
            }
        }))
    });
    cancel.cancel();
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let result = match joined {
            Ok(Ok(())) | Ok(Err(opslive::error::SourceError::Closed(_))) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(e.into()),
        };
        if outcome.is_ok() {
            outcome = result;
        }
    }
    outcome.and_then(|()| match broken {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    })
}

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
use opslive::source::postgres::PostgresSource;
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
    /// Each start takes a fresh snapshot on a new replication slot (the replica lives in
    /// memory), then streams. Watermarks are recorded in the app database every second.
    Serve,
    /// Print what opslive sees, one JSON object per line: snapshot rows, then every change.
    ///
    /// Uses a temporary replication slot, so it never disturbs a running `serve`. Reads the
    /// sources from the configuration, or from --url and --table without one.
    Tail {
        /// Source to read (default: the first configured).
        #[arg(long)]
        source: Option<String>,
        /// With a configuration: print only these tables (GraphQL names). With --url: the
        /// tables to watch, as `schema.table` or `table`.
        #[arg(long = "table")]
        tables: Vec<String>,
        /// A PostgreSQL URL to read without a configuration file.
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
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            let url = config.app_database_url().context("set app_database.url (or configure a source)")?;
            Store::open(&url).await?;
            eprintln!("app database {url} is up to date");
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
                    let text = format!(
                        "[sources.tail]\nkind = \"postgres\"\nurl = {}\ntables = [{list}]\n",
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
    let (name, sc) = match &source {
        Some(s) => {
            config.sources.get_key_value(s).with_context(|| format!("no source named `{s}` in the configuration"))?
        }
        None => config.sources.iter().next().context("the configuration has no sources")?,
    };
    for t in &filter {
        if registry.by_name(t).is_none() {
            bail!("no watched table named `{t}`");
        }
    }
    let watermarks = Arc::new(Watermarks::default());
    // A temporary slot of its own: dropped by the server when tail's session ends.
    let slot = format!("opslive_tail_{}", std::process::id());
    let mut pg = PostgresSource::new(name, &sc.url, slot, sc.publication_name(name), registry, watermarks.clone())?;
    pg.temporary = true;
    pg.snapshot = snapshot;
    pg.chunk_rows = sc.snapshot_chunk_rows;
    pg.capture = capture;
    let cancel = shutdown_token();
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let source_task = tokio::spawn(pg.run(tx, cancel.clone()));
    let (apply, _versions) = ApplyLoop::new(HashMap::from([(Arc::from(name.as_str()), watermarks)]));
    let mut writer = TailWriter::new(std::io::stdout().lock(), filter, !snapshot);
    let stop = cancel.clone();
    let mut broken = None;
    // Output goes through a blocking writer; a closed pipe (`| head`) ends tail quietly.
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(apply.run(rx, |event, applied| {
            if broken.is_none()
                && let Err(e) = writer.write(event, applied)
            {
                broken = Some(e);
                stop.cancel();
            }
        }))
    });
    cancel.cancel();
    match source_task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(opslive::error::SourceError::Closed(_))) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
    .and_then(|()| match broken {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    })
}

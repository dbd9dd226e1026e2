//! `opslive demo`: the whole product on one machine, from nothing, in one command.
//!
//! A private PostgreSQL (the shop: orders, inventory, reconciliation) and a private MariaDB (the
//! helpdesk: tickets and agents) are created from the machine's binaries and loaded with the
//! fixtures; opslive serves both with the example configuration, two sources of two kinds in one
//! replica, while the simulator writes business traffic into each. Everything stops in order on
//! Ctrl-C — simulator, server (which drops its slot), databases — so nothing is left running and
//! the next run starts clean.

pub mod access;
pub mod inbox;
mod mariadb;
pub mod monitoring;
mod postgres;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use mariadb::{BINLOG_SETTINGS as MARIADB_BINLOG_SETTINGS, LocalMariaDb, LocalMariaError};
pub use postgres::{LocalPgError, LocalPostgres};

use crate::api::Listener;
use crate::config::{Config, ConfigError};
use crate::serve::ServeError;
use crate::sim::{SimCollector, SimError, SimOptions, SimStats};

/// The fixtures every demo loads, built into the binary so the demo runs from any directory.
pub const FIXTURE_SCHEMA: &str = include_str!("../../fixtures/postgres/schema.sql");
pub const FIXTURE_SEED: &str = include_str!("../../fixtures/postgres/seed.sql");
/// The helpdesk's fixtures, for the demo's MariaDB.
pub const FIXTURE_HELPDESK_SCHEMA: &str = include_str!("../../fixtures/mariadb/schema.sql");
pub const FIXTURE_HELPDESK_SEED: &str = include_str!("../../fixtures/mariadb/seed.sql");
/// The documented example configuration, which the demo runs as it is (database URLs and
/// listen address aside).
pub const EXAMPLE_CONFIG: &str = include_str!("../../fixtures/opslive.example.toml");
const EXAMPLE_URL: &str = "postgres://postgres@127.0.0.1:5432/shop";
const EXAMPLE_HELPDESK_URL: &str = "mysql://root@127.0.0.1:3306/helpdesk";
/// The example's helpdesk source, which [`demo_config`] folds into the shop's.
const HELPDESK_SOURCE: &str = "helpdesk";
const EXAMPLE_LISTEN: &str = "listen = \"127.0.0.1:8080\"";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Postgres(#[from] LocalPgError),
    #[error(transparent)]
    Mariadb(#[from] LocalMariaError),
    #[error("loading the fixtures into the demo database: {0}")]
    Fixtures(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("writing the demo's policy and configuration in {dir}: {error}")]
    Files { dir: PathBuf, error: std::io::Error },
    #[error("{0}")]
    Io(String),
}

pub struct DemoOptions {
    /// PostgreSQL's server binaries; `None`: found on this machine.
    pub pg_bin: Option<PathBuf>,
    /// Where the database's files go (recreated at each run).
    pub data_dir: PathBuf,
    /// The database's port; taken or 0: any free one.
    pub pg_port: u16,
    /// The helpdesk's MariaDB port; taken or 0: any free one.
    pub mariadb_port: u16,
    /// opslive's HTTP address; when the port is taken, any free one.
    pub listen: SocketAddr,
    /// `None`: no simulated traffic.
    pub sim: Option<SimOptions>,
    /// The built dashboard; `None`: `web/out` here or in the source tree, when built.
    pub web_dir: Option<PathBuf>,
}

/// The dashboard to serve: the one asked for, else a built `web/out` in the working directory
/// or in the source tree this binary was built from.
fn find_web_dir(asked: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = asked {
        return Some(dir.to_path_buf());
    }
    [PathBuf::from("web/out"), Path::new(env!("CARGO_MANIFEST_DIR")).join("web/out")]
        .into_iter()
        .find(|d| crate::api::web::is_built(d))
        .map(|d| std::path::absolute(&d).unwrap_or(d))
}

/// Runs the demo until `cancel`.
pub async fn run(options: DemoOptions, cancel: CancellationToken) -> Result<(), DemoError> {
    let bin = match &options.pg_bin {
        Some(dir) => LocalPostgres::binaries_in(dir)?,
        None => LocalPostgres::find_binaries()?,
    };
    let root = cluster_root(&options.data_dir);
    let port = free_or_any(options.pg_port);
    // From here on the database is stopped however this function ends (`LocalPostgres` stops
    // it when dropped).
    let pg = fixture_database(bin, root, port, &[]).await?;
    let shop = pg.url("shop");
    // The helpdesk moves to MariaDB: the shop keeps no copy of it.
    drop_helpdesk(&shop).await?;
    // Stopped however this function ends, like the PostgreSQL above.
    let maria = helpdesk_database(&options.data_dir, free_or_any(options.mariadb_port)).await?;
    let helpdesk = maria.url("helpdesk");

    // Bound here, so the address printed below already takes connections.
    let listener = match Listener::bind(options.listen).await {
        Ok(l) => l,
        Err(_) => Listener::bind(SocketAddr::new(options.listen.ip(), 0)).await.map_err(ServeError::from)?,
    };
    let listen = listener.addr;
    // The fixture policy and a secret made for this run, in files next to the database: the
    // policy reloads when edited, and `opslive token --config` mints more tokens.
    let (access, text) = access::write(&options.data_dir, &demo_config_with_helpdesk(&shop, &helpdesk, listen))
        .map_err(|error| DemoError::Files { dir: options.data_dir.clone(), error })?;
    let mut config = Config::from_toml(&text)?;
    // The database was created afresh: an earlier demo's checkpoint describes another one.
    config.data_dir =
        std::path::absolute(&options.data_dir).unwrap_or_else(|_| options.data_dir.clone()).join("opslive");
    config.web_dir = find_web_dir(options.web_dir.as_deref());
    let web = config.web_dir.is_some();
    let stale = crate::checkpoint::path_in(&config.data_dir);
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(|e| DemoError::Io(format!("cannot remove {}: {e}", stale.display())))?;
    }
    // The app database is new with the database: it gets the demo's KPIs and alert rules.
    let app = config.app_database_url().ok_or_else(|| DemoError::Io("the demo has no app database".into()))?;
    // One connection pool for the seeding (it creates and migrates the app database).
    let store = crate::store::Store::open(&app, config.app_database_ca_file())
        .await
        .map_err(|e| DemoError::Fixtures(format!("the demo's app database: {e}")))?;
    let (kpis, rules) = monitoring::seed(&store).await?;
    tracing::info!(kpis, rules, "the demo's KPIs and alert rules are defined");
    // Notifications go to stand-ins on this machine; contact points' secrets are sealed with a
    // key made for this run (the app database is new with it).
    let key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    };
    config.notifications.secret_key = Some(key.clone());
    config.notifications.public_url = url::Url::parse(&format!("http://{listen}/")).ok();
    let inbox = inbox::Inbox::start(cancel.child_token())
        .await
        .map_err(|e| DemoError::Io(format!("the notification stand-ins: {e}")))?;
    {
        let fail = |e: String| DemoError::Fixtures(format!("the demo's contact points: {e}"));
        let sealer = crate::notify::secret::SecretBox::from_base64(&key).map_err(|e| fail(e.to_string()))?;
        inbox::seed(&store, &sealer, &inbox).await.map_err(fail)?;
    }
    drop(store);
    let serve_cancel = cancel.child_token();
    let stats = Arc::new(SimStats::default());
    let extra: Vec<Box<dyn prometheus_client::collector::Collector>> = match options.sim {
        Some(_) => vec![Box::new(SimCollector(stats.clone()))],
        None => Vec::new(),
    };
    let mut server: JoinHandle<Result<(), ServeError>> =
        tokio::spawn(crate::serve::serve_on(config, listener, extra, serve_cancel.clone()));

    let sim_cancel = cancel.child_token();
    let mut sim: Option<JoinHandle<Result<(), SimError>>> = options.sim.as_ref().map(|o| {
        let (url, stats, cancel) = (shop.clone(), stats.clone(), sim_cancel.clone());
        let o = SimOptions { helpdesk: Some(helpdesk.clone()), ..o.clone() };
        tokio::spawn(async move { crate::sim::run(&url, o, stats, cancel).await })
    });
    let databases = Databases { shop: &shop, helpdesk: &helpdesk, pg: &pg, maria: &maria };
    print_banner(&databases, listen, options.sim.as_ref(), &access, web, &inbox);

    // Runs until Ctrl-C, or until the server or the simulator fails.
    let mut outcome: Result<(), DemoError> = Ok(());
    tokio::select! {
        () = cancel.cancelled() => {}
        r = &mut server => {
            outcome = r.expect("the server task does not panic").map_err(DemoError::from);
            server = tokio::spawn(async { Ok(()) });
        }
        Some(r) = async { match sim.as_mut() { Some(h) => Some(h.await), None => None } } => {
            outcome = r.expect("the simulator task does not panic").map_err(DemoError::from);
            sim = None;
        }
    }
    // Writers first, then the reader (it drops its slot), then the database.
    sim_cancel.cancel();
    if let Some(h) = sim
        && let Ok(Err(e)) = h.await
        && outcome.is_ok()
    {
        outcome = Err(e.into());
    }
    serve_cancel.cancel();
    if let Ok(Err(e)) = server.await
        && outcome.is_ok()
    {
        outcome = Err(e.into());
    }
    eprintln!("stopping the demo databases …");
    tokio::task::spawn_blocking(move || drop((pg, maria))).await.expect("stopping the databases does not panic");
    outcome
}

/// The cluster's directory: under `data_dir`, unless PostgreSQL's service account (used when
/// running as root) cannot reach it there.
pub fn cluster_root(data_dir: &Path) -> PathBuf {
    let data_dir = &std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let wanted = data_dir.join("postgres");
    if postgres::reachable_by_service_account(data_dir) {
        return wanted;
    }
    let fallback = std::env::temp_dir().join("opslive-demo");
    tracing::info!(
        wanted = %data_dir.display(),
        used = %fallback.display(),
        "the postgres account cannot reach the data directory; the demo database lives elsewhere"
    );
    fallback
}

/// A fresh PostgreSQL cluster under `root` on `port` (with extra server `settings`), started,
/// with the fixture schema and seed data in database `shop`: what the demo serves and the load
/// tool (`opslive bench`) measures.
pub async fn fixture_database(
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    settings: &[(&str, &str)],
) -> Result<LocalPostgres, DemoError> {
    eprintln!("starting a private PostgreSQL on port {port} in {} …", root.display());
    let settings: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let pg = tokio::task::spawn_blocking(move || {
        let mut pg = LocalPostgres::create(bin, &root, port)?;
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pg.start_with(&settings)?;
        Ok::<_, LocalPgError>(pg)
    })
    .await
    .expect("the database setup does not panic")?;
    eprintln!("loading the fixtures (orders, inventory, tickets, reconciliation) …");
    load_fixtures(&pg.url("postgres"), &pg.url("shop")).await?;
    Ok(pg)
}

/// `port` when it is free (and not 0), else any free port.
pub fn free_or_any(port: u16) -> u16 {
    if port != 0 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        return port;
    }
    std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(port)
}

/// The example configuration pointed at the demo's databases and address: the shop in
/// PostgreSQL at `shop`, the helpdesk in MariaDB at `helpdesk`.
pub fn demo_config_with_helpdesk(shop: &str, helpdesk: &str, listen: SocketAddr) -> String {
    assert!(
        EXAMPLE_CONFIG.contains(EXAMPLE_URL)
            && EXAMPLE_CONFIG.contains(EXAMPLE_HELPDESK_URL)
            && EXAMPLE_CONFIG.contains(EXAMPLE_LISTEN)
    );
    EXAMPLE_CONFIG
        .replace(EXAMPLE_URL, shop)
        .replace(EXAMPLE_HELPDESK_URL, helpdesk)
        .replace(EXAMPLE_LISTEN, &format!("listen = \"{listen}\""))
}

/// The example configuration with everything in one PostgreSQL database at `url` (the
/// PostgreSQL fixture schema has the helpdesk too): the helpdesk source's tables are watched
/// in the shop's `public` schema, under the same names, so the GraphQL schema is the same.
/// What tests and benchmarks that compare GraphQL with SQL use.
pub fn demo_config(url: &str, listen: SocketAddr) -> String {
    let text = demo_config_with_helpdesk(url, EXAMPLE_HELPDESK_URL, listen);
    let mut doc: toml::Table = toml::from_str(&text).expect("the example configuration is TOML");
    let sources = doc.get_mut("sources").and_then(|s| s.as_table_mut()).expect("the example has sources");
    let helpdesk = sources.remove(HELPDESK_SOURCE).expect("the example has a helpdesk source");
    let mut moved = helpdesk.get("tables").and_then(|t| t.as_array()).cloned().expect("the helpdesk has tables");
    for table in &mut moved {
        let table = table.as_table_mut().expect("a table entry");
        let name = table["table"].as_str().expect("a table name").to_string();
        table.insert("table".into(), toml::Value::String(format!("public.{name}")));
    }
    let first = sources.keys().next().cloned().expect("the example has a shop source");
    let shop = sources.get_mut(&first).and_then(|s| s.get_mut("tables")).and_then(|t| t.as_array_mut());
    shop.expect("the shop has tables").extend(moved);
    toml::to_string(&doc).expect("a TOML table serialises")
}

/// Drops the helpdesk's tables from the shop database (the fixture schema has them for
/// PostgreSQL-only setups), so in the demo they exist once, in MariaDB.
async fn drop_helpdesk(shop_url: &str) -> Result<(), DemoError> {
    let fail = |e: tokio_postgres::Error| DemoError::Fixtures(crate::error::describe_pg_error(&e));
    let (client, conn) = tokio_postgres::connect(shop_url, tokio_postgres::NoTls).await.map_err(fail)?;
    tokio::spawn(conn);
    client.batch_execute("DROP TABLE public.tickets, public.agents").await.map_err(fail)
}

/// A fresh MariaDB under `data_dir` on `port`, started, with the helpdesk fixtures in database
/// `helpdesk`.
pub async fn helpdesk_database(data_dir: &Path, port: u16) -> Result<LocalMariaDb, DemoError> {
    let root = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf()).join("mariadb");
    eprintln!("starting a private MariaDB on port {port} in {} …", root.display());
    let create = move || LocalMariaDb::create(&root, port);
    let mut maria = tokio::task::spawn_blocking(create).await.expect("the database setup does not panic")?;
    maria.start().await?;
    eprintln!("loading the helpdesk fixtures (tickets, agents) …");
    let fail = |e: mysql_async::Error| DemoError::Fixtures(format!("the helpdesk database: {e}"));
    let mut admin = mysql_async::Conn::from_url(maria.url("mysql")).await.map_err(fail)?;
    admin.query_drop("CREATE DATABASE helpdesk CHARACTER SET utf8mb4").await.map_err(fail)?;
    drop(admin);
    let mut conn = mysql_async::Conn::from_url(maria.url("helpdesk")).await.map_err(fail)?;
    conn.query_drop(FIXTURE_HELPDESK_SCHEMA).await.map_err(fail)?;
    conn.query_drop(FIXTURE_HELPDESK_SEED).await.map_err(fail)?;
    // Statistics for the snapshot's progress estimates, as ANALYZE gives PostgreSQL's.
    conn.query_drop("ANALYZE TABLE tickets, agents").await.map_err(fail)?;
    Ok(maria)
}

async fn load_fixtures(admin_url: &str, shop_url: &str) -> Result<(), DemoError> {
    let fail = |e: tokio_postgres::Error| DemoError::Fixtures(crate::error::describe_pg_error(&e));
    let connect = |url: String| async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok::<_, tokio_postgres::Error>(client)
    };
    connect(admin_url.to_string()).await.map_err(fail)?.batch_execute("CREATE DATABASE shop").await.map_err(fail)?;
    let shop = connect(shop_url.to_string()).await.map_err(fail)?;
    shop.batch_execute(FIXTURE_SCHEMA).await.map_err(fail)?;
    shop.batch_execute(FIXTURE_SEED).await.map_err(fail)?;
    // Statistics give the snapshot progress its row estimates.
    shop.batch_execute("ANALYZE").await.map_err(fail)?;
    Ok(())
}

/// The demo's two databases, for the banner.
struct Databases<'a> {
    shop: &'a str,
    helpdesk: &'a str,
    pg: &'a LocalPostgres,
    maria: &'a LocalMariaDb,
}

fn print_banner(
    db: &Databases<'_>,
    listen: SocketAddr,
    sim: Option<&SimOptions>,
    access: &access::AccessFiles,
    web: bool,
    inbox: &inbox::Inbox,
) {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "opslive".into());
    let traffic = match sim {
        Some(o) => format!("{} events/s on average{}", o.rate, if o.burst.is_some() { ", with bursts" } else { "" }),
        None => "off (--no-sim)".into(),
    };
    let (dashboard, status) = if web {
        (
            format!("http://{listen}/   (open it in a browser; pick a demo user to sign in)"),
            format!("http://{listen}/status"),
        )
    } else {
        (
            "not built: `bash scripts/demo.sh` builds it (or `npm ci --prefix web && npm run build --prefix web`)"
                .into(),
            format!("http://{listen}/   (open it in a browser)"),
        )
    };
    let dir = |p: PathBuf| p.parent().map(|p| p.display().to_string()).unwrap_or_default();
    println!(
        "\nopslive demo is running\n\
         \n  dashboard  {dashboard}\
         \n  shop       {shop}   (PostgreSQL: orders, inventory, reconciliation)\
         \n             (files and log in {pg_dir})\
         \n  helpdesk   {helpdesk}   (MariaDB: tickets, agents)\
         \n             (files and log in {maria_dir})\
         \n  status     {status}\
         \n  metrics    http://{listen}/metrics\
         \n  readiness  http://{listen}/readyz\
         \n  traffic    {traffic}\
         \n  notified   http://{inbox}/   (what the demo's Slack, SMS, email and webhook stand-ins received)\
         \n{graphql}\
         \n\n  watch the changes arrive, orders from PostgreSQL beside tickets from MariaDB:\
         \n    {exe} tail --config {config} --table orders --table tickets --no-snapshot\
         \n  or query the sources:\
         \n    psql {shop}\
         \n    mariadb -h 127.0.0.1 -P {maria_port} -u root helpdesk\
         \n\nCtrl-C stops everything.\n",
        shop = db.shop,
        helpdesk = db.helpdesk,
        pg_dir = dir(db.pg.log_file()),
        maria_dir = dir(db.maria.log_file()),
        maria_port = db.maria.port(),
        config = access.config.display(),
        inbox = inbox.http,
        graphql = access::banner(access, listen, &exe).unwrap_or_else(|e| format!("\n  graphql    no tokens: {e}\n")),
    );
}

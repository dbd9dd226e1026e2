//! Configuration: one TOML file, overlaid by `OPSLIVE_…` environment variables.
//!
//! Nested keys are joined with `__` in the environment, so `[sources.shop] url = …` is also
//! `OPSLIVE_SOURCES__SHOP__URL`. Unknown keys and bad values are refused with the key path;
//! passwords in URLs never appear in logs or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Deserializer};

use crate::registry::{Registry, RegistryError};

/// Everything opslive reads at start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP/GraphQL server.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where opslive keeps local files: the replica's checkpoint.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Checkpoints of the replica in `data_dir`, so a restart resumes instead of copying again.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// opslive's own database (never part of a publication).
    #[serde(default)]
    pub app_database: AppDatabase,
    /// The databases to read changes from, by name: read by kind after the rest (see
    /// [`Config::from_figment`]).
    #[serde(skip)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Each source's `kind`, read first: it decides which keys the rest of the source may have.
    #[serde(default, rename = "sources")]
    kinds: BTreeMap<String, KindOnly>,
    /// How requests prove who they are.
    #[serde(default)]
    pub auth: AuthConfig,
    /// KPIs: the zone "today" is counted in, and how long their history is kept.
    #[serde(default)]
    pub kpi: KpiConfig,
    /// Alert notifications: the key contact points' secrets are sealed with, the dashboard's
    /// public address for links, and how sends are retried.
    #[serde(default)]
    pub notifications: NotificationsConfig,
    /// What one client may ask of the GraphQL API: document size, live connections per
    /// subject and address, subscriptions per connection and their rate.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Change streams (`…Changes`): how much of the past is kept for clients that resume.
    #[serde(default)]
    pub changes: ChangesConfig,
    /// Large transactions: the memory one may take on its way through (see `crate::tx_memory`).
    #[serde(default)]
    pub transactions: TransactionsConfig,
    /// The role policy file (see fixtures/policy.toml), relative to the working directory. It is
    /// reloaded when it changes. Without one, no role may read anything.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// The built web app (`web/out`), served at `/`; without it `/` only says how to get one.
    #[serde(default)]
    pub web_dir: Option<PathBuf>,
    /// Several instances sharing the work through Redis (see `crate::cluster`); without it,
    /// this instance reads the sources itself.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// The file this was read from: the server reads it again for tables added at run time.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// `[auth]`: the keys tokens are verified with and the rules their claims must meet (see
/// `crate::auth`; defaults in `crate::auth::settings`). With neither `hs256_secret` nor
/// `jwks_url`, every request is refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Shared HS256 secret, at least 32 bytes: development, the demo and `opslive token`.
    pub hs256_secret: Option<crate::auth::Secret>,
    /// The issuer's JSON Web Key Set (RS256/ES256 public keys), e.g.
    /// `https://TENANT.auth0.com/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// When set, tokens must carry exactly this `iss`.
    pub issuer: Option<String>,
    /// When set, a token's `aud` must include one of these (one string or a list).
    #[serde(deserialize_with = "crate::auth::settings::one_or_many")]
    pub audience: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default 0).
    pub leeway_seconds: u64,
    /// The claim holding the role: a name (default `role`), or a namespace claim and a name in
    /// it, `https://opslive.dev/claims.role`.
    pub role_claim: String,
    /// How often the JWKS is fetched again (default 5m).
    #[serde(deserialize_with = "crate::auth::settings::duration")]
    pub jwks_refresh: std::time::Duration,
    /// Least time between the refetches that tokens naming unknown keys cause (default 30s).
    #[serde(deserialize_with = "crate::auth::settings::duration")]
    pub jwks_min_refetch: std::time::Duration,
    /// Development only: the web app offers `dev_users` and `POST /auth/dev-login` signs a token
    /// for one of them. Refused at start unless the secret is HS256 and `listen` is loopback.
    pub dev_login: bool,
    /// The people `dev_login` offers.
    pub dev_users: Vec<DevUser>,
    /// The OpenID Connect provider the web app signs in with (authorization code + PKCE); its
    /// tokens are verified through `jwks_url` like any other.
    pub oidc: Option<OidcClient>,
}

/// `[[auth.dev_users]]`: a person the development sign-in offers.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DevUser {
    pub sub: String,
    pub role: String,
    /// Further claims the role's policy reads (`warehouses = ["WH-BER"]`).
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// `[auth.oidc]`: what the browser needs to start an authorization-code flow.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all(serialize = "camelCase"))]
pub struct OidcClient {
    pub issuer: String,
    pub client_id: String,
    pub redirect_uri: String,
    #[serde(default = "default_oidc_scopes")]
    pub scopes: String,
}

fn default_oidc_scopes() -> String {
    "openid profile".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDatabase {
    /// Default: the first PostgreSQL source's server, database `opslive`. Required when no
    /// source is PostgreSQL.
    pub url: Option<SecretUrl>,
    /// TLS: the CA certificate (PEM) the server's certificate must chain to, as `sslrootcert`
    /// in the URL; alone it means `sslmode=verify-full`. Default: the source's, when the URL is
    /// the first PostgreSQL source's.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// `[kpi]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// The IANA time zone whose midnight starts a `today` window (`Europe/Berlin`).
    #[serde(deserialize_with = "time_zone")]
    pub time_zone: chrono_tz::Tz,
    /// How long per-minute KPI history is kept (`30d`, `P90D`).
    #[serde(deserialize_with = "duration_micros")]
    pub history_retention: i64,
}

impl Default for KpiConfig {
    fn default() -> Self {
        KpiConfig { time_zone: chrono_tz::UTC, history_retention: 30 * 86_400_000_000 }
    }
}

impl KpiConfig {
    pub fn history_retention_micros(&self) -> i64 {
        self.history_retention
    }
}

/// `[limits]`: what one client may ask of the GraphQL API, so that a runaway script, a tab
/// opened a hundred times or a load tool pointed at the wrong server cannot take what everyone
/// else needs. Each is answered with a protocol-correct refusal (see README, "Limits"). For the
/// connection counts, 0 means no limit.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Deepest selection a document may have (GraphiQL's introspection query needs 13).
    pub max_depth: usize,
    /// Most fields one document may select, aliases and fragments counted where they are used.
    pub max_fields: usize,
    /// Live connections (WebSocket) one subject (`sub`) may hold at once.
    pub connections_per_subject: usize,
    /// Live connections one client address may hold at once. Behind a reverse proxy every
    /// client has the proxy's address: raise it or set 0 there.
    pub connections_per_address: usize,
    /// Operations one connection may have open at once.
    pub subscriptions_per_connection: usize,
    /// Subscribes one connection may send per second, on average…
    pub subscribes_per_second: f64,
    /// …and at once (a page that opens with its twenty tiles).
    pub subscribe_burst: u32,
    /// Result bytes that may wait for one connection whose client stopped reading; past it
    /// the connection is closed (1008) and what waited is freed.
    pub max_pending_bytes: usize,
    /// Longest a write to one client may wait for its socket (the kernel's buffers full: the
    /// client stopped reading); past it the connection is closed (1008).
    pub write_timeout_seconds: f64,
}

impl LimitsConfig {
    pub fn write_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.write_timeout_seconds)
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_depth: 16,
            max_fields: 2_000,
            connections_per_subject: 100,
            connections_per_address: 1_000,
            subscriptions_per_connection: 200,
            subscribes_per_second: 20.0,
            subscribe_burst: 100,
            max_pending_bytes: 32 * 1024 * 1024,
            write_timeout_seconds: 10.0,
        }
    }
}

/// `[changes]`: the change log that `…Changes` subscriptions read and resume from. A client
/// away for longer than the log reaches back (by rows or by time, whichever is shorter) gets
/// `CURSOR_EXPIRED` and reads the table again.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChangesConfig {
    /// Row changes kept, across every table.
    pub retain_rows: usize,
    /// Seconds a transaction is kept.
    pub retain_seconds: f64,
    /// Seconds a change stream with no news for its subscriber goes without a cursor while
    /// the log moves on: a quiet subscriber that reconnects resumes from near the head instead
    /// of from a cursor the log has evicted meanwhile.
    pub heartbeat_seconds: f64,
}

impl Default for ChangesConfig {
    fn default() -> Self {
        ChangesConfig { retain_rows: 100_000, retain_seconds: 3600.0, heartbeat_seconds: 10.0 }
    }
}

impl ChangesConfig {
    pub fn retention(&self) -> crate::changes::Retention {
        crate::changes::Retention { rows: self.retain_rows, age_micros: (self.retain_seconds * 1e6) as i64 }
    }

    pub fn heartbeat(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.heartbeat_seconds)
    }
}

/// `[transactions]`: memory kept for transactions on their way from a source to the engines.
/// A transaction larger than a quarter of it streams through in parts, and one whose row
/// changes outgrow a quarter reaches the live queries, KPIs, alerts and change streams as a
/// reload of each table it touched; readers see it whole at its commit either way.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionsConfig {
    pub buffer_bytes: usize,
}

impl Default for TransactionsConfig {
    fn default() -> Self {
        TransactionsConfig { buffer_bytes: crate::tx_memory::DEFAULT_BUFFER_BYTES }
    }
}

/// `[notifications]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// 32 bytes in base64 (`openssl rand -base64 32`); better given as
    /// `OPSLIVE_NOTIFICATIONS__SECRET_KEY`. Without it, contact points with secrets cannot be
    /// stored.
    pub secret_key: Option<String>,
    /// The dashboard's address as people reach it (`https://ops.example.com/`): notifications
    /// link to the alert there.
    pub public_url: Option<url::Url>,
    /// Attempts before a notification is given up (dead-lettered with its last error).
    pub max_attempts: u32,
    /// Seconds a channel has to answer one request.
    pub timeout_seconds: f64,
    /// Seconds before the first retry; each next one waits twice as long, up to
    /// `max_backoff_seconds`.
    pub retry_backoff_seconds: f64,
    pub max_backoff_seconds: f64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            secret_key: None,
            public_url: None,
            max_attempts: 8,
            timeout_seconds: 10.0,
            retry_backoff_seconds: 1.0,
            max_backoff_seconds: 300.0,
        }
    }
}

fn time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(|_| {
        serde::de::Error::custom(format!("`{name}` is not an IANA time zone such as `Europe/Berlin` or `UTC`"))
    })
}

fn duration_micros<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = String::deserialize(d)?;
    crate::duration::parse_micros(&text).map_err(serde::de::Error::custom)
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Off: the replica lives only in memory and every start copies the tables again.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between checkpoints while the replica changes (at least four times the time
    /// the last one took). The slot keeps the WAL written since the last checkpoint.
    #[serde(default = "default_checkpoint_interval")]
    pub interval_seconds: f64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig { enabled: true, interval_seconds: default_checkpoint_interval() }
    }
}

impl CheckpointConfig {
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.interval_seconds.max(0.05))
    }
}

fn default_true() -> bool {
    true
}

fn default_checkpoint_interval() -> f64 {
    5.0
}

fn default_heartbeat() -> f64 {
    10.0
}

/// `[sources.NAME]`: one database to read changes from; `kind` says which, and which keys apply.
#[derive(Debug)]
pub enum SourceConfig {
    /// PostgreSQL through logical replication (`pgoutput`).
    Postgres(PostgresConfig),
    /// MariaDB through its row binlog.
    Mariadb(MariadbConfig),
}

/// `kind = "postgres"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Read before, into [`KindOnly`].
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// `postgres://user:password@host:port/database`
    pub url: SecretUrl,
    /// Replication slot; default `opslive_<source>`.
    pub slot: Option<String>,
    /// Publication; default `opslive_<source>`. Created when missing.
    pub publication: Option<String>,
    /// Rows per snapshot chunk handed to the replica.
    #[serde(default = "default_snapshot_chunk")]
    pub snapshot_chunk_rows: usize,
    /// Seconds between heartbeats written through the slot (`pg_logical_emit_message`), so the
    /// slot advances while the watched tables are quiet; 0 turns them off.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: f64,
    /// TLS to the server: the CA certificate (PEM) the server's certificate must chain to, as
    /// `sslrootcert` in the URL. Alone it means `sslmode=verify-full`; the URL's `sslmode` (libpq's
    /// `disable`, `prefer` (the default), `require`, `verify-ca`, `verify-full`) can say otherwise.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Ask pgoutput for column values in binary form (PostgreSQL 14+). Used only when every
    /// watched column's type has a binary reader in opslive; otherwise the source streams text
    /// and the log says which column stopped it.
    #[serde(default = "default_postgres_binary")]
    pub binary: bool,
    /// `schema.table`, or `table` in `public`.
    pub tables: Vec<TableConfig>,
}

/// Whether PostgreSQL sources ask for binary tuples unless told: binary, the cheaper of the two
/// per row for the walsender (6 % less in a backend decoding alone) and for opslive (7–16 %
/// less), as `opslive cdc-bench [--binary]` measured it (README, "Binary tuples against text").
pub const DEFAULT_POSTGRES_BINARY: bool = true;

fn default_postgres_binary() -> bool {
    DEFAULT_POSTGRES_BINARY
}

/// `kind = "mariadb"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MariadbConfig {
    /// Read before, into [`KindOnly`].
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// `mysql://user:password@host:port/database` (or `mariadb://`); the database is where
    /// tables named without one live.
    pub url: SecretUrl,
    /// The replica id the binlog stream registers with: unique among everything replicating
    /// from the server. Default: derived from the source's name.
    pub server_id: Option<u32>,
    /// Rows per snapshot chunk handed to the replica.
    #[serde(default = "default_snapshot_chunk")]
    pub snapshot_chunk_rows: usize,
    /// Seconds between the server's binlog heartbeats while nothing is written, so a quiet
    /// source still reports that it is current; 0 turns them off.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: f64,
    /// A table opslive writes `NOW(6)` into every `heartbeat_seconds` (created when missing;
    /// `table` in the URL's database, or `database.table`): the row comes back through the
    /// binlog, so the heartbeat's age is measured to the microsecond (binlog event times are
    /// whole seconds). The user then needs CREATE (once), INSERT and UPDATE on it. Default:
    /// none (the server's own heartbeats).
    pub heartbeat_table: Option<String>,
    /// TLS to the server: the CA certificate (PEM) the server's certificate must chain to.
    /// Setting it turns TLS on; without it, `?require_ssl=true` in the URL uses the system's
    /// built-in roots (`&verify_identity=true` also checks the host name).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// `database.table`, or `table` in the URL's database.
    pub tables: Vec<TableConfig>,
}

/// Which kind of database a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Postgres,
    Mariadb,
}

/// A source's table as far as its kind (the other keys are read by kind).
#[derive(Debug, Deserialize)]
struct KindOnly {
    kind: SourceKind,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres",
            SourceKind::Mariadb => "mariadb",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// `schema.table` (a database for MariaDB), or `table` in the source's default: `public`
    /// for PostgreSQL, the URL's database for MariaDB.
    pub table: String,
    /// Name in GraphQL and `tail`; default: the table name. Unique across sources.
    pub name: Option<String>,
    /// Columns to keep ordered indexes on (the ones people filter and sort by).
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Columns that never enter memory (personal data).
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

fn default_snapshot_chunk() -> usize {
    1024
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: `{key}`: {message}")]
    Key { key: String, message: String },
}

impl From<RegistryError> for ConfigError {
    fn from(e: RegistryError) -> Self {
        ConfigError::Invalid(e.to_string())
    }
}

impl Config {
    /// Reads the file (if given) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::Missing(path.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let mut config = Self::from_figment(figment.merge(env_overlay()))?;
        config.path = path.map(Path::to_path_buf);
        Ok(config)
    }

    /// Parses TOML text with the environment overlay (for tests and embedded defaults).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)).merge(env_overlay()))
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        // One message per problem, each naming its key and where it came from.
        let invalid = |errors: Vec<figment::Error>| {
            ConfigError::Invalid(errors.iter().map(describe).collect::<Vec<_>>().join("; "))
        };
        let mut config: Config = figment.extract().map_err(|e| invalid(e.into_iter().collect()))?;
        // Each source by its kind, from its own table, so that a problem keeps its key path
        // (serde's tagged enums lose it).
        let mut errors = Vec::new();
        for (name, KindOnly { kind }) in &config.kinds {
            let table = figment.focus(&format!("sources.{name}"));
            let source = match kind {
                SourceKind::Postgres => table.extract().map(SourceConfig::Postgres),
                SourceKind::Mariadb => table.extract().map(SourceConfig::Mariadb),
            };
            match source {
                Ok(source) => {
                    config.sources.insert(name.clone(), source);
                }
                Err(e) => errors.extend(e.into_iter().map(|mut e| {
                    e.path.splice(0..0, ["sources".to_string(), name.clone()]);
                    e
                })),
            }
        }
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let limit =
            |key: &str, message: &str| ConfigError::Key { key: format!("limits.{key}"), message: message.into() };
        if self.limits.max_depth < 2 {
            return Err(limit("max_depth", "at least 2: `{ orders { id } }` is 2 deep"));
        }
        if self.limits.max_fields == 0 {
            return Err(limit("max_fields", "at least 1"));
        }
        if self.limits.subscriptions_per_connection == 0 {
            return Err(limit("subscriptions_per_connection", "at least 1"));
        }
        if !(self.limits.subscribes_per_second.is_finite() && self.limits.subscribes_per_second > 0.0) {
            return Err(limit("subscribes_per_second", "a number above 0"));
        }
        if self.limits.subscribe_burst == 0 {
            return Err(limit("subscribe_burst", "at least 1"));
        }
        if !(self.limits.write_timeout_seconds.is_finite() && self.limits.write_timeout_seconds > 0.0) {
            return Err(limit("write_timeout_seconds", "a number of seconds above 0"));
        }
        if self.limits.max_pending_bytes < 64 * 1024 {
            return Err(limit("max_pending_bytes", "at least 65536: one result must fit"));
        }
        let changes =
            |key: &str, message: &str| ConfigError::Key { key: format!("changes.{key}"), message: message.into() };
        if self.changes.retain_rows == 0 {
            return Err(changes("retain_rows", "at least 1"));
        }
        if !(self.changes.retain_seconds.is_finite() && self.changes.retain_seconds > 0.0) {
            return Err(changes("retain_seconds", "a number of seconds above 0"));
        }
        if !(self.changes.heartbeat_seconds.is_finite() && self.changes.heartbeat_seconds >= 0.1) {
            return Err(changes("heartbeat_seconds", "a number of seconds, at least 0.1"));
        }
        for (name, source) in &self.sources {
            let key = |k: &str| format!("sources.{name}.{k}");
            if !is_simple_identifier(name) {
                return Err(ConfigError::Key {
                    key: format!("sources.{name}"),
                    message: "source names must be lowercase letters, digits and _".into(),
                });
            }
            match source {
                SourceConfig::Postgres(pg) => {
                    for (k, v) in [("slot", pg.slot_name(name)), ("publication", pg.publication_name(name))] {
                        if !is_simple_identifier(&v) || v.len() > 63 {
                            return Err(ConfigError::Key {
                                key: key(k),
                                message: format!("`{v}` must be at most 63 lowercase letters, digits and _"),
                            });
                        }
                    }
                    if !matches!(pg.url.0.scheme(), "postgres" | "postgresql") {
                        return Err(ConfigError::Key {
                            key: key("url"),
                            message: format!("expected a postgres:// URL, got {}", pg.url),
                        });
                    }
                }
                SourceConfig::Mariadb(m) => {
                    if !matches!(m.url.0.scheme(), "mysql" | "mariadb") {
                        return Err(ConfigError::Key {
                            key: key("url"),
                            message: format!("expected a mysql:// URL, got {}", m.url),
                        });
                    }
                    if m.server_id == Some(0) {
                        return Err(ConfigError::Key {
                            key: key("server_id"),
                            message: "0 is not a replica id: use 1 to 4294967295".into(),
                        });
                    }
                    if m.database().is_none() && m.tables.iter().any(|t| !t.table.contains('.')) {
                        return Err(ConfigError::Key {
                            key: key("url"),
                            message: "name the database in the URL (`mysql://…/helpdesk`), or every table as `database.table`"
                                .into(),
                        });
                    }
                }
            }
            if source.tables().is_empty() {
                return Err(ConfigError::Key { key: key("tables"), message: "list at least one table".into() });
            }
            if source.snapshot_chunk_rows() == 0 {
                return Err(ConfigError::Key { key: key("snapshot_chunk_rows"), message: "must be at least 1".into() });
            }
            for (i, t) in source.tables().iter().enumerate() {
                let (schema, table) = t.schema_and_table(source.default_schema());
                let tkey = |k: &str| format!("sources.{name}.tables[{i}].{k}");
                if schema.is_empty() || table.is_empty() || t.table.matches('.').count() > 1 {
                    return Err(ConfigError::Key {
                        key: tkey("table"),
                        message: format!("`{}` is not `schema.table` or `table`", t.table),
                    });
                }
                let gql = t.graphql_name(source.default_schema());
                if !is_graphql_name(&gql) {
                    return Err(ConfigError::Key {
                        key: tkey("name"),
                        message: format!(
                            "`{gql}` is not a GraphQL name (letters, digits, _; not starting with a digit or __)"
                        ),
                    });
                }
                if let Some(taken) = crate::policy::names::reserved_collision(&gql) {
                    return Err(ConfigError::Key {
                        key: tkey("name"),
                        message: format!(
                            "table `{}` would be `{gql}` in GraphQL, whose {taken} is opslive's own: \
                             give it another GraphQL name with `name = \"…\"` in its [[sources.{name}.tables]] entry",
                            t.table
                        ),
                    });
                }
                if let Some(c) = t.indexes.iter().find(|c| t.exclude.contains(c)) {
                    return Err(ConfigError::Key {
                        key: tkey("indexes"),
                        message: format!("column `{c}` is both indexed and excluded"),
                    });
                }
            }
        }
        self.registry()?;
        if let Some(app) = self.app_database_url() {
            for (name, source) in &self.sources {
                if let SourceConfig::Postgres(pg) = source
                    && same_database(&app.0, &pg.url.0)
                {
                    return Err(ConfigError::Key {
                        key: "app_database.url".into(),
                        message: format!(
                            "opslive's own database must not be the database of source `{name}` ({app}): its tables would be replicated back"
                        ),
                    });
                }
            }
        } else if !self.sources.is_empty() {
            return Err(ConfigError::Key {
                key: "app_database.url".into(),
                message: "no PostgreSQL source to keep opslive's own state beside: set app_database.url to a PostgreSQL database (postgres://…/opslive)".into(),
            });
        }
        Ok(())
    }

    /// The watched tables of every source.
    pub fn registry(&self) -> Result<Registry, ConfigError> {
        let registry = Registry::default();
        for (name, source) in &self.sources {
            for t in source.tables() {
                let (schema, table) = t.schema_and_table(source.default_schema());
                registry.add(
                    Arc::from(name.as_str()),
                    schema,
                    table,
                    &t.graphql_name(source.default_schema()),
                    t.indexes.iter().map(|c| Arc::from(c.as_str())).collect(),
                    t.exclude.iter().map(|c| Arc::from(c.as_str())).collect(),
                )?;
            }
        }
        Ok(registry)
    }

    /// The app database URL (always PostgreSQL): configured, or the first PostgreSQL source's
    /// server with database `opslive`.
    pub fn app_database_url(&self) -> Option<SecretUrl> {
        if let Some(url) = &self.app_database.url {
            return Some(url.clone());
        }
        let mut url = self.postgres_sources().next()?.1.url.0.clone();
        url.set_path("/opslive");
        Some(SecretUrl(url))
    }

    /// The app database's root certificate: configured, or the first PostgreSQL source's when
    /// the app database is on that source's server.
    pub fn app_database_ca_file(&self) -> Option<&std::path::Path> {
        match &self.app_database.url {
            Some(_) => self.app_database.tls_ca_file.as_deref(),
            None => self
                .app_database
                .tls_ca_file
                .as_deref()
                .or_else(|| self.postgres_sources().next().and_then(|(_, pg)| pg.tls_ca_file.as_deref())),
        }
    }

    /// The PostgreSQL sources, in name order.
    pub fn postgres_sources(&self) -> impl Iterator<Item = (&String, &PostgresConfig)> {
        self.sources.iter().filter_map(|(name, s)| match s {
            SourceConfig::Postgres(pg) => Some((name, pg)),
            SourceConfig::Mariadb(_) => None,
        })
    }
}

impl SourceConfig {
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::Postgres(_) => SourceKind::Postgres,
            SourceConfig::Mariadb(_) => SourceKind::Mariadb,
        }
    }

    /// The keys every kind has.
    fn shared(&self) -> (&SecretUrl, &[TableConfig], usize) {
        match self {
            SourceConfig::Postgres(c) => (&c.url, &c.tables, c.snapshot_chunk_rows),
            SourceConfig::Mariadb(c) => (&c.url, &c.tables, c.snapshot_chunk_rows),
        }
    }

    pub fn url(&self) -> &SecretUrl {
        self.shared().0
    }

    pub fn tables(&self) -> &[TableConfig] {
        self.shared().1
    }

    pub fn snapshot_chunk_rows(&self) -> usize {
        self.shared().2
    }

    /// Where a table named without a schema lives.
    pub fn default_schema(&self) -> &str {
        match self {
            SourceConfig::Postgres(_) => "public",
            SourceConfig::Mariadb(c) => c.database().unwrap_or_default(),
        }
    }

    /// What a checkpoint's positions belong to: positions from another origin (a new slot,
    /// another server) mean nothing to it, and the source copies its tables afresh.
    pub fn origin(&self, source: &str) -> String {
        match self {
            SourceConfig::Postgres(c) => c.slot_name(source),
            SourceConfig::Mariadb(c) => {
                let u = &c.url.0;
                format!("binlog of {}:{}", u.host_str().unwrap_or("localhost"), u.port().unwrap_or(3306))
            }
        }
    }
}

impl PostgresConfig {
    pub fn slot_name(&self, source: &str) -> String {
        self.slot.clone().unwrap_or_else(|| format!("opslive_{source}"))
    }

    pub fn publication_name(&self, source: &str) -> String {
        self.publication.clone().unwrap_or_else(|| format!("opslive_{source}"))
    }

    pub fn heartbeat(&self) -> Option<std::time::Duration> {
        (self.heartbeat_seconds > 0.0).then(|| std::time::Duration::from_secs_f64(self.heartbeat_seconds))
    }
}

impl MariadbConfig {
    /// The URL's database, if it names one.
    pub fn database(&self) -> Option<&str> {
        Some(self.url.0.path().trim_start_matches('/')).filter(|d| !d.is_empty())
    }

    /// The replica id: configured, or one derived from the source's name (stable across
    /// restarts, unlikely to meet another replica's).
    pub fn server_id(&self, source: &str) -> u32 {
        self.server_id.unwrap_or_else(|| 0x4000_0000 | (crc32fast::hash(source.as_bytes()) & 0x3FFF_FFFF))
    }

    pub fn heartbeat(&self) -> Option<std::time::Duration> {
        (self.heartbeat_seconds > 0.0).then(|| std::time::Duration::from_secs_f64(self.heartbeat_seconds))
    }
}

impl TableConfig {
    pub fn schema_and_table<'a>(&'a self, default_schema: &'a str) -> (&'a str, &'a str) {
        self.table.split_once('.').unwrap_or((default_schema, &self.table))
    }

    pub fn graphql_name(&self, default_schema: &str) -> String {
        self.name.clone().unwrap_or_else(|| self.schema_and_table(default_schema).1.to_string())
    }
}

fn env_overlay() -> Env {
    // OPSLIVE_CONFIG and OPSLIVE_LOG are read by the command line, not the file's keys.
    Env::prefixed("OPSLIVE_").split("__").ignore(&["config", "log", "log_format"])
}

fn describe(e: &figment::Error) -> String {
    let key = if e.path.is_empty() { String::new() } else { format!("`{}`: ", e.path.join(".")) };
    let origin = match &e.metadata {
        Some(m) if m.name.contains("environment") => {
            let var = format!("OPSLIVE_{}", e.path.join("__").to_uppercase());
            format!(" (from environment variable {var})")
        }
        Some(m) => match &m.source {
            Some(figment::Source::File(p)) => format!(" (in {})", p.display()),
            _ => String::new(),
        },
        None => String::new(),
    };
    format!("{key}{}{origin}", e.kind)
}

/// Whether two PostgreSQL URLs name the same database on the same server.
fn same_database(a: &url::Url, b: &url::Url) -> bool {
    let port = |u: &url::Url| u.port().unwrap_or(5432);
    let host = |u: &url::Url| match u.host_str() {
        Some("localhost") | None => "127.0.0.1".to_string(),
        Some(h) => h.to_string(),
    };
    host(a) == host(b) && port(a) == port(b) && a.path() == b.path()
}

pub fn is_simple_identifier(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_graphql_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with("__")
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A URL whose password is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(pub url::Url);

impl SecretUrl {
    pub fn parse(s: &str) -> Result<SecretUrl, url::ParseError> {
        url::Url::parse(s).map(SecretUrl)
    }

    /// The full URL, password included: only for handing to a database driver.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("REDACTED"));
        }
        // Passwords can also ride in the query string (libpq's `password=`).
        if shown.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = shown
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" { "REDACTED".to_string() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(shown.as_str())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Never echo the text back: it may hold a password.
        SecretUrl::parse(&s).map_err(|e| serde::de::Error::custom(format!("not a valid URL ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [sources.shop]
        kind = "postgres"
        url = "postgres://opslive:hunter2@127.0.0.1:5432/shop"
        [[sources.shop.tables]]
        table = "public.orders"
        indexes = ["status"]
        exclude = ["customer_email"]
    "#;

    #[test]
    fn defaults_and_names() {
        let c = Config::from_toml(BASE).unwrap();
        let SourceConfig::Postgres(s) = &c.sources["shop"] else { panic!("a PostgreSQL source") };
        assert_eq!(s.slot_name("shop"), "opslive_shop");
        assert_eq!(s.tables[0].graphql_name("public"), "orders");
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.app_database_url().unwrap().0.path(), "/opslive");
    }

    #[test]
    fn passwords_are_redacted() {
        let c = Config::from_toml(BASE).unwrap();
        let shown = format!("{:?} {}", c, c.sources["shop"].url());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("REDACTED"));
        let u = SecretUrl::parse("postgres://h/db?user=a&password=secret").unwrap();
        assert!(!u.to_string().contains("secret"));
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let err = Config::from_toml(&format!("{BASE}\nslott = 1")).unwrap_err().to_string();
        assert!(err.contains("slott"), "{err}");
        let err = Config::from_toml(&BASE.replace("indexes", "indexs")).unwrap_err().to_string();
        assert!(err.contains("sources.shop.tables") || err.contains("indexs"), "{err}");
        let err = Config::from_toml(&BASE.replace("\"postgres\"\n", "\"oracle\"\n")).unwrap_err().to_string();
        assert!(err.contains("sources.shop.kind"), "{err}");
        let err = Config::from_toml(&format!("{BASE}\nlisten = \"nowhere\"")).unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        let bad_slot = BASE.replace("kind = \"postgres\"", "kind = \"postgres\"\nslot = \"My-Slot\"");
        let err = Config::from_toml(&bad_slot).unwrap_err().to_string();
        assert!(err.contains("sources.shop.slot"), "{err}");
        let err = Config::from_toml(&BASE.replace("public.orders", "a.b.c")).unwrap_err().to_string();
        assert!(err.contains("sources.shop.tables[0].table"), "{err}");
        let err = Config::from_toml(&BASE.replace("[\"status\"]", "[\"customer_email\"]")).unwrap_err().to_string();
        assert!(err.contains("both indexed and excluded"), "{err}");
        let same = format!("[app_database]\nurl = \"postgres://x@localhost/shop\"\n{BASE}");
        let err = Config::from_toml(&same).unwrap_err().to_string();
        assert!(err.contains("app_database.url") && err.contains("source `shop`"), "{err}");
        let reserved = format!("{BASE}\n[[sources.shop.tables]]\ntable = \"ops.kpis\"\n");
        let err = Config::from_toml(&reserved).unwrap_err().to_string();
        assert!(err.contains("sources.shop.tables[1].name") && err.contains("root field `kpis`"), "{err}");
        assert!(err.contains("name = "), "the message says how to rename it: {err}");
        let renamed = format!("{BASE}\n[[sources.shop.tables]]\ntable = \"ops.kpis\"\nname = \"opsKpis\"\n");
        Config::from_toml(&renamed).expect("a renamed table is fine");
        let dup = format!("{BASE}\n[[sources.shop.tables]]\ntable = \"other.orders\"\n");
        let err = Config::from_toml(&dup).unwrap_err().to_string();
        assert!(err.contains("GraphQL name `orders`"), "{err}");
    }

    const HELPDESK: &str = r#"
        [sources.helpdesk]
        kind = "mariadb"
        url = "mysql://opslive:hunter2@127.0.0.1:3306/helpdesk"
        [[sources.helpdesk.tables]]
        table = "tickets"
        [[sources.helpdesk.tables]]
        table = "crm.agents"
    "#;

    #[test]
    fn a_mariadb_source_has_its_own_keys_and_defaults() {
        let c = Config::from_toml(&format!("{BASE}{HELPDESK}")).unwrap();
        let SourceConfig::Mariadb(m) = &c.sources["helpdesk"] else { panic!("a MariaDB source") };
        assert_eq!(m.database(), Some("helpdesk"));
        assert_eq!(m.server_id("helpdesk"), m.server_id("helpdesk"), "stable across starts");
        assert_ne!(m.server_id("helpdesk"), m.server_id("other"));
        let registry = c.registry().unwrap();
        assert!(registry.find("helpdesk", "helpdesk", "tickets").is_some(), "a bare table is in the URL's database");
        assert!(registry.find("helpdesk", "crm", "agents").is_some());
        // The app database is the PostgreSQL source's server, whichever name sorts first.
        assert_eq!(c.app_database_url().unwrap().0.port(), Some(5432));
        assert!(!format!("{c:?}").contains("hunter2"));

        let slot_on_mariadb = HELPDESK.replace("kind = \"mariadb\"", "kind = \"mariadb\"\nslot = \"s\"");
        let err = Config::from_toml(&format!("{BASE}{slot_on_mariadb}")).unwrap_err().to_string();
        assert!(
            err.contains("sources.helpdesk.slot") && err.contains("unknown field"),
            "PostgreSQL's keys are not MariaDB's: {err}"
        );
        let bad_type = BASE.replace("kind = \"postgres\"", "kind = \"postgres\"\nslot = 7");
        let err = Config::from_toml(&bad_type).unwrap_err().to_string();
        assert!(err.contains("`sources.shop.slot`"), "a source's key keeps its path: {err}");
        let pg_url = HELPDESK.replace("mysql://", "postgres://");
        let err = Config::from_toml(&format!("{BASE}{pg_url}")).unwrap_err().to_string();
        assert!(err.contains("sources.helpdesk.url") && err.contains("mysql://"), "{err}");
        let no_db = HELPDESK.replace("3306/helpdesk", "3306");
        let err = Config::from_toml(&format!("{BASE}{no_db}")).unwrap_err().to_string();
        assert!(err.contains("database.table"), "{err}");
    }

    #[test]
    fn without_a_postgresql_source_the_app_database_must_be_configured() {
        let err = Config::from_toml(HELPDESK).unwrap_err().to_string();
        assert!(err.contains("app_database.url"), "{err}");
        let c = Config::from_toml(&format!("[app_database]\nurl = \"postgres://x@localhost/opslive\"\n{HELPDESK}"))
            .unwrap();
        assert_eq!(c.app_database_url().unwrap().0.path(), "/opslive");
    }
}

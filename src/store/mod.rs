//! opslive's own database: migrations and repositories (sqlx).
//!
//! The app database is separate from every source database, so it can never be part of a
//! publication; its schema lives in `migrations/` and is applied at start and by
//! `opslive migrate`.

pub mod alerts;
pub mod fence;
pub mod kpi_history;
mod kpis;
pub mod notifications;
pub mod revocations;
mod watermarks;
pub mod workspace;

use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool};

pub use watermarks::SourceRecord;

use crate::config::SecretUrl;
use crate::source::postgres::tls::{Mode, Roots, Tls};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("app database {url}: {error}")]
    Connect {
        url: String,
        #[source]
        error: sqlx::Error,
    },
    /// TLS settings that cannot be honoured (sslmode=allow, client certificates, two roots).
    #[error("app database {url}: {reason}")]
    Settings { url: String, reason: String },
    #[error("app database: applying migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("app database: {0}")]
    Query(#[from] sqlx::Error),
    /// A name that must be unique is taken (the user's error, not the database's).
    #[error("{0}")]
    Duplicate(String),
    /// A per-user limit is reached (the user's error: the message says what to do).
    #[error("{0}")]
    Limit(String),
    /// KPI names are unique: they label charts and alerts.
    #[error("a KPI named `{0}` exists")]
    KpiNameTaken(String),
    /// A newer leader has claimed the cluster: this instance's writes are refused.
    #[error("epoch {ours} no longer leads the cluster (epoch {current} has claimed it): the write is refused")]
    Fenced { ours: u64, current: u64 },
}

/// Handle on the app database.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Creates the database when missing, connects and applies pending migrations. The URL's
    /// `sslmode` and `sslrootcert` mean what they mean to libpq; `ca_file` (the config's
    /// `tls_ca_file`) is a root certificate that, with no `sslmode` in the URL, asks for
    /// verify-full.
    pub async fn open(url: &SecretUrl, ca_file: Option<&Path>) -> Result<Store, StoreError> {
        let connect_err = |error| StoreError::Connect { url: url.to_string(), error };
        // The same libpq rules as a source's connections, so one URL means one thing everywhere.
        let (stripped, tls) =
            Tls::from_url(&url.0, ca_file).map_err(|reason| StoreError::Settings { url: url.to_string(), reason })?;
        let mut options: PgConnectOptions = stripped.as_str().parse().map_err(connect_err)?;
        options = options.ssl_mode(match tls.mode {
            Mode::Disable => PgSslMode::Disable,
            Mode::Prefer => PgSslMode::Prefer,
            Mode::Require => PgSslMode::Require,
            Mode::VerifyCa => PgSslMode::VerifyCa,
            Mode::VerifyFull => PgSslMode::VerifyFull,
        });
        if let Roots::File(ca) = &tls.roots {
            options = options.ssl_root_cert(ca);
        }
        let options = options.application_name("opslive").log_statements(tracing::log::LevelFilter::Debug);
        create_if_missing(&options).await.map_err(connect_err)?;
        let pool = PgPoolOptions::new().max_connections(4).connect_with(options).await.map_err(connect_err)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Creates the app database when it is missing, through the server's `postgres` database with
/// the same options (TLS included) the pool then uses.
async fn create_if_missing(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let name = options.get_database().unwrap_or("opslive").to_string();
    let mut maintenance = options.clone().database("postgres").connect().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut maintenance)
        .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        // Two instances starting together may both see it missing: the loser's error says so.
        // The name is quoted as an identifier (its quotes doubled), so it cannot end the statement.
        let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}"));
        match sqlx::query(create).execute(&mut maintenance).await {
            Ok(_) => tracing::info!(database = %name, "created the app database"),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e),
        }
    }
    maintenance.close().await
}

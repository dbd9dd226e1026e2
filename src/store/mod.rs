//! opslive's own database: migrations and repositories (sqlx).
//!
//! The app database is separate from every source database, so it can never be part of a
//! publication; its schema lives in `migrations/` and is applied at start and by
//! `opslive migrate`.

pub mod alerts;
pub mod kpi_history;
mod kpis;
pub mod notifications;
pub mod revocations;
mod watermarks;
pub mod workspace;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres};

pub use watermarks::SourceRecord;

use crate::config::SecretUrl;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("app database {url}: {error}")]
    Connect {
        url: String,
        #[source]
        error: sqlx::Error,
    },
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
}

/// Handle on the app database.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Creates the database when missing, connects and applies pending migrations.
    pub async fn open(url: &SecretUrl) -> Result<Store, StoreError> {
        let connect_err = |error| StoreError::Connect { url: url.to_string(), error };
        if !Postgres::database_exists(url.expose()).await.map_err(connect_err)? {
            Postgres::create_database(url.expose()).await.map_err(connect_err)?;
            tracing::info!(url = %url, "created the app database");
        }
        let options: PgConnectOptions = url.expose().parse().map_err(connect_err)?;
        let options = options.application_name("opslive").log_statements(tracing::log::LevelFilter::Debug);
        let pool = PgPoolOptions::new().max_connections(4).connect_with(options).await.map_err(connect_err)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

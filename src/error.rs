//! Typed errors at the boundaries, and the one place that decides what is worth retrying.

use crate::change::Position;

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to source `{source_name}` at {url}: {detail}")]
    Connect { source_name: String, url: String, detail: String },
    /// The database is not set up for CDC; the message says what to change.
    #[error("source `{source_name}` is not ready for change data capture:\n{problems}")]
    Preflight { source_name: String, problems: String },
    /// PostgreSQL's own failures (a query, the replication stream).
    #[error(transparent)]
    Postgres(#[from] crate::source::postgres::PgError),
    /// MariaDB's own failures (a query, the binlog stream).
    #[error(transparent)]
    Mariadb(#[from] crate::source::mariadb::MariaError),
    #[error("source `{source_name}` sent a message opslive cannot read at {position}: {detail}")]
    Protocol { source_name: String, position: Position, detail: String },
    #[error("source `{source_name}`, table {table}: cannot decode a row at {position}: {detail}")]
    Decode { source_name: String, table: String, position: Position, detail: String },
    #[error(
        "source `{source_name}`: the snapshot of {table} was rewritten (TRUNCATE or table rewrite) {attempts} times while it was being read; giving up"
    )]
    SnapshotUnstable { source_name: String, table: String, attempts: u32 },
    /// A session panicked (a driver's bug on input it did not expect): started again from
    /// the checkpoint like a lost connection, with the panic's message kept.
    #[error("source `{source_name}`: the session panicked: {detail}")]
    Panicked { source_name: String, detail: String },
    /// The consumer went away (shutdown): not an error to report.
    #[error("source `{0}`: the pipeline stopped")]
    Closed(String),
}

impl SourceError {
    /// Whether running the source again may succeed without a person changing something:
    /// lost connections and server restarts yes; configuration and data problems no.
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Connect { .. } => true,
            SourceError::Postgres(e) => e.is_retryable(),
            SourceError::Mariadb(e) => e.is_retryable(),
            SourceError::SnapshotUnstable { .. } | SourceError::Panicked { .. } => true,
            SourceError::Preflight { .. }
            | SourceError::Protocol { .. }
            | SourceError::Decode { .. }
            | SourceError::Closed(_) => false,
        }
    }
}

/// A readable one-line description of a driver error, with the server's message when there is
/// one (tokio-postgres' Display says only "db error").
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(hint) = db.hint() {
                s.push_str(&format!(" (hint: {hint})"));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(inner) => format!("{e}: {inner}"),
            None => e.to_string(),
        },
    }
}

/// An error with its causes, on one line (reqwest's and lettre's own messages omit the cause).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

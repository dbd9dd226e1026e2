//! PostgreSQL's own failures — a query, the replication stream — and which of them may pass
//! on their own (a lost connection, a server shutting down or restarting), for the supervisor.

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("source `{source_name}`: {context}: {error}")]
    Sql {
        source_name: String,
        context: String,
        #[source]
        error: tokio_postgres::Error,
    },
    #[error("source `{source_name}`: replication stream: {error}")]
    Replication {
        source_name: String,
        #[source]
        error: pgwire_replication::PgWireError,
    },
    /// A binary session met a table it cannot read in binary: the next session streams text.
    #[error("source `{source_name}`: {reason}; the stream starts again in text form")]
    TextNeeded { source_name: String, reason: String },
}

impl PgError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PgError::Replication { .. } | PgError::TextNeeded { .. } => true,
            // Class 57 is the server shutting down or restarting: it comes back.
            PgError::Sql { error, .. } => {
                error.is_closed() || error.as_db_error().is_none_or(|db| db.code().code().starts_with("57"))
            }
        }
    }
}

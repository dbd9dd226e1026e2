//! MariaDB's own failures — a query, the binlog stream — and which of them may pass on their
//! own (a lost connection, a server restarting), for the supervisor.

#[derive(Debug, thiserror::Error)]
pub enum MariaError {
    #[error("source `{source_name}`: {context}: {error}")]
    Sql {
        source_name: String,
        context: String,
        #[source]
        error: mysql_async::Error,
    },
}

/// Server error codes that pass when the server is back: shutting down (1053), connection
/// killed (1927), lost (2013), gone (2006), query interrupted by a shutdown (1317).
const TRANSIENT: [u16; 5] = [1053, 1927, 2013, 2006, 1317];

impl MariaError {
    pub fn is_retryable(&self) -> bool {
        let MariaError::Sql { error, .. } = self;
        match error {
            mysql_async::Error::Io(_) => true,
            mysql_async::Error::Driver(_) => true,
            mysql_async::Error::Server(e) => TRANSIENT.contains(&e.code),
            mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => false,
        }
    }

    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<u16> {
        let MariaError::Sql { error, .. } = self;
        match error {
            mysql_async::Error::Server(e) => Some(e.code),
            _ => None,
        }
    }
}

//! Why a simulation could not start or had to stop, in words a person can act on.
//!
//! The driver's own messages say "db error" and little else, so the server's message (and hint)
//! is put into the text here. Database URLs are shown with their password redacted.

use tokio_postgres::error::SqlState;

/// Why `opslive simulate` failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulate options: {0}")]
    Options(String),
    #[error("cannot connect to {database}: {detail}")]
    Connect { database: String, detail: String },
    /// The tables are not there: the message says which and how to create them.
    #[error(
        "{database} is not set up for `opslive simulate`: {}.\n\
         Load the fixture schema and seed data into it first:\n    \
         psql -v ON_ERROR_STOP=1 -d '{database}' -f fixtures/postgres/schema.sql -f fixtures/postgres/seed.sql\n\
         or run `opslive demo`, which starts a database with both loaded.",
        problems.join("; ")
    )]
    SchemaMissing { database: String, problems: Vec<String> },
    /// The tables exist but the business has no warehouses, stock, customers or agents.
    #[error(
        "{database} has the schema but no rows in {}, which simulated orders and tickets are made from.\n\
         Load the seed data:  psql -v ON_ERROR_STOP=1 -d '{database}' -f fixtures/postgres/seed.sql",
        tables.join(", ")
    )]
    NoReferenceData { database: String, tables: Vec<String> },
    /// The helpdesk database (MariaDB) lacks its tables or agents.
    #[error(
        "{database} is not set up as the simulator's helpdesk: {}.\n\
         Load the helpdesk fixtures into it first:\n    \
         mariadb helpdesk < fixtures/mariadb/schema.sql && mariadb helpdesk < fixtures/mariadb/seed.sql\n\
         or run `opslive demo`, which starts a MariaDB with both loaded.",
        problems.join("; ")
    )]
    HelpdeskMissing { database: String, problems: Vec<String> },
    #[error("{database} is a read-only standby; point the simulator at the primary")]
    ReadOnly { database: String },
    #[error("lost the connection to {database}: {detail}")]
    ConnectionLost { database: String, detail: String },
    #[error("{database}: {context}: {detail}")]
    Sql { database: String, context: String, detail: String },
}

impl SimError {
    /// The error for a failed event or read in either database.
    pub(crate) fn from_job(database: &str, context: &str, e: JobError) -> SimError {
        let detail = e.describe();
        if e.connection_lost() {
            SimError::ConnectionLost { database: database.to_string(), detail }
        } else {
            SimError::Sql { database: database.to_string(), context: context.to_string(), detail }
        }
    }

    /// The error for a failed statement: a lost connection, or the statement's own failure.
    pub(crate) fn from_pg(database: &str, context: &str, e: tokio_postgres::Error) -> SimError {
        let detail = describe(&e);
        if connection_lost(&e) {
            SimError::ConnectionLost { database: database.to_string(), detail }
        } else {
            SimError::Sql { database: database.to_string(), context: context.to_string(), detail }
        }
    }
}

pub(crate) use crate::error::describe_pg_error as describe;

/// A simulated event's failure, from whichever database it ran in.
#[derive(Debug)]
pub(crate) enum JobError {
    Postgres(tokio_postgres::Error),
    Mariadb(mysql_async::Error),
}

impl From<tokio_postgres::Error> for JobError {
    fn from(e: tokio_postgres::Error) -> JobError {
        JobError::Postgres(e)
    }
}

impl From<mysql_async::Error> for JobError {
    fn from(e: mysql_async::Error) -> JobError {
        JobError::Mariadb(e)
    }
}

impl JobError {
    pub fn describe(&self) -> String {
        match self {
            JobError::Postgres(e) => describe(e),
            JobError::Mariadb(e) => e.to_string(),
        }
    }

    pub fn connection_lost(&self) -> bool {
        match self {
            JobError::Postgres(e) => connection_lost(e),
            JobError::Mariadb(mysql_async::Error::Server(e)) => {
                matches!(e.code, codes::SHUTDOWN | codes::CONNECTION_KILLED)
            }
            JobError::Mariadb(mysql_async::Error::Io(_)) => true,
            JobError::Mariadb(mysql_async::Error::Driver(d)) => {
                matches!(d, mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PoolDisconnected)
            }
            JobError::Mariadb(_) => false,
        }
    }

    pub fn is_conflict(&self) -> bool {
        match self {
            JobError::Postgres(e) => is_conflict(e),
            JobError::Mariadb(mysql_async::Error::Server(e)) => {
                matches!(e.code, codes::DEADLOCK | codes::LOCK_WAIT_TIMEOUT)
            }
            JobError::Mariadb(_) => false,
        }
    }

    pub fn is_unrecoverable(&self) -> bool {
        match self {
            JobError::Postgres(e) => is_unrecoverable(e),
            JobError::Mariadb(mysql_async::Error::Server(e)) => matches!(
                e.code,
                codes::NO_SUCH_TABLE | codes::BAD_FIELD | codes::TABLE_ACCESS_DENIED | codes::OPTION_PREVENTS_STATEMENT
            ),
            JobError::Mariadb(_) => false,
        }
    }
}

use super::helpdesk::codes;

/// Whether the session is gone: closed, an I/O failure, or the server shutting down or
/// terminating it. Running on is pointless then.
pub(crate) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            // Connection exceptions, and the server shutting down or terminating the session.
            c.starts_with("08") || c.starts_with("57P")
        }
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// Whether running the same event again may succeed: another transaction won a lock race.
pub(crate) fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::LOCK_NOT_AVAILABLE
    )
}

/// Whether every later event would fail the same way: a table or column dropped under the
/// simulator, write permission revoked, the server turned read-only.
pub(crate) fn is_unrecoverable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNDEFINED_TABLE
            || *c == SqlState::UNDEFINED_COLUMN
            || *c == SqlState::UNDEFINED_FUNCTION
            || *c == SqlState::INSUFFICIENT_PRIVILEGE
            || *c == SqlState::READ_ONLY_SQL_TRANSACTION
    )
}

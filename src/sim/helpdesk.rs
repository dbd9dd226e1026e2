//! The helpdesk in its own MariaDB database: where the simulator's tickets and agents go when
//! the support domain does not live beside the shop (the demo's second source).
//!
//! The business is the same as in PostgreSQL (`support` decides what happens); this module only
//! speaks MariaDB: it checks the two tables first, reads the work queues, and runs each support
//! event as one autocommitted statement, so each event is one binlog transaction, as each is one
//! PostgreSQL transaction on the other side. Tickets keep the shop's customer ids, without a
//! foreign key across the two databases.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::SimError;

/// The helpdesk's tables and the columns the statements use.
pub const REQUIRED: &[(&str, &[&str])] = &[
    ("agents", &["id", "queue", "availability", "updated_at"]),
    (
        "tickets",
        &[
            "id",
            "queue",
            "priority",
            "status",
            "subject",
            "customer_id",
            "assignee_id",
            "opened_at",
            "first_response_at",
            "solved_at",
            "updated_at",
        ],
    ),
];

/// A MariaDB/MySQL URL (`mysql://` or `mariadb://`) as the driver takes it, the source's way.
fn opts(url: &str) -> Result<Opts, String> {
    let opts = crate::source::mariadb::driver_opts(url)?;
    Ok(OptsBuilder::from_opts(opts).setup(vec!["SET NAMES utf8mb4".to_string()]).into())
}

pub(crate) async fn connect(url: &str, database: &str) -> Result<Conn, SimError> {
    let fail = |detail: String| SimError::Connect { database: database.to_string(), detail };
    let opts = opts(url).map_err(fail)?;
    match tokio::time::timeout(Duration::from_secs(10), Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail("no answer within 10 s".into())),
    }
}

/// Fails unless the server takes writes and the helpdesk tables exist with agents in them.
pub(crate) async fn check(conn: &mut Conn, database: &str) -> Result<(), SimError> {
    let sql = |context: &str| {
        let context = context.to_string();
        move |e: mysql_async::Error| SimError::Sql { database: database.to_string(), context, detail: e.to_string() }
    };
    let read_only: i64 = conn.query_first("SELECT @@read_only").await.map_err(sql("checking the server"))?.unwrap_or(0);
    if read_only != 0 {
        return Err(SimError::ReadOnly { database: database.to_string() });
    }
    let present: Vec<(String, String)> = conn
        .query(
            "SELECT table_name, column_name FROM information_schema.columns
             WHERE table_schema = DATABASE() AND table_name IN ('agents', 'tickets')",
        )
        .await
        .map_err(sql("checking the schema"))?;
    let mut problems = Vec::new();
    for (table, columns) in REQUIRED {
        let has: Vec<&str> = present.iter().filter(|(t, _)| t == table).map(|(_, c)| c.as_str()).collect();
        if has.is_empty() {
            problems.push(format!("missing table {table}"));
            continue;
        }
        problems.extend(columns.iter().filter(|c| !has.contains(c)).map(|c| format!("missing column {table}.{c}")));
    }
    if !problems.is_empty() {
        return Err(SimError::HelpdeskMissing { database: database.to_string(), problems });
    }
    let agents: Option<i64> = conn.query_first("SELECT 1 FROM agents LIMIT 1").await.map_err(sql("reading agents"))?;
    if agents.is_none() {
        return Err(SimError::HelpdeskMissing { database: database.to_string(), problems: vec!["no agents".into()] });
    }
    Ok(())
}

/// Agents as (id, queue, availability).
pub(crate) async fn agents(conn: &mut Conn) -> Result<Vec<(i32, String, String)>, mysql_async::Error> {
    conn.query("SELECT id, queue, availability FROM agents ORDER BY id").await
}

/// Tickets with a next step, oldest first, as (id, queue, status, responded).
pub(crate) async fn open_tickets(conn: &mut Conn) -> Result<Vec<(i64, String, String, bool)>, mysql_async::Error> {
    conn.query(
        "SELECT id, queue, status, first_response_at IS NOT NULL FROM tickets
         WHERE status IN ('new', 'open', 'pending', 'solved')
         ORDER BY updated_at, id LIMIT 400000",
    )
    .await
}

pub(crate) const OPEN: &str = "
INSERT INTO tickets (queue, priority, status, subject, customer_id, opened_at, updated_at)
VALUES (?, ?, 'new', ?, ?, NOW(6), NOW(6))";

/// Assigns only while the ticket is still new and the agent still online, in one statement.
pub(crate) const ASSIGN: &str = "
UPDATE tickets AS t JOIN agents AS a ON a.id = ? AND a.availability = 'online'
SET t.status = 'open', t.assignee_id = a.id, t.updated_at = GREATEST(NOW(6), t.updated_at)
WHERE t.id = ? AND t.status = 'new'";

pub(crate) const STILL_NEW: &str = "SELECT status = 'new' FROM tickets WHERE id = ?";

pub(crate) const ANSWER: &str = "
UPDATE tickets
SET status = ?,
    first_response_at = GREATEST(NOW(6), updated_at, opened_at),
    updated_at = GREATEST(NOW(6), updated_at, opened_at)
WHERE id = ? AND status = 'open' AND first_response_at IS NULL";

pub(crate) const REOPEN: &str = "
UPDATE tickets SET status = 'open', updated_at = GREATEST(NOW(6), updated_at)
WHERE id = ? AND status = 'pending'";

/// MariaDB assigns SET clauses left to right, each seeing the columns set before it: the
/// first response is set first, so the later ones see it (as PostgreSQL's do not need to).
pub(crate) const SOLVE: &str = "
UPDATE tickets
SET first_response_at = COALESCE(first_response_at, GREATEST(NOW(6), updated_at, opened_at)),
    solved_at = GREATEST(NOW(6), updated_at, opened_at, first_response_at),
    updated_at = GREATEST(NOW(6), updated_at, opened_at, first_response_at),
    status = 'solved'
WHERE id = ? AND status IN ('open', 'pending') AND assignee_id IS NOT NULL";

pub(crate) const CLOSE: &str = "
UPDATE tickets SET status = 'closed', updated_at = GREATEST(NOW(6), updated_at, solved_at)
WHERE id = ? AND status = 'solved'";

pub(crate) const AGENT: &str = "
UPDATE agents SET availability = ?, updated_at = GREATEST(NOW(6), updated_at)
WHERE id = ? AND availability <> ?";

/// Runs an UPDATE; whether it changed a row.
pub(crate) async fn changed(
    conn: &mut Conn,
    sql: &str,
    params: mysql_async::Params,
) -> Result<bool, mysql_async::Error> {
    conn.exec_drop(sql, params).await?;
    Ok(conn.affected_rows() == 1)
}

/// MariaDB's error numbers, as the simulator sorts them (see `error`).
pub(crate) mod codes {
    /// The server is shutting down.
    pub const SHUTDOWN: u16 = 1053;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const BAD_FIELD: u16 = 1054;
    pub const TABLE_ACCESS_DENIED: u16 = 1142;
    /// `--read-only`.
    pub const OPTION_PREVENTS_STATEMENT: u16 = 1290;
    pub const CONNECTION_KILLED: u16 = 1927;
}

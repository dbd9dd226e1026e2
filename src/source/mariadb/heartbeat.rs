//! The heartbeat row: lag measured to the microsecond.
//!
//! Binlog event times are whole seconds, so how stale the replica is cannot be told from them
//! better than to a second. With `heartbeat_table` set, opslive writes `NOW(6)` into its own
//! row of that table every `heartbeat_seconds` (one autocommitted upsert, keyed by the source's
//! name, so several sources can share the table); the row comes back through the binlog like
//! any change, and the time it was written is then exact: its age when it is read is the
//! source's lag (`opslive_heartbeat_age_seconds`), and it is that group's commit time.

use mysql_async::binlog::events::{RowsEventData, TableMapEvent};
use mysql_async::prelude::Queryable;

use super::catalog::Kind;
use super::connection::Endpoint;
use super::value::from_binlog;
use crate::error::SourceError;
use crate::value::Value;

/// Where the heartbeat row lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatTable {
    pub database: String,
    pub table: String,
}

impl HeartbeatTable {
    /// `table` in `default_database`, or `database.table`.
    pub fn parse(name: &str, default_database: &str) -> HeartbeatTable {
        match name.split_once('.') {
            Some((database, table)) => HeartbeatTable { database: database.into(), table: table.into() },
            None => HeartbeatTable { database: default_database.into(), table: name.into() },
        }
    }

    fn quoted(&self) -> String {
        format!("`{}`.`{}`", self.database.replace('`', "``"), self.table.replace('`', "``"))
    }

    /// Creates the table when it is missing, checks its columns, and writes a first beat: a
    /// missing privilege or a table of another shape is a preflight problem with its fix.
    pub async fn prepare(
        &self,
        conn: &mut mysql_async::Conn,
        endpoint: &Endpoint,
        source: &str,
    ) -> Result<(), SourceError> {
        let fail = |why: String| SourceError::Preflight {
            source_name: source.to_string(),
            problems: super::preflight::bullet(&[why]),
        };
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (source VARCHAR(64) NOT NULL PRIMARY KEY, emitted_at TIMESTAMP(6) NOT NULL) ENGINE=InnoDB",
            self.quoted()
        );
        let grant = format!("GRANT CREATE, INSERT, UPDATE ON {} TO …", self.quoted());
        conn.query_drop(create)
            .await
            .map_err(|e| fail(format!("the heartbeat table {} cannot be created ({e}): {grant}", self.quoted())))?;
        let columns: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&self.database, &self.table),
            )
            .await
            .map_err(endpoint.sql("reading the heartbeat table's columns"))?;
        if columns != ["source", "emitted_at"] {
            return Err(fail(format!(
                "the heartbeat table {} has the columns {columns:?}, not (source, emitted_at): drop it or name another",
                self.quoted()
            )));
        }
        self.beat(conn, source).await.map_err(|e| fail(format!("the heartbeat row cannot be written ({e}): {grant}")))
    }

    /// Writes `NOW(6)` into the source's row.
    pub async fn beat(&self, conn: &mut mysql_async::Conn, source: &str) -> Result<(), mysql_async::Error> {
        let upsert = format!(
            "INSERT INTO {} (source, emitted_at) VALUES (?, NOW(6)) ON DUPLICATE KEY UPDATE emitted_at = NOW(6)",
            self.quoted()
        );
        conn.exec_drop(upsert, (source,)).await
    }

    /// Whether a rows event is on this table.
    pub fn is(&self, tme: &TableMapEvent<'_>) -> bool {
        tme.database_name() == self.database && tme.table_name() == self.table
    }

    /// The newest time (µs since the epoch) `source`'s row was written, in a rows event on
    /// this table; `None` when the event holds no such row or it cannot be read (a heartbeat
    /// is only a measurement: the stream goes on).
    pub fn emitted_at(rows: &RowsEventData<'_>, tme: &TableMapEvent<'_>, source: &str) -> Option<i64> {
        let mut newest = None;
        for pair in rows.rows(tme) {
            let Ok((_, Some(after))) = pair else { continue };
            let values = after.unwrap();
            let [name, at] = values.as_slice() else { continue };
            let (
                mysql_async::binlog::value::BinlogValue::Value(name),
                mysql_async::binlog::value::BinlogValue::Value(at),
            ) = (name, at)
            else {
                continue;
            };
            if from_binlog(&Kind::Text { latin1: false }, name.clone()).ok() != Some(Value::text(source)) {
                continue;
            }
            if let Ok(Value::TimestampTz(micros)) = from_binlog(&Kind::Timestamp, at.clone()) {
                newest = newest.max(Some(micros));
            }
        }
        newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_lives_in_the_urls_database() {
        assert_eq!(
            HeartbeatTable::parse("opslive_heartbeat", "helpdesk"),
            HeartbeatTable { database: "helpdesk".into(), table: "opslive_heartbeat".into() }
        );
        assert_eq!(HeartbeatTable::parse("ops.beat", "helpdesk").quoted(), "`ops`.`beat`");
    }
}

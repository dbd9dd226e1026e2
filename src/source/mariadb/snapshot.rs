//! The initial copy, exactly consistent with a binlog position and without a global read lock:
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` makes InnoDB's read view and the binlog
//! position one atomic point (`binlog_snapshot_file`/`_position` report it), every table is
//! read in that transaction, and the stream starts at that position.
//!
//! TRUNCATE and DDL are not MVCC-safe: a table changed that way after the snapshot began
//! refuses to be read in it (error 1412), and the snapshot is taken again.

use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use super::binlog::Coordinates;
use super::catalog::MyTable;
use super::connection::{Endpoint, exec};
use crate::change::{Position, Row, SourceEvent, TableEvent};
use crate::error::SourceError;
use crate::source::send;

/// Error 1412: "Table definition has changed, please retry transaction".
pub const TABLE_DEFINITION_CHANGED: u16 = 1412;

/// A consistent-snapshot transaction and the binlog point it sees.
pub struct SnapshotTx {
    pub conn: mysql_async::Conn,
    pub at: Coordinates,
}

pub async fn begin(endpoint: &Endpoint) -> Result<SnapshotTx, SourceError> {
    let mut conn = endpoint.connect().await?;
    exec(&mut conn, endpoint, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    exec(&mut conn, endpoint, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await?;
    let status: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(endpoint.sql("reading the snapshot's binlog position"))?;
    let get = |name: &str| status.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let (Some(file), Some(offset)) = (get("Binlog_snapshot_file"), get("Binlog_snapshot_position")) else {
        return Err(SourceError::Preflight {
            source_name: endpoint.source_name.clone(),
            problems: "  - the server reports no binlog_snapshot_file: is the binary log on (log_bin)?".into(),
        });
    };
    let offset = offset.parse().unwrap_or(0);
    Ok(SnapshotTx { conn, at: Coordinates { file, offset } })
}

/// Whether an error is a TRUNCATE or DDL racing the snapshot (take it again).
pub fn raced(e: &SourceError) -> bool {
    matches!(e, SourceError::Mariadb(m) if m.code() == Some(TABLE_DEFINITION_CHANGED))
}

impl SnapshotTx {
    /// Copies one table: its `SnapshotBegin`, its rows in chunks, its `SnapshotEnd` at
    /// `position`. Returns the rows copied.
    pub async fn copy_table(
        &mut self,
        endpoint: &Endpoint,
        table: &MyTable,
        position: Position,
        chunk_rows: usize,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<u64, SourceError> {
        let spec = &table.schema.spec;
        let id = table.schema.id();
        let kept: Vec<_> = table.columns.iter().filter(|c| c.keep.is_some()).collect();
        let select = kept.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", ");
        let estimated: Option<u64> = self
            .conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&*spec.schema, &*spec.table),
            )
            .await
            .map_err(endpoint.sql(format!("estimating the size of {spec}")))?;
        let sql = format!("SELECT {select} FROM {}.{}", quote(&spec.schema), quote(&spec.table));
        let context = format!("copying {spec}");
        let mut result = self.conn.query_iter(&sql).await.map_err(endpoint.sql(context.clone()))?;
        // Only now, with the table readable in the snapshot, is its copy announced.
        send(
            out,
            SourceEvent::Table(TableEvent::SnapshotBegin { schema: table.schema.clone(), estimated_rows: estimated }),
            &endpoint.source_name,
        )
        .await?;
        let mut chunk: Vec<Row> = Vec::with_capacity(chunk_rows);
        let mut rows = 0u64;
        while let Some(row) = result.next().await.map_err(endpoint.sql(context.clone()))? {
            let values = row.unwrap();
            let mut decoded = Vec::with_capacity(values.len());
            for (column, v) in kept.iter().zip(values) {
                decoded.push(super::value::from_text(&column.kind, v).map_err(|detail| SourceError::Decode {
                    source_name: endpoint.source_name.clone(),
                    table: spec.to_string(),
                    position,
                    detail: format!("column `{}`: {detail}", column.name),
                })?);
            }
            chunk.push(decoded.into());
            rows += 1;
            if chunk.len() >= chunk_rows {
                let rows = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_rows));
                send(out, SourceEvent::SnapshotRows { table: id, rows }, &endpoint.source_name).await?;
            }
        }
        drop(result);
        if !chunk.is_empty() {
            send(out, SourceEvent::SnapshotRows { table: id, rows: chunk }, &endpoint.source_name).await?;
        }
        send(out, SourceEvent::Table(TableEvent::SnapshotEnd { table: id, position, rows }), &endpoint.source_name)
            .await?;
        Ok(rows)
    }

    pub async fn commit(mut self, endpoint: &Endpoint) -> Result<(), SourceError> {
        exec(&mut self.conn, endpoint, "COMMIT").await?;
        let _ = self.conn.disconnect().await;
        Ok(())
    }
}

/// An identifier in backquotes.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

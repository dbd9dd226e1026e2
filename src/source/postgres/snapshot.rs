//! The initial copy: every watched table read inside the snapshot the slot exported, so that
//! each committed transaction is either in the copy or in the stream after the slot's
//! consistent point, never both and never neither.

use std::sync::Arc;

use futures_util::{StreamExt, pin_mut};
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::PgError;
use super::binary;
use super::catalog::{PgTable, TableProblems, read_table};
use super::copy_binary::TupleBuffer;
use super::copy_text::{CopyError, LineBuffer, split_fields};
use super::text;
use crate::change::{Position, Row, SourceEvent, TableEvent};
use crate::error::SourceError;
use crate::registry::{TableSpec, quote_ident};
use crate::source::send;
use crate::value::Value;

/// A transaction on the exported snapshot.
pub struct SnapshotTx<'a> {
    pub client: &'a Client,
    pub source_name: &'a str,
}

impl SnapshotTx<'_> {
    fn sql(&self, context: String) -> impl FnOnce(tokio_postgres::Error) -> SourceError + '_ {
        move |error| PgError::Sql { source_name: self.source_name.into(), context, error }.into()
    }

    /// Opens the transaction on `snapshot_name` (or on a fresh snapshot when `None`) and locks
    /// the tables against rewrites (ACCESS SHARE lets writes through), in one round trip: the
    /// shorter the time from the slot's export to the lock, the less room for a TRUNCATE to slip
    /// in and force the snapshot to be taken again.
    pub async fn begin_and_lock(
        &self,
        snapshot_name: Option<&str>,
        specs: &[Arc<TableSpec>],
    ) -> Result<(), SourceError> {
        let mut sql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;".to_string();
        if let Some(name) = snapshot_name {
            sql.push_str(&format!(" SET TRANSACTION SNAPSHOT '{}';", name.replace('\'', "''")));
        }
        let names = specs.iter().map(|s| s.qualified_sql()).collect::<Vec<_>>().join(", ");
        sql.push_str(&format!(" LOCK TABLE {names} IN ACCESS SHARE MODE;"));
        self.client
            .batch_execute(&sql)
            .await
            .map_err(self.sql("importing the slot's snapshot and locking the tables".into()))
    }

    /// Reads the locked tables' shapes; [`PgTable::rewritten`] tells which ones the snapshot
    /// cannot be trusted for (the TRUNCATE guard).
    pub async fn shapes(&self, specs: &[Arc<TableSpec>], version: u32) -> Result<Vec<PgTable>, SourceError> {
        let mut tables = Vec::new();
        let mut problems = Vec::new();
        for spec in specs {
            match read_table(self.client, spec, version)
                .await
                .map_err(self.sql(format!("reading the catalog for {spec}")))?
            {
                Ok(t) => tables.push(t),
                Err(TableProblems(mut p)) => problems.append(&mut p),
            }
        }
        if !problems.is_empty() {
            return Err(SourceError::Preflight {
                source_name: self.source_name.into(),
                problems: super::preflight::bullet(&problems),
            });
        }
        Ok(tables)
    }

    /// Copies one table into `out` in chunks, between SnapshotBegin and SnapshotEnd; in COPY's
    /// binary format when `binary` (every column's type has a binary reader: see
    /// [`super::tuple_format`]), else in its text format.
    pub async fn copy_table(
        &self,
        table: &PgTable,
        position: Position,
        chunk_rows: usize,
        binary: bool,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<u64, SourceError> {
        let schema = &table.schema;
        let id = schema.id();
        send(
            out,
            SourceEvent::Table(TableEvent::SnapshotBegin {
                schema: schema.clone(),
                estimated_rows: table.estimated_rows,
            }),
            self.source_name,
        )
        .await?;
        let columns = schema.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
        let options = if binary { " (FORMAT binary)" } else { "" };
        let copy = format!("COPY (SELECT {columns} FROM {}) TO STDOUT{options}", schema.spec.qualified_sql());
        let stream = self.client.copy_out(&copy).await.map_err(self.sql(format!("copying {}", schema.spec)))?;
        pin_mut!(stream);
        let mut lines = LineBuffer::default();
        let mut tuples = TupleBuffer::default();
        let width = schema.columns.len();
        let mut chunk: Vec<Row> = Vec::with_capacity(chunk_rows);
        let mut total = 0u64;
        let decode_error = |detail: String| SourceError::Decode {
            source_name: self.source_name.into(),
            table: schema.spec.to_string(),
            position,
            detail,
        };
        let field_count = |found: usize| CopyError::FieldCount { expected: width, found }.to_string();
        let mut ready = Vec::new();
        while let Some(data) = stream.next().await {
            let data = data.map_err(self.sql(format!("copying {}", schema.spec)))?;
            if binary {
                tuples
                    .feed(&data, |fields| {
                        if fields.len() != width {
                            return Err(field_count(fields.len()));
                        }
                        let row = fields
                            .iter()
                            .zip(&schema.columns)
                            .map(|(f, c)| match f {
                                None => Ok(Value::Null),
                                Some(b) => binary::parse(&c.ty, b).map_err(|e| format!("column `{}`: {e}", c.name)),
                            })
                            .collect::<Result<Vec<Value>, _>>()?;
                        ready.push(Row::from(row));
                        Ok(())
                    })
                    .map_err(decode_error)?;
            } else {
                lines.feed(&data, |line| {
                    let mut fields = Vec::with_capacity(width);
                    split_fields(line, &mut fields).map_err(|e| decode_error(e.to_string()))?;
                    if fields.len() != width {
                        return Err(decode_error(field_count(fields.len())));
                    }
                    let row = fields
                        .iter()
                        .zip(&schema.columns)
                        .map(|(f, c)| match f {
                            None => Ok(Value::Null),
                            Some(t) => {
                                text::parse(&c.ty, t).map_err(|e| decode_error(format!("column `{}`: {e}", c.name)))
                            }
                        })
                        .collect::<Result<Vec<Value>, _>>()?;
                    ready.push(Row::from(row));
                    Ok(())
                })?;
            }
            for row in ready.drain(..) {
                chunk.push(row);
                total += 1;
                if chunk.len() == chunk_rows {
                    let rows = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_rows));
                    send(out, SourceEvent::SnapshotRows { table: id, rows }, self.source_name).await?;
                }
            }
        }
        if binary {
            tuples.finish().map_err(decode_error)?;
        } else {
            lines.finish().map_err(|e| decode_error(e.to_string()))?;
        }
        if !chunk.is_empty() {
            send(out, SourceEvent::SnapshotRows { table: id, rows: chunk }, self.source_name).await?;
        }
        send(out, SourceEvent::Table(TableEvent::SnapshotEnd { table: id, position, rows: total }), self.source_name)
            .await?;
        Ok(total)
    }

    pub async fn commit(&self) -> Result<(), SourceError> {
        self.client.batch_execute("COMMIT").await.map_err(self.sql("ending the snapshot".into()))
    }

    pub async fn rollback(&self) {
        let _ = self.client.batch_execute("ROLLBACK").await;
    }
}

//! `opslive tail`: what opslive sees, one JSON object per line.
//!
//! Snapshot rows print as `{"op":"snapshot",…}`, then each change with its position, commit
//! time and transaction, in the canonical JSON form. With a snapshot, rows come from the replica
//! (unsent TOAST values filled in, full before-images); without one, from the source's images as
//! sent (values the source did not send are left out of `before`/`after`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::change::{Image, Op, SourceEvent};
use crate::registry::{TableId, TableSchema};
use crate::replica::{Applied, Delta};
use crate::value::Value;

/// Formats deltas as JSON lines.
pub struct TailWriter<W: Write> {
    out: W,
    schemas: HashMap<TableId, Arc<TableSchema>>,
    /// Only these tables (by GraphQL name); all when empty.
    only: Vec<String>,
    /// Print the source's images rather than the replica's rows.
    raw: bool,
}

impl<W: Write> TailWriter<W> {
    pub fn new(out: W, only: Vec<String>, raw: bool) -> Self {
        TailWriter { out, schemas: HashMap::new(), only, raw }
    }

    fn shown(&self, table: TableId) -> Option<&Arc<TableSchema>> {
        let schema = self.schemas.get(&table)?;
        (self.only.is_empty() || self.only.iter().any(|n| **n == *schema.spec.name)).then_some(schema)
    }

    /// Writes the lines for one applied event; each line is flushed as soon as it is written.
    pub fn write(&mut self, event: &SourceEvent, applied: &Applied) -> std::io::Result<()> {
        for delta in &applied.deltas {
            if let Delta::SnapshotBegin { schema } = delta {
                self.schemas.insert(schema.id(), schema.clone());
            }
        }
        if self.raw
            && let SourceEvent::Transaction(tx) | SourceEvent::Part(crate::change::TxPart { tx, .. }) = event
        {
            if applied.skipped {
                return Ok(());
            }
            for (ordinal, c) in tx.changes.iter().enumerate() {
                let Some(schema) = self.shown(c.table).cloned() else { continue };
                let key = (c.op != Op::Truncate).then(|| Fields::key(&schema, &c.key.0));
                let line = ChangeLine {
                    source: &tx.source,
                    table: &schema.spec.name,
                    op: c.op.into(),
                    key,
                    before: c.before.as_ref().map(|i| Fields::image(&schema, i)),
                    after: c.after.as_ref().map(|i| Fields::image(&schema, i)),
                    position: tx.position,
                    ordinal: ordinal as u32,
                    commit_ts: Value::TimestampTz(tx.commit_ts),
                    tx: tx.xid,
                };
                self.line(&line)?;
            }
            return Ok(());
        }
        for delta in &applied.deltas {
            match delta {
                Delta::SnapshotRows { table, rows } => {
                    let Some(schema) = self.shown(*table).cloned() else { continue };
                    for row in rows {
                        let key: Vec<Value> = schema.key.iter().map(|&i| row[i].clone()).collect();
                        let line = SnapshotLine {
                            op: "snapshot",
                            source: &schema.spec.source,
                            table: &schema.spec.name,
                            key: Fields::key(&schema, &key),
                            after: Fields::row(&schema, row),
                        };
                        self.line(&line)?;
                    }
                }
                Delta::Row(d) => {
                    let Some(schema) = self.shown(d.table).cloned() else { continue };
                    let Some(tx) = &applied.tx else { continue };
                    // An insert that replaced a row is an anomaly; its before is not the
                    // source's, so it is not shown as one.
                    let before = if d.op == Op::Insert { None } else { d.before.as_deref() };
                    let line = ChangeLine {
                        source: &tx.source,
                        table: &schema.spec.name,
                        op: d.op.into(),
                        key: Some(Fields::key(&schema, &d.key.0)),
                        before: before.map(|r| Fields::row(&schema, r)),
                        after: d.after.as_deref().map(|r| Fields::row(&schema, r)),
                        position: tx.position,
                        ordinal: d.ordinal,
                        commit_ts: Value::TimestampTz(tx.commit_ts),
                        tx: tx.xid,
                    };
                    self.line(&line)?;
                }
                Delta::Reset { table, reason } => {
                    let Some(schema) = self.shown(*table).cloned() else { continue };
                    let Some(tx) = &applied.tx else { continue };
                    let line = ChangeLine {
                        source: &tx.source,
                        table: &schema.spec.name,
                        op: match reason {
                            crate::change::ResetReason::Truncate => "truncate",
                            crate::change::ResetReason::Resync => "resync",
                            crate::change::ResetReason::Quarantine => "quarantine",
                            // Its rows were each printed with their part.
                            crate::change::ResetReason::LargeTransaction => continue,
                        },
                        key: None,
                        before: None,
                        after: None,
                        position: tx.position,
                        ordinal: 0,
                        commit_ts: Value::TimestampTz(tx.commit_ts),
                        tx: tx.xid,
                    };
                    self.line(&line)?;
                }
                Delta::SchemaChanged { table, columns } => {
                    let Some(schema) = self.shown(*table).cloned() else { continue };
                    let line = SchemaLine {
                        op: "schema_changed",
                        source: &schema.spec.source,
                        table: &schema.spec.name,
                        columns: columns.iter().map(|c| &**c).collect(),
                        position: applied.tx.as_ref().map(|t| t.position),
                    };
                    self.line(&line)?;
                }
                Delta::SnapshotBegin { .. } | Delta::SnapshotEnd { .. } | Delta::Consistent { .. } => {}
            }
        }
        Ok(())
    }

    fn line(&mut self, v: &impl Serialize) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl From<Op> for &'static str {
    fn from(op: Op) -> &'static str {
        match op {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
        }
    }
}

#[derive(Serialize)]
struct SnapshotLine<'a> {
    op: &'static str,
    source: &'a str,
    table: &'a str,
    key: Fields<'a>,
    after: Fields<'a>,
}

#[derive(Serialize)]
struct ChangeLine<'a> {
    source: &'a str,
    table: &'a str,
    op: &'static str,
    key: Option<Fields<'a>>,
    before: Option<Fields<'a>>,
    after: Option<Fields<'a>>,
    position: crate::change::Position,
    ordinal: u32,
    commit_ts: Value,
    tx: u64,
}

#[derive(Serialize)]
struct SchemaLine<'a> {
    op: &'static str,
    source: &'a str,
    table: &'a str,
    columns: Vec<&'a str>,
    position: Option<crate::change::Position>,
}

/// Column name → value, serialised straight from the row so values keep their exact text
/// (JSON columns are embedded as written, not re-parsed into floats). Absent values are left out.
struct Fields<'a> {
    schema: &'a TableSchema,
    columns: Vec<usize>,
    values: Vec<Option<&'a Value>>,
}

impl<'a> Fields<'a> {
    fn row(schema: &'a TableSchema, row: &'a [Value]) -> Self {
        Fields { schema, columns: (0..row.len()).collect(), values: row.iter().map(Some).collect() }
    }

    fn image(schema: &'a TableSchema, image: &'a Image) -> Self {
        Fields { schema, columns: (0..image.0.len()).collect(), values: image.0.iter().map(Option::as_ref).collect() }
    }

    fn key(schema: &'a TableSchema, key: &'a [Value]) -> Self {
        Fields { schema, columns: schema.key.clone(), values: key.iter().map(Some).collect() }
    }
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (&c, v) in self.columns.iter().zip(&self.values) {
            if let Some(v) = v {
                m.serialize_entry(&*self.schema.columns[c].name, v)?;
            }
        }
        m.end()
    }
}

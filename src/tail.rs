//! `opslive tail`: what opslive sees, one JSON object per line.
//!
//! Snapshot rows print as `{"op":"snapshot",…}`, then each change with its position, commit
//! time and transaction, in the canonical JSON form. With a snapshot, rows come from the replica
//! (unsent TOAST values filled in, full before-images); without one, from the source's images as
//! sent (values the source did not send are left out of `before`/`after`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

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
            && let SourceEvent::Transaction(tx) = event
        {
            {
                if applied.skipped {
                    return Ok(());
                }
                for (ordinal, c) in tx.changes.iter().enumerate() {
                    let Some(schema) = self.shown(c.table) else { continue };
                    let line = json!({
                        "source": &*tx.source,
                        "table": &*schema.spec.name,
                        "op": c.op,
                        "key": key_json(schema, &c.key.0, c.op),
                        "before": c.before.as_ref().map(|i| image_json(schema, i)),
                        "after": c.after.as_ref().map(|i| image_json(schema, i)),
                        "position": tx.position,
                        "ordinal": ordinal,
                        "commit_ts": Value::TimestampTz(tx.commit_ts),
                        "tx": tx.xid,
                    });
                    self.line(&line)?;
                }
                return Ok(());
            }
        }
        for delta in &applied.deltas {
            match delta {
                Delta::SnapshotRows { table, rows } => {
                    let Some(schema) = self.shown(*table).cloned() else { continue };
                    let source = &*schema.spec.source;
                    for row in rows {
                        let key: Vec<Value> = schema.key.iter().map(|&i| row[i].clone()).collect();
                        let line = json!({
                            "op": "snapshot",
                            "source": source,
                            "table": &*schema.spec.name,
                            "key": key_json(&schema, &key, Op::Insert),
                            "after": row_json(&schema, row),
                        });
                        self.line(&line)?;
                    }
                }
                Delta::Row(d) => {
                    let Some(schema) = self.shown(d.table).cloned() else { continue };
                    let Some(tx) = &applied.tx else { continue };
                    // An insert that replaced a row is an anomaly; its before is not the
                    // source's, so it is not shown as one.
                    let before =
                        if d.op == Op::Insert { None } else { d.before.as_ref().map(|r| row_json(&schema, r)) };
                    let line = json!({
                        "source": &*tx.source,
                        "table": &*schema.spec.name,
                        "op": d.op,
                        "key": key_json(&schema, &d.key.0, d.op),
                        "before": before,
                        "after": d.after.as_ref().map(|r| row_json(&schema, r)),
                        "position": tx.position,
                        "ordinal": d.ordinal,
                        "commit_ts": Value::TimestampTz(tx.commit_ts),
                        "tx": tx.xid,
                    });
                    self.line(&line)?;
                }
                Delta::Reset { table, reason } => {
                    let Some(schema) = self.shown(*table).cloned() else { continue };
                    let Some(tx) = &applied.tx else { continue };
                    let op = match reason {
                        crate::change::ResetReason::Truncate => json!("truncate"),
                        other => json!(other),
                    };
                    let line = json!({
                        "source": &*tx.source,
                        "table": &*schema.spec.name,
                        "op": op,
                        "key": null, "before": null, "after": null,
                        "position": tx.position,
                        "commit_ts": Value::TimestampTz(tx.commit_ts),
                        "tx": tx.xid,
                    });
                    self.line(&line)?;
                }
                Delta::SchemaChanged { table, columns } => {
                    let Some(schema) = self.shown(*table).cloned() else { continue };
                    let line = json!({
                        "op": "schema_changed",
                        "source": &*schema.spec.source,
                        "table": &*schema.spec.name,
                        "columns": columns.iter().map(|c| &**c).collect::<Vec<_>>(),
                        "position": applied.tx.as_ref().map(|t| t.position),
                    });
                    self.line(&line)?;
                }
                Delta::SnapshotBegin { .. } | Delta::SnapshotEnd { .. } | Delta::Consistent { .. } => {}
            }
        }
        Ok(())
    }

    fn line(&mut self, v: &Json) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn row_json(schema: &TableSchema, row: &[Value]) -> Json {
    let mut m = Map::with_capacity(row.len());
    for (c, v) in schema.columns.iter().zip(row) {
        m.insert(c.name.to_string(), serde_json::to_value(v).unwrap_or(Json::Null));
    }
    Json::Object(m)
}

fn image_json(schema: &TableSchema, image: &Image) -> Json {
    let mut m = Map::new();
    for (c, v) in schema.columns.iter().zip(&image.0) {
        if let Some(v) = v {
            m.insert(c.name.to_string(), serde_json::to_value(v).unwrap_or(Json::Null));
        }
    }
    Json::Object(m)
}

fn key_json(schema: &TableSchema, key: &[Value], op: Op) -> Json {
    if op == Op::Truncate {
        return Json::Null;
    }
    let mut m = Map::new();
    for (&i, v) in schema.key.iter().zip(key) {
        m.insert(schema.columns[i].name.to_string(), serde_json::to_value(v).unwrap_or(Json::Null));
    }
    Json::Object(m)
}

//! The bus's wire form of a [`SourceEvent`]: what the leader publishes and a follower's
//! replica applies, so that every instance's replica goes through the very events the
//! leader's did.
//!
//! postcard records, with values in the checkpoint's stored form (the same types, the same
//! exactness: numerics as text, timestamps as microseconds). Tables travel by id with their
//! names checked once, at bootstrap (every instance runs the same configuration, so the same
//! watched tables have the same ids); a table's shape travels with its `SnapshotBegin`, as it
//! does through the pipeline.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::change::TableEvent;
use crate::change::{Change, Image, Key, Op, Position, SourceEvent, SourceName, Transaction, TxPart};
use crate::checkpoint::format::{StoredColumn, ValueOwned, ValueRef};
use crate::registry::{Registry, TableId};
use crate::value::Value;

/// Bumped when the wire form changes: a follower refuses entries of another version instead of
/// misreading them.
pub const WIRE_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("a bus entry cannot be read: {0}")]
    Malformed(String),
    #[error("a bus entry is of wire version {0}; this build reads {WIRE_VERSION}")]
    Version(u8),
    #[error(
        "a bus entry names table #{0}, which this instance does not watch: run every instance with the same configuration"
    )]
    UnknownTable(u32),
}

#[derive(Serialize, Deserialize)]
enum Wire<V> {
    Table(WireTableEvent),
    SnapshotRows { table: u32, rows: Vec<Vec<V>> },
    Consistent { source: String, position: u64 },
    Transaction(WireTx<V>),
    Part { tx: WireTx<V>, index: u32, last: bool },
    Progress { source: String, position: u64 },
}

#[derive(Serialize, Deserialize)]
enum WireTableEvent {
    SnapshotBegin { table: u32, columns: Vec<StoredColumn>, key: Vec<u32>, version: u32, estimated_rows: Option<u64> },
    SnapshotEnd { table: u32, position: u64, rows: u64 },
    SchemaChanged { table: u32, columns: Vec<String> },
    Quarantined { table: u32, position: u64, reason: String },
    ResyncBegin { table: u32, reason: String },
}

#[derive(Serialize, Deserialize)]
struct WireTx<V> {
    source: String,
    position: u64,
    commit_ts: i64,
    xid: u64,
    changes: Vec<WireChange<V>>,
    table_events: Vec<(u32, WireTableEvent)>,
}

#[derive(Serialize, Deserialize)]
struct WireChange<V> {
    table: u32,
    op: u8,
    key: Vec<V>,
    before: Option<Vec<Option<V>>>,
    after: Option<Vec<Option<V>>>,
}

/// The event's wire form, behind a version byte.
pub fn encode(event: &SourceEvent) -> Vec<u8> {
    let wire: Wire<ValueRef<'_>> = match event {
        SourceEvent::Table(e) => Wire::Table(table_event(e)),
        SourceEvent::SnapshotRows { table, rows } => Wire::SnapshotRows {
            table: table.0,
            rows: rows.iter().map(|r| r.iter().map(ValueRef::from).collect()).collect(),
        },
        SourceEvent::Consistent { source, position } => {
            Wire::Consistent { source: source.to_string(), position: position.0 }
        }
        SourceEvent::Transaction(tx) => Wire::Transaction(wire_tx(tx)),
        SourceEvent::Part(part) => Wire::Part { tx: wire_tx(&part.tx), index: part.index, last: part.last },
        SourceEvent::Progress { source, position } => {
            Wire::Progress { source: source.to_string(), position: position.0 }
        }
    };
    let mut out = vec![WIRE_VERSION];
    postcard::to_io(&wire, &mut out).expect("encoding into memory cannot fail");
    out
}

/// An event read back, its tables resolved in this instance's `registry`.
pub fn decode(bytes: &[u8], registry: &Registry) -> Result<SourceEvent, CodecError> {
    let (&version, body) = bytes.split_first().ok_or_else(|| CodecError::Malformed("empty".into()))?;
    if version != WIRE_VERSION {
        return Err(CodecError::Version(version));
    }
    let wire: Wire<ValueOwned> = postcard::from_bytes(body).map_err(|e| CodecError::Malformed(e.to_string()))?;
    let table = |id| watched(registry, id);
    Ok(match wire {
        Wire::Table(e) => SourceEvent::Table(read_table_event(e, registry)?),
        Wire::SnapshotRows { table: id, rows } => SourceEvent::SnapshotRows {
            table: table(id)?,
            rows: rows.into_iter().map(|r| r.into_iter().map(Value::from).collect()).collect(),
        },
        Wire::Consistent { source, position } => {
            SourceEvent::Consistent { source: SourceName::from(source.as_str()), position: Position(position) }
        }
        Wire::Transaction(tx) => SourceEvent::Transaction(read_tx(tx, registry)?),
        Wire::Part { tx, index, last } => {
            SourceEvent::Part(TxPart { tx: read_tx(tx, registry)?, index, last, claim: None })
        }
        Wire::Progress { source, position } => {
            SourceEvent::Progress { source: SourceName::from(source.as_str()), position: Position(position) }
        }
    })
}

fn table_event(e: &TableEvent) -> WireTableEvent {
    match e {
        TableEvent::SnapshotBegin { schema, estimated_rows } => WireTableEvent::SnapshotBegin {
            table: schema.id().0,
            columns: StoredColumn::all(&schema.columns),
            key: schema.key.iter().map(|&k| k as u32).collect(),
            version: schema.version,
            estimated_rows: *estimated_rows,
        },
        TableEvent::SnapshotEnd { table, position, rows } => {
            WireTableEvent::SnapshotEnd { table: table.0, position: position.0, rows: *rows }
        }
        TableEvent::SchemaChanged { table, columns } => {
            WireTableEvent::SchemaChanged { table: table.0, columns: columns.iter().map(|c| c.to_string()).collect() }
        }
        TableEvent::Quarantined { table, position, reason } => {
            WireTableEvent::Quarantined { table: table.0, position: position.0, reason: reason.clone() }
        }
        TableEvent::ResyncBegin { table, reason } => {
            WireTableEvent::ResyncBegin { table: table.0, reason: reason.clone() }
        }
    }
}

/// Table `id`, if this instance watches it.
fn watched(registry: &Registry, id: u32) -> Result<TableId, CodecError> {
    registry.get(TableId(id)).map(|_| TableId(id)).ok_or(CodecError::UnknownTable(id))
}

fn read_table_event(e: WireTableEvent, registry: &Registry) -> Result<TableEvent, CodecError> {
    let table = |id| watched(registry, id);
    Ok(match e {
        WireTableEvent::SnapshotBegin { table: id, columns, key, version, estimated_rows } => {
            let spec = registry.get(TableId(id)).ok_or(CodecError::UnknownTable(id))?;
            if key.iter().any(|&k| k as usize >= columns.len()) {
                return Err(CodecError::Malformed(format!("the key of table #{id} names a column it does not have")));
            }
            let schema = crate::checkpoint::schema_of(&spec, columns, key, version);
            TableEvent::SnapshotBegin { schema: Arc::new(schema), estimated_rows }
        }
        WireTableEvent::SnapshotEnd { table: id, position, rows } => {
            TableEvent::SnapshotEnd { table: table(id)?, position: Position(position), rows }
        }
        WireTableEvent::SchemaChanged { table: id, columns } => TableEvent::SchemaChanged {
            table: table(id)?,
            columns: columns.into_iter().map(|c| Arc::from(c.as_str())).collect(),
        },
        WireTableEvent::Quarantined { table: id, position, reason } => {
            TableEvent::Quarantined { table: table(id)?, position: Position(position), reason }
        }
        WireTableEvent::ResyncBegin { table: id, reason } => TableEvent::ResyncBegin { table: table(id)?, reason },
    })
}

fn image(i: &Option<Image>) -> Option<Vec<Option<ValueRef<'_>>>> {
    i.as_ref().map(|i| i.0.iter().map(|v| v.as_ref().map(ValueRef::from)).collect())
}

fn wire_tx(tx: &Transaction) -> WireTx<ValueRef<'_>> {
    WireTx {
        source: tx.source.to_string(),
        position: tx.position.0,
        commit_ts: tx.commit_ts,
        xid: tx.xid,
        changes: tx
            .changes
            .iter()
            .map(|c| WireChange {
                table: c.table.0,
                op: match c.op {
                    Op::Insert => 0,
                    Op::Update => 1,
                    Op::Delete => 2,
                    Op::Truncate => 3,
                },
                key: c.key.0.iter().map(ValueRef::from).collect(),
                before: image(&c.before),
                after: image(&c.after),
            })
            .collect(),
        table_events: tx.table_events.iter().map(|(i, e)| (*i as u32, table_event(e))).collect(),
    }
}

fn read_tx(tx: WireTx<ValueOwned>, registry: &Registry) -> Result<Transaction, CodecError> {
    let image =
        |i: Option<Vec<Option<ValueOwned>>>| i.map(|i| Image(i.into_iter().map(|v| v.map(Value::from)).collect()));
    let mut changes = Vec::with_capacity(tx.changes.len());
    // Most transactions touch one or two tables: remember the last one checked.
    let mut known = None;
    for c in tx.changes {
        if known != Some(c.table) {
            watched(registry, c.table)?;
            known = Some(c.table);
        }
        let op = match c.op {
            0 => Op::Insert,
            1 => Op::Update,
            2 => Op::Delete,
            3 => Op::Truncate,
            other => return Err(CodecError::Malformed(format!("operation {other}"))),
        };
        changes.push(Change {
            table: TableId(c.table),
            op,
            key: Key(c.key.into_iter().map(Value::from).collect()),
            before: image(c.before),
            after: image(c.after),
        });
    }
    let table_events = tx
        .table_events
        .into_iter()
        .map(|(i, e)| Ok((i as usize, read_table_event(e, registry)?)))
        .collect::<Result<_, CodecError>>()?;
    Ok(Transaction {
        source: SourceName::from(tx.source.as_str()),
        position: Position(tx.position),
        commit_ts: tx.commit_ts,
        xid: tx.xid,
        changes,
        table_events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Column, ColumnType, TableSchema};
    use crate::value::{Interval, OtherValue};

    fn registry() -> (Registry, Arc<TableSchema>) {
        let reg = Registry::default();
        let id = reg.add("shop".into(), "public", "t", "t", vec![], vec![]).unwrap();
        let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
        let columns = vec![
            col("id", ColumnType::Int8),
            col("b", ColumnType::Bool),
            col("i2", ColumnType::Int2),
            col("i4", ColumnType::Int4),
            col("f4", ColumnType::Float4),
            col("f8", ColumnType::Float8),
            col("n", ColumnType::Numeric),
            col("t", ColumnType::Text),
            col("u", ColumnType::Uuid),
            col("d", ColumnType::Date),
            col("tm", ColumnType::Time),
            col("ts", ColumnType::Timestamp),
            col("tz", ColumnType::TimestampTz),
            col("iv", ColumnType::Interval),
            col("j", ColumnType::Json),
            col("by", ColumnType::Bytes),
            col("a", ColumnType::Array(Box::new(ColumnType::Int4))),
            col("o", ColumnType::Other("inet".into())),
        ];
        let schema = TableSchema { spec: reg.get(id).unwrap(), columns, key: vec![0], indexed: vec![], version: 3 };
        (reg, Arc::new(schema))
    }

    fn row(id: i64) -> Vec<Value> {
        vec![
            Value::Int8(id),
            Value::Bool(true),
            Value::Int2(-7),
            Value::Int4(i32::MAX),
            Value::Float4(1.5),
            Value::Float8(f64::NEG_INFINITY),
            Value::Numeric("-12345678901234567890.125".into()),
            Value::text("a text longer than fifteen bytes, with ünïcode"),
            Value::Uuid(uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0)),
            Value::Date(i32::MIN),
            Value::Time(86_400_000_000),
            Value::Timestamp(i64::MAX),
            Value::TimestampTz(1_700_000_000_123_456),
            Value::Interval(Interval { months: 14, days: -3, micros: 7 }),
            Value::Json(r#"{"price": 1.10}"#.into()),
            Value::Bytes(Arc::from(&b"\x00\xffbytes"[..])),
            Value::Array(Arc::from(vec![Value::Int4(1), Value::Null, Value::Int4(3)])),
            Value::Other(Arc::new(OtherValue { type_name: "inet".into(), text: "10.0.0.1/32".into() })),
        ]
    }

    /// Events compared through their Debug form: every field, every value, exactly.
    fn round_trip(event: SourceEvent, registry: &Registry) {
        let back = decode(&encode(&event), registry).unwrap();
        assert_eq!(format!("{back:?}"), format!("{event:?}"));
    }

    #[test]
    fn every_event_and_every_value_reads_back_as_it_was_sent() {
        let (registry, schema) = registry();
        let table = schema.id();
        round_trip(SourceEvent::Table(TableEvent::SnapshotBegin { schema, estimated_rows: Some(9) }), &registry);
        round_trip(SourceEvent::SnapshotRows { table, rows: vec![row(1).into(), row(2).into()] }, &registry);
        let end = TableEvent::SnapshotEnd { table, position: Position(0x16_B374_D848), rows: 2 };
        round_trip(SourceEvent::Table(end), &registry);
        round_trip(SourceEvent::Consistent { source: "shop".into(), position: Position(5) }, &registry);
        let mut partial = row(3).into_iter().map(Some).collect::<Vec<_>>();
        partial[7] = None; // an unchanged TOAST value is not NULL
        let tx = Transaction {
            source: "shop".into(),
            position: Position(77),
            commit_ts: 1_700_000_000_000_001,
            xid: 901,
            changes: vec![
                Change {
                    table,
                    op: Op::Insert,
                    key: Key::of(&row(3), &[0]),
                    before: None,
                    after: Some(Image::full(row(3))),
                },
                Change {
                    table,
                    op: Op::Update,
                    key: Key::of(&row(3), &[0]),
                    before: Some(Image(vec![Some(Value::Int8(2))])),
                    after: Some(Image(partial)),
                },
                Change { table, op: Op::Delete, key: Key::of(&row(1), &[0]), before: None, after: None },
                Change { table, op: Op::Truncate, key: Key::none(), before: None, after: None },
            ],
            table_events: vec![(1, TableEvent::SchemaChanged { table, columns: vec!["id".into(), "new".into()] })],
        };
        round_trip(SourceEvent::Transaction(tx.clone()), &registry);
        round_trip(SourceEvent::Part(TxPart { tx, index: 2, last: true, claim: None }), &registry);
        round_trip(SourceEvent::Progress { source: "shop".into(), position: Position(99) }, &registry);
        let quarantined = TableEvent::Quarantined { table, position: Position(8), reason: "cannot decode".into() };
        round_trip(SourceEvent::Table(quarantined), &registry);
        round_trip(SourceEvent::Table(TableEvent::ResyncBegin { table, reason: "asked".into() }), &registry);
    }

    #[test]
    fn an_entry_of_another_version_or_an_unknown_table_is_refused_with_its_reason() {
        let (registry, _) = registry();
        let event = SourceEvent::SnapshotRows { table: TableId(7), rows: vec![] };
        assert!(matches!(decode(&encode(&event), &registry), Err(CodecError::UnknownTable(7))));
        let mut bytes = encode(&SourceEvent::Progress { source: "shop".into(), position: Position(1) });
        bytes[0] = WIRE_VERSION + 1;
        assert!(matches!(decode(&bytes, &registry), Err(CodecError::Version(_))));
        assert!(matches!(decode(&[WIRE_VERSION, 200, 1], &registry), Err(CodecError::Malformed(_))));
    }
}

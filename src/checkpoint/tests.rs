//! Unit tests of the checkpoint file: round trip of every value kind, damage detection, and
//! matching against a changed configuration.

use std::sync::Arc;

use super::*;
use crate::change::{Key, SourceEvent, TableEvent};
use crate::registry::{Column, ColumnType, Registry};
use crate::value::Interval;

fn registry(exclude: Vec<Arc<str>>) -> Registry {
    let reg = Registry::default();
    reg.add("s".into(), "public", "t", "t", vec!["v".into()], exclude).unwrap();
    reg
}

fn every_kind(i: i64) -> Row {
    let values = vec![
        Value::Int8(i),
        Value::Text(format!("row {i} é").into()),
        Value::Numeric("-12345678901234567890.000001".into()),
        Value::Float8(f64::NAN),
        Value::Float4(1.5),
        Value::Bool(i % 2 == 0),
        Value::Null,
        Value::Uuid(uuid::Uuid::from_u128(i as u128)),
        Value::TimestampTz(i64::MAX),
        Value::Interval(Interval { months: 1, days: -2, micros: 3 }),
        Value::Json(r#"{"a": 1.000}"#.into()),
        Value::Bytes(vec![0u8, 255, 7].into()),
        Value::Array(vec![Value::Int4(1), Value::Null].into()),
        Value::other("mood".into(), "happy"),
    ];
    values.into()
}

fn replica(reg: &Registry, rows: i64) -> Replica {
    let spec = reg.get(crate::registry::TableId(0)).unwrap().clone();
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    let mut columns = vec![col("id", ColumnType::Int8), col("v", ColumnType::Text)];
    for i in 2..14 {
        columns.push(col(&format!("c{i}"), ColumnType::Other("x".into())));
    }
    let schema = Arc::new(TableSchema { spec, columns, key: vec![0], indexed: vec![1], version: 3 });
    let mut r = Replica::new();
    r.apply(&SourceEvent::Table(TableEvent::SnapshotBegin { schema, estimated_rows: None }));
    r.apply(&SourceEvent::SnapshotRows {
        table: crate::registry::TableId(0),
        rows: (0..rows).map(every_kind).collect(),
    });
    r.apply(&SourceEvent::Table(TableEvent::SnapshotEnd {
        table: crate::registry::TableId(0),
        position: Position(42),
        rows: rows as u64,
    }));
    r.apply(&SourceEvent::Consistent { source: "s".into(), position: Position(42) });
    r
}

fn origins() -> HashMap<SourceName, String> {
    HashMap::from([(SourceName::from("s"), "slot_s".to_string())])
}

#[test]
fn round_trip_keeps_rows_positions_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(vec![]);
    let r = replica(&reg, 500);
    let written = write(dir.path(), &r, &origins()).unwrap();
    assert_eq!(written.rows, 500);
    assert_eq!(written.sources, vec![(SourceName::from("s"), Position(42))]);
    let loaded = load(dir.path(), &reg).unwrap();
    assert!(loaded.missing.is_empty(), "{:?}", loaded.missing);
    assert_eq!(loaded.sources["s"], SourceMark { origin: "slot_s".into(), position: Position(42) });
    let (a, b) =
        (r.table(crate::registry::TableId(0)).unwrap(), loaded.replica.table(crate::registry::TableId(0)).unwrap());
    assert_eq!(b.state, TableState::Ready);
    assert_eq!(b.since, Position(42));
    assert_eq!(b.schema.version, 3);
    let rows_a: Vec<_> = a.rows().map(|(k, r)| (k.clone(), format!("{r:?}"))).collect();
    let rows_b: Vec<_> = b.rows().map(|(k, r)| (k.clone(), format!("{r:?}"))).collect();
    assert_eq!(rows_a, rows_b);
    // The index was rebuilt from the configuration.
    let hits: Vec<_> = b.index_range(1, Value::text("row 7 é")..=Value::text("row 7 é")).unwrap().collect();
    assert_eq!(hits, vec![&Key(vec![Value::Int8(7)].into())]);
    assert_eq!(loaded.replica.applied_position("s"), Position(42));
}

#[test]
fn every_damaged_byte_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(vec![]);
    write(dir.path(), &replica(&reg, 3), &origins()).unwrap();
    let path = path_in(dir.path());
    let good = std::fs::read(&path).unwrap();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        match load(dir.path(), &reg) {
            Err(CheckpointError::Corrupt { .. } | CheckpointError::Incompatible { .. }) => {}
            other => panic!("byte {i} flipped: {other:?}"),
        }
    }
    for len in 0..good.len() {
        std::fs::write(&path, &good[..len]).unwrap();
        assert!(matches!(load(dir.path(), &reg), Err(CheckpointError::Corrupt { .. })), "truncated at {len}");
    }
}

#[test]
fn another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(vec![]);
    write(dir.path(), &replica(&reg, 3), &origins()).unwrap();
    let path = path_in(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&(FORMAT + 1).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = load(dir.path(), &reg).unwrap_err();
    assert!(matches!(err, CheckpointError::Incompatible { found, .. } if found == FORMAT + 1), "{err}");
}

#[test]
fn a_missing_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(load(dir.path(), &registry(vec![])), Err(CheckpointError::Missing(_))));
}

#[test]
fn a_reconfigured_table_must_be_copied_again() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &replica(&registry(vec![]), 3), &origins()).unwrap();
    let reg = registry(vec!["c5".into()]);
    let loaded = load(dir.path(), &reg).unwrap();
    assert_eq!(loaded.missing, vec![crate::registry::TableId(0)]);
    assert!(loaded.notes.iter().any(|n| n.contains("excluded columns changed")), "{:?}", loaded.notes);
}

#[test]
fn a_source_still_loading_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(vec![]);
    let mut r = replica(&reg, 3);
    r.forget_source("s");
    let written = write(dir.path(), &r, &origins()).unwrap();
    assert!(written.sources.is_empty());
    assert_eq!(written.rows, 0);
}

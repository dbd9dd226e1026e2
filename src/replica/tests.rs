//! Unit tests of apply: skip-by-position, unsent-value fill, key moves, anomalies, indexes.

use std::sync::Arc;

use super::*;
use crate::registry::{Column, ColumnType, Registry, TableSchema};

fn schema() -> Arc<TableSchema> {
    let reg = Registry::default();
    let id = reg.add("s".into(), "public", "t", "t", vec!["status".into()], vec![]).unwrap();
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    Arc::new(TableSchema {
        spec: reg.get(id).unwrap().clone(),
        columns: vec![col("id", ColumnType::Int8), col("status", ColumnType::Text), col("body", ColumnType::Text)],
        key: vec![0],
        indexed: vec![1],
        version: 1,
    })
}

fn v(id: i64, status: &str, body: &str) -> Vec<Option<Value>> {
    vec![Some(Value::Int8(id)), Some(Value::text(status)), Some(Value::text(body))]
}

fn key(id: i64) -> Key {
    Key(vec![Value::Int8(id)].into())
}

fn tx(pos: u64, changes: Vec<Change>) -> SourceEvent {
    SourceEvent::Transaction(Transaction {
        source: "s".into(),
        position: Position(pos),
        commit_ts: 0,
        xid: pos,
        changes,
        table_events: vec![],
    })
}

fn change(op: Op, k: i64, before: Option<Vec<Option<Value>>>, after: Option<Vec<Option<Value>>>) -> Change {
    Change { table: TableId(0), op, key: key(k), before: before.map(Image), after: after.map(Image) }
}

fn loaded() -> Replica {
    let mut r = Replica::new();
    load_into(&mut r);
    r
}

/// Copies one row into `r` and makes it consistent at 10.
fn load_into(r: &mut Replica) {
    let s = schema();
    r.apply(&SourceEvent::Table(TableEvent::SnapshotBegin { schema: s, estimated_rows: None }));
    let rows = vec![Row::from(vec![Value::Int8(1), Value::text("open"), Value::text("x".repeat(3000).as_str())])];
    let out = r.apply(&SourceEvent::SnapshotRows { table: TableId(0), rows });
    assert!(out.anomalies.is_empty());
    r.apply(&SourceEvent::Table(TableEvent::SnapshotEnd { table: TableId(0), position: Position(10), rows: 1 }));
    r.apply(&SourceEvent::Consistent { source: "s".into(), position: Position(10) });
}

#[test]
fn transactions_at_or_below_the_applied_position_are_skipped() {
    let mut r = loaded();
    let out = r.apply(&tx(10, vec![change(Op::Insert, 2, None, Some(v(2, "new", "b")))]));
    assert!(out.skipped && out.deltas.is_empty());
    let out = r.apply(&tx(11, vec![change(Op::Insert, 2, None, Some(v(2, "new", "b")))]));
    assert!(!out.skipped && out.deltas.len() == 1);
    let out = r.apply(&tx(11, vec![change(Op::Insert, 3, None, Some(v(3, "new", "b")))]));
    assert!(out.skipped, "re-delivery of the same position must not apply twice");
    assert_eq!(r.table(TableId(0)).unwrap().len(), 2);
    assert_eq!(r.applied_position("s"), Position(11));
}

#[test]
fn unsent_values_are_filled_from_the_held_row() {
    let mut r = loaded();
    let after = vec![Some(Value::Int8(1)), Some(Value::text("closed")), None];
    let out = r.apply(&tx(11, vec![change(Op::Update, 1, None, Some(after))]));
    assert!(out.anomalies.is_empty());
    let row = r.table(TableId(0)).unwrap().get(&key(1)).unwrap().clone();
    assert_eq!(row[1], Value::text("closed"));
    assert_eq!(row[2], Value::text("x".repeat(3000).as_str()));
    let Delta::Row(d) = &out.deltas[0] else { panic!() };
    assert_eq!(d.before.as_ref().unwrap()[1], Value::text("open"));
}

#[test]
fn unsent_value_for_a_missing_row_is_an_anomaly_not_a_null() {
    let mut r = loaded();
    let after = vec![Some(Value::Int8(5)), Some(Value::text("closed")), None];
    let out = r.apply(&tx(11, vec![change(Op::Update, 5, None, Some(after))]));
    assert_eq!(out.anomalies[0].kind, AnomalyKind::UnsentValueForMissingRow);
    assert!(r.table(TableId(0)).unwrap().get(&key(5)).is_none());
}

#[test]
fn key_updates_move_the_row_and_its_index_entries() {
    let mut r = loaded();
    let before = vec![Some(Value::Int8(1)), None, None];
    let out = r.apply(&tx(11, vec![change(Op::Update, 7, Some(before), Some(v(7, "moved", "b")))]));
    assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
    let t = r.table(TableId(0)).unwrap();
    assert!(t.get(&key(1)).is_none());
    assert_eq!(t.get(&key(7)).unwrap()[1], Value::text("moved"));
    let moved: Vec<_> = t.index_range(1, Value::text("moved")..=Value::text("moved")).unwrap().collect();
    assert_eq!(moved, vec![&key(7)]);
    assert_eq!(t.index_range(1, Value::text("open")..=Value::text("open")).unwrap().count(), 0);
}

#[test]
fn anomalies_are_reported() {
    // Tables loaded empty mid-stream expect changes to rows they never saw: counted, applied.
    let mut r = Replica::new().loaded_mid_stream();
    load_into(&mut r);
    let out = r.apply(&tx(
        11,
        vec![
            change(Op::Insert, 1, None, Some(v(1, "dup", "b"))),
            change(Op::Delete, 9, Some(vec![Some(Value::Int8(9)), None, None]), None),
            change(Op::Update, 8, None, Some(v(8, "u", "b"))),
        ],
    ));
    let kinds: Vec<_> = out.anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, vec![AnomalyKind::InsertExisting, AnomalyKind::DeleteMissing, AnomalyKind::UpdateMissing]);
    assert!(r.table(TableId(0)).unwrap().state.is_ready());
}

#[test]
fn a_change_that_contradicts_an_exact_table_quarantines_it_until_a_resync() {
    for (op, k) in [(Op::Update, 8), (Op::Delete, 9), (Op::Insert, 1)] {
        let mut r = loaded();
        let image = match op {
            Op::Delete => None,
            _ => Some(v(k, "new", "b")),
        };
        let before = (op == Op::Delete).then(|| vec![Some(Value::Int8(k)), None, None]);
        let out = r.apply(&tx(
            11,
            vec![change(op, k, before, image), change(Op::Insert, 20, None, Some(v(20, "after", "b")))],
        ));
        assert_eq!(out.anomalies.len(), 1, "{op:?}: {:?}", out.anomalies);
        assert!(
            out.deltas.iter().any(|d| matches!(d, Delta::Reset { reason: ResetReason::Quarantine, .. })),
            "{op:?}: the engines are told to set the table aside"
        );
        let t = r.table(TableId(0)).unwrap();
        let TableState::Quarantined { reason, position } = &t.state else { panic!("{op:?}: {:?}", t.state) };
        assert_eq!(*position, Position(11));
        assert!(reason.contains("contradicted the replica at 0/B"), "{reason}");
        assert!(t.get(&key(20)).is_none(), "{op:?}: the rest of the transaction was applied to it");
        // Later changes are not followed; a resync makes it ready again.
        r.apply(&tx(12, vec![change(Op::Insert, 21, None, Some(v(21, "later", "b")))]));
        assert!(r.table(TableId(0)).unwrap().get(&key(21)).is_none());
        r.apply(&SourceEvent::Table(TableEvent::ResyncBegin { table: TableId(0), reason: "asked".into() }));
        r.apply(&SourceEvent::Table(TableEvent::SnapshotBegin { schema: schema(), estimated_rows: None }));
        r.apply(&SourceEvent::Table(TableEvent::SnapshotEnd { table: TableId(0), position: Position(13), rows: 0 }));
        assert!(r.table(TableId(0)).unwrap().state.is_ready());
    }
}

#[test]
fn truncate_resets_and_clones_keep_their_version() {
    let mut r = loaded();
    let before = r.clone();
    let out = r.apply(&tx(
        11,
        vec![Change { table: TableId(0), op: Op::Truncate, key: Key::none(), before: None, after: None }],
    ));
    assert!(matches!(out.deltas[0], Delta::Reset { reason: ResetReason::Truncate, .. }));
    assert_eq!(r.table(TableId(0)).unwrap().len(), 0);
    assert_eq!(r.table(TableId(0)).unwrap().approx_bytes(), 0);
    assert_eq!(before.table(TableId(0)).unwrap().len(), 1, "an earlier version is unaffected");
}

#[test]
fn index_ranges() {
    let mut r = loaded();
    let mut changes = vec![];
    for (i, s) in ["a", "b", "b", "c", "d"].iter().enumerate() {
        changes.push(change(Op::Insert, 100 + i as i64, None, Some(v(100 + i as i64, s, ""))));
    }
    r.apply(&tx(11, changes));
    let t = r.table(TableId(0)).unwrap();
    let count = |range: (std::ops::Bound<Value>, std::ops::Bound<Value>)| t.index_range(1, range).unwrap().count();
    use std::ops::Bound::*;
    assert_eq!(count((Included(Value::text("b")), Included(Value::text("c")))), 3);
    assert_eq!(count((Excluded(Value::text("b")), Excluded(Value::text("d")))), 1);
    assert_eq!(count((Unbounded, Excluded(Value::text("b")))), 1);
    assert_eq!(count((Excluded(Value::text("c")), Unbounded)), 2, "d and open");
}

#[test]
fn updates_in_place_keep_the_index_and_size_exact() {
    let mut r = loaded();
    r.apply(&tx(
        11,
        vec![
            // The indexed value stays: only the row changes.
            change(Op::Update, 1, None, Some(v(1, "open", "y"))),
            change(Op::Insert, 2, None, Some(v(2, "open", "b"))),
            // The indexed value changes: the old entry goes.
            change(Op::Update, 2, None, Some(v(2, "closed", "bb"))),
            // An insert over an existing key replaces its entry too.
            change(Op::Insert, 1, None, Some(v(1, "closed", "z"))),
        ],
    ));
    let t = r.table(TableId(0)).unwrap();
    let keys = |s: &str| t.index_range(1, Value::text(s)..=Value::text(s)).unwrap().cloned().collect::<Vec<_>>();
    assert!(keys("open").is_empty());
    assert_eq!(keys("closed"), vec![key(1), key(2)]);
    // The same rows loaded afresh take the same room.
    let fresh = Table::restore(t.schema.clone(), TableState::Ready, Position(11), t.rows().map(|(_, row)| row.clone()));
    assert_eq!(t.approx_bytes(), fresh.approx_bytes());
}

#[test]
fn a_table_set_aside_before_it_ever_loaded_says_why_until_it_is_copied() {
    let mut r = loaded();
    let never = TableId(7);
    let reason = "relation \"public.nope\" does not exist".to_string();
    r.apply(&SourceEvent::Table(TableEvent::Quarantined {
        table: never,
        position: Position(20),
        reason: reason.clone(),
    }));
    assert_eq!(r.never_loaded(never), Some(reason.as_str()));
    assert_eq!(r.never_loaded_tables().collect::<Vec<_>>(), [never]);
    assert!(r.table(never).is_none(), "nothing to hold");
    assert!(r.never_loaded(TableId(0)).is_none(), "a loaded table keeps its state in the table");
    r.apply(&SourceEvent::Table(TableEvent::ResyncBegin { table: never, reason: "asked".into() }));
    assert!(r.never_loaded(never).is_none(), "tried again: loading, no longer set aside");
}

fn part(pos: u64, index: u32, last: bool, changes: Vec<Change>) -> SourceEvent {
    let SourceEvent::Transaction(tx) = tx(pos, changes) else { unreachable!() };
    SourceEvent::Part(TxPart { tx, index, last, claim: None })
}

fn inserts(ids: std::ops::Range<i64>) -> Vec<Change> {
    ids.map(|i| change(Op::Insert, i, None, Some(v(i, "bulk", "b")))).collect()
}

#[test]
fn a_transaction_in_parts_is_hidden_from_readers_until_its_last_part() {
    let mut r = loaded();
    r.apply(&part(12, 0, false, inserts(2..50)));
    r.apply(&part(12, 1, false, inserts(50..100)));
    // Applied as they come, shown at the end.
    assert_eq!(r.table(TableId(0)).unwrap().len(), 99);
    let seen = r.visible();
    assert_eq!(seen.table(TableId(0)).unwrap().len(), 1, "readers see the table as before the transaction");
    assert_eq!(r.applied_position("s"), Position(10));
    let deletes = (2..100).map(|i| change(Op::Delete, i, None, None)).collect();
    let out = r.apply(&part(20, 2, true, deletes));
    assert!(out.anomalies.is_empty() && !out.skipped);
    assert_eq!(r.visible().table(TableId(0)).unwrap().len(), 1);
    assert_eq!(r.applied_position("s"), Position(20));
    assert_eq!(r.table(TableId(0)).unwrap().since, Position(20), "the table's position moves at the commit");
    assert!(!r.in_transaction("s"));
}

#[test]
fn a_transaction_sent_again_from_its_first_part_replaces_the_parts_applied() {
    let mut r = loaded();
    r.apply(&part(12, 0, false, inserts(2..50)));
    // The source reconnected mid-way and sends it again: without taking back the first
    // attempt, every insert would contradict the replica.
    let out = r.apply(&part(12, 0, false, inserts(2..50)));
    assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
    let out = r.apply(&part(20, 1, true, inserts(50..60)));
    assert!(out.anomalies.is_empty());
    assert_eq!(r.visible().table(TableId(0)).unwrap().len(), 59);
    // A source that moves on (progress past it) takes back a transaction it left open.
    r.apply(&part(25, 0, false, inserts(100..110)));
    r.apply(&SourceEvent::Progress { source: "s".into(), position: Position(30) });
    assert!(!r.in_transaction("s"));
    assert_eq!(r.table(TableId(0)).unwrap().len(), 59, "the parts of the abandoned transaction are gone");
    // A re-delivered transaction in parts is skipped as a whole one is.
    let out = r.apply(&part(12, 0, false, inserts(2..50)));
    assert!(out.skipped && out.deltas.is_empty());
}

#[test]
fn a_table_copied_again_between_the_parts_of_a_transaction_does_not_take_it_back() {
    // Two tables of one source; the second is copied again (a resync runs beside the stream)
    // while a transaction touching both comes in parts.
    let reg = Registry::default();
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    let mut r = Replica::new();
    let mut schemas = Vec::new();
    for name in ["a", "b"] {
        let id = reg.add("s".into(), "public", name, name, vec![], vec![]).unwrap();
        let s = Arc::new(TableSchema {
            spec: reg.get(id).unwrap().clone(),
            columns: vec![col("id", ColumnType::Int8), col("status", ColumnType::Text), col("body", ColumnType::Text)],
            key: vec![0],
            indexed: vec![],
            version: 1,
        });
        r.apply(&SourceEvent::Table(TableEvent::SnapshotBegin { schema: s.clone(), estimated_rows: None }));
        r.apply(&SourceEvent::Table(TableEvent::SnapshotEnd { table: id, position: Position(10), rows: 0 }));
        schemas.push(s);
    }
    r.apply(&SourceEvent::Consistent { source: "s".into(), position: Position(10) });
    let on = |table: u32, mut c: Vec<Change>| {
        c.iter_mut().for_each(|c| c.table = TableId(table));
        c
    };
    r.apply(&part(12, 0, false, [on(0, inserts(1..5)), on(1, inserts(1..5))].concat()));
    let b = TableId(1);
    r.apply(&SourceEvent::Table(TableEvent::SnapshotBegin { schema: schemas[1].clone(), estimated_rows: None }));
    let copied = vec![Row::from(vec![Value::Int8(7), Value::text("copied"), Value::text("c")])];
    r.apply(&SourceEvent::SnapshotRows { table: b, rows: copied });
    r.apply(&SourceEvent::Table(TableEvent::SnapshotEnd { table: b, position: Position(25), rows: 1 }));
    assert!(r.in_transaction("s"), "the copy does not end the transaction");
    assert_eq!(r.visible().table(b).unwrap().len(), 1, "readers see the new copy of the table");
    let out = r.apply(&part(20, 1, true, [on(0, inserts(5..8)), on(1, inserts(5..8))].concat()));
    assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
    let seen = r.visible();
    assert_eq!(seen.table(TableId(0)).unwrap().len(), 7, "every part applied to the table not copied");
    assert_eq!(seen.table(b).unwrap().len(), 1, "the copy, consistent after the transaction, holds it");
}

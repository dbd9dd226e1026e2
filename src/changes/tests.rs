use std::sync::Arc;

use super::*;
use crate::change::{Key, Op, Position, ResetReason, Row};
use crate::query::{CompareOp, Filter};
use crate::registry::TableId;
use crate::replica::{Applied, Delta, RowDelta, TxInfo};
use crate::value::Value;

const T: TableId = TableId(0);
const OTHER: TableId = TableId(1);
const KEY: [usize; 1] = [0];

/// `(id, region)`
fn row(id: i64, region: &str) -> Row {
    Arc::from(vec![Value::Int8(id), Value::Text(region.into())])
}

fn delta(table: TableId, op: Op, before: Option<Row>, after: Option<Row>) -> Delta {
    let key = Key::of(after.as_ref().or(before.as_ref()).unwrap(), &KEY);
    Delta::Row(RowDelta { table, op, ordinal: 0, key, before, after })
}

fn tx(n: u64, deltas: Vec<Delta>) -> Applied {
    let info = TxInfo { source: "pg".into(), position: Position(n * 100), commit_ts: n as i64, xid: n };
    Applied { tx: Some(info), deltas, ..Applied::default() }
}

fn north() -> Filter {
    Filter::Compare { column: 1, op: CompareOp::Eq, value: Value::Text("north".into()) }
}

fn retention(rows: usize) -> Retention {
    Retention { rows, age_micros: 60_000_000 }
}

fn kinds(entry: &Entry, filter: &Filter) -> Vec<(Kind, Op, Option<i64>, bool, bool)> {
    events(entry, T, filter)
        .unwrap()
        .into_iter()
        .map(|e| {
            let id = e.key(&KEY).map(|k| match k.0[0] {
                Value::Int8(i) => i,
                _ => panic!(),
            });
            (e.kind, e.op, id, e.before.is_some(), e.after.is_some())
        })
        .collect()
}

#[test]
fn a_row_enters_updates_and_leaves_relative_to_the_filter_and_is_never_named_outside_it() {
    let mut log = ChangeLog::new(7, retention(1000));
    let seq = log
        .append(
            &tx(
                1,
                vec![
                    delta(T, Op::Insert, None, Some(row(1, "north"))),
                    delta(T, Op::Insert, None, Some(row(2, "south"))),
                    delta(T, Op::Update, Some(row(2, "south")), Some(row(2, "north"))),
                    delta(T, Op::Update, Some(row(1, "north")), Some(row(1, "north"))),
                    delta(T, Op::Update, Some(row(1, "north")), Some(row(1, "south"))),
                    delta(T, Op::Delete, Some(row(2, "north")), None),
                    delta(T, Op::Delete, Some(row(3, "south")), None),
                    delta(OTHER, Op::Insert, None, Some(row(9, "north"))),
                ],
            ),
            10,
        )
        .unwrap();
    let (entries, through) = log.after(0, T, 10).unwrap();
    assert_eq!((entries.len(), through, seq), (1, 1, 1));
    use Kind::*;
    assert_eq!(
        kinds(&entries[0], &north()),
        [
            (Enter, Op::Insert, Some(1), false, true),
            (Enter, Op::Update, Some(2), false, true),
            (Update, Op::Update, Some(1), true, true),
            (Leave, Op::Update, Some(1), false, false),
            (Leave, Op::Delete, Some(2), false, false),
        ]
    );
    // Without a filter every change is news; row 3 was never seen, so its delete is a leave.
    assert_eq!(kinds(&entries[0], &Filter::True).len(), 7);
}

#[test]
fn a_key_that_moves_leaves_under_its_old_key() {
    let mut log = ChangeLog::new(7, retention(1000));
    log.append(&tx(1, vec![delta(T, Op::Update, Some(row(1, "north")), Some(row(5, "south")))]), 10);
    let (entries, _) = log.after(0, T, 10).unwrap();
    assert_eq!(kinds(&entries[0], &north()), [(Kind::Leave, Op::Update, Some(1), false, false)]);
    assert_eq!(kinds(&entries[0], &Filter::True), [(Kind::Update, Op::Update, Some(5), true, true)]);
}

#[test]
fn entries_of_other_tables_are_read_through_but_not_returned() {
    let mut log = ChangeLog::new(7, retention(1000));
    for n in 1..=5 {
        let table = if n % 2 == 0 { T } else { OTHER };
        log.append(&tx(n, vec![delta(table, Op::Insert, None, Some(row(n as i64, "north")))]), 10);
    }
    let (entries, through) = log.after(0, T, 10).unwrap();
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 4]);
    assert_eq!(through, 5);
    let (entries, through) = log.after(2, T, 1).unwrap();
    assert_eq!((entries[0].seq, through), (4, 4), "stops at `max`, having read through the last one taken");
    let (entries, through) = log.after(5, T, 10).unwrap();
    assert!(entries.is_empty());
    assert_eq!(through, 5);
}

#[test]
fn the_log_keeps_its_row_count_and_age_and_says_when_a_cursor_fell_off() {
    let mut log = ChangeLog::new(7, Retention { rows: 3, age_micros: 1_000 });
    for n in 1..=5 {
        log.append(&tx(n, vec![delta(T, Op::Insert, None, Some(row(n as i64, "north")))]), n as i64);
    }
    assert_eq!(log.figures(5).transactions, 3);
    assert_eq!(log.resume(log.cursor(2, Position::ZERO), T), Ok(2), "entry 3 is still there");
    assert!(matches!(log.resume(log.cursor(1, Position::ZERO), T), Err(Expired::TooOld { rows: 3, .. })));
    assert!(matches!(log.after(1, T, 10), Err(Expired::TooOld { .. })));
    // Age: at t = 1005, entries 4 (t = 4) and older are past 1 ms.
    log.evict(1_005);
    assert_eq!(log.figures(1_005).transactions, 1);
    assert!(log.resume(log.cursor(3, Position::ZERO), T).is_err());
    assert_eq!(log.resume(log.cursor(4, Position::ZERO), T), Ok(4), "entry 5 is still there");
    // The newest entry stays even when it alone is over the row count.
    log.append(&tx(6, (0..10).map(|i| delta(T, Op::Insert, None, Some(row(100 + i, "n")))).collect()), 1_005);
    assert_eq!(log.figures(1_005).transactions, 1);
    assert_eq!(log.resume(log.head(), T), Ok(6));
}

#[test]
fn a_cursor_from_another_process_from_the_future_or_from_before_a_break_is_refused() {
    let mut log = ChangeLog::new(7, retention(1000));
    log.append(&tx(1, vec![delta(T, Op::Insert, None, Some(row(1, "north")))]), 1);
    let before_truncate = log.head();
    assert_eq!(ChangeLog::new(8, retention(10)).resume(before_truncate, T), Err(Expired::OtherProcess));
    assert_eq!(log.resume(Cursor { epoch: 7, seq: 99, position: Position::ZERO }, T), Err(Expired::Ahead));
    log.append(&tx(2, vec![Delta::Reset { table: T, reason: ResetReason::Truncate }]), 2);
    assert_eq!(log.resume(before_truncate, T), Err(Expired::Broke(Break::Truncated)));
    assert_eq!(log.resume(before_truncate, OTHER), Ok(1), "another table's break is not this one's");
    // A reader that was there when it happened sees every row leave at once.
    let (entries, _) = log.after(1, T, 10).unwrap();
    assert_eq!(kinds(&entries[0], &Filter::True), [(Kind::Leave, Op::Truncate, None, false, false)]);
    let after_truncate = log.head();
    assert_eq!(log.resume(after_truncate, T), Ok(2));
    // A resync ends the stream of every reader of the table.
    log.append(
        &Applied { deltas: vec![Delta::Reset { table: T, reason: ResetReason::Resync }], ..Applied::default() },
        3,
    );
    assert_eq!(log.resume(after_truncate, T), Err(Expired::Broke(Break::Reloaded)));
    let (entries, _) = log.after(2, T, 10).unwrap();
    assert_eq!(events(&entries[0], T, &Filter::True), Err(Break::Reloaded));
}

#[test]
fn cursors_round_trip_and_garbage_is_refused() {
    let c = Cursor { epoch: u64::MAX - 3, seq: 42, position: Position(0x16_B374_D848) };
    assert_eq!(Cursor::parse(&c.to_string()), Ok(c));
    // A cursor of the first version (no position) still reads, as one that names none.
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&7u64.to_be_bytes());
    v1.extend_from_slice(&9u64.to_be_bytes());
    use base64::Engine as _;
    let v1 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v1);
    assert_eq!(Cursor::parse(&v1), Ok(Cursor { epoch: 7, seq: 9, position: Position::ZERO }));
    for bad in ["", "abc", "!!!!", &c.to_string()[1..]] {
        assert_eq!(Cursor::parse(bad), Err(CursorError::Malformed), "{bad}");
    }
}

#[test]
fn re_delivered_and_row_less_events_are_not_logged() {
    let mut log = ChangeLog::new(7, retention(1000));
    let mut skipped = tx(1, vec![delta(T, Op::Insert, None, Some(row(1, "north")))]);
    skipped.skipped = true;
    assert_eq!(log.append(&skipped, 1), None);
    assert_eq!(log.append(&Applied::default(), 1), None);
    assert_eq!(log.head().seq, 0);
}

/// `tx` of source `source` at `position`, inserting `id` into `table`.
fn tx_of(source: &str, position: u64, table: TableId, id: i64) -> Applied {
    let info = TxInfo { source: source.into(), position: Position(position), commit_ts: 0, xid: position };
    Applied {
        tx: Some(info),
        deltas: vec![delta(table, Op::Insert, None, Some(row(id, "north")))],
        ..Applied::default()
    }
}

#[test]
fn a_cursor_of_another_log_resumes_after_the_same_source_position_whatever_else_was_interleaved() {
    // Two instances log the same two sources' transactions, interleaved differently.
    let mut a = ChangeLog::starting_at(1, retention(1000), [("pg".into(), Position(50))].into());
    for applied in [tx_of("pg", 100, T, 1), tx_of("my", 7, OTHER, 2), tx_of("pg", 200, T, 3), tx_of("pg", 300, T, 4)] {
        a.append(&applied, 1);
    }
    let mut b = ChangeLog::starting_at(2, retention(1000), [("pg".into(), Position(50))].into());
    for applied in [tx_of("my", 7, OTHER, 2), tx_of("pg", 100, T, 1), tx_of("pg", 200, T, 3)] {
        b.append(&applied, 1);
    }
    // A client of A has the table up to position 200 (A's entry 3).
    let cursor = a.cursor(3, Position(200));
    let resumed = b.resume_from(cursor, T, "pg").unwrap();
    assert_eq!(resumed, Resumed { seq: 3, through: Some(Position(200)) }, "after B's entry of position 200");
    // B has not logged position 300 yet: the reader starts at its head and waits for it.
    assert!(b.after(resumed.seq, T, 10).unwrap().0.is_empty());
    b.append(&tx_of("pg", 300, T, 4), 2);
    let (next, _) = b.after(resumed.seq, T, 10).unwrap();
    assert_eq!(next.iter().map(|e| e.tx.as_ref().unwrap().position).collect::<Vec<_>>(), [Position(300)]);
    // Ahead of B: B starts at its head, and skips what arrives up to the cursor's position.
    let ahead = b.resume_from(a.cursor(9, Position(400)), T, "pg").unwrap();
    assert_eq!(ahead, Resumed { seq: 4, through: Some(Position(400)) });
    // The same log still resumes by sequence number.
    assert_eq!(a.resume_from(cursor, T, "pg"), Ok(Resumed { seq: 3, through: None }));
}

#[test]
fn a_cursor_of_another_log_is_refused_when_this_log_does_not_hold_the_history_from_there() {
    let mut log =
        ChangeLog::starting_at(2, Retention { rows: 2, age_micros: 60_000_000 }, [("pg".into(), Position(150))].into());
    // Before the log began (an instance that started from a replica at 150).
    assert_eq!(
        log.resume_from(Cursor { epoch: 1, seq: 5, position: Position(100) }, T, "pg"),
        Err(Expired::Before { start: Position(150) })
    );
    // Without a position (a first-version cursor of another process).
    assert_eq!(
        log.resume_from(Cursor { epoch: 1, seq: 5, position: Position::ZERO }, T, "pg"),
        Err(Expired::OtherProcess)
    );
    for (i, p) in [200, 300, 400].into_iter().enumerate() {
        log.append(&tx_of("pg", p, T, i as i64), 1);
    }
    // 200 was evicted (two rows kept): a cursor at 150 would miss it.
    assert!(matches!(
        log.resume_from(Cursor { epoch: 1, seq: 5, position: Position(150) }, T, "pg"),
        Err(Expired::TooOld { .. })
    ));
    assert_eq!(log.resume_from(Cursor { epoch: 1, seq: 5, position: Position(200) }, T, "pg").map(|r| r.seq), Ok(1));
    // A break of the table after the cursor's position.
    log.append(&tx(5, vec![Delta::Reset { table: T, reason: ResetReason::Truncate }]), 1);
    assert_eq!(
        log.resume_from(Cursor { epoch: 1, seq: 5, position: Position(400) }, T, "pg"),
        Err(Expired::Broke(Break::Truncated))
    );
}

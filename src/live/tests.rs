//! The live engine against the one-shot engine: after every transaction of a random history,
//! each live result must equal a fresh query over the same replica version, and a step must
//! be reported exactly when the result changed.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::aggregate::{AggFn, AggregateSpec, Input};
use crate::change::{Change, Image, Key, Op, Position, SourceEvent, Transaction};
use crate::query::{CompareOp, Filter, OrderBy, Query, select};
use crate::registry::{Column, ColumnType, Registry, TableSchema};
use crate::replica::TableState;
use crate::value::Value;

// Columns: 0 id int8 (key), 1 qty int4 (indexed), 2 status text (indexed), 3 created int8
// (indexed), 4 note text.
fn schema() -> Arc<TableSchema> {
    let reg = Registry::default();
    let id = reg.add("s".into(), "public", "t", "t", vec![], vec![]).expect("register");
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    Arc::new(TableSchema {
        spec: reg.get(id).expect("spec").clone(),
        columns: vec![
            col("id", ColumnType::Int8),
            col("qty", ColumnType::Int4),
            col("status", ColumnType::Text),
            col("created", ColumnType::Int8),
            col("note", ColumnType::Text),
        ],
        key: vec![0],
        indexed: vec![1, 2, 3],
        version: 1,
    })
}

fn replica(schema: &Arc<TableSchema>) -> Replica {
    let mut table = Table::new(schema.clone());
    table.state = TableState::Ready;
    // The generated writes may insert a row twice or delete one that is gone: what the engines
    // do with them is under test here, not whether the replica trusts them.
    Replica::restore(vec![table], HashMap::from([(Arc::from("s"), Position(1))])).loaded_mid_stream()
}

#[derive(Clone, Debug)]
enum Write {
    Upsert {
        id: i64,
        qty: Option<i32>,
        status: Option<&'static str>,
        created: i64,
    },
    Delete {
        id: i64,
    },
    /// Moves a row to another key.
    Rekey {
        from: i64,
        to: i64,
    },
    Truncate,
}

fn write() -> impl Strategy<Value = Write> {
    let status = prop::option::of(prop::sample::select(vec!["new", "paid", "shipped"]));
    prop_oneof![
        8 => (0i64..40, prop::option::of(-3i32..4), status, 0i64..30)
            .prop_map(|(id, qty, status, created)| Write::Upsert { id, qty, status, created }),
        3 => (0i64..40).prop_map(|id| Write::Delete { id }),
        1 => (0i64..40, 0i64..40).prop_map(|(from, to)| Write::Rekey { from, to }),
        1 => Just(Write::Truncate),
    ]
}

fn row(id: i64, qty: Option<i32>, status: Option<&str>, created: i64) -> Vec<Value> {
    vec![
        Value::Int8(id),
        qty.map_or(Value::Null, Value::Int4),
        status.map_or(Value::Null, Value::text),
        Value::Int8(created),
        Value::text("n"),
    ]
}

fn full(values: &[Value]) -> Image {
    Image::full(values.to_vec())
}

/// Turns writes into one valid transaction against the replica's current rows.
fn transaction(r: &Replica, schema: &Arc<TableSchema>, writes: &[Write], position: u64) -> Transaction {
    let table = schema.id();
    let mut rows: HashMap<i64, Row> =
        r.table(table).expect("table").rows().map(|(k, v)| (int(&k.0[0]), v.clone())).collect();
    let mut changes = Vec::new();
    for w in writes {
        match w {
            Write::Upsert { id, qty, status, created } => {
                let new = row(*id, *qty, *status, *created);
                let op = if rows.contains_key(id) { Op::Update } else { Op::Insert };
                changes.push(Change {
                    table,
                    op,
                    key: Key(vec![Value::Int8(*id)].into()),
                    before: None,
                    after: Some(full(&new)),
                });
                rows.insert(*id, new.into());
            }
            Write::Delete { id } => {
                if rows.remove(id).is_some() {
                    let key = Key(vec![Value::Int8(*id)].into());
                    changes.push(Change { table, op: Op::Delete, key, before: None, after: None });
                }
            }
            Write::Rekey { from, to } => {
                if from != to
                    && !rows.contains_key(to)
                    && let Some(old) = rows.remove(from)
                {
                    let mut new = old.to_vec();
                    new[0] = Value::Int8(*to);
                    let before = Image(vec![Some(Value::Int8(*from)), None, None, None, None]);
                    changes.push(Change {
                        table,
                        op: Op::Update,
                        key: Key(vec![Value::Int8(*to)].into()),
                        before: Some(before),
                        after: Some(full(&new)),
                    });
                    rows.insert(*to, new.into());
                }
            }
            Write::Truncate => {
                rows.clear();
                changes.push(Change { table, op: Op::Truncate, key: Key::none(), before: None, after: None });
            }
        }
    }
    Transaction {
        source: Arc::from("s"),
        position: Position(position),
        commit_ts: 0,
        xid: position,
        changes,
        table_events: vec![],
    }
}

fn int(v: &Value) -> i64 {
    if let Value::Int8(i) = v { *i } else { -1 }
}

fn ids(rows: &[Row]) -> Vec<i64> {
    rows.iter().map(|r| int(&r[0])).collect()
}

fn filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        Just(Filter::True),
        prop::sample::select(vec!["new", "paid", "shipped"]).prop_map(|s| Filter::Compare {
            column: 2,
            op: CompareOp::Eq,
            value: Value::text(s)
        }),
        (-3i32..4).prop_map(|q| Filter::Compare { column: 1, op: CompareOp::Gte, value: Value::Int4(q) }),
        (0i64..30).prop_map(|c| Filter::And(vec![
            Filter::Compare { column: 3, op: CompareOp::Lt, value: Value::Int8(c) },
            Filter::IsNull { column: 1, is_null: false },
        ])),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    let term = (1usize..4, any::<bool>(), any::<bool>()).prop_map(|(column, descending, nulls_first)| OrderBy {
        column,
        descending,
        nulls_first,
    });
    (filter(), prop::collection::vec(term, 0..3), prop::option::of(0usize..12), 0usize..4)
        .prop_map(|(filter, order, limit, offset)| Query { filter, order, limit, offset })
}

fn spec(schema: &Arc<TableSchema>, shape: Shape) -> LiveSpec {
    LiveSpec { table: schema.id(), schema: schema.clone(), shape }
}

/// The result a fresh computation gives, in the engine's terms.
fn fresh(r: &Replica, spec: &LiveSpec) -> String {
    let table = r.table(spec.table).expect("table");
    match &spec.shape {
        Shape::Rows(q) => format!("{:?}", select(table, q)),
        Shape::Row { key, filter } => format!("{:?}", table.get(key).filter(|r| filter.matches(r))),
        Shape::Aggregate { filter, spec } => {
            format!("{:?}", aggregate_table(table, filter, spec.clone()).expect("aggregate").groups())
        }
    }
}

fn live(set: &LiveSet, id: QueryId) -> String {
    match set.current(id).expect("ready") {
        Current::Rows(rows) => format!("{rows:?}"),
        Current::Row(row) => format!("{row:?}"),
        Current::Groups(groups) => format!("{groups:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn live_results_equal_fresh_queries(
        initial in prop::collection::vec(write(), 0..40),
        history in prop::collection::vec(prop::collection::vec(write(), 1..5), 1..40),
        queries in prop::collection::vec(query(), 1..5),
        key in 0i64..40,
        agg_filter in filter(),
    ) {
        let schema = schema();
        let mut r = replica(&schema);
        let tx = transaction(&r, &schema, &initial, 2);
        r.apply(&SourceEvent::Transaction(tx));
        let mut set = LiveSet::new();
        let mut specs: Vec<LiveSpec> = queries.into_iter().map(|q| {
            spec(&schema, Shape::Rows(q.validate(&schema).expect("valid")))
        }).collect();
        specs.push(spec(&schema, Shape::Row { key: Key(vec![Value::Int8(key)].into()), filter: Filter::True }));
        specs.push(spec(&schema, Shape::Aggregate {
            filter: agg_filter,
            spec: AggregateSpec { group_by: vec![2], measures: vec![(AggFn::Sum, Input::Column(1)), (AggFn::Max, Input::Column(3))] },
        }));
        let ids: Vec<QueryId> = specs.iter().map(|s| set.add(s.clone(), &r, 0).expect("ready")).collect();
        for (n, writes) in history.iter().enumerate() {
            let before: Vec<String> = ids.iter().map(|id| live(&set, *id)).collect();
            let tx = transaction(&r, &schema, writes, 3 + n as u64);
            let applied = r.apply(&SourceEvent::Transaction(tx));
            let steps = set.apply(&applied, &r, 0);
            let mut seen = std::collections::HashSet::new();
            for (id, _) in &steps {
                prop_assert!(seen.insert(*id), "one step per query per transaction");
            }
            for (i, (id, spec)) in ids.iter().zip(&specs).enumerate() {
                let now = live(&set, *id);
                prop_assert_eq!(&now, &fresh(&r, spec), "query {} after transaction {}", i, n);
                let step = steps.iter().find(|(s, _)| s == id).map(|(_, s)| s);
                let rows_query = matches!(spec.shape, Shape::Rows(_));
                if now != before[i] {
                    prop_assert!(step.is_some(), "query {} changed without a step", i);
                } else if rows_query {
                    // Row and aggregate results report any touch; rows only a real change.
                    let resets = matches!(step, Some(Step::Changed { reset: true, .. }));
                    prop_assert!(step.is_none() || resets, "query {} reported a step without a change", i);
                }
            }
        }
    }

    #[test]
    fn a_diff_rebuilds_the_new_result_from_the_old(
        initial in prop::collection::vec(write(), 0..40),
        history in prop::collection::vec(prop::collection::vec(write(), 1..5), 1..30),
        q in query(),
    ) {
        let schema = schema();
        let mut r = replica(&schema);
        let tx = transaction(&r, &schema, &initial, 2);
        r.apply(&SourceEvent::Transaction(tx));
        let mut set = LiveSet::new();
        let id = set.add(spec(&schema, Shape::Rows(q.validate(&schema).expect("valid"))), &r, 0).expect("ready");
        let mut client: Vec<Row> = match set.current(id) { Some(Current::Rows(rows)) => rows.to_vec(), _ => unreachable!() };
        for (n, writes) in history.iter().enumerate() {
            let tx = transaction(&r, &schema, writes, 3 + n as u64);
            let applied = r.apply(&SourceEvent::Transaction(tx));
            for (_, step) in set.apply(&applied, &r, 0) {
                match step {
                    Step::Changed { reset: true, .. } => {
                        client = match set.current(id) { Some(Current::Rows(rows)) => rows.to_vec(), _ => unreachable!() };
                    }
                    Step::Changed { reset: false, rows } => {
                        // What a client does with a patch: drop removed and upserted keys, then
                        // insert the upserts at their indexes, lowest first.
                        let gone: std::collections::HashSet<i64> =
                            rows.removed.iter().chain(rows.upserts.iter().map(|(_, r)| r)).map(|r| int(&r[0])).collect();
                        client.retain(|r| !gone.contains(&int(&r[0])));
                        for (index, row) in rows.upserts {
                            client.insert(index, row);
                        }
                    }
                    other => prop_assert!(false, "unexpected step {:?}", other),
                }
            }
            let want: Vec<Row> = match set.current(id) { Some(Current::Rows(rows)) => rows.to_vec(), _ => unreachable!() };
            prop_assert_eq!(ids(&client), ids(&want), "after transaction {}", n);
        }
    }
}

#[test]
fn a_latest_first_window_refills_from_the_index() {
    let schema = schema();
    let mut r = replica(&schema);
    let writes: Vec<Write> =
        (0..100).map(|i| Write::Upsert { id: i, qty: Some(1), status: Some("paid"), created: i }).collect();
    let tx = transaction(&r, &schema, &writes, 2);
    r.apply(&SourceEvent::Transaction(tx));
    let q = Query { filter: Filter::True, order: vec![OrderBy::desc(3)], limit: Some(3), offset: 0 };
    let mut set = LiveSet::new();
    let id = set.add(spec(&schema, Shape::Rows(q)), &r, 0).expect("ready");
    let shown = |set: &LiveSet| match set.current(id) {
        Some(Current::Rows(rows)) => ids(rows),
        _ => unreachable!(),
    };
    assert_eq!(shown(&set), [99, 98, 97]);
    // Deleting the two newest leaves one; the refill walks on to 96 and 95.
    let tx = transaction(&r, &schema, &[Write::Delete { id: 99 }, Write::Delete { id: 98 }], 3);
    let applied = r.apply(&SourceEvent::Transaction(tx));
    let steps = set.apply(&applied, &r, 0);
    assert_eq!(shown(&set), [97, 96, 95]);
    let Some((_, Step::Changed { reset: false, rows })) = steps.first() else { panic!("{steps:?}") };
    assert_eq!(ids(&rows.removed), [99, 98]);
    assert_eq!(rows.upserts.iter().map(|(i, r)| (*i, int(&r[0]))).collect::<Vec<_>>(), [(1, 96), (2, 95)]);
    // A change to a row outside the window is no step at all.
    let tx = transaction(&r, &schema, &[Write::Upsert { id: 3, qty: Some(2), status: None, created: 3 }], 4);
    let applied = r.apply(&SourceEvent::Transaction(tx));
    assert!(set.apply(&applied, &r, 0).is_empty());
    assert_eq!(set.evaluations, 1);
}

#[test]
fn a_table_reload_pauses_and_resets_its_queries() {
    let schema = schema();
    let mut r = replica(&schema);
    let tx = transaction(&r, &schema, &[Write::Upsert { id: 1, qty: None, status: None, created: 1 }], 2);
    r.apply(&SourceEvent::Transaction(tx));
    let mut set = LiveSet::new();
    let id = set.add(spec(&schema, Shape::Rows(Query::all())), &r, 0).expect("ready");
    let begin = r.apply(&SourceEvent::Table(crate::change::TableEvent::ResyncBegin {
        table: schema.id(),
        reason: "test".into(),
    }));
    assert!(matches!(set.apply(&begin, &r, 0).as_slice(), [(_, Step::NotReady(_))]));
    assert!(set.current(id).is_none());
    let end = r.apply(&SourceEvent::Table(crate::change::TableEvent::SnapshotEnd {
        table: schema.id(),
        rows: 1,
        position: Position(5),
    }));
    assert!(matches!(set.apply(&end, &r, 0).as_slice(), [(_, Step::Changed { reset: true, .. })]));
    assert!(matches!(set.current(id), Some(Current::Rows(rows)) if ids(rows) == [1]));
}

// ---- time-relative filters: results follow the clock with no write ----

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
/// An arbitrary "now" for the tests (2024-05-31T12:00:00Z).
const NOW: i64 = 1_717_156_800 * SECOND;

// Columns: 0 id int8 (key), 1 created_at timestamptz (indexed), 2 qty int4.
fn timed_schema() -> Arc<TableSchema> {
    let reg = Registry::default();
    let id = reg.add("s".into(), "public", "e", "e", vec![], vec![]).expect("register");
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    Arc::new(TableSchema {
        spec: reg.get(id).expect("spec").clone(),
        columns: vec![
            col("id", ColumnType::Int8),
            col("created_at", ColumnType::TimestampTz),
            col("qty", ColumnType::Int4),
        ],
        key: vec![0],
        indexed: vec![1],
        version: 1,
    })
}

/// A transaction upserting `(id, created_at)` rows (`None`: a NULL time) or deleting (`Err`).
fn timed_tx(
    r: &Replica,
    schema: &Arc<TableSchema>,
    rows: &[(i64, Result<Option<i64>, ()>)],
    position: u64,
) -> Transaction {
    let table = schema.id();
    let changes = rows
        .iter()
        .map(|(id, created)| {
            let key = Key(vec![Value::Int8(*id)].into());
            let exists = r.table(table).and_then(|t| t.get(&key)).is_some();
            match created {
                Ok(created) => {
                    let values = [Value::Int8(*id), created.map_or(Value::Null, Value::TimestampTz), Value::Int4(1)];
                    let op = if exists { Op::Update } else { Op::Insert };
                    Change { table, op, key, before: None, after: Some(full(&values)) }
                }
                Err(()) => Change { table, op: Op::Delete, key, before: None, after: None },
            }
        })
        .collect();
    Transaction {
        source: Arc::from("s"),
        position: Position(position),
        commit_ts: 0,
        xid: position,
        changes,
        table_events: vec![],
    }
}

fn older_than(minutes: i64) -> Filter {
    let ago = crate::query::Ago { micros: minutes * MINUTE, kind: crate::query::TimeKind::TimestampTz };
    Filter::CompareWith { column: 1, op: CompareOp::Lt, operand: crate::query::Operand::Ago(ago) }
}

#[test]
fn a_row_ages_into_a_live_query_without_a_write() {
    let schema = timed_schema();
    let mut r = replica(&schema);
    // Created 9 minutes before NOW: not yet older than 10 minutes.
    r.apply(&SourceEvent::Transaction(timed_tx(&r, &schema, &[(1, Ok(Some(NOW - 9 * MINUTE)))], 2)));
    let mut set = LiveSet::new();
    let rows = Query { filter: older_than(10), ..Query::all() }.validate(&schema).expect("valid");
    let rows = set.add(spec(&schema, Shape::Rows(rows)), &r, NOW).expect("ready");
    let count = spec(
        &schema,
        Shape::Aggregate { filter: older_than(10), spec: AggregateSpec { group_by: vec![], measures: vec![] } },
    );
    let count = set.add(count, &r, NOW).expect("ready");
    let counted = |set: &LiveSet| match set.current(count) {
        Some(Current::Groups(groups)) => groups.iter().map(|g| g.count).sum::<u64>(),
        _ => unreachable!(),
    };
    assert!(matches!(set.current(rows), Some(Current::Rows(r)) if r.is_empty()));
    assert_eq!(counted(&set), 0);
    // The row turns 10 minutes old one microsecond after NOW + 1 min.
    assert_eq!(set.next_due(), Some(NOW + MINUTE + 1));
    assert!(set.advance(NOW + MINUTE, &r).is_empty(), "not due yet");
    let steps = set.advance(NOW + 61 * SECOND, &r);
    assert_eq!(steps.len(), 2, "{steps:?}");
    let Some((_, Step::Changed { reset: false, rows: diff })) = steps.iter().find(|(id, _)| *id == rows) else {
        panic!("{steps:?}")
    };
    assert_eq!(diff.upserts.iter().map(|(i, r)| (*i, int(&r[0]))).collect::<Vec<_>>(), [(0, 1)]);
    assert!(matches!(set.current(rows), Some(Current::Rows(r)) if ids(r) == [1]));
    assert_eq!(counted(&set), 1);
    // Nothing more can change by time alone: the row stays old.
    assert_eq!(set.next_due(), None);
    // A write at a later instant makes the row new again; time then takes it back in.
    let later = NOW + 2 * MINUTE;
    let applied = r.apply(&SourceEvent::Transaction(timed_tx(&r, &schema, &[(1, Ok(Some(later)))], 3)));
    let steps = set.apply(&applied, &r, later);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(counted(&set), 0);
    assert_eq!(set.next_due(), Some(later + 10 * MINUTE + 1));
    assert_eq!(set.advance(later + 11 * MINUTE, &r).len(), 2);
    assert_eq!(counted(&set), 1);
}

fn timed_filter() -> impl Strategy<Value = Filter> {
    let op = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Neq,
        CompareOp::Gt,
        CompareOp::Gte,
        CompareOp::Lt,
        CompareOp::Lte,
    ]);
    let ago = (op, 0i64..6).prop_map(|(op, m)| {
        let ago = crate::query::Ago { micros: m * MINUTE, kind: crate::query::TimeKind::TimestampTz };
        Filter::CompareWith { column: 1, op, operand: crate::query::Operand::Ago(ago) }
    });
    let leaf = prop_oneof![
        4 => ago,
        1 => (0i64..3).prop_map(|id| Filter::Compare { column: 0, op: CompareOp::Gt, value: Value::Int8(id) }),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

#[derive(Clone, Debug)]
enum Moment {
    /// Time passes (whole minutes and a few microseconds, to land on and next to edges); the
    /// flag says whether the engine is advanced to the end (else a write comes first, as when
    /// the hub takes a batch before its timer).
    Wait(i64, bool),
    Write(Vec<(i64, Result<Option<i64>, ()>)>),
}

fn moment() -> impl Strategy<Value = Moment> {
    let created = prop_oneof![1 => Just(None), 6 => (-8i64..2, -2i64..3).prop_map(|(m, us)| Some(m * MINUTE + us))];
    let write = (0i64..8, prop_oneof![4 => created.prop_map(Ok), 1 => Just(Err(()))]);
    prop_oneof![
        2 => (0i64..4, -2i64..3, any::<bool>()).prop_map(|(m, us, settle)| Moment::Wait((m * MINUTE + us).max(0), settle)),
        1 => prop::collection::vec(write, 1..4).prop_map(Moment::Write),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Live results driven by `apply` and `advance` equal a fresh query at the same instant,
    /// whatever the filter, the writes and the waits.
    #[test]
    fn time_relative_results_equal_fresh_queries(
        initial in prop::collection::vec((0i64..8, (-8i64..2).prop_map(|m| Ok(Some(m * MINUTE)))), 0..8),
        filter in timed_filter(),
        limit in prop::option::of(1usize..4),
        moments in prop::collection::vec(moment(), 1..20),
    ) {
        let schema = timed_schema();
        let mut r = replica(&schema);
        // Times are relative to the test's start; rebase them onto NOW.
        let rebase = |rows: &[(i64, Result<Option<i64>, ()>)], at: i64| -> Vec<(i64, Result<Option<i64>, ()>)> {
            rows.iter().map(|(id, c)| (*id, match c { Ok(o) => Ok(o.map(|c| at + c)), Err(()) => Err(()) })).collect()
        };
        r.apply(&SourceEvent::Transaction(timed_tx(&r, &schema, &rebase(&initial, NOW), 2)));
        let mut set = LiveSet::new();
        let query = Query { filter: filter.clone(), order: vec![OrderBy::desc(1)], limit, offset: 0 }
            .validate(&schema).expect("valid");
        let specs = [
            spec(&schema, Shape::Rows(query)),
            spec(&schema, Shape::Aggregate { filter: filter.clone(), spec: AggregateSpec { group_by: vec![], measures: vec![(AggFn::Sum, crate::aggregate::Input::Column(2))] } }),
            spec(&schema, Shape::Row { key: Key(vec![Value::Int8(3)].into()), filter: filter.clone() }),
        ];
        let mut now = NOW;
        let ids: Vec<QueryId> = specs.iter().map(|s| set.add(s.clone(), &r, now).expect("ready")).collect();
        let fresh_at = |r: &Replica, spec: &LiveSpec, now: i64| {
            let bound = LiveSpec { shape: match &spec.shape {
                Shape::Rows(q) => Shape::Rows(Query { filter: q.filter.at(now), ..q.clone() }),
                Shape::Row { key, filter } => Shape::Row { key: key.clone(), filter: filter.at(now) },
                Shape::Aggregate { filter, spec } => Shape::Aggregate { filter: filter.at(now), spec: spec.clone() },
            }, ..spec.clone() };
            fresh(r, &bound)
        };
        for (n, m) in moments.iter().enumerate() {
            match m {
                Moment::Wait(d, settle) => {
                    let target = now + d;
                    // The hub's loop: wake at each due instant up to the target (results must
                    // then hold until the target), or not at all (a batch comes first).
                    while let Some(due) = set.next_due().filter(|due| *settle && *due <= target) {
                        // Rows left due by an unsettled wait are judged at once.
                        now = now.max(due);
                        set.advance(now, &r);
                    }
                    now = target;
                }
                Moment::Write(rows) => {
                    let applied = r.apply(&SourceEvent::Transaction(timed_tx(&r, &schema, &rebase(rows, now), 3 + n as u64)));
                    set.apply(&applied, &r, now);
                    // Rows due before the write are judged right after it (the hub's next turn).
                    set.advance(now, &r);
                }
            }
            if set.next_due().is_some_and(|due| due <= now) {
                continue;
            }
            for (i, (id, spec)) in ids.iter().zip(&specs).enumerate() {
                prop_assert_eq!(live(&set, *id), fresh_at(&r, spec, now), "query {} after moment {}", i, n);
            }
        }
    }
}

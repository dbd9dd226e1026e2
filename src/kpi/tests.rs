//! The KPI engine against recomputation: after every transaction of a random history, each
//! KPI's value equals the same aggregate computed afresh over the replica, and a change is
//! reported exactly when the value changed.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::aggregate::aggregate_table;
use crate::change::{Change, Image, Key, Op, Position, SourceEvent, Transaction};
use crate::policy::Policy;
use crate::registry::{ColumnType, TableSchema, fixture};
use crate::replica::Replica;
use crate::value::Value;

fn schema() -> Arc<TableSchema> {
    fixture::schema(
        "orders",
        &[
            ("id", ColumnType::Int8),
            ("qty", ColumnType::Int4),
            ("status", ColumnType::Text),
            ("price", ColumnType::Numeric),
        ],
    )
}

fn definitions() -> Vec<serde_json::Value> {
    vec![
        json!({ "name": "count", "table": "orders", "aggregate": "COUNT" }),
        json!({ "name": "pending", "table": "orders", "aggregate": "COUNT", "filter": { "status": { "eq": "pending" } } }),
        json!({ "name": "qty by status", "table": "orders", "aggregate": "SUM", "column": "qty", "groupBy": ["status"] }),
        json!({ "name": "avg price", "table": "orders", "aggregate": "AVG", "column": "price",
                "filter": { "qty": { "gt": 0 } } }),
        json!({ "name": "min qty", "table": "orders", "aggregate": "MIN", "column": "qty" }),
        json!({ "name": "max price", "table": "orders", "aggregate": "MAX", "column": "price", "groupBy": ["status"] }),
        json!({ "name": "priced", "table": "orders", "aggregate": "COUNT", "column": "price" }),
        json!({ "name": "p90 qty", "table": "orders", "aggregate": "P90", "column": "qty", "groupBy": ["status"] }),
        json!({ "name": "p50 price", "table": "orders", "aggregate": "P50", "column": "price" }),
        json!({ "name": "statuses", "table": "orders", "aggregate": "COUNT_DISTINCT", "column": "status" }),
        json!({ "name": "not shipped", "table": "orders", "aggregate": "SUM", "column": "qty",
                "filter": { "status": { "in": ["pending", "paid"] } } }),
        json!({ "name": "paid pairs", "table": "orders", "aggregate": "COUNT",
                "filter": { "qty": { "eq": 2 }, "status": { "eq": "paid" } } }),
        json!({ "name": "paid price", "table": "orders", "aggregate": "MAX", "column": "price",
                "filter": { "status": { "eq": "paid" } }, "groupBy": ["qty"] }),
        json!({ "name": "spread", "table": "orders", "aggregate": "MAX",
                "expression": { "difference": { "later": "price", "earlier": "price" } } }),
    ]
}

#[derive(Clone, Debug)]
enum Write {
    Upsert { id: i64, qty: Option<i32>, status: Option<&'static str>, price: Option<u32> },
    Delete { id: i64 },
    Truncate,
}

fn write() -> impl Strategy<Value = Write> {
    let status = prop::option::of(prop::sample::select(vec!["pending", "paid", "shipped"]));
    prop_oneof![
        8 => (0i64..30, prop::option::of(-3i32..5), status, prop::option::of(0u32..5000))
            .prop_map(|(id, qty, status, price)| Write::Upsert { id, qty, status, price }),
        3 => (0i64..30).prop_map(|id| Write::Delete { id }),
        1 => Just(Write::Truncate),
    ]
}

fn transaction(replica: &Replica, schema: &TableSchema, writes: &[Write], position: u64) -> Transaction {
    let table = schema.id();
    let mut present: std::collections::HashSet<i64> = replica
        .table(table)
        .map(|t| {
            t.rows()
                .map(|(k, _)| match &k.0[0] {
                    Value::Int8(v) => *v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut changes = Vec::new();
    for w in writes {
        match w {
            Write::Upsert { id, qty, status, price } => {
                let values = vec![
                    Value::Int8(*id),
                    qty.map_or(Value::Null, Value::Int4),
                    status.map_or(Value::Null, Value::text),
                    price.map_or(Value::Null, |p| Value::Numeric(format!("{}.{:02}", p / 100, p % 100).into())),
                ];
                let op = if present.insert(*id) { Op::Insert } else { Op::Update };
                let key = Key(vec![Value::Int8(*id)].into());
                changes.push(Change { table, op, key, before: None, after: Some(Image::full(values)) });
            }
            Write::Delete { id } => {
                if present.remove(id) {
                    let key = Key(vec![Value::Int8(*id)].into());
                    changes.push(Change { table, op: Op::Delete, key, before: None, after: None });
                }
            }
            Write::Truncate => {
                present.clear();
                changes.push(Change { table, op: Op::Truncate, key: Key::none(), before: None, after: None });
            }
        }
    }
    Transaction {
        source: Arc::from("s"),
        position: Position(position),
        commit_ts: position as i64,
        xid: position,
        changes,
        table_events: vec![],
    }
}

/// [`definitions`] parsed and compiled against [`schema`].
fn compiled_definitions(schema: &Arc<TableSchema>) -> Vec<(KpiDefinition, CompiledKpi)> {
    definitions()
        .into_iter()
        .map(|def| {
            let def: KpiDefinition = serde_json::from_value(def).expect("definition");
            let kpi = compile_kpi(&def, std::slice::from_ref(schema), &Policy::deny_all()).expect("binds");
            (def, kpi)
        })
        .collect()
}

/// The value recomputed from scratch.
fn recomputed(kpi: &CompiledKpi, replica: &Replica) -> KpiValue {
    let table = replica.table(kpi.table).expect("table");
    let aggregate = aggregate_table(table, &kpi.filter, kpi.spec.clone()).expect("aggregates");
    KpiValue::Groups(
        aggregate
            .groups()
            .into_iter()
            .map(|g| {
                std::sync::Arc::new(GroupValue {
                    key: g.key,
                    value: match kpi.reading {
                        compile::Reading::Rows => Value::Int8(g.count as i64),
                        compile::Reading::Measure => g.values[0].clone(),
                    },
                })
            })
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every definition is defined twice: one twin from the start, the other joining its
    /// computation halfway through, and one of each pair removed again later. Both twins equal
    /// SQL throughout, and a removed twin takes nothing from the one left.
    #[test]
    fn kpis_stay_equal_to_recomputation(history in prop::collection::vec(prop::collection::vec(write(), 1..6), 1..25)) {
        let schema = schema();
        let mut replica = fixture::replica(&schema);
        let mut set = KpiSet::new();
        let compiled: Vec<CompiledKpi> = compiled_definitions(&schema).into_iter().map(|(_, kpi)| kpi).collect();
        for (i, kpi) in compiled.iter().enumerate() {
            set.insert(KpiId(i as i64), kpi.clone(), &replica, 0);
        }
        let computations = set.computations();
        let twin = |i: usize| KpiId(1000 + i as i64);
        let (joins, leaves) = (history.len() / 3, 2 * history.len() / 3);
        let mut live: Vec<(KpiId, usize)> = (0..compiled.len()).map(|i| (KpiId(i as i64), i)).collect();
        for (n, writes) in history.iter().enumerate() {
            if n == joins {
                for (i, kpi) in compiled.iter().enumerate() {
                    set.insert(twin(i), kpi.clone(), &replica, 0);
                    prop_assert_eq!(set.value(twin(i)), set.value(KpiId(i as i64)), "KPI {} joined at {}", i, n);
                    live.push((twin(i), i));
                }
                prop_assert_eq!(set.computations(), computations, "twins share a computation");
            }
            if n == leaves {
                // The first of odd pairs, the twin of even ones.
                let gone: Vec<KpiId> = (0..compiled.len()).map(|i| if i % 2 == 1 { KpiId(i as i64) } else { twin(i) }).collect();
                for id in &gone {
                    set.remove(*id);
                }
                live.retain(|(id, _)| !gone.contains(id));
                prop_assert_eq!(set.computations(), computations, "a computation stays while one of its KPIs does");
            }
            let before: Vec<Option<KpiValue>> = live.iter().map(|(id, _)| set.value(*id).cloned()).collect();
            let tx = transaction(&replica, &schema, writes, 10 + n as u64 * 10);
            let applied = replica.apply(&SourceEvent::Transaction(tx));
            let outcome = set.apply(&applied, &replica, 0);
            for (j, &(id, i)) in live.iter().enumerate() {
                let now = set.value(id).cloned().expect("value");
                prop_assert_eq!(&now, &recomputed(&compiled[i], &replica), "KPI {:?} after transaction {}", id, n);
                prop_assert_eq!(outcome.changed.contains(&id), Some(&now) != before[j].as_ref(), "change reported for KPI {:?}", id);
            }
        }
    }
}

#[test]
fn kpi_definitions_that_do_not_fit_name_the_field() {
    let schema = schema();
    let bad = |def: serde_json::Value| {
        let def: KpiDefinition = serde_json::from_value(def).expect("parses");
        compile_kpi(&def, std::slice::from_ref(&schema), &Policy::deny_all()).expect_err("refused")
    };
    let e = bad(json!({ "name": "x", "table": "nope", "aggregate": "COUNT" }));
    assert_eq!(e.field, "table");
    assert!(e.message.contains("orders"), "names the tables there are: {e}");
    let e = bad(json!({ "name": "x", "table": "orders", "aggregate": "SUM", "column": "status" }));
    assert_eq!(e.field, "column");
    assert!(e.message.contains("sum"), "{e}");
    assert_eq!(bad(json!({ "name": "x", "table": "orders", "aggregate": "SUM" })).field, "column");
    assert_eq!(bad(json!({ "name": "x", "table": "orders", "aggregate": "COUNT", "column": "nope" })).field, "column");
    assert_eq!(
        bad(json!({ "name": "x", "table": "orders", "aggregate": "COUNT", "groupBy": ["nope"] })).field,
        "groupBy[0]"
    );
    assert_eq!(
        bad(json!({ "name": "x", "table": "orders", "aggregate": "COUNT", "filter": { "qty": { "eq": "many" } } }))
            .field,
        "filter"
    );
    assert_eq!(
        bad(json!({ "name": "x", "table": "orders", "aggregate": "COUNT", "filter": { "qty": { "near": 1 } } })).field,
        "filter"
    );
    assert_eq!(bad(json!({ "name": "x", "table": "orders", "aggregate": "COUNT", "window": { "column": "qty", "last": "PT1M" } })).field, "window.column");
    assert_eq!(
        bad(json!({ "name": "x", "table": "orders", "aggregate": "COUNT", "view": { "role": "nobody" } })).field,
        "view"
    );
    assert_eq!(bad(json!({ "name": " ", "table": "orders", "aggregate": "COUNT" })).field, "name");
}

#[test]
fn a_windowed_kpi_slides_as_time_passes_without_a_write() {
    let schema = fixture::schema("tickets", &[("id", ColumnType::Int8), ("openedAt", ColumnType::TimestampTz)]);
    let mut replica = fixture::replica(&schema);
    let second = 1_000_000i64;
    let changes = (0..10)
        .map(|i| Change {
            table: schema.id(),
            op: Op::Insert,
            key: Key(vec![Value::Int8(i)].into()),
            before: None,
            after: Some(Image(vec![Some(Value::Int8(i)), Some(Value::TimestampTz(i * 10 * second))])),
        })
        .collect();
    let tx = Transaction {
        source: Arc::from("s"),
        position: Position(10),
        commit_ts: 95 * second,
        xid: 1,
        changes,
        table_events: vec![],
    };
    replica.apply(&SourceEvent::Transaction(tx));

    let def: KpiDefinition = serde_json::from_value(json!({
        "name": "opened in the last 30 s", "table": "tickets", "aggregate": "COUNT",
        "window": { "column": "openedAt", "last": "PT30S" }
    }))
    .expect("definition");
    let kpi = compile_kpi(&def, std::slice::from_ref(&schema), &Policy::deny_all()).expect("binds");
    let mut set = KpiSet::new();
    set.insert(KpiId(1), kpi, &replica, 95 * second);
    let count = |set: &KpiSet| set.value(KpiId(1)).and_then(|v| v.single().cloned());
    // Opened at 70, 80, 90 s: inside [65 s, now].
    assert_eq!(count(&set), Some(Value::Int8(3)));
    // The window is `openedAt >= now - 30 s`: the row opened at 70 s leaves just after 100 s.
    assert_eq!(set.next_due(), Some(100 * second + 1));
    assert!(set.advance(100 * second, &replica).is_empty());
    assert_eq!(set.advance(100 * second + 1, &replica), vec![KpiId(1)]);
    assert_eq!(count(&set), Some(Value::Int8(2)));
    assert_eq!(set.advance(200 * second, &replica), vec![KpiId(1)]);
    assert_eq!(count(&set), Some(Value::Int8(0)));
    assert_eq!(set.next_due(), None);
}

#[test]
fn an_age_kpi_is_read_at_the_time_asked() {
    let schema = fixture::schema("tickets", &[("id", ColumnType::Int8), ("openedAt", ColumnType::TimestampTz)]);
    let mut replica = fixture::replica(&schema);
    let change = Change {
        table: schema.id(),
        op: Op::Insert,
        key: Key(vec![Value::Int8(1)].into()),
        before: None,
        after: Some(Image(vec![Some(Value::Int8(1)), Some(Value::TimestampTz(0))])),
    };
    let tx = Transaction {
        source: Arc::from("s"),
        position: Position(10),
        commit_ts: 0,
        xid: 1,
        changes: vec![change],
        table_events: vec![],
    };
    replica.apply(&SourceEvent::Transaction(tx));
    let def: KpiDefinition = serde_json::from_value(json!({
        "name": "oldest open", "table": "tickets", "aggregate": "MAX", "expression": { "age": "openedAt" }
    }))
    .expect("definition");
    let kpi = compile_kpi(&def, std::slice::from_ref(&schema), &Policy::deny_all()).expect("binds");
    assert!(kpi.time_dependent);
    let mut set = KpiSet::new();
    set.insert(KpiId(1), kpi, &replica, 90_000_000);
    assert_eq!(
        set.value(KpiId(1)).and_then(|v| v.single()).map(Value::to_canonical_string).as_deref(),
        Some("90.000000")
    );
    assert_eq!(set.advance(150_000_000, &replica), vec![KpiId(1)]);
    assert_eq!(
        set.value(KpiId(1)).and_then(|v| v.single()).map(Value::to_canonical_string).as_deref(),
        Some("150.000000")
    );
}

#[test]
fn a_kpi_with_a_filter_relative_to_now_counts_rows_as_they_age() {
    let schema = fixture::schema(
        "orders",
        &[("id", ColumnType::Int8), ("status", ColumnType::Text), ("createdAt", ColumnType::TimestampTz)],
    );
    let mut replica = fixture::replica(&schema);
    let second = 1_000_000i64;
    let row = |i: i64, status: &str, at: i64| Change {
        table: schema.id(),
        op: Op::Insert,
        key: Key(vec![Value::Int8(i)].into()),
        before: None,
        after: Some(Image(vec![Some(Value::Int8(i)), Some(Value::text(status)), Some(Value::TimestampTz(at))])),
    };
    let changes = (0..10).map(|i| row(i, "pending", i * 10 * second)).collect();
    let tx = Transaction {
        source: Arc::from("s"),
        position: Position(10),
        commit_ts: 0,
        xid: 1,
        changes,
        table_events: vec![],
    };
    replica.apply(&SourceEvent::Transaction(tx));
    let def: KpiDefinition = serde_json::from_value(json!({
        "name": "pending for over a minute", "table": "orders", "aggregate": "COUNT",
        "filter": { "status": { "eq": "pending" }, "createdAt": { "lt": { "ago": "PT60S" } } }
    }))
    .expect("definition");
    let kpi = compile_kpi(&def, std::slice::from_ref(&schema), &Policy::deny_all()).expect("binds");
    let mut set = KpiSet::new();
    set.insert(KpiId(1), kpi, &replica, 95 * second);
    let count = |set: &KpiSet| set.value(KpiId(1)).and_then(|v| v.single().cloned());
    // Created at 0 … 30 s: older than a minute at 95 s.
    assert_eq!(count(&set), Some(Value::Int8(4)));
    assert_eq!(set.next_due(), Some(100 * second + 1), "the row created at 40 s turns a minute old");
    assert!(set.advance(100 * second, &replica).is_empty());
    assert_eq!(set.advance(100 * second + 1, &replica), vec![KpiId(1)]);
    assert_eq!(count(&set), Some(Value::Int8(5)));
    // A write in between: one of the old rows is paid, a new one is pending; judged at its time.
    let pay = Change {
        table: schema.id(),
        op: Op::Update,
        key: Key(vec![Value::Int8(0)].into()),
        before: None,
        after: Some(Image(vec![Some(Value::Int8(0)), Some(Value::text("paid")), Some(Value::TimestampTz(0))])),
    };
    let tx = Transaction {
        source: Arc::from("s"),
        position: Position(20),
        commit_ts: 105 * second,
        xid: 2,
        changes: vec![pay, row(10, "pending", 104 * second)],
        table_events: vec![],
    };
    let applied = replica.apply(&SourceEvent::Transaction(tx));
    let outcome = set.apply(&applied, &replica, 105 * second);
    assert_eq!(outcome.changed, vec![KpiId(1)]);
    assert_eq!(count(&set), Some(Value::Int8(4)));
    // Much later every pending row is over a minute old.
    set.advance(1000 * second, &replica);
    assert_eq!(count(&set), Some(Value::Int8(10)));
    assert_eq!(set.next_due(), None);
}

/// A backlog (every batch queued before the runtime reads the first) is published as one
/// board per burst, not one per transaction; each step still carries its new values, and
/// those folded in order onto the last board handed on give every board published after
/// them, down to the last, which equals recomputation.
#[tokio::test]
async fn a_backlog_is_published_once_per_burst_and_its_steps_carry_every_value() {
    use crate::pipeline::Batch;
    use crate::policy::PolicyStore;
    use tokio::sync::mpsc;

    let schema = schema();
    let mut replica = fixture::replica(&schema);
    let (definitions, compiled): (Vec<KpiDefinition>, Vec<CompiledKpi>) =
        compiled_definitions(&schema).into_iter().unzip();
    let records = definitions
        .into_iter()
        .enumerate()
        .map(|(i, definition)| KpiRecord {
            id: KpiId(i as i64),
            definition,
            created_by: None,
            updated_by: None,
            created_at: 0,
            updated_at: 0,
            builtin: None,
        })
        .collect();
    let start = Arc::new(replica.visible());
    let n = 200;
    let (batches, queue) = mpsc::channel(n);
    for i in 0..n as u64 {
        let statuses = ["pending", "paid", "shipped"];
        let writes = [
            Write::Upsert {
                id: (i * 7 % 30) as i64,
                qty: Some((i % 5) as i32),
                status: Some(statuses[i as usize % 3]),
                price: Some((i * 37 % 5000) as u32),
            },
            Write::Delete { id: (i * 11 % 30) as i64 },
        ];
        let tx = transaction(&replica, &schema, &writes, 10 + i * 10);
        let applied = replica.apply(&SourceEvent::Transaction(tx));
        batches.send(Arc::new(Batch { applied, replica: Arc::new(replica.visible()), at: 0 })).await.unwrap();
    }
    drop(batches);
    let (steps, mut taken) = mpsc::channel(n);
    let hub = KpiHub::start(start, chrono_tz::UTC, PolicyStore::new(Policy::deny_all()), records, queue, vec![steps]);
    let mut board = hub.current();
    let (mut with_values, mut published) = (0, 0);
    let mut last = None;
    while let Some(step) = taken.recv().await {
        assert!(step.batch.is_some(), "every step follows a batch here");
        with_values += usize::from(!step.changed.is_empty());
        let folded = board.with_values(step.changed.iter().map(|(id, v)| (id, v)));
        last = Some(step.board.is_some());
        match step.board {
            Some(b) => {
                published += 1;
                for (id, entry) in &b.kpis {
                    assert_eq!(
                        entry.value, folded.kpis[id].value,
                        "KPI {id:?}: the board published equals the values handed on"
                    );
                }
                board = b;
            }
            None => board = Arc::new(folded),
        }
    }
    assert_eq!(last, Some(true), "the burst's last step publishes its board");
    assert!(published < with_values, "{published} boards for {with_values} steps that changed values: one per step");
    let current = hub.current();
    for (i, kpi) in compiled.iter().enumerate() {
        assert_eq!(current.kpis[&KpiId(i as i64)].value, recomputed(kpi, &replica), "KPI {i} after the backlog");
    }
}

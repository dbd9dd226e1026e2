//! The source's life cycle: acknowledgements follow what was applied, a restart drops the old
//! slot and snapshots afresh, and a changed column set is detected and reported.

mod support;

use std::sync::Arc;
use std::time::Duration;

use opslive::change::{Key, Position};
use opslive::value::Value;
use support::PgServer;
use support::pipeline::{assert_same, source_rows, start};

fn key(id: i64) -> Key {
    Key(vec![Value::Int8(id)].into())
}

async fn confirmed_flush(client: &tokio_postgres::Client, slot: &str) -> Option<Position> {
    let row = client
        .query_opt("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .unwrap()?;
    row.get::<_, Option<String>>(0).and_then(|s| Position::parse(&s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_follow_applied_and_a_restart_takes_a_fresh_snapshot() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g;",
    )
    .await
    .unwrap();

    let mut running = start(&url, "life", &["t"]);
    let t = running.table_id("t");
    running.wait_for("the snapshot", |r| r.applied_position("src").0 > 0).await;
    sql.batch_execute("INSERT INTO t VALUES (1000, 'after snapshot')").await.unwrap();
    let replica = running.wait_for("row 1000", |r| r.table(t).is_some_and(|t| t.get(&key(1000)).is_some())).await;
    let applied = replica.applied_position("src");
    // The slot is acknowledged up to the applied position (status updates go out every second).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let flushed = confirmed_flush(&sql, "life").await.expect("slot exists");
        if flushed >= applied {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot confirmed {flushed}, applied {applied}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running.watermarks.values().applied, applied);
    running.stop().await;
    assert_eq!(confirmed_flush(&sql, "life").await, None, "a clean stop drops the slot: it holds no WAL");

    // A slot left by a crash, changes while stopped, then a restart on the same slot name: the
    // old slot is dropped (it cannot be resumed into an empty replica) and a fresh snapshot
    // includes the changes.
    sql.batch_execute("SELECT pg_create_logical_replication_slot('life', 'pgoutput')").await.unwrap();
    sql.batch_execute("DELETE FROM t WHERE id <= 10; UPDATE t SET v = 'while stopped' WHERE id = 50;").await.unwrap();
    let mut running = start(&url, "life", &["t"]);
    let replica = running.wait_for("the second snapshot", |r| r.applied_position("src") > applied).await;
    let expected = source_rows(&sql, &replica, t).await;
    assert_same(&replica, t, &expected);
    assert_eq!(replica.table(t).unwrap().len(), 91);
    let slots: i64 = sql.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.unwrap().get(0);
    assert_eq!(slots, 1, "the old slot was replaced, not leaked");
    running.stop().await;
}

/// `ALTER TABLE … ADD COLUMN … DEFAULT` (no row events for the existing rows) and a dropped
/// column, under writes: the table is copied again on its own and rejoins exactly, with the new
/// column filled in every row; the other table streams on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_column_set_resyncs_the_table_alone_under_writes() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, gone int); INSERT INTO t SELECT g, 'a', 1 FROM generate_series(1, 2000) g;
         CREATE TABLE u (id bigint PRIMARY KEY, v text);",
    )
    .await
    .unwrap();
    let mut running = start(&url, "schema", &["t", "u"]);
    let (t, u) = (running.table_id("t"), running.table_id("u"));
    running.wait_for("the snapshot", |r| r.applied_position("src").0 > 0).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, client) = (stop.clone(), pg.connect("shop").await);
        tokio::spawn(async move {
            let mut i = 10_000i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let sql = format!(
                    "BEGIN; INSERT INTO t (id, v) VALUES ({i}, 'w'); UPDATE t SET v = 'u{i}' WHERE id = {}; \
                     INSERT INTO u VALUES ({i}, 'x'); COMMIT;",
                    i % 2000 + 1
                );
                client.batch_execute(&sql).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    sql.batch_execute("ALTER TABLE t ADD COLUMN extra int DEFAULT 7; ALTER TABLE t DROP COLUMN gone;").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    sql.batch_execute("INSERT INTO t (id, v) VALUES (-1, 'marker'); INSERT INTO u VALUES (-1, 'marker');")
        .await
        .unwrap();
    let replica = running
        .wait_for("both markers, t copied again", |r| {
            [t, u].iter().all(|id| r.table(*id).is_some_and(|x| x.state.is_ready() && x.get(&key(-1)).is_some()))
        })
        .await;
    let table = replica.table(t).unwrap();
    let names: Vec<&str> = table.schema.columns.iter().map(|c| &*c.name).collect();
    assert_eq!(names, ["id", "v", "extra"]);
    assert!(table.schema.version > 1, "a new shape version");
    for id in [t, u] {
        let expected = source_rows(&sql, &replica, id).await;
        assert_same(&replica, id, &expected);
    }
    // Existing rows got the default without a row event: only the resync brought it.
    assert_eq!(&table.get(&key(5)).unwrap()[2], &Value::Int4(7));
    assert!(running.stats.resyncs.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let (anomalies, copies) = {
        let seen = running.seen.lock().unwrap();
        (seen.anomalies.len(), seen.copies.clone())
    };
    assert_eq!(anomalies, 0);
    // Copied again: the changed table alone.
    assert!(copies.get(&t).is_some_and(|n| *n >= 2), "copies of t: {copies:?}");
    assert_eq!(copies.get(&u), Some(&1), "u was copied again: {copies:?}");
    running.stop().await;
}

/// Writes only to unwatched tables still move the slot forward, so its WAL is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_unwatched_tables_still_advance_the_slot() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY); CREATE TABLE other (id serial PRIMARY KEY, v text);")
        .await
        .unwrap();
    let mut running = start(&url, "idle", &["t"]);
    running.wait_for("the snapshot", |r| r.applied_position("src").0 > 0).await;
    let applied = running.watermarks.values().applied;
    for _ in 0..50 {
        sql.batch_execute("INSERT INTO other (v) SELECT repeat('x', 1000) FROM generate_series(1, 100)").await.unwrap();
    }
    let written: String = sql.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    let written = Position::parse(&written).unwrap();
    assert!(written > applied);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let flushed = confirmed_flush(&sql, "idle").await.unwrap();
        if flushed >= written {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot stuck at {flushed}, WAL at {written}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(running.seen.lock().unwrap().positions.is_empty(), "nothing watched was applied");
    // The replica is known to be current past those writes, without a transaction for them.
    assert!(running.watermarks.values().applied > applied);
    running.stop().await;
}

//! A table whose changes cannot be decoded is quarantined — named with the position, in the
//! logs, `/tables` and the metrics — while the other tables stream on; a resync (API or the
//! `resync` command) brings it back once its data can be read, and a resync that keeps failing
//! gives up after bounded retries and leaves it quarantined.
//!
//! The undecodable change is real: a DBA switches the table's replica identity to another
//! unique index, so a DELETE's old tuple carries that index's column and not the key the
//! replica rows are held by.

mod support;

use std::time::Duration;

use support::PgServer;
use support::http::{get, request, samples, value};
use support::serve::{Serve, write_config};

async fn table_state(addr: std::net::SocketAddr, name: &str) -> serde_json::Value {
    let tables: serde_json::Value = serde_json::from_str(&get(addr, "/tables").await.body).unwrap();
    tables.as_array().unwrap().iter().find(|t| t["name"] == name).unwrap().clone()
}

async fn wait_state(addr: std::net::SocketAddr, name: &str, state: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let t = table_state(addr, name).await;
        if t["state"] == state {
            return t;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} never became {state}: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rows(addr: std::net::SocketAddr, name: &str) -> u64 {
    table_state(addr, name).await["rows"].as_u64().unwrap()
}

/// A server with two watched tables of ten rows each, `good` and `other` (which also has a
/// unique `code`), served until consistent.
struct TwoTables {
    _pg: PgServer,
    sql: tokio_postgres::Client,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    serve: Serve,
    addr: std::net::SocketAddr,
}

async fn two_tables(other: &str) -> TwoTables {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(&format!(
        "CREATE TABLE good (id bigint PRIMARY KEY, v text);
         CREATE TABLE {other} (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, v text);
         INSERT INTO good SELECT g, 'g' FROM generate_series(1, 10) g;
         INSERT INTO {other} SELECT g, 'c' || g, 'b' FROM generate_series(1, 10) g;"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, &["good", other]);
    let mut serve = Serve::start(&config);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    TwoTables { _pg: pg, sql, _dir: dir, config, serve, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_table_does_not_stop_the_others() {
    let TwoTables { _pg, sql, _dir, config, mut serve, addr } = two_tables("bad").await;

    // A change that contradicts the replica: an update of a row the stream never carried (it
    // was inserted while the table was out of the publication), in a transaction that also
    // writes the good table. The table is set aside, not only counted as an anomaly.
    sql.batch_execute(
        "ALTER PUBLICATION opslive_shop DROP TABLE bad; INSERT INTO bad VALUES (100, 'c100', 'hidden');
         ALTER PUBLICATION opslive_shop ADD TABLE bad;
         BEGIN; DELETE FROM bad WHERE id = 3; UPDATE bad SET v = 'seen' WHERE id = 100; INSERT INTO good VALUES (11, 'g'); COMMIT;",
    )
    .await
    .unwrap();
    let logged = serve.wait_log("the table is quarantined", |_| {}).await;
    assert!(logged["fields"]["table"].as_str().unwrap().contains("bad"), "{logged}");
    assert!(logged["fields"]["position"].as_str().is_some_and(|p| p.contains('/')), "{logged}");
    let bad = wait_state(addr, "bad", "quarantined").await;
    assert!(bad["reason"].as_str().unwrap().contains("an update of a row it does not hold"), "{bad}");

    // The others go on: the good table's rows keep arriving.
    sql.batch_execute(
        "INSERT INTO good SELECT g, 'g' FROM generate_series(12, 50) g; INSERT INTO bad VALUES (12, 'c12', 'ok')",
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rows(addr, "good").await < 50 {
        assert!(tokio::time::Instant::now() < deadline, "the good table stopped streaming");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(table_state(addr, "good").await["state"], "ready");
    let s = samples(&get(addr, "/metrics").await.body);
    assert_eq!(value(&s, "opslive_table_state", &[("table", "bad"), ("state", "quarantined")]), Some(1.0));
    assert_eq!(value(&s, "opslive_ready", &[]), Some(1.0), "the source as a whole still serves");
    assert_eq!(value(&s, "opslive_replica_anomalies_total", &[]), Some(1.0));

    // The quarantine outlives a restart (the checkpoint holds it): the table stays set aside,
    // with its reason, until it is resynced.
    serve.terminate().await;
    let mut serve = Serve::start(&config);
    let (_, addr) = serve.wait_start_log("resuming the slot; no snapshot needed").await;
    sql.batch_execute("INSERT INTO good VALUES (51, 'g')").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rows(addr, "good").await < 51 {
        assert!(tokio::time::Instant::now() < deadline, "the good table does not stream after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bad = table_state(addr, "bad").await;
    assert_eq!(bad["state"], "quarantined", "{bad}");
    assert!(bad["reason"].as_str().unwrap().contains("an update of a row it does not hold"), "{bad}");

    // A resync while the table cannot be followed at all (no replica identity) fails a
    // bounded number of times and leaves it quarantined, saying why.
    sql.batch_execute("ALTER TABLE bad REPLICA IDENTITY NOTHING").await.unwrap();
    let asked = request(addr, "POST", "/tables/bad/resync", &[], "").await;
    assert_eq!(asked.status, 202, "{}", asked.body);
    serve.wait_log("resync failed; the table is quarantined", |_| {}).await;
    let bad = wait_state(addr, "bad", "quarantined").await;
    assert!(bad["reason"].as_str().unwrap().contains("resync failed 3 times"), "{bad}");

    // Fixed at the source, resynced with the command: back, with every row.
    sql.batch_execute("ALTER TABLE bad REPLICA IDENTITY DEFAULT").await.unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["resync", "bad", "--server", &format!("http://{addr}")])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad_position = wait_state(addr, "bad", "ready").await["position"].clone();
    assert_eq!(rows(addr, "bad").await, 11, "1–10 without 3, 12 and 100");
    sql.batch_execute("INSERT INTO bad VALUES (13, 'c13', 'after'); DELETE FROM bad WHERE id = 1").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rows(addr, "bad").await != 11 || table_state(addr, "bad").await["position"] == bad_position {
        assert!(tokio::time::Instant::now() < deadline, "the resynced table does not stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unknown = request(addr, "POST", "/tables/nope/resync", &[], "").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    serve.terminate().await;
}

/// A quarantine holds only while the source resumes: when it cannot (the slot was dropped), the
/// fresh snapshot copies the quarantined table too, and its changes are followed again.
#[tokio::test]
async fn a_fresh_snapshot_after_a_lost_slot_follows_a_table_that_was_quarantined() {
    use opslive::change::{SourceEvent, TableEvent};
    use support::pipeline::{assert_same, source_rows, start_configured};
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' FROM generate_series(1, 50) g")
        .await
        .unwrap();
    let toml = format!("kind = \"postgres\"\nurl = \"{url}\"\n[[sources.src.tables]]\ntable = \"items\"\n");
    let mut run = start_configured(&toml, None);
    let items = run.table_id("items");
    run.wait_for("the snapshot", |r| r.table(items).is_some_and(|t| t.state.is_ready())).await;
    let mut replica = run.stop().await;
    let quarantine =
        TableEvent::Quarantined { table: items, position: replica.applied_position("src"), reason: "a test".into() };
    replica.apply(&SourceEvent::Table(quarantine));
    // The slot goes while opslive is stopped (its session may take a moment to let go).
    while sql.batch_execute("SELECT pg_drop_replication_slot('opslive_src')").await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut run = start_configured(&toml, Some(replica));
    run.wait_for("the fresh snapshot", |r| r.table(items).is_some_and(|t| t.state.is_ready())).await;
    assert_eq!(run.stats.snapshots.load(std::sync::atomic::Ordering::Relaxed), 1);
    sql.batch_execute("SET synchronous_commit = on; UPDATE items SET v = 'changed' WHERE id = 7").await.unwrap();
    let replica = run
        .wait_for("the update", |r| {
            r.table(items)
                .and_then(|t| t.get(&opslive::change::Key(vec![opslive::value::Value::Int4(7)].into())))
                .is_some_and(|row| row[1] == opslive::value::Value::text("changed"))
        })
        .await;
    assert_same(&replica, items, &source_rows(&sql, &replica, items).await);
    run.stop().await;
}

/// A table's replica identity changing (its old tuples now carry another unique index's
/// columns, not the key its rows are held by) copies the table again keyed by the new identity,
/// rather than quarantining it; deletes then find their rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_identity_change_resyncs_the_table_keyed_by_the_new_identity() {
    let TwoTables { _pg, sql, _dir, config: _, mut serve, addr } = two_tables("moved").await;

    sql.batch_execute(
        "ALTER TABLE moved REPLICA IDENTITY USING INDEX moved_code_key;
         BEGIN; DELETE FROM moved WHERE id = 3; INSERT INTO good VALUES (11, 'g'); COMMIT;",
    )
    .await
    .unwrap();
    let logged = serve.wait_log("replica identity changed", |_| {}).await;
    assert!(logged["fields"]["reason"].as_str().unwrap().contains("(code)"), "{logged}");
    serve.wait_log("table resynced", |_| {}).await;
    sql.batch_execute(
        "DELETE FROM moved WHERE id = 4; UPDATE moved SET v = 'u' WHERE id = 5; INSERT INTO good VALUES (12, 'g')",
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rows(addr, "moved").await != 8 || rows(addr, "good").await != 12 {
        assert!(tokio::time::Instant::now() < deadline, "moved: {}", table_state(addr, "moved").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(table_state(addr, "moved").await["state"], "ready");
    let s = samples(&get(addr, "/metrics").await.body);
    assert_eq!(value(&s, "opslive_replica_anomalies_total", &[]), Some(0.0));
    assert_eq!(value(&s, "opslive_table_state", &[("table", "moved"), ("state", "ready")]), Some(1.0));
    serve.terminate().await;
}

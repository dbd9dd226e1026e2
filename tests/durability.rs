//! `opslive serve` keeps Debezium's promises: a restart (even SIGKILL) loses nothing and
//! re-applies nothing, an unusable checkpoint or slot leads to a clean fresh snapshot, and a
//! quiet slot still advances.
//!
//! The replica is read back from the checkpoint a clean stop (SIGTERM) writes, and compared row
//! for row with the source table read over SQL.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opslive::change::Position;
use opslive::config::Config;
use rand::Rng;
use serde_json::json;
use support::PgServer;
use support::graphql::{SECRET, post, token};
use support::http::{get, metric, samples, value};
use support::pipeline::{assert_same, source_rows};
use support::serve::{Serve, write_config, write_config_with};
use tokio::sync::RwLock;

const SCHEMA: &str =
    "CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, v text, amount numeric(12,2));
     CREATE TABLE other (id serial PRIMARY KEY, v text);";

/// Random single- and multi-statement transactions on `items` until dropped; each one holds
/// the read side of `pause`, so a writer of the lock waits for the one in flight.
fn random_writer(url: String, pause: Arc<RwLock<()>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next_id: i64 = 1_000_000;
        loop {
            let client = match support_connect(&url).await {
                Some(c) => c,
                None => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            loop {
                let sql = {
                    let mut rng = rand::rng();
                    let mut stmts = Vec::new();
                    for _ in 0..rng.random_range(1..6) {
                        let id = rng.random_range(1..20_000);
                        stmts.push(match rng.random_range(0..4) {
                            0 => {
                                next_id += 1;
                                format!(
                                    "INSERT INTO items VALUES ({next_id}, 0, 'new {next_id}', {}.25)",
                                    rng.random_range(0..1000)
                                )
                            }
                            1 => format!("DELETE FROM items WHERE id = {id}"),
                            _ => format!("UPDATE items SET n = n + 1, v = 'u{}' WHERE id = {id}", rng.random::<u32>()),
                        });
                    }
                    // Row 0 counts the writer's commits, so none is empty and the source says how
                    // many were made.
                    format!("BEGIN; {}; UPDATE items SET n = n + 1 WHERE id = 0; COMMIT;", stmts.join("; "))
                };
                let _held = pause.read().await;
                if client.batch_execute(&sql).await.is_err() {
                    break;
                }
            }
        }
    })
}

async fn support_connect(url: &str) -> Option<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(conn);
    Some(client)
}

async fn setup(rows: i64) -> (PgServer, String, tempfile::TempDir, PathBuf) {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(SCHEMA).await.unwrap();
    sql.batch_execute(&format!(
        "INSERT INTO items SELECT g, 0, 'row ' || g, g * 1.5 FROM generate_series(0, {rows}) g"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, &["items"]);
    (pg, url, dir, config)
}

/// Where the last commit ends: the insert position (with `synchronous_commit = off` the write
/// position may still be behind the newest commits).
async fn current_lsn(sql: &tokio_postgres::Client) -> Position {
    let lsn: String = sql.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap().get(0);
    Position::parse(&lsn).unwrap()
}

async fn caught_up(addr: std::net::SocketAddr, target: Position) {
    support::http::applied_up_to(addr, "shop", target).await
}

/// The writer's commits the checkpoint holds: the counter row's `n`.
fn commits_in_checkpoint(config: &Path) -> i32 {
    let config = Config::load(Some(config)).unwrap();
    let registry = config.registry().unwrap();
    let loaded = opslive::checkpoint::load(&config.data_dir, &registry).unwrap();
    let items = registry.by_name("items").unwrap().id;
    let zero = opslive::change::Key(vec![opslive::value::Value::Int8(0)].into());
    match loaded.replica.table(items).and_then(|t| t.get(&zero)).map(|row| row[1].clone()) {
        Some(opslive::value::Value::Int4(n)) => n,
        other => panic!("the counter row in the checkpoint: {other:?}"),
    }
}

/// Stops the server cleanly and compares its final checkpoint with the source table.
async fn stop_and_compare(serve: Serve, config: &Path, sql: &tokio_postgres::Client) -> Position {
    stop_and_compare_tables(serve, config, sql, &["items"]).await
}

async fn stop_and_compare_tables(
    serve: Serve,
    config: &Path,
    sql: &tokio_postgres::Client,
    tables: &[&str],
) -> Position {
    serve.terminate().await;
    let config = Config::load(Some(config)).unwrap();
    let registry = config.registry().unwrap();
    let loaded = opslive::checkpoint::load(&config.data_dir, &registry).unwrap();
    for table in tables {
        let id = registry.by_name(table).unwrap().id;
        let expected = source_rows(sql, &loaded.replica, id).await;
        assert_same(&loaded.replica, id, &expected);
    }
    loaded.sources["shop"].position
}

/// SIGKILL at random moments (mid-snapshot, mid-transaction, mid-checkpoint) while random
/// writes go on: after each restart the replica equals the source, resumed from the checkpoint
/// without a new snapshot, with no change applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_repeats_nothing() {
    let (pg, url, dir, config) = setup(20_000).await;
    let sql = pg.connect("shop").await;
    let pause = Arc::new(RwLock::new(()));
    let writer = random_writer(url.clone(), pause.clone());
    let checkpoint = dir.path().join("data").join(opslive::checkpoint::FILE_NAME);
    let mut resumed_runs = 0;
    let mut mid_checkpoint = 0;
    let mut resent = 0;
    for round in 0..10 {
        // A kill mid-snapshot (the first rounds, before any checkpoint exists, kill early),
        // mid-stream, or while a checkpoint is written (every 0.5 s here).
        let had_checkpoint = checkpoint.exists();
        let mut serve = Serve::start(&config);
        let addr = serve.wait_listening().await;
        if round >= 7 {
            // While a checkpoint is being written: its temporary file exists.
            let tmp = checkpoint.with_extension("tmp");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !tmp.exists() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            mid_checkpoint += u32::from(tmp.exists());
        } else {
            let delay = if round < 2 { rand::rng().random_range(50..400) } else { rand::rng().random_range(300..2500) };
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if had_checkpoint {
            // The restart resumed the slot; it did not copy the table again.
            let resumes = metric(addr, "opslive_source_resumes_total", &[("source", "shop")]).await;
            let snapshots = metric(addr, "opslive_source_full_snapshots_total", &[("source", "shop")]).await;
            if resumes == Some(1.0) {
                assert_eq!(snapshots, Some(0.0), "round {round}: resumed and snapshotted");
                resumed_runs += 1;
            }
        }
        serve.child.kill().await.unwrap();

        // Restart, catch up with the writes so far, check, and stop cleanly. From a checkpoint,
        // the restarted server must apply exactly the commits the checkpoint does not hold: the
        // writer's counter row says how many were made.
        let resumed_from = checkpoint.exists().then(|| commits_in_checkpoint(&config));
        let mut serve = Serve::start(&config);
        let addr = serve.wait_listening().await;
        let paused = pause.write().await;
        let target = current_lsn(&sql).await;
        caught_up(addr, target).await;
        assert_eq!(metric(addr, "opslive_replica_anomalies_total", &[]).await, Some(0.0), "round {round}");
        if let Some(before) = resumed_from {
            assert_eq!(metric(addr, "opslive_source_full_snapshots_total", &[("source", "shop")]).await, Some(0.0));
            assert_eq!(metric(addr, "opslive_source_resumes_total", &[("source", "shop")]).await, Some(1.0));
            let after: i32 = sql.query_one("SELECT n FROM items WHERE id = 0", &[]).await.unwrap().get(0);
            let applied = metric(addr, "opslive_transactions_applied_total", &[]).await.unwrap();
            let skipped = metric(addr, "opslive_transactions_skipped_total", &[]).await.unwrap();
            assert_eq!(
                applied,
                f64::from(after - before),
                "round {round}: the checkpoint held {before} commits, the source has {after}, the restart applied \
                 {applied} (and skipped {skipped} delivered again)"
            );
            resent += skipped as u64;
        }
        let position = stop_and_compare(serve, &config, &sql).await;
        assert!(position >= target, "round {round}: checkpoint at {position}, writes up to {target}");
        drop(paused);
    }
    assert!(resumed_runs >= 5, "only {resumed_runs} of the killed runs resumed from a checkpoint");
    assert!(mid_checkpoint >= 1, "no kill landed while a checkpoint was written");
    // Observed, not asserted: whether the slot sent again what a checkpoint already held.
    eprintln!("transactions delivered again and skipped by position, over all restarts: {resent}");
    writer.abort();
}

/// The database restarts (`pg_ctl restart -m fast`) under a running server while writes go
/// on: it reconnects, resumes and ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarting_under_a_running_server_loses_nothing() {
    let (pg, url, _dir, config) = setup(5_000).await;
    // A KPI on the table the writer changes: its history is a durable consumer in the app
    // database, which lives on the same server (the default). A fast shutdown waits for the
    // slot's client to confirm the last WAL; confirming must not wait for that server.
    let app = opslive::config::SecretUrl::parse(&pg.url("opslive")).unwrap();
    let store = opslive::store::Store::open(&app, None).await.unwrap();
    let def =
        serde_json::from_value(serde_json::json!({ "name": "items", "table": "items", "aggregate": "COUNT" })).unwrap();
    store.insert_kpi(&def, None).await.unwrap();
    drop(store);
    let pause = Arc::new(RwLock::new(()));
    let writer = random_writer(url.clone(), pause.clone());
    let mut serve = Serve::start(&config);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.restart().await;
    serve.wait_log("resuming the slot; no snapshot needed", |_| {}).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sql = pg.connect("shop").await;
    let _paused = pause.write().await;
    let target = current_lsn(&sql).await;
    caught_up(addr, target).await;
    assert_eq!(metric(addr, "opslive_replica_anomalies_total", &[]).await, Some(0.0));
    assert!(metric(addr, "opslive_source_failures_total", &[("source", "shop")]).await.unwrap() >= 1.0);
    stop_and_compare(serve, &config, &sql).await;
    writer.abort();
}

/// A damaged checkpoint and a dropped slot each lead to a fresh snapshot on a new slot, said
/// in the log, and an exact replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_or_a_dropped_slot_means_a_clean_resnapshot() {
    let (pg, _url, dir, config) = setup(3_000).await;
    let sql = pg.connect("shop").await;
    let mut serve = Serve::start(&config);
    serve.wait_log("replica consistent", |_| {}).await;
    stop_and_compare(serve, &config, &sql).await;

    // Damage the file: one flipped byte in the middle.
    let path = dir.path().join("data").join(opslive::checkpoint::FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    sql.batch_execute("UPDATE items SET n = n + 1 WHERE id % 7 = 0; DELETE FROM items WHERE id % 11 = 0")
        .await
        .unwrap();
    let mut serve = Serve::start(&config);
    let why = serve.wait_log("cannot use the checkpoint", |_| {}).await;
    assert!(why["fields"]["error"].as_str().unwrap().contains("damaged"), "{why}");
    serve.wait_log("table copied", |_| {}).await;
    serve.wait_log("replica consistent", |_| {}).await;
    stop_and_compare(serve, &config, &sql).await;

    // Drop the slot while opslive is stopped.
    sql.batch_execute("SELECT pg_drop_replication_slot('opslive_shop')").await.unwrap();
    sql.batch_execute("INSERT INTO items SELECT g, 0, 'late', 1 FROM generate_series(50001, 50100) g").await.unwrap();
    let mut serve = Serve::start(&config);
    let why = serve.wait_log("cannot resume", |_| {}).await;
    assert!(why["fields"]["reason"].as_str().unwrap().contains("slot is gone"), "{why}");
    serve.wait_log("table copied", |_| {}).await;
    serve.wait_log("replica consistent", |_| {}).await;
    stop_and_compare(serve, &config, &sql).await;
}

/// A slot PostgreSQL invalidated while opslive was stopped (`wal_status = lost`: more WAL than
/// `max_slot_wal_keep_size` went by) cannot be resumed: the restart says so and takes a fresh
/// snapshot on a new slot, and the replica is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_means_a_fresh_snapshot_with_the_reason_logged() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(SCHEMA).await.unwrap();
    sql.batch_execute("INSERT INTO items SELECT g, 0, 'row ' || g, g FROM generate_series(1, 2000) g").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, &["items"]);
    let mut serve = Serve::start(&config);
    tokio::time::timeout(Duration::from_secs(120), serve.wait_log("replica consistent", |_| {}))
        .await
        .expect("consistent within 2 minutes");
    stop_and_compare(serve, &config, &sql).await;

    // Changes to the watched table, then WAL past a limit set for this moment only (set from the
    // start, the app database's own writes could invalidate a slot while opslive runs), then the
    // checkpoint that removes it.
    sql.batch_execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'").await.unwrap();
    sql.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    sql.batch_execute("UPDATE items SET n = n + 1 WHERE id % 3 = 0; DELETE FROM items WHERE id % 5 = 0").await.unwrap();
    let mut status = String::new();
    for _ in 0..20 {
        sql.batch_execute(
            "INSERT INTO other (v) SELECT repeat('x', 500) FROM generate_series(1, 2000); SELECT pg_switch_wal(); CHECKPOINT;",
        )
        .await
        .unwrap();
        status = sql
            .query_one("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'opslive_shop'", &[])
            .await
            .unwrap()
            .get(0);
        if status == "lost" {
            break;
        }
    }
    assert_eq!(status, "lost", "the slot was not invalidated");
    sql.batch_execute("ALTER SYSTEM RESET max_slot_wal_keep_size").await.unwrap();
    sql.batch_execute("SELECT pg_reload_conf()").await.unwrap();

    let mut serve = Serve::start(&config);
    // A server that keeps logging would keep `wait_log` waiting, so the restart has a bound.
    let addr = tokio::time::timeout(Duration::from_secs(120), async {
        let (why, addr) = serve.wait_start_log("cannot resume").await;
        assert!(why["fields"]["reason"].as_str().unwrap().contains("invalidated"), "{why}");
        serve.wait_log("replica consistent", |_| {}).await;
        addr
    })
    .await
    .expect("the restart took a fresh snapshot within 2 minutes");
    assert_eq!(metric(addr, "opslive_source_full_snapshots_total", &[("source", "shop")]).await, Some(1.0));
    stop_and_compare(serve, &config, &sql).await;
}

/// SIGKILL while the initial snapshot is under way (asserted: part of the table's rows were
/// applied, not all, and no checkpoint exists yet): the restart takes a fresh snapshot, the slot
/// the killed run created is not in its way, and the replica is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_the_initial_snapshot_recovers_with_a_fresh_one() {
    const ROWS: f64 = 200_000.0;
    let (pg, _url, dir, config) = setup(ROWS as i64 - 1).await;
    let sql = pg.connect("shop").await;
    let mut serve = Serve::start(&config);
    let addr = serve.wait_listening().await;
    let items = [("table", "items")];
    let copied = loop {
        let s = samples(&get(addr, "/metrics").await.body);
        let copied = value(&s, "opslive_snapshot_rows", &items).unwrap_or(0.0);
        if copied > 0.0 {
            break copied;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    serve.child.kill().await.unwrap();
    serve.child.wait().await.unwrap();
    assert!(copied < ROWS, "the snapshot was done ({copied} rows) before the kill");
    assert!(!dir.path().join("data").join(opslive::checkpoint::FILE_NAME).exists(), "a checkpoint before the snapshot");

    // Changes while it is down.
    sql.batch_execute("UPDATE items SET n = 9 WHERE id < 100; DELETE FROM items WHERE id % 4 = 0; INSERT INTO items VALUES (900000, 1, 'late', 2)")
        .await
        .unwrap();
    let mut serve = Serve::start(&config);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    assert_eq!(metric(addr, "opslive_source_full_snapshots_total", &[("source", "shop")]).await, Some(1.0));
    sql.batch_execute("UPDATE items SET v = 'after' WHERE id = 1").await.unwrap();
    caught_up(addr, current_lsn(&sql).await).await;
    stop_and_compare(serve, &config, &sql).await;
}

/// Writes only to an unwatched table still move the slot's `confirmed_flush_lsn` past them
/// (through heartbeats and checkpoints), so the slot does not hold WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_slot_still_advances() {
    let (pg, _url, _dir, config) = setup(100).await;
    let sql = pg.connect("shop").await;
    let mut serve = Serve::start(&config);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    for _ in 0..20 {
        sql.batch_execute("INSERT INTO other (v) SELECT repeat('x', 1000) FROM generate_series(1, 200)").await.unwrap();
    }
    let written = current_lsn(&sql).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let flushed: String = sql
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'opslive_shop'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if Position::parse(&flushed).unwrap() >= written {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot stuck at {flushed}, WAL at {written}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The slot can pass the unwatched writes before the first heartbeat (one a second) is seen.
    let s = loop {
        let s = samples(&get(addr, "/metrics").await.body);
        if value(&s, "opslive_heartbeat_age_seconds", &[("source", "shop")]).is_some() {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "no heartbeat seen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(value(&s, "opslive_changes_applied_total", &[("table", "items"), ("op", "insert")]), Some(0.0));
    assert!(value(&s, "opslive_heartbeat_age_seconds", &[("source", "shop")]).is_some_and(|a| a < 10.0));
    assert!(value(&s, "opslive_slot_retained_wal_bytes", &[("source", "shop")]).is_some());
    assert_eq!(value(&s, "opslive_slot_wal_status", &[("source", "shop"), ("status", "reserved")]), Some(1.0));
    assert!(value(&s, "opslive_checkpoint_writes_total", &[]).is_some_and(|n| n >= 1.0));
    serve.terminate().await;
}

/// A table added to the configuration file while the server runs (random writes going on to
/// it and to the watched table) is copied on its own and then follows its changes exactly; a
/// policy that names it, rejected while it was not watched, is taken once it is, and its rows
/// are in GraphQL. Taking a table out only says it waits for a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_added_to_the_configuration_is_copied_alone_and_then_streams() {
    let (pg, url, dir, config) = setup(20_000).await;
    let sql = pg.connect("shop").await;
    sql.batch_execute("INSERT INTO other (v) SELECT 'o' || g FROM generate_series(1, 5000) g").await.unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[roles.ops.tables.items]\ncolumns = \"*\"\n").unwrap();
    let top = format!("policy = {:?}\nauth = {{ hs256_secret = {SECRET:?} }}\n", policy.display().to_string());
    let with_auth = |tables: &[&str]| write_config_with(dir.path(), &url, tables, &top);
    with_auth(&["items"]);
    let mut serve = Serve::start(&config);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;

    let pause = Arc::new(RwLock::new(()));
    let items_writer = random_writer(url.clone(), pause.clone());
    let other_writer = {
        let (url, pause) = (url.clone(), pause.clone());
        tokio::spawn(async move {
            let client = support_connect(&url).await.unwrap();
            loop {
                let sql = {
                    let mut rng = rand::rng();
                    let id = rng.random_range(1..6_000);
                    format!(
                        "BEGIN; INSERT INTO other (v) VALUES ('new'); UPDATE other SET v = 'u{}' WHERE id = {id}; \
                         DELETE FROM other WHERE id = {}; COMMIT;",
                        rng.random::<u32>(),
                        rng.random_range(1..6_000)
                    )
                };
                let _held = pause.read().await;
                if client.batch_execute(&sql).await.is_err() {
                    return;
                }
            }
        })
    };

    // A policy naming a table that is not watched is refused and the old one stays.
    std::fs::write(&policy, "[roles.ops.tables.items]\ncolumns = \"*\"\n[roles.ops.tables.other]\ncolumns = \"*\"\n")
        .unwrap();
    let refused = serve.wait_log("policy rejected", |_| {}).await;
    assert!(refused["fields"]["error"].as_str().unwrap().contains("no watched table is called `other`"), "{refused}");

    with_auth(&["items", "other"]);
    let added = serve.wait_log("table added to the configuration", |_| {}).await;
    assert_eq!(added["fields"]["table"], "shop.public.other", "{added}");
    // Copied on its own: no other table is resynced, and the source is never restarted.
    // The policy is tried again as soon as the table is registered, so its reload may come
    // before or after the copy.
    let reloaded = std::cell::Cell::new(false);
    let check = |line: &str| {
        let added = line.contains("public.other") || line.contains("public.missing");
        assert!(!line.contains("resyncing the table") || added, "{line}");
        assert!(!line.contains("source failed"), "{line}");
        reloaded.set(reloaded.get() || line.contains("policy reloaded"));
    };
    let copied = serve.wait_log("table resynced", &check).await;
    assert!(copied["fields"]["table"].as_str().unwrap().contains("other"), "{copied}");
    if !reloaded.get() {
        serve.wait_log("policy reloaded", &check).await;
    }

    let token = token("ops", json!({}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = post(addr, Some(&token), "{ otherAggregate { count } }", json!({})).await.json();
        if reply["data"]["otherAggregate"][0]["count"].as_u64().is_some_and(|n| n > 1_000) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the added table never answered: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Writes go on a while after the copy, then stop; the replica must equal both tables.
    let stream_after = current_lsn(&sql).await;
    caught_up(addr, stream_after).await;
    let stop = pause.write().await;
    items_writer.abort();
    other_writer.abort();
    drop(stop);
    caught_up(addr, current_lsn(&sql).await).await;

    // A table that does not exist: its copy fails a bounded number of times and it is set
    // aside with the reason; the source goes on.
    with_auth(&["items", "other", "missing"]);
    let failed = serve.wait_log("resync failed; the table is quarantined", check).await;
    assert!(failed["fields"]["table"].as_str().unwrap().contains("missing"), "{failed}");
    assert!(failed["fields"]["error"].as_str().unwrap().contains("does not exist"), "{failed}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let tables: serde_json::Value = serde_json::from_str(&get(addr, "/tables").await.body).unwrap();
        let missing = tables.as_array().unwrap().iter().find(|t| t["name"] == "missing").unwrap().clone();
        if missing["state"] == "quarantined" {
            assert!(missing["reason"].as_str().unwrap().contains("does not exist"), "{missing}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/tables never said why: {missing}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = metric(addr, "opslive_table_state", &[("table", "missing"), ("state", "quarantined")]).await;
    assert_eq!(state, Some(1.0));
    sql.batch_execute("INSERT INTO items VALUES (99999999, 1, 'after', 1)").await.unwrap();
    caught_up(addr, current_lsn(&sql).await).await;

    // Taken out again: still watched until the next start, and the log says so.
    with_auth(&["items"]);
    let note = serve.wait_log("configuration change not applied while running", |_| {}).await;
    assert!(note["fields"]["note"].as_str().unwrap().contains("shop.public.other is no longer configured"), "{note}");
    with_auth(&["items", "other"]);
    stop_and_compare_tables(serve, &config, &sql, &["items", "other"]).await;
}

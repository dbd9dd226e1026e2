//! MariaDB binlog CDC against a real private server: preflight, every column type through the
//! snapshot and through the binlog, exactness under concurrent writers, rotation, DDL and
//! TRUNCATE mid-stream, resume and a purged binlog.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mysql_async::prelude::Queryable;
use opslive::change::Key;
use opslive::registry::{ColumnType, TableId};
use opslive::replica::Replica;
use opslive::source::postgres::text;
use opslive::value::{Interval, Value};
use rand::Rng;
use support::mariadb::{MariaDbServer, binlog_end};
use support::pipeline::{Running, assert_same, start_configured};

fn source_toml(url: &str, tables: &[&str]) -> String {
    let mut s = format!("kind = \"mariadb\"\nurl = \"{url}\"\nheartbeat_seconds = 0.2\nsnapshot_chunk_rows = 100\n");
    for t in tables {
        s.push_str(&format!("[[sources.src.tables]]\ntable = \"{t}\"\n"));
    }
    s
}

/// Waits until the replica has applied everything the server has written so far.
async fn caught_up(run: &mut Running, conn: &mut mysql_async::Conn) -> Arc<Replica> {
    let target = binlog_end(conn).await;
    run.wait_for("the stream to reach the server's binlog end", |r| r.applied_position("src") >= target).await
}

/// Reads a table from MariaDB over the text protocol and parses each value with the
/// replica's column type by opslive's PostgreSQL text parser — a path that shares nothing
/// with the MariaDB decoder — keyed like the replica.
async fn source_rows(conn: &mut mysql_async::Conn, replica: &Replica, table: TableId) -> Vec<(Key, Vec<Value>)> {
    let t = replica.table(table).expect("table in replica");
    let schema = &t.schema;
    let cols = schema.columns.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", ");
    conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4").await.unwrap();
    let rows: Vec<mysql_async::Row> =
        conn.query(format!("SELECT {cols} FROM `{}`.`{}`", schema.spec.schema, schema.spec.table)).await.unwrap();
    let mut out: Vec<(Key, Vec<Value>)> = rows
        .into_iter()
        .map(|r| {
            let row: Vec<Value> = r
                .unwrap()
                .into_iter()
                .zip(&schema.columns)
                .map(|(v, c)| match v {
                    mysql_async::Value::NULL => Value::Null,
                    mysql_async::Value::Bytes(b) => text::parse(&c.ty, std::str::from_utf8(&b).unwrap()).unwrap(),
                    other => panic!("text protocol sent {other:?}"),
                })
                .collect();
            (Key::of(&row, &schema.key), row)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn preflight_lists_every_problem_with_its_fix() {
    let server = MariaDbServer::start_with(&[
        "--binlog-row-image=MINIMAL",
        "--binlog-row-metadata=MINIMAL",
        "--log-bin-compress=ON",
    ])
    .await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    conn.query_drop("CREATE TABLE nokey (a int); CREATE TABLE place (id int primary key, spot point)").await.unwrap();
    let mut run = start_configured(&source_toml(&url, &["nokey", "place", "missing"]), None);
    let result = (&mut run.source).await.unwrap();
    let message = result.expect_err("the source refuses to start").to_string();
    for needed in [
        "binlog_row_image is MINIMAL: set binlog_row_image=FULL",
        "binlog_row_metadata is MINIMAL: set binlog_row_metadata=FULL",
        "log_bin_compress is ON",
    ] {
        assert!(message.contains(needed), "missing `{needed}` in:\n{message}");
    }
    // The server problems come first and alone: the tables are checked once the server is
    // right, so fix the server and look again.
    drop(run);
    drop(server);
    let server = MariaDbServer::start().await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    conn.query_drop("CREATE TABLE nokey (a int); CREATE TABLE place (id int primary key, spot point)").await.unwrap();
    let mut run = start_configured(&source_toml(&url, &["nokey", "place", "missing"]), None);
    let message = (&mut run.source).await.unwrap().expect_err("the source refuses to start").to_string();
    // A user who may only read the tables cannot read the binlog.
    conn.query_drop("CREATE USER reader@'%'; GRANT SELECT ON shop.* TO reader@'%'").await.unwrap();
    let reader = url.replace("root@", "reader@");
    let mut as_reader = start_configured(&source_toml(&reader, &["place"]), None);
    let refused = (&mut as_reader.source).await.unwrap().expect_err("refused").to_string();
    assert!(refused.contains("lacks REPLICATION SLAVE") && refused.contains("lacks BINLOG MONITOR"), "{refused}");
    for needed in [
        "table src.shop.nokey has no primary key",
        "column `spot`: type point is not supported; exclude it",
        "table src.shop.missing does not exist",
    ] {
        assert!(message.contains(needed), "missing `{needed}` in:\n{message}");
    }
}

/// A column of every type the source reads: the table of `fixtures/mariadb/kinds.sql`, whose
/// captured binlog bytes `tests/mariadb_decoder_capture.rs` decodes offline.
fn kinds_table() -> String {
    let sql = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mariadb/kinds.sql")).unwrap();
    let schema = sql.split("-- SCHEMA").nth(1).and_then(|s| s.split("-- DML").next()).expect("a SCHEMA part");
    schema.trim().to_string()
}

/// Rows with the extremes of every type, NULLs, multi-byte and latin1 text, and zero dates;
/// `base` is added to the ids.
fn kinds_rows(base: i32) -> String {
    format!(
        "INSERT INTO kinds VALUES
        ({a}, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,
         18446744073709551615, 1, 99999999999999999999999999999999999.999999999999999999999999999999, 3.5, 0.1,
         'Grüße 🚀', 'café €', REPEAT('x', 300), 'ab', '{{\"n\": 1.10, \"a\": [true, null]}}', 'it''s', 'x,z',
         '9999-12-31', '1969-12-31 23:59:59.500000', '2038-01-19 03:14:07.999999', '838:59:59.000000', 2155,
         x'00FF10', x'DEADBEEF', b'1', b'101010101010'),
        ({b}, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808,
         0, 0, -0.000000000000000000000000000001, -3.5, -1e308,
         '', '', '', '', '[]', 'open', '',
         '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', '-838:59:59.000000', 1901,
         x'', x'', b'0', b'0'),
        ({c}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        ({z}, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'z', 'z', 'z', 'z', '{{}}', 'done', 'y',
         '0000-00-00', '0000-00-00 00:00:00', NULL, '00:00:00', 0, x'00', x'00', b'0', b'0')",
        a = base + 1,
        b = base + 2,
        c = base + 3,
        z = base + 4
    )
}

#[tokio::test]
async fn every_type_decodes_the_same_from_the_snapshot_and_the_binlog() {
    let server = MariaDbServer::start().await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    conn.query_drop("SET sql_mode = ''").await.unwrap();
    conn.query_drop(kinds_table()).await.unwrap();
    conn.query_drop(kinds_rows(0)).await.unwrap();
    let mut run = start_configured(&source_toml(&url, &["kinds"]), None);
    let id = run.table_id("kinds");
    run.wait_for("the snapshot", |r| r.table(id).is_some_and(|t| t.len() == 4)).await;
    conn.query_drop(kinds_rows(100)).await.unwrap();
    let replica = caught_up(&mut run, &mut conn).await;
    let table = replica.table(id).unwrap();
    let row = |i: i32| table.get(&Key(vec![Value::Int4(i)].into())).unwrap_or_else(|| panic!("row {i}")).clone();
    for i in 1..=4 {
        let (copied, streamed) = (row(i), row(100 + i));
        assert_eq!(copied[1..], streamed[1..], "row {i}: the snapshot's values and the binlog's differ");
    }
    let column = |name: &str| table.schema.columns.iter().position(|c| &*c.name == name).unwrap();
    let max = row(101);
    let expect = [
        ("tu", Value::Int2(255)),
        ("su", Value::Int4(65535)),
        ("iu", Value::Int8(4_294_967_295)),
        ("bu", Value::Numeric("18446744073709551615".into())),
        ("flag", Value::Int2(1)),
        ("d", Value::Numeric("99999999999999999999999999999999999.999999999999999999999999999999".into())),
        ("f", Value::Float4(3.5)),
        ("db", Value::Float8(0.1)),
        ("vc", Value::text("Grüße 🚀")),
        ("l1", Value::text("café €")),
        ("j", Value::Json("{\"n\": 1.10, \"a\": [true, null]}".into())),
        ("e", Value::text("it's")),
        ("s", Value::text("x,z")),
        ("dtm", Value::Timestamp(-500_000)),
        ("ts", Value::TimestampTz(2_147_483_647_999_999)),
        ("tm", Value::Interval(Interval { months: 0, days: 0, micros: 3_020_399_000_000 })),
        ("y", Value::Int2(2155)),
        ("bin", Value::Bytes(vec![0x00, 0xFF, 0x10].into())),
        ("bt", Value::Bool(true)),
        ("b12", Value::Int8(0b1010_1010_1010)),
    ];
    for (name, value) in expect {
        assert_eq!(max[column(name)], value, "column {name}");
    }
    assert_eq!(row(102)[column("tm")], Value::Interval(Interval { months: 0, days: 0, micros: -3_020_399_000_000 }));
    assert_eq!(row(102)[column("bi")], Value::Int8(i64::MIN));
    assert!(row(103)[1..].iter().all(Value::is_null), "NULLs stay NULL");
    let zero = row(104);
    assert_eq!(
        (zero[column("dt")].clone(), zero[column("dtm")].clone()),
        (Value::Null, Value::Null),
        "zero dates are NULL"
    );
    assert_eq!(zero[column("y")], Value::Int2(0));
    assert!(opslive::source::mariadb::ZERO_DATES.load(Ordering::Relaxed) >= 4, "zero dates are counted");
    assert_eq!(table.schema.columns[column("bu")].ty, ColumnType::Numeric);

    // Updates and deletes carry their before images; the key moves with an update.
    conn.query_drop("UPDATE kinds SET id = 200, vc = 'moved' WHERE id = 101; DELETE FROM kinds WHERE id = 102")
        .await
        .unwrap();
    let replica = caught_up(&mut run, &mut conn).await;
    let table = replica.table(id).unwrap();
    assert!(table.get(&Key(vec![Value::Int4(101)].into())).is_none());
    assert!(table.get(&Key(vec![Value::Int4(102)].into())).is_none());
    assert_eq!(table.get(&Key(vec![Value::Int4(200)].into())).unwrap()[column("vc")], Value::text("moved"));
    assert!(run.seen.lock().unwrap().anomalies.is_empty(), "{:?}", run.seen.lock().unwrap().anomalies);
    run.stop().await;
}

const SHOP: &str = "
CREATE TABLE items (id BIGINT PRIMARY KEY, grp INT NOT NULL, qty INT, price DECIMAL(14,4), ratio DOUBLE,
    note VARCHAR(200), status ENUM('new','open','done'), doc JSON, at DATETIME(6), day DATE) ENGINE=InnoDB;
CREATE TABLE pairs (a INT, b VARCHAR(20), v INT, PRIMARY KEY (a, b)) ENGINE=InnoDB;
CREATE TABLE unwatched (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT) ENGINE=InnoDB;
";

async fn seed_shop(conn: &mut mysql_async::Conn, rows: u64) {
    conn.query_drop(SHOP).await.unwrap();
    conn.query_drop(format!(
        "INSERT INTO items SELECT seq, seq % 10, seq, seq * 1.25, seq / 7, CONCAT('note ', seq), \
         ELT(1 + seq % 3, 'new', 'open', 'done'), JSON_OBJECT('g', seq, 'n', 2.50), \
         TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, DATE'2026-01-01' - INTERVAL seq DAY FROM seq_1_to_{rows}"
    ))
    .await
    .unwrap();
}

/// Random multi-statement transactions, some rolled back, some moving a primary key, until
/// `stop`; ids above `next` are new.
async fn writer(url: String, next: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
    let mut committed = 0;
    while !stop.load(Ordering::Relaxed) {
        let statements: Vec<String> = {
            let mut rng = rand::rng();
            (0..rng.random_range(1..6))
                .map(|_| {
                    let id = rng.random_range(1..next.load(Ordering::Relaxed));
                    match rng.random_range(0..7) {
                        0 => {
                            let new = next.fetch_add(1, Ordering::Relaxed);
                            format!("INSERT INTO items VALUES ({new}, {}, 1, 9.9900, 0.5, 'new', 'new', '{{\"w\": 1}}', NOW(6), CURDATE())", new % 10)
                        }
                        1 => format!("UPDATE items SET qty = qty + 1, note = CONCAT('n', {id}), status = 'open' WHERE id = {id}"),
                        2 => format!("DELETE FROM items WHERE id = {id}"),
                        3 => {
                            let new = next.fetch_add(1, Ordering::Relaxed);
                            format!("UPDATE items SET id = {new} WHERE id = {id}")
                        }
                        4 => format!("INSERT INTO pairs VALUES ({}, 'b{}', 1) ON DUPLICATE KEY UPDATE v = v + 1", id % 50, id % 7),
                        5 => format!("DELETE FROM pairs WHERE a = {}", id % 50),
                        _ => "INSERT INTO unwatched (v) VALUES ('x')".to_string(),
                    }
                })
                .collect()
        };
        let rollback = rand::rng().random_bool(0.2);
        let result: Result<(), mysql_async::Error> = async {
            conn.query_drop("START TRANSACTION").await?;
            for s in &statements {
                conn.query_drop(s).await?;
            }
            conn.query_drop(if rollback { "ROLLBACK" } else { "COMMIT" }).await
        }
        .await;
        match result {
            Ok(()) if !rollback => committed += 1,
            Ok(()) => {}
            // Deadlocks and duplicate keys between writers: the transaction is abandoned.
            Err(_) => conn.query_drop("ROLLBACK").await.unwrap(),
        }
    }
    committed
}

#[tokio::test]
async fn the_replica_equals_the_source_after_concurrent_writers_during_and_after_the_snapshot() {
    let server = MariaDbServer::start().await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    seed_shop(&mut conn, 20_000).await;
    let next = Arc::new(AtomicU64::new(20_001));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4).map(|_| tokio::spawn(writer(url.clone(), next.clone(), stop.clone()))).collect();
    // The writers are busy before the snapshot starts, and go on through it.
    let mut run = start_configured(&source_toml(&url, &["items", "pairs"]), None);
    let seen = run.seen.clone();
    run.wait_for("the snapshot", |_| seen.lock().unwrap().consistent_at.is_some()).await;
    let consistent = run.seen.lock().unwrap().consistent_at.expect("consistent");
    // Streamed for a while after.
    run.wait_for("streamed transactions", |r| r.applied_position("src") > consistent).await;
    let target = next.load(Ordering::Relaxed) + 400;
    while next.load(Ordering::Relaxed) < target {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut committed = 0;
    for w in writers {
        committed += w.await.unwrap();
    }
    assert!(committed > 100, "the writers committed {committed} transactions");
    let replica = caught_up(&mut run, &mut conn).await;
    for t in ["items", "pairs"] {
        let id = run.table_id(t);
        assert_same(&replica, id, &source_rows(&mut conn, &replica, id).await);
    }
    let seen = run.seen.lock().unwrap();
    assert!(seen.anomalies.is_empty(), "anomalies: {:?}", seen.anomalies);
    assert!(seen.positions.windows(2).all(|w| w[0] < w[1]), "transactions arrive in commit order");
    assert!(seen.positions.len() > 50, "{} transactions streamed", seen.positions.len());
}

#[tokio::test]
async fn rotation_ddl_and_truncate_mid_stream_touch_only_their_table() {
    let server = MariaDbServer::start().await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    seed_shop(&mut conn, 500).await;
    conn.query_drop("INSERT INTO pairs SELECT seq, 'x', seq FROM seq_1_to_50").await.unwrap();
    let mut run = start_configured(&source_toml(&url, &["items", "pairs"]), None);
    let (items, pairs) = (run.table_id("items"), run.table_id("pairs"));
    let replica = caught_up(&mut run, &mut conn).await;
    assert_eq!(replica.table(items).unwrap().len(), 500);

    // A new binlog file mid-stream.
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    conn.query_drop("INSERT INTO items (id, grp) VALUES (1001, 1)").await.unwrap();
    let replica = caught_up(&mut run, &mut conn).await;
    assert!(replica.table(items).unwrap().get(&Key(vec![Value::Int8(1001)].into())).is_some());

    // A column added with a default changes every row without a row event: the table is
    // copied again on its own, the other not.
    let pairs_version = replica.table(pairs).unwrap().schema.version;
    conn.query_drop("ALTER TABLE items ADD COLUMN sla INT NOT NULL DEFAULT 4").await.unwrap();
    conn.query_drop("UPDATE items SET sla = 8 WHERE id = 2; INSERT INTO pairs VALUES (99, 'y', 1)").await.unwrap();
    let replica = run
        .wait_for("items with its new column", |r| {
            r.table(items).is_some_and(|t| t.state.is_ready() && t.schema.columns.iter().any(|c| &*c.name == "sla"))
        })
        .await;
    let _ = replica;
    let replica = caught_up(&mut run, &mut conn).await;
    for t in [items, pairs] {
        assert_same(&replica, t, &source_rows(&mut conn, &replica, t).await);
    }
    assert_eq!(replica.table(pairs).unwrap().schema.version, pairs_version, "pairs was not copied again");
    assert_eq!(run.stats.resyncs.load(Ordering::Relaxed), 1);

    // TRUNCATE is a statement in the binlog, not row events.
    conn.query_drop("TRUNCATE TABLE pairs").await.unwrap();
    conn.query_drop("INSERT INTO pairs VALUES (7, 'after', 1)").await.unwrap();
    let replica = caught_up(&mut run, &mut conn).await;
    assert_eq!(replica.table(pairs).unwrap().len(), 1);
    assert_same(&replica, pairs, &source_rows(&mut conn, &replica, pairs).await);
    assert_eq!(replica.table(items).unwrap().len(), 501, "items kept its rows");
    assert!(run.seen.lock().unwrap().anomalies.is_empty());
    run.stop().await;
}

#[tokio::test]
async fn a_restart_resumes_from_the_replicas_position_and_a_purged_binlog_means_a_fresh_snapshot() {
    let server = MariaDbServer::start().await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    seed_shop(&mut conn, 300).await;
    let toml = source_toml(&url, &["items"]);
    let mut run = start_configured(&toml, None);
    let items = run.table_id("items");
    caught_up(&mut run, &mut conn).await;
    conn.query_drop("UPDATE items SET qty = -1 WHERE id <= 10").await.unwrap();
    caught_up(&mut run, &mut conn).await;
    let replica = run.stop().await;

    // Written while stopped: the next run streams it without copying the table again.
    conn.query_drop(
        "START TRANSACTION; DELETE FROM items WHERE id <= 5; INSERT INTO items (id, grp) VALUES (900, 1); COMMIT",
    )
    .await
    .unwrap();
    let mut run = start_configured(&toml, Some(replica));
    let replica = caught_up(&mut run, &mut conn).await;
    assert_same(&replica, items, &source_rows(&mut conn, &replica, items).await);
    assert_eq!(run.stats.resumes.load(Ordering::Relaxed), 1);
    assert_eq!(run.stats.snapshots.load(Ordering::Relaxed), 0, "no snapshot on resume");
    let (applied, skipped) = {
        let seen = run.seen.lock().unwrap();
        (seen.positions.len(), seen.skipped)
    };
    assert_eq!((applied, skipped), (1, 0), "exactly the one transaction written while stopped");
    let mut replica = run.stop().await;

    // The binlog holding the replica's position is purged while stopped, and the table had been
    // quarantined: the fresh snapshot copies it again, so its changes are followed again.
    let quarantine = opslive::change::TableEvent::Quarantined {
        table: items,
        position: replica.applied_position("src"),
        reason: "a test".into(),
    };
    replica.apply(&opslive::change::SourceEvent::Table(quarantine));
    conn.query_drop("INSERT INTO items (id, grp) VALUES (901, 1)").await.unwrap();
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let mut row: mysql_async::Row = conn.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let current: String = row.take(0).unwrap();
    // The server keeps a file a dump thread still reads: the stopped run's may linger a moment.
    loop {
        conn.query_drop(format!("PURGE BINARY LOGS TO '{current}'")).await.unwrap();
        let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
        if files.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut run = start_configured(&toml, Some(replica));
    let replica = caught_up(&mut run, &mut conn).await;
    assert_same(&replica, items, &source_rows(&mut conn, &replica, items).await);
    assert_eq!(run.stats.snapshots.load(Ordering::Relaxed), 1, "a fresh snapshot");
    assert_eq!(run.stats.resumes.load(Ordering::Relaxed), 0);
    conn.query_drop("UPDATE items SET qty = 77 WHERE id = 900").await.unwrap();
    let replica = caught_up(&mut run, &mut conn).await;
    assert_same(&replica, items, &source_rows(&mut conn, &replica, items).await);
    run.stop().await;
}

/// The heartbeat row: opslive writes `NOW(6)` into it and reads it back through the binlog, so
/// the heartbeat's time is exact to the microsecond (the binlog's own are whole seconds) and
/// its age is the lag. A user who may not write it is told the GRANT before anything starts.
#[tokio::test]
async fn a_heartbeat_row_measures_lag_to_the_microsecond() {
    let server = MariaDbServer::start().await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    conn.query_drop("CREATE TABLE place (id INT PRIMARY KEY)").await.unwrap();
    let with_beat = |url: &str| {
        source_toml(url, &["place"]).replacen(
            "[[sources.src.tables]]",
            "heartbeat_table = \"opslive_heartbeat\"\n[[sources.src.tables]]",
            1,
        )
    };
    let run = start_configured(&with_beat(&url), None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (seen, written) = loop {
        let seen = run.stats.heartbeat_emitted_at.load(Ordering::Relaxed);
        let written: Option<i64> = conn
            .query_first("SELECT CAST(UNIX_TIMESTAMP(emitted_at) * 1000000 AS SIGNED) FROM opslive_heartbeat WHERE source = 'src'")
            .await
            .unwrap_or(None);
        // The same beat on both sides, one that did not fall on a whole second.
        if written == Some(seen) && seen % 1_000_000 != 0 {
            break (seen, written);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exact heartbeat within 30 s: seen {seen}, written {written:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(Some(seen), written);
    let age = run.stats.heartbeat_age(chrono::Utc::now().timestamp_micros()).expect("a heartbeat came back");
    assert!(age < 10.0, "the heartbeat's age is its lag: {age} s");
    run.cancel.cancel();

    // A user who may replicate and read, but not create or write the heartbeat table.
    conn.query_drop("CREATE USER reader@'%'; GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO reader@'%'")
        .await
        .unwrap();
    let reader = url.replace("root@", "reader@");
    let mut as_reader = start_configured(&with_beat(&reader).replace("opslive_heartbeat", "beats"), None);
    let refused = (&mut as_reader.source).await.unwrap().expect_err("refused").to_string();
    assert!(refused.contains("GRANT CREATE, INSERT, UPDATE ON `shop`.`beats`"), "{refused}");
}

/// A CA, and a certificate for 127.0.0.1 it signed: (CA PEM, certificate PEM, key PEM).
fn tls_files() -> (String, String, String) {
    let issued = support::tls::issue(&["127.0.0.1", "localhost"]);
    (issued.ca_pem, issued.cert.pem(), issued.key.serialize_pem())
}

/// TLS to the server: a user the server lets in over TLS only is read with `tls_ca_file`, the
/// server's certificate checked against that CA; without it, or against another CA, no
/// connection is made.
#[tokio::test]
async fn a_source_reads_over_tls_checked_against_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files();
    let (other_ca, _, _) = tls_files();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (ca, cert, key, other_ca) =
        (file("ca.pem", &ca), file("cert.pem", &cert), file("key.pem", &key), file("other.pem", &other_ca));
    let server = MariaDbServer::start_with(&[
        &format!("--ssl-cert={cert}"),
        &format!("--ssl-key={key}"),
        &format!("--ssl-ca={ca}"),
    ])
    .await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    conn.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1, 'a'), (2, 'b');
         CREATE USER tls@'%' REQUIRE SSL; GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO tls@'%'",
    )
    .await
    .unwrap();
    let tls_url = url.replace("root@", "tls@");
    let toml = |ca: Option<&str>| {
        let ca = ca.map(|c| format!("tls_ca_file = \"{c}\"\n")).unwrap_or_default();
        format!(
            "kind = \"mariadb\"\nurl = \"{tls_url}\"\nheartbeat_seconds = 0.2\n{ca}[[sources.src.tables]]\ntable = \"t\"\n"
        )
    };

    let mut run = start_configured(&toml(Some(&ca)), None);
    let id = run.table_id("t");
    run.wait_for("the snapshot over TLS", |r| r.table(id).is_some_and(|t| t.len() == 2)).await;
    conn.query_drop("INSERT INTO t VALUES (3, 'c')").await.unwrap();
    run.wait_for("a change streamed over TLS", |r| r.table(id).is_some_and(|t| t.len() == 3)).await;
    run.cancel.cancel();

    for (ca, expect) in [(None, "Access denied"), (Some(other_ca.as_str()), "certificate")] {
        let run = start_configured(&toml(ca), None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let error = loop {
            if let Some(e) = run.stats.last_error() {
                break e;
            }
            assert!(std::time::Instant::now() < deadline, "no failure within 30 s with CA {ca:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(error.contains(expect), "with CA {ca:?}: {error}");
        run.cancel.cancel();
    }
}

#[tokio::test]
async fn a_group_larger_than_the_budget_streams_through_in_parts_and_applies_whole() {
    let server = MariaDbServer::start().await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    seed_shop(&mut conn, 100).await;
    let budget = 1 << 20;
    let toml = format!("{}[transactions]\nbuffer_bytes = {budget}\n", source_toml(&url, &["items"]));
    let mut run = start_configured(&toml, None);
    caught_up(&mut run, &mut conn).await;
    // 100,000 inserts, an update, and the inserts deleted: about 80 MB of changes decoded.
    conn.query_drop("START TRANSACTION").await.unwrap();
    conn.query_drop(
        "INSERT INTO items SELECT seq, seq % 10, seq, seq * 1.25, seq / 7, CONCAT('bulk ', seq), 'new', \
         JSON_OBJECT('g', seq), TIMESTAMP'2026-02-01 00:00:00' + INTERVAL seq SECOND, DATE'2026-02-01' \
         FROM seq_1000_to_100999",
    )
    .await
    .unwrap();
    conn.query_drop("UPDATE items SET note = 'shipped' WHERE id = 5").await.unwrap();
    conn.query_drop("DELETE FROM items WHERE id >= 1000").await.unwrap();
    conn.query_drop("COMMIT").await.unwrap();
    let replica = caught_up(&mut run, &mut conn).await;
    let id = run.table_id("items");
    assert_same(&replica, id, &source_rows(&mut conn, &replica, id).await);
    let seen = run.seen.lock().unwrap();
    assert!(seen.anomalies.is_empty(), "anomalies: {:?}", seen.anomalies);
    assert_eq!(seen.parted, 1, "the group came in parts");
    let peak = run.memory.peak();
    assert!(peak <= budget && peak >= budget / 4, "held at most {peak} bytes of {budget}");
}

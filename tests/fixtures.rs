//! The shipped fixtures and example configuration work together: every fixture table is
//! snapshotted and streamed exactly, excluded columns never reach the replica, and `serve`
//! records its watermarks in the app database and stops cleanly on SIGTERM.

mod support;

use std::sync::Arc;

use opslive::config::Config;
use support::PgServer;
use support::pipeline::{assert_same, source_rows, start};
use support::serve::Serve;

async fn fixture_server() -> (PgServer, String) {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let client = pg.connect("shop").await;
    for file in ["fixtures/postgres/schema.sql", "fixtures/postgres/seed.sql"] {
        let sql = std::fs::read_to_string(file).unwrap();
        client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{file}: {e:?}"));
    }
    (pg, url)
}

/// The example configuration with the helpdesk's tables read from the same PostgreSQL
/// database (the fixture schema has them too); `tests/demo.rs` runs it with MariaDB.
fn example_config(url: &str) -> Config {
    Config::from_toml(&opslive::demo::demo_config(url, "127.0.0.1:0".parse().unwrap())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_tables_snapshot_and_stream_exactly() {
    let (pg, url) = fixture_server().await;
    let config = example_config(&url);
    let tables: Vec<String> = config.sources["shop"].tables().iter().map(|t| t.table.clone()).collect();
    let table_refs: Vec<&str> = tables.iter().map(String::as_str).collect();
    let mut running = start(&url, "fixtures", &table_refs);
    running.wait_for("the snapshot", |r| r.applied_position("src").0 > 0).await;

    let client = pg.connect("shop").await;
    client
        .batch_execute(
            "UPDATE orders SET status = 'paid', paid_at = now(), notes = repeat('long note ', 400) WHERE id % 1000 = 7;
             UPDATE inventory SET on_hand = on_hand - 1, reserved = reserved + 1 WHERE warehouse_id = 'WH-BER' AND sku LIKE 'A%';
             INSERT INTO tickets (queue, priority, status, subject, customer_id, opened_at, updated_at)
               VALUES ('billing', 'urgent', 'new', 'Charged twice', 1, now(), now());
             UPDATE reconciliation_batches SET matched_count = expected_count, status = 'matched' WHERE status = 'matching';
             DELETE FROM reconciliation_exceptions WHERE id % 10 = 0;
             UPDATE customers SET email = 'changed@example.com', region = 'eu' WHERE id = 42;
             INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
               VALUES ('web', 1, 'pending', 12.34, 'EUR', 'WH-BER', 'eu', 1);",
        )
        .await
        .unwrap();
    let marker: i64 = client.query_one("SELECT max(id) FROM orders", &[]).await.unwrap().get(0);
    let orders = running.table_id("orders");
    let key = opslive::change::Key(vec![opslive::value::Value::Int8(marker)].into());
    let replica = running.wait_for("the last order", |r| r.table(orders).is_some_and(|t| t.get(&key).is_some())).await;
    for table in [
        "orders",
        "inventory",
        "products",
        "warehouses",
        "customers",
        "tickets",
        "agents",
        "reconciliation_batches",
        "reconciliation_exceptions",
    ] {
        let id = running.table_id(table);
        let expected = source_rows(&client, &replica, id).await;
        assert!(!expected.is_empty(), "{table} is empty");
        assert_same(&replica, id, &expected);
    }
    assert!(running.seen.lock().unwrap().anomalies.is_empty());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_columns_never_reach_the_replica_and_serve_records_watermarks() {
    let (pg, url) = fixture_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("opslive.toml");
    let text = std::fs::read_to_string("fixtures/opslive.example.toml")
        .unwrap()
        .replace("postgres://postgres@127.0.0.1:5432/shop", &url)
        .replace("data_dir = \"./data\"", &format!("data_dir = \"{}\"", dir.path().join("data").display()));
    std::fs::write(&config_path, text).unwrap();

    // The replica through the library: customers without email and phone.
    let config = example_config(&url);
    let registry = Arc::new(config.registry().unwrap());
    let w = Arc::new(opslive::watermark::Watermarks::default());
    let sc = &config.sources["shop"];
    let source = opslive::source::postgres::PostgresSource::new(
        "shop",
        sc.url(),
        "excl".into(),
        "excl_pub".into(),
        registry.clone(),
        w.clone(),
    )
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(source.run(tx, cancel.clone()));
    let (apply, mut versions) =
        opslive::pipeline::ApplyLoop::new(std::collections::HashMap::from([(Arc::from("shop"), w)]));
    let applier = tokio::spawn(apply.run(rx, Vec::new(), |_, _| {}));
    let customers = registry.by_name("customers").unwrap().id;
    loop {
        if versions.borrow_and_update().applied_position("shop").0 > 0 {
            break;
        }
        versions.changed().await.unwrap();
    }
    let replica = versions.borrow().clone();
    let t = replica.table(customers).unwrap();
    let names: Vec<&str> = t.schema.columns.iter().map(|c| &*c.name).collect();
    assert!(!names.contains(&"email") && !names.contains(&"phone"), "{names:?}");
    assert!(names.contains(&"region"));
    assert!(
        t.rows().all(|(_, r)| r.iter().all(|v| !v.to_canonical_string().contains('@'))),
        "an email address reached memory"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
    applier.await.unwrap();

    // `serve`: runs, records watermarks in the app database, stops on SIGTERM with exit 0.
    let mut serve = Serve::start(&config_path);
    serve
        .wait_log("replica consistent", |line| {
            assert!(!line.contains("@example.") && !line.contains("WARN"), "unexpected log line: {line}")
        })
        .await;
    let app = pg.connect("opslive").await;
    let applied = loop {
        let row = app
            .query_opt("SELECT applied, snapshot_position FROM source_watermarks WHERE source = 'shop'", &[])
            .await
            .unwrap();
        if let Some(row) = row {
            let applied: String = row.get(0);
            if applied != "0/0" {
                let snap: Option<String> = row.get(1);
                assert!(snap.is_some());
                break applied;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(applied.contains('/'));
    serve.terminate().await;
    // A stopped opslive keeps its slot for the next start, acknowledged up to its final
    // checkpoint: the slot holds no WAL that the checkpoint already covers.
    let shop = pg.connect("shop").await;
    let flushed: String = shop
        .query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'opslive_shop'", &[])
        .await
        .unwrap()
        .get(0);
    let flushed = opslive::change::Position::parse(&flushed).unwrap();
    assert!(flushed >= opslive::change::Position::parse(&applied).unwrap(), "{flushed} < {applied}");
    assert!(dir.path().join("data").join(opslive::checkpoint::FILE_NAME).exists());
}

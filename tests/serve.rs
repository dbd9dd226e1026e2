//! `opslive serve` survives its database going away: it retries with backoff, resumes its slot
//! from the replica's position and streams again, and stops cleanly on SIGTERM.

mod support;

use std::time::Duration;

use support::PgServer;
use support::serve::{Serve, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconnects_after_the_database_restarts() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    pg.connect("shop")
        .await
        .batch_execute("CREATE TABLE orders (id bigint PRIMARY KEY, status text); INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 500) g;")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, &["orders"]);
    let mut serve = Serve::start(&config);
    let first = serve.wait_log("replica consistent", |_| {}).await;

    pg.restart().await;
    let failed = serve.wait_log("source failed; retrying", |_| {}).await;
    assert!(failed["fields"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{failed}");
    serve
        .wait_log("resuming the slot; no snapshot needed", |line| assert!(!line.contains("table copied"), "{line}"))
        .await;
    let second = serve.wait_log("replica consistent", |_| {}).await;
    let at =
        |v: &serde_json::Value| opslive::change::Position::parse(v["fields"]["position"].as_str().unwrap()).unwrap();
    assert!(at(&second) >= at(&first), "the stream resumes where the replica stands");

    // Streaming again: a new row shows up in the applied watermark.
    let shop = pg.connect("shop").await;
    // A position inside the transaction: the only watched commit at or after it is this one.
    shop.batch_execute("BEGIN; INSERT INTO orders VALUES (501, 'after restart')").await.unwrap();
    let written: String = shop.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap().get(0);
    shop.batch_execute("COMMIT").await.unwrap();
    let app = pg.connect("opslive").await;
    loop {
        let caught_up: bool = app
            .query_one(
                "SELECT applied::pg_lsn >= $1::text::pg_lsn FROM source_watermarks WHERE source = 'shop'",
                &[&written],
            )
            .await
            .unwrap()
            .get(0);
        if caught_up {
            break;
        }
        // The watermark row is written once a second.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    serve.terminate().await;
}

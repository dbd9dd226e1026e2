//! `serve`'s operations endpoints: `/healthz`, `/readyz` that follows the source (not ready
//! while disconnected, ready again once a fresh snapshot is applied), and `/metrics` in
//! Prometheus text format with the figures an operator watches: changes per table, watermarks,
//! lag, snapshot progress, replica rows and memory. Logs never carry row values.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::PgServer;
use support::http::{get, samples, value};
use support::serve::{Serve, write_config};

/// A value that must never appear in a log line.
const SECRET: &str = "do-not-log-4711";

async fn poll<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    value(&samples(&r.body), name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_follow_the_source() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let shop = pg.connect("shop").await;
    shop.batch_execute(&format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text, note text);
         INSERT INTO orders SELECT g, 'new', '{SECRET}' FROM generate_series(1, 500) g;
         ANALYZE orders;
         CREATE TABLE tickets (id bigint PRIMARY KEY, queue text);"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, &["orders", "tickets"]);
    let no_secret = |line: &str| assert!(!line.contains(SECRET), "a row value was logged: {line}");
    let mut serve = Serve::start(&config);
    let addr = serve.wait_listening().await;

    let health = get(addr, "/healthz").await;
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    // No web app configured: `/` says where the endpoints are and how to get the dashboard.
    let page = get(addr, "/").await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("/metrics") && page.body.contains("web_dir"), "{}", page.body);
    assert_eq!(get(addr, "/nowhere").await.status, 404);

    serve.wait_log("replica consistent", no_secret).await;
    poll("ready", async || (get(addr, "/readyz").await.status == 200).then_some(())).await;
    let ready: serde_json::Value = serde_json::from_str(&get(addr, "/readyz").await.body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["sources"][0]["source"], "shop");
    assert_eq!(ready["sources"][0]["connected"], true);

    let m = get(addr, "/metrics").await;
    assert!(m.content_type.starts_with("text/plain; version=0.0.4"), "{}", m.content_type);
    let s = samples(&m.body);
    let orders = [("source", "shop"), ("table", "orders")];
    assert_eq!(value(&s, "opslive_replica_rows", &orders), Some(500.0));
    assert_eq!(value(&s, "opslive_snapshot_rows", &orders), Some(500.0));
    assert_eq!(value(&s, "opslive_snapshot_estimated_rows", &orders), Some(500.0), "ANALYZE gave an estimate");
    assert_eq!(value(&s, "opslive_snapshot_complete", &orders), Some(1.0));
    assert_eq!(value(&s, "opslive_snapshot_complete", &[("table", "tickets")]), Some(1.0));
    assert_eq!(value(&s, "opslive_replica_rows", &[("table", "tickets")]), Some(0.0));
    assert!(value(&s, "opslive_replica_memory_bytes", &orders).unwrap() > 500.0 * 16.0);
    assert_eq!(value(&s, "opslive_ready", &[]), Some(1.0));
    assert_eq!(value(&s, "opslive_source_connected", &[("source", "shop")]), Some(1.0));
    for w in ["server", "received", "applied", "acknowledged"] {
        assert!(
            value(&s, "opslive_source_position_bytes", &[("source", "shop"), ("watermark", w)]).is_some(),
            "watermark {w} exported"
        );
    }

    // Changes are counted per table and kind once applied; the delay histogram sees each
    // transaction (one here: a multi-statement simple query commits once).
    shop.batch_execute(&format!(
        "INSERT INTO orders SELECT g, 'new', '{SECRET}' FROM generate_series(501, 600) g;
         UPDATE orders SET status = 'paid' WHERE id <= 20;
         DELETE FROM orders WHERE id > 595;
         INSERT INTO tickets VALUES (1, 'billing'), (2, 'returns');"
    ))
    .await
    .unwrap();
    let insert = [("table", "orders"), ("op", "insert")];
    poll("the inserts counted and visible", async || {
        let s = samples(&get(addr, "/metrics").await.body);
        (value(&s, "opslive_changes_applied_total", &insert) == Some(100.0)
            && value(&s, "opslive_replica_rows", &orders) == Some(595.0))
        .then_some(())
    })
    .await;
    let s = samples(&get(addr, "/metrics").await.body);
    let changes = |table, op| value(&s, "opslive_changes_applied_total", &[("table", table), ("op", op)]);
    assert_eq!(changes("orders", "update"), Some(20.0));
    assert_eq!(changes("orders", "delete"), Some(5.0));
    assert_eq!(changes("tickets", "insert"), Some(2.0));
    assert_eq!(changes("tickets", "delete"), Some(0.0));
    assert_eq!(value(&s, "opslive_replica_rows", &orders), Some(595.0));
    assert_eq!(value(&s, "opslive_replica_rows", &[("table", "tickets")]), Some(2.0));
    assert_eq!(value(&s, "opslive_transactions_applied_total", &[]), Some(1.0));
    assert_eq!(value(&s, "opslive_apply_delay_seconds_count", &[("source", "shop")]), Some(1.0));
    assert_eq!(value(&s, "opslive_replica_anomalies_total", &[]), Some(0.0));
    let position = |w| value(&s, "opslive_source_position_bytes", &[("source", "shop"), ("watermark", w)]).unwrap();
    assert!(position("applied") > 0.0);
    assert!(position("received") >= position("applied"));
    // The server's position is polled each second: it reaches past the last commit, and the lag
    // it implies then drains to nothing once the idle stream is acknowledged.
    poll("the lag to drain", async || {
        let s = samples(&get(addr, "/metrics").await.body);
        let server = value(&s, "opslive_source_position_bytes", &[("watermark", "server")])?;
        let lag = value(&s, "opslive_replication_lag_bytes", &[("source", "shop")])?;
        (server >= position("applied") && lag == 0.0).then_some(())
    })
    .await;
    assert_eq!(metric(addr, "opslive_replication_lag_seconds", &[("source", "shop")]).await, Some(0.0));

    // The database goes away: not ready, and says why.
    pg.kill().await;
    let not_ready = poll("not ready", async || {
        let r = get(addr, "/readyz").await;
        (r.status == 503).then_some(r.body)
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&not_ready).unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["sources"][0]["connected"], false);
    assert_eq!(get(addr, "/healthz").await.status, 200, "alive while the source is away");
    assert_eq!(metric(addr, "opslive_source_connected", &[("source", "shop")]).await, Some(0.0));
    assert_eq!(metric(addr, "opslive_ready", &[]).await, Some(0.0));

    // It comes back: ready again, the slot resumed from the replica's position (no second
    // snapshot), with the failure counted.
    pg.restart().await;
    poll("ready again", async || (get(addr, "/readyz").await.status == 200).then_some(())).await;
    let s = samples(&get(addr, "/metrics").await.body);
    assert!(value(&s, "opslive_source_failures_total", &[("source", "shop")]).unwrap() >= 1.0);
    assert_eq!(value(&s, "opslive_snapshots_total", &orders), Some(1.0));
    assert!(value(&s, "opslive_source_resumes_total", &[("source", "shop")]).unwrap() >= 1.0);
    assert_eq!(value(&s, "opslive_source_full_snapshots_total", &[("source", "shop")]), Some(1.0));
    assert_eq!(value(&s, "opslive_replica_rows", &orders), Some(595.0));
    let ready: serde_json::Value = serde_json::from_str(&get(addr, "/readyz").await.body).unwrap();
    assert!(ready["sources"][0]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{ready}");
    assert!(!ready.to_string().contains(SECRET));

    serve.terminate().await;
}

#[tokio::test]
async fn a_taken_listen_address_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opslive.toml");
    // The address is checked before any database is contacted.
    std::fs::write(
        &config,
        format!(
            "listen = \"{addr}\"\n[sources.shop]\nkind = \"postgres\"\nurl = \"postgres://nobody@127.0.0.1:1/shop\"\n\
             [[sources.shop.tables]]\ntable = \"orders\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

//! `opslive serve` survives its database going away: it retries with backoff, takes a fresh
//! snapshot and streams again, and stops cleanly on SIGTERM.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::PgServer;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStderr;

/// Reads JSON log lines until one whose message contains `what`.
async fn wait_log(logs: &mut Lines<BufReader<ChildStderr>>, what: &str) -> serde_json::Value {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), logs.next_line())
            .await
            .unwrap_or_else(|_| panic!("no log line with {what:?} within 60 s"))
            .unwrap()
            .unwrap_or_else(|| panic!("serve exited before logging {what:?}"));
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if v["fields"]["message"].as_str().is_some_and(|m| m.contains(what)) {
            return v;
        }
    }
}

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
    let config = dir.path().join("opslive.toml");
    std::fs::write(
        &config,
        format!("[sources.shop]\nkind = \"postgres\"\nurl = \"{url}\"\n[[sources.shop.tables]]\ntable = \"orders\"\n"),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["serve", "--config", config.to_str().unwrap(), "--log-format", "json"])
        .env("OPSLIVE_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = wait_log(&mut logs, "replica consistent").await;

    pg.restart().await;
    let failed = wait_log(&mut logs, "source failed; retrying").await;
    assert!(failed["fields"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{failed}");
    let second = wait_log(&mut logs, "replica consistent").await;
    assert!(second["fields"]["position"].as_str() > first["fields"]["position"].as_str() || second != first);

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

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "serve exited with {status}");
}

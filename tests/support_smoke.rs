//! Smoke tests for `tests/support`: private PostgreSQL servers start in
//! parallel with the expected settings, and survive a crash and restart.

mod support;

use std::time::Instant;

use support::PgServer;

#[tokio::test]
async fn two_servers_start_in_parallel_with_logical_wal() {
    let started = Instant::now();
    let (a, b) = tokio::join!(PgServer::start(), PgServer::start());
    eprintln!("two servers started in {:?}", started.elapsed());

    assert_ne!(a.port(), b.port(), "servers must not share a port");
    for server in [&a, &b] {
        let client = server.connect("postgres").await;
        let row = client.query_one("SHOW wal_level", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "logical", "server on port {}", server.port());
        let row = client.query_one("SHOW port", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), server.port().to_string());
    }
}

#[tokio::test]
async fn table_survives_kill_and_restart() {
    let started = Instant::now();
    let server = PgServer::start().await;
    eprintln!("one server started in {:?}", started.elapsed());
    let port = server.port();
    let url = server.create_database("smoke").await;
    assert_eq!(url, format!("postgres://postgres@127.0.0.1:{port}/smoke"));

    let client = server.connect("smoke").await;
    // The servers run with synchronous_commit=off. Without this SET, a commit made
    // just before kill() may not have reached the WAL yet, and crash recovery
    // would roll it back.
    client
        .batch_execute(
            "SET synchronous_commit = on;
             CREATE TABLE survivor (id int PRIMARY KEY, note text);
             INSERT INTO survivor VALUES (1, 'before the crash');",
        )
        .await
        .unwrap();

    server.kill().await;
    assert!(client.query_one("SELECT 1", &[]).await.is_err(), "a killed server must not answer");

    server.restart().await;
    assert_eq!(server.port(), port, "restart keeps the port");
    let client = server.connect("smoke").await;
    let row = client.query_one("SELECT note FROM survivor WHERE id = 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "before the crash");
    let row = client.query_one("SHOW wal_level", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "logical", "settings survive the restart");
}

//! `opslive serve` with a MariaDB source beside a PostgreSQL one: both in one GraphQL schema
//! and one live query API with the same policy, and SIGKILL at random points under writes
//! resumes from the checkpoint's binlog position, losing and repeating nothing.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use opslive::change::{Key, Position};
use opslive::config::Config;
use opslive::value::Value;
use rand::Rng;
use serde_json::{Value as Json, json};
use support::PgServer;
use support::graphql::{SECRET, data, token};
use support::http::{get, metric};
use support::mariadb::{MariaDbServer, binlog_end};
use support::serve::Serve;
use support::ws::{TRANSPORT_WS, WsClient};

const TICKETS: &str = "CREATE TABLE tickets (id BIGINT AUTO_INCREMENT PRIMARY KEY, queue VARCHAR(20) NOT NULL,
    status ENUM('new','open','solved') NOT NULL DEFAULT 'new', subject VARCHAR(200) CHARACTER SET utf8mb4,
    opened_at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB";

const POLICY: &str = r#"
[roles.billing_lead]
[roles.billing_lead.tables.tickets]
columns = "*"
filter = { queue = { in = { claim = "queues" } } }
[roles.billing_lead.tables.items]
columns = "*"
"#;

/// Both servers, a `shop` database in PostgreSQL (opslive's own state beside it) and a
/// `helpdesk` one in MariaDB, and the configuration serving them.
struct Setup {
    pg: PgServer,
    maria: MariaDbServer,
    dir: tempfile::TempDir,
    config: PathBuf,
}

async fn setup(tickets: u64) -> Setup {
    let (pg, maria) = tokio::join!(PgServer::start(), MariaDbServer::start());
    let shop = pg.create_database("shop").await;
    pg.connect("shop")
        .await
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'pen'), (2, 'ink')",
        )
        .await
        .unwrap();
    let helpdesk = maria.create_database("helpdesk").await;
    let mut conn = maria.connect("helpdesk").await;
    conn.query_drop(TICKETS).await.unwrap();
    conn.query_drop(format!(
        "INSERT INTO tickets (id, queue, subject) SELECT seq, ELT(1 + seq % 3, 'billing', 'shipping', 'returns'), \
         CONCAT('Ticket ', seq) FROM seq_1_to_{tickets}"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let config = dir.path().join("opslive.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\npolicy = {policy:?}\n[checkpoint]\ninterval_seconds = 0.5\n\
             [auth]\nhs256_secret = \"{SECRET}\"\n\
             [sources.shop]\nkind = \"postgres\"\nurl = \"{shop}\"\nheartbeat_seconds = 1\n\
             [[sources.shop.tables]]\ntable = \"items\"\n\
             [sources.helpdesk]\nkind = \"mariadb\"\nurl = \"{helpdesk}\"\nheartbeat_seconds = 0.2\n\
             [[sources.helpdesk.tables]]\ntable = \"tickets\"\nindexes = [\"queue\"]\n",
            data = dir.path().join("data").display().to_string(),
            policy = policy.display().to_string(),
        ),
    )
    .unwrap();
    Setup { pg, maria, dir, config }
}

async fn caught_up(addr: std::net::SocketAddr, target: Position) {
    support::http::applied_up_to(addr, "helpdesk", target).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_from_mariadb_and_items_from_postgresql_answer_and_update_live_within_the_role() {
    let s = setup(30).await;
    let mut serve = Serve::start(&s.config);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    let billing = token("billing_lead", json!({"queues": ["billing"]}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while get(addr, "/readyz").await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One request reads both databases; the role sees only its queue.
    let both = data(
        addr,
        &billing,
        "{ items(orderBy: {id: ASC}) { name } tickets(orderBy: {id: ASC}) { id queue } }",
        json!({}),
    )
    .await;
    assert_eq!(both["items"], json!([{"name": "pen"}, {"name": "ink"}]));
    let tickets = both["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 10);
    assert!(tickets.iter().all(|t| t["queue"] == "billing"), "{both}");

    let mut ws = WsClient::connect(addr, TRANSPORT_WS, &billing).await;
    let doc = "subscription { ticketsPatches(orderBy: {id: ASC}) { seq reset { id status subject } patch { upserts { row { id status subject } } removedKeys { id } } } }";
    ws.subscribe("t", doc, json!({})).await;
    let first = ws.next("t").await;
    assert_eq!(first["data"]["ticketsPatches"]["reset"].as_array().unwrap().len(), 10);

    // A commit in MariaDB moves the live query; a ticket of another queue is never sent.
    let mut conn = s.maria.connect("helpdesk").await;
    conn.query_drop("INSERT INTO tickets (id, queue, subject) VALUES (1000, 'shipping', 'hidden')").await.unwrap();
    conn.query_drop("START TRANSACTION; UPDATE tickets SET status = 'open' WHERE id = 3; INSERT INTO tickets (id, queue, subject) VALUES (1001, 'billing', 'Rechnung fehlt ✉'); COMMIT").await.unwrap();
    let update = ws.next("t").await;
    let upserts = &update["data"]["ticketsPatches"]["patch"]["upserts"];
    assert_eq!(
        *upserts,
        json!([{"row": {"id": "3", "status": "open", "subject": "Ticket 3"}}, {"row": {"id": "1001", "status": "new", "subject": "Rechnung fehlt ✉"}}]),
        "one frame for the one transaction: {update}"
    );
    assert!(!update.to_string().contains("hidden") && !first.to_string().contains("1000"));
    // Moving out of the role's queue leaves the result by key.
    conn.query_drop("UPDATE tickets SET queue = 'returns' WHERE id = 3").await.unwrap();
    let update = ws.next("t").await;
    assert_eq!(update["data"]["ticketsPatches"]["patch"]["removedKeys"], json!([{"id": "3"}]), "{update}");

    // A zero date has no calendar meaning: NULL, and counted where operators look.
    conn.query_drop("SET sql_mode = ''; ALTER TABLE tickets ADD COLUMN due DATE NULL; UPDATE tickets SET due = '0000-00-00' WHERE id = 1001").await.unwrap();
    // The ALTER copies the table again (NOT_READY meanwhile) with a new column: the
    // subscription ends with SCHEMA_CHANGED, and a new one gets the fresh copy, as for
    // PostgreSQL.
    let not_ready = ws.next("t").await;
    assert_eq!(not_ready["errors"][0]["extensions"]["code"], "NOT_READY", "{not_ready}");
    let ended = ws.message().await.unwrap();
    assert_eq!(ended["payload"][0]["extensions"]["code"], "SCHEMA_CHANGED", "{ended}");
    ws.subscribe("again", doc, json!({})).await;
    let reset = ws.next("again").await;
    assert!(reset["data"]["ticketsPatches"]["reset"].to_string().contains("1001"), "{reset}");
    let target = binlog_end(&mut conn).await;
    caught_up(addr, target).await;
    // Read once from the copy or the binlog, or from both when the copy saw the update.
    let nulled = metric(addr, "opslive_source_values_read_as_null_total", &[]).await.unwrap();
    assert!((1.0..=2.0).contains(&nulled), "{nulled}");
    // The source is visible to operators as MariaDB, with its binlog position.
    let tables: Json = serde_json::from_str(&get(addr, "/tables").await.body).unwrap();
    assert!(tables.to_string().contains("helpdesk"), "{tables}");
    let target = binlog_end(&mut conn).await;
    caught_up(addr, target).await;
    serve.terminate().await;
    let _ = (&s.pg, &s.dir);
}

/// Random transactions on `tickets` until `stop`; each one holds the read side of `pause`.
fn writer(url: String, stop: Arc<AtomicBool>, pause: Arc<tokio::sync::RwLock<()>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
        while !stop.load(Ordering::Relaxed) {
            let statements: Vec<String> = {
                let mut rng = rand::rng();
                (0..rng.random_range(1..5))
                    .map(|_| {
                        let id = rng.random_range(1..3000);
                        match rng.random_range(0..4) {
                            0 => "INSERT INTO tickets (queue, subject) VALUES ('billing', 'new one')".to_string(),
                            1 => format!("DELETE FROM tickets WHERE id = {id}"),
                            _ => format!(
                                "UPDATE tickets SET status = 'open', subject = CONCAT(subject, '.') WHERE id = {id}"
                            ),
                        }
                    })
                    .collect()
            };
            let _held = pause.read().await;
            let sql = format!("START TRANSACTION; {}; COMMIT", statements.join("; "));
            if conn.query_drop(sql).await.is_err() {
                let _ = conn.query_drop("ROLLBACK").await;
            }
        }
    })
}

/// Stops the server cleanly and compares its final checkpoint with the source table.
async fn stop_and_compare(serve: Serve, config: &Path, conn: &mut mysql_async::Conn) -> Position {
    serve.terminate().await;
    let config = Config::load(Some(config)).unwrap();
    let registry = config.registry().unwrap();
    let loaded = opslive::checkpoint::load(&config.data_dir, &registry).unwrap();
    let id = registry.by_name("tickets").unwrap().id;
    let table = loaded.replica.table(id).unwrap();
    let rows: Vec<(i64, String, String, String)> =
        conn.query("SELECT id, queue, CAST(status AS CHAR), subject FROM tickets ORDER BY id").await.unwrap();
    let got: Vec<(i64, String, String, String)> = table
        .rows()
        .map(|(k, r)| {
            let Value::Int8(id) = k.0[0] else { panic!("key {k:?}") };
            let text = |v: &Value| match v {
                Value::Text(t) => t.to_string(),
                other => panic!("{other:?}"),
            };
            (id, text(&r[1]), text(&r[2]), text(&r[3]))
        })
        .collect();
    assert_eq!(got.len(), rows.len(), "row count");
    assert_eq!(got, rows);
    assert!(table.get(&Key(vec![Value::Int8(rows[0].0)].into())).is_some());
    loaded.sources["helpdesk"].position
}

/// SIGKILL at random moments (mid-snapshot, mid-stream, mid-checkpoint) under writes: each
/// restart resumes from the checkpoint's binlog position without a snapshot, re-applies no
/// transaction (the skipped counter stays 0: the stream starts right after the checkpoint's
/// position) and, caught up, equals the source. `MARIADB_KILL_ROUNDS` sets the rounds (10 in
/// CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_resumes_the_binlog_losing_and_repeating_nothing() {
    let rounds: usize = std::env::var("MARIADB_KILL_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
    let s = setup(3000).await;
    let url = s.maria.url("helpdesk");
    let mut conn = s.maria.connect("helpdesk").await;
    let stop = Arc::new(AtomicBool::new(false));
    let pause = Arc::new(tokio::sync::RwLock::new(()));
    let writers: Vec<_> = (0..2).map(|_| writer(url.clone(), stop.clone(), pause.clone())).collect();
    let checkpoint = s.dir.path().join("data").join(opslive::checkpoint::FILE_NAME);
    let mut resumed = 0;
    for round in 0..rounds {
        let had_checkpoint = checkpoint.exists();
        let mut serve = Serve::start(&s.config);
        let addr = serve.wait_listening().await;
        let delay = if round < 2 { rand::rng().random_range(20..300) } else { rand::rng().random_range(200..1500) };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        serve.child.kill().await.unwrap();

        let mut serve = Serve::start(&s.config);
        let addr2 = serve.wait_listening().await;
        let paused = pause.write().await;
        let target = binlog_end(&mut conn).await;
        // The restored checkpoint may already hold everything written: wait for the session
        // itself (a resume or a snapshot) before reading what it did.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let started = metric(addr2, "opslive_source_resumes_total", &[("source", "helpdesk")]).await.unwrap_or(0.0)
                + metric(addr2, "opslive_source_full_snapshots_total", &[("source", "helpdesk")]).await.unwrap_or(0.0);
            if started >= 1.0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "round {round}: the source never started a session");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        caught_up(addr2, target).await;
        let snapshots = metric(addr2, "opslive_source_full_snapshots_total", &[("source", "helpdesk")]).await;
        if had_checkpoint {
            assert_eq!(snapshots, Some(0.0), "round {round}: a restart with a checkpoint copied the table again");
            assert_eq!(metric(addr2, "opslive_source_resumes_total", &[("source", "helpdesk")]).await, Some(1.0));
            resumed += 1;
        }
        assert_eq!(
            metric(addr2, "opslive_transactions_skipped_total", &[]).await,
            Some(0.0),
            "round {round}: re-applied"
        );
        assert_eq!(metric(addr2, "opslive_replica_anomalies_total", &[]).await, Some(0.0), "round {round}");
        let position = stop_and_compare(serve, &s.config, &mut conn).await;
        assert!(position >= target, "round {round}: checkpoint at {position}, writes up to {target}");
        drop(paused);
        let _ = addr;
    }
    assert!(resumed + 2 >= rounds, "only {resumed} of {rounds} rounds resumed");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
}

/// The MariaDB server crashes (SIGKILL) and comes back under a running server while writes go
/// on: the stream reconnects at its position, follows the server onto its new binlog file,
/// and loses and repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mariadb_server_crashing_under_a_running_server_loses_nothing() {
    let s = setup(500).await;
    let url = s.maria.url("helpdesk");
    let mut serve = Serve::start(&s.config);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    for round in 0..2 {
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(tokio::sync::RwLock::new(()));
        let w = writer(url.clone(), stop.clone(), pause.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.maria.kill().await;
        stop.store(true, Ordering::Relaxed);
        let _ = w.await;
        s.maria.restart().await;
        let stop = Arc::new(AtomicBool::new(false));
        let w = writer(url.clone(), stop.clone(), pause.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        w.await.unwrap();
        let mut conn = s.maria.connect("helpdesk").await;
        let target = binlog_end(&mut conn).await;
        assert_eq!(target.0 >> 32, round + 2, "the restart began a new binlog file");
        caught_up(addr, target).await;
    }
    assert_eq!(metric(addr, "opslive_replica_anomalies_total", &[]).await, Some(0.0));
    assert!(metric(addr, "opslive_source_failures_total", &[("source", "helpdesk")]).await.unwrap_or(0.0) >= 2.0);
    let mut conn = s.maria.connect("helpdesk").await;
    stop_and_compare(serve, &s.config, &mut conn).await;
}

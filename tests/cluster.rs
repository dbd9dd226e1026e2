//! Several `opslive serve` instances through a real Redis: one leads (reads the source and
//! publishes to the bus), the others start from its replica and apply the bus; when the leader
//! is killed another takes the lease and carries on from where the bus ended. Every replica
//! ends equal to the source table, with no change applied twice.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opslive::change::Position;
use opslive::config::Config;
use rand::Rng;
use support::PgServer;
use support::http::metric;
use support::pipeline::{assert_same, source_rows};
use support::redis::RedisServer;
use support::serve::{Serve, write_config};
use tokio::sync::RwLock;

const SECRET: &str = "a-cluster-secret-of-at-least-32-bytes";

/// A config for instance `name` in its own directory, all in one cluster on `redis`.
fn config(dir: &Path, url: &str, redis: &str, name: &str) -> PathBuf {
    let path = write_config(dir, url, &["items"]);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[cluster]\nredis_url = \"{redis}\"\nsecret = \"{SECRET}\"\ninstance = \"{name}\"\nlease_ms = 1000\n"
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// A private Redis and PostgreSQL with `items` (rows 0 to `rows`; none for -1), and the
/// configurations of instances `a` and `b` of one cluster, each in its own directory.
struct Cluster {
    redis: RedisServer,
    pg: PgServer,
    url: String,
    sql: tokio_postgres::Client,
    dirs: [tempfile::TempDir; 2],
    configs: [PathBuf; 2],
}

impl Cluster {
    async fn new(rows: i64, write: fn(&Path, &str, &str, &str) -> PathBuf) -> Cluster {
        let redis = RedisServer::start();
        let pg = PgServer::start_with(&[("synchronous_commit", "on")]).await;
        let url = pg.create_database("shop").await;
        let sql = pg.connect("shop").await;
        sql.batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, v text);
             INSERT INTO items SELECT g, 0, 'row ' || g FROM generate_series(0, {rows}) g;"
        ))
        .await
        .unwrap();
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let configs = [write(dirs[0].path(), &url, &redis.url(), "a"), write(dirs[1].path(), &url, &redis.url(), "b")];
        Cluster { redis, pg, url, sql, dirs, configs }
    }
}

/// Random transactions on `items` until aborted; each holds the read side of `pause`.
fn writer(url: String, pause: Arc<RwLock<()>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let mut next_id: i64 = 1_000_000;
        loop {
            let sql = {
                let mut rng = rand::rng();
                let mut stmts = vec!["UPDATE items SET n = n + 1 WHERE id = 0".to_string()];
                for _ in 0..rng.random_range(1..5) {
                    let id = rng.random_range(1..5_000);
                    stmts.push(match rng.random_range(0..3) {
                        0 => {
                            next_id += 1;
                            format!("INSERT INTO items VALUES ({next_id}, 0, 'new {next_id}')")
                        }
                        1 => format!("DELETE FROM items WHERE id = {id}"),
                        _ => format!("UPDATE items SET n = n + 1, v = 'u{}' WHERE id = {id}", rng.random::<u32>()),
                    });
                }
                format!("BEGIN; {}; COMMIT;", stmts.join("; "))
            };
            let _held = pause.read().await;
            if client.batch_execute(&sql).await.is_err() {
                return;
            }
        }
    })
}

async fn current_lsn(sql: &tokio_postgres::Client) -> Position {
    let lsn: String = sql.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap().get(0);
    Position::parse(&lsn).unwrap()
}

/// Stops an instance cleanly and compares the replica its final checkpoint holds with the
/// source table.
async fn stop_and_compare(serve: Serve, config: &Path, sql: &tokio_postgres::Client, who: &str) {
    serve.terminate().await;
    let config = Config::load(Some(config)).unwrap();
    let registry = config.registry().unwrap();
    let loaded = opslive::checkpoint::load(&config.data_dir, &registry).unwrap();
    let id = registry.by_name("items").unwrap().id;
    let expected = source_rows(sql, &loaded.replica, id).await;
    assert!(expected.len() > 4_000, "{who}: {} rows", expected.len());
    assert_same(&loaded.replica, id, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_apply_the_leaders_events_and_one_takes_over_when_the_leader_is_killed() {
    let Cluster { redis: _redis, pg: _pg, url, sql, dirs: _dirs, configs: [config_a, config_b] } =
        Cluster::new(5000, config).await;

    // A starts first and leads: it copies the table and streams.
    let mut a = Serve::start(&config_a);
    a.wait_log("this instance leads the cluster", |_| {}).await;
    a.wait_log("replica consistent; streaming", |_| {}).await;
    let pause = Arc::new(RwLock::new(()));
    let writes = writer(url.clone(), pause.clone());

    // B starts while A writes: it follows, from A's replica and the bus.
    let mut b = Serve::start(&config_b);
    b.wait_log("following the cluster's leader", |line| {
        assert!(!line.contains("this instance leads the cluster"), "B took the lead from a live A: {line}");
    })
    .await;
    let addr_b = b.wait_listening().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    {
        let _paused = pause.write().await;
        let target = current_lsn(&sql).await;
        support::http::applied_up_to(addr_b, "shop", target).await;
        assert_eq!(metric(addr_b, "opslive_cluster_leader", &[]).await, Some(0.0));
        assert!(metric(addr_b, "opslive_bus_read_total", &[]).await.unwrap() > 0.0);
        assert_eq!(metric(addr_b, "opslive_replica_anomalies_total", &[]).await, Some(0.0));
        let ready = support::http::get(addr_b, "/readyz").await;
        assert_eq!(ready.status, 200, "a follower that keeps up is ready: {}", ready.body);
    }

    // A dies mid-stream. B takes the lease, reads what is left on the bus, and reads the
    // source from there.
    a.child.kill().await.unwrap();
    let took = tokio::time::Instant::now();
    b.wait_log("this instance leads the cluster", |_| {}).await;
    let failover = took.elapsed();
    assert!(failover < Duration::from_secs(10), "failover took {failover:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // A comes back: it follows B now.
    let mut a = Serve::start(&config_a);
    a.wait_log("following the cluster's leader", |line| {
        assert!(!line.contains("this instance leads the cluster"), "A took the lead from a live B: {line}");
    })
    .await;
    let addr_a = a.wait_listening().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    writes.abort();
    let _ = writes.await;
    let target = current_lsn(&sql).await;
    for (who, addr) in [("b, the new leader", addr_b), ("a, now a follower", addr_a)] {
        support::http::applied_up_to(addr, "shop", target).await;
        assert_eq!(metric(addr, "opslive_replica_anomalies_total", &[]).await, Some(0.0), "{who}");
    }
    assert_eq!(metric(addr_b, "opslive_cluster_leader", &[]).await, Some(1.0));
    assert_eq!(metric(addr_b, "opslive_cluster_epoch", &[]).await, Some(2.0));
    assert!(metric(addr_b, "opslive_bus_published_total", &[]).await.unwrap() > 0.0);
    stop_and_compare(a, &config_a, &sql, "a").await;
    stop_and_compare(b, &config_b, &sql, "b").await;
}

fn cluster_config(redis: &str, instance: &str, lease_ms: u64) -> opslive::cluster::ClusterConfig {
    opslive::cluster::ClusterConfig {
        redis_url: redis.into(),
        name: "fencing".into(),
        instance: Some(instance.into()),
        advertise_url: Some(format!("http://{instance}.invalid")),
        secret: opslive::auth::Secret::new(SECRET),
        lease_ms,
        stream_max_len: 1000,
    }
}

/// Publishes `events` (progress events of `shop` at the given positions) as the leader of
/// `epoch`, continuing the stream from `streams`: what the publisher ended with.
async fn publish(
    cluster: &opslive::cluster::Cluster,
    epoch: u64,
    positions: &[u64],
) -> Result<(), opslive::cluster::bus::BusError> {
    use opslive::change::SourceEvent;
    use opslive::cluster::bus::{Activation, Publisher, Tapped, stream_marks};
    let streams = stream_marks(&cluster.redis, &cluster.keys, ["shop".into()].into_iter()).await.unwrap();
    let (_, bootstraps) = tokio::sync::mpsc::channel(1);
    let publisher = Publisher {
        redis: cluster.redis.clone(),
        keys: cluster.keys.clone(),
        max_len: 1000,
        marks: Default::default(),
        activation: tokio::sync::watch::channel(Some(Activation { after_events: 0, epoch, streams })).1,
        bootstraps,
        wanted: Default::default(),
        stats: Default::default(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for &p in positions {
        let event = SourceEvent::Progress { source: "shop".into(), position: Position(p) };
        tx.send(Tapped::Event { event, source: Some("shop".into()), skipped: false }).await.unwrap();
    }
    drop(tx);
    publisher.run(rx).await
}

/// What a follower reads from the start of `shop`'s stream: the positions, or its error.
async fn read_all(cluster: &opslive::cluster::Cluster) -> Result<Vec<u64>, opslive::cluster::bus::BusError> {
    use opslive::change::SourceEvent;
    let registry = Arc::new(opslive::registry::Registry::default());
    let reader = opslive::cluster::bus::Reader {
        client: cluster.client.clone(),
        key: cluster.keys.stream("shop"),
        registry,
        from: Default::default(),
        stats: Default::default(),
        source: Default::default(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    // Draining from the start: it reads what the stream holds and stops.
    let (_drain, draining) = tokio::sync::watch::channel(true);
    let result = reader.run(tx, draining, Default::default()).await;
    let mut positions = Vec::new();
    while let Ok(SourceEvent::Progress { position, .. }) = rx.try_recv() {
        positions.push(position.0);
    }
    result.map(|_| positions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_was_taken_is_fenced_and_a_gap_in_the_bus_is_refused() {
    let redis = RedisServer::start();
    let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let a = opslive::cluster::Cluster::connect(cluster_config(&redis.url(), "a", 60_000), addr).await.unwrap();
    let b = opslive::cluster::Cluster::connect(cluster_config(&redis.url(), "b", 60_000), addr).await.unwrap();
    let lead_a = a.lease.try_acquire().await.unwrap().expect("a takes the free lease");
    assert_eq!(lead_a.epoch, 1);
    assert_eq!(b.lease.try_acquire().await.unwrap(), None, "one leader at a time");
    assert_eq!(b.lease.holder().await.unwrap(), Some(lead_a.clone()));
    publish(&a, lead_a.epoch, &[10, 20]).await.unwrap();

    // A stalls past its lease (its key lapses: removed here instead of waited for); B takes it.
    let mut con = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL").arg(&a.keys.leader).query_async(&mut con).await.unwrap();
    let lead_b = b.lease.try_acquire().await.unwrap().expect("b takes the lapsed lease");
    assert_eq!(lead_b.epoch, 2, "every lead has a new epoch");

    // A wakes up believing it leads: its renewal fails and its writes are refused inside Redis.
    assert!(!a.lease.renew(&lead_a).await.unwrap());
    let fenced = publish(&a, lead_a.epoch, &[30]).await;
    assert!(matches!(fenced, Err(opslive::cluster::bus::BusError::Fenced(1))), "{fenced:?}");
    publish(&b, lead_b.epoch, &[25, 30]).await.unwrap();
    assert!(b.lease.renew(&lead_b).await.unwrap());
    assert_eq!(read_all(&b).await.unwrap(), vec![10, 20, 25, 30], "the stale leader's entry never landed");

    // An entry missing from the stream (Redis lost it, or it was trimmed away under a reader).
    let stream = a.keys.stream("shop");
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("epoch")
        .arg(2)
        .arg("seq")
        .arg(6)
        .arg("position")
        .arg("")
        .arg("event")
        .arg(b"x".as_slice())
        .query_async(&mut con)
        .await
        .unwrap();
    let gap = read_all(&b).await;
    assert!(matches!(gap, Err(opslive::cluster::bus::BusError::Gap { expected: 5, found: 6, .. })), "{gap:?}");
}

/// The leader is paused (SIGSTOP), not killed: its replication session keeps the slot and its
/// process keeps believing it leads. A follower takes the lapsed lease, ends the old session
/// on the slot and streams; when the old leader wakes, its renewal fails and it stops instead
/// of publishing — and the new leader's replica equals the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_stops_when_it_wakes() {
    let Cluster { redis: _redis, pg: _pg, url, sql, dirs: _dirs, configs: [config_a, config_b] } =
        Cluster::new(5000, config).await;
    let mut a = Serve::start(&config_a);
    a.wait_log("replica consistent; streaming", |_| {}).await;
    let pause = Arc::new(RwLock::new(()));
    let writes = writer(url.clone(), pause.clone());
    let mut b = Serve::start(&config_b);
    b.wait_log("following the cluster's leader", |_| {}).await;
    let addr_b = b.wait_listening().await;

    let pid_a = a.child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-STOP", &pid_a]).status().unwrap();
    b.wait_log("ending the session of the previous leader on the slot", |_| {}).await;
    b.wait_log("streaming changes", |_| {}).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    std::process::Command::new("kill").args(["-CONT", &pid_a]).status().unwrap();
    let said = a.wait_text("lost the lead of the cluster").await;
    assert!(said.starts_with("error:"), "{said}");
    let status = tokio::time::timeout(Duration::from_secs(30), a.child.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "the stale leader stops with an error, for its supervisor to start it again");

    writes.abort();
    let _ = writes.await;
    let target = current_lsn(&sql).await;
    support::http::applied_up_to(addr_b, "shop", target).await;
    assert_eq!(metric(addr_b, "opslive_replica_anomalies_total", &[]).await, Some(0.0));
    assert_eq!(metric(addr_b, "opslive_cluster_epoch", &[]).await, Some(2.0));
    stop_and_compare(b, &config_b, &sql, "b").await;
}

const CHANGES: &str =
    "subscription($after: String) { itemsChanges(after: $after) { cursor events { kind key { id } } } }";

/// A config like [`config`] whose GraphQL API an `admin` token may read.
fn config_with_api(dir: &Path, url: &str, redis: &str, name: &str) -> PathBuf {
    let path = config(dir, url, redis, name);
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[roles.admin]\nall_tables = true\n").unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let text =
        format!("policy = \"{}\"\n{text}[auth]\nhs256_secret = \"{}\"\n", policy.display(), support::graphql::SECRET);
    std::fs::write(&path, text).unwrap();
    path
}

/// Inserts rows 1,000,000, 1,000,001, … one transaction each until aborted.
fn inserter(url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        for id in 1_000_000i64.. {
            if client.execute("INSERT INTO items (id, v) VALUES ($1, 'new')", &[&id]).await.is_err() {
                return;
            }
        }
    })
}

/// Reads a change stream's messages until `last` was inserted: the inserted ids in order,
/// and the cursor of the last message read. Returns early, with what it got, if the
/// connection closes.
async fn inserted_until(client: &mut support::ws::WsClient, last: Option<i64>, ids: &mut Vec<i64>) -> Option<String> {
    let mut cursor = None;
    loop {
        let message = match client.message().await {
            Ok(m) => m,
            Err(_) => return cursor,
        };
        assert_eq!(message["type"], "next", "{message}");
        let changes = &message["payload"]["data"]["itemsChanges"];
        cursor = changes["cursor"].as_str().map(str::to_string);
        for event in changes["events"].as_array().unwrap() {
            assert_eq!(event["kind"], "ENTER", "{event}");
            ids.push(event["key"]["id"].as_str().unwrap().parse().unwrap());
        }
        if last.is_some_and(|l| ids.last() == Some(&l)) {
            return cursor;
        }
    }
}

/// Every id once, consecutive: nothing missed, nothing twice.
fn assert_consecutive(ids: &[i64], who: &str) {
    assert!(ids.len() > 10, "{who}: only {} inserts", ids.len());
    for pair in ids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "{who}: after {} came {}", pair[0], pair[1]);
    }
}

/// Change streams across a failover: a client of the follower sees every insert once across
/// it; a client of the killed leader reconnects to the new leader with its last cursor and
/// goes on from exactly there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_stream_clients_see_no_gap_across_a_failover_and_move_with_their_cursor() {
    use support::ws::{TRANSPORT_WS, WsClient};
    let Cluster { redis: _redis, pg: _pg, url, sql, dirs: _dirs, configs: [config_a, config_b] } =
        Cluster::new(-1, config_with_api).await;
    let mut a = Serve::start(&config_a);
    let (_, addr_a) = a.wait_start_log("replica consistent; streaming").await;
    let mut b = Serve::start(&config_b);
    b.wait_log("following the cluster's leader", |_| {}).await;
    let addr_b = b.wait_listening().await;

    let admin = support::graphql::token("admin", serde_json::json!({}));
    let mut on_a = WsClient::connect(addr_a, TRANSPORT_WS, &admin).await;
    let mut on_b = WsClient::connect(addr_b, TRANSPORT_WS, &admin).await;
    on_a.subscribe("x", CHANGES, serde_json::json!({})).await;
    on_b.subscribe("y", CHANGES, serde_json::json!({})).await;
    // Each stream first says where it starts.
    for client in [&mut on_a, &mut on_b] {
        let first = client.message().await.unwrap();
        assert!(first["payload"]["data"]["itemsChanges"]["events"].as_array().unwrap().is_empty(), "{first}");
    }
    let writes = inserter(url.clone());
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    // A while of inserts, then the leader dies under both clients.
    let mut cursor_a = None;
    while seen_a.len() < 50 {
        let changes = on_a.next("x").await["data"]["itemsChanges"].clone();
        cursor_a = changes["cursor"].as_str().map(str::to_string);
        for event in changes["events"].as_array().unwrap() {
            seen_a.push(event["key"]["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
    }
    a.child.kill().await.unwrap();
    // What A's client got before its connection went.
    if let Some(c) = inserted_until(&mut on_a, None, &mut seen_a).await {
        cursor_a = Some(c);
    }
    let cursor_a = cursor_a.expect("A's client had a cursor");
    b.wait_log("this instance leads the cluster", |_| {}).await;

    // A's client comes back on B with its cursor.
    let mut moved = WsClient::connect(addr_b, TRANSPORT_WS, &admin).await;
    moved.subscribe("x", CHANGES, serde_json::json!({ "after": cursor_a })).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    writes.abort();
    let _ = writes.await;
    let last: i64 = sql.query_one("SELECT max(id) FROM items", &[]).await.unwrap().get(0);
    inserted_until(&mut moved, Some(last), &mut seen_a).await.expect("A's client reaches the last insert on B");
    inserted_until(&mut on_b, Some(last), &mut seen_b).await.expect("B's client reaches the last insert");
    assert_consecutive(&seen_a, "the client that moved from A to B");
    assert_consecutive(&seen_b, "the client of B");
    assert_eq!(*seen_b.first().unwrap(), 1_000_000, "B's client saw every insert");
    assert_eq!(*seen_a.first().unwrap(), 1_000_000, "A's client saw every insert");
    b.terminate().await;
}

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

/// Writes running in a task; each transaction holds the read side of `pause`, so taking its
/// write side waits for the one in flight.
struct Writes {
    task: tokio::task::JoinHandle<()>,
    pause: Arc<RwLock<()>>,
}

impl Writes {
    /// Stops them between two transactions: none is left in flight to commit after the caller
    /// reads where the source is (aborting the task alone would leave its last statement
    /// running on the server).
    async fn stop(self) {
        let _paused = self.pause.write().await;
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Random transactions on `items` until stopped.
fn writer(url: String) -> Writes {
    let pause = Arc::new(RwLock::new(()));
    let held = pause.clone();
    let task = tokio::spawn(async move {
        let pause = held;
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
    });
    Writes { task, pause }
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
    let writes = writer(url.clone());

    // B starts while A writes: it follows, from A's replica and the bus.
    let mut b = Serve::start(&config_b);
    b.wait_log("following the cluster's leader", |line| {
        assert!(!line.contains("this instance leads the cluster"), "B took the lead from a live A: {line}");
    })
    .await;
    let addr_b = b.wait_listening().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    {
        let _paused = writes.pause.write().await;
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
    writes.stop().await;
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
        wait_replicas: 0,
        wait_timeout_ms: 1000,
    }
}

/// A publisher leading under `epoch`, continuing `shop`'s stream from its last entry.
async fn publisher(
    cluster: &opslive::cluster::Cluster,
    epoch: u64,
    marks: opslive::watermark::DurableMarks,
    stop: tokio_util::sync::CancellationToken,
) -> opslive::cluster::bus::Publisher {
    use opslive::cluster::bus::{Activation, Publisher, stream_marks};
    let streams = stream_marks(&cluster.redis, &cluster.keys, ["shop".into()].into_iter()).await.unwrap();
    let (_, bootstraps) = tokio::sync::mpsc::channel(1);
    Publisher {
        redis: cluster.redis.clone(),
        keys: cluster.keys.clone(),
        max_len: 1000,
        marks,
        activation: tokio::sync::watch::channel(Some(Activation { after_events: 0, epoch, streams })).1,
        bootstraps,
        wanted: Default::default(),
        stats: Default::default(),
        stop,
        lost: Default::default(),
        replicas: None,
    }
}

/// A progress event of `shop` at `position`, as the apply loop hands it to the bus.
fn tapped(position: u64) -> opslive::cluster::bus::Tapped {
    let event = opslive::change::SourceEvent::Progress { source: "shop".into(), position: Position(position) };
    opslive::cluster::bus::Tapped::Event { event, source: Some("shop".into()), skipped: false }
}

/// Publishes progress events of `shop` at `positions` as the leader of `epoch`, continuing the
/// stream: what the publisher ended with.
async fn publish(
    cluster: &opslive::cluster::Cluster,
    epoch: u64,
    positions: &[u64],
) -> Result<(), opslive::cluster::bus::BusError> {
    let publisher = publisher(cluster, epoch, Default::default(), Default::default()).await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for &p in positions {
        tx.send(tapped(p)).await.unwrap();
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

/// At a stop the apply loop still applies what the sources sent before they stopped, and hands
/// each event to the bus: the publisher publishes all of it (the positions become durable, so
/// the final checkpoint may cover them) and ends only when the apply loop has. A Redis gone at
/// the stop is waited for only [`SHUTDOWN_GRACE`], and nothing it did not take counts as durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_publishes_what_it_is_still_handed_and_gives_up_on_a_redis_that_is_gone() {
    use opslive::cluster::bus::SHUTDOWN_GRACE;
    let mut redis = RedisServer::start();
    let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let a = opslive::cluster::Cluster::connect(cluster_config(&redis.url(), "a", 60_000), addr).await.unwrap();
    let lead = a.lease.try_acquire().await.unwrap().expect("a takes the free lease");
    let shop = Arc::new(opslive::watermark::Watermarks::default());
    let watermarks = std::collections::HashMap::from([(opslive::change::SourceName::from("shop"), shop.clone())]);
    let marks = opslive::watermark::DurableMarks::register("bus", &watermarks);
    let stopped = tokio_util::sync::CancellationToken::new();
    stopped.cancel();

    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let run = tokio::spawn(publisher(&a, lead.epoch, marks.clone(), stopped.clone()).await.run(rx));
    for p in [10, 20, 30] {
        marks.handed("shop", Position(p));
        tx.send(tapped(p)).await.expect("the publisher still takes events after the stop");
    }
    drop(tx);
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("it ends with the apply loop").unwrap().unwrap();
    assert!(shop.consumers_durable_through(Position(30)), "{:?}", shop.consumers()[0].values());
    assert_eq!(read_all(&a).await.unwrap(), vec![10, 20, 30]);

    let next = publisher(&a, lead.epoch, marks.clone(), stopped.clone()).await;
    redis.kill();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let run = tokio::spawn(next.run(rx));
    marks.handed("shop", Position(40));
    tx.send(tapped(40)).await.unwrap();
    // The apply loop goes on (its sender is kept): the publisher ends on its own.
    let ended = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(10), run).await;
    ended.expect("it gives up on Redis after the grace").unwrap().unwrap();
    assert!(!shop.consumers_durable_through(Position(40)), "what Redis never took is not durable");
    drop(tx);
}

/// A leads and streams under writes; B follows it: (A, B, B's address, the writes).
async fn leader_under_writes_and_follower(
    url: &str,
    config_a: &Path,
    config_b: &Path,
) -> (Serve, Serve, std::net::SocketAddr, Writes) {
    let mut a = Serve::start(config_a);
    a.wait_log("replica consistent; streaming", |_| {}).await;
    let writes = writer(url.to_string());
    let mut b = Serve::start(config_b);
    b.wait_log("following the cluster's leader", |_| {}).await;
    let addr_b = b.wait_listening().await;
    (a, b, addr_b, writes)
}

/// Once the writes stop, B (leading at epoch 2) has applied everything without an anomaly, and
/// stopped, its final checkpoint equals the source.
async fn the_new_leader_ends_exact(
    writes: Writes,
    b: Serve,
    addr_b: std::net::SocketAddr,
    config_b: &Path,
    sql: &tokio_postgres::Client,
) {
    writes.stop().await;
    let target = current_lsn(sql).await;
    support::http::applied_up_to(addr_b, "shop", target).await;
    assert_eq!(metric(addr_b, "opslive_replica_anomalies_total", &[]).await, Some(0.0));
    assert_eq!(metric(addr_b, "opslive_cluster_epoch", &[]).await, Some(2.0));
    stop_and_compare(b, config_b, sql, "b").await;
}

/// A leader stopped cleanly under writes (a rolling restart): what it drains after the stop
/// reaches the bus, its final checkpoint is written without waiting on the bus, and only then
/// does it hand the lead back, so the follower takes over from a bus holding everything the old
/// leader applied, and the old leader is never fenced on its way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_under_writes_publishes_its_last_events_then_hands_over() {
    // Rows enough that the final checkpoint takes a while: a lease released at the stop
    // (before it) would be taken by the follower meanwhile.
    let Cluster { redis: _redis, pg: _pg, url, sql, dirs: _dirs, configs: [config_a, config_b] } =
        Cluster::new(200_000, config).await;
    let (a, mut b, addr_b, writes) = leader_under_writes_and_follower(&url, &config_a, &config_b).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let log_a = a.terminate_with_log().await;
    let said = |what: &str| log_a.iter().find(|line| line.contains(what));
    for wrong in ["did not finish in time", "gave up publishing", "no longer the cluster's", "lost the lead"] {
        assert_eq!(said(wrong), None, "the old leader's stop");
    }
    let written = said("final checkpoint written").expect("the old leader wrote its final checkpoint");
    let took = b.wait_log("took the lead of the cluster", |_| {}).await;
    let at = |line: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str().unwrap()).expect("an RFC 3339 timestamp")
    };
    let written: serde_json::Value = serde_json::from_str(written).unwrap();
    assert!(
        at(&took) > at(&written),
        "b took the lead at {} before a's final checkpoint at {}",
        at(&took),
        at(&written)
    );

    the_new_leader_ends_exact(writes, b, addr_b, &config_b, &sql).await;
}

/// The leader is paused (SIGSTOP), not killed: its replication session keeps the slot and its
/// process keeps believing it leads. A follower takes the lapsed lease, ends the old session
/// on the slot and streams; when the old leader wakes, its renewal fails and it stops instead
/// of publishing — and the new leader's replica equals the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_stops_when_it_wakes() {
    let Cluster { redis: _redis, pg: _pg, url, sql, dirs: _dirs, configs: [config_a, config_b] } =
        Cluster::new(5000, config).await;
    let (mut a, mut b, addr_b, writes) = leader_under_writes_and_follower(&url, &config_a, &config_b).await;

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

    the_new_leader_ends_exact(writes, b, addr_b, &config_b, &sql).await;
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

/// Inserts rows 1,000,000, 1,000,001, … one transaction each until stopped.
fn inserter(url: String) -> Writes {
    let pause = Arc::new(RwLock::new(()));
    let held = pause.clone();
    let task = tokio::spawn(async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        for id in 1_000_000i64.. {
            let _held = held.read().await;
            if client.execute("INSERT INTO items (id, v) VALUES ($1, 'new')", &[&id]).await.is_err() {
                return;
            }
        }
    });
    Writes { task, pause }
}

/// Every id once, consecutive: nothing missed, nothing twice.
fn assert_consecutive(ids: &[i64], who: &str) {
    assert!(ids.len() > 10, "{who}: only {} inserts", ids.len());
    for pair in ids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "{who}: after {} came {}", pair[0], pair[1]);
    }
}

/// A change-stream client that follows one instance, reconnecting with its cursor.
struct Follower {
    client: support::ws::WsClient,
    seen: Vec<i64>,
    cursor: Option<String>,
}

impl Follower {
    async fn connect(addr: std::net::SocketAddr, token: &str, cursor: Option<String>) -> Follower {
        let mut client = support::ws::WsClient::connect(addr, support::ws::TRANSPORT_WS, token).await;
        let variables = match &cursor {
            Some(c) => serde_json::json!({ "after": c }),
            None => serde_json::json!({}),
        };
        client.subscribe("x", CHANGES, variables).await;
        if cursor.is_none() {
            // A new stream first says where it starts: from then on nothing is missed.
            let start = client.message().await.unwrap();
            assert!(start["payload"]["data"]["itemsChanges"]["events"].as_array().unwrap().is_empty(), "{start}");
        }
        Follower { client, seen: Vec::new(), cursor }
    }

    /// Reads until it saw an insert after `id` (`None`: until its connection closes); false if
    /// the connection closed first.
    async fn read_past(&mut self, id: Option<i64>) -> bool {
        loop {
            if id.is_some_and(|id| self.seen.last().is_some_and(|&l| l > id)) {
                return true;
            }
            let Ok(message) = self.client.message().await else { return false };
            assert_eq!(message["type"], "next", "{message}");
            let changes = &message["payload"]["data"]["itemsChanges"];
            if let Some(c) = changes["cursor"].as_str() {
                self.cursor = Some(c.to_string());
            }
            for event in changes["events"].as_array().unwrap() {
                assert_eq!(event["kind"], "ENTER", "{event}");
                self.seen.push(event["key"]["id"].as_str().unwrap().parse().unwrap());
            }
        }
    }

    /// Moves to the instance at `addr` with its cursor (its own went away, or to spread again).
    async fn move_to(&mut self, addr: std::net::SocketAddr, token: &str) {
        let seen = std::mem::take(&mut self.seen);
        *self = Follower { seen, ..Follower::connect(addr, token, self.cursor.clone()).await };
    }
}

async fn max_id(sql: &tokio_postgres::Client) -> i64 {
    sql.query_one("SELECT max(id) FROM items", &[]).await.unwrap().get(0)
}

/// The leader is killed (SIGKILL) under a stream of inserts, round after round
/// (`CLUSTER_KILL_ROUNDS`, 5 by default): each time the other instance leads within 5 s; the
/// change-stream client of the survivor sees every insert once, in order, across it; the client
/// of the killed leader comes back on the survivor with its last cursor and goes on from exactly
/// there; the killed instance starts again as a follower (and its client moves back to it).
/// At the end both replicas equal the source. Prints the failover times (kill → the survivor's
/// client gets the first insert committed after the kill): the long form with 10 rounds gives
/// the README's figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_round_after_round_loses_and_repeats_nothing_for_any_client() {
    let rounds: usize = std::env::var("CLUSTER_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let Cluster { redis: _redis, pg: _pg, url, sql, dirs: _dirs, configs } = Cluster::new(5000, config_with_api).await;
    let mut first = Serve::start(&configs[0]);
    let (_, addr_first) = first.wait_start_log("replica consistent; streaming").await;
    let mut second = Serve::start(&configs[1]);
    second.wait_log("following the cluster's leader", |_| {}).await;
    let addr_second = second.wait_listening().await;
    let mut instances = [(first, addr_first), (second, addr_second)];

    let admin = support::graphql::token("admin", serde_json::json!({}));
    let mut clients =
        [Follower::connect(addr_first, &admin, None).await, Follower::connect(addr_second, &admin, None).await];
    let writes = inserter(url.clone());
    let mut failovers = Vec::new();
    let mut leader = 0;
    for round in 0..rounds {
        let survivor = 1 - leader;
        let now = max_id(&sql).await;
        for client in &mut clients {
            assert!(client.read_past(Some(now)).await, "round {round}: a client stopped before the kill");
        }
        instances[leader].0.child.kill().await.unwrap();
        let killed = tokio::time::Instant::now();
        let before_kill = max_id(&sql).await;
        assert!(clients[survivor].read_past(Some(before_kill)).await, "round {round}: the survivor's client stopped");
        let failover = killed.elapsed();
        instances[survivor].0.wait_log("this instance leads the cluster", |_| {}).await;
        assert!(
            failover < Duration::from_secs(5),
            "round {round}: the first insert after the kill came after {failover:?}"
        );
        failovers.push(failover);

        // The killed leader's client: what it got before its connection went, then the
        // survivor from its cursor.
        assert!(!clients[leader].read_past(None).await);
        let addr_survivor = instances[survivor].1;
        clients[leader].move_to(addr_survivor, &admin).await;

        // The killed instance comes back as a follower, and its client goes back to it.
        let mut back = Serve::start(&configs[leader]);
        back.wait_log("following the cluster's leader", |line| {
            assert!(
                !line.contains("this instance leads the cluster"),
                "round {round}: took the lead from a live leader: {line}"
            );
        })
        .await;
        let addr_back = back.wait_listening().await;
        instances[leader] = (back, addr_back);
        let now = max_id(&sql).await;
        assert!(clients[leader].read_past(Some(now)).await, "round {round}: the moved client stopped");
        clients[leader].move_to(addr_back, &admin).await;
        leader = survivor;
    }
    let mut sorted = failovers.clone();
    sorted.sort();
    eprintln!(
        "failover (kill -> first insert after it on the survivor's client), {} rounds: p50 {:?}, max {:?}, all {:?}",
        sorted.len(),
        sorted[sorted.len() / 2],
        sorted.last().unwrap(),
        failovers
    );
    end_checks(writes, &mut clients, &sql, instances, &configs).await;
}

/// The end of a run of inserts: the writer stops; each client reaches the last insert having
/// seen every one exactly once, in order; both instances apply everything, without an anomaly,
/// and their replicas equal the source.
async fn end_checks(
    writes: Writes,
    clients: &mut [Follower],
    sql: &tokio_postgres::Client,
    instances: [(Serve, std::net::SocketAddr); 2],
    configs: &[PathBuf; 2],
) {
    writes.stop().await;
    let last = max_id(sql).await;
    for (i, client) in clients.iter_mut().enumerate() {
        assert!(client.read_past(Some(last - 1)).await, "client {i} reaches the last insert");
        assert_eq!(*client.seen.first().unwrap(), 1_000_000, "client {i} saw every insert");
        assert_consecutive(&client.seen, &format!("client {i}"));
    }
    let target = current_lsn(sql).await;
    for ((serve, addr), (config, who)) in instances.into_iter().zip(configs.iter().zip(["a", "b"])) {
        support::http::applied_up_to(addr, "shop", target).await;
        assert_eq!(metric(addr, "opslive_replica_anomalies_total", &[]).await, Some(0.0), "{who}");
        stop_and_compare(serve, config, sql, who).await;
    }
}

/// Asks `query` of `addr` until `done` holds for its data (within 15 s): another instance's
/// change arrives on its own time.
async fn until(
    addr: std::net::SocketAddr,
    token: &str,
    query: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let d = support::graphql::data(addr, token, query, serde_json::json!({})).await;
        if done(&d) {
            return d;
        }
        assert!(tokio::time::Instant::now() < deadline, "{addr} never showed what was asked: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A config like [`config_with_api`] whose `admin` may also define KPIs and alerts and ask
/// for resyncs.
fn config_with_permissions(dir: &Path, url: &str, redis: &str, name: &str) -> PathBuf {
    let path = config_with_api(dir, url, redis, name);
    std::fs::write(
        dir.join("policy.toml"),
        "[roles.admin]\nall_tables = true\npermissions = [\"manage_kpis\", \"manage_alerts\", \"resync\", \"revoke_tokens\"]\n",
    )
    .unwrap();
    path
}

/// What people change through one instance's API — KPI definitions, alert rules,
/// acknowledgements, silences, a resync — is in force on the other instance too, without a
/// restart: the definitions and silences are read again from the app database, the
/// acknowledgement is applied as it was made, and the resync asked of the follower is done by
/// the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_through_one_instance_are_in_force_on_the_others() {
    use serde_json::json;
    use support::graphql::data;
    let Cluster { redis: _redis, pg: _pg, url: _, sql, dirs: _dirs, configs: [config_a, config_b] } =
        Cluster::new(100, config_with_permissions).await;
    let mut a = Serve::start(&config_a);
    let (_, addr_a) = a.wait_start_log("replica consistent; streaming").await;
    let mut b = Serve::start(&config_b);
    b.wait_log("following the cluster's leader", |_| {}).await;
    let addr_b = b.wait_listening().await;
    let admin = support::graphql::token("admin", json!({ "sub": "ada@example.com" }));

    // A KPI defined on the leader counts on the follower.
    let d = data(
        addr_a,
        &admin,
        "mutation($input: KpiInput!) { createKpi(input: $input) { id } }",
        json!({ "input": { "name": "Busy items", "table": "items", "aggregate": "COUNT", "filter": { "n": { "gt": 5 } } } }),
    )
    .await;
    let kpi = d["createKpi"]["id"].as_str().unwrap().to_string();
    let kpis = "{ kpis { id name value } }";
    let busy = |n: &'static str| {
        let kpi = kpi.clone();
        move |d: &serde_json::Value| {
            d["kpis"].as_array().unwrap().iter().any(|k| k["id"] == kpi.as_str() && k["value"] == n)
        }
    };
    until(addr_b, &admin, kpis, busy("0")).await;

    // A rule made on the follower fires on the leader.
    let d = data(
        addr_b,
        &admin,
        "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id } }",
        json!({ "input": { "name": "Busy item", "labels": { "team": "qa" }, "rows": { "table": "items", "filter": { "n": { "gt": 5 } } } } }),
    )
    .await;
    let rule = d["createAlertRule"]["id"].as_str().unwrap().to_string();
    until(addr_a, &admin, "{ alertRules { id } }", |d| d["alertRules"].as_array().unwrap().len() == 1).await;
    sql.batch_execute("UPDATE items SET n = 10 WHERE id = 7").await.unwrap();
    let alerts = "{ alerts { ruleId instance state acknowledged acknowledgedBy silenced } }";
    let firing = |d: &serde_json::Value| d["alerts"].as_array().unwrap().iter().any(|a| a["state"] == "FIRING");
    for addr in [addr_a, addr_b] {
        until(addr, &admin, alerts, firing).await;
        until(addr, &admin, kpis, busy("1")).await;
    }

    // Acknowledged on the leader: acknowledged on the follower, by the same person.
    let instance = data(addr_a, &admin, alerts, json!({})).await["alerts"][0]["instance"].as_str().unwrap().to_string();
    data(
        addr_a,
        &admin,
        "mutation($rule: ID!, $instance: String!) { acknowledgeAlert(ruleId: $rule, instance: $instance, note: \"on it\") { acknowledged } }",
        json!({ "rule": rule, "instance": instance }),
    )
    .await;
    let d = until(addr_b, &admin, alerts, |d| d["alerts"][0]["acknowledged"] == true).await;
    assert_eq!(d["alerts"][0]["acknowledgedBy"], "ada@example.com");

    // Silenced on the follower: silenced on the leader.
    let silence =
        "mutation { createSilence(matchers: [{ label: \"team\", value: \"qa\" }], duration: \"PT1H\") { id } }";
    data(addr_b, &admin, silence, json!({})).await;
    until(addr_a, &admin, alerts, |d| d["alerts"][0]["silenced"] == true).await;

    // A resync asked of the follower is done by the leader, which reads the source.
    let resyncs = metric(addr_a, "opslive_source_resyncs_total", &[("source", "shop")]).await.unwrap_or(0.0);
    let asked = support::http::request(
        addr_b,
        "POST",
        "/tables/items/resync",
        &[("authorization", &format!("Bearer {admin}"))],
        "",
    )
    .await;
    assert_eq!(asked.status, 202, "{}", asked.body);
    a.wait_log("resync requested through another instance", |_| {}).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while metric(addr_a, "opslive_source_resyncs_total", &[("source", "shop")]).await.unwrap_or(0.0) <= resyncs {
        assert!(tokio::time::Instant::now() < deadline, "the leader never resynced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Deleted on the follower: gone from the leader.
    data(addr_b, &admin, "mutation($id: ID!) { deleteKpi(id: $id) }", json!({ "id": kpi })).await;
    until(addr_a, &admin, kpis, |d| !d["kpis"].as_array().unwrap().iter().any(|k| k["id"] == kpi.as_str())).await;

    // A token revoked on the leader: its live connection to the follower is closed.
    let doomed = support::graphql::token("admin", json!({ "sub": "eve@example.com", "jti": "t-1" }));
    let mut live = support::ws::WsClient::connect(addr_b, support::ws::TRANSPORT_WS, &doomed).await;
    live.subscribe("k", kpis, json!({})).await;
    live.next("k").await;
    data(addr_a, &admin, "mutation { revokeToken(jti: \"t-1\") { id } }", json!({})).await;
    assert_eq!(live.closed().await.code, 4403);
}

/// Waits (up to `within`) until `/readyz` of `addr` answers `status`; how long it took.
async fn readiness(addr: std::net::SocketAddr, status: u16, within: Duration) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        let ready = support::http::get(addr, "/readyz").await;
        if ready.status == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{addr}: /readyz still {} after {within:?}: {}", ready.status, ready.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `a` (it leads) and `b` (it follows), a change-stream client on `b`, and inserts one
/// row per transaction; returns once the client has seen inserts flow.
async fn leader_follower_and_client(
    configs: &[PathBuf; 2],
    url: &str,
    sql: &tokio_postgres::Client,
) -> (Serve, Serve, std::net::SocketAddr, Follower, Writes) {
    let mut a = Serve::start(&configs[0]);
    a.wait_start_log("replica consistent; streaming").await;
    let mut b = Serve::start(&configs[1]);
    b.wait_log("following the cluster's leader", |_| {}).await;
    let addr_b = b.wait_listening().await;
    let admin = support::graphql::token("admin", serde_json::json!({}));
    let mut client = Follower::connect(addr_b, &admin, None).await;
    let writes = inserter(url.to_string());
    let now = max_id(sql).await;
    assert!(client.read_past(Some(now)).await);
    (a, b, addr_b, client, writes)
}

/// Redis crashes (SIGKILL) under a stream of inserts and comes back from its append-only file:
/// the follower goes not ready while it is away, the leader cannot renew its lease and stops;
/// once Redis is back the follower takes the lead, the old leader starts again as a follower,
/// and the follower's change-stream client saw every insert once, in order: no silent gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_writes_makes_instances_not_ready_and_they_recover_without_a_gap() {
    let Cluster { mut redis, pg: _pg, url, sql, dirs: _dirs, configs } = Cluster::new(5000, config_with_api).await;
    let (mut a, mut b, addr_b, mut client, writes) = leader_follower_and_client(&configs, &url, &sql).await;
    readiness(addr_b, 200, Duration::from_secs(10)).await;

    redis.kill();
    let took = readiness(addr_b, 503, Duration::from_secs(10)).await;
    eprintln!("the follower was not ready {took:?} after Redis died");
    assert_eq!(metric(addr_b, "opslive_cluster_redis_up", &[]).await, Some(0.0));
    let said = a.wait_text("lost the lead of the cluster").await;
    assert!(said.starts_with("error:"), "{said}");
    let _ = tokio::time::timeout(Duration::from_secs(30), a.child.wait()).await.unwrap();

    redis.start_again();
    b.wait_log("this instance leads the cluster", |_| {}).await;
    readiness(addr_b, 200, Duration::from_secs(20)).await;
    // The old leader, started again by its supervisor, follows.
    let mut a = Serve::start(&configs[0]);
    a.wait_log("following the cluster's leader", |_| {}).await;
    let addr_a = a.wait_listening().await;
    let now = max_id(&sql).await;
    assert!(client.read_past(Some(now)).await, "the follower's client goes on after Redis came back");
    end_checks(writes, std::slice::from_mut(&mut client), &sql, [(a, addr_a), (b, addr_b)], &configs).await;
}

/// One instance at a time is cut off from Redis (a proxy that stops forwarding without closing
/// anything, as a partition does) while the other still reaches it. A cut-off follower goes not
/// ready within seconds and is ready again, caught up, once healed; a cut-off leader stops when
/// its lease runs out, before the other instance leads, so its writes to the bus are fenced and
/// two leaders never read the source at once. The follower's client sees every insert once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_redis_goes_not_ready_and_a_cut_off_leader_stops() {
    use support::proxy::Proxy;
    let Cluster { redis, pg: _pg, url, sql, dirs: _dirs, configs } = Cluster::new(5000, config_with_api).await;
    let proxies = [Proxy::start(redis.addr()).await, Proxy::start(redis.addr()).await];
    for (config, proxy) in configs.iter().zip(&proxies) {
        let text = std::fs::read_to_string(config).unwrap().replace(&redis.url(), &proxy.redis_url());
        std::fs::write(config, text).unwrap();
    }
    let (mut a, mut b, addr_b, mut client, writes) = leader_follower_and_client(&configs, &url, &sql).await;

    // The follower is cut off: not ready within seconds, then ready again and caught up.
    proxies[1].cut();
    let took = readiness(addr_b, 503, Duration::from_secs(8)).await;
    eprintln!("the cut-off follower was not ready after {took:?}");
    assert_eq!(metric(addr_b, "opslive_cluster_redis_up", &[]).await, Some(0.0));
    proxies[1].heal();
    readiness(addr_b, 200, Duration::from_secs(20)).await;
    let now = max_id(&sql).await;
    assert!(client.read_past(Some(now)).await, "the follower's client goes on once it is healed");

    // The leader is cut off: it stops when its lease runs out; the follower leads.
    proxies[0].cut();
    let cut = tokio::time::Instant::now();
    let said = a.wait_text("lost the lead of the cluster").await;
    let stopped = cut.elapsed();
    assert!(said.starts_with("error:"), "{said}");
    b.wait_log("this instance leads the cluster", |_| {}).await;
    let led = cut.elapsed();
    eprintln!("the cut-off leader stopped after {stopped:?}; the follower led after {led:?}");
    assert!(stopped < Duration::from_secs(3), "a leader cut off for {stopped:?} still ran (lease 1 s)");
    let _ = tokio::time::timeout(Duration::from_secs(30), a.child.wait()).await.unwrap();
    proxies[0].heal();
    let mut a = Serve::start(&configs[0]);
    a.wait_log("following the cluster's leader", |_| {}).await;
    let addr_a = a.wait_listening().await;

    end_checks(writes, std::slice::from_mut(&mut client), &sql, [(a, addr_a), (b, addr_b)], &configs).await;
}

/// A follower paused (SIGSTOP) while the leader writes more than its streams keep
/// (`stream_max_len = 100`): when it wakes, the entries it needs are gone, and it stops with
/// the reason instead of skipping them; started again it rebuilds from the leader and its
/// replica equals the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_fell_behind_the_stream_stops_and_rebuilds_exactly() {
    let Cluster { redis: _redis, pg: _pg, url, sql, dirs: _dirs, configs } = Cluster::new(5000, config).await;
    for config in &configs {
        let text = std::fs::read_to_string(config).unwrap();
        std::fs::write(config, format!("{text}stream_max_len = 100\n")).unwrap();
    }
    let mut a = Serve::start(&configs[0]);
    let (_, addr_a) = a.wait_start_log("replica consistent; streaming").await;
    let mut b = Serve::start(&configs[1]);
    b.wait_log("following the cluster's leader", |_| {}).await;
    let pid_b = b.child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-STOP", &pid_b]).status().unwrap();
    let published = metric(addr_a, "opslive_bus_published_total", &[]).await.unwrap_or(0.0);
    let writes = writer(url.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metric(addr_a, "opslive_bus_published_total", &[]).await.unwrap_or(0.0) < published + 1000.0 {
        assert!(tokio::time::Instant::now() < deadline, "the leader never published 1,000 entries");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::process::Command::new("kill").args(["-CONT", &pid_b]).status().unwrap();
    let said = b.wait_text("skips from entry").await;
    assert!(said.starts_with("error:") && said.contains("rebuilt from the leader"), "{said}");
    let status = tokio::time::timeout(Duration::from_secs(30), b.child.wait()).await.unwrap().unwrap();
    assert!(!status.success());

    // Started again once the writes stop (a stream that keeps 100 entries is outrun by this
    // writer in a tenth of a second, faster than a start).
    writes.stop().await;
    let mut b = Serve::start(&configs[1]);
    b.wait_log("following the cluster's leader", |_| {}).await;
    let addr_b = b.wait_listening().await;
    let target = current_lsn(&sql).await;
    for addr in [addr_a, addr_b] {
        support::http::applied_up_to(addr, "shop", target).await;
        assert_eq!(metric(addr, "opslive_replica_anomalies_total", &[]).await, Some(0.0));
    }
    stop_and_compare(b, &configs[1], &sql, "b").await;
    stop_and_compare(a, &configs[0], &sql, "a").await;
}

/// Each recorded transition as (instance, new state, epoch), oldest first.
async fn recorded(app: &tokio_postgres::Client) -> Vec<(String, String, Option<i64>)> {
    let rows = app.query("SELECT instance, to_state, epoch FROM alert_transitions ORDER BY id", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// The recorded transitions once there are `n` (the board shows a transition before the
/// writer has committed it).
async fn recorded_when(app: &tokio_postgres::Client, n: usize) -> Vec<(String, String, Option<i64>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let all = recorded(app).await;
        if all.len() >= n || tokio::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn claimed_epoch(app: &tokio_postgres::Client) -> i64 {
    app.query_one("SELECT epoch FROM leader_epochs", &[]).await.unwrap().get(0)
}

/// Alert state is the leader's to decide, on transactions and as time passes, and to record
/// under its epoch; a follower shows what the leader decided — starting from what is recorded,
/// changing none of it — and evaluates nothing itself. When the leader is killed, the follower
/// that takes over claims a newer epoch, carries the firing instances on without firing them
/// again, and records what happens next under its own epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_alone_decides_alerts_and_the_next_leader_carries_them_on() {
    use serde_json::json;
    use support::graphql::data;
    let Cluster { redis: _redis, pg, url: _, sql, dirs: _dirs, configs: [config_a, config_b] } =
        Cluster::new(100, config_with_permissions).await;
    let mut a = Serve::start(&config_a);
    let (_, addr_a) = a.wait_start_log("replica consistent; streaming").await;
    let app = pg.connect("opslive").await;
    let admin = support::graphql::token("admin", json!({ "sub": "ada@example.com" }));
    // Pending on the transaction that makes an item busy; firing once time alone has passed.
    data(
        addr_a,
        &admin,
        "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id } }",
        json!({ "input": { "name": "Busy item", "for": "PT1S", "rows": { "table": "items", "filter": { "n": { "gt": 5 } } } } }),
    )
    .await;
    let alerts = "{ alerts { instance state since } }";
    let state_of = |d: &serde_json::Value, id: &str| {
        let instance = format!("[\"{id}\"]");
        d["alerts"].as_array().unwrap().iter().find(|a| a["instance"] == instance.as_str()).cloned()
    };
    let firing =
        |id: &'static str| move |d: &serde_json::Value| state_of(d, id).is_some_and(|a| a["state"] == "FIRING");
    sql.batch_execute("UPDATE items SET n = 10 WHERE id = 7").await.unwrap();
    until(addr_a, &admin, alerts, firing("7")).await;
    let first = claimed_epoch(&app).await;
    let fired = vec![
        ("[\"7\"]".to_string(), "PENDING".to_string(), Some(first)),
        ("[\"7\"]".to_string(), "FIRING".to_string(), Some(first)),
    ];
    assert_eq!(recorded_when(&app, fired.len()).await, fired);

    // A follower starting now shows the firing instance as recorded, and drops none of it.
    let mut b = Serve::start(&config_b);
    b.wait_log("following the cluster's leader", |_| {}).await;
    let addr_b = b.wait_listening().await;
    until(addr_b, &admin, alerts, firing("7")).await;
    assert_eq!(recorded(&app).await, fired);

    // Decided by the leader (the Pending → Firing by time too), shown by the follower as the
    // leader shows it.
    sql.batch_execute("UPDATE items SET n = 10 WHERE id = 8").await.unwrap();
    let on_a = until(addr_a, &admin, alerts, firing("8")).await;
    let on_b = until(addr_b, &admin, alerts, firing("8")).await;
    assert_eq!(state_of(&on_a, "8"), state_of(&on_b, "8"));

    // The leader killed: the follower takes over having decided nothing itself so far.
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    b.wait_log("alert evaluation taken over from the old leader", |line| {
        assert!(!line.contains("\"alert transition\""), "a follower decided alert state: {line}");
    })
    .await;
    let second = claimed_epoch(&app).await;
    assert!(second > first, "the new leader claims a newer epoch: {second} after {first}");
    for id in ["7", "8"] {
        until(addr_b, &admin, alerts, firing(id)).await;
    }
    sql.batch_execute("UPDATE items SET n = 0 WHERE id = 7").await.unwrap();
    until(addr_b, &admin, alerts, |d| state_of(d, "7").is_none()).await;
    let mut expected = fired.clone();
    expected.extend([
        ("[\"8\"]".to_string(), "PENDING".to_string(), Some(first)),
        ("[\"8\"]".to_string(), "FIRING".to_string(), Some(first)),
        ("[\"7\"]".to_string(), "RESOLVED".to_string(), Some(second)),
    ]);
    let all = recorded_when(&app, expected.len()).await;
    assert_eq!(all, expected, "every transition once, each under the epoch of the leader that decided it");
}

/// Where the source's slot is confirmed up to.
async fn confirmed(sql: &tokio_postgres::Client) -> Position {
    let row = sql.query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots", &[]).await.unwrap();
    Position::parse(&row.get::<_, String>(0)).unwrap()
}

async fn until_confirmed(sql: &tokio_postgres::Client, past: Position) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while confirmed(sql).await < past {
        assert!(tokio::time::Instant::now() < deadline, "the slot was never confirmed past {past}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `wait_replicas = 1` the bus is durable only once a Redis replica has it too (`WAIT`):
/// while the replica is paused the source is not acknowledged past what the replica has (the
/// leader says why); resumed, the acknowledgement catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replicas_to_wait_for_the_source_is_acknowledged_only_past_what_they_have() {
    let Cluster { redis, pg: _pg, url: _, sql, dirs: _dirs, configs: [config_a, _] } = Cluster::new(10, config).await;
    let replica = RedisServer::replica_of(&redis);
    let text = std::fs::read_to_string(&config_a).unwrap() + "wait_replicas = 1\nwait_timeout_ms = 200\n";
    std::fs::write(&config_a, text).unwrap();
    let mut a = Serve::start(&config_a);
    a.wait_start_log("replica consistent; streaming").await;
    sql.batch_execute("INSERT INTO items VALUES (1000, 0, 'replicated')").await.unwrap();
    until_confirmed(&sql, current_lsn(&sql).await).await;

    let signal = |sig: &str| {
        let status = std::process::Command::new("kill").args([sig, &replica.pid().to_string()]).status().unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    sql.batch_execute("INSERT INTO items VALUES (1001, 0, 'not on the replica')").await.unwrap();
    let written = current_lsn(&sql).await;
    a.wait_log("too few Redis replicas have the bus's last entries", |_| {}).await;
    assert!(confirmed(&sql).await < written, "acknowledged past what no replica has");

    signal("-CONT");
    until_confirmed(&sql, written).await;
}

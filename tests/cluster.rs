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
    let redis = RedisServer::start();
    let pg = PgServer::start_with(&[("synchronous_commit", "on")]).await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, v text);
         INSERT INTO items SELECT g, 0, 'row ' || g FROM generate_series(0, 5000) g;",
    )
    .await
    .unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (config_a, config_b) =
        (config(dir_a.path(), &url, &redis.url(), "a"), config(dir_b.path(), &url, &redis.url(), "b"));

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

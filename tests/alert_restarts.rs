//! Alert state across `kill -9`: the server is killed while alerts fire and transactions flow,
//! and after each restart the same instances are firing as the source's rows say, no
//! transition is recorded twice, and the KPI's history goes on without a gap beyond the
//! downtime.
//!
//! `ALERT_KILL_ROUNDS` sets the rounds (CI: 3; the long form is 10:
//! `ALERT_KILL_ROUNDS=10 cargo nextest run --test alert_restarts`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use support::alerting::INSERT_TEST_ORDER;
use support::graphql::{Shop, data, fixture_policy, token};
use support::serve::Serve;
use tokio::sync::{Notify, RwLock};

fn epoch() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// What the rules should show, read from the source: the pending test orders (one row alert
/// each) and whether there are more than three of them (the KPI alert).
async fn expected(sql: &tokio_postgres::Client) -> (BTreeSet<String>, bool) {
    let rows = sql.query("SELECT id FROM orders WHERE currency = 'XTS' AND status = 'pending'", &[]).await.unwrap();
    let ids: BTreeSet<String> = rows.iter().map(|r| json!([r.get::<_, i64>(0).to_string()]).to_string()).collect();
    let many = ids.len() > 3;
    (ids, many)
}

/// The firing instances by rule name.
async fn firing(shop_addr: std::net::SocketAddr, admin: &str) -> BTreeMap<String, BTreeSet<String>> {
    let d = data(shop_addr, admin, "{ alerts(where: { state: FIRING }) { ruleName instance } }", json!({})).await;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in d["alerts"].as_array().unwrap() {
        out.entry(a["ruleName"].as_str().unwrap().into()).or_default().insert(a["instance"].as_str().unwrap().into());
    }
    out
}

/// One random transaction on the test orders: a new one, one paid, one back to pending, one
/// gone; at most 40 of them exist, under every rule's instance cap.
async fn random_write(sql: &tokio_postgres::Client, rng: &mut StdRng) {
    let count: i64 = sql.query_one("SELECT count(*) FROM orders WHERE currency = 'XTS'", &[]).await.unwrap().get(0);
    let statement = match rng.random_range(0..4) {
        0 if count < 40 => INSERT_TEST_ORDER.to_string(),
        0 | 1 => "UPDATE orders SET status = 'paid' WHERE id = (SELECT id FROM orders WHERE currency = 'XTS' AND status = 'pending' ORDER BY random() LIMIT 1)".into(),
        2 => "UPDATE orders SET status = 'pending' WHERE id = (SELECT id FROM orders WHERE currency = 'XTS' AND status = 'paid' ORDER BY random() LIMIT 1)".into(),
        _ => "DELETE FROM orders WHERE id = (SELECT id FROM orders WHERE currency = 'XTS' ORDER BY random() LIMIT 1)".into(),
    };
    sql.batch_execute(&statement).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_survive_kill_9_without_firing_twice() {
    let rounds: usize = std::env::var("ALERT_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    // Checkpoints often, so that some restarts resume from one (the slot delivers again what
    // came after it) and others copy the tables afresh.
    let checkpoints = "[checkpoint]\ninterval_seconds = 0.3\n";
    let shop = Shop::start_with(opslive::demo::FIXTURE_SEED, &fixture_policy(), "", checkpoints).await;
    let admin = token("admin", json!({ "sub": "ada@example.com" }));
    let sql = shop.pg.connect("shop").await;
    let app = shop.pg.connect("opslive").await;
    for _ in 0..6 {
        sql.batch_execute(INSERT_TEST_ORDER).await.unwrap();
    }
    let d = data(
        shop.addr,
        &admin,
        "mutation($input: KpiInput!) { createKpi(input: $input) { id } }",
        json!({ "input": { "name": "Pending test orders", "table": "orders", "aggregate": "COUNT",
                           "filter": { "currency": { "eq": "XTS" }, "status": { "eq": "pending" } } } }),
    )
    .await;
    let kpi = d["createKpi"]["id"].as_str().unwrap().to_string();
    let create = "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id } }";
    data(shop.addr, &admin, create, json!({ "input": { "name": "many", "kpi": { "kpi": kpi, "above": 3 } } })).await;
    data(
        shop.addr,
        &admin,
        create,
        json!({ "input": { "name": "each", "rows": { "table": "orders",
                "filter": { "currency": { "eq": "XTS" }, "status": { "eq": "pending" } } } } }),
    )
    .await;

    // The writer runs through every kill; it pauses only while a round compares with SQL.
    let pause = Arc::new(RwLock::new(()));
    let written = Arc::new(AtomicU64::new(0));
    let wrote = Arc::new(Notify::new());
    let writer = {
        let (url, pause, written, wrote) = (shop.pg.url("shop"), pause.clone(), written.clone(), wrote.clone());
        tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let mut rng = StdRng::seed_from_u64(9);
            loop {
                {
                    let _running = pause.read().await;
                    random_write(&client, &mut rng).await;
                }
                written.fetch_add(1, Ordering::Relaxed);
                wrote.notify_waiters();
            }
        })
    };
    let wait_writes = |n: u64| {
        let (written, wrote) = (written.clone(), wrote.clone());
        async move {
            let until = written.load(Ordering::Relaxed) + n;
            while written.load(Ordering::Relaxed) < until {
                let notified = wrote.notified();
                if written.load(Ordering::Relaxed) >= until {
                    break;
                }
                tokio::time::timeout(Duration::from_secs(30), notified).await.expect("the writer goes on");
            }
        }
    };

    let Shop { pg, mut serve, mut addr, dir } = shop;
    let config = dir.path().join("opslive.toml");
    let mut downtimes = Vec::new();
    let mut resumes = 0;
    for round in 0..rounds {
        wait_writes(50).await;
        if round % 2 == 1 {
            // Every other round, killed after a checkpoint with the tables in it: the restart
            // resumes from it and the slot delivers the rest again.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let metrics = support::http::samples(&support::http::get(addr, "/metrics").await.body);
                if support::http::value(&metrics, "opslive_checkpoint_rows", &[]).is_some_and(|rows| rows > 0.0) {
                    break;
                }
                assert!(Instant::now() < deadline, "round {round}: no checkpoint with rows");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            wait_writes(20).await;
        }
        // Killed mid-stream: whatever it had not made durable, the slot delivers again.
        let killed_at = epoch();
        serve.child.start_kill().unwrap();
        serve.child.wait().await.unwrap();
        serve = Serve::start(&config);
        // A checkpoint with rows in it is loaded before the server listens.
        let resumed = std::cell::Cell::new(false);
        let listening = serve
            .wait_log("listening", |line| {
                resumed.set(resumed.get() || (line.contains("checkpoint loaded") && !line.contains("\"rows\":0,")))
            })
            .await;
        addr = listening["fields"]["addr"].as_str().unwrap().parse().unwrap();
        serve.wait_log("replica consistent", |_| {}).await;
        resumes += usize::from(resumed.get());
        let back_at = epoch();
        downtimes.push((killed_at, back_at));

        // With the writer paused, the firing instances converge to what the rows say.
        let hold = pause.write().await;
        let (ids, many) = expected(&sql).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = firing(addr, &admin).await;
            let each = now.get("each").cloned().unwrap_or_default();
            let kpi_fires = now.get("many").is_some_and(|s| !s.is_empty());
            if each == ids && kpi_fires == many {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: firing {now:?}, but the rows say {ids:?} (more than three: {many})"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        drop(hold);
    }
    writer.abort();
    assert!(resumes >= 1, "no restart resumed from a checkpoint");
    // The last server stops cleanly: what it derived is written before it exits.
    serve.terminate().await;

    // No instance went to the same state twice in a row: nothing was recorded again.
    let rows = app
        .query("SELECT rule_id, instance, from_state, to_state, cause || ' at ' || at::text || ' recorded ' || recorded_at::text FROM alert_transitions ORDER BY rule_id, instance, id", &[])
        .await
        .unwrap();
    assert!(rows.len() > 20, "the writes made the rules move: {} transitions", rows.len());
    let mut last: BTreeMap<(i64, String), String> = BTreeMap::new();
    let history = |key: &(i64, String)| -> Vec<String> {
        rows.iter()
            .filter(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)) == *key)
            .map(|r| format!("{} -> {} ({})", r.get::<_, String>(2), r.get::<_, String>(3), r.get::<_, String>(4)))
            .collect()
    };
    for row in &rows {
        let key = (row.get::<_, i64>(0), row.get::<_, String>(1));
        let (from, to, cause): (String, String, String) = (row.get(2), row.get(3), row.get(4));
        if let Some(previous) = last.get(&key) {
            // A resolved instance starts again from normal.
            let previous = if previous == "RESOLVED" { "NORMAL" } else { previous.as_str() };
            assert_eq!(
                from,
                previous,
                "{key:?}: a transition from {from} after one to {previous} ({cause}): {:#?}; restarts {downtimes:?}",
                history(&key)
            );
        }
        assert_ne!(from, to, "{key:?}: {from} to itself ({cause}): {:#?}", history(&key));
        last.insert(key, to);
    }

    // The KPI's history has a sample for every minute it ran, apart from the downtimes.
    let minutes: Vec<f64> = app
        .query("SELECT extract(epoch FROM minute)::float8 FROM kpi_history WHERE kpi_id = $1::text::bigint ORDER BY minute", &[&kpi])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!minutes.is_empty(), "no history");
    for pair in minutes.windows(2) {
        if pair[1] - pair[0] > 60.0 {
            let explained = downtimes.iter().any(|(down, up)| down - 60.0 <= pair[0] && pair[1] <= up + 60.0);
            assert!(explained, "a gap in the history from {} to {} with the server up", pair[0], pair[1]);
        }
    }
    drop(pg);
}

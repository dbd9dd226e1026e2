//! `kill -9` of `opslive serve` at random moments while notifications are due, round after
//! round (issue 15): no notification is lost, a send is repeated only when it was in flight at
//! a kill (never more often than there were kills, each repeat counted in the log and in
//! `/metrics`), and a webhook receiver that de-duplicates by `Idempotency-Key` gets each
//! notification exactly once, a repeat carrying the very same body.
//!
//! One PostgreSQL, one server, one webhook contact point at `support::standin`, which answers
//! late (tens to hundreds of milliseconds) so that sends are often in flight when the kill
//! lands. Each round commits a few new test orders (each fires an alert) and pays a few older
//! ones (each resolves one), at random moments; the kill lands at a random moment of the round,
//! sometimes with writes still to come while the server is down. After each kill the outbox is
//! read straight from the app database, so the test knows which send was in flight. The rounds
//! start once the first checkpoint is written: every restart then resumes the slot from one,
//! and the alerts see every committed transaction, so the test knows what must be notified.
//!
//! The default is 10 rounds (about 15 s). The long form, 50 rounds (about a minute):
//!
//! ```text
//! NOTIFY_KILL_ROUNDS=50 cargo nextest run --profile ci --test notification_kills
//! ```
//!
//! The writes, answer delays and kill moments come from a seed printed at the start;
//! `NOTIFY_KILL_SEED=<seed>` replays that plan (the machine's own timing still varies).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use support::alerting::{INSERT_TEST_ORDER, test_order_rule};
use support::graphql::{Shop, data, fixture_policy, token};
use support::standin::{Answer, Received, StandIn};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const HOOK_SECRET: &str = "whsec-0123456789abcdef";

/// The late answers come well within the send timeout: a send that timed out would be retried,
/// and such a retry is a repeat that no kill caused. Checkpoints come often, so a restart
/// resumes the slot from one and the alerts see every transaction again; without one it copies
/// the tables afresh and sees only how they are now (an order inserted and paid while the
/// server was down never fires).
fn settings() -> String {
    format!(
        "\n[notifications]\nsecret_key = {KEY:?}\ntimeout_seconds = 30\n\
         retry_backoff_seconds = 0.05\nmax_backoff_seconds = 0.2\n\
         [checkpoint]\ninterval_seconds = 0.3\n"
    )
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn contact_point(shop: &Shop, admin: &str, standin: &StandIn) -> String {
    let d = data(
        shop.addr,
        admin,
        "mutation($input: ContactPointInput!) { createContactPoint(input: $input) { id } }",
        json!({ "input": { "name": "QA hook", "kind": "WEBHOOK",
                           "settings": { "url": standin.url("/hook"), "secret": HOOK_SECRET } } }),
    )
    .await;
    d["createContactPoint"]["id"].as_str().expect("an id").to_string()
}

async fn route_qa(shop: &Shop, admin: &str, point: &str) {
    let policy = json!({ "routes": [{ "matchers": [{ "label": "team", "value": "qa" }], "contactPoints": [point] }] });
    data(shop.addr, admin, "mutation($p: JSON!) { setNotificationPolicy(policy: $p) }", json!({ "p": policy })).await;
}

/// One committed change to the source, `after` the previous one.
enum Write {
    Insert,
    Pay(i64),
}

/// Commits the writes in turn and returns the new orders' ids. It runs on while the server is
/// killed and restarted: the source does not depend on it.
async fn commit(client: Arc<tokio_postgres::Client>, writes: Vec<(Duration, Write)>) -> Vec<i64> {
    let mut inserted = Vec::new();
    for (after, write) in writes {
        tokio::time::sleep(after).await;
        match write {
            Write::Insert => {
                let row = client.query_one(&format!("{INSERT_TEST_ORDER} RETURNING id"), &[]).await.unwrap();
                inserted.push(row.get(0));
            }
            Write::Pay(id) => {
                let n = client.execute("UPDATE orders SET status = 'paid' WHERE id = $1", &[&id]).await.unwrap();
                assert_eq!(n, 1, "order {id} paid");
            }
        }
    }
    inserted
}

/// Kills the server and waits until PostgreSQL has let go of all its sessions: a statement it
/// sent just before dying (`sending`, `sent`) is committed or not by then, never later.
async fn kill(shop: &mut Shop, pg: &tokio_postgres::Client) {
    shop.serve.child.start_kill().unwrap();
    shop.serve.child.wait().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = pg
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'opslive%'", &[])
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the killed server's sessions are still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The idempotency keys of the sends the dead server left in flight.
async fn in_flight(app: &tokio_postgres::Client) -> Vec<String> {
    let rows = app.query("SELECT idempotency_key FROM notifications WHERE status = 'sending'", &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn wait_checkpoint(shop: &Shop) {
    let path = shop.dir.path().join("data/replica.checkpoint");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no checkpoint at {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn restart(shop: &mut Shop) {
    let mut serve = support::serve::Serve::start(&shop.dir.path().join("opslive.toml"));
    shop.addr = serve.wait_listening().await;
    shop.serve = serve;
}

async fn repeated_metric(shop: &Shop) -> f64 {
    let metrics = support::http::get(shop.addr, "/metrics").await.body;
    let samples = support::http::samples(&metrics);
    support::http::value(&samples, "opslive_notifications_repeated_total", &[("channel", "webhook")])
        .expect("the webhook's repeated counter")
}

/// Waits until the restarted server has put the `expected` sends in flight back in line and
/// counted them (the counter starts at zero with each process); returns its count.
async fn wait_requeued(shop: &Shop, expected: usize) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counted = repeated_metric(shop).await;
        assert!(counted <= expected as f64, "{counted} repeats counted, {expected} sends were in flight");
        if counted == expected as f64 {
            return counted;
        }
        assert!(Instant::now() < deadline, "{expected} sends in flight, {counted} counted as repeated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn log(shop: &Shop, admin: &str) -> Vec<Json> {
    let q = "{ notifications(limit: 1000) { kind status attempts repeats instance idempotencyKey } }";
    data(shop.addr, admin, q, json!({})).await["notifications"].as_array().cloned().unwrap()
}

/// The log's notifications as (kind, order), sorted; a row rule's instance is its row's key.
fn transitions(rows: &[Json]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = rows
        .iter()
        .map(|n| {
            let key: Vec<String> = serde_json::from_str(n["instance"].as_str().unwrap()).unwrap();
            (n["kind"].as_str().unwrap().to_string(), key[0].parse().unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Polls the log until it holds exactly the `expected` notifications, all sent.
async fn wait_drained(shop: &Shop, admin: &str, expected: &[(String, i64)]) -> Vec<Json> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = log(shop, admin).await;
        let logged = transitions(&rows);
        let unsent: Vec<&Json> = rows.iter().filter(|n| n["status"] != "SENT").collect();
        if logged == expected && unsent.is_empty() {
            return rows;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = expected.iter().filter(|t| !logged.contains(t)).collect();
            let unexpected: Vec<_> = logged.iter().filter(|t| !expected.contains(t)).collect();
            panic!(
                "{} notifications expected, {} logged; missing {missing:?}, unexpected {unexpected:?}, \
                 not sent {unsent:#?}",
                expected.len(),
                rows.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn key(r: &Received) -> String {
    r.headers.get("idempotency-key").cloned().expect("an Idempotency-Key header")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_notification_and_repeats_only_sends_in_flight() {
    let rounds: usize = env_or("NOTIFY_KILL_ROUNDS", 10);
    let seed: u64 = env_or("NOTIFY_KILL_SEED", rand::random());
    println!("{rounds} rounds, seed {seed} (NOTIFY_KILL_SEED={seed} replays the plan)");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let standin = StandIn::start().await;
    let mut shop = Shop::start_with(opslive::demo::FIXTURE_SEED, &fixture_policy(), "", &settings()).await;
    let admin = token("admin", json!({ "sub": "alice@example.com" }));
    let client = Arc::new(shop.pg.connect("shop").await);
    let app = shop.pg.connect("opslive").await;
    let point = contact_point(&shop, &admin, &standin).await;
    route_qa(&shop, &admin, &point).await;
    test_order_rule(&shop, &admin).await;
    wait_checkpoint(&shop).await;
    // Late when nothing slower is scripted, so the sends after a restart are in flight a while.
    standin.fail("/hook", Answer::Slow(Duration::from_millis(60)));

    let (mut fired, mut resolved, mut pending) = (Vec::<i64>::new(), Vec::<i64>::new(), Vec::<i64>::new());
    // Per idempotency key, at how many kills its send was in flight.
    let mut killed_in_flight: HashMap<String, i32> = HashMap::new();
    // Of those sends, how many the stand-in had received (the rest died before they got there).
    let mut reached = 0;
    let mut counted = 0.0;
    // What the stand-in had per key when the current server started.
    let mut at_start: HashMap<String, usize> = HashMap::new();
    for round in 0..rounds {
        let mut writes: Vec<(Duration, Write)> = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            writes.push((Duration::from_millis(rng.random_range(0..300)), Write::Insert));
        }
        pending.shuffle(&mut rng);
        let paying: Vec<i64> = pending.drain(..rng.random_range(0..=pending.len().min(2))).collect();
        for &id in &paying {
            writes.push((Duration::from_millis(rng.random_range(0..300)), Write::Pay(id)));
        }
        writes.shuffle(&mut rng);
        let delays: Vec<Answer> =
            (0..writes.len()).map(|_| Answer::Slow(Duration::from_millis(rng.random_range(20..400)))).collect();
        standin.script("/hook", delays);
        let kill_at = Duration::from_millis(rng.random_range(100..1500));

        let writer = tokio::spawn(commit(client.clone(), writes));
        tokio::time::sleep(kill_at).await;
        kill(&mut shop, &app).await;
        let flying = in_flight(&app).await;
        assert!(flying.len() <= 1, "one lane sends one ungrouped notification at a time: {flying:?}");
        let received = standin.received("/hook");
        for k in &flying {
            *killed_in_flight.entry(k.clone()).or_default() += 1;
            let now = received.iter().filter(|r| key(r) == *k).count();
            if now > at_start.get(k).copied().unwrap_or(0) {
                reached += 1;
            }
        }
        let inserted = writer.await.unwrap();
        fired.extend(&inserted);
        pending.extend(&inserted);
        resolved.extend(&paying);
        println!(
            "round {round}: +{} orders, {} paid, kill at {kill_at:?} with {} in flight",
            inserted.len(),
            paying.len(),
            flying.len()
        );

        at_start.clear();
        for r in standin.received("/hook") {
            *at_start.entry(key(&r)).or_default() += 1;
        }
        restart(&mut shop).await;
        counted += wait_requeued(&shop, flying.len()).await;
    }
    let kills = rounds;

    // 1. Nothing lost: one firing per order inserted, one resolved per order paid, all sent.
    let mut expected: Vec<(String, i64)> = fired
        .iter()
        .map(|&o| ("firing".to_string(), o))
        .chain(resolved.iter().map(|&o| ("resolved".to_string(), o)))
        .collect();
    expected.sort();
    let rows = wait_drained(&shop, &admin, &expected).await;

    // 2. De-duplicated by key, the receiver got exactly the log's notifications.
    let mut deliveries: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    for r in standin.received("/hook") {
        deliveries.entry(key(&r)).or_default().push(r);
    }
    let row_of: BTreeMap<String, &Json> =
        rows.iter().map(|n| (n["idempotencyKey"].as_str().unwrap().to_string(), n)).collect();
    assert_eq!(row_of.len(), rows.len(), "idempotency keys are unique");
    assert_eq!(
        deliveries.keys().collect::<Vec<_>>(),
        row_of.keys().collect::<Vec<_>>(),
        "the receiver got each notification of the log, and nothing else"
    );

    // 3. Repeats only for sends in flight at a kill, each counted; 4. a repeat is the same message.
    let mut repeats = 0;
    for (k, got) in &deliveries {
        let row = row_of[k];
        let (n_repeats, attempts) = (row["repeats"].as_i64().unwrap(), row["attempts"].as_i64().unwrap());
        let flown = killed_in_flight.get(k).copied().unwrap_or(0);
        assert_eq!(n_repeats, i64::from(flown), "{k}: repeated once per kill that found it in flight: {row}");
        assert_eq!(attempts, 1 + n_repeats, "{k}: no attempt but the first and the repeats: {row}");
        assert!(got.len() as i64 <= attempts, "{k}: {} deliveries, {attempts} attempts: {row}", got.len());
        for r in got {
            assert_eq!(r.body, got[0].body, "{k}: a repeat carries the first delivery's body");
            assert_eq!(r.json()["idempotencyKey"], k.as_str());
        }
        repeats += n_repeats;
    }
    let extra = deliveries.values().map(|d| d.len() - 1).sum::<usize>() as i64;
    assert!(repeats as usize <= kills, "{repeats} repeats after {kills} kills");
    assert_eq!(repeats as f64, counted, "each repeat counted in /metrics by the server that made it");
    assert!(extra <= repeats, "{extra} extra deliveries, {repeats} repeats counted");
    assert_eq!(extra, reached, "the extra deliveries are the sends the receiver had when a kill landed");
    println!(
        "{kills} kills, {} notifications, {repeats} sends in flight at a kill and repeated ({extra} had reached \
         the receiver, {} had not), in {:.1?}",
        rows.len(),
        repeats - extra,
        started.elapsed()
    );
}

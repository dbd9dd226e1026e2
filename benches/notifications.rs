//! Notifications under a burst: how long a committed transaction takes to reach each channel's
//! receiver when 100 alert rules fire at once, and how fast the outbox drains a channel while
//! another is slow.
//!
//! `cargo bench --bench notifications` (release). One private PostgreSQL with the fixtures and
//! one `opslive serve` of this build; local servers stand in for Slack, Twilio and a webhook
//! receiver (HTTP, `tests/support/standin.rs`) and for a mail relay (SMTP with STARTTLS and
//! AUTH, `tests/support/smtp.rs`).
//!
//! - commit → received: 100 row rules match the same test order, so one INSERT fires 100
//!   alerts; the policy routes every alert to a webhook, a Slack, a Twilio (one recipient) and
//!   an email contact point, ungrouped, so each channel gets 100 messages. The time from the
//!   INSERT's commit returning to the stand-in receiving each message, p50/p99 per channel,
//!   over `NOTIFY_BENCH_ROUNDS` bursts (default 3; the order is paid between rounds, which
//!   sends the resolved messages, drained before the next burst).
//! - outbox throughput: the same burst to two webhooks, alone and then beside a webhook that
//!   takes `NOTIFY_BENCH_SLOW_MS` (default 500) per request; notifications per second the fast
//!   one received from its first to its 100th, in both cases.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use support::alerting::INSERT_TEST_ORDER;
use support::graphql::{Shop, data, fixture_policy, token};
use support::standin::{Answer, StandIn};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const RULES: usize = 100;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn contact_point(shop: &Shop, admin: &str, name: &str, kind: &str, settings: Json) -> String {
    let q = "mutation($input: ContactPointInput!) { createContactPoint(input: $input) { id } }";
    let d = data(shop.addr, admin, q, json!({ "input": { "name": name, "kind": kind, "settings": settings } })).await;
    d["createContactPoint"]["id"].as_str().unwrap().to_string()
}

/// A webhook contact point at the stand-in's `/<name>`.
async fn webhook(shop: &Shop, admin: &str, standin: &StandIn, name: &str) -> String {
    let settings = json!({ "url": standin.url(&format!("/{name}")), "secret": "bench-signing-secret-0123" });
    contact_point(shop, admin, name, "WEBHOOK", settings).await
}

async fn route(shop: &Shop, admin: &str, points: &[&str]) {
    let policy =
        json!({ "routes": [{ "matchers": [{ "label": "bench", "value": "burst" }], "contactPoints": points }] });
    data(shop.addr, admin, "mutation($p: JSON!) { setNotificationPolicy(policy: $p) }", json!({ "p": policy })).await;
}

/// `RULES` row rules on the same filter: one pending test order fires them all.
async fn rules(shop: &Shop, admin: &str) {
    for i in 0..RULES {
        data(
            shop.addr,
            admin,
            "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id } }",
            json!({ "input": { "name": format!("Burst rule {i:03}"), "severity": "CRITICAL",
                               "labels": { "bench": "burst" }, "summary": "order {{id}} waits",
                               "rows": { "table": "orders", "filter": { "currency": { "eq": "XTS" },
                                                                        "status": { "eq": "pending" } } } } }),
        )
        .await;
    }
}

/// Inserts the test order; returns its id and the instant its commit returned.
async fn burst(client: &tokio_postgres::Client) -> (i64, Instant) {
    let row = client.query_one(&format!("{INSERT_TEST_ORDER} RETURNING id"), &[]).await.unwrap();
    (row.get(0), Instant::now())
}

/// Waits until the outbox has nothing left to send.
async fn drained(shop: &Shop, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let d = data(
            shop.addr,
            admin,
            "{ pending: notifications(where: { status: PENDING }, limit: 1) { id } \
                                          sending: notifications(where: { status: SENDING }, limit: 1) { id } }",
            json!({}),
        )
        .await;
        if d["pending"].as_array().unwrap().is_empty() && d["sending"].as_array().unwrap().is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the outbox did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start() -> (Shop, String, tokio_postgres::Client) {
    let settings = format!(
        "\n[notifications]\nsecret_key = {KEY:?}\npublic_url = \"https://ops.example.com/\"\ntimeout_seconds = 30\n"
    );
    let shop = Shop::start_with(opslive::demo::FIXTURE_SEED, &fixture_policy(), "", &settings).await;
    let admin = token("admin", json!({ "sub": "bench@example.com" }));
    let client = shop.pg.connect("shop").await;
    // The test server runs with `synchronous_commit = off`, under which logical decoding sees a
    // commit only once the WAL writer flushes it (up to `wal_writer_delay`, 200 ms, later): the
    // writes measured here wait for their flush, as a production server's do.
    client.batch_execute("SET synchronous_commit = on").await.unwrap();
    (shop, admin, client)
}

/// How many messages each channel's stand-in has: webhook, Slack, Twilio, email.
fn received(standin: &StandIn, smtp: &support::smtp::SmtpStandIn) -> [usize; 4] {
    let http = |prefix: &str| standin.received(prefix).len();
    [http("/hook"), http("/slack/"), http("/twilio/"), smtp.mails().len()]
}

async fn latency(rounds: usize) {
    let (shop, admin, client) = start().await;
    let standin = StandIn::start().await;
    let smtp = support::smtp::SmtpStandIn::start("opslive", "bench-pass").await;
    let hook = webhook(&shop, &admin, &standin, "hook").await;
    let slack = contact_point(&shop, &admin, "slack", "SLACK", json!({ "url": standin.url("/slack/T/B/x") })).await;
    let sms = contact_point(
        &shop,
        &admin,
        "sms",
        "TWILIO",
        json!({ "baseUrl": standin.url("/twilio/"), "accountSid": SID, "authToken": "t", "from": "+15005550006",
                "to": ["+15005550001"] }),
    )
    .await;
    let mail = contact_point(
        &shop,
        &admin,
        "mail",
        "EMAIL",
        json!({ "host": "localhost", "port": smtp.port, "security": "starttls", "username": "opslive",
                "password": "bench-pass", "from": "alerts@example.com", "to": ["oncall@example.com"],
                "caCertificate": smtp.ca_pem }),
    )
    .await;
    route(&shop, &admin, &[&hook, &slack, &sms, &mail]).await;
    rules(&shop, &admin).await;

    let channels = ["webhook", "slack", "twilio", "email"];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); channels.len()];
    for round in 0..rounds {
        let seen = received(&standin, &smtp);
        let (order, committed) = burst(&client).await;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let now = received(&standin, &smtp);
            if now.iter().zip(seen).all(|(n, s)| *n >= s + RULES) {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: received {now:?} after {seen:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ms = |at: Instant| at.duration_since(committed).as_secs_f64() * 1e3;
        let http = |prefix: &str, from: usize| -> Vec<f64> {
            standin.received(prefix)[from..from + RULES].iter().map(|r| ms(r.at)).collect()
        };
        samples[0].extend(http("/hook", seen[0]));
        samples[1].extend(http("/slack/", seen[1]));
        samples[2].extend(http("/twilio/", seen[2]));
        samples[3].extend(smtp.mails()[seen[3]..seen[3] + RULES].iter().map(|m| ms(m.at)));
        // Resolve, and let the resolved messages drain before the next burst.
        client.execute("UPDATE orders SET status = 'paid' WHERE id = $1", &[&order]).await.unwrap();
        let want = [seen[0] + 2 * RULES, seen[1] + 2 * RULES, seen[2] + 2 * RULES, seen[3] + 2 * RULES];
        loop {
            let now = received(&standin, &smtp);
            if now.iter().zip(want).all(|(n, w)| *n >= w) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drained(&shop, &admin).await;
    }
    println!("commit → received, {RULES} alerts in one transaction, {rounds} rounds (ms):");
    println!("  {:<8} {:>6} {:>9} {:>9} {:>9} {:>9}", "channel", "n", "first", "p50", "p99", "max");
    for (name, mut s) in channels.iter().zip(samples) {
        s.sort_by(f64::total_cmp);
        println!(
            "  {name:<8} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            s.len(),
            s[0],
            percentile(&s, 0.5),
            percentile(&s, 0.99),
            s[s.len() - 1]
        );
    }
}

/// Notifications per second the fast webhook received, from its first to its `RULES`th.
async fn throughput(slow_ms: u64) {
    let (shop, admin, client) = start().await;
    let standin = StandIn::start().await;
    let fast = webhook(&shop, &admin, &standin, "fast").await;
    let slow = webhook(&shop, &admin, &standin, "slow").await;
    rules(&shop, &admin).await;
    let mut rates = Vec::new();
    for with_slow in [false, true] {
        if with_slow {
            standin.fail("/slow", Answer::Slow(Duration::from_millis(slow_ms)));
            route(&shop, &admin, &[&fast, &slow]).await;
        } else {
            route(&shop, &admin, &[&fast]).await;
        }
        let seen = standin.received("/fast").len();
        let (order, committed) = burst(&client).await;
        let deadline = Instant::now() + Duration::from_secs(600);
        while standin.received("/fast").len() < seen + RULES {
            assert!(Instant::now() < deadline, "the fast webhook did not get its {RULES}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = standin.received("/fast");
        let (first, last) = (got[seen].at, got[seen + RULES - 1].at);
        let slow_got = standin.received("/slow").len();
        // From the first delivery to the last: the lane's own pace, not the alert path's.
        let rate = (RULES - 1) as f64 / last.duration_since(first).as_secs_f64();
        rates.push((with_slow, rate, first.duration_since(committed), slow_got));
        client.execute("UPDATE orders SET status = 'paid' WHERE id = $1", &[&order]).await.unwrap();
        if with_slow {
            // The slow channel's backlog is not this measurement's: it is left to drain alone.
            standin.recover("/slow");
        }
        drained(&shop, &admin).await;
    }
    println!("outbox throughput, a burst of {RULES} to a fast webhook:");
    for (with_slow, rate, first, slow_got) in rates {
        let beside = if with_slow {
            format!("beside a webhook taking {slow_ms} ms a request (it had {slow_got} by then)")
        } else {
            "alone".to_string()
        };
        println!(
            "  {rate:>8.0} notifications/s, the first {:.1} ms after the commit, {beside}",
            first.as_secs_f64() * 1e3
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let rounds = env_or("NOTIFY_BENCH_ROUNDS", 3);
    let slow_ms = env_or("NOTIFY_BENCH_SLOW_MS", 500) as u64;
    latency(rounds).await;
    throughput(slow_ms).await;
}

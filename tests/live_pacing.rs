//! A paced subscription (`extensions.minIntervalMs` on the subscribe) against a real
//! `opslive serve` and PostgreSQL: its first result goes at once, a burst of transactions within
//! the interval reaches it as one message holding the newest result once the interval has
//! passed, while an unpaced subscription on the same socket gets it at once; a value that is not a
//! whole number of milliseconds up to a minute is refused for that operation only.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::graphql::{Shop, fixture_policy, token};
use support::ws::{TRANSPORT_WS, WsClient};

const DATA: &str = "
    INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin');
    INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu');
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
      SELECT 'web', 1, 'paid', g, 'EUR', 'WH-BER', 'eu', 1 FROM generate_series(1, 5) g;
";

const COUNT: &str = "subscription { ordersAggregate { count } }";
const INTERVAL: Duration = Duration::from_secs(3);
const BURST: i64 = 10;

fn count(payload: &serde_json::Value) -> i64 {
    payload["data"]["ordersAggregate"][0]["count"].as_i64().unwrap_or_else(|| panic!("a count: {payload}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_subscription_gets_a_burst_as_its_newest_result_once_the_interval_has_passed() {
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &token("ops_manager", json!({ "sub": "ada" }))).await;

    ws.send(json!({ "id": "paced", "type": "subscribe", "payload": { "query": COUNT, "extensions": { "minIntervalMs": INTERVAL.as_millis() as u64 } } }))
        .await;
    assert_eq!(count(&ws.next("paced").await), 5, "the first result goes at once");
    let first_sent = Instant::now();
    ws.subscribe("instant", COUNT, json!({})).await;
    assert_eq!(count(&ws.next("instant").await), 5);

    // A burst of single-row transactions.
    let db = shop.pg.connect("shop").await;
    for _ in 0..BURST {
        db.batch_execute("INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count) VALUES ('app', 1, 'pending', 1, 'EUR', 'WH-BER', 'eu', 1)")
            .await
            .unwrap();
    }
    let burst_took = first_sent.elapsed();

    let target = 5 + BURST;
    let (mut instant, mut paced) = (Vec::new(), Vec::new());
    while instant.last().map(|(c, _)| *c) != Some(target) || paced.last().map(|(c, _)| *c) != Some(target) {
        let message = ws.message().await.expect("the connection stays open");
        assert_eq!(message["type"], "next", "{message}");
        match message["id"].as_str() {
            Some("instant") => instant.push((count(&message["payload"]), first_sent.elapsed())),
            Some("paced") => paced.push((count(&message["payload"]), first_sent.elapsed())),
            other => panic!("a message for {other:?}: {message}"),
        }
    }
    // Unpaced, the burst went as it came (one message per transaction, or fewer when they
    // came quicker than the socket took them), long before the paced result.
    assert!(instant.iter().all(|(_, at)| *at < INTERVAL / 2), "unpaced: {instant:?}");
    // The paced result waited out the interval since the first (less the first's way to us).
    assert!(paced[0].1 >= INTERVAL - Duration::from_millis(500), "paced: {paced:?}");
    if burst_took < INTERVAL - Duration::from_millis(500) {
        // The whole burst fell within one interval: one message, the newest result.
        assert_eq!(paced.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [target], "paced: {paced:?}");
    } else {
        assert!(paced.len() < BURST as usize, "paced: {paced:?} over a burst of {burst_took:?}");
    }

    // Refused for that operation only, with the reason; the connection stays.
    for bad in [json!(-1), json!(1.5), json!("fast"), json!(60_001)] {
        ws.send(json!({ "id": "bad", "type": "subscribe", "payload": { "query": COUNT, "extensions": { "minIntervalMs": bad } } })).await;
        let message = ws.message().await.expect("the connection stays open");
        assert_eq!((message["type"].as_str(), message["id"].as_str()), (Some("error"), Some("bad")), "{message}");
        assert_eq!(message["payload"][0]["extensions"]["code"], "BAD_USER_INPUT", "{message}");
        assert!(message["payload"][0]["message"].as_str().unwrap_or("").contains("minIntervalMs"), "{message}");
    }
    db.batch_execute("INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count) VALUES ('app', 1, 'pending', 1, 'EUR', 'WH-BER', 'eu', 1)")
        .await
        .unwrap();
    assert_eq!(count(&ws.next("instant").await), 6 + BURST);
}

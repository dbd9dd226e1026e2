//! `[limits]` against a real `opslive serve`: live connections per subject (close 4429) and per
//! address (HTTP 429 before the upgrade), operations per connection and the subscribe rate
//! (an `error` for that operation, the connection stays), document depth and size, each place
//! given back when its connection ends, and every refusal counted on `/metrics`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::graphql::{Shop, fixture_policy, post, token};
use support::ws::{TRANSPORT_WS, WsClient};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const LIMITS: &str = "
[limits]
connections_per_subject = 2
connections_per_address = 4
subscriptions_per_connection = 3
subscribes_per_second = 0.5
subscribe_burst = 4
max_depth = 4
max_fields = 12
";

const DATA: &str = "
    INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin');
    INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu');
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
      SELECT 'web', 1, 'paid', g, 'EUR', 'WH-BER', 'eu', 1 FROM generate_series(1, 5) g;
";

/// A `/metrics` sample: `name{labels}` exactly as written.
async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let page = support::http::get(addr, "/metrics").await.body;
    page.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in /metrics"))
}

/// Connects as `token`, retrying while a closed connection's place is being given back (the
/// server notices a close when it next reads the socket).
async fn connect_when_free(addr: SocketAddr, token: &str) -> WsClient {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match WsClient::try_open(addr, TRANSPORT_WS).await {
            Ok(mut client) => {
                let init =
                    json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
                client.send(init).await;
                match client.message().await {
                    Ok(ack) if ack["type"] == "connection_ack" => return client,
                    other => assert!(Instant::now() < deadline, "no place came free: {other:?}"),
                }
            }
            Err(e) => assert!(Instant::now() < deadline, "no place came free: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The upgrade's HTTP status, or 101 when it was accepted.
async fn upgrade_status(addr: SocketAddr) -> (u16, Option<String>) {
    let mut request = format!("ws://{addr}/graphql").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", TRANSPORT_WS.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => (101, None),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (response.status().as_u16(), retry)
        }
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_is_answered_by_its_protocol_and_gives_its_place_back() {
    let shop = Shop::start_with(DATA, &fixture_policy(), "", LIMITS).await;
    let addr = shop.addr;
    let alice = token("ops_manager", json!({ "sub": "alice" }));
    let bob = token("ops_manager", json!({ "sub": "bob" }));

    // Per subject: Alice's third connection is closed with 4429 after its init; Bob is not
    // counted with her.
    let first = WsClient::connect(addr, TRANSPORT_WS, &alice).await;
    let _second = WsClient::connect(addr, TRANSPORT_WS, &alice).await;
    let mut third = WsClient::open(addr, TRANSPORT_WS).await;
    third.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {alice}") } })).await;
    let closed = third.closed().await;
    assert_eq!(closed.code, 4429, "{closed:?}");
    assert!(closed.reason.contains("connections_per_subject"), "{closed:?}");
    let mut bobs = WsClient::connect(addr, TRANSPORT_WS, &bob).await;

    // Per address: four sockets are open (two of Alice's, Bob's, the refused one is gone),
    // so with one more the fifth upgrade is refused before it happens.
    let _fourth = connect_when_free(addr, &token("admin", json!({ "sub": "root" }))).await;
    assert_eq!(upgrade_status(addr).await, (429, Some("10".to_string())));
    assert_eq!(metric(addr, "opslive_live_connections").await, 4.0);

    // Places are given back: Alice closes one, and connects again.
    drop(first);
    let mut again = connect_when_free(addr, &alice).await;

    // Operations per connection: the fourth open one is refused as an error for that id; the
    // connection stays, and completing one makes room.
    for id in ["a", "b", "c"] {
        again.subscribe(id, "subscription { ordersAggregate { count } }", json!({})).await;
        assert_eq!(again.next(id).await["data"]["ordersAggregate"][0]["count"], 5);
    }
    again.subscribe("d", "subscription { ordersAggregate { count } }", json!({})).await;
    let refused = again.message().await.unwrap();
    assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("error"), Some("d")), "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{refused}");
    assert!(refused["payload"][0]["message"].as_str().unwrap().contains("subscriptions_per_connection"));
    again.stop("a").await;
    // The burst of four is spent (a, b, c and this one; the refused `d` took none), and the
    // next comes back only after two seconds: `f` is over the rate.
    again.subscribe("e", "subscription { ordersAggregate { count } }", json!({})).await;
    assert_eq!(again.next("e").await["data"]["ordersAggregate"][0]["count"], 5);
    again.stop("b").await;
    again.subscribe("f", "subscription { ordersAggregate { count } }", json!({})).await;
    let limited = again.message().await.unwrap();
    assert_eq!((limited["type"].as_str(), limited["id"].as_str()), (Some("error"), Some("f")), "{limited}");
    assert!(limited["payload"][0]["message"].as_str().unwrap().contains("subscribes_per_second"), "{limited}");
    // One per two seconds refills the bucket: wait for the server's answer, not a clock.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        again.subscribe("f", "subscription { ordersAggregate { count } }", json!({})).await;
        let answer = again.message().await.unwrap();
        if answer["type"] == "next" {
            break;
        }
        assert!(Instant::now() < deadline, "the rate never let a subscribe through: {answer}");
    }
    // Bob's connection was never limited by any of this.
    bobs.subscribe("x", "subscription { ordersAggregate { count } }", json!({})).await;
    assert_eq!(bobs.next("x").await["data"]["ordersAggregate"][0]["count"], 5);

    // Document depth and size.
    let deep = post(
        addr,
        Some(&bob),
        "{ ordersAggregate { sum { total } } __schema { types { fields { type { name } } } } }",
        json!({}),
    )
    .await;
    assert_eq!((deep.status, deep.codes()), (400, vec!["GRAPHQL_VALIDATION_FAILED".to_string()]), "{}", deep.text);
    // Each `aN: ordersAggregate { count }` selects two fields: six fit in twelve, seven do not.
    let wide = (0..7).map(|i| format!("a{i}: ordersAggregate {{ count }}")).collect::<Vec<_>>().join(" ");
    let wide = post(addr, Some(&bob), &format!("{{ {wide} }}"), json!({})).await;
    assert_eq!((wide.status, wide.codes()), (400, vec!["GRAPHQL_VALIDATION_FAILED".to_string()]), "{}", wide.text);
    let fits = (0..6).map(|i| format!("a{i}: ordersAggregate {{ count }}")).collect::<Vec<_>>().join(" ");
    assert_eq!(post(addr, Some(&bob), &format!("{{ {fits} }}"), json!({})).await.status, 200);

    for (limit, at_least) in [
        ("connections_per_subject", 1.0),
        ("connections_per_address", 1.0),
        ("subscriptions_per_connection", 1.0),
        ("subscribes_per_second", 1.0),
    ] {
        let n = metric(addr, &format!("opslive_live_refused_total{{limit=\"{limit}\"}}")).await;
        assert!(n >= at_least, "{limit}: {n}");
    }
}

#[test]
fn a_limit_that_cannot_work_is_refused_at_start_with_its_key() {
    for (toml, key) in [
        ("[limits]\nmax_depth = 1\n", "limits.max_depth"),
        ("[limits]\nsubscribes_per_second = 0\n", "limits.subscribes_per_second"),
        ("[limits]\nsubscribe_burst = 0\n", "limits.subscribe_burst"),
        ("[limits]\nsubscriptions_per_connection = 0\n", "limits.subscriptions_per_connection"),
        ("[limits]\nmax_fields = 0\n", "limits.max_fields"),
        ("[limits]\nconections_per_subject = 5\n", "conections_per_subject"),
    ] {
        let e = opslive::config::Config::from_toml(toml).expect_err(toml).to_string();
        assert!(e.contains(key), "{toml}: {e}");
    }
    let fine = opslive::config::Config::from_toml("[limits]\nconnections_per_subject = 0\n").unwrap();
    assert_eq!(fine.limits.connections_per_subject, 0);
}

/// One client stops reading while another is served and the source keeps writing: the reader
/// gets every transaction, in order, as if nothing happened; the frozen one is closed once a
/// write to it waits past `write_timeout_seconds` (kernel buffers full), with a 1008 it sees
/// when it reads again, and `/metrics` counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_slows_no_one() {
    // 400 orders with 1 KB notes: each result below is about 400 KB.
    let data = "
        INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin');
        INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu');
        INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes)
          SELECT 'web', 1, 'paid', g, 'EUR', 'WH-BER', 'eu', 1, repeat('n', 1000) FROM generate_series(1, 400) g;
    ";
    let limits = "\n[limits]\nwrite_timeout_seconds = 1\n";
    let shop = Shop::start_with(data, &fixture_policy(), "", limits).await;
    let admin = token("admin", json!({ "sub": "root" }));
    let mut frozen = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    for (id, order) in [("up", "ASC"), ("down", "DESC")] {
        let query = format!("subscription {{ orders(orderBy: {{ id: {order} }}, limit: 400) {{ id notes }} }}");
        frozen.subscribe(id, &query, json!({})).await;
        frozen.next(id).await;
    }
    let mut reader = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    reader.subscribe("count", "subscription { ordersAggregate { count } }", json!({})).await;
    assert_eq!(reader.next("count").await["data"]["ordersAggregate"][0]["count"], 400);

    // From here `frozen` reads nothing. Each transaction changes both of its results (about
    // 800 KB to send) and the reader's count; the reader must see each one.
    let pg = shop.pg.connect("shop").await;
    let mut n = 400;
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(shop.addr, "opslive_live_refused_total{limit=\"write_timeout_seconds\"}").await < 1.0 {
        assert!(Instant::now() < deadline, "the frozen client was never closed");
        n += 1;
        pg.batch_execute(&format!(
            "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes) \
             VALUES ('web', 1, 'paid', 1, 'EUR', 'WH-BER', 'eu', 1, repeat('m', 1000)); \
             UPDATE orders SET notes = repeat('{}', 1000) WHERE id = 1",
            (b'a' + (n % 26) as u8) as char
        ))
        .await
        .unwrap();
        let count = reader.next("count").await;
        assert_eq!(count["data"]["ordersAggregate"][0]["count"], n, "the reader saw every transaction in order");
    }
    println!("the frozen client was closed after {} transactions", n - 400);

    // Reading again, the frozen client finds what its buffers held, then the close.
    let closed = frozen.closed().await;
    println!("the frozen client read its close: {closed:?}");
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert!(closed.reason.contains("write_timeout_seconds"), "{closed:?}");
    assert_eq!(metric(shop.addr, "opslive_live_connections").await, 1.0, "only the reader is left");
}

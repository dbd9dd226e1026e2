//! GraphQL over Server-Sent Events (`/graphql/stream`, the graphql-sse protocol) against a real
//! `opslive serve`:
//!
//! - the graphql-sse client library from npm, in single-connection mode (two operations on one
//!   stream) and distinct-connections mode, gets exactly the messages a WebSocket client gets,
//!   for a live query and a change stream;
//! - each request of the protocol gets its documented answer (201 token, 409 second stream,
//!   202 operations, 400 request errors, 404 unknown token, 200 DELETE with `complete`, 429 over
//!   `[limits]`), errors before execution in distinct mode come on the stream, and a revoked or
//!   expired token ends the stream after telling each open operation why.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value as Json, json};
use support::graphql::{SECRET, Shop, data, fixture_policy, token};
use support::node::{Script, node_missing};
use support::ws::{TRANSPORT_WS, WsClient};

const DATA: &str = "
    INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin');
    INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu');
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes)
      SELECT 'web', 1, 'paid', g, 'EUR', 'WH-BER', 'eu', 1, 'seed ' || g FROM generate_series(1, 5) g;
";

const LATEST: &str = "subscription { orders(orderBy: {id: DESC}, limit: 3) { id notes } }";
const CHANGES: &str =
    "subscription { ordersChanges { cursor xid events { kind op key { id } before { notes } after { id notes } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_sse_clients_in_both_modes_get_what_websocket_gets() {
    if node_missing("graphql_sse_clients_in_both_modes_get_what_websocket_gets") {
        return;
    }
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let db = shop.pg.connect("shop").await;
    let url = format!("http://{}/graphql/stream", shop.addr);

    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    ws.subscribe("latest", LATEST, json!({})).await;
    ws.subscribe("changes", CHANGES, json!({})).await;
    let over_ws = [ws.next("latest").await, ws.next("changes").await];

    let mut single_live = Script::start("sse.mjs", &["single", &url, &admin, LATEST]);
    let mut distinct_live = Script::start("sse.mjs", &["distinct", &url, &admin, LATEST]);
    // Two change streams on one event stream, and one on a stream of its own.
    let mut single_changes = Script::start("sse.mjs", &["single2", &url, &admin, CHANGES]);
    let mut distinct_changes = Script::start("sse.mjs", &["distinct", &url, &admin, CHANGES]);
    let mut firsts = vec![single_live.next().await, distinct_live.next().await];
    firsts.push(single_changes.next().await);
    firsts.push(single_changes.next().await);
    firsts.push(distinct_changes.next().await);
    let strip = |mut v: Json| {
        v.as_object_mut().map(|o| o.remove("op"));
        v
    };
    let firsts: Vec<Json> = firsts.into_iter().map(strip).collect();
    for (i, first) in firsts.iter().enumerate() {
        let wanted = if i < 2 { &over_ws[0] } else { &over_ws[1] };
        assert_eq!(first["data"], wanted["data"], "SSE client {i}'s first result is the WebSocket's");
    }

    // One write at a time, each read everywhere before the next: a full-form result that
    // waits unsent is replaced by a newer one (by design), which would make the streams differ.
    for write in [
        "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes)
         VALUES ('web', 1, 'paid', 9, 'EUR', 'WH-BER', 'eu', 1, 'over sse')",
        "UPDATE orders SET notes = 'changed' WHERE id = 5",
    ] {
        db.execute(write, &[]).await.unwrap();
        // One message per operation; their order between the two operations is not fixed.
        let (mut live, mut changes) = (Json::Null, Json::Null);
        for _ in 0..2 {
            let message = ws.message().await.expect("a message");
            assert_eq!(message["type"], "next", "{message}");
            match message["id"].as_str() {
                Some("latest") => live = message["payload"].clone(),
                _ => changes = message["payload"].clone(),
            }
        }
        assert!(live.is_object() && changes.is_object(), "one of each: {live} {changes}");
        for (name, client, wanted) in [
            ("single, live", &mut single_live, &live),
            ("distinct, live", &mut distinct_live, &live),
            ("distinct, changes", &mut distinct_changes, &changes),
        ] {
            assert_eq!(&client.next().await, wanted, "{name}: the same message as over WebSocket");
        }
        // Both operations of the shared stream get it, each under its own id.
        let mut ops = Vec::new();
        for _ in 0..2 {
            let got = single_changes.next().await;
            ops.push(got["op"].as_u64().unwrap());
            assert_eq!(&strip(got), &changes, "single connection, changes");
        }
        ops.sort();
        assert_eq!(ops, [1, 2]);
    }
}

/// An event of a stream: its name and its data (JSON, or null when empty).
type Event = (String, Json);

/// Reads an event stream chunk by chunk.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    fn new(response: reqwest::Response) -> Events {
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Events { response, buffer: String::new() }
    }

    /// The next event (comments skipped), or `None` when the stream ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = Some(e.trim().to_string());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                let Some(event) = event else { continue };
                let data = if data.is_empty() { Json::Null } else { serde_json::from_str(&data).unwrap() };
                return Some((event, data));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("an event within 20 s")
                .expect("reading the stream")?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// The first error code of a JSON errors body.
fn code(body: &Json) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_of_the_sse_protocol_gets_its_documented_answer() {
    let shop = Shop::start_with(DATA, &fixture_policy(), "limits.subscriptions_per_connection = 2", "").await;
    let url = format!("http://{}/graphql/stream", shop.addr);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let admin = token("admin", json!({}));
    let bearer = format!("Bearer {admin}");
    const TOKEN: &str = "X-GraphQL-Event-Stream-Token";

    assert_eq!(http.put(&url).send().await.unwrap().status(), 401, "no token, no reservation");
    let reply = http.put(&url).header("Authorization", &bearer).send().await.unwrap();
    assert_eq!(reply.status(), 201);
    let stream_token = reply.text().await.unwrap();
    let unknown = http.get(&url).header(TOKEN, "nope").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let mut events = Events::new(
        http.get(&url).header(TOKEN, &stream_token).header("Accept", "text/event-stream").send().await.unwrap(),
    );
    let second = http.get(&url).header(TOKEN, &stream_token).send().await.unwrap();
    assert_eq!(second.status(), 409, "one stream per reservation");

    let post = |body: Json| http.post(&url).header(TOKEN, &stream_token).json(&body).send();
    let reply = post(json!({ "query": "{ orders(limit: 1) { id } }" })).await.unwrap();
    assert_eq!(reply.status(), 400, "an operation on a stream needs its id");
    let reply =
        post(json!({ "query": "{ orders(limit: 1) { id } }", "extensions": { "operationId": "q" } })).await.unwrap();
    assert_eq!(reply.status(), 202);
    assert_eq!(
        events.next().await.unwrap(),
        ("next".into(), json!({ "id": "q", "payload": { "data": { "orders": [{ "id": "1" }] } } }))
    );
    assert_eq!(events.next().await.unwrap(), ("complete".into(), json!({ "id": "q" })));
    let count = json!({ "query": "subscription { ordersAggregate { count } }", "extensions": { "operationId": "s" } });
    assert_eq!(post(count.clone()).await.unwrap().status(), 202);
    let (event, got) = events.next().await.unwrap();
    assert_eq!(
        (event.as_str(), &got["id"], &got["payload"]["data"]["ordersAggregate"][0]["count"]),
        ("next", &json!("s"), &json!(5))
    );
    assert_eq!(post(count).await.unwrap().status(), 409, "an operation id already running");
    let invalid =
        post(json!({ "query": "subscription { nope }", "extensions": { "operationId": "bad" } })).await.unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(code(&invalid.json().await.unwrap()), "GRAPHQL_VALIDATION_FAILED");
    let changes = json!({ "query": CHANGES, "extensions": { "operationId": "c" } });
    assert_eq!(post(changes).await.unwrap().status(), 202);
    assert_eq!(events.next().await.unwrap().1["payload"]["data"]["ordersChanges"]["events"], json!([]));
    let third = json!({ "query": "subscription { ordersAggregate { count } }", "extensions": { "operationId": "t" } });
    let over = post(third).await.unwrap();
    assert_eq!(over.status(), 429, "limits.subscriptions_per_connection counts a stream's operations");
    assert_eq!(code(&over.json().await.unwrap()), "RATE_LIMITED");
    let stop = http.delete(format!("{url}?operationId=s")).header(TOKEN, &stream_token).send().await.unwrap();
    assert_eq!(stop.status(), 200);
    assert_eq!(events.next().await.unwrap(), ("complete".into(), json!({ "id": "s" })));

    // Distinct connections: a request error comes on the stream, then complete, then the end.
    let distinct = http
        .post(&url)
        .header("Authorization", &bearer)
        .header("Accept", "text/event-stream")
        .json(&json!({ "query": "subscription { nope }" }))
        .send()
        .await
        .unwrap();
    let mut distinct = Events::new(distinct);
    let (event, told) = distinct.next().await.unwrap();
    assert_eq!((event.as_str(), code(&told)), ("next", "GRAPHQL_VALIDATION_FAILED"), "{told}");
    assert_eq!(distinct.next().await.unwrap(), ("complete".into(), Json::Null));
    assert_eq!(distinct.next().await, None);

    // A revoked subject's stream: each open operation is told, then the stream ends.
    let alice = token("ops_manager", json!({ "sub": "alice" }));
    let reply = http.put(&url).header("Authorization", format!("Bearer {alice}")).send().await.unwrap();
    let alice_token = reply.text().await.unwrap();
    let mut alice_events = Events::new(http.get(&url).header(TOKEN, &alice_token).send().await.unwrap());
    let count = json!({ "query": "subscription { ordersAggregate { count } }", "extensions": { "operationId": "a" } });
    let reply = http.post(&url).header(TOKEN, &alice_token).json(&count).send().await.unwrap();
    assert_eq!(reply.status(), 202);
    assert_eq!(alice_events.next().await.unwrap().0, "next");
    data(shop.addr, &admin, "mutation { revokeSubject(sub: \"alice\") { id } }", json!({})).await;
    let (event, told) = alice_events.next().await.unwrap();
    assert_eq!((event.as_str(), &told["id"]), ("next", &json!("a")));
    assert!(told["payload"]["errors"][0]["message"].as_str().unwrap().contains("revoked"), "{told}");
    assert_eq!(alice_events.next().await.unwrap(), ("complete".into(), json!({ "id": "a" })));
    assert_eq!(alice_events.next().await, None, "the stream ends");
    let gone = http.post(&url).header(TOKEN, &alice_token).json(&count).send().await.unwrap();
    assert_eq!(gone.status(), 404, "its reservation went with it");

    // A token that expires: the same, at its `exp`.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let short = jsonwebtoken::encode(
        &Header::default(),
        &json!({ "role": "admin", "sub": "bob", "exp": now + 2 }),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let mut bob = Events::new(
        http.post(&url)
            .header("Authorization", format!("Bearer {short}"))
            .header("Accept", "text/event-stream")
            .json(&json!({ "query": "subscription { ordersAggregate { count } }" }))
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(bob.next().await.unwrap().1["data"]["ordersAggregate"][0]["count"], 5);
    let (event, told) = bob.next().await.unwrap();
    assert_eq!((event.as_str(), code(&told)), ("next", "UNAUTHENTICATED"), "{told}");
    assert_eq!(bob.next().await.unwrap(), ("complete".into(), Json::Null));
    assert_eq!(bob.next().await, None);
    // The admin's stream was open all along.
    drop(events);
}

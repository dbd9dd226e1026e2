//! Token revocation against a real `opslive serve`: revoking a subject closes all of its open
//! live connections (both WebSocket protocols) within a second and leaves everyone else's open;
//! revoking one token by `jti` leaves the subject's other tokens; a revoked token is refused on
//! new requests and still after a restart, while a token issued after the revocation works;
//! another instance sharing the app database closes its connections of a revoked subject too.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value as Json, json};
use support::graphql::{SECRET, Shop, data, fixture_policy, post, token};
use support::ws::{Closed, LEGACY, TRANSPORT_WS, WsClient};

const COUNT: &str = "subscription { ordersAggregate { count } }";
const REVOKE_SUBJECT: &str = "mutation($sub: String!, $reason: String) { \
                              revokeSubject(sub: $sub, reason: $reason) { id jti sub issuedBefore reason revokedBy revokedAt } }";
const REVOKE_TOKEN: &str = "mutation($jti: String!) { revokeToken(jti: $jti) { id jti sub issuedBefore revokedBy } }";

/// A connection with one live count open, its first answer read.
async fn watching(addr: SocketAddr, protocol: &'static str, token: &str) -> WsClient {
    let mut client = WsClient::connect(addr, protocol, token).await;
    client.subscribe("count", COUNT, json!({})).await;
    let first = client.next("count").await;
    assert!(first["data"]["ordersAggregate"][0]["count"].is_number(), "{first}");
    client
}

/// Opens `n` watching connections, `parallel` at a time.
async fn open_many(addr: SocketAddr, protocol: &'static str, token: &str, n: usize) -> Vec<WsClient> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let batch = (n - out.len()).min(100);
        out.extend(join_all((0..batch).map(|_| watching(addr, protocol, token))).await);
    }
    out
}

fn count(payload: &Json) -> i64 {
    payload["data"]["ordersAggregate"][0]["count"].as_i64().unwrap_or_else(|| panic!("no count in {payload}"))
}

/// The first error code of an HTTP reply.
fn code(reply: &support::graphql::Reply) -> String {
    reply.codes().first().cloned().unwrap_or_else(|| panic!("no error in {}", reply.text))
}

/// An HS256 token for `role` and `sub` issued at `iat` (Unix seconds).
fn issued_at(role: &str, sub: &str, iat: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({ "role": role, "sub": sub, "iat": iat, "exp": now + 3600 });
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_subject_closes_its_thousand_sockets_within_a_second_and_outlives_a_restart() {
    // The test holds a thousand sockets too.
    opslive::open_files::raise_to_hard_limit();
    // A thousand sockets of one subject are over the default limit of 100.
    let limits = "\n[limits]\nconnections_per_subject = 0\nconnections_per_address = 0\n";
    let mut shop = Shop::start_with(opslive::demo::FIXTURE_SEED, &fixture_policy(), "", limits).await;
    let admin = token("admin", json!({ "sub": "root" }));
    // Alice signed in twice: one token has a `jti`, the other none; both go when her subject does.
    let alice_one = token("ops_manager", json!({ "sub": "alice", "jti": "alice-laptop" }));
    let alice_two = token("ops_manager", json!({ "sub": "alice" }));
    let bob = token("ops_manager", json!({ "sub": "bob", "jti": "bob-1" }));

    // A role without `revoke_tokens` has no such mutation, and revokes nothing.
    let refused = post(shop.addr, Some(&bob), REVOKE_SUBJECT, json!({ "sub": "alice" })).await;
    assert!(refused.json()["errors"][0]["message"].as_str().unwrap().contains("revokeSubject"), "{}", refused.text);

    let mut alice = open_many(shop.addr, TRANSPORT_WS, &alice_one, 500).await;
    alice.extend(open_many(shop.addr, LEGACY, &alice_two, 500).await);
    let mut others = open_many(shop.addr, TRANSPORT_WS, &bob, 10).await;
    others.extend(open_many(shop.addr, LEGACY, &bob, 10).await);

    // Every Alice socket waits for its close from before the revocation is sent.
    let waits: Vec<_> = alice
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let closed = client.closed().await;
                (closed, Instant::now(), client.protocol)
            })
        })
        .collect();
    let sent = Instant::now();
    let record = data(shop.addr, &admin, REVOKE_SUBJECT, json!({ "sub": "alice", "reason": "laptop stolen" })).await;
    let record = &record["revokeSubject"];
    assert_eq!((record["sub"].as_str(), record["jti"].as_str()), (Some("alice"), None), "{record}");
    assert_eq!((record["reason"].as_str(), record["revokedBy"].as_str()), (Some("laptop stolen"), Some("root")));
    let mut slowest = Duration::ZERO;
    for wait in waits {
        let (closed, at, protocol) = wait.await.unwrap();
        assert_eq!(closed.code, 4403, "{protocol}: {closed:?}");
        assert!(closed.reason.contains("revoked"), "{protocol}: {closed:?}");
        slowest = slowest.max(at - sent);
    }
    println!("1,000 sockets of the revoked subject closed {slowest:?} after the mutation was sent");
    assert!(slowest < Duration::from_secs(1), "the last socket closed {slowest:?} after the revocation");

    // Bob's sockets are open and still served.
    let before = data(shop.addr, &bob, "{ ordersAggregate { count } }", json!({})).await;
    let before = before["ordersAggregate"][0]["count"].as_i64().unwrap();
    let pg = shop.pg.connect("shop").await;
    pg.batch_execute(
        "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count) \
         SELECT 'web', c.id, 'pending', 10, 'EUR', w.id, 'eu', 1 FROM customers c, warehouses w LIMIT 1",
    )
    .await
    .unwrap();
    for client in &mut others {
        let mut seen = count(&client.next("count").await);
        while seen == before {
            seen = count(&client.next("count").await);
        }
        assert_eq!(seen, before + 1);
    }

    // Revoked tokens are refused on new requests, over HTTP and WebSocket alike.
    for t in [&alice_one, &alice_two] {
        let reply = post(shop.addr, Some(t), "{ ordersAggregate { count } }", json!({})).await;
        assert_eq!((reply.status, code(&reply)), (401, "TOKEN_REVOKED".to_string()), "{}", reply.text);
    }
    let mut late = WsClient::open(shop.addr, TRANSPORT_WS).await;
    late.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {alice_one}") } }))
        .await;
    let Closed { code: late_code, reason } = late.closed().await;
    assert_eq!(late_code, 4403, "{reason}");

    // One token by its id: Bob's other sign-in keeps working.
    let bob_two = token("ops_manager", json!({ "sub": "bob", "jti": "bob-2" }));
    let revoked = data(shop.addr, &admin, REVOKE_TOKEN, json!({ "jti": "bob-1" })).await;
    assert_eq!(revoked["revokeToken"]["jti"], "bob-1");
    for client in &mut others {
        let closed = client.closed().await;
        assert_eq!(closed.code, 4403, "{closed:?}");
    }
    let again = data(shop.addr, &admin, REVOKE_TOKEN, json!({ "jti": "bob-1" })).await;
    assert_eq!(again["revokeToken"]["id"], revoked["revokeToken"]["id"], "revoking twice keeps the first record");
    watching(shop.addr, TRANSPORT_WS, &bob_two).await;

    // Another instance sharing the app database closes its own sockets of a subject revoked
    // here (it reads the revocations every 2 s).
    let second_dir = tempfile::tempdir().unwrap();
    let second_policy = second_dir.path().join("policy.toml");
    std::fs::write(&second_policy, "[roles.ops_manager]\ndescription = \"orders\"\n").unwrap();
    let second_config = second_dir.path().join("opslive.toml");
    let text = format!(
        "policy = {:?}\ndata_dir = {:?}\n[app_database]\nurl = {:?}\n[auth]\nhs256_secret = {SECRET:?}\n",
        second_policy.display().to_string(),
        second_dir.path().join("data").display().to_string(),
        shop.pg.url("opslive"),
    );
    std::fs::write(&second_config, text).unwrap();
    let mut second = support::serve::Serve::start(&second_config);
    let second_addr = second.wait_listening().await;
    let carol = token("ops_manager", json!({ "sub": "carol" }));
    let mut remote = WsClient::connect(second_addr, TRANSPORT_WS, &carol).await;
    let mut local = WsClient::connect(shop.addr, LEGACY, &carol).await;
    data(shop.addr, &admin, REVOKE_SUBJECT, json!({ "sub": "carol" })).await;
    assert_eq!(local.closed().await.code, 4403);
    let closed = remote.closed().await;
    assert_eq!(closed.code, 4403, "{closed:?}");
    second.terminate().await;

    // After a restart, from the app database: the same refusals; a token issued after the
    // revocation (a new sign-in) is accepted.
    let cutoff = chrono::DateTime::parse_from_rfc3339(record["issuedBefore"].as_str().unwrap()).unwrap().timestamp();
    shop = shop.restart().await;
    for t in [&alice_one, &alice_two, &bob] {
        let reply = post(shop.addr, Some(t), "{ ordersAggregate { count } }", json!({})).await;
        assert_eq!(code(&reply), "TOKEN_REVOKED", "{}", reply.text);
    }
    let mut late = WsClient::open(shop.addr, LEGACY).await;
    late.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {alice_two}") } }))
        .await;
    let error = late.message().await.expect("connection_error");
    assert_eq!(error["type"], "connection_error", "{error}");
    assert_eq!(late.closed().await.code, 4403);
    watching(shop.addr, TRANSPORT_WS, &bob_two).await;
    watching(shop.addr, LEGACY, &issued_at("ops_manager", "alice", cutoff + 1)).await;
    let same_second =
        post(shop.addr, Some(&issued_at("ops_manager", "alice", cutoff)), "{ orders(limit: 1) { id } }", json!({}))
            .await;
    assert_eq!(code(&same_second), "TOKEN_REVOKED", "a token of the revocation's second counts as before it");

    let list = data(shop.addr, &admin, "{ tokenRevocations { jti sub reason } }", json!({})).await;
    assert_eq!(
        list["tokenRevocations"],
        json!([
            { "jti": null, "sub": "carol", "reason": null },
            { "jti": "bob-1", "sub": null, "reason": null },
            { "jti": null, "sub": "alice", "reason": "laptop stolen" }
        ])
    );
    // Bad input is refused and records nothing.
    for (query, variables, wanted) in [
        (REVOKE_TOKEN, json!({ "jti": "  " }), "`jti` is empty"),
        (REVOKE_SUBJECT, json!({ "sub": "x".repeat(501) }), "longer than 500"),
    ] {
        let reply = post(shop.addr, Some(&admin), query, variables).await;
        assert_eq!(code(&reply), "BAD_USER_INPUT", "{}", reply.text);
        assert!(reply.text.contains(wanted), "{}", reply.text);
    }
    let after = data(shop.addr, &admin, "{ tokenRevocations { id } }", json!({})).await;
    assert_eq!(after["tokenRevocations"].as_array().unwrap().len(), 3);
    shop.serve.terminate().await;
}

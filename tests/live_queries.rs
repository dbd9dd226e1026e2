//! Live queries over WebSocket against a real PostgreSQL: a committed transaction reaches each
//! subscription as one message equal to a fresh query; rows enter and leave by filter and
//! policy, and a row a role may not see is never sent; identical subscriptions are computed
//! once; the incremental form rebuilds the exact result after thousands of random changes.

mod support;

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use support::graphql::{Shop, data, fixture_policy, token};
use support::ws::{LEGACY, TRANSPORT_WS, WsClient};

const DATA: &str = "
    INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin'), ('WH-MAD', 'Madrid', 'eu', 'Europe/Madrid');
    INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu'), ('Bo', 'bo@example.com', NULL, 'eu');
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes, created_at)
      SELECT 'web', 1 + g % 2, (ARRAY['pending','paid','picking'])[1 + g % 3], g * 1.25, 'EUR',
             (ARRAY['WH-BER','WH-MAD'])[1 + g % 2], 'eu', g, 'note ' || g, '2026-01-01'::timestamptz + g * interval '1 minute'
      FROM generate_series(1, 30) g;
";

/// The same document as a query, answered over HTTP: what a live result must equal.
async fn fresh(shop: &Shop, token: &str, subscription: &str) -> Json {
    let query = subscription.replacen("subscription", "query", 1);
    data(shop.addr, token, &query, json!({})).await
}

fn seq(payload: &Json) -> u64 {
    payload["extensions"]["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {payload}"))
}

/// Reads one result for each of `subscriptions` (in whatever order they come; a second one
/// for the same id before the others fails), and checks each continues its sequence and
/// equals a fresh query.
async fn expect_updates(
    ws: &mut WsClient,
    shop: &Shop,
    token: &str,
    subscriptions: &[(&str, &str)],
    seqs: &mut BTreeMap<&str, u64>,
) {
    let mut pending: Vec<(&str, &str)> = subscriptions.to_vec();
    while !pending.is_empty() {
        let message = ws.message().await.expect("an update");
        let id = message["id"].as_str().unwrap_or_default().to_string();
        let i =
            pending.iter().position(|(p, _)| *p == id).unwrap_or_else(|| panic!("an unexpected message: {message}"));
        let (id, doc) = pending.remove(i);
        let payload = &message["payload"];
        let last = seqs.get_mut(id).unwrap();
        assert_eq!(seq(payload), *last + 1, "one message per transaction that changed {id}: {payload}");
        *last += 1;
        assert_eq!(payload["data"], fresh(shop, token, doc).await, "live result of {id} differs from a fresh query");
        assert!(payload["extensions"]["asOf"]["position"].as_str().is_some_and(|p| p.contains('/')), "{payload}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transactions_reach_subscribers_as_one_message_each() {
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let db = shop.pg.connect("shop").await;
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;

    let latest = "subscription { orders(where: {warehouseId: {eq: \"WH-BER\"}}, orderBy: {createdAt: DESC}, limit: 5) { id status total } }";
    let counts = "subscription { ordersAggregate(groupBy: [STATUS]) { key { status } count sum { total } countDistinct { customerId channel } p90 { total } p50 { createdAt status } } }";
    let one = "subscription { ordersByKey(id: \"2\") { id status notes } }";
    let mut seqs = BTreeMap::new();
    for (id, doc) in [("latest", latest), ("counts", counts), ("one", one)] {
        ws.subscribe(id, doc, json!({})).await;
        let first = ws.next(id).await;
        assert_eq!(first["data"], fresh(&shop, &admin, doc).await, "first result of {id}");
        seqs.insert(id, seq(&first));
    }

    // One insert: the window and the counts change, the single row does not.
    db.batch_execute("INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, created_at) VALUES ('app', 1, 'pending', 9.99, 'EUR', 'WH-BER', 'eu', 1, '2026-02-01')").await.unwrap();
    expect_updates(&mut ws, &shop, &admin, &[("latest", latest), ("counts", counts)], &mut seqs).await;

    // A multi-statement, multi-table transaction: one message per subscription, showing its end state.
    db.batch_execute(
        "BEGIN;
         INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, created_at) VALUES ('web', 2, 'paid', 1.00, 'EUR', 'WH-BER', 'eu', 1, '2026-02-02');
         UPDATE orders SET status = 'shipped' WHERE id = 2;
         UPDATE customers SET name = 'Ada L.' WHERE id = 1;
         DELETE FROM orders WHERE id = 30;
         COMMIT;",
    )
    .await
    .unwrap();
    expect_updates(&mut ws, &shop, &admin, &[("latest", latest), ("counts", counts), ("one", one)], &mut seqs).await;

    // Changes nobody's result shows send nothing: a Madrid order (not in `latest`, whose
    // window is Berlin's) changing a column `counts` does not read, and a customer. The next
    // visible change must then be the very next message, one step further.
    db.batch_execute("UPDATE orders SET notes = 'quiet' WHERE id = 1").await.unwrap();
    db.batch_execute("UPDATE customers SET name = 'Bo B.' WHERE id = 2").await.unwrap();
    // A change only `one` shows: once it has arrived, a new subscriber of `counts` (whose
    // answer did not change, so nothing was sent) starts from that transaction, not from the
    // last one that changed `counts`.
    db.batch_execute("UPDATE orders SET notes = 'seen' WHERE id = 2").await.unwrap();
    let shown = ws.next("one").await;
    *seqs.get_mut("one").unwrap() = seq(&shown);
    ws.subscribe("counts again", counts, json!({})).await;
    let joined = ws.next("counts again").await;
    ws.stop("counts again").await;
    assert_eq!(joined["data"], fresh(&shop, &admin, counts).await);
    assert_eq!(joined["extensions"]["asOf"], shown["extensions"]["asOf"], "{joined}");

    db.batch_execute("UPDATE orders SET status = 'cancelled' WHERE id = 31").await.unwrap();
    expect_updates(&mut ws, &shop, &admin, &[("latest", latest), ("counts", counts)], &mut seqs).await;

    // A row leaving the window by update is replaced by the next one (refilled from the index).
    db.batch_execute("UPDATE orders SET warehouse_id = 'WH-MAD' WHERE id = 32").await.unwrap();
    expect_updates(&mut ws, &shop, &admin, &[("latest", latest)], &mut seqs).await;

    // A stopped subscription gets nothing more; the others go on.
    ws.stop("latest").await;
    db.batch_execute("UPDATE orders SET status = 'paid' WHERE id = 2").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = ws.message().await.expect("update");
        got.push(m["id"].as_str().unwrap().to_string());
    }
    got.sort();
    assert_eq!(got, ["counts", "one"]);
}

/// A client of the incremental form: the result rebuilt from `reset` and `patch`es.
#[derive(Default)]
struct PatchClient {
    rows: Vec<Json>,
    seq: u64,
    resets: usize,
}

impl PatchClient {
    fn apply(&mut self, update: &Json) {
        let seq = update["seq"].as_u64().expect("seq");
        if let Some(reset) = update["reset"].as_array() {
            self.rows = reset.clone();
            self.resets += 1;
        } else {
            assert_eq!(seq, self.seq + 1, "a patch follows the previous update without a gap");
            let patch = &update["patch"];
            let mut gone: Vec<Json> =
                patch["removedKeys"].as_array().unwrap().iter().map(|k| k["id"].clone()).collect();
            let upserts = patch["upserts"].as_array().unwrap();
            gone.extend(upserts.iter().map(|u| u["row"]["id"].clone()));
            self.rows.retain(|r| !gone.contains(&r["id"]));
            for u in upserts {
                let index = u["index"].as_u64().unwrap() as usize;
                assert!(index <= self.rows.len(), "upsert index {index} past the result: {update}");
                self.rows.insert(index, u["row"].clone());
            }
        }
        self.seq = seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_rebuild_the_exact_result_after_thousands_of_random_changes() {
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let db = shop.pg.connect("shop").await;
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    let window = "orders(where: {status: {in: [\"pending\", \"paid\"]}}, orderBy: [{total: DESC}, {createdAt: ASC}], limit: 12, offset: 2)";
    let fields = "id status total createdAt";
    let patches = format!(
        "subscription {{ {}Patches{} {{ seq asOf {{ position commitTs }} reset {{ {fields} }} patch {{ upserts {{ index row {{ {fields} }} }} removedKeys {{ id }} }} }} }}",
        "orders",
        &window["orders".len()..]
    );
    let full = format!("subscription {{ {window} {{ {fields} }} }}");
    ws.subscribe("patches", &patches, json!({})).await;
    ws.subscribe("full", &full, json!({})).await;
    let mut client = PatchClient::default();
    client.apply(&ws.next("patches").await["data"]["ordersPatches"]);
    let mut full_result = ws.next("full").await["data"]["orders"].clone();

    // A seeded random history of single- and multi-statement transactions.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let statuses = ["pending", "paid", "picking", "cancelled"];
    let mut statements = 0;
    for _ in 0..1200 {
        let mut tx = String::from("BEGIN;");
        for _ in 0..1 + next(3) {
            statements += 1;
            let id = 1 + next(60);
            match next(4) {
                0 => {
                    tx += &format!(
                        "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, created_at) VALUES ('web', 1, '{}', {}, 'EUR', 'WH-BER', 'eu', 1, '2026-03-01'::timestamptz + {} * interval '1 second');",
                        statuses[next(4) as usize],
                        next(40),
                        next(1000)
                    )
                }
                1 => tx += &format!("UPDATE orders SET status = '{}' WHERE id = {id};", statuses[next(4) as usize]),
                2 => tx += &format!("UPDATE orders SET total = {} WHERE id = {id};", next(40)),
                _ => tx += &format!("DELETE FROM orders WHERE id = {id};"),
            }
        }
        tx += "COMMIT;";
        db.batch_execute(&tx).await.unwrap();
    }
    assert!(statements > 2000);
    // A last change that certainly shows: the new top row.
    db.batch_execute("INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes) VALUES ('web', 1, 'paid', 999, 'EUR', 'WH-BER', 'eu', 1, 'sentinel')").await.unwrap();
    let sentinel: i64 = db.query_one("SELECT id FROM orders WHERE notes = 'sentinel'", &[]).await.unwrap().get(0);
    // The replica may still be applying the history: the wanted result is read once the
    // sentinel is there, and so every transaction before it (a result read earlier is a state
    // the subscriptions may already have passed, and they would never send it again).
    let visible = format!("query {{ orders(where: {{id: {{eq: {sentinel}}}}}) {{ id }} }}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while data(shop.addr, &admin, &visible, json!({})).await["orders"].as_array().is_none_or(|rows| rows.is_empty()) {
        assert!(std::time::Instant::now() < deadline, "the sentinel never reached the replica");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let want = fresh(&shop, &admin, &full).await["orders"].clone();
    let (mut patches_done, mut full_done) = (false, false);
    while !(patches_done && full_done) {
        let message = ws.message().await.expect("updates");
        let payload = &message["payload"];
        match message["id"].as_str() {
            Some("patches") => {
                client.apply(&payload["data"]["ordersPatches"]);
                patches_done = Json::Array(client.rows.clone()) == want;
            }
            Some("full") => {
                full_result = payload["data"]["orders"].clone();
                full_done = full_result == want;
            }
            other => panic!("unexpected {other:?}: {message}"),
        }
    }
    assert_eq!(Json::Array(client.rows.clone()), full_result);
    // This client reads only after the writer is done, so it fell behind: whatever patches it
    // could not take were replaced by resets, never dropped (the seq check above).
    assert!(client.resets >= 1);
}

const REGIONAL_POLICY: &str = r#"
[roles.regional]
[roles.regional.tables.orders]
columns = { except = ["notes"] }
filter = { warehouseId = { in = { claim = "warehouses" } } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_enter_and_leave_by_policy_and_unseen_rows_are_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, REGIONAL_POLICY).unwrap();
    let shop = Shop::start(DATA, &policy).await;
    let berlin = token("regional", json!({"warehouses": ["WH-BER"]}));
    let db = shop.pg.connect("shop").await;
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &berlin).await;

    // A hidden column is not in the role's schema: the subscription is refused up front.
    ws.subscribe("hidden", "subscription { orders { id notes } }", json!({})).await;
    let refused = ws.message().await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{refused}");

    let doc = "subscription { ordersPatches(orderBy: {id: ASC}) { seq reset { id warehouseId } patch { upserts { index row { id warehouseId } } removedKeys { id } } } }";
    ws.subscribe("mine", doc, json!({})).await;
    let mut client = PatchClient::default();
    let first = ws.next("mine").await;
    client.apply(&first["data"]["ordersPatches"]);
    assert!(client.rows.iter().all(|r| r["warehouseId"] == "WH-BER") && client.rows.len() == 15);
    let mut frames = vec![first.to_string()];

    // Madrid's rows are never sent; a Berlin row moving to Madrid leaves (by key); a Madrid
    // row moving to Berlin enters.
    let madrid_only: i64 = db
        .query_one("INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count) VALUES ('web', 1, 'paid', 5, 'EUR', 'WH-MAD', 'eu', 1) RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    db.batch_execute(&format!("UPDATE orders SET total = 6 WHERE id = {madrid_only}")).await.unwrap();
    db.batch_execute("UPDATE orders SET warehouse_id = 'WH-MAD' WHERE id = 2").await.unwrap();
    let update = ws.next("mine").await;
    frames.push(update.to_string());
    let patch = &update["data"]["ordersPatches"]["patch"];
    assert_eq!(patch["removedKeys"], json!([{"id": "2"}]), "{update}");
    client.apply(&update["data"]["ordersPatches"]);
    db.batch_execute("UPDATE orders SET warehouse_id = 'WH-BER' WHERE id = 3").await.unwrap();
    let update = ws.next("mine").await;
    frames.push(update.to_string());
    assert_eq!(
        update["data"]["ordersPatches"]["patch"]["upserts"][0]["row"],
        json!({"id": "3", "warehouseId": "WH-BER"})
    );
    client.apply(&update["data"]["ordersPatches"]);

    let mine: Vec<String> = client.rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let want: Vec<String> = db
        .query("SELECT id::text FROM orders WHERE warehouse_id = 'WH-BER' ORDER BY orders.id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(mine, want);
    let needle = format!("\"{madrid_only}\"");
    assert!(frames.iter().all(|f| !f.contains(&needle)), "a row the role may not see was sent");

    // Another role's rules change: this role's subscriptions go on.
    let mut shop = shop;
    std::fs::write(&policy, format!("{REGIONAL_POLICY}\n[roles.auditor]\nall_tables = true\n")).unwrap();
    shop.serve.wait_log("policy reloaded", |_| {}).await;
    db.batch_execute("UPDATE orders SET warehouse_id = 'WH-BER' WHERE id = 2").await.unwrap();
    let update = ws.next("mine").await;
    assert_eq!(update["data"]["ordersPatches"]["patch"]["upserts"][0]["row"]["id"], "2", "{update}");
    // Its own rules change: its subscriptions end, saying why.
    std::fs::write(&policy, REGIONAL_POLICY.replace("except = [\"notes\"]", "except = [\"notes\", \"total\"]"))
        .unwrap();
    let ended = ws.message().await.unwrap();
    assert_eq!((ended["id"].as_str(), ended["type"].as_str()), (Some("mine"), Some("error")), "{ended}");
    assert_eq!(ended["payload"][0]["extensions"]["code"], "FORBIDDEN", "{ended}");
}

/// A sample of `/metrics`.
async fn metric(shop: &Shop, name: &str) -> f64 {
    let body = support::http::get(shop.addr, "/metrics").await.body;
    body.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("opslive_{name} ")).or_else(|| l.strip_prefix(&format!("opslive_{name}_total ")))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_subscriptions_cost_one_evaluation() {
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let db = shop.pg.connect("shop").await;
    let doc = "subscription Latest { orders(orderBy: {createdAt: DESC}, limit: 5) { id status } }";
    let mut clients = Vec::new();
    for i in 0..40 {
        // Two spellings of one query: an alias-free document with or without an operation name,
        // over both protocols.
        let protocol = if i % 2 == 0 { TRANSPORT_WS } else { LEGACY };
        let mut ws = WsClient::connect(shop.addr, protocol, &token("admin", json!({"n": i}))).await;
        let doc = if i % 3 == 0 { doc.replacen("Latest ", "", 1) } else { doc.to_string() };
        ws.subscribe("1", &doc, json!({})).await;
        ws.next("1").await;
        clients.push(ws);
    }
    assert_eq!(metric(&shop, "live_subscriptions").await, 40.0);
    assert_eq!(metric(&shop, "live_queries").await, 1.0);
    let (evaluations, payloads) = (metric(&shop, "live_evaluations").await, metric(&shop, "live_payloads").await);
    for n in 0..5 {
        // No seeded order is shipped: each update changes what the subscription shows.
        db.batch_execute(&format!("UPDATE orders SET status = 'shipped' WHERE id = {}", 30 - n)).await.unwrap();
        for ws in &mut clients {
            let payload = ws.next("1").await;
            assert!(payload["data"]["orders"].to_string().contains(&format!("\"{}\"", 30 - n)));
        }
    }
    assert_eq!(
        metric(&shop, "live_evaluations").await - evaluations,
        5.0,
        "one evaluation per transaction, not per subscriber"
    );
    assert_eq!(metric(&shop, "live_payloads").await - payloads, 5.0, "one payload per transaction, shared");
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_protocol_and_bad_input() {
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let admin = token("admin", json!({}));

    // graphql-ws (subscriptions-transport-ws): start → data, errors as data, stop; queries too.
    let mut legacy = WsClient::connect(shop.addr, LEGACY, &admin).await;
    legacy.subscribe("q", "query { ordersAggregate { count } }", json!({})).await;
    assert_eq!(legacy.next("q").await["data"]["ordersAggregate"][0]["count"], 30);
    assert_eq!(legacy.message().await.unwrap(), json!({"id": "q", "type": "complete"}));
    legacy
        .subscribe(
            "s",
            "subscription($w: String!) { orders(where: {warehouseId: {eq: $w}}, limit: 2) { id } }",
            json!({"w": "WH-MAD"}),
        )
        .await;
    assert_eq!(legacy.next("s").await["data"]["orders"], json!([{"id": "1"}, {"id": "3"}]));
    legacy.subscribe("bad", "subscription { orders { nope } }", json!({})).await;
    let error = legacy.next("bad").await;
    assert_eq!(error["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{error}");
    assert_eq!(legacy.message().await.unwrap(), json!({"id": "bad", "type": "complete"}));
    legacy.stop("s").await;
    legacy.send(json!({"type": "connection_terminate"})).await;
    assert_eq!(legacy.closed().await.code, 1000);

    // A malformed document is an error for that operation; the connection stays.
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    ws.subscribe("p", "subscription { orders { id }", json!({})).await;
    let e = ws.message().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["payload"][0]["extensions"]["code"].as_str()),
        (Some("error"), Some("GRAPHQL_PARSE_FAILED")),
        "{e}"
    );
    ws.subscribe("p", "subscription { ordersByKey(id: \"1\") { id } }", json!({})).await;
    assert_eq!(ws.next("p").await["data"]["ordersByKey"]["id"], "1");
    // The same id twice while it is open: 4409.
    ws.subscribe("p", "subscription { ordersByKey(id: \"1\") { id } }", json!({})).await;
    assert_eq!(ws.closed().await.code, 4409);

    // Refusals at the door: a bad token (4403, and `connection_error` for the legacy
    // protocol), subscribing before the ack (4401), a message that is not the protocol (4400),
    // an oversized frame (1009).
    let mut ws = WsClient::open(shop.addr, TRANSPORT_WS).await;
    ws.send(json!({"type": "connection_init", "payload": {"Authorization": "Bearer not-a-jwt"}})).await;
    let closed = ws.closed().await;
    assert_eq!(closed.code, 4403, "{closed:?}");
    assert!(closed.reason.starts_with("Forbidden"), "{closed:?}");
    let mut ws = WsClient::open(shop.addr, LEGACY).await;
    ws.send(json!({"type": "connection_init", "payload": {}})).await;
    let refused = ws.message().await.unwrap();
    assert_eq!(refused["type"], "connection_error", "{refused}");
    assert_eq!(ws.closed().await.code, 4403);
    let mut ws = WsClient::open(shop.addr, TRANSPORT_WS).await;
    ws.subscribe("1", "subscription { orders { id } }", json!({})).await;
    assert_eq!(ws.closed().await.code, 4401);
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    ws.send_raw(tokio_tungstenite::tungstenite::Message::Text("{\"type\": 42}".into())).await;
    assert_eq!(ws.closed().await.code, 4400);
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    let huge = format!("{{\"id\":\"1\",\"type\":\"subscribe\",\"payload\":{{\"query\":\"{}\"}}}}", " ".repeat(100_000));
    ws.send_raw(tokio_tungstenite::tungstenite::Message::Text(huge.into())).await;
    assert_eq!(ws.closed().await.code, 1009);

    // A token that expires closes its connection.
    let short = opslive::auth::mint_hs256(
        support::graphql::SECRET,
        "admin",
        Default::default(),
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &short).await;
    let closed = ws.closed().await;
    assert_eq!(closed.code, 4403, "{closed:?}");
    assert!(closed.reason.contains("expired"), "{closed:?}");
}

/// `ago` moves rows by time alone: a row committed now enters `createdAt < now − 2 s` about two
/// seconds later, with no write, as one more message; and a column operand answers as SQL does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_age_into_a_subscription_and_columns_compare_as_in_sql() {
    const STOCK: &str = "
        INSERT INTO products VALUES ('A-1', 'a', 'x', 1), ('A-2', 'b', 'x', 1), ('A-3', 'c', 'x', 1);
        INSERT INTO inventory (sku, warehouse_id, on_hand, reorder_point) VALUES
          ('A-1', 'WH-BER', 5, 10), ('A-2', 'WH-BER', 10, 10), ('A-3', 'WH-BER', 20, 10), ('A-1', 'WH-MAD', 0, 1);
    ";
    let shop = Shop::start(&format!("{DATA}{STOCK}"), &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let db = shop.pg.connect("shop").await;

    // The column operand against the database's own answer.
    let low = data(
        shop.addr,
        &admin,
        "{ inventory(where: { onHand: { ltColumn: \"reorderPoint\" } }, orderBy: [{ sku: ASC }, { warehouseId: ASC }]) { sku warehouseId } }",
        json!({}),
    )
    .await;
    let sql = db
        .query("SELECT sku, warehouse_id FROM inventory WHERE on_hand < reorder_point ORDER BY sku, warehouse_id", &[])
        .await
        .unwrap();
    let want: Vec<Json> =
        sql.iter().map(|r| json!({"sku": r.get::<_, String>(0), "warehouseId": r.get::<_, String>(1)})).collect();
    assert_eq!(low["inventory"], Json::Array(want), "{low}");
    assert_eq!(low["inventory"].as_array().map(Vec::len), Some(2));

    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    let aged =
        "subscription { orders(where: { channel: { eq: \"store\" }, createdAt: { ltAgo: \"PT2S\" } }) { id channel } }";
    ws.subscribe("aged", aged, json!({})).await;
    let first = ws.next("aged").await;
    assert_eq!(first["data"]["orders"], json!([]), "{first}");
    let start = std::time::Instant::now();
    db.batch_execute("INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count) VALUES ('store', 1, 'paid', 1, 'EUR', 'WH-BER', 'eu', 1)").await.unwrap();
    // No further write: the row must enter by itself (the wait is bounded by the client's
    // deadline, not a sleep).
    let entered = ws.next("aged").await;
    assert!(start.elapsed() >= std::time::Duration::from_millis(1500), "entered too early: {:?}", start.elapsed());
    assert_eq!(seq(&entered), seq(&first) + 1, "{entered}");
    assert_eq!(entered["data"]["orders"].as_array().map(Vec::len), Some(1), "{entered}");
    assert_eq!(entered["data"], fresh(&shop, &admin, aged).await);
}

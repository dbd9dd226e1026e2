//! Change streams (`ordersChanges`) against a real `opslive serve` on a real PostgreSQL:
//!
//! - a client away for five seconds under writes resumes with its cursor and gets exactly what
//!   a client that stayed got, in order, nothing twice; cursors that cannot be resumed (older
//!   than the log, from before a truncate, from before where a restarted server's log begins) get `CURSOR_EXPIRED`, garbage
//!   gets `BAD_USER_INPUT`;
//! - random transactions watched by five roles (different row filters, columns and `where`s):
//!   each role's events are exactly the rows SQL says entered, stayed in or left its filter,
//!   transaction by transaction, and nothing about rows it may not see;
//! - a change-stream client that stops reading is closed by the write timeout while a client
//!   beside it gets every transaction;
//! - a subscriber with no news gets cursor-only heartbeats while the log moves on, and resumes
//!   from them after the log has evicted its first cursor.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use support::graphql::{Shop, post, token};
use support::ws::{TRANSPORT_WS, WsClient};

const DATA: &str = "
    INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin'), ('WH-MAD', 'Madrid', 'eu', 'Europe/Madrid'),
                                  ('WH-NYC', 'New York', 'us', 'America/New_York');
    INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu');
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
      SELECT (ARRAY['web','app'])[1 + g % 2], 1, (ARRAY['pending','paid','picking'])[1 + g % 3], g * 10, 'EUR',
             (ARRAY['WH-BER','WH-MAD','WH-NYC'])[1 + g % 3], (ARRAY['eu','us'])[1 + g % 2], 1
      FROM generate_series(1, 40) g;
";

const STREAM: &str = "subscription($after: String) { ordersChanges(where: { region: { eq: \"eu\" } }, after: $after) { \
                      cursor position xid events { kind op key { id } before { id status } after { id status region } } } }";

/// A new order every eu subscriber sees.
const EU_ORDER: &str =
    "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
                        VALUES ('web', 1, 'paid', 5, 'EUR', 'WH-BER', 'eu', 1)";

/// Reads messages of subscription `id` until one has `xid`, returning them all.
async fn until_xid(client: &mut WsClient, id: &str, xid: &str) -> Vec<Json> {
    let mut got = Vec::new();
    loop {
        let payload = client.next(id).await;
        assert!(payload.get("errors").is_none(), "{payload}");
        let stop = payload["data"]["ordersChanges"]["xid"] == xid;
        got.push(payload["data"]["ordersChanges"].clone());
        if stop {
            return got;
        }
    }
}

/// Runs `sql` in one transaction and returns its xid as the API prints it.
async fn transaction(db: &mut tokio_postgres::Client, sql: &str) -> String {
    let tx = db.transaction().await.unwrap();
    let xid: i64 = tx.query_one("SELECT txid_current()", &[]).await.unwrap().get(0);
    tx.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.commit().await.unwrap();
    // txid_current() carries an epoch in its high bits; the source's xid is the low 32.
    (xid & 0xFFFF_FFFF).to_string()
}

/// The error code of a subscription that must fail.
async fn refused(addr: SocketAddr, token: &str, after: &str) -> (String, String) {
    let mut client = WsClient::connect(addr, TRANSPORT_WS, token).await;
    client.subscribe("late", STREAM, json!({ "after": after })).await;
    let message = client.message().await.expect("an answer");
    assert_eq!(message["type"], "error", "{message}");
    let e = &message["payload"][0];
    (e["extensions"]["code"].as_str().unwrap_or("").to_string(), e["message"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_away_for_five_seconds_resumes_with_exactly_what_it_missed() {
    let top = "changes.retain_rows = 2000";
    let mut shop = Shop::start_with(DATA, &support::graphql::fixture_policy(), top, "").await;
    let admin = token("admin", json!({}));
    let mut db = shop.pg.connect("shop").await;

    // One client stays the whole time; its messages are what the other must end up with.
    let mut stayer = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    stayer.subscribe("s", STREAM, json!({})).await;
    let mut away = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    away.subscribe("a", STREAM, json!({})).await;
    let first = away.next("a").await["data"]["ordersChanges"].clone();
    assert_eq!(first["events"], json!([]), "a stream without a cursor starts with one to resume from");
    assert!(first["xid"].is_null() && first["position"].as_str().unwrap().contains('/'), "{first}");
    let start = stayer.next("s").await["data"]["ordersChanges"].clone();
    assert_eq!(start["cursor"], first["cursor"], "both start at the log's head");

    // Writes all along: each transaction inserts, moves orders between regions, updates and
    // deletes, so events of every kind come and go.
    let writer = {
        let mut db = shop.pg.connect("shop").await;
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut n = 0u32;
            while !stopped.is_cancelled() {
                n += 1;
                let sql = format!(
                    "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
                       VALUES ('web', 1, 'pending', {n}, 'EUR', 'WH-BER', (ARRAY['eu','us'])[1 + {n} % 2], 1);
                     UPDATE orders SET region = CASE region WHEN 'eu' THEN 'us' ELSE 'eu' END WHERE id = 1 + {n} % 40;
                     UPDATE orders SET status = 'paid', total = total + 1 WHERE id = 1 + ({n} * 7) % 40;
                     DELETE FROM orders WHERE id = (SELECT max(id) FROM orders WHERE id > 40 AND {n} % 3 = 0);"
                );
                transaction(&mut db, &sql).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        });
        (stop, task)
    };
    // Some messages before leaving; the cursor of the last one is where it resumes.
    let mut before = vec![first];
    while before.len() < 15 {
        before.push(away.next("a").await["data"]["ordersChanges"].clone());
    }
    let cursor = before.last().unwrap()["cursor"].as_str().unwrap().to_string();
    drop(away);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut back = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    back.subscribe("a", STREAM, json!({ "after": cursor })).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (stop, task) = writer;
    stop.cancel();
    let transactions = task.await.unwrap();
    assert!(transactions > 50, "only {transactions} transactions were written meanwhile");
    // A last transaction every eu subscriber sees ends both streams at the same point.
    let last = transaction(&mut db, EU_ORDER).await;

    let mut stayed = vec![start];
    stayed.extend(until_xid(&mut stayer, "s", &last).await);
    let mut resumed = before;
    resumed.extend(until_xid(&mut back, "a", &last).await);
    assert!(stayed.len() > 30, "{} messages", stayed.len());
    let kinds: BTreeSet<String> = stayed
        .iter()
        .flat_map(|m| m["events"].as_array().unwrap().iter().map(|e| format!("{}/{}", e["kind"], e["op"])))
        .collect();
    for wanted in ["\"ENTER\"/\"INSERT\"", "\"ENTER\"/\"UPDATE\"", "\"UPDATE\"/\"UPDATE\"", "\"LEAVE\"/\"UPDATE\""] {
        assert!(kinds.contains(wanted), "no {wanted} among {kinds:?}");
    }
    assert_eq!(resumed.len(), stayed.len(), "the resumed client got as many messages as the one that stayed");
    for (i, (a, b)) in resumed.iter().zip(&stayed).enumerate() {
        assert_eq!(a, b, "message {i} differs");
    }
    // LEAVE names the key only.
    let leave =
        stayed.iter().flat_map(|m| m["events"].as_array().unwrap().clone()).find(|e| e["kind"] == "LEAVE").unwrap();
    assert!(leave["key"]["id"].is_string() && leave["before"].is_null() && leave["after"].is_null(), "{leave}");

    // Cursors that cannot be resumed.
    let (code, message) = refused(shop.addr, &admin, "not-a-cursor").await;
    assert_eq!(code, "BAD_USER_INPUT", "{message}");
    let oldest = stayed[1]["cursor"].as_str().unwrap().to_string();
    // One transaction larger than the whole log pushes everything before it out; the stream
    // that stayed gets it whole.
    let big = transaction(
        &mut db,
        "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
           SELECT 'web', 1, 'pending', g, 'EUR', 'WH-BER', 'eu', 1 FROM generate_series(1, 2100) g",
    )
    .await;
    let got = until_xid(&mut stayer, "s", &big).await;
    assert_eq!(got.last().unwrap()["events"].as_array().unwrap().len(), 2100);
    let (code, message) = refused(shop.addr, &admin, &oldest).await;
    assert_eq!(code, "CURSOR_EXPIRED", "{message}");
    assert!(message.contains("older than the change log"), "{message}");
    let metrics = support::http::get(shop.addr, "/metrics").await.body;
    assert!(metrics.contains("opslive_changes_log_retain_rows 2000"), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("opslive_changes_expired_total ")), "{metrics}");

    // A truncate: a stream open across it sees every row leave at once and goes on; a cursor
    // from before it cannot be resumed.
    let before_truncate = until_xid(&mut stayer, "s", &transaction(&mut db, EU_ORDER).await).await.pop().unwrap();
    let truncate = transaction(&mut db, "TRUNCATE orders").await;
    let seen = until_xid(&mut stayer, "s", &truncate).await;
    assert_eq!(
        seen.last().unwrap()["events"],
        json!([{ "kind": "LEAVE", "op": "TRUNCATE", "key": null, "before": null, "after": null }])
    );
    let (code, message) = refused(shop.addr, &admin, before_truncate["cursor"].as_str().unwrap()).await;
    assert_eq!((code.as_str(), message.contains("truncated")), ("CURSOR_EXPIRED", true), "{message}");
    let after_truncate = seen.last().unwrap()["cursor"].as_str().unwrap().to_string();

    // A restart: the new process's log begins where its replica does (its checkpoint, past a
    // transaction written after the cursor): a cursor from before that is refused by position.
    until_xid(&mut stayer, "s", &transaction(&mut db, EU_ORDER).await).await;
    shop = shop.restart().await;
    let (code, message) = refused(shop.addr, &admin, &after_truncate).await;
    assert_eq!(code, "CURSOR_EXPIRED", "{message}");
    assert!(message.contains("before this server's change log begins"), "{message}");
}

/// One role of the five: its policy rule, the `where` its client adds, and both as SQL.
struct Watcher {
    role: &'static str,
    claims: Json,
    rule: &'static str,
    where_: &'static str,
    sql: &'static str,
    selection: &'static str,
}

const WATCHERS: [Watcher; 5] = [
    Watcher {
        role: "everything",
        claims: Json::Null,
        rule: "columns = \"*\"",
        where_: "{}",
        sql: "true",
        selection: "id status region total warehouseId",
    },
    Watcher {
        role: "europe",
        claims: Json::Null,
        rule: "columns = { except = [\"notes\", \"total\"] }\nfilter = { region = { eq = \"eu\" } }",
        where_: "{ channel: { eq: \"web\" } }",
        sql: "region = 'eu' AND channel = 'web'",
        selection: "id status region",
    },
    Watcher {
        role: "fulfilment",
        claims: Json::Null,
        rule: "columns = [\"id\", \"status\", \"warehouseId\"]\nfilter = { status = { in = [\"paid\", \"picking\"] } }",
        where_: "{}",
        sql: "status IN ('paid', 'picking')",
        selection: "id status warehouseId",
    },
    Watcher {
        role: "warehouse",
        claims: Json::Null,
        rule: "columns = [\"id\", \"warehouseId\", \"status\"]\nfilter = { warehouseId = { in = { claim = \"warehouses\" } } }",
        where_: "{ status: { neq: \"cancelled\" } }",
        sql: "warehouse_id IN ('WH-BER', 'WH-NYC') AND status <> 'cancelled'",
        selection: "id warehouseId status",
    },
    Watcher {
        role: "big_orders",
        claims: Json::Null,
        rule: "columns = [\"id\", \"total\", \"region\"]\nfilter = { total = { gte = 300 } }",
        where_: "{ region: { in: [\"eu\", \"us\"] } }",
        sql: "total >= 300 AND region IN ('eu', 'us')",
        selection: "id total region",
    },
];

/// `(kind, op, id)` of each event of a message.
type Seen = Vec<(String, String, i64)>;

fn events_of(message: &Json) -> Seen {
    message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let id = e["key"]["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
            (e["kind"].as_str().unwrap().to_string(), e["op"].as_str().unwrap().to_string(), id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_roles_see_rows_enter_and_leave_exactly_when_sql_says_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = String::new();
    for w in &WATCHERS {
        policy.push_str(&format!("[roles.{}.tables.orders]\n{}\n\n", w.role, w.rule));
    }
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let shop = Shop::start(DATA, &policy_path).await;
    let mut db = shop.pg.connect("shop").await;

    let mut clients = Vec::new();
    for w in &WATCHERS {
        let claims =
            if w.role == "warehouse" { json!({ "warehouses": ["WH-BER", "WH-NYC"] }) } else { w.claims.clone() };
        let t = token(w.role, claims);
        let mut client = WsClient::connect(shop.addr, TRANSPORT_WS, &t).await;
        let query = format!(
            "subscription {{ ordersChanges(where: {}) {{ xid events {{ kind op key {{ id }} before {{ {s} }} after {{ {s} }} }} }} }}",
            w.where_,
            s = w.selection
        );
        client.subscribe("c", &query, json!({})).await;
        let first = client.next("c").await;
        assert_eq!(first["data"]["ordersChanges"]["events"], json!([]), "{}: {first}", w.role);
        // A hidden column cannot even be asked for.
        if w.role == "europe" {
            let reply =
                post(shop.addr, Some(&t), "subscription { ordersChanges { events { after { total } } } }", json!({}))
                    .await;
            assert_eq!(reply.codes(), ["GRAPHQL_VALIDATION_FAILED"], "{}", reply.text);
        }
        clients.push(client);
    }

    // Random transactions of one to three statements, each on a different order.
    let mut rng = StdRng::seed_from_u64(17);
    let statuses = ["pending", "paid", "picking", "shipped", "cancelled"];
    let warehouses = ["WH-BER", "WH-MAD", "WH-NYC"];
    let rounds = std::env::var("CHANGE_STREAM_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    // Per transaction: its xid, and per role the events SQL says it must see.
    let mut expected: Vec<(String, Vec<Seen>)> = Vec::new();
    for round in 0..rounds {
        let mut ids: Vec<i64> =
            db.query("SELECT id FROM orders", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        let before = visible_sets(&db).await;
        let mut statements = Vec::new();
        // What each statement touches, in order: (id, op).
        let mut touched: Vec<(Option<i64>, &str)> = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            match rng.random_range(0..10) {
                0..=2 => {
                    let (s, w) = (statuses[rng.random_range(0..5)], warehouses[rng.random_range(0..3)]);
                    let region = if rng.random_bool(0.5) { "eu" } else { "us" };
                    let channel = if rng.random_bool(0.5) { "web" } else { "app" };
                    let total = rng.random_range(0..600);
                    statements.push(format!(
                        "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
                         VALUES ('{channel}', 1, '{s}', {total}, 'EUR', '{w}', '{region}', 1)"
                    ));
                    touched.push((None, "INSERT"));
                }
                3 if ids.len() > 5 => {
                    let id = ids.remove(rng.random_range(0..ids.len()));
                    statements.push(format!("DELETE FROM orders WHERE id = {id}"));
                    touched.push((Some(id), "DELETE"));
                }
                _ if !ids.is_empty() => {
                    let id = ids.remove(rng.random_range(0..ids.len()));
                    let set = match rng.random_range(0..5) {
                        0 => format!("status = '{}'", statuses[rng.random_range(0..5)]),
                        1 => format!("region = '{}'", if rng.random_bool(0.5) { "eu" } else { "us" }),
                        2 => format!("total = {}", rng.random_range(0..600)),
                        3 => format!("warehouse_id = '{}'", warehouses[rng.random_range(0..3)]),
                        _ => format!(
                            "channel = '{}', notes = 'n{round}'",
                            if rng.random_bool(0.5) { "web" } else { "app" }
                        ),
                    };
                    statements.push(format!("UPDATE orders SET {set} WHERE id = {id}"));
                    touched.push((Some(id), "UPDATE"));
                }
                _ => {}
            }
        }
        if statements.is_empty() {
            continue;
        }
        // Inserted ids are read back in the transaction, so the expectation knows them.
        let tx = db.transaction().await.unwrap();
        let xid: i64 = tx.query_one("SELECT txid_current()", &[]).await.unwrap().get(0);
        let mut order = Vec::new();
        for (sql, (id, op)) in statements.iter().zip(&touched) {
            let id = match id {
                Some(id) => {
                    tx.execute(sql.as_str(), &[]).await.unwrap();
                    *id
                }
                None => tx.query_one(&format!("{sql} RETURNING id"), &[]).await.unwrap().get(0),
            };
            order.push((id, *op));
        }
        tx.commit().await.unwrap();
        let after = visible_sets(&db).await;
        let per_role = (0..WATCHERS.len())
            .map(|r| {
                let mut seen = Seen::new();
                for (id, op) in &order {
                    let kind = match (before[r].contains(id), after[r].contains(id)) {
                        (false, true) => "ENTER",
                        (true, true) => "UPDATE",
                        (true, false) => "LEAVE",
                        (false, false) => continue,
                    };
                    seen.push((kind.to_string(), op.to_string(), *id));
                }
                seen
            })
            .collect();
        expected.push(((xid & 0xFFFF_FFFF).to_string(), per_role));
    }
    // One last transaction every role sees ends each stream at the same place.
    let last = transaction(
        &mut db,
        "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
           VALUES ('web', 1, 'paid', 999, 'EUR', 'WH-BER', 'eu', 1)",
    )
    .await;

    let started = Instant::now();
    for (r, w) in WATCHERS.iter().enumerate() {
        let mut got: BTreeMap<String, Seen> = BTreeMap::new();
        let mut order = Vec::new();
        for message in until_xid(&mut clients[r], "c", &last).await {
            let xid = message["xid"].as_str().unwrap().to_string();
            let events = events_of(&message);
            assert!(!events.is_empty(), "{}: a message without events for {xid}", w.role);
            // Images hold the selected, visible columns only, and only where the kind has them.
            for e in message["events"].as_array().unwrap() {
                match e["kind"].as_str().unwrap() {
                    "ENTER" => assert!(e["before"].is_null() && e["after"].is_object(), "{e}"),
                    "UPDATE" => assert!(e["before"].is_object() && e["after"].is_object(), "{e}"),
                    _ => assert!(e["before"].is_null() && e["after"].is_null(), "{e}"),
                }
            }
            order.push(xid.clone());
            assert!(got.insert(xid, events).is_none(), "{}: a transaction twice", w.role);
        }
        order.pop();
        let wanted: Vec<&(String, Vec<Seen>)> = expected.iter().filter(|(_, per)| !per[r].is_empty()).collect();
        assert_eq!(
            order,
            wanted.iter().map(|(x, _)| x.clone()).collect::<Vec<_>>(),
            "{}: one message per transaction with news for it, in commit order",
            w.role
        );
        for (xid, per) in wanted {
            assert_eq!(got[xid], per[r], "{}: transaction {xid}", w.role);
        }
    }
    eprintln!("{rounds} rounds checked for {} roles in {:?}", WATCHERS.len(), started.elapsed());
}

/// The ids each watcher may see now, by SQL.
async fn visible_sets(db: &tokio_postgres::Client) -> Vec<BTreeSet<i64>> {
    let mut out = Vec::new();
    for w in &WATCHERS {
        let rows = db.query(&format!("SELECT id FROM orders WHERE {}", w.sql), &[]).await.unwrap();
        out.push(rows.iter().map(|r| r.get(0)).collect());
    }
    out
}

/// A change-stream client that stops reading holds its place in the log, not a backlog: its
/// stream waits for room in its outbox, the one write to it waits on full kernel buffers, and
/// past `write_timeout_seconds` the connection is closed with 1008, which the client finds when
/// it reads again. A client beside it gets each transaction's message meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_stream_client_that_stops_reading_is_closed_and_slows_no_one() {
    let limits = "\n[limits]\nwrite_timeout_seconds = 1\n";
    let shop = Shop::start_with(DATA, &support::graphql::fixture_policy(), "", limits).await;
    let admin = token("admin", json!({}));
    let mut frozen = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    frozen.subscribe("all", "subscription { ordersChanges { cursor events { after { id notes } } } }", json!({})).await;
    frozen.next("all").await;
    let mut reader = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    reader.subscribe("eu", STREAM, json!({})).await;
    reader.next("eu").await;

    // From here `frozen` reads nothing: each transaction is 100 eu orders with 2 KB notes, a
    // 200 KB message for it and 100 ENTER events for the reader.
    let mut db = shop.pg.connect("shop").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let stalled =
        || support::http::metric(shop.addr, "opslive_live_refused_total", &[("limit", "write_timeout_seconds")]);
    let mut transactions = 0;
    while stalled().await.unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "the frozen client was never closed");
        transactions += 1;
        let xid = transaction(
            &mut db,
            "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes)
               SELECT 'web', 1, 'paid', g, 'EUR', 'WH-BER', 'eu', 1, repeat('n', 2000) FROM generate_series(1, 100) g",
        )
        .await;
        let got = until_xid(&mut reader, "eu", &xid).await;
        assert_eq!(got.len(), 1, "one message per transaction for the reader");
        assert_eq!(got[0]["events"].as_array().unwrap().len(), 100, "the reader got the whole transaction");
    }
    println!("the frozen client was closed after {transactions} transactions");

    let closed = frozen.closed().await;
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert!(closed.reason.contains("write_timeout_seconds"), "{closed:?}");
    // The closed connection's stream task ends as it is next scheduled.
    let streams = || support::http::metric(shop.addr, "opslive_changes_streams", &[]);
    while streams().await != Some(1.0) {
        assert!(Instant::now() < deadline, "the frozen client's stream is still counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A subscriber whose filter nothing matches gets a cursor with no events once the log has
/// moved past its last one and `heartbeat_seconds` have passed: after the log has evicted its
/// first cursor (2,100 rows through a 2,000-row log), it resumes from the heartbeat's and gets
/// exactly the next transaction that concerns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_subscriber_gets_heartbeat_cursors_that_outlive_the_log() {
    let top = "changes.retain_rows = 2000\nchanges.heartbeat_seconds = 1";
    let shop = Shop::start_with(DATA, &support::graphql::fixture_policy(), top, "").await;
    let admin = token("admin", json!({}));
    let quiet_stream = "subscription($after: String) { ordersChanges(where: { status: { eq: \"refunded\" } }, after: $after) { \
                        cursor position xid commitTs events { kind key { id } } } }";
    let mut quiet = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    quiet.subscribe("q", quiet_stream, json!({})).await;
    let first = quiet.next("q").await["data"]["ordersChanges"].clone();
    let subscribed = Instant::now();

    // 2,100 paid orders in 7 transactions: nothing for the subscriber, and the first cursor's
    // successors are evicted.
    let mut db = shop.pg.connect("shop").await;
    for _ in 0..7 {
        transaction(
            &mut db,
            "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
               SELECT 'web', 1, 'paid', g, 'EUR', 'WH-BER', 'eu', 1 FROM generate_series(1, 300) g",
        )
        .await;
    }
    let beat = quiet.next("q").await["data"]["ordersChanges"].clone();
    assert!(subscribed.elapsed() >= Duration::from_millis(900), "a heartbeat waits heartbeat_seconds: {beat}");
    assert_eq!(beat["events"], json!([]), "{beat}");
    assert!(beat["xid"].is_null() && beat["commitTs"].is_null(), "{beat}");
    assert_ne!(beat["cursor"], first["cursor"], "{beat}");
    assert_ne!(beat["position"], first["position"], "the position moved with the table's transactions: {beat}");
    drop(quiet);

    let (code, _) = refused(shop.addr, &admin, first["cursor"].as_str().unwrap()).await;
    assert_eq!(code, "CURSOR_EXPIRED", "the first cursor is older than the log");
    let refunded = transaction(
        &mut db,
        "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
           VALUES ('web', 1, 'refunded', 5, 'EUR', 'WH-BER', 'eu', 1)",
    )
    .await;
    let mut back = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    back.subscribe("q", quiet_stream, json!({ "after": beat["cursor"] })).await;
    let next = back.next("q").await["data"]["ordersChanges"].clone();
    assert_eq!(next["xid"], refunded, "resumed from the heartbeat, the next message is the refund: {next}");
    assert_eq!(next["events"][0]["kind"], "ENTER", "{next}");
}

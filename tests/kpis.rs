//! KPIs through GraphQL against a real PostgreSQL and a real `opslive serve`: defined with
//! `createKpi`, kept equal to the same aggregate computed by SQL on the source through random
//! writes, followed by a `kpi(id)` subscription, checked before they are stored, readable only
//! by roles that could compute them, and loaded again after a restart.

mod support;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use support::graphql::{Shop, data, fixture_policy, post, token};
use support::ws::{TRANSPORT_WS, WsClient};

const FIELDS: &str = "id name table aggregate column groupBy value valueFloat ready notReadyReason seq \
                      groups { key value valueFloat } asOf { position commitTs } createdBy updatedAt definition";

const CREATE: &str =
    "mutation($input: KpiInput!) { createKpi(input: $input) { id name value groups { key value } createdBy seq } }";

/// Creates a KPI as `token`; returns the reply.
async fn create(shop: &Shop, token: &str, input: Json) -> support::graphql::Reply {
    post(shop.addr, Some(token), CREATE, json!({ "input": input })).await
}

/// Creates a KPI that must be accepted; returns its id.
async fn created(shop: &Shop, token: &str, input: Json) -> String {
    let d = data(shop.addr, token, CREATE, json!({ "input": input })).await;
    d["createKpi"]["id"].as_str().expect("an id").to_string()
}

async fn kpis(shop: &Shop, token: &str) -> Vec<Json> {
    let d = data(shop.addr, token, &format!("{{ kpis(builtin: false) {{ {FIELDS} }} }}"), json!({})).await;
    d["kpis"].as_array().cloned().unwrap_or_default()
}

/// What each KPI of the first test is, in SQL on the source (as text, like the KPI's value).
const EXPECTED_SQL: [(&str, &str); 4] = [
    ("Revenue", "SELECT sum(total)::text FROM orders"),
    ("Average order", "SELECT avg(total)::text FROM orders"),
    ("Smallest order", "SELECT min(total)::text FROM orders"),
    ("Largest order", "SELECT max(total)::text FROM orders"),
];

/// The paid orders per channel, as SQL counts them.
const PAID_BY_CHANNEL: &str =
    "SELECT channel, count(*)::text FROM orders WHERE status IN ('paid', 'picking') GROUP BY channel ORDER BY channel";

/// Every KPI's value as SQL computes it now: name → value (grouped: channel → count).
async fn expected(client: &tokio_postgres::Client) -> Json {
    let mut out = serde_json::Map::new();
    for (name, sql) in EXPECTED_SQL {
        let row = client.query_one(sql, &[]).await.unwrap();
        out.insert(name.into(), json!(row.get::<_, Option<String>>(0)));
    }
    let mut groups = serde_json::Map::new();
    for row in client.query(PAID_BY_CHANNEL, &[]).await.unwrap() {
        groups.insert(row.get::<_, String>(0), json!(row.get::<_, String>(1)));
    }
    out.insert("Paid orders by channel".into(), Json::Object(groups));
    Json::Object(out)
}

/// The same from the server's `kpis`.
fn served(kpis: &[Json]) -> Json {
    let mut out = serde_json::Map::new();
    for k in kpis {
        let name = k["name"].as_str().unwrap().to_string();
        if k["groupBy"].as_array().is_some_and(|g| !g.is_empty()) {
            let mut groups = serde_json::Map::new();
            for g in k["groups"].as_array().unwrap() {
                groups.insert(g["key"]["channel"].as_str().unwrap().to_string(), g["value"].clone());
            }
            out.insert(name, Json::Object(groups));
        } else {
            out.insert(name, k["value"].clone());
        }
    }
    Json::Object(out)
}

/// Polls `kpis` until the server's values equal SQL's (the KPI runtime applies each commit a
/// moment after it is made); fails with both after the deadline.
async fn converge(shop: &Shop, token: &str, client: &tokio_postgres::Client, context: &str) {
    let want = expected(client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = served(&kpis(shop, token).await);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{context}: KPIs differ from SQL\n served: {got}\n SQL:    {want}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

const CHANNELS: [&str; 5] = ["web", "app", "marketplace", "phone", "store"];
const STATUSES: [&str; 7] = ["pending", "paid", "picking", "shipped", "delivered", "cancelled", "refunded"];

/// One random transaction of one to three writes on `orders`.
async fn random_writes(client: &tokio_postgres::Client, rng: &mut StdRng) {
    let mut sql = String::from("BEGIN;");
    for _ in 0..rng.random_range(1..=3) {
        let total = format!("{}.{:02}", rng.random_range(0..2000), rng.random_range(0..100));
        let channel = CHANNELS[rng.random_range(0..CHANNELS.len())];
        let status = STATUSES[rng.random_range(0..STATUSES.len())];
        sql.push_str(&match rng.random_range(0..10) {
            0..=4 => format!(
                "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count) \
                 SELECT '{channel}', min(id), '{status}', {total}, 'EUR', 'WH-BER', 'eu', 1 FROM customers;"
            ),
            5..=7 => format!(
                "UPDATE orders SET total = {total}, status = '{status}' \
                 WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1);"
            ),
            _ => "DELETE FROM orders WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1);".into(),
        });
    }
    sql.push_str("COMMIT;");
    client.batch_execute(&sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_equal_sql_through_random_writes_and_subscriptions_follow_them() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({ "sub": "alice@example.com" }));
    let client = shop.pg.connect("shop").await;

    let paid = created(
        &shop,
        &admin,
        json!({
            "name": "Paid orders by channel", "table": "orders", "aggregate": "COUNT",
            "filter": { "status": { "in": ["paid", "picking"] } }, "groupBy": ["channel"], "unit": "orders"
        }),
    )
    .await;
    let mut revenue = String::new();
    for (name, aggregate) in
        [("Revenue", "SUM"), ("Average order", "AVG"), ("Smallest order", "MIN"), ("Largest order", "MAX")]
    {
        let id = created(
            &shop,
            &admin,
            json!({ "name": name, "table": "orders", "aggregate": aggregate, "column": "total", "unit": "EUR" }),
        )
        .await;
        if name == "Revenue" {
            revenue = id;
        }
    }
    let listed = kpis(&shop, &admin).await;
    assert_eq!(listed.len(), 5);
    let first = &listed[0];
    assert_eq!((first["id"].as_str(), first["createdBy"].as_str()), (Some(paid.as_str()), Some("alice@example.com")));
    assert_eq!(first["ready"], true, "{first}");
    assert!(first["value"].is_null(), "a grouped KPI has no single value: {first}");
    assert_eq!(first["definition"]["filter"], json!({ "status": { "in": ["paid", "picking"] } }));
    assert!(first["asOf"]["position"].as_str().is_some_and(|p| p.contains('/')), "{first}");
    converge(&shop, &admin, &client, "after creation").await;

    let mut seed = rand::rng().random::<u64>();
    if let Ok(s) = std::env::var("KPI_TEST_SEED") {
        seed = s.parse().unwrap();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..5 {
        for _ in 0..8 {
            random_writes(&client, &mut rng).await;
        }
        converge(&shop, &admin, &client, &format!("seed {seed}, round {round}")).await;
    }

    // A subscription to one KPI: its value now, then a frame per commit that changes it.
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    let query = "subscription($id: ID!) { kpi(id: $id) { id value seq groups { key value } } }";
    ws.subscribe("paid", query, json!({ "id": paid })).await;
    let frame = ws.next("paid").await;
    assert_eq!(frame["extensions"]["seq"], 1, "{frame}");
    let seq = frame["data"]["kpi"]["seq"].as_i64().unwrap();
    let insert = |status: &str| {
        format!(
            "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count) \
             SELECT 'web', min(id), '{status}', 1.00, 'EUR', 'WH-BER', 'eu', 1 FROM customers"
        )
    };
    // A commit inside the filter: one frame with the new count.
    client.batch_execute(&insert("paid")).await.unwrap();
    let frame = ws.next("paid").await;
    assert_eq!(frame["extensions"]["seq"], 2, "{frame}");
    assert_eq!(frame["data"]["kpi"]["seq"].as_i64(), Some(seq + 1), "{frame}");
    let web = client
        .query_one("SELECT count(*)::text FROM orders WHERE status IN ('paid', 'picking') AND channel = 'web'", &[])
        .await
        .unwrap()
        .get::<_, String>(0);
    let groups = frame["data"]["kpi"]["groups"].as_array().unwrap();
    let got = groups.iter().find(|g| g["key"] == json!({ "channel": "web" })).map(|g| g["value"].clone());
    assert_eq!(got, Some(json!(web)), "{frame}");
    // A commit outside the filter sends nothing: the next frame is the next change's, with the
    // next numbers.
    client.batch_execute(&insert("cancelled")).await.unwrap();
    client.batch_execute(&insert("picking")).await.unwrap();
    let frame = ws.next("paid").await;
    assert_eq!(frame["extensions"]["seq"], 3, "{frame}");
    assert_eq!(frame["data"]["kpi"]["seq"].as_i64(), Some(seq + 2), "the cancelled order changed nothing: {frame}");

    // The legacy protocol shares the path.
    let mut legacy = WsClient::connect(shop.addr, support::ws::LEGACY, &admin).await;
    legacy.subscribe("one", query, json!({ "id": paid })).await;
    let frame = legacy.next("one").await;
    assert_eq!(frame["data"]["kpi"]["seq"].as_i64(), Some(seq + 2), "{frame}");
    assert_eq!(frame["extensions"]["seq"], 1, "{frame}");

    // `kpis` follows every readable KPI; a deleted KPI leaves it.
    ws.subscribe("all", "subscription { kpis(builtin: false) { id seq } }", json!({})).await;
    let frame = ws.next("all").await;
    assert_eq!(frame["data"]["kpis"].as_array().map(Vec::len), Some(5), "{frame}");
    let d = data(shop.addr, &admin, "mutation($id: ID!) { deleteKpi(id: $id) }", json!({ "id": revenue })).await;
    assert_eq!(d["deleteKpi"], true);
    let frame = ws.next("all").await;
    assert_eq!(frame["data"]["kpis"].as_array().map(Vec::len), Some(4), "{frame}");
    assert_eq!(kpis(&shop, &admin).await.len(), 4);
}

fn code_and_field(reply: &support::graphql::Reply) -> (String, String) {
    let body = reply.json();
    let e = &body["errors"][0];
    (e["extensions"]["code"].as_str().unwrap_or("").into(), e["extensions"]["field"].as_str().unwrap_or("").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_checked_before_storing_and_views_decide_who_reads() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({}));

    // Invalid definitions: BAD_USER_INPUT naming the field; nothing stored.
    let base = json!({ "name": "x", "table": "orders", "aggregate": "SUM", "column": "total" });
    let with = |patch: Json| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        v
    };
    for (input, field) in [
        (with(json!({ "table": "nope" })), "input.table"),
        (with(json!({ "column": "totl" })), "input.column"),
        (with(json!({ "column": "channel" })), "input.column"),
        (with(json!({ "filter": { "status": { "equals": "paid" } } })), "input.filter"),
        (with(json!({ "groupBy": ["nope"] })), "input.groupBy[0]"),
    ] {
        let reply = create(&shop, &admin, input.clone()).await;
        assert_eq!(code_and_field(&reply), ("BAD_USER_INPUT".into(), field.into()), "{input}: {}", reply.text);
    }
    assert!(kpis(&shop, &admin).await.is_empty(), "nothing was stored");

    // Only roles with `manage_kpis`.
    let analyst = token("analyst", json!({}));
    let reply = create(&shop, &analyst, base.clone()).await;
    assert_eq!(reply.codes(), ["FORBIDDEN"], "{}", reply.text);
    let ops = token("ops_manager", json!({}));
    created(&shop, &ops, with(json!({ "name": "Revenue" }))).await;
    // Names are unique.
    let reply = create(&shop, &admin, with(json!({ "name": "Revenue" }))).await;
    assert_eq!(code_and_field(&reply), ("BAD_USER_INPUT".into(), "input.name".into()), "{}", reply.text);
    assert!(reply.text.contains("a KPI named `Revenue` exists"), "{}", reply.text);
    assert_eq!(kpis(&shop, &admin).await.len(), 1);

    // Views: a KPI over Berlin's stock as the warehouse lead sees it is readable by a Berlin
    // lead, not by another; an all-rows stock KPI by neither.
    let berlin = created(
        &shop,
        &admin,
        json!({
            "name": "Units on hand in WH-BER", "table": "inventory", "aggregate": "SUM", "column": "onHand",
            "view": { "role": "warehouse_lead", "claims": { "warehouses": ["WH-BER"] } }
        }),
    )
    .await;
    let all = created(
        &shop,
        &admin,
        json!({ "name": "Units on hand", "table": "inventory", "aggregate": "SUM", "column": "onHand" }),
    )
    .await;
    let lead_ber = token("warehouse_lead", json!({ "warehouses": ["WH-BER"] }));
    let lead_mad = token("warehouse_lead", json!({ "warehouses": ["WH-MAD"] }));
    let names = |kpis: Vec<Json>| kpis.iter().map(|k| k["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(names(kpis(&shop, &lead_ber).await), ["Units on hand in WH-BER"]);
    assert!(names(kpis(&shop, &lead_mad).await).is_empty());
    let sql = shop.pg.connect("shop").await;
    let ber: String = sql
        .query_one("SELECT sum(on_hand)::text FROM inventory WHERE warehouse_id = 'WH-BER'", &[])
        .await
        .unwrap()
        .get(0);
    let one = "query($id: ID!) { kpi(id: $id) { name value } }";
    let d = data(shop.addr, &lead_ber, one, json!({ "id": berlin })).await;
    assert_eq!(d["kpi"]["value"], json!(ber));
    // Not readable answers null, like a KPI that does not exist.
    assert!(data(shop.addr, &lead_ber, one, json!({ "id": all })).await["kpi"].is_null());
    assert!(data(shop.addr, &lead_mad, one, json!({ "id": berlin })).await["kpi"].is_null());
    assert!(data(shop.addr, &lead_ber, one, json!({ "id": "999999" })).await["kpi"].is_null());
    // An update is checked like a creation, then computed afresh.
    let update =
        "mutation($id: ID!, $input: KpiInput!) { updateKpi(id: $id, input: $input) { name value seq updatedBy } }";
    let mad = json!({ "name": "Units on hand in WH-MAD", "table": "inventory", "aggregate": "SUM", "column": "onHand",
                      "view": { "role": "warehouse_lead", "claims": { "warehouses": ["WH-MAD"] } } });
    let bad =
        json!({ "name": "Units on hand in WH-MAD", "table": "inventory", "aggregate": "SUM", "column": "onHandd" });
    let reply = post(shop.addr, Some(&admin), update, json!({ "id": berlin, "input": bad })).await;
    assert_eq!(code_and_field(&reply), ("BAD_USER_INPUT".into(), "input.column".into()), "{}", reply.text);
    let reply =
        post(shop.addr, Some(&admin), update, json!({ "id": all, "input": with(json!({ "name": "Revenue" })) })).await;
    assert_eq!(code_and_field(&reply), ("BAD_USER_INPUT".into(), "input.name".into()), "{}", reply.text);
    let reply = post(shop.addr, Some(&admin), update, json!({ "id": "999999", "input": mad.clone() })).await;
    assert_eq!(code_and_field(&reply), ("BAD_USER_INPUT".into(), "id".into()), "{}", reply.text);
    let mad_sum: String = sql
        .query_one("SELECT sum(on_hand)::text FROM inventory WHERE warehouse_id = 'WH-MAD'", &[])
        .await
        .unwrap()
        .get(0);
    let d = data(shop.addr, &admin, update, json!({ "id": berlin, "input": mad })).await;
    assert_eq!(d["updateKpi"]["value"], json!(mad_sum), "{d}");
    assert_eq!(names(kpis(&shop, &lead_mad).await), ["Units on hand in WH-MAD"]);
    assert!(names(kpis(&shop, &lead_ber).await).is_empty());
    // A role without the permission cannot delete either.
    let reply = post(shop.addr, Some(&lead_ber), "mutation { deleteKpi(id: 1) }", json!({})).await;
    assert_eq!(reply.codes(), ["FORBIDDEN"], "{}", reply.text);
}

/// Before its source has read a watched table (here: held at slot creation by an open
/// transaction) the table is not "unknown": a KPI or row rule on it is refused as `NOT_READY`,
/// so a client retries rather than rewriting a correct definition, and is accepted once the
/// table is loaded. A table nobody watches stays `BAD_USER_INPUT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_on_a_watched_table_not_loaded_yet_is_not_ready_rather_than_unknown() {
    let pg = Shop::database(opslive::demo::FIXTURE_SEED).await;
    // Creating the slot waits for transactions holding an id; the catalog is read after it.
    let blocker = pg.connect("shop").await;
    blocker.batch_execute("CREATE TABLE scratch (x int); BEGIN; INSERT INTO scratch VALUES (1);").await.unwrap();
    let mut shop = Shop::serve_on(pg, &fixture_policy(), "", "").await;
    let admin = token("admin", json!({}));
    let kpi = json!({ "name": "Orders", "table": "orders", "aggregate": "COUNT" });
    let create_rule = "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id problem } }";
    let rule = json!({ "name": "Any order", "rows": { "table": "orders", "filter": { "status": { "eq": "held" } } }, "severity": "WARNING", "summary": "{{id}}" });

    let reply = create(&shop, &admin, kpi.clone()).await;
    assert_eq!(reply.codes(), ["NOT_READY"], "{}", reply.text);
    assert!(reply.text.contains("table `orders` is not loaded yet"), "{}", reply.text);
    let reply = post(shop.addr, Some(&admin), create_rule, json!({ "input": rule })).await;
    assert_eq!(reply.codes(), ["NOT_READY"], "{}", reply.text);
    let reply = create(&shop, &admin, json!({ "name": "Nope", "table": "nope", "aggregate": "COUNT" })).await;
    assert_eq!(code_and_field(&reply), ("BAD_USER_INPUT".into(), "input.table".into()), "{}", reply.text);

    blocker.batch_execute("COMMIT").await.unwrap();
    shop.wait_ready().await;
    let d = data(shop.addr, &admin, CREATE, json!({ "input": kpi })).await;
    let sql = shop.pg.connect("shop").await;
    let count: String = sql.query_one("SELECT count(*)::text FROM orders", &[]).await.unwrap().get(0);
    assert_eq!(d["createKpi"]["value"], json!(count));
    let reply = post(shop.addr, Some(&admin), create_rule, json!({ "input": rule })).await;
    assert!(reply.json()["data"]["createAlertRule"]["problem"].is_null(), "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kpi_survives_a_restart() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let input = json!({ "name": "Open tickets", "table": "tickets", "aggregate": "COUNT", "filter": { "status": { "in": ["new", "open"] } } });
    let id = created(&shop, &admin, input).await;
    let before = kpis(&shop, &admin).await;
    let builtins = "{ kpis(builtin: true) { id name source { source measure } } }";
    let builtin_before = data(shop.addr, &admin, builtins, json!({})).await;

    let Shop { pg, serve, dir, .. } = shop;
    serve.terminate().await;
    let mut serve = support::serve::Serve::start(&dir.path().join("opslive.toml"));
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    let shop = Shop { pg, serve, addr, dir };
    // Loaded at start, the KPI is ready once its table is.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let after = kpis(&shop, &admin).await;
        if after.first().is_some_and(|k| k["ready"] == true) {
            assert_eq!(after.len(), 1);
            assert_eq!(after[0]["id"].as_str(), Some(id.as_str()));
            assert_eq!(after[0]["name"], before[0]["name"]);
            assert_eq!(after[0]["value"], before[0]["value"], "{}", after[0]);
            assert_eq!(after[0]["definition"], before[0]["definition"]);
            // The built-in ones keep their ids (rules and history refer to them).
            assert_eq!(data(shop.addr, &admin, builtins, json!({})).await, builtin_before);
            break;
        }
        assert!(Instant::now() < deadline, "the stored KPI is not back: {after:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_is_rolled_up_per_minute_into_the_history() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let client = shop.pg.connect("shop").await;
    let id = created(
        &shop,
        &admin,
        json!({ "name": "Largest order", "table": "orders", "aggregate": "MAX", "column": "total" }),
    )
    .await;
    let top: f64 = client.query_one("SELECT max(total)::float8 FROM orders", &[]).await.unwrap().get(0);
    // A new largest order, then it is cancelled and deleted: the minute's max holds it, its
    // last value is where it ended.
    client
        .batch_execute(&format!(
            "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes) \
             SELECT 'web', min(id), 'paid', {}, 'EUR', 'WH-BER', 'eu', 1, 'peak' FROM customers",
            top + 1000.0
        ))
        .await
        .unwrap();
    client.batch_execute("DELETE FROM orders WHERE notes = 'peak'").await.unwrap();
    let query =
        "query($id: ID!) { kpiHistory(id: $id, step: \"PT1M\") { at last lastFloat min max } kpi(id: $id) { value } }";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = data(shop.addr, &admin, query, json!({ "id": id })).await;
        let points = d["kpiHistory"].as_array().cloned().unwrap_or_default();
        let max = points.iter().filter_map(|p| p["max"].as_f64()).fold(f64::MIN, f64::max);
        if max >= top + 1000.0 {
            let last = points.last().unwrap();
            assert_eq!(last["last"], d["kpi"]["value"], "the last value is the KPI's now: {d}");
            assert!(last["min"].as_f64().unwrap() <= top, "{d}");
            break;
        }
        assert!(Instant::now() < deadline, "the peak never reached the history: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A role that may not read the KPI gets no history.
    let lead = token("warehouse_lead", json!({ "warehouses": ["WH-BER"] }));
    let d = data(shop.addr, &lead, "query($id: ID!) { kpiHistory(id: $id) { at } }", json!({ "id": id })).await;
    assert_eq!(d["kpiHistory"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kpi_is_compared_with_its_value_a_day_before_and_lists_its_recent_series() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let total = created(
        &shop,
        &admin,
        json!({ "name": "Orders", "table": "orders", "aggregate": "COUNT", "comparison": "DAY_BEFORE" }),
    )
    .await;
    let by_channel = created(
        &shop,
        &admin,
        json!({ "name": "Orders by channel", "table": "orders", "aggregate": "COUNT", "groupBy": ["channel"],
                "comparison": "DAY_BEFORE" }),
    )
    .await;
    let plain =
        created(&shop, &admin, json!({ "name": "Orders again", "table": "orders", "aggregate": "COUNT" })).await;
    // A day of history as the recorder would have left it: yesterday's values, this minute.
    let app = shop.pg.connect("opslive").await;
    let yesterday = "date_trunc('minute', now() - interval '1 day')";
    for (kpi, group, last) in [(&total, "", 42.0), (&by_channel, "[\"web\"]", 7.0), (&plain, "", 1.0)] {
        app.execute(
            &format!(
                "INSERT INTO kpi_history (kpi_id, group_key, minute, last, last_value, min, max, last_position) \
                 VALUES ($1, $2, {yesterday}, $3, $4, $4, $4, 0)"
            ),
            &[&kpi.parse::<i64>().unwrap(), &group, &format!("{last}"), &last],
        )
        .await
        .unwrap();
    }
    let query = "query($a: ID!, $b: ID!, $c: ID!) {
        a: kpi(id: $a) { value previousValue previousValueFloat previousAt series(last: \"PT10M\") { last } }
        b: kpi(id: $b) { previousValue groups { key previousValue previousValueFloat } }
        c: kpi(id: $c) { previousValue } }";
    let d = data(shop.addr, &admin, query, json!({ "a": total, "b": by_channel, "c": plain })).await;
    assert_eq!(d["a"]["previousValue"], "42", "{d}");
    assert_eq!(d["a"]["previousValueFloat"], 42.0);
    assert!(d["a"]["previousAt"].as_str().is_some_and(|t| !t.is_empty()), "{d}");
    let web = d["b"]["groups"].as_array().unwrap().iter().find(|g| g["key"]["channel"] == "web").cloned();
    assert_eq!(web.map(|g| g["previousValue"].clone()), Some(json!("7")), "{d}");
    assert!(d["b"]["previousValue"].is_null(), "a grouped KPI compares per group: {d}");
    assert!(d["c"]["previousValue"].is_null(), "no comparison defined: {d}");

    // The series is the recorded history: the current value reaches it within the flush.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = data(shop.addr, &admin, query, json!({ "a": total, "b": by_channel, "c": plain })).await;
        let series = d["a"]["series"].as_array().cloned().unwrap_or_default();
        if series.last().is_some_and(|p| p["last"] == d["a"]["value"]) {
            assert!(series.iter().all(|p| p["last"] != "42"), "yesterday is not in the last ten minutes: {d}");
            break;
        }
        assert!(Instant::now() < deadline, "the series never showed the value: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = post(
        shop.addr,
        Some(&admin),
        "query($a: ID!) { kpi(id: $a) { series(last: \"soon\") { last } } }",
        json!({ "a": total }),
    )
    .await;
    assert_eq!(reply.codes(), ["BAD_USER_INPUT"], "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_s_health_is_a_built_in_kpi_every_role_reads_that_rules_watch_and_history_keeps() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let lead = token("warehouse_lead", json!({ "warehouses": ["WH-BER"] }));
    let builtins =
        "{ kpis(builtin: true) { id name unit table aggregate source { source measure } ready value valueFloat } }";

    // A warehouse lead, who may read no KPI over all warehouses, reads every source's health.
    let d = data(shop.addr, &lead, builtins, json!({})).await;
    let list = d["kpis"].as_array().unwrap().clone();
    let mut measures: Vec<&str> = list.iter().map(|k| k["source"]["measure"].as_str().unwrap()).collect();
    measures.sort();
    assert_eq!(
        measures,
        ["CHANGES_PER_SECOND", "HEARTBEAT_AGE_SECONDS", "LAG_BYTES", "LAG_SECONDS", "RETAINED_WAL_BYTES"],
        "{d}"
    );
    for k in &list {
        assert_eq!(k["source"]["source"], "shop", "{k}");
        assert!(k["table"].is_null() && k["aggregate"].is_null(), "{k}");
        assert!(k["name"].as_str().unwrap().starts_with("shop: "), "{k}");
    }
    let id = |measure: &str| {
        list.iter().find(|k| k["source"]["measure"] == measure).map(|k| k["id"].as_str().unwrap().to_string()).unwrap()
    };
    let rate = id("CHANGES_PER_SECOND");
    let defined = data(shop.addr, &admin, "{ kpis(builtin: false) { id } }", json!({})).await;
    assert_eq!(defined["kpis"], json!([]), "none defined yet");

    // A rule on the change rate, like any KPI rule: it fires once writes flow.
    let rule = data(
        shop.addr,
        &admin,
        "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id problem } }",
        json!({ "input": { "name": "writes flowing", "kpi": { "kpi": rate, "above": 0 } } }),
    )
    .await;
    assert!(rule["createAlertRule"]["problem"].is_null(), "{rule}");
    let client = shop.pg.connect("shop").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        client
            .batch_execute("UPDATE inventory SET on_hand = on_hand + 1 WHERE sku = (SELECT min(sku) FROM inventory)")
            .await
            .unwrap();
        let d = data(
            shop.addr,
            &admin,
            "{ alerts(where: { state: FIRING }) { ruleName value cause { position dueAt } } }",
            json!({}),
        )
        .await;
        if let Some(a) = d["alerts"].as_array().unwrap().iter().find(|a| a["ruleName"] == "writes flowing") {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "the change-rate rule never fired: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(alert["value"].as_str().unwrap().parse::<f64>().unwrap() > 0.0, "{alert}");
    assert!(
        alert["cause"]["position"].is_null() && !alert["cause"]["dueAt"].is_null(),
        "a sample, not a commit: {alert}"
    );

    // Its values are kept per minute like any KPI's.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d =
            data(shop.addr, &lead, "query($id: ID!) { kpiHistory(id: $id) { at max } }", json!({ "id": rate })).await;
        if d["kpiHistory"].as_array().unwrap().iter().any(|p| p["max"].as_f64().is_some_and(|m| m > 0.0)) {
            break;
        }
        assert!(Instant::now() < deadline, "no history of the change rate: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nobody defines, changes or deletes them.
    let lag = id("LAG_SECONDS");
    let input = json!({ "name": "x", "table": "orders", "aggregate": "COUNT" });
    let reply = post(
        shop.addr,
        Some(&admin),
        "mutation($id: ID!, $input: KpiInput!) { updateKpi(id: $id, input: $input) { id } }",
        json!({ "id": lag, "input": input }),
    )
    .await;
    assert_eq!(reply.codes(), ["BAD_USER_INPUT"], "{}", reply.text);
    assert!(reply.text.contains("built in"), "{}", reply.text);
    let reply = post(shop.addr, Some(&admin), "mutation($id: ID!) { deleteKpi(id: $id) }", json!({ "id": lag })).await;
    assert_eq!(reply.codes(), ["BAD_USER_INPUT"], "{}", reply.text);
    let d = data(shop.addr, &lead, "query($id: ID!) { kpi(id: $id) { name ready } }", json!({ "id": lag })).await;
    assert_eq!(d["kpi"]["ready"], true, "still there, sampled: {d}");
}

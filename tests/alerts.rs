//! Alerts through GraphQL against a real PostgreSQL and a real `opslive serve`: a rule on a
//! KPI fires on the transaction that crosses its threshold (with that transaction as its
//! provenance), is acknowledged, resolves, and leaves its history; row rules fire per row and
//! never show a row a role cannot read; bad rules are refused and nothing is stored.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use support::alerting::INSERT_TEST_ORDER;
use support::graphql::{Shop, data, fixture_policy, post, token};
use support::ws::{TRANSPORT_WS, WsClient};

const ALERT_FIELDS: &str = "ruleId ruleName instance labels state severity value summary row \
    cause { source position commitTs dueAt } acknowledged acknowledgedBy acknowledgementNote silenced";

const CREATE_RULE: &str = "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id name problem } }";

async fn create_rule(shop: &Shop, token: &str, input: Json) -> String {
    let d = data(shop.addr, token, CREATE_RULE, json!({ "input": input })).await;
    d["createAlertRule"]["id"].as_str().expect("an id").to_string()
}

/// A KPI counting orders in the test currency (none in the fixture data): its `createKpi`.
async fn test_orders_kpi(shop: &Shop, token: &str) -> Json {
    data(
        shop.addr,
        token,
        "mutation($input: KpiInput!) { createKpi(input: $input) { id value } }",
        json!({ "input": { "name": "Test orders", "table": "orders", "aggregate": "COUNT",
                           "filter": { "currency": { "eq": "XTS" } } } }),
    )
    .await
}

async fn alerts(shop: &Shop, token: &str) -> Vec<Json> {
    let d = data(shop.addr, token, &format!("{{ alerts {{ {ALERT_FIELDS} }} }}"), json!({})).await;
    d["alerts"].as_array().cloned().unwrap_or_default()
}

/// Polls `alerts` until `done` holds for them; fails after the deadline.
async fn wait_alerts(shop: &Shop, token: &str, what: &str, done: impl Fn(&[Json]) -> bool) -> Vec<Json> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = alerts(shop, token).await;
        if done(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "{what}: alerts are {got:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').expect("an LSN");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

async fn current_lsn(client: &tokio_postgres::Client) -> u64 {
    lsn(&client.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap().get::<_, String>(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kpi_rule_fires_on_the_crossing_transaction_is_acknowledged_and_resolves() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({ "sub": "alice@example.com" }));
    let client = shop.pg.connect("shop").await;

    // Orders in the test currency: none in the fixture data.
    let d = test_orders_kpi(&shop, &admin).await;
    assert_eq!(d["createKpi"]["value"], "0");
    let kpi = d["createKpi"]["id"].as_str().unwrap().to_string();
    let rule = create_rule(
        &shop,
        &admin,
        json!({ "name": "Too many test orders", "severity": "CRITICAL", "labels": { "team": "qa" },
                "kpi": { "kpi": kpi, "above": 1 } }),
    )
    .await;

    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    ws.subscribe("alerts", &format!("subscription {{ alerts {{ {ALERT_FIELDS} }} }}"), json!({})).await;
    let frame = ws.next("alerts").await;
    assert_eq!(frame["data"]["alerts"], json!([]), "{frame}");

    // One order: 1 is not above 1.
    client.batch_execute(INSERT_TEST_ORDER).await.unwrap();
    // The second crosses: the alert fires with this very transaction as its cause.
    let before = current_lsn(&client).await;
    client.batch_execute(INSERT_TEST_ORDER).await.unwrap();
    let after = current_lsn(&client).await;
    let frame = ws.next("alerts").await;
    let fired = &frame["data"]["alerts"][0];
    assert_eq!(fired["state"], "FIRING", "{frame}");
    assert_eq!((fired["ruleId"].as_str(), fired["severity"].as_str()), (Some(rule.as_str()), Some("CRITICAL")));
    assert_eq!(fired["value"], "2");
    assert_eq!(fired["labels"], json!({ "team": "qa" }));
    let position = lsn(fired["cause"]["position"].as_str().expect("a position"));
    assert!(before < position && position <= after, "the crossing commit ({before:X}..{after:X}], not {position:X}");
    assert!(fired["cause"]["commitTs"].is_string(), "{fired}");
    assert_eq!(frame["extensions"]["seq"], 2, "one frame per change: {frame}");

    // More orders keep it firing: no new transition, only the value moves.
    client.batch_execute(INSERT_TEST_ORDER).await.unwrap();
    let frame = ws.next("alerts").await;
    assert_eq!(frame["data"]["alerts"][0]["value"], "3", "{frame}");

    // Acknowledged by the token's subject, with a note.
    let ack = "mutation($rule: ID!) { acknowledgeAlert(ruleId: $rule, instance: \"\", note: \"on it\") { acknowledged acknowledgedBy acknowledgementNote } }";
    let d = data(shop.addr, &admin, ack, json!({ "rule": rule })).await;
    assert_eq!(
        d["acknowledgeAlert"],
        json!({ "acknowledged": true, "acknowledgedBy": "alice@example.com", "acknowledgementNote": "on it" })
    );
    let frame = ws.next("alerts").await;
    assert_eq!(frame["data"]["alerts"][0]["acknowledgedBy"], "alice@example.com", "{frame}");
    // Acknowledging what is not firing is refused.
    let reply = post(shop.addr, Some(&admin), ack, json!({ "rule": "999" })).await;
    assert_eq!(reply.codes(), ["BAD_USER_INPUT"], "{}", reply.text);

    // Back under the threshold: resolved, and gone from `alerts`.
    client.batch_execute("DELETE FROM orders WHERE currency = 'XTS'").await.unwrap();
    let frame = ws.next("alerts").await;
    assert_eq!(frame["data"]["alerts"], json!([]), "{frame}");

    // The history holds both transitions, newest first, with their causes.
    let history = "query($rule: ID!) { alertHistory(ruleId: $rule) { from to value summary cause { position } } }";
    // (Written off the evaluation path: the board shows a transition a moment before the app
    // database holds it.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let d = loop {
        let d = data(shop.addr, &admin, history, json!({ "rule": rule })).await;
        if d["alertHistory"].as_array().map(Vec::len) == Some(2) || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let h = d["alertHistory"].as_array().unwrap();
    assert_eq!(h.len(), 2, "{d}");
    assert_eq!((h[0]["from"].as_str(), h[0]["to"].as_str()), (Some("FIRING"), Some("RESOLVED")));
    assert_eq!((h[1]["from"].as_str(), h[1]["to"].as_str()), (Some("NORMAL"), Some("FIRING")));
    assert_eq!(lsn(h[1]["cause"]["position"].as_str().unwrap()), position);
    assert!(h[1]["summary"].as_str().unwrap().contains("Too many test orders"), "{d}");

    // A restart: the rule and its history are kept, and nothing fires again.
    let rules = data(shop.addr, &admin, "{ alertRules { id name } }", json!({})).await;
    assert_eq!(rules["alertRules"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_and_change_rules_fire_on_their_transaction_and_a_crossing_runs_out_by_itself() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({ "sub": "alice@example.com" }));
    let client = shop.pg.connect("shop").await;
    let d = test_orders_kpi(&shop, &admin).await;
    let kpi = d["createKpi"]["id"].as_str().unwrap().to_string();
    let crossing = create_rule(
        &shop,
        &admin,
        json!({ "name": "Reached two", "kpi": { "kpi": kpi, "crosses": { "value": 2, "direction": "UP" } },
                "keepFiringFor": "PT2S" }),
    )
    .await;
    let change = create_rule(
        &shop,
        &admin,
        json!({ "name": "Surge", "kpi": { "kpi": kpi, "change": { "over": "PT10M", "above": 1 } },
                "summary": "up {{change}} in ten minutes" }),
    )
    .await;

    client.batch_execute(INSERT_TEST_ORDER).await.unwrap();
    let before = current_lsn(&client).await;
    client.batch_execute(INSERT_TEST_ORDER).await.unwrap();
    let after = current_lsn(&client).await;
    let firing = wait_alerts(&shop, &admin, "both fire on the second order", |a| a.len() == 2).await;
    for rule in [&crossing, &change] {
        let a = firing.iter().find(|a| a["ruleId"] == json!(rule)).expect("fired");
        assert_eq!(a["state"], "FIRING", "{a}");
        let position = lsn(a["cause"]["position"].as_str().expect("a position"));
        assert!(before < position && position <= after, "{a}");
    }
    let surge = firing.iter().find(|a| a["ruleId"] == json!(change)).unwrap();
    assert_eq!(surge["summary"], "up 2 in ten minutes");

    // No write: the crossing resolves when its firing time runs out; the change stands.
    let left = wait_alerts(&shop, &admin, "the crossing runs out", |a| a.len() == 1).await;
    assert_eq!(left[0]["ruleId"], json!(change), "{left:?}");
    let history = "query($rule: ID!) { alertHistory(ruleId: $rule) { from to cause { dueAt } } }";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = data(shop.addr, &admin, history, json!({ "rule": crossing })).await;
        let h = d["alertHistory"].as_array().cloned().unwrap_or_default();
        if h.len() == 2 {
            assert_eq!((h[0]["from"].as_str(), h[0]["to"].as_str()), (Some("FIRING"), Some("RESOLVED")));
            assert!(h[0]["cause"]["dueAt"].is_string(), "resolved by time: {d}");
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_rules_fire_per_row_and_never_show_a_row_the_role_cannot_read() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let client = shop.pg.connect("shop").await;
    let (sku, ber_on_hand): (String, i32) = {
        let row = client
            .query_one("SELECT sku, on_hand FROM inventory WHERE warehouse_id = 'WH-BER' ORDER BY sku LIMIT 1", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    // The test's SKU: high stock everywhere first, so nothing of it is below its reorder point.
    client
        .batch_execute(&format!("UPDATE inventory SET on_hand = reorder_point + 100 WHERE sku = '{sku}'"))
        .await
        .unwrap();
    create_rule(
        &shop,
        &admin,
        json!({ "name": "Low stock", "severity": "INFO",
                "rows": { "table": "inventory", "labelColumns": ["warehouseId"],
                          "filter": { "sku": { "eq": sku }, "onHand": { "lt": { "column": "reorderPoint" } } } },
                "summary": "{{sku}} in {{warehouseId}}: {{onHand}} on hand" }),
    )
    .await;
    // The rule is evaluated in the order of the stream: once it has caught up, nothing is low.
    wait_alerts(&shop, &admin, "nothing low", |a| a.is_empty()).await;

    // Two warehouses drop below: one alert each, labelled and summarised from the row.
    client
        .batch_execute(&format!(
            "UPDATE inventory SET on_hand = 0 WHERE sku = '{sku}' AND warehouse_id IN \
             (SELECT warehouse_id FROM inventory WHERE sku = '{sku}' ORDER BY warehouse_id = 'WH-BER' DESC, warehouse_id LIMIT 2)"
        ))
        .await
        .unwrap();
    let fired = wait_alerts(&shop, &admin, "two rows below", |a| a.len() == 2).await;
    let ber = fired.iter().find(|a| a["labels"]["warehouseId"] == "WH-BER").expect("Berlin's row fired");
    assert_eq!(ber["summary"], format!("{sku} in WH-BER: 0 on hand"));
    assert_eq!(ber["instance"], json!([sku.clone(), "WH-BER"]).to_string());
    assert_eq!(ber["row"]["onHand"], 0);
    assert!(ber["row"]["reorderPoint"].is_number(), "the compared column is in the row: {ber}");

    // A Berlin lead sees Berlin's alert only; another lead sees none; a role without the table
    // sees no rule at all.
    let lead_ber = token("warehouse_lead", json!({ "warehouses": ["WH-BER"] }));
    let seen = alerts(&shop, &lead_ber).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["labels"]["warehouseId"], "WH-BER");
    // How many rows are over the cap counts every warehouse: not for the lead.
    let rules = "{ alertRules { name overflow } }";
    assert_eq!(data(shop.addr, &lead_ber, rules, json!({})).await["alertRules"][0]["overflow"], Json::Null);
    assert_eq!(data(shop.addr, &admin, rules, json!({})).await["alertRules"][0]["overflow"], 0);
    let lead_other = token("warehouse_lead", json!({ "warehouses": ["WH-XXX"] }));
    assert!(alerts(&shop, &lead_other).await.is_empty());
    let support = token("support_lead", json!({}));
    assert!(alerts(&shop, &support).await.is_empty());
    let d = data(shop.addr, &support, "{ alertRules { id } }", json!({})).await;
    assert_eq!(d["alertRules"], json!([]));

    // Restocked: Berlin's alert resolves, the other stays.
    client
        .batch_execute(&format!(
            "UPDATE inventory SET on_hand = {} WHERE sku = '{sku}' AND warehouse_id = 'WH-BER'",
            ber_on_hand.max(1000)
        ))
        .await
        .unwrap();
    let left = wait_alerts(&shop, &admin, "Berlin restocked", |a| a.len() == 1).await;
    assert_ne!(left[0]["labels"]["warehouseId"], "WH-BER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_and_only_roles_that_manage_alerts_may_write() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    for (input, field) in [
        (json!({ "name": "x" }), "input.kpi"),
        (json!({ "name": "x", "kpi": { "kpi": "12345", "above": 1 } }), "input.kpi.kpi"),
        (json!({ "name": "x", "rows": { "table": "nope", "filter": {} } }), "input.rows.table"),
        (json!({ "name": "x", "rows": { "table": "orders", "filter": { "totl": { "gt": 1 } } } }), "input.rows.filter"),
        (json!({ "name": "x", "rows": { "table": "orders", "filter": {} }, "for": "soon" }), "input.for"),
    ] {
        let reply = post(shop.addr, Some(&admin), CREATE_RULE, json!({ "input": input })).await;
        let body = reply.json();
        let e = &body["errors"][0];
        assert_eq!(
            (e["extensions"]["code"].as_str(), e["extensions"]["field"].as_str()),
            (Some("BAD_USER_INPUT"), Some(field)),
            "{input}: {}",
            reply.text
        );
    }
    let d = data(shop.addr, &admin, "{ alertRules { id } }", json!({})).await;
    assert_eq!(d["alertRules"], json!([]), "nothing was stored");
    let analyst = token("analyst", json!({}));
    let input = json!({ "name": "x", "rows": { "table": "orders", "filter": { "status": { "eq": "pending" } } } });
    let reply = post(shop.addr, Some(&analyst), CREATE_RULE, json!({ "input": input })).await;
    assert_eq!(reply.codes(), ["FORBIDDEN"], "{}", reply.text);
    // Silences: created and listed, expired; one that would match everything is refused.
    let silence = "mutation { createSilence(matchers: [{ label: \"team\", value: \"qa\" }], duration: \"PT1H\", comment: \"deploy\") { id comment } }";
    let d = data(shop.addr, &admin, silence, json!({})).await;
    let id = d["createSilence"]["id"].as_str().unwrap().to_string();
    let d = data(shop.addr, &admin, "{ silences { id matchers { label value } } }", json!({})).await;
    assert_eq!(d["silences"][0]["matchers"], json!([{ "label": "team", "value": "qa" }]));
    let reply = post(
        shop.addr,
        Some(&admin),
        "mutation { createSilence(matchers: [{ label: \"team\", value: \"qa\", negated: true }], duration: \"PT1H\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(reply.codes(), ["BAD_USER_INPUT"], "{}", reply.text);
    let d = data(shop.addr, &admin, "mutation($id: ID!) { expireSilence(id: $id) }", json!({ "id": id })).await;
    assert_eq!(d["expireSilence"], true);
    let d = data(shop.addr, &admin, "{ silences { id } }", json!({})).await;
    assert_eq!(d["silences"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_kpis_and_rules_bind_to_the_fixture_tables() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let ops = token("ops_manager", json!({ "sub": "demo" }));
    let admin = token("admin", json!({}));
    let fixture: Json = serde_json::from_str(opslive::demo::monitoring::FIXTURE).unwrap();
    let mut ids = std::collections::HashMap::new();
    for kpi in fixture["kpis"].as_array().unwrap() {
        let reply = post(
            shop.addr,
            Some(&ops),
            "mutation($input: KpiInput!) { createKpi(input: $input) { id name ready notReadyReason } }",
            json!({ "input": kpi }),
        )
        .await;
        let body = reply.json();
        let created = &body["data"]["createKpi"];
        assert_eq!(created["ready"], true, "{kpi}: {}", reply.text);
        ids.insert(created["name"].as_str().unwrap().to_string(), created["id"].clone());
    }
    // Built-in KPIs are named `builtin:<source>/<MEASURE>` in the fixture.
    let d = data(shop.addr, &admin, "{ kpis { id source { source measure } } }", json!({})).await;
    for k in d["kpis"].as_array().unwrap().iter().filter(|k| !k["source"].is_null()) {
        ids.insert(
            format!("builtin:{}/{}", k["source"]["source"].as_str().unwrap(), k["source"]["measure"].as_str().unwrap()),
            k["id"].clone(),
        );
    }
    for rule in fixture["rules"].as_array().unwrap() {
        let mut rule = rule.clone();
        if let Some(name) = rule.pointer("/kpi/kpi").and_then(Json::as_str) {
            // This server reads the demo's helpdesk from the shop's database (`demo_config`
            // folds the MariaDB source into the PostgreSQL one): its built-ins are the shop's.
            let name = name.replace("builtin:helpdesk/", "builtin:shop/");
            rule["kpi"]["kpi"] = ids.get(&name).unwrap_or_else(|| panic!("no KPI {name}")).clone();
        }
        let reply = post(shop.addr, Some(&admin), CREATE_RULE, json!({ "input": rule })).await;
        let body = reply.json();
        assert!(body["data"]["createAlertRule"]["problem"].is_null(), "{rule}: {}", reply.text);
    }
    let d = data(
        shop.addr,
        &admin,
        "{ kpis(builtin: false) { name ready } alertRules { name problem overflow } }",
        json!({}),
    )
    .await;
    assert_eq!(d["kpis"].as_array().map(Vec::len), fixture["kpis"].as_array().map(Vec::len), "{d}");
    assert_eq!(d["alertRules"].as_array().map(Vec::len), fixture["rules"].as_array().map(Vec::len), "{d}");
}

//! What the alert and notification tests fire on: a pending order in the test currency `XTS`
//! (the fixture data has none), and a row rule that fires once per such order.

use serde_json::json;

use super::graphql::{Shop, data};

/// Inserts one pending test order (append `RETURNING …` to read it back).
pub const INSERT_TEST_ORDER: &str = "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, \
     region, item_count) SELECT 'phone', min(id), 'pending', 5.00, 'XTS', 'WH-BER', 'eu', 1 FROM customers";

/// A critical row rule labelled `team=qa`, firing for each pending test order ("order {id} waits");
/// returns its id.
pub async fn test_order_rule(shop: &Shop, admin: &str) -> String {
    let d = data(
        shop.addr,
        admin,
        "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id } }",
        json!({ "input": { "name": "Test order pending", "severity": "CRITICAL", "labels": { "team": "qa" },
                           "summary": "order {{id}} waits", "rows": { "table": "orders",
                           "filter": { "currency": { "eq": "XTS" }, "status": { "eq": "pending" } } } } }),
    )
    .await;
    d["createAlertRule"]["id"].as_str().expect("a rule id").to_string()
}

//! Live queries through real client libraries: graphql-ws (the graphql-transport-ws protocol)
//! and subscriptions-transport-ws (the legacy graphql-ws protocol) from npm. Each sees a commit
//! arrive. (GraphiQL in Chromium is the web app's Explorer: `web/e2e` drives it.)
//!
//! Needs `npm ci --prefix tests/clients` (`.ci/run` does it). On a machine
//! without Node the tests pass with a "skipped" line on stderr saying why (the Rust suite does not
//! depend on Node; `.ci/run` installs it, so CI runs them).

mod support;

use serde_json::json;
use support::graphql::{Shop, data, fixture_policy, token};
use support::node::{Script, node_missing};

const DATA: &str = "
    INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin');
    INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu');
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes)
      SELECT 'web', 1, 'paid', g, 'EUR', 'WH-BER', 'eu', 1, 'seed ' || g FROM generate_series(1, 5) g;
";

const LATEST: &str = "subscription { orders(orderBy: {id: DESC}, limit: 3) { id notes } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_libraries_of_both_protocols_follow_commits() {
    if node_missing("client_libraries_of_both_protocols_follow_commits") {
        return;
    }
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let db = shop.pg.connect("shop").await;
    let url = format!("ws://{}/graphql", shop.addr);
    for protocol in ["transport", "legacy"] {
        let mut client = Script::start("subscribe.mjs", &[protocol, &url, &admin, LATEST]);
        let fresh = data(shop.addr, &admin, &LATEST.replacen("subscription", "query", 1), json!({})).await;
        let first = client.next().await;
        assert_eq!(first["data"], fresh, "{protocol}: the first result is the query's");
        let note = format!("from {protocol}");
        db.execute(
            "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes) VALUES ('web', 1, 'paid', 1, 'EUR', 'WH-BER', 'eu', 1, $1)",
            &[&note],
        )
        .await
        .unwrap();
        let update = client.next().await;
        assert_eq!(update["data"]["orders"][0]["notes"], json!(note), "{protocol}: {update}");
        let fresh = data(shop.addr, &admin, &LATEST.replacen("subscription", "query", 1), json!({})).await;
        assert_eq!(update["data"], fresh, "{protocol}");
    }
}

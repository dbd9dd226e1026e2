//! Each user's workspace through GraphQL against a real `opslive serve` and its app database:
//! saved Explorer queries and the overview layout are kept per token `sub`, invisible to every
//! other user, checked before they are stored, and still there after a restart.

mod support;

use serde_json::{Value as Json, json};
use support::graphql::{Reply, Shop, data, fixture_policy, post, token};

const SAVE: &str = "mutation($name: String!, $query: String!, $variables: JSON) { \
                    saveQuery(name: $name, query: $query, variables: $variables) { id name query variables updatedAt } }";
const LIST: &str = "{ savedQueries { id name query variables } }";
const DELETE: &str = "mutation($id: ID!) { deleteSavedQuery(id: $id) }";
const LAYOUT: &str = "{ overviewLayout { tiles hidden updatedAt } }";
const SAVE_LAYOUT: &str = "mutation($tiles: [ID!]!, $hidden: [ID!]!) { \
                           saveOverviewLayout(tiles: $tiles, hidden: $hidden) { tiles hidden updatedAt } }";

async fn saved(shop: &Shop, token: &str) -> Vec<Json> {
    data(shop.addr, token, LIST, json!({})).await["savedQueries"].as_array().cloned().unwrap_or_default()
}

fn names(list: &[Json]) -> Vec<&str> {
    list.iter().map(|q| q["name"].as_str().unwrap()).collect()
}

fn code(reply: &Reply) -> String {
    let body = reply.json();
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}")).to_string()
}

fn message(reply: &Reply) -> String {
    reply.json()["errors"][0]["message"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_keeps_their_own_queries_and_layout_and_finds_them_after_a_restart() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let alice = token("ops_manager", json!({ "sub": "alice" }));
    // Same role, another person: nothing of Alice's is Bob's.
    let bob = token("ops_manager", json!({ "sub": "bob" }));
    let carol = token("warehouse_lead", json!({ "sub": "carol", "warehouses": ["WH-BER"] }));

    let low = "query Low($n: Int!) { inventory(where: { onHand: { lt: $n } }) { sku onHand } }";
    let first =
        data(shop.addr, &alice, SAVE, json!({ "name": " Low stock ", "query": low, "variables": { "n": 5 } })).await;
    assert_eq!(first["saveQuery"]["name"], "Low stock", "names are trimmed");
    assert_eq!(first["saveQuery"]["variables"], json!({ "n": 5 }));
    let intake = "subscription { ordersAggregate(groupBy: [CHANNEL]) { key count } }";
    data(shop.addr, &alice, SAVE, json!({ "name": "Intake", "query": intake })).await;
    // Saving under a name Alice has replaces that query: same id, new text.
    let lower = low.replace("sku onHand", "sku onHand reorderPoint");
    let again = data(shop.addr, &alice, SAVE, json!({ "name": "Low stock", "query": lower })).await;
    assert_eq!(again["saveQuery"]["id"], first["saveQuery"]["id"]);
    let list = saved(&shop, &alice).await;
    assert_eq!(names(&list), ["Intake", "Low stock"]);
    assert_eq!(list[1]["query"], lower.as_str());
    assert_eq!(list[1]["variables"], Json::Null, "saved again without variables");

    // Bob and Carol see none of it, and cannot delete it by naming its id.
    assert!(saved(&shop, &bob).await.is_empty());
    assert!(saved(&shop, &carol).await.is_empty());
    let intake_id = list[0]["id"].clone();
    assert_eq!(data(shop.addr, &bob, DELETE, json!({ "id": intake_id })).await["deleteSavedQuery"], false);
    assert_eq!(names(&saved(&shop, &alice).await), ["Intake", "Low stock"]);
    // Bob may use the same name for his own.
    data(shop.addr, &bob, SAVE, json!({ "name": "Intake", "query": "{ orders(limit: 1) { id } }" })).await;
    assert_eq!(data(shop.addr, &alice, DELETE, json!({ "id": intake_id })).await["deleteSavedQuery"], true);
    assert_eq!(data(shop.addr, &alice, DELETE, json!({ "id": intake_id })).await["deleteSavedQuery"], false);
    assert_eq!(names(&saved(&shop, &alice).await), ["Low stock"]);
    assert_eq!(names(&saved(&shop, &bob).await), ["Intake"]);

    // Layouts: empty until saved, then Alice's own.
    let empty = data(shop.addr, &alice, LAYOUT, json!({})).await;
    assert_eq!(empty["overviewLayout"], json!({ "tiles": [], "hidden": [], "updatedAt": null }));
    let arranged = data(shop.addr, &alice, SAVE_LAYOUT, json!({ "tiles": ["7", "3", "12"], "hidden": ["5"] })).await;
    assert_eq!(arranged["saveOverviewLayout"]["tiles"], json!(["7", "3", "12"]));
    assert!(arranged["saveOverviewLayout"]["updatedAt"].is_string());
    let layout = data(shop.addr, &alice, LAYOUT, json!({})).await;
    assert_eq!(layout["overviewLayout"], arranged["saveOverviewLayout"]);
    assert_eq!(data(shop.addr, &bob, LAYOUT, json!({})).await, empty);
    // Saving again replaces the whole layout.
    data(shop.addr, &alice, SAVE_LAYOUT, json!({ "tiles": ["3"], "hidden": [] })).await;

    let Shop { pg, serve, dir, .. } = shop;
    serve.terminate().await;
    let mut serve = support::serve::Serve::start(&dir.path().join("opslive.toml"));
    let addr = serve.wait_listening().await;
    let shop = Shop { pg, serve, addr, dir };
    let list = saved(&shop, &alice).await;
    assert_eq!(names(&list), ["Low stock"]);
    assert_eq!(list[0]["query"], lower.as_str());
    let layout = data(shop.addr, &alice, LAYOUT, json!({})).await;
    assert_eq!(layout["overviewLayout"]["tiles"], json!(["3"]));
    assert_eq!(layout["overviewLayout"]["hidden"], json!([]));
    assert_eq!(names(&saved(&shop, &bob).await), ["Intake"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_workspace_input_is_refused_with_a_clear_error_and_nothing_is_stored() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let dana = token("ops_manager", json!({ "sub": "dana" }));

    // A token with no `sub` has nobody to keep a workspace for.
    let nobody = token("ops_manager", json!({}));
    for (query, variables) in [
        (LIST, json!({})),
        (LAYOUT, json!({})),
        (SAVE, json!({ "name": "x", "query": "{ orders { id } }" })),
        (SAVE_LAYOUT, json!({ "tiles": [], "hidden": [] })),
    ] {
        let reply = post(shop.addr, Some(&nobody), query, variables).await;
        assert_eq!(code(&reply), "UNAUTHENTICATED", "{query}: {}", reply.text);
        assert!(message(&reply).contains("`sub`"), "{}", reply.text);
    }

    for (variables, wanted) in [
        (json!({ "name": "  ", "query": "{ orders { id } }" }), "`name` is empty"),
        (json!({ "name": "x".repeat(101), "query": "{ orders { id } }" }), "longer than 100"),
        (json!({ "name": "broken", "query": "{ orders { id }" }), "not a GraphQL document"),
        (json!({ "name": "vars", "query": "{ orders { id } }", "variables": [1] }), "must be a JSON object"),
    ] {
        let reply = post(shop.addr, Some(&dana), SAVE, variables.clone()).await;
        assert_eq!(code(&reply), "BAD_USER_INPUT", "{variables}: {}", reply.text);
        assert!(message(&reply).contains(wanted), "{wanted}: {}", reply.text);
    }
    assert!(saved(&shop, &dana).await.is_empty(), "nothing invalid was stored");

    for (variables, wanted) in [
        (json!({ "tiles": ["1", "2", "1"], "hidden": [] }), "names KPI 1 twice"),
        (json!({ "tiles": ["abc"], "hidden": [] }), "`tiles[0]` is not a KPI id"),
        (json!({ "tiles": [], "hidden": (0..1001).map(|i| i.to_string()).collect::<Vec<_>>() }), "more than 1000"),
    ] {
        let reply = post(shop.addr, Some(&dana), SAVE_LAYOUT, variables).await;
        assert_eq!(code(&reply), "BAD_USER_INPUT", "{}", reply.text);
        assert!(message(&reply).contains(wanted), "{wanted}: {}", reply.text);
    }
    let layout = data(shop.addr, &dana, LAYOUT, json!({})).await;
    assert_eq!(layout["overviewLayout"]["updatedAt"], Json::Null, "no layout was stored");

    // At most 200 saved queries per user; saving one of them again is still fine.
    for i in 0..200 {
        data(shop.addr, &dana, SAVE, json!({ "name": format!("q{i:03}"), "query": "{ orders(limit: 1) { id } }" }))
            .await;
    }
    let reply = post(shop.addr, Some(&dana), SAVE, json!({ "name": "one more", "query": "{ orders { id } }" })).await;
    assert_eq!(code(&reply), "BAD_USER_INPUT", "{}", reply.text);
    assert!(message(&reply).contains("delete one first"), "{}", reply.text);
    data(shop.addr, &dana, SAVE, json!({ "name": "q000", "query": "{ orders(limit: 2) { id } }" })).await;
    assert_eq!(saved(&shop, &dana).await.len(), 200);
}

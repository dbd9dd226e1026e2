//! The GraphQL contract as committed files: the admin's SDL for the fixture configuration is
//! `graphql/schema.graphql` (this test fails when it drifts; `UPDATE_SCHEMA=1` rewrites it), and
//! every query (and live query) in `graphql/examples/` runs on the fixture data without an error. GraphiQL's own
//! introspection query fits the depth and complexity limits for every role.

mod support;

use std::path::Path;

use serde_json::json;
use support::graphql::{Shop, data, fixture_policy, post, request, token};

/// The query GraphiQL sends to learn a schema (graphql-js `getIntrospectionQuery`).
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_schema_and_examples_match_the_server() {
    let shop = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let admin = token("admin", json!({}));

    // The SDL drift check.
    let bearer = format!("Bearer {admin}");
    let sdl = request(shop.addr, "GET", "/graphql/schema.graphql", &[("Authorization", bearer.as_str())], "").await;
    assert_eq!(sdl.status, 200, "{}", sdl.text);
    let committed_path = repo("graphql/schema.graphql");
    let header = "# The admin's GraphQL schema for the fixture configuration (fixtures/opslive.example.toml,\n\
                  # fixtures/postgres/schema.sql, fixtures/policy.toml). Written by tests/graphql_schema.rs:\n\
                  # UPDATE_SCHEMA=1 cargo nextest run --test graphql_schema\n\n";
    let served = format!("{header}{}", sdl.text.trim_start());
    if std::env::var_os("UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::write(&committed_path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed != served {
        let first =
            committed.lines().zip(served.lines()).position(|(a, b)| a != b).unwrap_or(committed.lines().count());
        panic!(
            "graphql/schema.graphql differs from the server's admin schema from line {}:\n  committed: {:?}\n  served:    {:?}\n\
             If the change is intended, run UPDATE_SCHEMA=1 cargo nextest run --test graphql_schema and commit the file.",
            first + 1,
            committed.lines().nth(first),
            served.lines().nth(first)
        );
    }

    // Every example runs, with its variables' defaults, and answers without an error.
    let mut examples: Vec<_> = std::fs::read_dir(repo("graphql/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "graphql"))
        .collect();
    examples.sort();
    assert!((5..=10).contains(&examples.len()), "5 to 10 examples, found {}", examples.len());
    for path in examples {
        let query = std::fs::read_to_string(&path).unwrap();
        let d = if query.lines().any(|l| l.starts_with("subscription")) {
            // A live query: its first result, over WebSocket.
            let mut ws = support::ws::WsClient::connect(shop.addr, support::ws::TRANSPORT_WS, &admin).await;
            ws.subscribe("example", &query, json!({})).await;
            let payload = ws.next("example").await;
            assert!(payload.get("errors").is_none(), "{}: {payload}", path.display());
            let mut d = payload["data"].clone();
            // An incremental result's rows are in its reset.
            for v in d.as_object_mut().unwrap().values_mut() {
                if v.get("reset").is_some() {
                    *v = v["reset"].clone();
                }
            }
            d
        } else {
            data(shop.addr, &admin, &query, json!({})).await
        };
        let answered = d.as_object().unwrap().values().all(|v| !v.is_null());
        assert!(answered, "{}: {d}", path.display());
        let non_empty = d.as_object().unwrap().values().any(|v| v.as_array().is_none_or(|a| !a.is_empty()));
        assert!(non_empty, "{} answers something on the fixture data: {d}", path.display());
    }

    // GraphiQL can learn every role's schema.
    for (role, claims) in [
        ("admin", json!({})),
        ("ops_manager", json!({})),
        ("warehouse_lead", json!({ "warehouses": ["WH-BER"] })),
        ("support_lead", json!({})),
        ("finance", json!({})),
        ("analyst", json!({})),
    ] {
        let reply = post(shop.addr, Some(&token(role, claims)), INTROSPECTION, json!({})).await;
        assert_eq!(reply.status, 200, "{role}: {}", &reply.text[..reply.text.len().min(2000)]);
        let body = reply.json();
        assert!(body.get("errors").is_none(), "{role}: {}", &reply.text[..reply.text.len().min(2000)]);
        assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    }
}

//! `/graphql` as clients meet it: refused tokens (401, a GraphQL error body, no data), malformed
//! requests, parse and validation failures, GET with variables, a browser sent to the Explorer, the
//! role's SDL, limits, `NOT_READY` for a table waiting for a resync, and policy reload without
//! a restart (a good file is taken, a bad one is refused and the old policy stays).

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};
use support::graphql::{SECRET, Shop, data, fixture_policy, post, request, token};

const DATA: &str = "
    INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin'), ('WH-MAD', 'Madrid', 'eu', 'Europe/Madrid');
    INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu');
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes)
      SELECT 'web', 1, 'paid', g * 1.25, 'EUR', 'WH-BER', 'eu', g, 'note ' || g FROM generate_series(1, 20) g;
    INSERT INTO products SELECT 'SKU-' || g, 'Product ' || g, 'toys', 1.00 FROM generate_series(1, 10001) g;
    INSERT INTO agents (name, queue) VALUES ('Bo', 'billing');
    INSERT INTO tickets (queue, subject, customer_id) VALUES ('billing', 'Where is my parcel?', 1);
";

fn expired_token() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({ "role": "admin", "exp": now - 60, "iat": now - 120 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Asserts a refusal: the status, one error with `code`, and no data at all.
fn refused(reply: &support::graphql::Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    // `post` accepts the GraphQL response type; a plain `request` gets application/json.
    assert!(
        ["application/graphql-response+json; charset=utf-8", "application/json; charset=utf-8"]
            .contains(&reply.content_type.as_str()),
        "{}",
        reply.content_type
    );
    assert_eq!(reply.codes(), [code], "{}", reply.text);
    let body = reply.json();
    assert!(body.get("data").is_none(), "no data key with a refusal: {}", reply.text);
    assert!(!body["errors"][0]["message"].as_str().unwrap_or("").is_empty());
}

fn encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_tokens_and_errors() {
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let addr = shop.addr;
    let admin = token("admin", json!({}));
    let q = "{ ordersAggregate { count } }";

    // Tokens: none, not a JWT, not Bearer, signed with another secret, expired.
    refused(&post(addr, None, q, json!({})).await, 401, "UNAUTHENTICATED");
    refused(&post(addr, Some("not-a-jwt"), q, json!({})).await, 401, "INVALID_TOKEN");
    let other = opslive::auth::mint_hs256(
        "another-secret-of-at-least-32-bytes!",
        "admin",
        Default::default(),
        Duration::from_secs(60),
    )
    .unwrap();
    refused(&post(addr, Some(&other), q, json!({})).await, 401, "INVALID_TOKEN");
    refused(&post(addr, Some(&expired_token()), q, json!({})).await, 401, "TOKEN_EXPIRED");
    let basic = request(
        addr,
        "POST",
        "/graphql",
        &[("Authorization", "Basic YTpi"), ("Content-Type", "application/json")],
        "{}",
    )
    .await;
    refused(&basic, 401, "INVALID_TOKEN");
    let reply = post(addr, Some(&expired_token()), "{ orders { id notes } }", json!({})).await;
    assert!(!reply.text.contains("note 1"), "no row data with a refused token");

    // Malformed requests.
    let bearer = format!("Bearer {admin}");
    let auth = ("Authorization", bearer.as_str());
    let json_type = ("Content-Type", "application/json");
    refused(&request(addr, "POST", "/graphql", &[auth, json_type], "{ not json").await, 400, "BAD_REQUEST");
    refused(&request(addr, "POST", "/graphql", &[auth, json_type], "[1, 2]").await, 400, "BAD_REQUEST");
    let typo = r#"{"qeury": "{ __typename }"}"#;
    refused(&request(addr, "POST", "/graphql", &[auth, json_type], typo).await, 400, "BAD_REQUEST");
    refused(
        &request(addr, "POST", "/graphql", &[auth, ("Content-Type", "text/plain")], "{}").await,
        415,
        "BAD_REQUEST",
    );
    refused(&post(addr, Some(&admin), "{ orders { id ", json!({})).await, 400, "GRAPHQL_PARSE_FAILED");
    refused(&post(addr, Some(&admin), "{ ordres { id } }", json!({})).await, 400, "GRAPHQL_VALIDATION_FAILED");
    refused(
        &post(addr, Some(&admin), "query($n: Int!) { orders(limit: $n) { id } }", json!({})).await,
        400,
        "GRAPHQL_VALIDATION_FAILED",
    );

    // Clients of the older `application/json` (and those that send no Accept) get every GraphQL
    // response as a 200, request errors still without data; failures before GraphQL keep their
    // status. A mutation is never run by GET; an Accept of neither type is a 406.
    let legacy = ("Accept", "application/json");
    for (query, code) in [
        ("{ orders { id ", "GRAPHQL_PARSE_FAILED"),
        ("{ ordres { id } }", "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int!) { orders(limit: $n) { id } }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let body = json!({ "query": query, "variables": {} }).to_string();
        for accept in [&[legacy][..], &[]] {
            let headers = [&[auth, json_type][..], accept].concat();
            let reply = request(addr, "POST", "/graphql", &headers, &body).await;
            assert_eq!(
                (reply.status, reply.content_type.as_str()),
                (200, "application/json; charset=utf-8"),
                "{query}"
            );
            assert_eq!(reply.codes(), [code], "{}", reply.text);
            assert!(reply.json().get("data").is_none(), "{}", reply.text);
        }
    }
    refused(&request(addr, "POST", "/graphql", &[auth, json_type, legacy], "{ not json").await, 400, "BAD_REQUEST");
    let mutation = encode(&[("query", "mutation { deleteSavedQuery(id: \"1\") }")]);
    let reply = request(addr, "GET", &format!("/graphql?{mutation}"), &[auth], "").await;
    refused(&reply, 405, "BAD_REQUEST");
    // A named mutation, the document's only operation, runs without `operationName`: refused too.
    let named = encode(&[("query", "mutation Forget { deleteSavedQuery(id: \"1\") }")]);
    refused(&request(addr, "GET", &format!("/graphql?{named}"), &[auth], "").await, 405, "BAD_REQUEST");
    let unacceptable = request(addr, "POST", "/graphql", &[auth, json_type, ("Accept", "text/plain")], "{}").await;
    refused(&unacceptable, 406, "BAD_REQUEST");

    // Executed requests with unusable arguments: 200, errors with BAD_USER_INPUT, the rest answered.
    let reply =
        post(addr, Some(&admin), r#"{ a: orders(limit: 20000) { id } b: ordersAggregate { count } }"#, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.codes(), ["BAD_USER_INPUT"], "{}", reply.text);
    assert_eq!(reply.json()["data"]["b"], json!([{ "count": 20 }]));
    let reply = post(
        addr,
        Some(&admin),
        r#"{ orders(where: { createdAt: { gt: "2024-02-30T00:00:00Z" } }) { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(reply.codes(), ["BAD_USER_INPUT"], "{}", reply.text);
    // More rows than one answer may hold must be paged, not cut short silently.
    let reply = post(addr, Some(&admin), "{ products { sku } }", json!({})).await;
    assert_eq!(reply.codes(), ["BAD_USER_INPUT"], "{}", reply.text);
    assert!(reply.json()["errors"][0]["message"].as_str().unwrap().contains("page with `limit`"));
    let d = data(addr, &admin, "{ products(limit: 10000, offset: 10000) { sku } }", json!({})).await;
    assert_eq!(d["products"].as_array().unwrap().len(), 1);

    // Aliases cannot multiply the cap: a request returns at most 50,000 rows in all.
    let many = (0..6).map(|i| format!("p{i}: products(limit: 10000) {{ sku }}")).collect::<Vec<_>>().join(" ");
    let reply = post(addr, Some(&admin), &format!("{{ {many} }}"), json!({})).await;
    assert!(reply.codes().contains(&"BAD_USER_INPUT".to_string()), "{}", &reply.text[..reply.text.len().min(500)]);
    assert!(reply.text.contains("more than 50000 rows in all"), "{}", &reply.text[..reply.text.len().min(500)]);

    // Depth is capped.
    let mut deep = String::from("name");
    for _ in 0..20 {
        deep = format!("name ofType {{ {deep} }}");
    }
    let q_deep = format!("{{ __schema {{ types {{ fields {{ type {{ {deep} }} }} }} }} }}");
    refused(&post(addr, Some(&admin), &q_deep, json!({})).await, 400, "GRAPHQL_VALIDATION_FAILED");

    // GET: a query with variables in the query string.
    let qs = encode(&[
        ("query", "query($s: String!) { ordersAggregate(where: { status: { eq: $s } }) { count sum { total } } }"),
        ("variables", r#"{"s": "paid"}"#),
    ]);
    let reply = request(addr, "GET", &format!("/graphql?{qs}"), &[auth], "").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["data"]["ordersAggregate"], json!([{ "count": 20, "sum": { "total": "262.50" } }]));
    refused(&request(addr, "GET", &format!("/graphql?{qs}"), &[], "").await, 401, "UNAUTHENTICATED");
    let bad_vars = encode(&[("query", "{ __typename }"), ("variables", "{oops")]);
    refused(&request(addr, "GET", &format!("/graphql?{bad_vars}"), &[auth], "").await, 400, "BAD_REQUEST");
    refused(&request(addr, "GET", "/graphql", &[auth], "").await, 400, "BAD_REQUEST");

    // A browser (no token) is sent to the web app's Explorer: GraphiQL is not in this binary.
    let page = request(addr, "GET", "/graphql", &[("Accept", "text/html,application/xhtml+xml")], "").await;
    assert_eq!((page.status, page.location.as_deref()), (307, Some("/explorer/")), "{}", page.text);
    assert_eq!(request(addr, "GET", "/graphql/assets/graphiql.min.js", &[], "").await.status, 404);

    // The caller's SDL.
    let sdl = request(addr, "GET", "/graphql/schema.graphql", &[auth], "").await;
    assert_eq!(sdl.status, 200);
    assert!(sdl.text.contains("type Query {") && sdl.text.contains("ordersAggregate("), "{}", sdl.text);
    let lead = format!("Bearer {}", token("warehouse_lead", json!({ "warehouses": ["WH-BER"] })));
    let sdl = request(addr, "GET", "/graphql/schema.graphql", &[("Authorization", lead.as_str())], "").await;
    assert!(sdl.text.contains("inventory(") && !sdl.text.contains("orders("), "{}", sdl.text);
    refused(&request(addr, "GET", "/graphql/schema.graphql", &[], "").await, 401, "UNAUTHENTICATED");
}

/// Polls `query` until its errors carry `code`.
async fn until_code(shop: &Shop, token: &str, query: &str, code: &str) -> support::graphql::Reply {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = post(shop.addr, Some(token), query, json!({})).await;
        if reply.codes().iter().any(|c| c == code) {
            return reply;
        }
        assert!(Instant::now() < deadline, "no {code} within 60 s; last answer: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_waiting_for_a_resync_is_not_ready() {
    let mut shop = Shop::start(DATA, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let client = shop.pg.connect("shop").await;
    // An open transaction with an id holds the resync at its slot creation (which waits for
    // running transactions), so the table stays not ready until it ends.
    let blocker = shop.pg.connect("shop").await;
    blocker.batch_execute("CREATE TABLE scratch (x int); BEGIN; INSERT INTO scratch VALUES (1);").await.unwrap();
    client
        .batch_execute(
            "ALTER TABLE tickets ADD COLUMN channel text;
             INSERT INTO tickets (queue, subject, customer_id, channel) VALUES ('billing', 'Refund', 1, 'email');",
        )
        .await
        .unwrap();
    shop.serve.wait_log("resyncing the table", |_| {}).await;
    // The resync begins while the ALTER's transaction is still being streamed: the table reads
    // as loading until that transaction's schema change is applied, then as waiting for a resync.
    let mut reply = until_code(&shop, &admin, "{ tickets { id subject } }", "NOT_READY").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reply.text.contains("resync") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        reply = until_code(&shop, &admin, "{ tickets { id subject } }", "NOT_READY").await;
    }
    assert_eq!(reply.status, 200);
    assert!(reply.json()["data"].is_null(), "no partial rows: {}", reply.text);
    assert!(reply.text.contains("resync"), "{}", reply.text);
    // The other tables still answer.
    let d = data(shop.addr, &admin, "{ ordersAggregate { count } }", json!({})).await;
    assert_eq!(d["ordersAggregate"][0]["count"], 20);
    // With authentication configured, asking for a resync needs the admin role.
    let path = "/tables/tickets/resync";
    assert_eq!(request(shop.addr, "POST", path, &[], "").await.status, 401);
    let analyst = format!("Bearer {}", token("analyst", json!({})));
    assert_eq!(request(shop.addr, "POST", path, &[("Authorization", &analyst)], "").await.status, 403);
    let bearer = format!("Bearer {admin}");
    assert_eq!(request(shop.addr, "POST", path, &[("Authorization", &bearer)], "").await.status, 202);
    // Once the resync can run, the table is back with its new column.
    blocker.batch_execute("COMMIT").await.unwrap();
    shop.serve.wait_log("table resynced", |_| {}).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = support::graphql::post(
            shop.addr,
            Some(&admin),
            "{ tickets(where: {channel: {eq: \"email\"}}) { subject channel } }",
            json!({}),
        )
        .await;
        if reply.codes().is_empty() {
            assert_eq!(
                reply.json()["data"]["tickets"],
                json!([{ "subject": "Refund", "channel": "email" }]),
                "{}",
                reply.text
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "tickets did not come back: {}", reply.text);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_reloads_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let fixture = std::fs::read_to_string(fixture_policy()).unwrap();
    std::fs::write(&path, &fixture).unwrap();
    let mut shop = Shop::start(DATA, &path).await;
    let analyst = token("analyst", json!({}));
    let notes = "{ orders(limit: 1) { notes } }";
    let reply = post(shop.addr, Some(&analyst), notes, json!({})).await;
    assert_eq!(reply.codes(), ["GRAPHQL_VALIDATION_FAILED"], "analysts do not see notes: {}", reply.text);

    // A good change is taken: the analyst now sees notes.
    let widened = fixture.replace("columns = { except = [\"notes\"] }", "columns = \"*\"");
    assert_ne!(widened, fixture);
    std::fs::write(&path, &widened).unwrap();
    shop.serve.wait_log("policy reloaded", |_| {}).await;
    let d = data(shop.addr, &analyst, notes, json!({})).await;
    assert_eq!(d["orders"][0]["notes"], "note 1");

    // A bad file (a column the table does not have) is refused; the previous policy stays.
    let broken =
        widened.replace("columns = { except = [\"name\", \"email\", \"phone\"] }", "columns = [\"id\", \"shoeSize\"]");
    assert_ne!(broken, widened);
    std::fs::write(&path, &broken).unwrap();
    let rejected = shop.serve.wait_log("policy rejected", |_| {}).await;
    let why = rejected["fields"]["error"].as_str().unwrap_or_default();
    assert!(why.contains("role `analyst`, table `customers`: unknown column `shoeSize`"), "{rejected}");
    let d = data(shop.addr, &analyst, notes, json!({})).await;
    assert_eq!(d["orders"][0]["notes"], "note 1", "the last good policy is still in force");
    std::fs::write(&path, "[roles.analyst\n").unwrap();
    shop.serve.wait_log("policy rejected", |_| {}).await;

    // Removing a role takes its access away; SIGHUP reloads too.
    let without = fixture
        .replace("[roles.analyst]", "[roles.former_analyst]")
        .replace("[roles.analyst.", "[roles.former_analyst.");
    std::fs::write(&path, &without).unwrap();
    shop.serve.wait_log("policy reloaded", |_| {}).await;
    let reply = post(shop.addr, Some(&analyst), "{ __typename }", json!({})).await;
    assert_eq!((reply.status, reply.codes()), (403, vec!["FORBIDDEN".to_string()]), "{}", reply.text);
    let pid = shop.serve.child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let reloaded = shop.serve.wait_log("policy reloaded", |_| {}).await;
    assert!(reloaded["fields"]["generation"].as_u64().unwrap() >= 3, "{reloaded}");
}

/// The GraphQL-over-HTTP spec's server audits, from its reference implementation
/// (`graphql-http`, tests/clients/audit.mjs): every one passes, none with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_over_http_audits_pass_without_a_warning() {
    let clients = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    assert!(clients.join("node_modules/graphql-http").is_dir(), "run `npm ci --prefix tests/clients`");
    let shop = Shop::start(DATA, &fixture_policy()).await;
    let admin = token("admin", json!({}));
    let out = tokio::process::Command::new("node")
        .arg(clients.join("audit.mjs"))
        .arg(format!("http://{}/graphql", shop.addr))
        .arg(&admin)
        .output()
        .await
        .expect("node runs (`.ci/run` installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Json> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let failing: Vec<String> = results
        .iter()
        .filter(|r| r["status"] != "ok")
        .map(|r| format!("{} {} {}: {}", r["status"], r["id"], r["name"], r["reason"]))
        .collect();
    println!("{} audits, {} not ok", results.len(), failing.len());
    assert!(results.len() >= 50, "the audits ran: {results:?}");
    assert!(failing.is_empty(), "audits not passed:\n{}", failing.join("\n"));
}

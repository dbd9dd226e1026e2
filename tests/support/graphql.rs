//! Talking to `/graphql` as a client would: tokens minted with the test secret, POST and GET
//! over a plain HTTP/1.1 connection, and a server started on the fixture schema with the
//! fixture (or a given) policy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::PgServer;
use super::serve::Serve;

/// The HS256 secret every test server accepts (at least 32 bytes, as auth requires).
pub const SECRET: &str = "opslive-test-secret-0123456789abcdef";

/// The product's own root query fields (KPIs, alerts, the user's workspace): in every role's
/// schema, whatever its tables.
pub const PRODUCT_QUERY_FIELDS: [&str; 9] =
    ["kpi", "kpis", "kpiHistory", "alertRules", "alerts", "alertHistory", "silences", "savedQueries", "overviewLayout"];

/// The notification root query fields: only in the schema of a role with `manage_notifications`
/// (in the fixture policy, `admin`).
pub const NOTIFICATION_QUERY_FIELDS: [&str; 4] =
    ["contactPoints", "notificationPolicy", "muteTimings", "notifications"];

/// The revocation root query field: only in the schema of a role with `revoke_tokens` (in the
/// fixture policy, `admin`).
pub const REVOCATION_QUERY_FIELDS: [&str; 1] = ["tokenRevocations"];

pub fn fixture_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/policy.toml")
}

/// A token for `role` with extra `claims`, valid for an hour.
pub fn token(role: &str, claims: Json) -> String {
    let claims = claims.as_object().cloned().unwrap_or_default();
    opslive::auth::mint_hs256(SECRET, role, claims, Duration::from_secs(3600)).expect("minting a test token")
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// Where a redirect points.
    pub location: Option<String>,
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The `extensions.code` of every error.
    pub fn codes(&self) -> Vec<String> {
        let body = self.json();
        body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>").to_string())
            .collect()
    }
}

/// One request: `method path`, extra headers, a body.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let r = super::http::request(addr, method, path, headers, body).await;
    Reply { status: r.status, content_type: r.content_type, location: r.location, text: r.body }
}

/// POSTs a GraphQL request with `token`, accepting `application/graphql-response+json` (so a
/// request error is a 400, as current clients get).
pub async fn post(addr: SocketAddr, token: Option<&str>, query: &str, variables: Json) -> Reply {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json"), ("Accept", "application/graphql-response+json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    request(addr, "POST", "/graphql", &headers, &body).await
}

/// POSTs a query that must succeed without errors, and returns its `data`.
pub async fn data(addr: SocketAddr, token: &str, query: &str, variables: Json) -> Json {
    let reply = post(addr, Some(token), query, variables).await;
    let body = reply.json();
    let shown: String = reply.text.chars().take(3000).collect();
    assert!(reply.status == 200 && body.get("errors").is_none(), "{query}\n→ {} {shown}", reply.status);
    body["data"].clone()
}

/// `opslive serve` on a private PostgreSQL loaded with the fixture schema (and `data`, SQL run
/// after it), watching the tables of the example configuration, with `policy`.
pub struct Shop {
    pub pg: PgServer,
    pub serve: Serve,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Shop {
    pub async fn start(data: &str, policy: &Path) -> Shop {
        Shop::start_with(data, policy, "", "").await
    }

    /// Like [`Shop::start`] with `top` (top-level keys) and `auth` (more keys of `[auth]`, then
    /// any further tables) in the configuration.
    pub async fn start_with(data: &str, policy: &Path, top: &str, auth: &str) -> Shop {
        let pg = Shop::database(data).await;
        let mut shop = Shop::serve_on(pg, policy, top, auth).await;
        shop.wait_ready().await;
        shop
    }

    /// A private PostgreSQL with a `shop` database holding the fixture schema and `data`.
    pub async fn database(data: &str) -> PgServer {
        let pg = PgServer::start().await;
        pg.create_database("shop").await;
        let shop = pg.connect("shop").await;
        shop.batch_execute(opslive::demo::FIXTURE_SCHEMA).await.expect("loading the fixture schema");
        if !data.is_empty() {
            shop.batch_execute(data).await.unwrap_or_else(|e| panic!("loading test data: {e}"));
        }
        pg
    }

    /// `opslive serve` on `pg`'s `shop` database, listening; its replica may not be loaded yet.
    pub async fn serve_on(pg: PgServer, policy: &Path, top: &str, auth: &str) -> Shop {
        let url = pg.url("shop");
        let dir = tempfile::tempdir().unwrap();
        let example = opslive::demo::demo_config(&url, "127.0.0.1:0".parse().unwrap());
        // Each server keeps its checkpoint in its own directory: tests run in parallel, and a
        // checkpoint taken on another test's database must never be the one restored.
        let shared = "data_dir = \"./data\"";
        assert!(example.contains(shared), "the example configuration's data_dir moved");
        let example =
            example.replace(shared, &format!("data_dir = {:?}", dir.path().join("data").display().to_string()));
        let config = format!(
            "policy = {}\n{top}\n{example}\n[auth]\nhs256_secret = \"{SECRET}\"\n{auth}\n",
            serde_json::to_string(&policy.display().to_string()).unwrap()
        );
        let path = dir.path().join("opslive.toml");
        std::fs::write(&path, config).unwrap();
        let mut serve = Serve::start(&path);
        let addr = serve.wait_listening().await;
        Shop { pg, serve, addr, dir }
    }

    /// Stops the server and starts it again on the same configuration and database, ready.
    pub async fn restart(self) -> Shop {
        let Shop { pg, serve, dir, .. } = self;
        serve.terminate().await;
        let mut serve = Serve::start(&dir.path().join("opslive.toml"));
        let addr = serve.wait_listening().await;
        let mut shop = Shop { pg, serve, addr, dir };
        shop.wait_ready().await;
        shop
    }

    /// Waits until the replica is consistent and `/readyz` says so.
    pub async fn wait_ready(&mut self) {
        self.serve.wait_log("replica consistent", |_| {}).await;
        // Consistent is logged as it is applied; the version readers see follows at once.
        let deadline = Instant::now() + Duration::from_secs(60);
        while super::http::get(self.addr, "/readyz").await.status != 200 {
            assert!(Instant::now() < deadline, "serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

//! The dashboard's server side: the built app served from `web_dir` beside the API, the sign-in
//! options, and the development sign-in, which only exists where it is safe.

mod support;

use serde_json::{Value as Json, json};
use support::graphql::{Shop, data, fixture_policy};
use support::http::{get, request};

const DEV_USERS: &str = r#"dev_login = true
[[auth.dev_users]]
sub = "wanda@demo.opslive"
role = "warehouse_lead"
claims = { warehouses = ["WH-BER"] }
[[auth.dev_users]]
sub = "omar@demo.opslive"
role = "ops_manager"
"#;

/// A stand-in for `web/out`: what a static export writes.
fn built_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<title>overview</title>").unwrap();
    std::fs::write(dir.path().join("404.html"), "<title>not found</title>").unwrap();
    std::fs::create_dir(dir.path().join("orders")).unwrap();
    std::fs::write(dir.path().join("orders/index.html"), "<title>orders</title>").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_served_beside_the_api_and_dev_login_signs_the_offered_users() {
    let app = built_app();
    let top = format!("web_dir = {:?}", app.path().display().to_string());
    let warehouses = "INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin'), ('WH-MAD', 'Madrid', 'eu', 'Europe/Madrid');";
    let shop = Shop::start_with(warehouses, &fixture_policy(), &top, DEV_USERS).await;

    // The app's pages, its 404 for the rest, and the API's routes winning over both.
    let page = get(shop.addr, "/").await;
    assert_eq!((page.status, page.body.as_str()), (200, "<title>overview</title>"));
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    assert_eq!(get(shop.addr, "/orders/").await.body, "<title>orders</title>");
    let missing = get(shop.addr, "/no/such/page/").await;
    assert_eq!((missing.status, missing.body.as_str()), (404, "<title>not found</title>"));
    assert_eq!(get(shop.addr, "/healthz").await.status, 200);
    let status = get(shop.addr, "/status").await;
    assert_eq!(status.status, 308, "/status is the web app's Status page: {}", status.body);
    // A person opening the GraphQL endpoint gets the Explorer (GraphiQL, in the web app); a
    // client asking for JSON gets GraphQL.
    let opened = request(shop.addr, "GET", "/graphql", &[("Accept", "text/html,application/xhtml+xml")], "").await;
    assert_eq!((opened.status, opened.location.as_deref()), (307, Some("/explorer/")), "{}", opened.body);
    assert_eq!(request(shop.addr, "GET", "/graphql", &[("Accept", "application/json")], "").await.status, 401);

    // The sign-in page's options name the users, never a secret.
    let options = get(shop.addr, "/auth/config").await;
    assert_eq!(options.status, 200);
    let options: Json = serde_json::from_str(&options.body).unwrap();
    assert_eq!(options["devLogin"], true);
    assert_eq!(
        options["users"][0],
        json!({"sub": "wanda@demo.opslive", "role": "warehouse_lead", "claims": {"warehouses": ["WH-BER"]}})
    );
    assert_eq!(options["oidc"], Json::Null);

    // A token for an offered user carries its role and claims: the warehouse lead sees Berlin only.
    let signed = request(
        shop.addr,
        "POST",
        "/auth/dev-login",
        &[("Content-Type", "application/json")],
        r#"{"sub": "wanda@demo.opslive"}"#,
    )
    .await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let signed: Json = serde_json::from_str(&signed.body).unwrap();
    let token = signed["token"].as_str().unwrap();
    assert!(signed["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{signed}");
    let rows = data(shop.addr, token, "{ warehouses { id } }", json!({})).await;
    assert_eq!(rows["warehouses"], json!([{"id": "WH-BER"}]));

    // Nobody else, and nothing that is not JSON.
    let stranger = request(shop.addr, "POST", "/auth/dev-login", &[], r#"{"sub": "mallory"}"#).await;
    assert_eq!(stranger.status, 404);
    assert_eq!(request(shop.addr, "POST", "/auth/dev-login", &[], "sub=omar").await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dev_login_nobody_is_offered_and_nothing_is_signed() {
    let shop = Shop::start("", &fixture_policy()).await;
    let options: Json = serde_json::from_str(&get(shop.addr, "/auth/config").await.body).unwrap();
    assert_eq!(options, json!({"devLogin": false, "users": [], "oidc": null}));
    let refused = request(shop.addr, "POST", "/auth/dev-login", &[], r#"{"sub": "omar@demo.opslive"}"#).await;
    assert_eq!(refused.status, 404);
    // Without a web app, the pages people use are not there, and `/` says how to get them.
    for path in ["/", "/status", "/explorer/"] {
        let page = get(shop.addr, path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(
            page.body.contains("web_dir") && page.body.contains("npm run build --prefix web"),
            "{path}: {}",
            page.body
        );
    }
}

/// Starts `opslive serve` on `config` and returns what it printed on failing; nothing in these
/// configurations needs a database.
fn refused(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opslive.toml");
    let config = format!(
        "{config}\n[sources.shop]\nkind = \"postgres\"\nurl = \"postgres://nobody@127.0.0.1:1/shop\"\n[[sources.shop.tables]]\ntable = \"orders\"\n"
    );
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn dev_login_off_loopback_or_an_unbuilt_web_dir_stops_the_start() {
    let secret = format!("[auth]\nhs256_secret = {:?}\ndev_login = true\n", support::graphql::SECRET);
    let users = "[[auth.dev_users]]\nsub = \"a\"\nrole = \"admin\"\n";
    let open = refused(&format!("listen = \"0.0.0.0:0\"\n{secret}{users}"));
    assert!(open.contains("only served on a loopback address"), "{open}");
    let nobody = refused(&format!("listen = \"127.0.0.1:0\"\n{secret}"));
    assert!(nobody.contains("auth.dev_users"), "{nobody}");
    let unsigned = refused(&format!("listen = \"127.0.0.1:0\"\n[auth]\ndev_login = true\n{users}"));
    assert!(unsigned.contains("auth.hs256_secret"), "{unsigned}");
    let empty = tempfile::tempdir().unwrap();
    let unbuilt = refused(&format!("listen = \"127.0.0.1:0\"\nweb_dir = {:?}\n", empty.path().display().to_string()));
    assert!(unbuilt.contains("no built web app"), "{unbuilt}");
}

//! `opslive demo` can be explored with GraphQL at once: its banner prints the GraphQL address and
//! a ready-to-paste header for every fixture role, and each token sees exactly its role's share
//! of the demo data.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use support::graphql::{data, request};

/// Stops a database a failed run left behind.
struct StopLeftover(PathBuf);

impl Drop for StopLeftover {
    fn drop(&mut self) {
        opslive::demo::LocalPostgres::stop_leftover_at(&opslive::demo::cluster_root(&self.0));
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn names(list: &Json) -> BTreeSet<String> {
    list.as_array().into_iter().flatten().map(|f| f["name"].as_str().unwrap().to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_token_per_role_and_each_sees_its_share() {
    let dir = support::private_tempdir("opslive-gqldemo-");
    let _cleanup = StopLeftover(dir.path().join("data"));
    let log = dir.path().join("demo.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["demo", "--no-sim", "--pg-port", "0", "--listen", "127.0.0.1:0", "--data-dir", "data"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut graphql, mut tokens) = (None, BTreeMap::new());
    let deadline = Instant::now() + Duration::from_secs(180);
    while graphql.is_none() || tokens.len() < 6 {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no banner within 180 s; log:\n{}", log_tail(&log)))
            .unwrap()
            .unwrap_or_else(|| panic!("demo exited before its banner; log:\n{}", log_tail(&log)));
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("graphql") {
            graphql = rest.split_whitespace().next().map(str::to_string);
        } else if let Some((role, header)) = line.split_once(' ')
            && let Ok(header) = serde_json::from_str::<Json>(header.trim())
        {
            let bearer = header["Authorization"].as_str().unwrap_or_else(|| panic!("a header object: {line}"));
            tokens.insert(role.to_string(), bearer.strip_prefix("Bearer ").unwrap().to_string());
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = graphql.unwrap();
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").trim_end_matches("/graphql").parse().unwrap();
    let roles: BTreeSet<&str> = tokens.keys().map(String::as_str).collect();
    assert_eq!(roles, ["admin", "analyst", "finance", "ops_manager", "support_lead", "warehouse_lead"].into());
    while support::http::get(addr, "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "demo not ready; log:\n{}", log_tail(&log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A browser at the printed address goes to the dashboard's Explorer (GraphiQL).
    let page = request(addr, "GET", "/graphql", &[("Accept", "text/html")], "").await;
    assert_eq!((page.status, page.location.as_deref()), (307, Some("/explorer/")), "{url}");

    let root = |role: &str| {
        let token = tokens[role].clone();
        async move {
            let d = data(addr, &token, "{ __schema { queryType { fields { name } } } }", json!({})).await;
            names(&d["__schema"]["queryType"]["fields"])
        }
    };
    // Every role also has the product's own fields (KPIs, alerts, its workspace); the admin,
    // who may manage notifications, has theirs too.
    let tables = |list: &[&str]| -> BTreeSet<String> {
        let own = support::graphql::PRODUCT_QUERY_FIELDS.into_iter().map(String::from);
        list.iter().flat_map(|t| [t.to_string(), format!("{t}ByKey"), format!("{t}Aggregate")]).chain(own).collect()
    };
    let everything = [
        "agents",
        "customers",
        "inventory",
        "orders",
        "products",
        "reconciliationBatches",
        "reconciliationExceptions",
        "tickets",
        "warehouses",
    ];
    let mut admin = tables(&everything);
    admin.extend(support::graphql::NOTIFICATION_QUERY_FIELDS.map(String::from));
    admin.extend(support::graphql::REVOCATION_QUERY_FIELDS.map(String::from));
    assert_eq!(root("admin").await, admin, "notifications and revocations only for the role that manages them");
    assert_eq!(root("analyst").await, tables(&everything));
    assert_eq!(root("support_lead").await, tables(&["tickets", "agents"]));
    assert_eq!(root("finance").await, tables(&["reconciliationBatches", "reconciliationExceptions", "orders"]));
    assert_eq!(root("warehouse_lead").await, tables(&["inventory", "warehouses", "products"]));
    let mut ops = tables(&["orders", "warehouses", "products", "customers"]);
    ops.extend(set(&["inventoryAggregate", "ticketsAggregate"]));
    assert_eq!(root("ops_manager").await, ops);

    // The lead's token names two warehouses; the seed stocks all six.
    let q = "{ inventoryAggregate(groupBy: [WAREHOUSE_ID]) { key { warehouseId } count } }";
    let lead = data(addr, &tokens["warehouse_lead"], q, json!({})).await;
    let seen: BTreeSet<String> = lead["inventoryAggregate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"]["warehouseId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, set(&["WH-BER", "WH-MAD"]));
    let all = data(addr, &tokens["admin"], q, json!({})).await;
    assert_eq!(all["inventoryAggregate"].as_array().unwrap().len(), 6);

    // Column masks: the analyst has no customer names, finance no order notes or customers.
    let fields = |role: &str, ty: &str| {
        let token = tokens[role].clone();
        let q = format!(r#"{{ __type(name: "{ty}") {{ fields {{ name }} }} }}"#);
        async move { names(&data(addr, &token, &q, json!({})).await["__type"]["fields"]) }
    };
    assert_eq!(fields("analyst", "Customers").await, set(&["id", "region", "createdAt"]));
    assert_eq!(
        fields("finance", "Orders").await,
        set(&["id", "channel", "status", "total", "currency", "region", "createdAt", "paidAt"])
    );
    let d = data(addr, &tokens["support_lead"], "{ ticketsAggregate(groupBy: [QUEUE]) { count } }", json!({})).await;
    assert_eq!(d["ticketsAggregate"].as_array().unwrap().len(), 4, "four queues in the seed");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "demo exited with {status}; log:\n{}", log_tail(&log));
}

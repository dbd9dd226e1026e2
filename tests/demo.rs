//! `opslive demo` from nothing: a private PostgreSQL with the shop's fixtures and a private
//! MariaDB with the helpdesk's, the simulator's traffic arriving live from both (in `/metrics`,
//! and side by side in the `tail` command it prints), tickets from MariaDB beside orders from
//! PostgreSQL in one GraphQL schema and in live queries, and Ctrl-C leaving nothing running.
//! Re-runnable, also after a run that was killed without cleaning up.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use mysql_async::prelude::Queryable;
use serde_json::json;
use support::http::{get, request, samples, value};
use support::ws::{TRANSPORT_WS, WsClient};

struct Demo {
    child: Child,
    metrics: String,
    tail: Vec<String>,
    /// The helpdesk's MariaDB URL.
    helpdesk: String,
    /// The notification stand-ins' page.
    notified: Option<String>,
    log: PathBuf,
}

impl Demo {
    /// Starts the demo and reads its banner.
    async fn start(dir: &Path, run: usize) -> Demo {
        let log = dir.join(format!("demo-{run}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_opslive"))
            // A relative data directory, as the README's command gives.
            .args(["demo", "--pg-port", "0", "--listen", "127.0.0.1:0", "--rate", "200", "--data-dir", "data"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut metrics, mut tail, mut notified, mut helpdesk) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while metrics.is_none() || tail.is_none() || helpdesk.is_none() {
            let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no banner within 120 s; log:\n{}", read(&log)))
                .unwrap()
                .unwrap_or_else(|| panic!("demo exited before its banner; log:\n{}", read(&log)));
            let line = line.trim();
            if let Some(url) = line.strip_prefix("metrics") {
                metrics = Some(url.trim().to_string());
            } else if let Some(rest) = line.strip_prefix("notified") {
                notified = rest.split_whitespace().next().map(str::to_string);
            } else if let Some(rest) = line.strip_prefix("helpdesk") {
                helpdesk = rest.split_whitespace().next().map(str::to_string);
            } else if line.contains(" tail --") {
                tail = Some(line.split_whitespace().map(String::from).collect());
            }
        }
        // Keep reading stdout so the demo never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Demo { child, metrics: metrics.unwrap(), tail: tail.unwrap(), helpdesk: helpdesk.unwrap(), notified, log }
    }

    fn metrics_addr(&self) -> std::net::SocketAddr {
        self.metrics.trim_start_matches("http://").trim_end_matches("/metrics").parse().unwrap()
    }

    /// Waits until the simulator's inserts and updates of orders and tickets are applied.
    async fn wait_for_live_changes(&self) {
        let addr = self.metrics_addr();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s = samples(&get(addr, "/metrics").await.body);
            let n = |table, op| value(&s, "opslive_changes_applied_total", &[("table", table), ("op", op)]);
            let live = [("orders", "insert"), ("orders", "update"), ("tickets", "insert"), ("tickets", "update")]
                .iter()
                .all(|(t, op)| n(t, op).is_some_and(|v| v > 0.0));
            // What the simulator wrote is on the same page as what was applied.
            let written = value(&s, "opslive_sim_events_total", &[("kind", "order_placed")]);
            if live && written.is_some_and(|n| n > 0.0) && value(&s, "opslive_ready", &[]) == Some(1.0) {
                assert_eq!(value(&s, "opslive_replica_anomalies_total", &[]), Some(0.0));
                return;
            }
            assert!(Instant::now() < deadline, "no live changes in /metrics within 120 s; log:\n{}", read(&self.log));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ctrl-C: the demo stops everything and exits 0.
    async fn interrupt(mut self) {
        signal(&self.child, "-INT");
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("demo did not stop within 60 s of Ctrl-C; log:\n{}", read(&self.log)))
            .unwrap();
        assert!(status.success(), "demo exited with {status}; log:\n{}", read(&self.log));
    }
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

fn read(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Processes whose command line mentions `dir` (the demo's database runs with its data
/// directory in its arguments).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// A failed test still stops a database a killed demo left behind.
struct StopLeftover(PathBuf);

impl Drop for StopLeftover {
    fn drop(&mut self) {
        opslive::demo::LocalPostgres::stop_leftover_at(&opslive::demo::cluster_root(&self.0));
        opslive::demo::LocalMariaDb::stop_leftover_at(&self.0.join("mariadb"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_live_traffic_and_stops_clean() {
    let dir = support::private_tempdir("opslive-demo-");
    let _cleanup = StopLeftover(dir.path().join("data"));
    let demo = Demo::start(dir.path(), 1).await;
    demo.wait_for_live_changes().await;

    // The printed tail command works and shows the simulator's changes as they commit: orders
    // from the PostgreSQL source beside tickets from the MariaDB one, in one stream.
    let mut tail = Command::new(&demo.tail[0])
        .args(&demo.tail[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let (order, ticket) = tokio::time::timeout(Duration::from_secs(60), async {
        let (mut order, mut ticket) = (None, None);
        while order.is_none() || ticket.is_none() {
            let line = lines.next_line().await.unwrap().expect("tail ended early");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if !v["position"].is_string() {
                continue;
            }
            match v["table"].as_str() {
                Some("orders") => order = Some(v),
                Some("tickets") => ticket = Some(v),
                _ => {}
            }
        }
        (order.unwrap(), ticket.unwrap())
    })
    .await
    .expect("changes to orders and to tickets in tail within 60 s");
    assert!(["insert", "update"].contains(&order["op"].as_str().unwrap()), "{order}");
    assert_eq!(order["source"], "shop", "{order}");
    assert!(["insert", "update"].contains(&ticket["op"].as_str().unwrap()), "{ticket}");
    assert_eq!(ticket["source"], "helpdesk", "{ticket}");
    signal(&tail, "-INT");

    both_sources_in_graphql(&demo).await;

    // The stand-ins notifications are sent to are up, and their page says what they received.
    let notified = demo.notified.clone().expect("a `notified` line in the banner");
    let inbox: std::net::SocketAddr = notified.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    let page = get(inbox, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("stand-ins received"), "{}", page.body);
    let received = get(inbox, "/messages.json").await;
    assert!(serde_json::from_str::<Vec<serde_json::Value>>(&received.body).is_ok(), "{}", received.body);
    tail.wait().await.unwrap();

    demo.interrupt().await;
    assert_eq!(processes_using(dir.path()), Vec::<String>::new(), "nothing left running");

    // Re-runnable, and a run killed without cleaning up leaves nothing in the next one's way.
    let demo = Demo::start(dir.path(), 2).await;
    demo.wait_for_live_changes().await;
    let mut killed = demo;
    signal(&killed.child, "-KILL");
    killed.child.wait().await.unwrap();
    assert!(!processes_using(dir.path()).is_empty(), "the killed demo's database is still up");
    let demo = Demo::start(dir.path(), 3).await;
    demo.wait_for_live_changes().await;
    demo.interrupt().await;
    assert_eq!(processes_using(dir.path()), Vec::<String>::new(), "nothing left running");
}

/// One schema over both databases, with the types of the committed one; a ticket committed in
/// MariaDB moves a live query.
async fn both_sources_in_graphql(demo: &Demo) {
    let addr = demo.metrics_addr();
    let config = demo.tail.iter().skip_while(|a| *a != "--config").nth(1).expect("tail --config FILE");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["token", "--config", config, "--role", "admin", "--sub", "demo-test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];

    // The helpdesk moved to MariaDB, and the dashboard's types did not change: the served SDL
    // is the committed one, but for the source table a row type's description names.
    let sdl = request(addr, "GET", "/graphql/schema.graphql", &auth, "").await;
    assert_eq!(sdl.status, 200, "{}", sdl.body);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/graphql/schema.graphql")).unwrap();
    let committed: String =
        committed.lines().skip_while(|l| l.starts_with('#') || l.is_empty()).collect::<Vec<_>>().join("\n");
    let served = sdl
        .body
        .trim()
        .replace("(helpdesk.tickets)", "(public.tickets)")
        .replace("(helpdesk.agents)", "(public.agents)");
    assert!(committed.trim() == served, "the demo's schema differs from graphql/schema.graphql");

    // One request reads both databases.
    let body = json!({"query": "{ ticketsAggregate { count } ordersAggregate { count } }"}).to_string();
    let both = request(addr, "POST", "/graphql", &[auth[0], ("Content-Type", "application/json")], &body).await;
    let both: serde_json::Value = serde_json::from_str(&both.body).unwrap();
    assert!(both["data"]["ticketsAggregate"][0]["count"].as_i64().unwrap() >= 6000, "{both}");
    assert!(both["data"]["ordersAggregate"][0]["count"].as_i64().unwrap() >= 40000, "{both}");

    // A ticket committed in MariaDB arrives in a live query.
    let subject = format!("demo test {}", std::process::id());
    let mut ws = WsClient::connect(addr, TRANSPORT_WS, &token).await;
    let doc = "subscription($s: String!) { ticketsPatches(where: {subject: {eq: $s}}, orderBy: {id: ASC}) { reset { id subject } patch { upserts { row { id subject } } } } }";
    ws.subscribe("t", doc, json!({"s": subject})).await;
    let first = ws.next("t").await;
    assert_eq!(first["data"]["ticketsPatches"]["reset"], json!([]), "{first}");
    let mut conn = mysql_async::Conn::from_url(demo.helpdesk.as_str()).await.unwrap();
    conn.exec_drop("INSERT INTO tickets (queue, subject, customer_id) VALUES ('billing', ?, 1)", (subject.as_str(),))
        .await
        .unwrap();
    let id = conn.last_insert_id().unwrap().to_string();
    let update = tokio::time::timeout(Duration::from_secs(30), ws.next("t")).await.expect("the ticket within 30 s");
    assert_eq!(
        update["data"]["ticketsPatches"]["patch"]["upserts"],
        json!([{"row": {"id": id, "subject": subject}}]),
        "{update}"
    );
}

#[tokio::test]
async fn missing_postgresql_binaries_name_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["demo", "--pg-bin"])
        .arg(dir.path())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(stderr.contains(dir.path().to_str().unwrap()), "says where it looked: {stderr}");
    assert!(!dir.path().join("data").exists(), "nothing created");
}

//! `opslive demo` from nothing: a private PostgreSQL with the fixtures, the simulator's traffic
//! arriving live (in `/metrics` and in the `tail` command it prints), and Ctrl-C leaving nothing
//! running. Re-runnable, also after a run that was killed without cleaning up.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use support::http::{get, samples, value};

struct Demo {
    child: Child,
    metrics: String,
    tail: Vec<String>,
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
        let (mut metrics, mut tail, mut notified) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while metrics.is_none() || tail.is_none() {
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
            } else if line.contains(" tail --url ") {
                tail = Some(line.split_whitespace().map(String::from).collect());
            }
        }
        // Keep reading stdout so the demo never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Demo { child, metrics: metrics.unwrap(), tail: tail.unwrap(), notified, log }
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
            let live = [("orders", "insert"), ("orders", "update"), ("tickets", "insert")]
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_live_traffic_and_stops_clean() {
    let dir = support::private_tempdir("opslive-demo-");
    let _cleanup = StopLeftover(dir.path().join("data"));
    let demo = Demo::start(dir.path(), 1).await;
    demo.wait_for_live_changes().await;

    // The printed tail command works and shows the simulator's changes as they commit.
    let mut tail = Command::new(&demo.tail[0])
        .args(&demo.tail[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let change = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("tail ended early");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["table"] == "orders" && v["position"].is_string() {
                return v;
            }
        }
    })
    .await
    .expect("a change to orders in tail within 60 s");
    assert!(["insert", "update"].contains(&change["op"].as_str().unwrap()), "{change}");
    signal(&tail, "-INT");

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

//! `opslive bench` end to end, as a user runs it: the binary starts its own PostgreSQL and
//! `opslive serve`, subscribes its clients, writes, and reports. A tiny run (20 clients, 50
//! changes/s, 3 s) checks the tool's plumbing and the server's promise together: every change
//! reaches every subscriber whose live query it enters, in both forms of live query and as a
//! change stream.
//!
//! Latency figures are not asserted: on a shared two-core machine they measure the machine.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as Json;

/// Runs `opslive bench` with `args` and returns its JSON report; fails with its stderr.
async fn bench(args: &[&str]) -> Json {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_opslive"));
    cmd.arg("bench").args(args).arg("--json");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OPSLIVE_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("the bench ends within 4 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "opslive bench failed ({}):\n{stdout}\n{stderr}", out.status);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{stdout}\n{stderr}"))
}

fn assert_every_delivery_arrived(report: &Json, clients: u64, per_change: u64) {
    let shown = serde_json::to_string_pretty(report).unwrap();
    assert_eq!(report["clients_ready"], clients, "{shown}");
    let d = &report["deliveries"];
    let changes = d["changes"].as_u64().unwrap();
    // 50/s for 1 s of warm-up and 3 s measured.
    assert_eq!(changes, 200, "every planned change was committed: {shown}");
    assert_eq!(d["expected"].as_u64().unwrap(), changes * per_change, "{shown}");
    assert_eq!(d["missing"], 0, "{shown}");
    assert_eq!(d["extra"], 0, "{shown}");
    assert_eq!(d["delivered"], d["expected"], "{shown}");
    assert_eq!(report["client_errors"], 0, "{shown}");
    assert_eq!(report["inconsistent_patches"], 0, "{shown}");
    assert_eq!(report["foreign_rows"], 0, "only the writer's rows enter the results: {shown}");
    // The measured changes' deliveries all have a latency.
    assert_eq!(report["latency"]["samples"].as_u64().unwrap(), 150 * per_change, "{shown}");
    assert!(report["received"]["messages"].as_u64().unwrap() > 0, "{shown}");
    assert!(report["server"]["cpu_percent"].as_f64().is_some(), "{shown}");
    assert!(report["server"]["rss_peak_mb"].as_f64().unwrap() > 0.0, "{shown}");
}

const TINY: &[&str] =
    &["--scenario", "custom", "--clients", "20", "--rate", "50", "--duration", "3s", "--warmup", "1s", "--seed", "7"];

#[tokio::test]
async fn spread_patches_reach_every_subscriber() {
    // 20 clients over 4 (warehouse × status) queries: 5 subscribers per change.
    let args = [TINY, &["--queries", "4", "--limit", "10", "--form", "patches"]].concat();
    let report = bench(&args).await;
    assert_eq!(report["queries"], 4);
    assert_every_delivery_arrived(&report, 20, 5);
}

#[tokio::test]
async fn change_streams_reach_every_subscriber() {
    // The same spread, as change streams: every insert an ENTER for the 5 whose filter it fits.
    let args = [TINY, &["--queries", "4", "--limit", "10", "--form", "changes"]].concat();
    let report = bench(&args).await;
    assert_eq!(report["form"], "changes");
    assert_every_delivery_arrived(&report, 20, 5);
}

#[tokio::test]
async fn hot_full_results_reach_every_subscriber() {
    // Everybody on the latest 20 orders, whole results in every message.
    let args = [TINY, &["--queries", "1", "--limit", "20", "--form", "full"]].concat();
    let report = bench(&args).await;
    assert_eq!(report["queries"], 1);
    assert_every_delivery_arrived(&report, 20, 20);
}

#[tokio::test]
async fn frozen_clients_run_beside_the_same_run_without_them_and_cost_no_delivery() {
    // The run twice: without, then with 5 more clients that stop reading after their first
    // result; the 20 readers get every delivery both times.
    let args = [TINY, &["--queries", "4", "--limit", "10", "--form", "patches", "--frozen", "5"]].concat();
    let report = bench(&args).await;
    let (without, with) = (&report["without_frozen"], &report["with_frozen"]);
    assert_eq!((without["frozen"].as_u64(), with["frozen"].as_u64()), (Some(0), Some(5)), "{report}");
    assert_every_delivery_arrived(without, 20, 5);
    assert_every_delivery_arrived(with, 20, 5);
}

#[tokio::test]
async fn the_fanout_floor_takes_the_same_run_and_every_insert_reaches_every_client() {
    // `--floor` swaps `opslive serve` for the do-nothing fan-out server: the same clients,
    // writer and checks, every insert entering all 20 results through PostgreSQL's NOTIFY.
    let args = [TINY, &["--queries", "1", "--limit", "10", "--floor"]].concat();
    let report = bench(&args).await;
    assert!(report["target"].as_str().unwrap().starts_with("the fan-out floor"), "{report}");
    assert_every_delivery_arrived(&report, 20, 20);
    assert_eq!(report["seq_gaps"], 0, "{report}");
}

#[tokio::test]
async fn the_cdc_bench_drains_one_backlog_three_ways_and_every_row_arrives() {
    // Two rounds (the floor first, then opslive first) of 3,000 rows in transactions of 100.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_opslive"));
    // Then a short paced search (two steps each) and a catch-up burst.
    cmd.args(["cdc-bench", "--rows", "3000", "--tx-rows", "100", "--rounds", "2", "--json"]);
    cmd.args(["--paced-seconds", "2", "--paced-start", "1000", "--paced-steps", "2", "--burst-rows", "5000"]);
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("the CDC bench ends within 4 minutes")
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "opslive cdc-bench failed ({}):\n{stdout}\n{stderr}", out.status);
    let report: Json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{report}");
    assert_eq!(rounds[0]["first"], "floor");
    assert_eq!(rounds[1]["first"], "opslive");
    for r in rounds {
        assert_eq!(r["transactions"], 30, "{r}");
        assert_eq!(r["floor_rows"], 3000, "the floor read every row: {r}");
        assert_eq!(r["opslive_rows"], 3000, "opslive's replica holds every row: {r}");
        for key in ["ceiling_seconds", "floor_seconds", "opslive_seconds"] {
            assert!(r[key].as_f64().is_some_and(|s| s > 0.0), "{key}: {r}");
        }
        assert!(r["wal_bytes"].as_u64().unwrap() > 3000 * 50, "{r}");
        // What the rows take in opslive and in PostgreSQL, for bytes per row.
        assert!(r["replica_bytes"].as_u64().unwrap() > 3000 * 50, "{r}");
        assert!(r["heap_bytes"].as_u64().unwrap() > 3000 * 50, "{r}");
        assert!(r["index_bytes"].as_u64().unwrap() > 0, "{r}");
    }

    // Each consumer followed each paced step: lags of the commits after the first second.
    let steps = report["paced"]["steps"].as_array().unwrap();
    for consumer in ["floor", "opslive"] {
        let mine: Vec<&Json> = steps.iter().filter(|s| s["consumer"] == consumer).collect();
        assert!(!mine.is_empty() && mine.len() <= 2, "{consumer}: {steps:?}");
        assert_eq!(mine[0]["asked"], 1000.0, "{consumer}");
        for step in mine {
            // Transactions of 100 rows for two seconds, the first second left out.
            let expected = step["asked"].as_f64().unwrap() / 100.0;
            let samples = step["lag"]["samples"].as_u64().unwrap() as f64;
            assert!(samples >= expected * 0.5 && samples <= expected * 1.5 + 1.0, "{consumer}: {step}");
            assert!(step["achieved"].as_f64().unwrap() > 500.0, "{consumer}: {step}");
        }
    }
    let catch_up = &report["catch_up"];
    assert_eq!(catch_up["rows"], 5000);
    for key in ["floor_seconds", "opslive_seconds"] {
        // The time runs from the burst's first write, so it is at least the write.
        let took = catch_up[key].as_f64().unwrap();
        let wrote = catch_up[key.replace("_seconds", "_write_seconds")].as_f64().unwrap();
        assert!(took > 0.0 && took + 0.05 >= wrote, "{key}: {catch_up}");
    }
}

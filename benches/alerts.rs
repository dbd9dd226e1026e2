//! KPIs and alerts under load: what 100 KPIs and 100 alert rules cost the apply path, and how
//! long a committed transaction takes to become an alert frame on a subscription.
//!
//! `cargo bench --bench alerts` (release). One private PostgreSQL with the fixtures (the demo's
//! data) and two `opslive serve` processes of this build on it, each with its own slot and app
//! database: `plain` (no KPIs, no rules) and `engines` (100 KPIs and 100 rules over orders,
//! inventory, tickets and reconciliation: counts, sums, averages, percentiles, distinct
//! counts, groups, sliding windows, `ago` filters, column operands; rules on KPIs and on rows).
//!
//! - apply throughput: with both servers stopped, the simulator writes a backlog of business
//!   transactions (`ALERTS_BENCH_BACKLOG_SECS` seconds at full speed, default 15), ended by a
//!   marker transaction; each server is started in turn and timed from its replica being
//!   consistent (resumed from its checkpoint) until the marker is in its replica — and, for
//!   `engines`, in its KPIs. Both drain the same backlog; `ALERTS_BENCH_ROUNDS` rounds (default
//!   3), alternating which goes first; the median ratio is reported.
//!   `ALERTS_BENCH_BASELINE_BIN=<an opslive binary>` adds a third server, `baseline`: the same
//!   KPIs and rules (its app database is a copy of `engines`'s) run by that build, draining the
//!   same backlogs in the same rounds — a before/after comparison of two builds in one run,
//!   which this machine's swings from run to run would otherwise hide.
//! - commit → alert frame: on the `engines` server with the simulator running beside it
//!   (`ALERTS_BENCH_SIM_RATE` events/s, default 100), `ALERTS_BENCH_ALERTS` times (default 200)
//!   a test order is inserted (firing a row rule and a KPI rule) and then paid (resolving
//!   both); the time from the commit returning to the writer until the `alerts` subscription's
//!   frame shows the new state.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opslive::sim::{SimOptions, SimStats};
use serde_json::{Value as Json, json};
use support::alerting::INSERT_TEST_ORDER;
use support::graphql::{SECRET, data, fixture_policy, token};
use support::serve::Serve;
use support::ws::{TRANSPORT_WS, WsClient};
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

const VARIANTS: [&str; 3] = ["plain", "engines", "baseline"];

/// The configuration of one variant: its own slot, publication, app database and checkpoint.
fn write_config(root: &Path, url: &str, app_url: &str, variant: &str) -> PathBuf {
    let dir = root.join(variant);
    std::fs::create_dir_all(&dir).unwrap();
    let example = opslive::demo::demo_config(url, "127.0.0.1:0".parse().unwrap())
        .replace("data_dir = \"./data\"", &format!("data_dir = {:?}", dir.join("data").display().to_string()))
        .replace("[app_database]", &format!("[app_database]\nurl = {app_url:?}"))
        .replace(
            "kind = \"postgres\"",
            &format!("kind = \"postgres\"\nslot = \"opslive_{variant}\"\npublication = \"opslive_{variant}\""),
        );
    let text = format!(
        "policy = {:?}\n{example}\n[auth]\nhs256_secret = {SECRET:?}\n[checkpoint]\ninterval_seconds = 1\n",
        fixture_policy().display().to_string()
    );
    let path = dir.join("opslive.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts a server (of `binary`, or of this build) and waits until its replica is consistent;
/// returns it, its address and the instant it became consistent.
async fn start_of(binary: Option<&Path>, config: &Path) -> (Serve, std::net::SocketAddr, Instant) {
    let mut serve = match binary {
        Some(binary) => Serve::start_binary(binary, config),
        None => Serve::start(config),
    };
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    (serve, addr, Instant::now())
}

async fn start(config: &Path) -> (Serve, std::net::SocketAddr, Instant) {
    start_of(None, config).await
}

/// Polls `query` (every 2 ms) until `done` holds for its data.
async fn until(addr: std::net::SocketAddr, token: &str, query: &str, done: impl Fn(&Json) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let d = data(addr, token, query, json!({})).await;
        if done(&d) {
            return;
        }
        assert!(Instant::now() < deadline, "not done within 10 minutes: {query}: {d}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The 100 KPIs: the aggregates, expressions, filters, groups and windows of the issue, over
/// the fixture tables, varied by region, channel, warehouse and queue.
fn kpis(warehouses: &[String], queues: &[String]) -> Vec<Json> {
    let regions = ["eu", "us", "apac"];
    let channels = ["web", "app", "marketplace", "phone"];
    let mut out = Vec::new();
    for i in 0..100usize {
        let region = regions[i % regions.len()];
        let channel = channels[i % channels.len()];
        let warehouse = &warehouses[i % warehouses.len()];
        let queue = &queues[i % queues.len()];
        let kpi = match i % 14 {
            0 => json!({ "table": "orders", "aggregate": "COUNT", "groupBy": ["channel"],
                         "window": { "column": "createdAt", "last": "PT15M" } }),
            1 => json!({ "table": "orders", "aggregate": "SUM", "column": "total", "groupBy": ["status"],
                         "filter": { "region": { "eq": region } } }),
            2 => json!({ "table": "orders", "aggregate": "AVG", "column": "total", "groupBy": ["warehouseId"],
                         "filter": { "channel": { "eq": channel } } }),
            3 => json!({ "table": "orders", "aggregate": "P95", "column": "total",
                         "window": { "column": "createdAt", "last": "PT24H" }, "filter": { "region": { "eq": region } } }),
            4 => json!({ "table": "orders", "aggregate": "COUNT_DISTINCT", "column": "customerId",
                         "filter": { "channel": { "eq": channel } } }),
            5 => json!({ "table": "orders", "aggregate": "COUNT",
                         "filter": { "status": { "eq": "pending" }, "createdAt": { "lt": { "ago": "PT10M" } }, "warehouseId": { "eq": warehouse } } }),
            6 => json!({ "table": "inventory", "aggregate": "SUM", "column": "onHand", "groupBy": ["warehouseId"] }),
            7 => json!({ "table": "inventory", "aggregate": "COUNT",
                         "filter": { "onHand": { "lt": { "column": "reorderPoint" } }, "warehouseId": { "eq": warehouse } } }),
            8 => {
                json!({ "table": "inventory", "aggregate": "MIN", "column": "onHand", "filter": { "warehouseId": { "eq": warehouse } } })
            }
            9 => {
                json!({ "table": "tickets", "aggregate": "COUNT", "groupBy": ["queue"], "filter": { "status": { "in": ["new", "open"] } } })
            }
            10 => json!({ "table": "tickets", "aggregate": "P90",
                          "expression": { "difference": { "later": "firstResponseAt", "earlier": "openedAt" } },
                          "filter": { "queue": { "eq": queue } } }),
            11 => json!({ "table": "tickets", "aggregate": "AVG", "expression": { "age": "openedAt" },
                          "filter": { "status": { "eq": "open" }, "queue": { "eq": queue } } }),
            12 => {
                json!({ "table": "reconciliationBatches", "aggregate": "SUM", "column": "matchedAmount", "groupBy": ["status"] })
            }
            _ => json!({ "table": "orders", "aggregate": "MAX", "column": "total",
                         "window": { "column": "createdAt", "today": true }, "groupBy": ["region"] }),
        };
        let mut kpi = kpi;
        kpi["name"] = json!(format!("bench kpi {i}"));
        out.push(kpi);
    }
    out
}

/// 98 rules (half on the KPIs, half on rows); the two the latency phase drives come on top.
fn rules(kpi_ids: &[String], warehouses: &[String], queues: &[String]) -> Vec<Json> {
    let mut out = Vec::new();
    for i in 0..49usize {
        let kpi = &kpi_ids[i * 2 % kpi_ids.len()];
        let condition = match i % 3 {
            0 => json!({ "kpi": kpi, "above": 1.0e9 }),
            1 => json!({ "kpi": kpi, "below": -1.0 }),
            _ => json!({ "kpi": kpi, "outside": { "low": -1.0, "high": 1.0e9 } }),
        };
        out.push(json!({ "name": format!("bench kpi rule {i}"), "kpi": condition, "for": "PT1M" }));
    }
    for i in 0..49usize {
        let warehouse = &warehouses[i % warehouses.len()];
        let queue = &queues[i % queues.len()];
        let rows = match i % 4 {
            0 => json!({ "table": "inventory", "labelColumns": ["sku", "warehouseId"],
                         "filter": { "onHand": { "lt": { "column": "reorderPoint" } }, "warehouseId": { "eq": warehouse } } }),
            1 => json!({ "table": "orders", "labelColumns": ["warehouseId"],
                         "filter": { "status": { "eq": "pending" }, "createdAt": { "lt": { "ago": "PT10M" } }, "warehouseId": { "eq": warehouse } } }),
            2 => json!({ "table": "tickets", "labelColumns": ["queue"],
                         "filter": { "status": { "eq": "open" }, "openedAt": { "lt": { "ago": "PT30M" } }, "queue": { "eq": queue } } }),
            _ => {
                json!({ "table": "reconciliationBatches", "labelColumns": ["account"], "filter": { "status": { "eq": "exception" } } })
            }
        };
        out.push(json!({ "name": format!("bench row rule {i}"), "rows": rows, "summary": "{{id}}" }));
    }
    out
}

async fn strings(sql: &tokio_postgres::Client, query: &str) -> Vec<String> {
    sql.query(query, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

async fn committed(sql: &tokio_postgres::Client) -> i64 {
    sql.query_one("SELECT xact_commit FROM pg_stat_database WHERE datname = 'shop'", &[]).await.unwrap().get(0)
}

/// Writes business traffic as fast as the database takes it for `secs`; returns the
/// transactions committed.
async fn write_backlog(url: &str, sql: &tokio_postgres::Client, secs: u64) -> i64 {
    let before = committed(sql).await;
    let options = SimOptions { rate: 5_000.0, connections: 4, seed: 7, ..SimOptions::default() };
    let cancel = CancellationToken::new();
    let sim = tokio::spawn({
        let (url, cancel) = (url.to_string(), cancel.clone());
        async move { opslive::sim::run(&url, options, Arc::new(SimStats::default()), cancel).await }
    });
    tokio::time::sleep(Duration::from_secs(secs)).await;
    cancel.cancel();
    sim.await.unwrap().expect("the simulator runs");
    committed(sql).await - before
}

/// CPU seconds a process has used (user and system), from `/proc`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum());
    // SAFETY: sysconf reads a constant of the running system.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The WAL sender serving a variant's slot, once the server has started streaming from it.
async fn walsender(sql: &tokio_postgres::Client, variant: &str) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let pid = sql
            .query_opt(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                &[&format!("opslive_{variant}")],
            )
            .await
            .ok()
            .flatten()
            .and_then(|row| row.get::<_, Option<i32>>(0))
            .and_then(|p| u32::try_from(p).ok());
        if pid.is_some() {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The alerts of one subscription frame: instance → state.
fn frame_states(message: &Json) -> std::collections::HashMap<String, String> {
    message["payload"]["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (x["instance"].as_str().unwrap_or("").to_string(), x["state"].as_str().unwrap_or("").to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let rounds = env_or("ALERTS_BENCH_ROUNDS", 3);
    let backlog_secs = env_or("ALERTS_BENCH_BACKLOG_SECS", 15) as u64;
    let alerts_n = env_or("ALERTS_BENCH_ALERTS", 200);
    let sim_rate = env_or("ALERTS_BENCH_SIM_RATE", 100) as f64;

    // Commits flushed as they return: with `synchronous_commit=off` (the test servers'
    // default) the WAL sender waits for the WAL writer's next round (`wal_writer_delay`,
    // 200 ms), and that, not opslive, would be the latency measured.
    let pg = support::PgServer::start_with(&[("synchronous_commit", "on")]).await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(opslive::demo::FIXTURE_SCHEMA).await.unwrap();
    sql.batch_execute(opslive::demo::FIXTURE_SEED).await.unwrap();
    sql.batch_execute("ANALYZE").await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let admin = token("admin", json!({ "sub": "bench@opslive" }));
    let baseline = std::env::var_os("ALERTS_BENCH_BASELINE_BIN").map(PathBuf::from);
    let variants = if baseline.is_some() { 3 } else { 2 };
    let mut configs = Vec::new();
    for v in &VARIANTS[..2] {
        let app = pg.create_database(&format!("app_{v}")).await;
        configs.push(write_config(root.path(), &url, &app, v));
    }

    // Slots and snapshots; the definitions go into `engines`.
    let warehouses = strings(&sql, "SELECT id FROM warehouses ORDER BY id").await;
    let queues = strings(&sql, "SELECT DISTINCT queue FROM tickets ORDER BY queue").await;
    let (plain, _, _) = start(&configs[0]).await;
    plain.terminate().await;
    let (engines, addr, _) = start(&configs[1]).await;
    let create_kpi = "mutation($input: KpiInput!) { createKpi(input: $input) { id } }";
    let create_rule = "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id } }";
    let mut kpi_ids = Vec::new();
    for k in kpis(&warehouses, &queues) {
        let d = data(addr, &admin, create_kpi, json!({ "input": k })).await;
        kpi_ids.push(d["createKpi"]["id"].as_str().expect("a KPI id").to_string());
    }
    // The marker KPI tells when the KPIs have taken the whole backlog; the test KPI carries
    // the latency phase's KPI rule.
    let marker_kpi = data(
        addr,
        &admin,
        create_kpi,
        json!({ "input": { "name": "bench marker", "table": "warehouses",
        "aggregate": "COUNT", "filter": { "name": { "like": "marker %" } } } }),
    )
    .await["createKpi"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let test_kpi = data(
        addr,
        &admin,
        create_kpi,
        json!({ "input": { "name": "bench test orders", "table": "orders",
        "aggregate": "COUNT", "filter": { "currency": { "eq": "XTS" }, "status": { "eq": "pending" } } } }),
    )
    .await["createKpi"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut rule_count = 0;
    for r in rules(&kpi_ids, &warehouses, &queues) {
        data(addr, &admin, create_rule, json!({ "input": r })).await;
        rule_count += 1;
    }
    let row_rule = data(
        addr,
        &admin,
        create_rule,
        json!({ "input": { "name": "bench test order rows", "rows": {
        "table": "orders", "filter": { "currency": { "eq": "XTS" }, "status": { "eq": "pending" } } } } }),
    )
    .await["createAlertRule"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kpi_rule = data(
        addr,
        &admin,
        create_rule,
        json!({ "input": { "name": "bench test order count",
        "kpi": { "kpi": test_kpi, "above": 0 } } }),
    )
    .await["createAlertRule"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    rule_count += 2;
    let kpi_count = kpi_ids.len() + 2;
    engines.terminate().await;
    eprintln!("defined {kpi_count} KPIs (with the marker's: {}) and {rule_count} rules", kpi_count + 1);
    if let Some(binary) = &baseline {
        // The same definitions, in its own app database; its own slot, snapshot and checkpoint.
        pg.connect("postgres").await.batch_execute("CREATE DATABASE app_baseline TEMPLATE app_engines").await.unwrap();
        configs.push(write_config(root.path(), &url, &pg.url("app_baseline"), "baseline"));
        let (serve, _, _) = start_of(Some(binary), &configs[2]).await;
        serve.terminate().await;
    }

    // Drains of the same backlog.
    let mut ratios = Vec::new();
    let mut against_baseline = Vec::new();
    let mut rates: [Vec<f64>; 3] = Default::default();
    // CPU per transaction during the drain (µs): opslive's, and PostgreSQL's WAL sender's.
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut sender_cpu: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        let transactions = write_backlog(&url, &sql, backlog_secs).await;
        let marker = format!("marker {round}");
        sql.batch_execute(&format!("UPDATE warehouses SET name = '{marker}' WHERE id = '{}'", warehouses[0]))
            .await
            .unwrap();
        // Each variant goes first in turn.
        let order: Vec<usize> = (0..variants).map(|i| (i + round) % variants).collect();
        let mut secs = [0.0f64; 3];
        for &v in &order {
            let binary = if VARIANTS[v] == "baseline" { baseline.as_deref() } else { None };
            let (serve, addr, consistent) = start_of(binary, &configs[v]).await;
            let pid = serve.child.id().expect("a running server");
            let sender = walsender(&sql, VARIANTS[v]).await;
            let (cpu0, sender0) = (cpu_seconds(pid), sender.map_or(0.0, cpu_seconds));
            let query = format!("{{ warehouses(where: {{name: {{eq: \"{marker}\"}}}}) {{ id }} }}");
            until(addr, &admin, &query, |d| d["warehouses"].as_array().is_some_and(|a| !a.is_empty())).await;
            if VARIANTS[v] != "plain" {
                let kpi = format!("{{ kpi(id: \"{marker_kpi}\") {{ value }} }}");
                until(addr, &admin, &kpi, |d| d["kpi"]["value"] == "1").await;
            }
            secs[v] = consistent.elapsed().as_secs_f64();
            let micros_per_tx = |seconds: f64| seconds * 1e6 / transactions as f64;
            cpu[v].push(micros_per_tx(cpu_seconds(pid) - cpu0));
            sender_cpu[v].push(micros_per_tx(sender.map_or(0.0, cpu_seconds) - sender0));
            serve.terminate().await;
            rates[v].push(transactions as f64 / secs[v]);
        }
        // Back to a name no marker query matches, for the next round.
        sql.batch_execute(&format!("UPDATE warehouses SET name = 'bench' WHERE id = '{}'", warehouses[0]))
            .await
            .unwrap();
        let ratio = secs[0] / secs[1];
        eprintln!(
            "round {round}: {transactions} transactions; plain {:.2} s ({:.0} tx/s, {:.0} µs CPU/tx), engines {:.2} s ({:.0} tx/s, {:.0} µs CPU/tx): {:.0} %",
            secs[0],
            transactions as f64 / secs[0],
            cpu[0].last().copied().unwrap_or_default(),
            secs[1],
            transactions as f64 / secs[1],
            cpu[1].last().copied().unwrap_or_default(),
            ratio * 100.0
        );
        ratios.push(ratio);
        if baseline.is_some() {
            eprintln!(
                "round {round}: baseline {:.2} s ({:.0} tx/s, {:.0} µs CPU/tx); this build's drain in {:.0} % of the baseline's time",
                secs[2],
                transactions as f64 / secs[2],
                cpu[2].last().copied().unwrap_or_default(),
                secs[1] / secs[2] * 100.0
            );
            against_baseline.push(secs[1] / secs[2]);
        }
    }

    // Commit → alert frame, on the engines server with traffic beside it.
    let (engines, addr, _) = start(&configs[1]).await;
    until(addr, &admin, &format!("{{ kpi(id: \"{marker_kpi}\") {{ value }} }}"), |d| d["kpi"]["value"] == "0").await;
    let cancel = CancellationToken::new();
    let background = tokio::spawn({
        let (url, cancel) = (url.clone(), cancel.clone());
        let options = SimOptions { rate: sim_rate, connections: 2, seed: 11, ..SimOptions::default() };
        async move { opslive::sim::run(&url, options, Arc::new(SimStats::default()), cancel).await }
    });
    let mut ws = WsClient::connect(addr, TRANSPORT_WS, &admin).await;
    for (id, rule) in [("rows", &row_rule), ("kpi", &kpi_rule)] {
        let doc = format!("subscription {{ alerts(where: {{ruleId: \"{rule}\"}}) {{ instance state }} }}");
        ws.subscribe(id, &doc, json!({})).await;
        ws.message().await.expect("the first frame");
    }
    // The same commits through a live query: what the path before the engines costs.
    ws.subscribe(
        "live",
        "subscription { orders(where: {currency: {eq: \"XTS\"}, status: {eq: \"pending\"}}) { id } }",
        json!({}),
    )
    .await;
    ws.message().await.expect("the first frame");
    let mut live = Vec::new();
    let mut fire_rows = Vec::new();
    let mut fire_kpi = Vec::new();
    let mut resolve_rows = Vec::new();
    let mut resolve_kpi = Vec::new();
    for _ in 0..alerts_n {
        let id: i64 = sql.query_one(&format!("{INSERT_TEST_ORDER} RETURNING id"), &[]).await.unwrap().get(0);
        let committed_at = Instant::now();
        let id_text = id.to_string();
        let key = json!([id_text]).to_string();
        let (mut rows_at, mut kpi_at, mut live_at) = (None, None, None);
        while rows_at.is_none() || kpi_at.is_none() || live_at.is_none() {
            let m = ws.message().await.expect("a frame");
            let states = frame_states(&m);
            let has_order = || {
                m["payload"]["data"]["orders"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|o| o["id"].as_str() == Some(id_text.as_str())))
            };
            match m["id"].as_str() {
                Some("live") if has_order() => live_at = Some(committed_at.elapsed()),
                Some("rows") if states.get(&key).is_some_and(|s| s == "FIRING") => {
                    rows_at = Some(committed_at.elapsed())
                }
                Some("kpi") if states.get("").is_some_and(|s| s == "FIRING") => kpi_at = Some(committed_at.elapsed()),
                _ => {}
            }
        }
        live.push(live_at.unwrap().as_secs_f64() * 1e3);
        fire_rows.push(rows_at.unwrap().as_secs_f64() * 1e3);
        fire_kpi.push(kpi_at.unwrap().as_secs_f64() * 1e3);
        sql.batch_execute(&format!("UPDATE orders SET status = 'paid' WHERE id = {id}")).await.unwrap();
        let committed_at = Instant::now();
        let (mut rows_at, mut kpi_at) = (None, None);
        while rows_at.is_none() || kpi_at.is_none() {
            let m = ws.message().await.expect("a frame");
            let states = frame_states(&m);
            let open = |k: &str| states.get(k).is_some_and(|s| s == "FIRING" || s == "PENDING");
            match m["id"].as_str() {
                Some("rows") if !open(&key) => rows_at = Some(committed_at.elapsed()),
                Some("kpi") if !open("") => kpi_at = Some(committed_at.elapsed()),
                _ => {}
            }
        }
        resolve_rows.push(rows_at.unwrap().as_secs_f64() * 1e3);
        resolve_kpi.push(kpi_at.unwrap().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    background.await.unwrap().expect("the background simulator runs");
    engines.terminate().await;

    println!("\n## KPIs and alerts ({kpi_count} KPIs, {rule_count} rules; {rounds} rounds)\n");
    println!("| measure | value |\n|---|---|");
    println!(
        "| backlog drain, plain (median) | {:.0} tx/s |\n| backlog drain, with KPIs and rules (median) | {:.0} tx/s |",
        median(rates[0].clone()),
        median(rates[1].clone())
    );
    println!(
        "| opslive CPU per transaction in the drain, plain / with KPIs and rules (median) | {:.0} µs / {:.0} µs |",
        median(cpu[0].clone()),
        median(cpu[1].clone())
    );
    println!(
        "| PostgreSQL WAL sender CPU per transaction, plain / with (median) | {:.0} µs / {:.0} µs |",
        median(sender_cpu[0].clone()),
        median(sender_cpu[1].clone())
    );
    println!(
        "| throughput ratio, with / without (median of rounds: {}) | **{:.0} %** |",
        ratios.iter().map(|r| format!("{:.0} %", r * 100.0)).collect::<Vec<_>>().join(", "),
        median(ratios.clone()) * 100.0
    );
    if baseline.is_some() {
        println!(
            "| baseline build with the same KPIs and rules: drain (median), CPU per transaction (median) | {:.0} tx/s, {:.0} µs |",
            median(rates[2].clone()),
            median(cpu[2].clone())
        );
        println!(
            "| this build's drain time / the baseline's (median of rounds: {}) | **{:.0} %** |",
            against_baseline.iter().map(|r| format!("{:.0} %", r * 100.0)).collect::<Vec<_>>().join(", "),
            median(against_baseline.clone()) * 100.0
        );
    }
    for (name, mut v) in [
        ("commit → live query frame (the same insert; for comparison)", live),
        ("commit → row alert FIRING frame", fire_rows),
        ("commit → KPI alert FIRING frame", fire_kpi),
        ("commit → row alert resolved frame", resolve_rows),
        ("commit → KPI alert resolved frame", resolve_kpi),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} (n={}) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms |",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v[v.len() - 1]
        );
    }
    drop(pg);
}

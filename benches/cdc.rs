//! CDC throughput on a private PostgreSQL: snapshot rows/s and backlog drain rows/s.
//!
//! `cargo bench --bench cdc` (release). Options through the environment:
//! `OPSLIVE_BENCH_ROWS` (default 1,000,000), `OPSLIVE_BENCH_TX_ROWS` (rows per transaction in
//! the backlog, default 1,000), `OPSLIVE_BENCH_RUNS` (default 3; the median is reported).
//!
//! - snapshot: the table holds N rows; time from the source's start until the replica is
//!   consistent (slot creation, COPY, decode, apply).
//! - backlog drain: a slot is created on the empty table, N rows are committed in
//!   `TX_ROWS`-row transactions while nothing reads the slot (the source blocks on a bounded
//!   channel of 4 events), then the replica starts applying; time until it holds all N rows.
//! - commit → applied: 1,000 single-row autocommit inserts; time from the commit returning to
//!   the writer (and from the insert being sent) until the row is in a published replica version.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opslive::change::SourceEvent;
use opslive::config::SecretUrl;
use opslive::pipeline::{ApplyLoop, CHANNEL_CAPACITY};
use opslive::registry::Registry;
use opslive::replica::Replica;
use opslive::source::postgres::PostgresSource;
use opslive::watermark::Watermarks;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

const TABLE: &str = "CREATE TABLE bench (id bigint PRIMARY KEY, grp int NOT NULL, amount numeric(12,2), status text, note text, created_at timestamptz)";
const ROWS_SQL: &str = "SELECT g, g % 100, (g % 100000) / 100.0, (ARRAY['pending','paid','shipped'])[g % 3 + 1], 'order ' || g, now() FROM generate_series";

struct Pipeline {
    cancel: CancellationToken,
    events: mpsc::Receiver<SourceEvent>,
    source: tokio::task::JoinHandle<Result<(), opslive::error::SourceError>>,
    watermarks: Arc<Watermarks>,
}

fn source(url: &str, slot: &str, capacity: usize) -> Pipeline {
    let mut registry = Registry::default();
    registry.add("bench".into(), "public", "bench", "bench", vec!["status".into()], vec![]).unwrap();
    let watermarks = Arc::new(Watermarks::default());
    let mut src = PostgresSource::new(
        "bench",
        &SecretUrl::parse(url).unwrap(),
        slot.into(),
        "bench_pub".into(),
        Arc::new(registry),
        watermarks.clone(),
    )
    .unwrap();
    src.chunk_rows = 1024;
    let (tx, rx) = mpsc::channel(capacity);
    let cancel = CancellationToken::new();
    let source = tokio::spawn(src.run(tx, cancel.clone()));
    Pipeline { cancel, events: rx, source, watermarks }
}

/// Applies until the replica's `bench` table holds `rows` rows and the snapshot is done.
async fn apply_until(p: Pipeline, rows: usize) -> (Duration, Pipeline2) {
    let started = Instant::now();
    let (apply, mut versions): (ApplyLoop, watch::Receiver<Arc<Replica>>) =
        ApplyLoop::new(HashMap::from([(Arc::from("bench"), p.watermarks.clone())]));
    let applier = tokio::spawn(apply.run(p.events, |_, _| {}));
    loop {
        {
            let r = versions.borrow_and_update();
            if r.applied_position("bench").0 > 0
                && r.tables().next().is_some_and(|t| t.len() >= rows && t.state == opslive::replica::TableState::Ready)
            {
                break;
            }
        }
        versions.changed().await.expect("apply loop ended early");
    }
    (started.elapsed(), Pipeline2 { cancel: p.cancel, source: p.source, applier, versions })
}

struct Pipeline2 {
    cancel: CancellationToken,
    source: tokio::task::JoinHandle<Result<(), opslive::error::SourceError>>,
    applier: tokio::task::JoinHandle<Replica>,
    versions: watch::Receiver<Arc<Replica>>,
}

impl Pipeline2 {
    async fn stop(self) {
        self.cancel.cancel();
        self.source.await.unwrap().unwrap();
        self.applier.await.unwrap();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rows = env_or("OPSLIVE_BENCH_ROWS", 1_000_000);
    let tx_rows = env_or("OPSLIVE_BENCH_TX_ROWS", 1_000);
    let runs = env_or("OPSLIVE_BENCH_RUNS", 3);
    // synchronous_commit=on: the walsender sends only flushed WAL, so with it off a commit would
    // wait for the WAL writer (200 ms) before it could stream. fsync stays off (no disk waits).
    let pg = support::PgServer::start_with(&[
        ("max_wal_size", "4GB"),
        ("shared_buffers", "512MB"),
        ("synchronous_commit", "on"),
    ])
    .await;
    let url = pg.create_database("bench").await;
    let sql = pg.connect("bench").await;
    println!(
        "cdc bench: {rows} rows, {tx_rows} rows per transaction in the backlog, {runs} runs, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Snapshot.
    sql.batch_execute(TABLE).await.unwrap();
    sql.batch_execute(&format!("INSERT INTO bench {ROWS_SQL}(1, {rows}) g")).await.unwrap();
    sql.batch_execute("VACUUM ANALYZE bench").await.unwrap();
    let mut snapshot = Vec::new();
    for run in 0..runs {
        let (took, p) = apply_until(source(&url, &format!("bench_snap_{run}"), CHANNEL_CAPACITY), rows).await;
        p.stop().await;
        let rate = rows as f64 / took.as_secs_f64();
        println!("  snapshot run {run}: {:.2} s, {:.0} rows/s", took.as_secs_f64(), rate);
        snapshot.push(rate);
    }

    // Backlog drain.
    let mut drain = Vec::new();
    for run in 0..runs {
        sql.batch_execute("TRUNCATE bench").await.unwrap();
        // A short channel: the source may not decode the backlog ahead of the replica while it
        // is being written (the production channel would hold all of it).
        let p = source(&url, &format!("bench_drain_{run}"), 4);
        // Wait until the slot exists (the snapshot of the empty table is done) before writing.
        while p.watermarks.values().received.0 == 0 {
            let exists: bool = sql
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active)",
                    &[&format!("bench_drain_{run}")],
                )
                .await
                .unwrap()
                .get(0);
            if exists {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let write_started = Instant::now();
        let mut from = 1;
        while from <= rows {
            let to = (from + tx_rows - 1).min(rows);
            sql.batch_execute(&format!("INSERT INTO bench {ROWS_SQL}({from}, {to}) g")).await.unwrap();
            from = to + 1;
        }
        let wrote = write_started.elapsed();
        let (took, p) = apply_until(p, rows).await;
        p.stop().await;
        let rate = rows as f64 / took.as_secs_f64();
        println!(
            "  backlog run {run}: wrote in {:.2} s, drained in {:.2} s, {:.0} rows/s",
            wrote.as_secs_f64(),
            took.as_secs_f64(),
            rate
        );
        drain.push(rate);
    }
    // Commit → applied latency of single-row transactions on an idle stream.
    sql.batch_execute("TRUNCATE bench").await.unwrap();
    let (_, p) = apply_until(source(&url, "bench_latency", CHANNEL_CAPACITY), 0).await;
    let mut versions = p.versions.clone();
    let mut latencies = Vec::new();
    let mut round_trips = Vec::new();
    for i in 1..=1000i64 {
        let sent = Instant::now();
        sql.execute("INSERT INTO bench (id, grp) VALUES ($1, 0)", &[&i]).await.unwrap();
        let committed = Instant::now();
        loop {
            if versions.borrow_and_update().tables().next().is_some_and(|t| t.len() as i64 >= i) {
                break;
            }
            versions.changed().await.unwrap();
        }
        latencies.push(committed.elapsed().as_secs_f64() * 1000.0);
        round_trips.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    p.stop().await;
    for (what, mut v) in [("commit returned → applied", latencies), ("insert sent → applied", round_trips)] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
        println!(
            "{what}, 1,000 single-row transactions: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }

    println!("snapshot: median {:.0} rows/s", median(snapshot));
    println!("backlog drain: median {:.0} rows/s (applied to the replica)", median(drain));
}

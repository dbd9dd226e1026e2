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
//! - live lag under the fastest insert load: `OPSLIVE_BENCH_WRITERS` connections (default 4)
//!   insert as fast as PostgreSQL takes it for `OPSLIVE_BENCH_LOAD_SECS` (default 10), first
//!   with nothing reading the slot (the load PostgreSQL sustains alone), then with opslive
//!   streaming; single-row and 100-row transactions. A sampler notes, every 20 ms, what each
//!   writer has committed and times how long until the replica has applied all of it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use opslive::change::SourceEvent;
use opslive::config::SecretUrl;
use opslive::pipeline::{ApplyLoop, CHANNEL_CAPACITY};
use opslive::registry::Registry;
use opslive::replica::{Applied, Delta, Replica};
use opslive::source::postgres::PostgresSource;
use opslive::value::Value;
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
    apply_with_sink(p, rows, |_, _| {}).await
}

async fn apply_with_sink(
    p: Pipeline,
    rows: usize,
    sink: impl FnMut(&SourceEvent, &Applied) + Send + 'static,
) -> (Duration, Pipeline2) {
    let started = Instant::now();
    let (apply, mut versions): (ApplyLoop, watch::Receiver<Arc<Replica>>) =
        ApplyLoop::new(HashMap::from([(Arc::from("bench"), p.watermarks.clone())]));
    let applier = tokio::spawn(apply.run(p.events, sink));
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

/// Per writer: the highest id committed (ids of writer `w` are `w + k·writers`, committed in
/// order) and the highest applied to the replica.
struct Progress {
    committed: Vec<AtomicI64>,
    applied: Vec<AtomicI64>,
    /// Woken after each applied transaction (a timer would round lags up to its 1 ms tick).
    applied_changed: tokio::sync::Notify,
}

struct LoadResult {
    rows_per_s: f64,
    tx_per_s: f64,
    lags_ms: Vec<f64>,
    /// From the writers stopping until the replica held everything they wrote.
    catch_up_ms: f64,
}

/// Writers insert into `bench` as fast as they can for `secs`; with `streaming`, a sampler
/// measures commit → applied lag meanwhile.
async fn load(
    pg: &support::PgServer,
    url: &str,
    run: &str,
    writers: usize,
    tx_rows: usize,
    secs: u64,
    streaming: bool,
) -> LoadResult {
    let sql = pg.connect("bench").await;
    sql.batch_execute("TRUNCATE bench").await.unwrap();
    let progress = Arc::new(Progress {
        committed: (0..writers).map(|_| AtomicI64::new(-1)).collect(),
        applied: (0..writers).map(|_| AtomicI64::new(-1)).collect(),
        applied_changed: tokio::sync::Notify::new(),
    });
    let pipeline = if streaming {
        let sink_progress = progress.clone();
        let n = writers as i64;
        let sink = move |_: &SourceEvent, applied: &Applied| {
            for d in &applied.deltas {
                if let Delta::Row(row) = d
                    && let Some(Value::Int8(id)) = row.key.0.first()
                {
                    sink_progress.applied[(id % n) as usize].fetch_max(*id, Ordering::Relaxed);
                }
            }
            sink_progress.applied_changed.notify_waiters();
        };
        Some(apply_with_sink(source(url, &format!("bench_load_{run}"), CHANNEL_CAPACITY), 0, sink).await.1)
    } else {
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, progress, stop) = (pg.connect("bench").await, progress.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let statement = client
                .prepare(&format!(
                    "INSERT INTO bench (id, grp, amount, status) \
                     SELECT $1::bigint + g * {writers}, g % 100, 10.5, 'paid' FROM generate_series(0, {tx_rows} - 1) g"
                ))
                .await
                .unwrap();
            let mut next = w as i64;
            let mut transactions = 0u64;
            while !stop.load(Ordering::Relaxed) {
                client.execute(&statement, &[&next]).await.unwrap();
                next += (tx_rows * writers) as i64;
                progress.committed[w].store(next - writers as i64, Ordering::Relaxed);
                transactions += 1;
            }
            transactions
        }));
    }
    // Samples of what was committed, resolved (lag measured) as soon as all of it is applied.
    let (samples_tx, mut samples_rx) = mpsc::unbounded_channel::<(Instant, Vec<i64>)>();
    let resolver = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut lags_ms = Vec::new();
            while let Some((sampled, targets)) = samples_rx.recv().await {
                loop {
                    let changed = progress.applied_changed.notified();
                    tokio::pin!(changed);
                    changed.as_mut().enable();
                    if targets.iter().zip(&progress.applied).all(|(t, a)| a.load(Ordering::Relaxed) >= *t) {
                        break;
                    }
                    changed.await;
                }
                lags_ms.push(sampled.elapsed().as_secs_f64() * 1000.0);
            }
            lags_ms
        })
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if pipeline.is_some() {
            let targets = progress.committed.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            samples_tx.send((Instant::now(), targets)).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut transactions = 0;
    for t in tasks {
        transactions += t.await.unwrap();
    }
    // The last sample is everything written: when it resolves, the replica has caught up.
    let stopped = Instant::now();
    if pipeline.is_some() {
        let targets = progress.committed.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        samples_tx.send((stopped, targets)).unwrap();
    }
    drop(samples_tx);
    let lags_ms = resolver.await.unwrap();
    let catch_up_ms = stopped.elapsed().as_secs_f64() * 1000.0;
    if let Some(p) = pipeline {
        p.stop().await;
    }
    LoadResult {
        rows_per_s: (transactions * tx_rows as u64) as f64 / elapsed,
        tx_per_s: transactions as f64 / elapsed,
        lags_ms,
        catch_up_ms,
    }
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
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

    // Live lag under the fastest insert load.
    let writers = env_or("OPSLIVE_BENCH_WRITERS", 4);
    let secs = env_or("OPSLIVE_BENCH_LOAD_SECS", 10) as u64;
    let mut summary = Vec::new();
    for tx_rows in [1, 100] {
        let alone = load(&pg, &url, &format!("alone_{tx_rows}"), writers, tx_rows, secs, false).await;
        let mut live = load(&pg, &url, &format!("live_{tx_rows}"), writers, tx_rows, secs, true).await;
        let line = format!(
            "live lag, {writers} writers of {tx_rows}-row transactions for {secs} s: PostgreSQL alone sustains \
             {:.0} tx/s ({:.0} rows/s); with opslive streaming {:.0} tx/s ({:.0} rows/s), commit → applied lag \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples every 20 ms); caught up {:.1} ms after the \
             writers stopped",
            alone.tx_per_s,
            alone.rows_per_s,
            live.tx_per_s,
            live.rows_per_s,
            percentile(&mut live.lags_ms, 0.5),
            percentile(&mut live.lags_ms, 0.99),
            percentile(&mut live.lags_ms, 1.0),
            live.lags_ms.len(),
            live.catch_up_ms
        );
        println!("{line}");
        summary.push(line);
    }

    println!("snapshot: median {:.0} rows/s", median(snapshot));
    println!("backlog drain: median {:.0} rows/s (applied to the replica)", median(drain));
    for line in summary {
        println!("{line}");
    }
}

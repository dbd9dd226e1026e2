//! CDC throughput on a private PostgreSQL: snapshot rows/s and backlog drain rows/s.
//!
//! `cargo bench --bench cdc` (release). Options through the environment:
//! `OPSLIVE_BENCH_ROWS` (default 1,000,000), `OPSLIVE_BENCH_TX_ROWS` (rows per transaction in
//! the backlog, default 1,000), `OPSLIVE_BENCH_RUNS` (default 3; the median is reported),
//! `OPSLIVE_BENCH_BINARY=0` (text tuples and a text COPY instead of binary ones),
//! `OPSLIVE_BENCH_PHASES` (a comma-separated subset of the phases below).
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
//!   streaming; single-row and 100-row transactions (`OPSLIVE_BENCH_LOAD_TX_ROWS`, default
//!   `1,100`). A sampler notes, every 20 ms, what each writer has committed and times how long
//!   until the replica has applied all of it.
//! - sustained load: the highest rate of 100-row transactions (writers paced to an offered
//!   rate) that PostgreSQL takes with opslive streaming while commit → applied lag stays under
//!   1 s at p99; found by bisection between 0 and the unpaced rate, `OPSLIVE_BENCH_SUSTAIN_STEPS`
//!   steps (default 5) of `OPSLIVE_BENCH_LOAD_SECS` each.

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
    let registry = Registry::default();
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
    // Binary tuples (and, for the snapshot, binary COPY) unless `OPSLIVE_BENCH_BINARY=0`.
    src.binary = std::env::var("OPSLIVE_BENCH_BINARY").map_or(true, |v| v != "0");
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
    let applier = tokio::spawn(apply.run(p.events, Vec::new(), sink));
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

/// Writers insert into `bench` as fast as they can for `secs` (or, with `rate`, paced to offer
/// that many rows/s in all); with `streaming`, a sampler measures commit → applied lag meanwhile.
#[allow(clippy::too_many_arguments)]
async fn load(
    pg: &support::PgServer,
    url: &str,
    run: &str,
    writers: usize,
    tx_rows: usize,
    secs: u64,
    streaming: bool,
    rate: Option<f64>,
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
            // Each writer offers its share of the rate; one that falls behind does not burst.
            let mut pace = rate.map(|rate| {
                let mut tick = tokio::time::interval(Duration::from_secs_f64((writers * tx_rows) as f64 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            });
            while !stop.load(Ordering::Relaxed) {
                if let Some(tick) = pace.as_mut() {
                    tick.tick().await;
                }
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

/// Restart time with `rows` replica rows: the real `opslive serve` (release) loads its
/// checkpoint and resumes its slot; timed from process start to its "replica consistent" log.
async fn restart(pg: &support::PgServer, url: &str, rows: usize, runs: usize) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opslive.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[sources.shop]\nkind = \"postgres\"\nurl = \"{url}\"\n\
             [[sources.shop.tables]]\ntable = \"bench\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // Waits for a log line containing `what`; returns when it came.
    async fn until(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>, what: &str) -> String {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(what) {
                return line;
            }
            seen.push(line);
        }
        panic!("serve ended before {what:?}:\n{}", seen.join("\n"));
    }
    let start = |config: &std::path::Path| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_opslive"));
        // The bench's own settings are not the server's (its OPSLIVE_ overlay refuses them).
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("OPSLIVE_BENCH")) {
            cmd.env_remove(key);
        }
        let mut child = cmd
            .args(["serve", "--config", config.to_str().unwrap(), "--log-format", "json"])
            .env("OPSLIVE_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        (child, lines)
    };
    let stop = |child: &tokio::process::Child| {
        std::process::Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status().unwrap();
    };
    // First start: the snapshot; the clean stop writes the checkpoint.
    let (mut child, mut lines) = start(&config);
    until(&mut lines, "replica consistent").await;
    stop(&child);
    child.wait().await.unwrap();
    let mut took = Vec::new();
    let mut load_ms = Vec::new();
    for run in 0..runs {
        let started = Instant::now();
        let (mut child, mut lines) = start(&config);
        let loaded = until(&mut lines, "checkpoint loaded").await;
        until(&mut lines, "resuming the slot").await;
        until(&mut lines, "replica consistent").await;
        let secs = started.elapsed().as_secs_f64();
        let v: serde_json::Value = serde_json::from_str(&loaded).unwrap();
        load_ms.push(v["fields"]["ms"].as_f64().unwrap_or(0.0));
        println!(
            "  restart run {run}: streaming {secs:.2} s after start ({:.0} ms reading the checkpoint)",
            load_ms[run]
        );
        took.push(secs);
        stop(&child);
        child.wait().await.unwrap();
    }
    let size = std::fs::metadata(dir.path().join("data").join(opslive::checkpoint::FILE_NAME)).map_or(0, |m| m.len());
    let line = format!(
        "restart with {rows} replica rows ({:.0} MB checkpoint): streaming again a median {:.2} s after the process \
         started ({:.0} ms of it reading the checkpoint); no snapshot",
        size as f64 / 1e6,
        median(took),
        median(load_ms)
    );
    println!("{line}");
    let _ = pg;
    line
}

/// Apply latency of single-row transactions on a replica of `rows` rows, alone and while
/// checkpoints are written back to back on another thread.
fn checkpoint_while_applying(rows: usize) -> String {
    use opslive::change::{Change, Image, Key, Op, Position, TableEvent, Transaction};
    use opslive::registry::{Column, ColumnType, TableSchema};
    let registry = Registry::default();
    let id = registry.add("s".into(), "public", "t", "t", vec!["grp".into()], vec![]).unwrap();
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    let schema = Arc::new(TableSchema {
        spec: registry.get(id).unwrap().clone(),
        columns: vec![
            col("id", ColumnType::Int8),
            col("grp", ColumnType::Int4),
            col("amount", ColumnType::Numeric),
            col("status", ColumnType::Text),
            col("note", ColumnType::Text),
        ],
        key: vec![0],
        indexed: vec![1],
        version: 1,
    });
    let row = |i: i64| -> Vec<Value> {
        vec![
            Value::Int8(i),
            Value::Int4((i % 100) as i32),
            Value::Numeric(format!("{}.{:02}", i % 1000, i % 100).into()),
            Value::text(["pending", "paid", "shipped"][(i % 3) as usize]),
            Value::Text(format!("order {i}").into()),
        ]
    };
    let mut replica = Replica::new();
    replica.apply(&SourceEvent::Table(TableEvent::SnapshotBegin { schema, estimated_rows: None }));
    for chunk in (0..rows as i64).collect::<Vec<_>>().chunks(4096) {
        replica.apply(&SourceEvent::SnapshotRows { table: id, rows: chunk.iter().map(|&i| row(i).into()).collect() });
    }
    replica.apply(&SourceEvent::Table(TableEvent::SnapshotEnd { table: id, position: Position(1), rows: rows as u64 }));
    replica.apply(&SourceEvent::Consistent { source: "s".into(), position: Position(1) });
    let slots = HashMap::from([(Arc::<str>::from("s"), "slot".to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let written = opslive::checkpoint::write(dir.path(), &replica, &slots).unwrap();
    let write_s = started.elapsed().as_secs_f64();

    let mut position = 1u64;
    let mut measure = |replica: &mut Replica, n: usize| -> Vec<f64> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            position += 1;
            let i = rows as i64 + position as i64;
            let tx = Transaction {
                source: "s".into(),
                position: Position(position),
                commit_ts: 0,
                xid: position,
                changes: vec![Change {
                    table: id,
                    op: Op::Insert,
                    key: Key(vec![Value::Int8(i)].into()),
                    before: None,
                    after: Some(Image(row(i).into_iter().map(Some).collect())),
                }],
                table_events: vec![],
            };
            let t = Instant::now();
            replica.apply(&SourceEvent::Transaction(tx));
            // Publishing a version is part of applying (what the checkpointer reads).
            std::hint::black_box(Arc::new(replica.clone()));
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
        out
    };
    let mut alone = measure(&mut replica, 50_000);
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (stop, writes, snapshot, dir) = (stop.clone(), writes.clone(), replica.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                opslive::checkpoint::write(&dir, &snapshot, &slots).unwrap();
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut during = measure(&mut replica, 50_000);
    while writes.load(Ordering::Relaxed) == 0 {
        during.extend(measure(&mut replica, 1_000));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let line = format!(
        "apply of a 1-row transaction on a {rows}-row replica: alone p50 {:.1} µs, p99 {:.1} µs; while checkpoints \
         ({:.0} MB, {:.2} s each, {} written meanwhile) are written: p50 {:.1} µs, p99 {:.1} µs, max {:.0} µs",
        percentile(&mut alone, 0.5),
        percentile(&mut alone, 0.99),
        written.bytes as f64 / 1e6,
        write_s,
        writes.load(Ordering::Relaxed),
        percentile(&mut during, 0.5),
        percentile(&mut during, 0.99),
        percentile(&mut during, 1.0),
    );
    println!("{line}");
    line
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

    let phases = std::env::var("OPSLIVE_BENCH_PHASES")
        .unwrap_or_else(|_| "snapshot,drain,latency,load,sustain,checkpoint,restart".into());
    let phase = |name: &str| phases.split(',').any(|p| p.trim() == name);

    // Snapshot.
    sql.batch_execute(TABLE).await.unwrap();
    sql.batch_execute(&format!("INSERT INTO bench {ROWS_SQL}(1, {rows}) g")).await.unwrap();
    sql.batch_execute("VACUUM ANALYZE bench").await.unwrap();
    let mut snapshot = Vec::new();
    let mut summary = Vec::new();
    if phase("restart") {
        summary.push(restart(&pg, &url, rows, runs).await);
    }
    if phase("checkpoint") {
        summary.push(checkpoint_while_applying(rows));
    }
    for run in 0..if phase("snapshot") { runs } else { 0 } {
        let (took, p) = apply_until(source(&url, &format!("bench_snap_{run}"), CHANNEL_CAPACITY), rows).await;
        p.stop().await;
        let rate = rows as f64 / took.as_secs_f64();
        println!("  snapshot run {run}: {:.2} s, {:.0} rows/s", took.as_secs_f64(), rate);
        snapshot.push(rate);
    }

    // Backlog drain.
    let mut drain = Vec::new();
    for run in 0..if phase("drain") { runs } else { 0 } {
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
    if phase("latency") {
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
    }

    // Live lag under the fastest insert load.
    let writers = env_or("OPSLIVE_BENCH_WRITERS", 4);
    let secs = env_or("OPSLIVE_BENCH_LOAD_SECS", 10) as u64;
    let load_sizes = match phase("load") {
        true => std::env::var("OPSLIVE_BENCH_LOAD_TX_ROWS").unwrap_or_else(|_| "1,100".into()),
        false => String::new(),
    };
    let mut unpaced_100 = None;
    for tx_rows in load_sizes.split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
        let alone = load(&pg, &url, &format!("alone_{tx_rows}"), writers, tx_rows, secs, false, None).await;
        let mut live = load(&pg, &url, &format!("live_{tx_rows}"), writers, tx_rows, secs, true, None).await;
        if tx_rows == 100 {
            unpaced_100 = Some(live.rows_per_s);
        }
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

    // The highest paced rate of 100-row transactions with lag p99 under 1 s.
    if phase("sustain") {
        let steps = env_or("OPSLIVE_BENCH_SUSTAIN_STEPS", 5);
        let mut high = match unpaced_100 {
            Some(rate) => rate,
            None => load(&pg, &url, "sustain_top", writers, 100, secs, true, None).await.rows_per_s,
        };
        let mut best: Option<(f64, LoadResult)> = None;
        let mut low = 0.0;
        for step in 0..steps {
            let offered = (low + high) / 2.0;
            let mut r = load(&pg, &url, &format!("sustain_{step}"), writers, 100, secs, true, Some(offered)).await;
            let p99 = percentile(&mut r.lags_ms, 0.99);
            // Sustained: PostgreSQL took (nearly) what was offered, and opslive kept up.
            let ok = r.rows_per_s >= 0.95 * offered && p99 < 1000.0;
            println!(
                "  sustain step {step}: offered {offered:.0} rows/s, written {:.0} rows/s, lag p50 {:.1} ms, p99 {p99:.1} ms: {}",
                r.rows_per_s,
                percentile(&mut r.lags_ms, 0.5),
                if ok { "kept up" } else { "fell behind" }
            );
            if ok {
                low = offered;
                best = Some((offered, r));
            } else {
                high = offered;
            }
        }
        let line = match best {
            Some((offered, mut r)) => format!(
                "sustained load, {writers} writers of 100-row transactions paced for {secs} s: the highest rate found                  with commit → applied lag p99 < 1 s is {:.0} rows/s written (offered {offered:.0}): lag p50 {:.1} ms,                  p99 {:.1} ms, max {:.1} ms",
                r.rows_per_s,
                percentile(&mut r.lags_ms, 0.5),
                percentile(&mut r.lags_ms, 0.99),
                percentile(&mut r.lags_ms, 1.0)
            ),
            None => {
                format!("sustained load: no paced rate tried kept lag p99 under 1 s (lowest tried {high:.0} rows/s)")
            }
        };
        println!("{line}");
        summary.push(line);
    }

    if !snapshot.is_empty() {
        println!("snapshot: median {:.0} rows/s", median(snapshot));
    }
    if !drain.is_empty() {
        println!("backlog drain: median {:.0} rows/s (applied to the replica)", median(drain));
    }
    for line in summary {
        println!("{line}");
    }
}

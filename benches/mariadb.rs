//! MariaDB CDC on a private server: snapshot rows/s, backlog drain rows/s against a do-nothing
//! binlog reader (the floor on this machine), and commit → applied latency.
//!
//! `cargo bench --bench mariadb` (release). Options through the environment:
//! `MARIADB_BENCH_ROWS` (default 500,000), `MARIADB_BENCH_TX_ROWS` (rows per transaction in
//! the backlog, default 1,000), `MARIADB_BENCH_RUNS` (default 3; medians are reported),
//! `MARIADB_BENCH_SINGLES` (single-row commits timed, default 1,000).
//!
//! - snapshot: the table holds N rows; time from the source's start until the replica is
//!   consistent (preflight, consistent snapshot, SELECT, decode, apply).
//! - backlog drain: the replica is consistent on the empty table and stopped; N rows are
//!   committed in `TX_ROWS`-row transactions; the source resumes from its position and the
//!   time until the replica holds all N rows is taken. The floor: mysql_async's binlog stream
//!   from the same position, reading every event and discarding it (no row decode, no apply),
//!   until the binlog's end — the same transport and server work with opslive's cost removed.
//! - commit → applied: single-row autocommit inserts, one at a time; time from the commit
//!   returning to the writer until the row is in a published replica version.
//! - lag under the fastest insert load: `MARIADB_BENCH_WRITERS` connections (default 4) insert
//!   as fast as MariaDB takes it for `MARIADB_BENCH_LOAD_SECS` (default 10), in single-row and
//!   100-row transactions, once followed by the do-nothing reader and once by opslive. Every
//!   20 ms a sampler reads the binlog's end and times how long until the follower has read
//!   (opslive: applied) up to it; then the time to catch up once the writers stop.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use opslive::change::Key;
use opslive::value::Value;
use support::mariadb::MariaDbServer;
use support::pipeline::start_configured;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

const TABLE: &str = "CREATE TABLE bench (id BIGINT PRIMARY KEY, grp INT NOT NULL, amount DECIMAL(12,2), \
    status ENUM('pending','paid','shipped'), note VARCHAR(100), created_at DATETIME(6)) ENGINE=InnoDB";

fn rows_sql(from: usize, to: usize) -> String {
    format!(
        "INSERT INTO bench SELECT seq, seq % 100, (seq % 100000) / 100, ELT(1 + seq % 3, 'pending', 'paid', 'shipped'), \
         CONCAT('order ', seq), NOW(6) FROM seq_{from}_to_{to}"
    )
}

fn toml(url: &str) -> String {
    format!(
        "kind = \"mariadb\"\nurl = \"{url}\"\nsnapshot_chunk_rows = 1024\n[[sources.src.tables]]\ntable = \"bench\"\n"
    )
}

async fn binlog_end(conn: &mut mysql_async::Conn) -> (String, u64) {
    let mut row: mysql_async::Row = conn.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    (row.take(0).unwrap(), row.take(1).unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rows_in(replica: &opslive::replica::Replica) -> usize {
    replica.tables().map(|t| t.len()).sum()
}

/// Time for the do-nothing reader to read the binlog from `from` to `to`, and the bytes read.
async fn floor(url: &str, from: &(String, u64), to: &(String, u64)) -> (Duration, u64) {
    let conn = mysql_async::Conn::from_url(url).await.unwrap();
    let started = Instant::now();
    let request = mysql_async::BinlogStreamRequest::new(0x3000_0001).with_filename(from.0.as_bytes()).with_pos(from.1);
    let mut stream = conn.get_binlog_stream(request).await.unwrap();
    let (mut events, mut bytes) = (0u64, 0u64);
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        events += 1;
        bytes += event.header().event_size() as u64;
        // Same file as `to` throughout: the bench writes less than a binlog file holds. The
        // last transaction ends with an XID event at `to`.
        if event.header().event_type_raw() == 16 && event.header().log_pos() as u64 >= to.1 {
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(bytes >= to.1 - from.1, "read {bytes} bytes in {events} events, the binlog grew {}", to.1 - from.1);
    (elapsed, bytes)
}

/// Who follows the binlog in a load phase, and how far it has got.
#[derive(Clone)]
enum Follower {
    /// The do-nothing reader's last event position.
    Floor(Arc<AtomicU64>),
    /// opslive's replica.
    Opslive(tokio::sync::watch::Receiver<Arc<opslive::replica::Replica>>),
}

impl Follower {
    fn at(&self) -> u64 {
        match self {
            Follower::Floor(p) => p.load(Ordering::Acquire),
            Follower::Opslive(v) => v.borrow().applied_position("src").0,
        }
    }
}

/// The do-nothing reader, following from `from` until `stop`, publishing its position.
fn follow_floor(
    url: String,
    from: (String, u64),
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let number: u64 = from.0.rsplit_once('.').unwrap().1.parse().unwrap();
    let at = Arc::new(AtomicU64::new((number << 32) | from.1));
    let published = at.clone();
    let task = tokio::spawn(async move {
        let conn = mysql_async::Conn::from_url(url).await.unwrap();
        let request =
            mysql_async::BinlogStreamRequest::new(0x3000_0002).with_filename(from.0.as_bytes()).with_pos(from.1);
        let mut stream = conn.get_binlog_stream(request).await.unwrap();
        while !stop.load(Ordering::Relaxed) {
            let Ok(Some(Ok(event))) = tokio::time::timeout(Duration::from_millis(100), stream.next()).await else {
                continue;
            };
            if event.header().log_pos() > 0 {
                published.store((number << 32) | event.header().log_pos() as u64, Ordering::Release);
            }
        }
    });
    (at, task)
}

struct Load {
    rows_per_second: f64,
    lags_ms: Vec<f64>,
    catch_up_ms: f64,
}

/// Writers as fast as they go for `secs`, the sampler beside them.
async fn load(
    url: &str,
    follower: Follower,
    writers: usize,
    tx_rows: usize,
    secs: u64,
    next_id: Arc<AtomicU64>,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (url, stop, written, next_id) = (url.to_string(), stop.clone(), written.clone(), next_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let first = next_id.fetch_add(tx_rows as u64, Ordering::Relaxed);
                let values: Vec<String> = (first..first + tx_rows as u64)
                    .map(|id| format!("({id}, {}, 9.99, 'paid', 'order', NOW(6))", id % 100))
                    .collect();
                conn.query_drop(format!("INSERT INTO bench VALUES {}", values.join(","))).await.unwrap();
                written.fetch_add(tx_rows as u64, Ordering::Relaxed);
            }
        }));
    }
    let mut sampler = mysql_async::Conn::from_url(url).await.unwrap();
    let started = Instant::now();
    let mut lags_ms = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        let asked = Instant::now();
        let target = support::mariadb::binlog_end(&mut sampler).await.0;
        while follower.at() < target {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        lags_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20).saturating_sub(asked.elapsed())).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let target = support::mariadb::binlog_end(&mut sampler).await.0;
    let stopped = Instant::now();
    while follower.at() < target {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    lags_ms.sort_by(f64::total_cmp);
    Load {
        rows_per_second: written.load(Ordering::Relaxed) as f64 / seconds,
        lags_ms,
        catch_up_ms: stopped.elapsed().as_secs_f64() * 1000.0,
    }
}

fn report(what: &str, l: &Load) {
    let pct = |p: f64| l.lags_ms[((l.lags_ms.len() as f64 - 1.0) * p) as usize];
    println!(
        "{what}: {:.0} rows/s written; lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples); caught up {:.1} ms after the writers stopped",
        l.rows_per_second,
        pct(0.5),
        pct(0.99),
        l.lags_ms.last().copied().unwrap_or(0.0),
        l.lags_ms.len(),
        l.catch_up_ms
    );
}

/// The load phases on a fresh server: for each transaction size, the floor follows, then opslive.
async fn load_phases() {
    let writers = env_or("MARIADB_BENCH_WRITERS", 4);
    let secs = env_or("MARIADB_BENCH_LOAD_SECS", 10) as u64;
    let server = MariaDbServer::start_with(&["--max-binlog-size=1073741824"]).await;
    let url = server.create_database("shop").await;
    let mut conn = server.connect("shop").await;
    conn.query_drop(TABLE).await.unwrap();
    let next_id = Arc::new(AtomicU64::new(1));
    for tx_rows in [1, 100] {
        let stop = Arc::new(AtomicBool::new(false));
        let from = binlog_end(&mut conn).await;
        let (at, task) = follow_floor(url.clone(), from, stop.clone());
        let floor = load(&url, Follower::Floor(at), writers, tx_rows, secs, next_id.clone()).await;
        stop.store(true, Ordering::Relaxed);
        task.await.unwrap();
        let mut running = start_configured(&toml(&url), None);
        running.wait_for("consistent", |r| r.applied_position("src").0 > 0).await;
        let ours =
            load(&url, Follower::Opslive(running.versions.clone()), writers, tx_rows, secs, next_id.clone()).await;
        let _ = running.stop().await;
        report(&format!("{writers} writers of {tx_rows}-row transactions, {secs} s, do-nothing reader"), &floor);
        report(&format!("{writers} writers of {tx_rows}-row transactions, {secs} s, opslive"), &ours);
        conn.query_drop("TRUNCATE TABLE bench").await.unwrap();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows = env_or("MARIADB_BENCH_ROWS", 500_000);
    let tx_rows = env_or("MARIADB_BENCH_TX_ROWS", 1_000);
    let runs = env_or("MARIADB_BENCH_RUNS", 3);
    let singles = env_or("MARIADB_BENCH_SINGLES", 1_000);
    eprintln!("MariaDB CDC bench: {rows} rows, {tx_rows}-row transactions, {runs} runs");
    let (mut snapshot, mut drain, mut floors) = (Vec::new(), Vec::new(), Vec::new());
    let (mut latencies, mut from_sent) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let server = MariaDbServer::start_with(&["--max-binlog-size=1073741824"]).await;
        let url = server.create_database("shop").await;
        let mut conn = server.connect("shop").await;
        conn.query_drop(TABLE).await.unwrap();
        conn.query_drop(rows_sql(1, rows)).await.unwrap();

        // Snapshot.
        let started = Instant::now();
        let mut running = start_configured(&toml(&url), None);
        running.wait_for("the snapshot", |r| rows_in(r) == rows).await;
        let seconds = started.elapsed().as_secs_f64();
        snapshot.push(rows as f64 / seconds);
        let replica = running.stop().await;

        // Backlog drain, from an empty table's position.
        conn.query_drop("TRUNCATE TABLE bench").await.unwrap();
        let mut running = start_configured(&toml(&url), Some(replica));
        running.wait_for("the truncate", |r| rows_in(r) == 0).await;
        let from = binlog_end(&mut conn).await;
        let replica = running.stop().await;
        for start in (1..=rows).step_by(tx_rows) {
            conn.query_drop(rows_sql(start, (start + tx_rows - 1).min(rows))).await.unwrap();
        }
        let to = binlog_end(&mut conn).await;
        let (f, bytes) = floor(&url, &from, &to).await;
        floors.push(rows as f64 / f.as_secs_f64());
        eprintln!("floor read {:.1} MB of binlog in {:.1} ms", bytes as f64 / 1e6, f.as_secs_f64() * 1000.0);
        let started = Instant::now();
        let mut running = start_configured(&toml(&url), Some(replica));
        running.wait_for("the backlog", |r| rows_in(r) == rows).await;
        drain.push(rows as f64 / started.elapsed().as_secs_f64());

        // Commit → applied, one row at a time.
        if run == 0 {
            for i in 0..singles {
                let id = (rows + 1 + i) as i64;
                let sent = Instant::now();
                conn.query_drop(format!("INSERT INTO bench (id, grp) VALUES ({id}, 1)")).await.unwrap();
                let committed = Instant::now();
                let key = Key(vec![Value::Int8(id)].into());
                running.wait_for("the row", |r| r.tables().any(|t| t.get(&key).is_some())).await;
                latencies.push(committed.elapsed().as_secs_f64() * 1000.0);
                from_sent.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let _ = running.stop().await;
        eprintln!(
            "run {run}: snapshot {:.0} rows/s, drain {:.0} rows/s, floor {:.0} rows/s",
            snapshot[run], drain[run], floors[run]
        );
    }
    latencies.sort_by(f64::total_cmp);
    from_sent.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    load_phases().await;
    let (s, d, f) = (median(snapshot), median(drain), median(floors));
    println!("snapshot: {s:.0} rows/s (median of {runs})");
    println!("backlog drain: {d:.0} rows/s; do-nothing binlog reader {f:.0} rows/s; opslive/floor {:.2}", d / f);
    println!(
        "single-row commits (n = {}): commit returned -> applied p50 {:.2} ms, p99 {:.2} ms; insert sent -> applied p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        pct(&from_sent, 0.5),
        pct(&from_sent, 0.99)
    );
}

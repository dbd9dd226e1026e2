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

#[path = "../tests/support/mod.rs"]
mod support;

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

//! `opslive cdc-bench`: how fast opslive's PostgreSQL CDC drains a backlog, measured beside what
//! bounds it, on the same WAL of a private PostgreSQL:
//!
//! - the **floor**: a consumer of a second slot over the same transport, options and acks,
//!   that reads every message and discards it ([`crate::source::postgres::floor`]);
//! - **opslive**: the source and the replica, as `serve` runs them (decode, apply, publish a
//!   replica version per transaction), resumed from where it stood when the backlog began;
//! - the **ceiling**: PostgreSQL decoding the same WAL in a backend with
//!   `pg_logical_slot_peek_binary_changes`, no network and no client.
//!
//! The backlog is written while neither consumer runs, so each one drains exactly the same
//! transactions from a warm page cache; rounds alternate which of the two goes first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::BenchError;
use super::keep_up::{Bench, CatchUp, Paced, Setting};
use super::walsender::{WalsenderCpu, own_cpu_seconds};
use crate::change::Position;
use crate::change::SourceEvent;
use crate::config::{Config, SecretUrl};
use crate::demo::{LocalPgError, LocalPostgres};
use crate::pipeline::{ApplyLoop, CHANNEL_CAPACITY};
use crate::replica::Replica;
use crate::source::postgres::floor::FloorDrain;
use crate::source::{Resume, SessionKind, SourceStats, Wiring};
use crate::watermark::Watermarks;

pub(super) const SOURCE: &str = "cdc";
pub(super) const FLOOR_SLOT: &str = "cdc_floor";

#[derive(Debug, Clone)]
pub struct CdcOptions {
    /// Rows in each round's backlog.
    pub rows: u64,
    /// Rows per source transaction.
    pub tx_rows: u64,
    pub rounds: usize,
    /// Seconds of each paced step (0: no paced search); the first step's rows per second.
    pub paced_seconds: f64,
    pub paced_start: f64,
    /// Most steps per consumer.
    pub paced_steps: usize,
    /// Rows of the catch-up burst (0: none).
    pub burst_rows: u64,
    /// PostgreSQL's server binaries (default: found on this machine).
    pub pg_bin: Option<std::path::PathBuf>,
    /// Both consumers ask for binary tuples (`binary 'true'`) instead of text.
    pub binary: bool,
}

/// One round: the same backlog drained three ways.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    pub rows: u64,
    pub transactions: u64,
    /// WAL bytes the backlog took.
    pub wal_bytes: u64,
    pub ceiling_seconds: f64,
    pub floor_seconds: f64,
    pub opslive_seconds: f64,
    /// Which consumer drained first.
    pub first: &'static str,
    /// Row messages the floor read, and rows opslive's replica held once drained: both the
    /// backlog's size when every row arrived.
    pub floor_rows: u64,
    pub opslive_rows: u64,
    /// This process's resident memory before opslive's drain and after it, with the backlog's
    /// rows held by the replica.
    pub rss_before: u64,
    pub rss_after: u64,
    /// The replica's own estimate of what its rows take.
    pub replica_bytes: u64,
    /// What PostgreSQL holds the same rows in: the table's heap and its primary key index.
    pub heap_bytes: u64,
    pub index_bytes: u64,
    /// CPU seconds (user + system) of each drain: the bench process's (the floor's or
    /// opslive's work) and the walsender's that served it.
    pub floor_cpu_seconds: f64,
    pub floor_walsender_cpu_seconds: f64,
    pub opslive_cpu_seconds: f64,
    pub opslive_walsender_cpu_seconds: f64,
}

impl Round {
    pub fn rate(&self, seconds: f64) -> f64 {
        self.rows as f64 / seconds
    }

    /// opslive's drain rate over the floor's.
    pub fn ratio(&self) -> f64 {
        self.floor_seconds / self.opslive_seconds
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CdcReport {
    pub rows: u64,
    pub tx_rows: u64,
    pub binary: bool,
    pub rounds: Vec<Round>,
    pub paced: Option<Paced>,
    pub catch_up: Option<CatchUp>,
}

impl CdcReport {
    fn median(&self, f: impl Fn(&Round) -> f64) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "backlog drain: {} rows in transactions of {} rows, {} round(s) (rows/s; median of rounds)\n",
            self.rows,
            self.tx_rows,
            self.rounds.len()
        );
        out.push_str("  round  first    ceiling (backend)  floor (discard)  opslive   opslive/floor\n");
        for (i, r) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "  {:>5}  {:<7}  {:>17.0}  {:>15.0}  {:>7.0}  {:>13.2}\n",
                i + 1,
                r.first,
                r.rate(r.ceiling_seconds),
                r.rate(r.floor_seconds),
                r.rate(r.opslive_seconds),
                r.ratio()
            ));
        }
        out.push_str(&format!(
            "  median          {:>17.0}  {:>15.0}  {:>7.0}  {:>13.2}\n",
            self.median(|r| r.rate(r.ceiling_seconds)),
            self.median(|r| r.rate(r.floor_seconds)),
            self.median(|r| r.rate(r.opslive_seconds)),
            self.median(Round::ratio)
        ));
        let wal = self.median(|r| r.wal_bytes as f64 / r.rows as f64);
        out.push_str(&format!("  WAL per row: {wal:.0} bytes\n"));
        let per_row = |f: fn(&Round) -> f64| self.median(|r| f(r) / r.rows as f64 * 1e6);
        out.push_str(&format!(
            "  CPU per row ({} tuples; µs, median): floor {:.2} + its walsender {:.2}; opslive {:.2} + its walsender {:.2}\n",
            if self.binary { "binary" } else { "text" },
            per_row(|r| r.floor_cpu_seconds),
            per_row(|r| r.floor_walsender_cpu_seconds),
            per_row(|r| r.opslive_cpu_seconds),
            per_row(|r| r.opslive_walsender_cpu_seconds),
        ));
        // The first round fills a fresh table and a replica that never held rows: later rounds
        // reuse memory the allocator kept and a heap that has dead tuples in it.
        if let Some(first) = self.rounds.first() {
            let per_row = |bytes: f64| bytes / first.opslive_rows.max(1) as f64;
            out.push_str(&format!(
                "  memory per row held (round 1): opslive RSS growth {:.0} B, replica estimate {:.0} B; \
                 PostgreSQL heap {:.0} B, heap + primary key {:.0} B\n",
                per_row(first.rss_after as f64 - first.rss_before as f64),
                per_row(first.replica_bytes as f64),
                per_row(first.heap_bytes as f64),
                per_row((first.heap_bytes + first.index_bytes) as f64),
            ));
        }
        if let Some(paced) = &self.paced {
            out.push_str(&paced.render(self.tx_rows));
        }
        if let Some(c) = &self.catch_up {
            out.push_str(&format!(
                "catch-up: a burst of {} rows in transactions of {}, from its first write to the consumer having its last commit\n\
                 \x20 floor {:.2} s (burst written in {:.2} s), opslive {:.2} s (written in {:.2} s): opslive/floor {:.2}\n",
                c.rows,
                self.tx_rows,
                c.floor_seconds,
                c.floor_write_seconds,
                c.opslive_seconds,
                c.opslive_write_seconds,
                c.ratio()
            ));
        }
        if let Ok(memory) = super::usage::memory(None) {
            out.push_str(&format!("  peak RSS of this process: {:.0} MiB\n", memory.hwm as f64 / 1048576.0));
        }
        out
    }
}

pub(super) fn db(e: impl std::fmt::Display) -> BenchError {
    BenchError::Database(e.to_string())
}

/// Runs the rounds on a private PostgreSQL, started and stopped here.
pub async fn run(options: CdcOptions, cancel: CancellationToken) -> Result<CdcReport, BenchError> {
    if options.rows == 0 || options.tx_rows == 0 {
        return Err(BenchError::Options("rows and tx-rows must be above 0".into()));
    }
    if options.rounds == 0 && options.paced_seconds <= 0.0 && options.burst_rows == 0 {
        return Err(BenchError::Options("nothing to run: rounds, paced seconds and burst rows are all 0".into()));
    }
    let bin = match &options.pg_bin {
        Some(dir) => LocalPostgres::binaries_in(dir).map_err(crate::demo::DemoError::from)?,
        None => LocalPostgres::find_binaries().map_err(crate::demo::DemoError::from)?,
    };
    let root = std::env::temp_dir().join(format!("opslive-cdc-bench-{}", std::process::id()));
    let port = crate::demo::free_or_any(0);
    eprintln!("starting a private PostgreSQL on port {port} in {} …", root.display());
    let started = tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            let mut pg = LocalPostgres::create(bin, &root, port)?;
            // fsync off: the run measures decoding and transport, not this machine's disk.
            pg.start_with(&[("fsync", "off"), ("max_wal_size", "4GB")])?;
            Ok::<_, LocalPgError>(pg)
        }
    })
    .await
    .expect("the database setup does not panic")
    .map_err(crate::demo::DemoError::from)?;
    let outcome = tokio::select! {
        r = rounds(&options, &started) => r,
        () = cancel.cancelled() => Err(BenchError::Interrupted),
    };
    tokio::task::spawn_blocking(move || drop(started)).await.expect("stopping the database does not panic");
    let _ = std::fs::remove_dir_all(&root);
    outcome
}

async fn rounds(options: &CdcOptions, pg: &LocalPostgres) -> Result<CdcReport, BenchError> {
    let admin = connect(&pg.url("postgres")).await?;
    admin.batch_execute("CREATE DATABASE cdc").await.map_err(db)?;
    let url = pg.url("cdc");
    let sql = connect(&url).await?;
    sql.batch_execute(
        "CREATE TABLE bench_rows (id bigint PRIMARY KEY, account int NOT NULL, status text NOT NULL, \
         amount numeric(12,2) NOT NULL, note text, created_at timestamptz NOT NULL)",
    )
    .await
    .map_err(db)?;
    let config = Config::from_toml(&format!(
        "[app_database]\nurl = \"postgres://unused@127.0.0.1:1/opslive\"\n\
         [sources.{SOURCE}]\nkind = \"postgres\"\nurl = \"{url}\"\nheartbeat_seconds = 0\nbinary = {}\n\
         [[sources.{SOURCE}.tables]]\ntable = \"bench_rows\"\n",
        options.binary
    ))
    .map_err(|e| BenchError::Options(e.to_string()))?;
    let config = Arc::new(config);
    let publication = format!("opslive_{SOURCE}");
    let opslive_slot = format!("opslive_{SOURCE}");

    // opslive's slot and snapshot first (the table is empty), then the floor's slot beside it.
    let mut replica = Replica::new();
    let (r, _) = drain(&config, replica, None).await?;
    replica = r;
    settle(&sql, &opslive_slot, replica.applied_position(SOURCE)).await?;
    sql.batch_execute(&format!("SELECT pg_create_logical_replication_slot('{FLOOR_SLOT}', 'pgoutput')"))
        .await
        .map_err(db)?;

    let mut report = CdcReport {
        rows: options.rows,
        tx_rows: options.tx_rows,
        binary: options.binary,
        rounds: Vec::new(),
        paced: None,
        catch_up: None,
    };
    let mut next_id = 1i64;
    for round in 0..options.rounds {
        let before = wal_lsn(&sql).await?;
        eprintln!("round {}: writing {} rows …", round + 1, options.rows);
        let (transactions, target) = write_backlog(&sql, &mut next_id, options.rows, options.tx_rows).await?;
        // Emptied in the same way each round, outside the measured WAL, so the replica stays small.
        let ceiling = ceiling(&sql, &publication, options.binary).await?;
        let floor_first = round % 2 == 0;
        let secure = SecretUrl::parse(&url).map_err(|e| BenchError::Options(e.to_string()))?;
        let mut floor_drain = None;
        if floor_first {
            let drained = with_cpu(&url, FLOOR_SLOT, floor(&secure, &publication, target, options.binary)).await?;
            settle(&sql, FLOOR_SLOT, drained.0.end).await?;
            floor_drain = Some(drained);
        }
        eprintln!("round {}: opslive draining …", round + 1);
        let rss_before = resident();
        let ((r, opslive), opslive_cpu, opslive_walsender_cpu) =
            with_cpu(&url, &opslive_slot, drain(&config, replica, Some(target))).await?;
        replica = r;
        let rss_after = resident();
        let (heap_bytes, index_bytes) = relation_sizes(&sql).await?;
        settle(&sql, &opslive_slot, replica.applied_position(SOURCE)).await?;
        let (floor_drain, floor_cpu, floor_walsender_cpu) = match floor_drain {
            Some(d) => d,
            None => {
                let d = with_cpu(&url, FLOOR_SLOT, floor(&secure, &publication, target, options.binary)).await?;
                settle(&sql, FLOOR_SLOT, d.0.end).await?;
                d
            }
        };
        let opslive_rows = config
            .registry()
            .ok()
            .and_then(|reg| reg.by_name("bench_rows").map(|spec| spec.id))
            .and_then(|id| replica.table(id))
            .map_or(0, |t| t.len() as u64);
        report.rounds.push(Round {
            rows: options.rows,
            transactions,
            wal_bytes: target.0 - before.0,
            ceiling_seconds: ceiling,
            floor_seconds: floor_drain.elapsed.as_secs_f64(),
            opslive_seconds: opslive.as_secs_f64(),
            first: if floor_first { "floor" } else { "opslive" },
            floor_rows: floor_drain.rows,
            opslive_rows,
            rss_before,
            rss_after,
            replica_bytes: replica.tables().map(|t| t.approx_bytes() as u64).sum(),
            heap_bytes,
            index_bytes,
            floor_cpu_seconds: floor_cpu,
            floor_walsender_cpu_seconds: floor_walsender_cpu,
            opslive_cpu_seconds: opslive_cpu,
            opslive_walsender_cpu_seconds: opslive_walsender_cpu,
        });
        // The rows go again (not measured: both consumers drain the deletes before the next
        // backlog's clock starts), so every round drains into a replica of the same size.
        let cleared = last_commit(&sql, "DELETE FROM bench_rows").await?;
        let (r, _) = drain(&config, replica, Some(cleared)).await?;
        replica = r;
        settle(&sql, &opslive_slot, replica.applied_position(SOURCE)).await?;
        let drained = floor(&secure, &publication, cleared, options.binary).await?;
        settle(&sql, FLOOR_SLOT, drained.end).await?;
        eprint!("{}", report.render());
    }
    let secure = SecretUrl::parse(&url).map_err(|e| BenchError::Options(e.to_string()))?;
    let setting = Setting {
        sql: &sql,
        url: &secure,
        publication: &publication,
        opslive_slot: &opslive_slot,
        config: &config,
        binary: options.binary,
    };
    // The rounds' last transaction was a large DELETE: the keep-up steps start past it.
    super::keep_up::fresh_restart_points(&setting).await?;
    let mut bench = Bench { setting, replica, next_id };
    if options.paced_seconds > 0.0 {
        report.paced =
            Some(bench.paced(options.tx_rows, options.paced_seconds, options.paced_start, options.paced_steps).await?);
    }
    if options.burst_rows > 0 {
        report.catch_up = Some(bench.catch_up(options.burst_rows, options.tx_rows).await?);
    }
    Ok(report)
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, BenchError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(db)?;
    tokio::spawn(connection);
    Ok(client)
}

fn resident() -> u64 {
    super::usage::memory(None).map_or(0, |m| m.rss)
}

/// The bench table's heap and index sizes, in bytes.
async fn relation_sizes(sql: &tokio_postgres::Client) -> Result<(u64, u64), BenchError> {
    let row =
        sql.query_one("SELECT pg_relation_size('bench_rows'), pg_indexes_size('bench_rows')", &[]).await.map_err(db)?;
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

async fn wal_lsn(sql: &tokio_postgres::Client) -> Result<Position, BenchError> {
    let lsn: String = sql.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.map_err(db)?.get(0);
    Position::parse(&lsn).ok_or_else(|| db(format!("not an LSN: {lsn}")))
}

/// Inserts `rows` rows in transactions of `tx_rows`, sent many transactions per round trip;
/// returns the transactions and a position inside the last one (see [`last_commit`]).
pub(super) async fn write_backlog(
    sql: &tokio_postgres::Client,
    next_id: &mut i64,
    rows: u64,
    tx_rows: u64,
) -> Result<(u64, Position), BenchError> {
    let mut left = rows;
    let mut transactions = 0;
    while left > tx_rows {
        let mut batch = String::new();
        // About 20,000 rows per round trip, whatever the transaction size.
        let mut in_batch = 0;
        while left > tx_rows && in_batch < 20_000 {
            batch.push_str(&format!("BEGIN; {}; COMMIT;", insert_rows(next_id, tx_rows)));
            left -= tx_rows;
            in_batch += tx_rows;
            transactions += 1;
        }
        sql.batch_execute(&batch).await.map_err(db)?;
    }
    let target = last_commit(sql, &insert_rows(next_id, left)).await?;
    Ok((transactions + 1, target))
}

/// An insert of `n` rows from `next_id` on (which it moves past them).
pub(super) fn insert_rows(next_id: &mut i64, n: u64) -> String {
    let (from, to) = (*next_id, *next_id + n as i64 - 1);
    *next_id += n as i64;
    format!(
        "INSERT INTO bench_rows SELECT g, g % 5000, 'open', (g % 100000) * 0.01, 'order ' || g, now() \
         FROM generate_series({from}, {to}) g"
    )
}

/// Runs `statement` in a transaction and returns a WAL position read inside it, before its
/// commit: a consumer has read the transaction exactly when it has read past this position
/// (a position read after the commit may lie beyond the last commit, where no commit comes).
pub(super) async fn last_commit(sql: &tokio_postgres::Client, statement: &str) -> Result<Position, BenchError> {
    sql.batch_execute(&format!("BEGIN; {statement}")).await.map_err(db)?;
    let inside = wal_lsn(sql).await;
    sql.batch_execute("COMMIT").await.map_err(db)?;
    inside
}

/// PostgreSQL's own decoding of the floor slot's pending WAL, in a backend (peeked: the slot
/// does not move), with the consumers' tuple form: what the walsender's side costs alone.
async fn ceiling(sql: &tokio_postgres::Client, publication: &str, binary: bool) -> Result<f64, BenchError> {
    let started = Instant::now();
    sql.query_one(
        &format!(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('{FLOOR_SLOT}', NULL, NULL, \
             'proto_version', '1', 'publication_names', '{publication}', 'binary', '{binary}')"
        ),
        &[],
    )
    .await
    .map_err(db)?;
    Ok(started.elapsed().as_secs_f64())
}

async fn floor(url: &SecretUrl, publication: &str, until: Position, binary: bool) -> Result<FloorDrain, BenchError> {
    crate::source::postgres::floor::drain(url, FLOOR_SLOT, publication, until, binary)
        .await
        .map_err(|e| BenchError::Database(e.to_string()))
}

/// Runs one drain of `slot`, and says what it cost in CPU seconds: this process (the consumer)
/// and the walsender that served it.
async fn with_cpu<T>(
    url: &str,
    slot: &str,
    drain: impl std::future::Future<Output = Result<T, BenchError>>,
) -> Result<(T, f64, f64), BenchError> {
    let walsender = WalsenderCpu::watch(url, slot).await.map_err(db)?;
    let before = own_cpu_seconds();
    let drained = drain.await;
    let own = own_cpu_seconds() - before;
    let walsender = walsender.finish().await.unwrap_or(f64::NAN);
    Ok((drained?, own, walsender))
}

/// Moves `slot` to `to` once its session has let go of it: a consumer's last acknowledgement
/// may not reach the server before it stops, and the next round must not read (or skip) this
/// round's transactions again.
pub(super) async fn settle(sql: &tokio_postgres::Client, slot: &str, to: Position) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = sql
            .query_one(
                "SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(db)?;
        let (active, confirmed): (bool, String) = (row.get(0), row.get(1));
        if Position::parse(&confirmed).is_some_and(|c| c >= to) {
            return Ok(());
        }
        if !active {
            sql.execute("SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)", &[&slot, &to.to_string()])
                .await
                .map_err(db)?;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(db(format!("slot {slot} is still in use 30 s after its consumer stopped")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs opslive's source and replica from `replica` until it has applied `until` (until it is
/// consistent, with `None`), and stops it; returns the replica and the time from start.
async fn drain(
    config: &Arc<Config>,
    replica: Replica,
    until: Option<Position>,
) -> Result<(Replica, Duration), BenchError> {
    let until = match until {
        Some(target) => Until::At(watch::channel(Some(target)).1),
        None => Until::Consistent,
    };
    let consumed = consume(config, replica, until).await?;
    Ok((consumed.replica, consumed.elapsed))
}

/// Where a run of opslive's source stops.
pub(super) enum Until {
    /// Once the initial snapshot is in.
    Consistent,
    /// Once a commit at or past the position is applied; `None` while the position is not
    /// known yet (the load is still being written).
    At(watch::Receiver<Option<Position>>),
}

/// What a run of opslive's source did.
pub(super) struct Consumed {
    pub replica: Replica,
    /// From start to the target.
    pub elapsed: Duration,
    pub reached_at: Instant,
    /// Each applied transaction's commit time (µs since 1970) and lag: commit to applied.
    pub lags_micros: Vec<(i64, i64)>,
}

/// Runs opslive's source and replica from `replica` until `until`, and stops it.
pub(super) async fn consume(config: &Arc<Config>, replica: Replica, mut until: Until) -> Result<Consumed, BenchError> {
    let registry = Arc::new(config.registry().map_err(|e| BenchError::Options(e.to_string()))?);
    let watermarks = Arc::new(Watermarks::default());
    let marks = std::collections::HashMap::from([(Arc::from(SOURCE), watermarks.clone())]);
    let (mut apply, mut versions) = ApplyLoop::starting_from(replica, marks);
    apply.memory = Arc::new(crate::tx_memory::TxMemory::new(config.transactions.buffer_bytes));
    let stats = Arc::new(SourceStats::default());
    let resume = {
        let (versions, registry) = (versions.clone(), registry.clone());
        Arc::new(move || Resume::from_replica(&versions.borrow(), &registry, SOURCE))
    };
    let wiring = Wiring {
        registry: registry.clone(),
        watermarks,
        stats: stats.clone(),
        requests: Arc::default(),
        durable: true,
        resume,
        session: SessionKind::Serving,
        memory: apply.memory.clone(),
        take_over: false,
    };
    let started = Instant::now();
    let source = crate::source::open(SOURCE, &config.sources[SOURCE], wiring)
        .map_err(|e| BenchError::Database(e.to_string()))?;
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let cancel = CancellationToken::new();
    let supervised = tokio::spawn(crate::source::supervise(SOURCE.into(), source, stats, tx, cancel.clone()));
    let lags = Arc::new(std::sync::Mutex::new(Vec::new()));
    let applier = tokio::spawn(apply.run(rx, Vec::new(), {
        let lags = lags.clone();
        move |event, applied| {
            let tx = match event {
                SourceEvent::Transaction(tx) => Some(tx),
                SourceEvent::Part(part) if part.last => Some(&part.tx),
                _ => None,
            };
            if let Some(tx) = tx
                && !applied.skipped
            {
                let lag = (chrono::Utc::now().timestamp_micros() - tx.commit_ts).max(0);
                lags.lock().unwrap_or_else(|p| p.into_inner()).push((tx.commit_ts, lag));
            }
        }
    }));
    let reached = |r: &Replica, until: &Until| match until {
        Until::At(target) => target.borrow().is_some_and(|target| r.applied_position(SOURCE) >= target),
        Until::Consistent => r.applied_position(SOURCE) > Position::ZERO,
    };
    let outcome = loop {
        if reached(&versions.borrow_and_update(), &until) {
            break Ok((started.elapsed(), Instant::now()));
        }
        if supervised.is_finished() {
            break Err(BenchError::Database("the source stopped before the backlog was drained".into()));
        }
        // A target given once, its sender gone, is final: nothing more to wait for. Gone
        // without one, the load was never written.
        let target_known = async {
            match &mut until {
                Until::At(target) => match target.changed().await {
                    Ok(()) => true,
                    Err(_) if target.borrow().is_none() => false,
                    Err(_) => std::future::pending().await,
                },
                Until::Consistent => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = versions.changed() => if changed.is_err() {
                break Err(BenchError::Database("the apply loop ended".into()));
            },
            known = target_known => if !known {
                break Err(BenchError::Database("the load stopped before its last commit".into()));
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    cancel.cancel();
    let source_result = supervised.await.expect("the source task does not panic");
    let replica = applier.await.expect("the apply loop does not panic");
    let (elapsed, reached_at) = outcome?;
    source_result.map_err(|e| BenchError::Database(e.to_string()))?;
    let lags_micros = std::mem::take(&mut *lags.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Consumed { replica, elapsed, reached_at, lags_micros })
}

//! Keeping up with a live load, for `opslive cdc-bench`: the drain of a backlog says how fast a
//! consumer reads, these say whether it stays current while the load is written.
//!
//! - **Paced rate**: a writer commits transactions at a steady rate for a fixed time while the
//!   consumer follows; each commit's lag is the time from its commit on the server to its
//!   arrival (the floor) or its application to the replica (opslive). The rate rises by half
//!   each step until the lag's p99 passes a second or the writer cannot hold the rate; the
//!   highest rate that kept p99 under a second is the consumer's.
//! - **Catch-up**: a burst written as fast as the server takes it, with the consumer following;
//!   the time from the burst's first write until the consumer has its last commit.
//!
//! The floor and opslive each get the same load on their own slot, one after the other, so
//! neither competes with the other for the two cores; the idle slot is moved past each step's
//! WAL while nothing is measured.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::BenchError;
use super::cdc::{self, Consumed, Until};
use super::latency::{LatencyRecorder, Percentiles};
use crate::change::Position;
use crate::config::SecretUrl;
use crate::replica::Replica;
use crate::source::postgres::floor::FloorDrain;

/// Lag p99 a paced rate must stay under.
const LAG_LIMIT_MS: f64 = 1000.0;
/// Commits in a step's first second are left out of its lags: both consumers connect then.
const WARM_UP_MICROS: i64 = 1_000_000;
/// A step whose writer fell this far short of its rate ends the search: the server, not the
/// consumer, is what stopped it.
const WRITER_SHORTFALL: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consumer {
    Floor,
    Opslive,
}

impl Consumer {
    pub fn name(self) -> &'static str {
        match self {
            Consumer::Floor => "floor",
            Consumer::Opslive => "opslive",
        }
    }
}

/// One paced step of one consumer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PacedStep {
    pub consumer: Consumer,
    /// Rows per second asked of the writer, and what it committed.
    pub asked: f64,
    pub achieved: f64,
    pub lag: Percentiles,
}

impl PacedStep {
    fn kept_up(&self) -> bool {
        self.lag.samples > 0 && self.lag.p99_ms < LAG_LIMIT_MS
    }

    fn writer_held(&self) -> bool {
        self.achieved >= self.asked * WRITER_SHORTFALL
    }
}

/// The paced search of both consumers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Paced {
    pub seconds: f64,
    pub steps: Vec<PacedStep>,
}

impl Paced {
    /// The highest rate written at which `consumer` kept p99 lag under a second: what was
    /// written, not asked, since a consumer that takes more of the machine slows the writer.
    pub fn best(&self, consumer: Consumer) -> Option<f64> {
        self.steps.iter().filter(|s| s.consumer == consumer && s.kept_up()).map(|s| s.achieved).reduce(f64::max)
    }

    pub fn render(&self, tx_rows: u64) -> String {
        let mut out = format!(
            "paced rate: transactions of {tx_rows} rows, {} s a step, commit-to-consumer lag (first second left out)\n",
            self.seconds
        );
        out.push_str("  consumer  asked rows/s  written rows/s  lag p50 ms  lag p99 ms  lag max ms\n");
        for s in &self.steps {
            out.push_str(&format!(
                "  {:<8}  {:>12.0}  {:>14.0}  {:>10.1}  {:>10.1}  {:>10.1}\n",
                s.consumer.name(),
                s.asked,
                s.achieved,
                s.lag.p50_ms,
                s.lag.p99_ms,
                s.lag.max_ms
            ));
        }
        let best = |c: Consumer| match self.best(c) {
            Some(rate) if self.writer_bound(c) => format!("{rate:.0} rows/s or more (the writer could go no faster)"),
            Some(rate) => format!("{rate:.0} rows/s"),
            None => "none of the rates tried".into(),
        };
        out.push_str(&format!(
            "  highest rate with lag p99 under 1 s: floor {}, opslive {}\n",
            best(Consumer::Floor),
            best(Consumer::Opslive)
        ));
        if let (Some(floor), Some(opslive)) = (self.best(Consumer::Floor), self.best(Consumer::Opslive)) {
            out.push_str(&format!("  opslive/floor {:.2}\n", opslive / floor));
        }
        out
    }

    /// Whether `consumer`'s search ended because the writer could not go faster (its best rate
    /// is then a lower bound).
    pub fn writer_bound(&self, consumer: Consumer) -> bool {
        self.steps.iter().rfind(|s| s.consumer == consumer).is_some_and(|s| !s.writer_held())
    }
}

/// A burst and how long each consumer took to have all of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CatchUp {
    pub rows: u64,
    pub floor_write_seconds: f64,
    pub floor_seconds: f64,
    pub opslive_write_seconds: f64,
    pub opslive_seconds: f64,
}

impl CatchUp {
    /// opslive's catch-up time over the floor's: at most 1.2 is the target.
    pub fn ratio(&self) -> f64 {
        self.opslive_seconds / self.floor_seconds
    }
}

/// What every step uses and does not change.
pub(super) struct Setting<'a> {
    pub sql: &'a tokio_postgres::Client,
    pub url: &'a SecretUrl,
    pub publication: &'a str,
    pub opslive_slot: &'a str,
    pub config: &'a std::sync::Arc<crate::config::Config>,
    /// Whether the floor asks for binary tuples (opslive's config says it for opslive).
    pub binary: bool,
}

/// The bench's state across steps: opslive's replica and the next row id.
pub(super) struct Bench<'a> {
    pub setting: Setting<'a>,
    pub replica: Replica,
    pub next_id: i64,
}

impl Bench<'_> {
    /// Raises the paced rate for each consumer until its lag p99 passes a second.
    pub async fn paced(
        &mut self,
        tx_rows: u64,
        seconds: f64,
        start: f64,
        most_steps: usize,
    ) -> Result<Paced, BenchError> {
        let mut paced = Paced { seconds, steps: Vec::new() };
        for consumer in [Consumer::Floor, Consumer::Opslive] {
            let mut rate = start;
            for _ in 0..most_steps {
                eprintln!("paced: {} at {rate:.0} rows/s for {seconds} s …", consumer.name());
                let step = self.paced_step(consumer, rate, tx_rows, seconds).await?;
                eprintln!(
                    "paced: {} at {rate:.0} rows/s (written {:.0}): lag p50 {:.1} ms, p99 {:.1} ms",
                    consumer.name(),
                    step.achieved,
                    step.lag.p50_ms,
                    step.lag.p99_ms
                );
                let go_on = step.kept_up() && step.writer_held();
                paced.steps.push(step);
                if !go_on {
                    break;
                }
                rate *= 1.5;
            }
        }
        Ok(paced)
    }

    async fn paced_step(
        &mut self,
        consumer: Consumer,
        rate: f64,
        tx_rows: u64,
        seconds: f64,
    ) -> Result<PacedStep, BenchError> {
        let (target, until) = watch::channel(None);
        let setting = &self.setting;
        let following = follow(setting, &mut self.replica, consumer, until);
        let writing = async {
            let written = write_paced(setting.sql, self.next_id, rate, tx_rows, seconds).await;
            if let Ok((_, last)) = &written {
                target.send_replace(Some(*last));
            }
            written
        };
        let (followed, written) = tokio::join!(following, writing);
        let ((rows, _), (_, lags)) = (written?, followed?);
        self.next_id += rows as i64;
        let started = lags.first().map_or(0, |(committed, _)| *committed);
        let kept: Vec<u64> = lags
            .iter()
            .filter(|(committed, _)| *committed >= started + WARM_UP_MICROS)
            .map(|(_, lag)| *lag as u64)
            .collect();
        let recorder = LatencyRecorder::new(1);
        recorder.record(0, &kept);
        self.clear().await?;
        Ok(PacedStep { consumer, asked: rate, achieved: rows as f64 / seconds, lag: recorder.summary() })
    }

    /// Writes a burst of `rows` as fast as the server takes it while each consumer follows.
    pub async fn catch_up(&mut self, rows: u64, tx_rows: u64) -> Result<CatchUp, BenchError> {
        let mut times = Vec::new();
        for consumer in [Consumer::Floor, Consumer::Opslive] {
            eprintln!("catch-up: {} following a burst of {rows} rows …", consumer.name());
            let (target, until) = watch::channel(None);
            let setting = &self.setting;
            let following = follow(setting, &mut self.replica, consumer, until);
            let first_id = self.next_id;
            let writing = async {
                // The consumer connects and goes idle first: the burst meets a running consumer.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let began = Instant::now();
                let mut next_id = first_id;
                let written = cdc::write_backlog(setting.sql, &mut next_id, rows, tx_rows).await;
                if let Ok((_, last)) = &written {
                    target.send_replace(Some(*last));
                }
                written.map(|_| (began, began.elapsed()))
            };
            let (followed, written) = tokio::join!(following, writing);
            let ((began, write_time), (reached_at, _)) = (written?, followed?);
            self.next_id += rows as i64;
            self.clear().await?;
            times.push((write_time.as_secs_f64(), reached_at.saturating_duration_since(began).as_secs_f64()));
        }
        Ok(CatchUp {
            rows,
            floor_write_seconds: times[0].0,
            floor_seconds: times[0].1,
            opslive_write_seconds: times[1].0,
            opslive_seconds: times[1].1,
        })
    }

    /// Deletes the step's rows, unmeasured: opslive's replica applies the DELETE, and both
    /// slots are moved past it (and past the step's WAL the idle one did not read), so the next
    /// step starts from an empty table and two slots with nothing pending.
    async fn clear(&mut self) -> Result<(), BenchError> {
        let s = &self.setting;
        let cleared = cdc::last_commit(s.sql, "DELETE FROM bench_rows").await?;
        let until = Until::At(watch::channel(Some(cleared)).1);
        self.replica = cdc::consume(s.config, std::mem::take(&mut self.replica), until).await?.replica;
        // Released by its session before the slots are moved.
        cdc::settle(s.sql, s.opslive_slot, self.replica.applied_position(cdc::SOURCE)).await?;
        fresh_restart_points(s).await
    }
}

/// Moves both (idle) slots' restart points to the present.
pub(super) async fn fresh_restart_points(s: &Setting<'_>) -> Result<(), BenchError> {
    // A slot's session starts decoding at its restart point, which stays behind the last large
    // transaction until a snapshot of running transactions comes after it: without this, the
    // next step's consumer would first decode the DELETE again, unseen, and its first commits
    // would wait for it. A checkpoint logs that snapshot; moving both slots past it moves their
    // restart points there.
    s.sql.batch_execute("CHECKPOINT").await.map_err(cdc::db)?;
    for slot in [s.opslive_slot, cdc::FLOOR_SLOT] {
        s.sql
            .execute("SELECT pg_replication_slot_advance($1, pg_current_wal_insert_lsn())", &[&slot])
            .await
            .map_err(cdc::db)?;
    }
    Ok(())
}

/// Runs `consumer` until `until`; returns when it reached it and each commit's time and lag.
async fn follow(
    s: &Setting<'_>,
    replica: &mut Replica,
    consumer: Consumer,
    until: watch::Receiver<Option<Position>>,
) -> Result<(Instant, Vec<(i64, i64)>), BenchError> {
    match consumer {
        Consumer::Floor => {
            let FloorDrain { reached_at, lags_micros, end, .. } =
                crate::source::postgres::floor::follow(s.url, cdc::FLOOR_SLOT, s.publication, until, s.binary)
                    .await
                    .map_err(|e| BenchError::Database(e.to_string()))?;
            cdc::settle(s.sql, cdc::FLOOR_SLOT, end).await?;
            Ok((reached_at, lags_micros))
        }
        Consumer::Opslive => {
            let Consumed { replica: after, reached_at, lags_micros, .. } =
                cdc::consume(s.config, std::mem::take(replica), Until::At(until)).await?;
            *replica = after;
            cdc::settle(s.sql, s.opslive_slot, replica.applied_position(cdc::SOURCE)).await?;
            Ok((reached_at, lags_micros))
        }
    }
}

/// Commits `rate` rows a second in transactions of `tx_rows` for `seconds`, in batches of the
/// transactions due every 10 ms; returns the rows written and a position inside the last
/// transaction (see [`cdc::last_commit`]).
async fn write_paced(
    sql: &tokio_postgres::Client,
    first_id: i64,
    rate: f64,
    tx_rows: u64,
    seconds: f64,
) -> Result<(u64, Position), BenchError> {
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_id = first_id;
    let mut rows = 0u64;
    loop {
        tick.tick().await;
        let elapsed = began.elapsed().as_secs_f64();
        if elapsed >= seconds {
            break;
        }
        let due = (elapsed * rate) as u64;
        let mut batch = String::new();
        // A batch is capped, so a writer that falls behind shows it instead of catching up
        // in one huge statement.
        while rows + tx_rows <= due && batch.len() < 1 << 20 {
            batch.push_str(&format!("BEGIN; {}; COMMIT;", cdc::insert_rows(&mut next_id, tx_rows)));
            rows += tx_rows;
        }
        if !batch.is_empty() {
            sql.batch_execute(&batch).await.map_err(cdc::db)?;
        }
    }
    let last = cdc::last_commit(sql, &cdc::insert_rows(&mut next_id, tx_rows)).await?;
    Ok((rows + tx_rows, last))
}

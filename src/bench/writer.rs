//! The paced writer: single-row autocommit inserts into `orders` at an even rate.
//!
//! Change `n` is due at `start + n / rate`. A load that comes in bursts would measure the burst
//! (a queue in the server, then idle) rather than the rate, and tokio's timer rounds to whole
//! milliseconds — at 1,000 changes a second that is the whole interval. So a plain thread keeps
//! the schedule with `thread::sleep` (tens of microseconds off on Linux) and hands each due change
//! to whichever of a few connections is free: one connection alone cannot commit 1,000 times a
//! second with a round trip and a WAL flush each. If the connections fall behind, changes queue
//! and go as fast as they can; the report gives the rate achieved.
//!
//! The writer has a thread and a runtime of its own: on the runtime of a thousand clients, the
//! task whose commit just returned would wait its turn behind their frames before it could note
//! the instant, which would move latencies by the clients' backlog (and the schedule with it).
//!
//! Each row's id is chosen here (`OVERRIDING SYSTEM VALUE`), from a range reserved beforehand,
//! so a client can tell which change a row is from the row alone (see `ledger`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::BenchError;
use super::ledger::Ledger;
use super::scenario::Plan;

const INSERT: &str = "INSERT INTO public.orders \
     (id, channel, customer_id, status, total, currency, warehouse_id, region, item_count) \
     OVERRIDING SYSTEM VALUE VALUES ($1, 'web', $2, $3, 19.90, 'EUR', $4, $5, 1)";

/// When each change is due.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    rate: f64,
}

impl Pacer {
    pub fn new(start: Instant, rate: f64) -> Pacer {
        assert!(rate > 0.0 && rate.is_finite(), "a positive rate");
        Pacer { start, rate }
    }

    /// The instant change `n` (from 0) is due.
    pub fn due(&self, n: usize) -> Instant {
        self.start + Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// How many changes are due in `span` from the start.
    pub fn changes_in(&self, span: Duration) -> usize {
        (span.as_secs_f64() * self.rate).round() as usize
    }
}

/// What the writer did.
#[derive(Debug, Default, Clone)]
pub struct WriterStats {
    pub started: Option<Instant>,
    pub finished: Option<Instant>,
    /// The latest a change was sent after its due time.
    pub max_behind: Duration,
    pub errors: Vec<String>,
}

/// The paced writer: the plan's changes on `connections` connections to `url`, each due when
/// `pacer` says; stops early on `cancel`.
pub struct Writer {
    pub url: String,
    pub connections: usize,
    pub plan: Arc<Plan>,
    pub ledger: Arc<Ledger>,
    pub pacer: Pacer,
    pub cancel: CancellationToken,
}

impl Writer {
    /// [`Writer::run`] on a thread and a current-thread runtime of its own; its outcome comes
    /// through the receiver.
    pub fn spawn(self) -> Result<oneshot::Receiver<Result<WriterStats, BenchError>>, BenchError> {
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("bench-writer".into())
            .spawn(move || {
                let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(self.run()),
                    Err(e) => Err(BenchError::Io(format!("cannot start the writer's runtime: {e}"))),
                };
                let _ = tx.send(outcome);
            })
            .map_err(|e| BenchError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(rx)
    }

    async fn run(self) -> Result<WriterStats, BenchError> {
        let Writer { url, connections, plan, ledger, pacer, cancel } = self;
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.map_err(pg)?;
            tokio::spawn(connection);
            let insert = client.prepare(INSERT).await.map_err(pg)?;
            clients.push((client, insert));
        }
        // Enough room that the pacer never waits on a slow moment of the connections, small enough
        // that a writer that cannot keep up does not hide it for long.
        let (tx, rx) = mpsc::channel::<usize>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let stop = Arc::new(AtomicBool::new(false));
        let behind_ns = Arc::new(AtomicU64::new(0));
        let total = ledger.len();
        let pacer_thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(move || {
                    for n in 0..total {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let due = pacer.due(n);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        if tx.blocking_send(n).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| BenchError::Io(format!("cannot start the pacer thread: {e}")))?
        };
        let mut tasks = Vec::new();
        for (client, insert) in clients {
            let (rx, plan, ledger, cancel) = (rx.clone(), plan.clone(), ledger.clone(), cancel.clone());
            let behind_ns = behind_ns.clone();
            tasks.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                loop {
                    let next = tokio::select! {
                        () = cancel.cancelled() => None,
                        n = async { rx.lock().await.recv().await } => n,
                    };
                    let Some(n) = next else { break };
                    // Late against the schedule when it actually goes out, queueing included.
                    behind_ns.fetch_max(pacer.due(n).elapsed().as_nanos() as u64, Ordering::Relaxed);
                    let row = plan.row(n);
                    let result = client
                        .execute(&insert, &[&ledger.id(n), &row.customer, &row.status, &row.warehouse, &row.region])
                        .await;
                    match result {
                        Ok(_) => ledger.committed(n, Instant::now()),
                        Err(e) => {
                            ledger.failed(n);
                            if errors.len() < 10 {
                                errors.push(crate::error::describe_pg_error(&e));
                            }
                        }
                    }
                }
                errors
            }));
        }
        let started = Some(Instant::now());
        let mut stats = WriterStats { started, ..WriterStats::default() };
        for t in tasks {
            match t.await {
                Ok(errors) => stats.errors.extend(errors),
                Err(e) => stats.errors.push(format!("a writer task failed: {e}")),
            }
        }
        stop.store(true, Ordering::Relaxed);
        // The receiver is gone once the tasks ended, so a pacer blocked on a full queue wakes up.
        drop(rx);
        let _ = tokio::task::spawn_blocking(move || pacer_thread.join()).await;
        stats.finished = Some(Instant::now());
        stats.max_behind = Duration::from_nanos(behind_ns.load(Ordering::Relaxed));
        Ok(stats)
    }
}

fn pg(e: tokio_postgres::Error) -> BenchError {
    BenchError::Database(crate::error::describe_pg_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_due_evenly() {
        let start = Instant::now();
        let p = Pacer::new(start, 1000.0);
        assert_eq!(p.due(0), start);
        assert_eq!(p.due(1) - p.due(0), Duration::from_millis(1));
        assert_eq!(p.due(1000) - start, Duration::from_secs(1));
        // Evenly: every gap is the same, at a rate that does not divide a second.
        let p = Pacer::new(start, 3.0);
        let gaps: Vec<Duration> = (1..10).map(|n| p.due(n) - p.due(n - 1)).collect();
        assert!(gaps.iter().all(|g| g.abs_diff(Duration::from_secs_f64(1.0 / 3.0)) < Duration::from_micros(1)));
        assert_eq!(p.changes_in(Duration::from_secs(10)), 30);
        assert_eq!(Pacer::new(start, 50.0).changes_in(Duration::from_millis(3500)), 175);
    }
}

//! `opslive simulate`: realistic, adjustable business traffic written into the source database,
//! so the dashboard has something alive to show (demos, load tests, trying a configuration).
//!
//! ```text
//!  Planner ──(kind, when)──► dispatcher ──Job──► bounded channel ──► workers (one connection each)
//!   (seeded, pure)           takes rows off        (backpressure)      run one short transaction,
//!                            the world's queues                        put results back on the queues
//! ```
//!
//! - [`plan`] decides what happens next and when: `--rate` shaped by the time of day
//!   ([`shape`], on a [`clock`] that a demo can compress), `--burst` spikes, and backlogs;
//! - `orders`, `stock`, `support` and `finance` each know their part of the business: what an
//!   event does to the tables, as SQL, and which in-memory queue a row moves to next;
//! - `world` holds those queues and the reference data; `schema` checks the database first.
//!
//! The simulator falls behind gracefully: the channel to the workers is small, and when the
//! database cannot keep up the dispatcher skips the events it missed (counted as dropped)
//! instead of queueing them. Cancelling the token lets every worker finish its transaction.

pub mod clock;
mod error;
mod finance;
mod helpdesk;
mod metrics;
mod orders;
pub mod plan;
mod schema;
pub mod shape;
mod stats;
mod stock;
mod support;
mod world;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

pub use crate::duration::parse_duration;
pub use clock::parse_start;
pub use error::SimError;
pub use metrics::SimCollector;
pub use plan::{Backlog, EventKind, Planned, Planner};
pub use stats::SimStats;

use crate::config::SecretUrl;
use error::JobError;
use world::{Connections, Helpdesk, Job, Shared, Statements, Work, World};

/// How to simulate. `Default` is a modest, real-clock run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Average business events (transactions) per second over a day. The time of day moves the
    /// momentary rate around it; clock-driven events (agents' shifts, reconciliation) come on top,
    /// a few per simulated hour.
    pub rate: f64,
    /// `Some(factor)`: incident spikes, where order intake and then ticket volume jump by
    /// `factor` for tens of seconds, 15 s after start and then every 4 to 8 minutes (6 on average).
    pub burst: Option<f64>,
    /// Real time one simulated day takes; 24 h follows the wall clock.
    pub day_length: Duration,
    /// Simulated time at start; None is now.
    pub start: Option<DateTime<Utc>>,
    /// With the same seed and start, a run follows the same day and the same spikes, and plans
    /// the same events as long as the database keeps pace (backlogs feed back into the plan, so
    /// a slower database makes a run alike rather than identical).
    pub seed: u64,
    /// Database connections to write with, each running one transaction at a time.
    pub connections: usize,
    /// A MariaDB/MySQL database of its own for the helpdesk (tickets and agents, as in
    /// `fixtures/mariadb/`); None: they live beside the shop.
    pub helpdesk: Option<String>,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            rate: 20.0,
            burst: None,
            day_length: clock::REAL_DAY,
            start: None,
            seed: 0,
            connections: 4,
            helpdesk: None,
        }
    }
}

impl SimOptions {
    fn validate(&self) -> Result<(), SimError> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            return Err(SimError::Options(format!(
                "rate must be above 0 and at most 1000000 events/s, not {}",
                self.rate
            )));
        }
        if let Some(factor) = self.burst
            && !(factor.is_finite() && (1.0..=100.0).contains(&factor))
        {
            return Err(SimError::Options(format!("burst factor must be between 1 and 100, not {factor}")));
        }
        if self.day_length < Duration::from_secs(1) {
            return Err(SimError::Options(format!("day length must be at least 1s, not {:?}", self.day_length)));
        }
        if !(1..=64).contains(&self.connections) {
            return Err(SimError::Options(format!("connections must be 1 to 64, not {}", self.connections)));
        }
        Ok(())
    }
}

/// How far the dispatcher may run behind its schedule before it gives up the missed events.
const MAX_LAG: Duration = Duration::from_secs(1);
/// Attempts at an event that keeps losing lock races before it is given up.
const ATTEMPTS: usize = 3;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Failures logged as warnings before the rest go to debug (progress logs keep counting them).
const WARN_FAILURES: u64 = 10;

/// Checks that the database at `url` has the tables, columns and reference rows the simulator
/// needs, without writing anything. The error names what is missing and how to load it.
pub async fn check_schema(url: &str) -> Result<(), SimError> {
    let database = display_url(url);
    let client = connect(url, &database).await?;
    schema::check(&client, &database, false).await.map(|_| ())
}

/// Simulates business traffic into the database at `url` until `cancel` is cancelled, then
/// lets the running transactions finish and returns. Fails before writing anything when the
/// schema is missing, and with [`SimError::ConnectionLost`] when the database goes away.
pub async fn run(
    url: &str,
    options: SimOptions,
    stats: Arc<SimStats>,
    cancel: CancellationToken,
) -> Result<(), SimError> {
    options.validate()?;
    let database = display_url(url);
    let first = connect(url, &database).await?;
    let reference = schema::check(&first, &database, options.helpdesk.is_some()).await?;
    let helpdesk_name = options.helpdesk.as_deref().map(display_url);
    let mut first_desk = match (&options.helpdesk, &helpdesk_name) {
        (Some(url), Some(name)) => {
            let mut conn = helpdesk::connect(url, name).await?;
            helpdesk::check(&mut conn, name).await?;
            Some(conn)
        }
        _ => None,
    };
    let names = Names { shop: database.clone(), helpdesk: helpdesk_name };
    let world = World::load(&first, first_desk.as_mut(), &reference)
        .await
        .map_err(|e| SimError::from_job(names.of(&e), "loading work queues", e))?;
    let start = options.start.unwrap_or_else(Utc::now);
    let initial = world.backlog();
    let planner = Planner::new(&options, start, Backlog::targets(&initial));
    tracing::info!(
        rate = options.rate,
        burst = options.burst.unwrap_or(0.0),
        day_length_s = options.day_length.as_secs_f64(),
        start = %start.to_rfc3339(),
        seed = options.seed,
        connections = options.connections,
        pending_orders = initial.pending_orders,
        paid_orders = initial.paid_orders,
        low_stock = initial.low_stock,
        new_tickets = initial.new_tickets,
        open_batches = initial.open_batches,
        "simulating business traffic"
    );

    let shared = Arc::new(Shared { reference, world: Mutex::new(world) });
    let stop = cancel.child_token();
    // If the caller drops this future instead of cancelling, the tasks below still stop.
    let _stop_on_drop = stop.clone().drop_guard();
    let (tx, rx) = mpsc::channel::<Job>(options.connections * 4);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = JoinSet::new();
    let mut first = Some((first, first_desk));
    for _ in 0..options.connections {
        let worker = Worker {
            url: url.to_string(),
            helpdesk_url: options.helpdesk.clone(),
            names: names.clone(),
            shared: shared.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
        };
        workers.spawn(worker.run(first.take(), rx.clone()));
    }
    let progress = tokio::spawn(report_progress(stats.clone(), stop.clone()));

    dispatch(planner, &shared, &stats, tx, &stop).await;

    let mut result = Ok(());
    while let Some(joined) = workers.join_next().await {
        let outcome = joined.unwrap_or_else(|e| {
            Err(SimError::Sql {
                database: database.clone(),
                context: "a simulator worker".into(),
                detail: e.to_string(),
            })
        });
        if let Err(e) = outcome
            && result.is_ok()
        {
            result = Err(e);
        }
    }
    stop.cancel();
    let _ = progress.await;
    tracing::info!(
        events = stats.total(),
        skipped = stats.skipped(),
        dropped = stats.dropped(),
        conflicts = stats.conflicts(),
        failed = stats.failed(),
        "simulation stopped"
    );
    result
}

/// The URL for messages, password redacted.
fn display_url(url: &str) -> String {
    SecretUrl::parse(url).map(|u| u.to_string()).unwrap_or_else(|_| "the database".to_string())
}

async fn connect(url: &str, database: &str) -> Result<Client, SimError> {
    let connect_error = |detail: String| SimError::Connect { database: database.to_string(), detail };
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| connect_error(format!("not a valid PostgreSQL URL: {e}")))?;
    config.application_name("opslive-simulate");
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| connect_error(error::describe(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "simulate connection closed");
        }
    });
    Ok(client)
}

/// Paces planned events onto the workers' channel until `stop`.
async fn dispatch(
    mut planner: Planner,
    shared: &Shared,
    stats: &SimStats,
    tx: mpsc::Sender<Job>,
    stop: &CancellationToken,
) {
    let started = Instant::now();
    while !stop.is_cancelled() {
        let sim_now = planner.clock().at(planner.elapsed());
        let (backlog, openings) = {
            let mut world = shared.world();
            let openings = world.finance.due_openings(sim_now, planner.rng());
            (world.backlog(), openings)
        };
        for job in openings {
            let job = Job { kind: EventKind::BatchOpened, work: Work::Finance(job) };
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                sent = tx.send(job) => if sent.is_err() { return },
            }
        }

        let planned = planner.next(&backlog);
        stats.set_planned_rate(planner.planned_rate());
        let due = started + planned.at;
        let now = Instant::now();
        if now > due + MAX_LAG {
            // Behind schedule: the database is slower than the rate. Give up what was missed
            // rather than let a backlog of stale events build.
            let missed = (now - due).as_secs_f64() * planner.planned_rate();
            stats.record_dropped(missed.round() as u64 + 1);
            planner.skip_to((now - started).as_secs_f64());
            continue;
        }
        // Timers tick in milliseconds; at high rates several events share one tick.
        if due > now + Duration::from_millis(1) {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        let moment = planner.moment(planned.at.as_secs_f64());
        let job = shared.world().take_job(planned.kind, &moment, &shared.reference, planner.rng());
        let Some(job) = job else {
            stats.record_skipped();
            continue;
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            sent = tx.send(job) => if sent.is_err() { return },
        }
    }
}

/// The databases' names for messages (passwords redacted).
#[derive(Clone)]
struct Names {
    shop: String,
    helpdesk: Option<String>,
}

impl Names {
    /// The database an error came from.
    fn of(&self, e: &JobError) -> &str {
        match (e, &self.helpdesk) {
            (JobError::Mariadb(_), Some(helpdesk)) => helpdesk,
            _ => &self.shop,
        }
    }
}

/// One connection per database running jobs one transaction at a time.
struct Worker {
    url: String,
    helpdesk_url: Option<String>,
    names: Names,
    shared: Arc<Shared>,
    stats: Arc<SimStats>,
    stop: CancellationToken,
}

impl Worker {
    async fn run(
        self,
        first: Option<(Client, Option<mysql_async::Conn>)>,
        rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    ) -> Result<(), SimError> {
        let result = self.work(first, rx).await;
        if result.is_err() {
            // One connection gone means the database is in trouble: stop the whole run.
            self.stop.cancel();
        }
        result
    }

    async fn work(
        &self,
        first: Option<(Client, Option<mysql_async::Conn>)>,
        rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    ) -> Result<(), SimError> {
        let (shop, desk) = match first {
            Some(first) => first,
            None => {
                let desk = match (&self.helpdesk_url, &self.names.helpdesk) {
                    (Some(url), Some(name)) => Some(helpdesk::connect(url, name).await?),
                    _ => None,
                };
                (connect(&self.url, &self.names.shop).await?, desk)
            }
        };
        let prepare = |e| SimError::from_pg(&self.names.shop, "preparing the simulator's statements", e);
        let statements = Statements::prepare(&shop).await.map_err(prepare)?;
        let helpdesk = match desk {
            Some(conn) => Helpdesk::Apart(conn),
            None => Helpdesk::Shop(support::Statements::prepare(&shop).await.map_err(prepare)?),
        };
        let mut conns = Connections { shop, helpdesk };
        loop {
            let job = {
                let mut rx = rx.lock().await;
                tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => return Ok(()),
                    job = rx.recv() => job,
                }
            };
            let Some(job) = job else { return Ok(()) };
            self.run_job(&mut conns, &statements, &job).await?;
        }
    }

    async fn run_job(&self, conns: &mut Connections, statements: &Statements, job: &Job) -> Result<(), SimError> {
        for attempt in 1..=ATTEMPTS {
            let e = match job.execute(conns, statements, &self.shared).await {
                Ok(true) => {
                    self.stats.record(job.kind);
                    return Ok(());
                }
                Ok(false) => {
                    self.stats.record_skipped();
                    return Ok(());
                }
                Err(e) => e,
            };
            if e.connection_lost() || e.is_unrecoverable() {
                return Err(SimError::from_job(self.names.of(&e), &format!("the {} event", job.kind.name()), e));
            }
            if e.is_conflict() {
                if attempt < ATTEMPTS {
                    continue;
                }
                self.stats.record_conflict();
                return Ok(());
            }
            let failed_before = self.stats.failed();
            self.stats.record_failed();
            if failed_before < WARN_FAILURES {
                tracing::warn!(event = job.kind.name(), error = %e.describe(), "simulated event failed; skipping it");
            } else {
                tracing::debug!(event = job.kind.name(), error = %e.describe(), "simulated event failed; skipping it");
            }
            return Ok(());
        }
        Ok(())
    }
}

/// Logs counts per event kind and the achieved rate every [`PROGRESS_EVERY`] until `stop`.
async fn report_progress(stats: Arc<SimStats>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let (mut last_at, mut last_total, mut last_dropped) = (Instant::now(), 0u64, 0u64);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (now, total, dropped) = (Instant::now(), stats.total(), stats.dropped());
        let achieved = (total - last_total) as f64 / (now - last_at).as_secs_f64().max(1e-3);
        let round = |x: f64| (x * 10.0).round() / 10.0;
        let n = |k: EventKind| stats.events(k);
        use EventKind::*;
        tracing::info!(
            achieved_rate = round(achieved),
            planned_rate = round(stats.planned_rate()),
            events = total,
            order_placed = n(OrderPlaced),
            order_paid = n(OrderPaid),
            order_cancelled = n(OrderCancelled),
            order_picked = n(OrderPicked),
            order_shipped = n(OrderShipped),
            order_delivered = n(OrderDelivered),
            order_refunded = n(OrderRefunded),
            stock_replenished = n(StockReplenished),
            ticket_opened = n(TicketOpened),
            ticket_assigned = n(TicketAssigned),
            ticket_answered = n(TicketAnswered),
            ticket_reopened = n(TicketReopened),
            ticket_solved = n(TicketSolved),
            ticket_closed = n(TicketClosed),
            agent_availability = n(AgentAvailability),
            batch_opened = n(BatchOpened),
            batch_matching = n(BatchMatching),
            exception_resolved = n(ExceptionResolved),
            skipped = stats.skipped(),
            dropped,
            conflicts = stats.conflicts(),
            failed = stats.failed(),
            "simulated traffic"
        );
        if dropped > last_dropped {
            tracing::warn!(
                achieved_rate = round(achieved),
                dropped_since_last = dropped - last_dropped,
                "the database is not keeping up with the simulated rate; skipping events instead of queueing them"
            );
        }
        (last_at, last_total, last_dropped) = (now, total, dropped);
    }
}

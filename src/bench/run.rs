//! The measured run on a ready server: subscribe every client, write at the planned pace, wait
//! for the last deliveries, and turn counters, the latency histogram and the processes' usage
//! into a [`Report`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::client::{self, Endpoint, Shared, Subscriber, Tally};
use super::frame::Form;
use super::latency::LatencyRecorder;
use super::ledger::Ledger;
use super::report::{Report, Traffic, Usage, WriterFigures};
use super::scenario::{self, LiveQuery, Plan};
use super::writer::{Pacer, Writer};
use super::{BenchError, BenchOptions, Measured, database, planned_changes, usage};

/// Handshakes in flight at once: a thousand SYNs in one go would overflow the listen backlog and
/// turn into retransmits a second later.
const CONNECTING_AT_ONCE: usize = 64;

/// Where and as whom a run connects, and what it is called in the report.
pub(crate) struct Run<'a> {
    pub options: &'a BenchOptions,
    /// The source database's URL (the writer's).
    pub database: &'a str,
    /// `ws://host:port/graphql`.
    pub url: String,
    pub addr: SocketAddr,
    /// The other instances of a cluster, when the run has several.
    pub also: Vec<(String, SocketAddr)>,
    pub token: String,
    pub target: String,
    pub cancel: CancellationToken,
}

impl Run<'_> {
    pub async fn measure(self, prepared: database::Prepared, server: &mut Measured) -> Result<Report, BenchError> {
        let Run { options, database, url, addr, also, token, target, cancel } = self;
        let shape = options.shape;
        let queries = scenario::live_queries(shape.queries, shape.limit, &prepared.warehouses);
        if queries.len() < shape.queries {
            return Err(BenchError::Database(format!(
                "{} warehouses make only {} distinct queries",
                prepared.warehouses.len(),
                queries.len()
            )));
        }
        let total = planned_changes(options);
        let epoch = Instant::now();
        let measured_from = Pacer::new(epoch, shape.rate).changes_in(options.warmup).min(total.saturating_sub(1));
        let ledger = Arc::new(Ledger::new(epoch, prepared.base, total, measured_from));
        let plan = Arc::new(Plan::new(&queries, prepared.warehouses, &prepared.customers, total, options.seed));
        let source_ips = (0..options.source_ips.min(250))
            .filter(|_| addr.ip().is_loopback() && options.source_ips > 1)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)))
            .collect();
        let shared = Arc::new(Shared {
            endpoint: Endpoint { url, addr, also, token, source_ips, setup_timeout: Duration::from_secs(60) },
            ledger: ledger.clone(),
            latency: LatencyRecorder::new(16),
            tally: Tally::default(),
            form: options.form,
        });

        eprintln!("subscribing {} clients to {} live queries ({:?}) …", shape.clients, queries.len(), options.form);
        let clients_cancel = cancel.child_token();
        let (subscribers, mut clients) =
            subscribe_all(&queries, options.form, (0, shape.clients), &shared, &clients_cancel).await;
        if options.frozen > 0 && !cancel.is_cancelled() {
            eprintln!("subscribing {} more clients that then stop reading …", options.frozen);
            let span = (shape.clients, shape.clients + options.frozen);
            let (_, frozen) = subscribe_all(&queries, options.form, span, &shared, &clients_cancel).await;
            clients.extend(frozen);
        }
        let ready: usize = subscribers.iter().map(|&s| s as usize).sum();
        let stop_clients = async |clients: Vec<tokio::task::JoinHandle<()>>| {
            clients_cancel.cancel();
            for c in clients {
                let _ = c.await;
            }
        };
        if cancel.is_cancelled() {
            stop_clients(clients).await;
            return Err(BenchError::Interrupted);
        }
        if ready == 0 {
            stop_clients(clients).await;
            let why = shared.tally.error_messages().first().map(|(m, _)| m.clone()).unwrap_or_default();
            return Err(BenchError::NoClients(why));
        }
        eprintln!(
            "{ready} of {} clients subscribed; writing {total} changes at {} /s ({} s warm-up, {} s measured) …",
            shape.clients,
            shape.rate,
            options.warmup.as_secs_f64(),
            options.duration.as_secs_f64()
        );

        let rss = server.pid.map(|pid| usage::RssSampler::start(Some(pid), Duration::from_millis(100)));
        let own_rss = usage::RssSampler::start(None, Duration::from_millis(100));
        let rss_start = server.pid.and_then(|pid| usage::memory(Some(pid)).ok()).unwrap_or_default();
        // A moment for the writer's connections to open before the first change is due.
        let start = Instant::now() + Duration::from_millis(200);
        let pacer = Pacer::new(start, shape.rate);
        let writer_cancel = cancel.child_token();
        let writer = Writer {
            url: database.to_string(),
            connections: options.writers,
            plan: plan.clone(),
            ledger: ledger.clone(),
            pacer,
            cancel: writer_cancel.clone(),
        };
        let writer = match writer.spawn() {
            Ok(w) => w,
            Err(e) => {
                stop_clients(clients).await;
                return Err(e);
            }
        };
        let window_start = pacer.due(measured_from);
        tokio::time::sleep_until(window_start.into()).await;
        let followers: Vec<u32> = server.followers.iter().map(|p| p.pid).collect();
        let at_start = Snapshot::take(&shared.tally, server.pid, &followers);
        let written = tokio::select! {
            w = writer => w,
            () = cancel.cancelled() => {
                writer_cancel.cancel();
                stop_clients(clients).await;
                return Err(BenchError::Interrupted);
            }
        };
        let at_end = Snapshot::take(&shared.tally, server.pid, &followers);
        let writer_stats = match written {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => {
                stop_clients(clients).await;
                return Err(e);
            }
            Err(_) => {
                stop_clients(clients).await;
                return Err(BenchError::Io("the writer thread ended without a result".into()));
            }
        };
        let expected = |n: usize| plan.expected(n, &queries, &subscribers);
        // The last frames are on their way: wait for them, not longer than the drain allows.
        let drain_until = Instant::now() + options.drain;
        let mut deliveries = ledger.count(expected);
        while deliveries.missing > 0 && Instant::now() < drain_until && !cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            deliveries = ledger.count(expected);
        }
        stop_clients(clients).await;
        let server_exited = server
            .process
            .as_mut()
            .and_then(|p| p.exited())
            .or_else(|| server.followers.iter_mut().find_map(|p| p.exited()));
        let rss_peak = match rss {
            Some(s) => s.finish().await,
            None => 0,
        };
        let own_peak = own_rss.finish().await;
        if let Some(status) = server_exited {
            let logs = server.process.as_ref().map(|p| p.recent_logs()).unwrap_or_default();
            return Err(BenchError::Server(format!(
                "the server exited during the run ({status}); its last logs:\n{logs}"
            )));
        }

        let window = at_end.at.saturating_duration_since(at_start.at).as_secs_f64().max(1e-9);
        let measured_commits = (measured_from..total).filter(|&n| ledger.is_committed(n)).count();
        let tally = &shared.tally;
        let server_usage = server.pid.map(|pid| {
            let hwm = usage::memory(Some(pid)).map(|m| m.hwm).unwrap_or_default();
            let cpu = match (at_start.server_cpu, at_end.server_cpu) {
                (Some(a), Some(b)) => usage::cpu_percent(a, b),
                _ => 0.0,
            };
            Usage::new(pid, cpu, rss_start.rss, rss_peak, hwm)
        });
        let follower_usage = followers
            .iter()
            .zip(at_start.followers_cpu.iter().zip(&at_end.followers_cpu))
            .map(|(&pid, cpu)| {
                let cpu = match cpu {
                    (Some(a), Some(b)) => usage::cpu_percent(*a, *b),
                    _ => 0.0,
                };
                let memory = usage::memory(Some(pid)).unwrap_or_default();
                Usage::new(pid, cpu, 0, memory.rss, memory.hwm)
            })
            .collect();
        let own_cpu = match (at_start.own_cpu, at_end.own_cpu) {
            (Some(a), Some(b)) => usage::cpu_percent(a, b),
            _ => 0.0,
        };
        let messages = at_end.messages - at_start.messages;
        let bytes = at_end.bytes - at_start.bytes;
        Ok(Report {
            scenario: options.scenario,
            form: options.form,
            target,
            clients: shape.clients,
            clients_ready: ready,
            queries: queries.len(),
            limit: shape.limit,
            writer: WriterFigures {
                connections: options.writers,
                target_rate: shape.rate,
                achieved_rate: measured_commits as f64 / window,
                committed: ledger.commits() as u64,
                failed: ledger.failures() as u64,
                warmup_s: options.warmup.as_secs_f64(),
                window_s: window,
                max_behind_ms: writer_stats.max_behind.as_secs_f64() * 1000.0,
                errors: writer_stats.errors,
            },
            latency: shared.latency.summary(),
            early_deliveries: tally.early.load(Ordering::Relaxed),
            deliveries,
            foreign_rows: tally.foreign.load(Ordering::Relaxed),
            changed_rows: tally.changed.load(Ordering::Relaxed),
            inconsistent_patches: tally.inconsistencies.load(Ordering::Relaxed),
            resets: tally.resets.load(Ordering::Relaxed),
            seq_gaps: tally.seq_gaps.load(Ordering::Relaxed),
            received: Traffic {
                messages,
                bytes,
                messages_per_s: messages as f64 / window,
                bytes_per_s: bytes as f64 / window,
            },
            server: server_usage,
            followers: follower_usage,
            bench: Usage::new(
                std::process::id(),
                own_cpu,
                0,
                own_peak,
                usage::memory(None).map(|m| m.hwm).unwrap_or(0),
            ),
            client_errors: tally.errors.load(Ordering::Relaxed),
            error_messages: tally.error_messages(),
            frozen: options.frozen,
            frozen_closed: tally.frozen_closed.load(Ordering::Relaxed),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average: at_end.load_average,
        })
    }
}

/// Counters at one instant of the run.
struct Snapshot {
    at: Instant,
    messages: u64,
    bytes: u64,
    server_cpu: Option<usage::CpuReading>,
    followers_cpu: Vec<Option<usage::CpuReading>>,
    own_cpu: Option<usage::CpuReading>,
    load_average: Option<f64>,
}

impl Snapshot {
    fn take(tally: &Tally, server: Option<u32>, followers: &[u32]) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            messages: tally.messages.load(Ordering::Relaxed),
            bytes: tally.bytes.load(Ordering::Relaxed),
            server_cpu: server.and_then(|pid| usage::cpu(Some(pid)).ok()),
            followers_cpu: followers.iter().map(|&pid| usage::cpu(Some(pid)).ok()).collect(),
            own_cpu: usage::cpu(None).ok(),
            load_average: usage::load_average(),
        }
    }
}

/// Starts every client and waits until each has its first result or has failed; returns the
/// subscribers of each query and the clients' tasks.
/// Subscribes the clients numbered `from..to`; those from `shape.clients` on are frozen (they stop
/// reading after their first result, and are not counted among a query's subscribers).
async fn subscribe_all(
    queries: &[LiveQuery],
    form: Form,
    (from, to): (usize, usize),
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) -> (Vec<u32>, Vec<tokio::task::JoinHandle<()>>) {
    let frozen = from > 0;
    let clients = to - from;
    let documents: Vec<Arc<str>> = queries.iter().map(|q| Arc::from(q.document(form))).collect();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = Vec::with_capacity(clients);
    let mut subscribers = vec![0u32; queries.len()];
    let mut answered = 0;
    let note = |r: Result<usize, String>, subscribers: &mut Vec<u32>| match r {
        Ok(q) => subscribers[q] += 1,
        Err(e) => shared.tally.error(e),
    };
    for index in from..to {
        let permit = tokio::select! {
            p = connecting.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = cancel.cancelled() => break,
        };
        let query = scenario::query_of_client(index, queries.len());
        let sub = Subscriber { index, query, document: documents[query].clone(), limit: queries[query].limit, frozen };
        let (shared, ready_tx, cancel) = (shared.clone(), ready_tx.clone(), cancel.clone());
        // The permit is released when the client reports, so only handshakes count against it.
        let (report_tx, mut report_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            if let Some(r) = report_rx.recv().await {
                let _ = ready_tx.send(r);
            }
            drop(permit);
        });
        tasks.push(tokio::spawn(client::run(sub, shared, report_tx, cancel)));
        while let Ok(r) = ready_rx.try_recv() {
            answered += 1;
            note(r, &mut subscribers);
        }
    }
    drop(ready_tx);
    while answered < tasks.len() {
        let r = tokio::select! {
            r = ready_rx.recv() => r,
            () = cancel.cancelled() => None,
        };
        let Some(r) = r else { break };
        answered += 1;
        note(r, &mut subscribers);
    }
    (subscribers, tasks)
}

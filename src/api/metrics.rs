//! `/metrics`: Prometheus text exposition of the data flow's state.
//!
//! Nothing is counted twice: the pipeline and the sources keep plain atomics (no metrics
//! library on the hot path but a histogram observation per transaction), and a collector reads
//! them at scrape time. Labels name sources and tables, never row values.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry as PromRegistry;

use super::OpsState;
use super::health::Readiness;

pub struct Metrics {
    registry: PromRegistry,
}

impl Metrics {
    pub fn new(state: OpsState, extra: Vec<Box<dyn Collector>>) -> Metrics {
        let mut registry = PromRegistry::with_prefix("opslive");
        registry.register_collector(Box::new(FlowCollector(state)));
        for collector in extra {
            registry.register_collector(collector);
        }
        Metrics { registry }
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

pub async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

#[derive(Debug)]
struct FlowCollector(OpsState);

type Labels = Vec<(&'static str, String)>;

/// One metric family: a name, help, type and its labelled samples.
struct Family<'a> {
    encoder: MetricEncoder<'a>,
    kind: MetricType,
}

impl<'a> Family<'a> {
    fn new(
        encoder: &'a mut DescriptorEncoder,
        name: &'a str,
        help: &str,
        kind: MetricType,
    ) -> Result<Family<'a>, std::fmt::Error> {
        Ok(Family { encoder: encoder.encode_descriptor(name, help, None, kind)?, kind })
    }

    fn sample(&mut self, labels: &Labels, value: f64) -> Result<(), std::fmt::Error> {
        let mut e = self.encoder.encode_family(labels)?;
        match self.kind {
            MetricType::Counter => e.encode_counter::<Labels, f64, f64>(&value, None),
            _ => e.encode_gauge(&value),
        }
    }
}

impl Collector for FlowCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let source = |name: &str| -> Labels { vec![("source", name.to_string())] };
        let table_labels = |id| -> Option<Labels> {
            let spec = state.registry.get(id)?;
            Some(vec![("source", spec.source.to_string()), ("table", spec.name.to_string())])
        };

        let readiness = Readiness::of(state);
        let mut f =
            Family::new(&mut enc, "ready", "1 when every source streams and its tables are loaded", MetricType::Gauge)?;
        f.sample(&vec![], f64::from(u8::from(readiness.ready)))?;

        let mut f = Family::new(&mut enc, "source_connected", "1 while the source streams", MetricType::Gauge)?;
        for s in &state.sources {
            f.sample(&source(&s.name), f64::from(u8::from(s.stats.is_connected())))?;
        }
        let mut f =
            Family::new(&mut enc, "source_failures", "Source sessions that ended in a failure", MetricType::Counter)?;
        for s in &state.sources {
            f.sample(&source(&s.name), s.stats.failures.load(Relaxed) as f64)?;
        }
        let mut f = Family::new(
            &mut enc,
            "source_snapshot_retries",
            "Snapshots retaken because a table was rewritten (TRUNCATE) while they were taken",
            MetricType::Counter,
        )?;
        for s in &state.sources {
            f.sample(&source(&s.name), s.stats.snapshot_retries.load(Relaxed) as f64)?;
        }

        for (name, help, read) in [
            (
                "source_resumes",
                "Sessions that resumed the slot from the replica's position (a restart with a checkpoint, a reconnect)",
                (|s: &crate::source::SourceStats| s.resumes.load(Relaxed)) as fn(&crate::source::SourceStats) -> u64,
            ),
            (
                "source_resyncs",
                "Tables copied again on their own (columns changed, added, quarantined, rewritten during a snapshot)",
                |s| s.resyncs.load(Relaxed),
            ),
            (
                "source_full_snapshots",
                "Sessions that copied every table (a first start, or no usable checkpoint or slot)",
                |s| s.snapshots.load(Relaxed),
            ),
        ] {
            let mut f = Family::new(&mut enc, name, help, MetricType::Counter)?;
            for s in &state.sources {
                f.sample(&source(&s.name), read(&s.stats) as f64)?;
            }
        }
        let slots: Vec<_> = state.sources.iter().filter_map(|s| Some((s, s.stats.slot()?))).collect();
        let mut f = Family::new(
            &mut enc,
            "slot_retained_wal_bytes",
            "WAL the replication slot keeps on the source server (from its restart_lsn to the current end)",
            MetricType::Gauge,
        )?;
        for (s, h) in &slots {
            f.sample(&source(&s.name), h.retained_bytes as f64)?;
        }
        let mut f = Family::new(
            &mut enc,
            "slot_safe_wal_bytes",
            "WAL that may still be written before the slot is invalidated (absent when unlimited)",
            MetricType::Gauge,
        )?;
        for (s, h) in &slots {
            if let Some(b) = h.safe_wal_bytes {
                f.sample(&source(&s.name), b as f64)?;
            }
        }
        let mut f = Family::new(
            &mut enc,
            "slot_wal_status",
            "1 for the slot's wal_status (reserved, extended, unreserved, lost)",
            MetricType::Gauge,
        )?;
        for (s, h) in &slots {
            let mut labels = source(&s.name);
            labels.push(("status", h.wal_status.clone()));
            f.sample(&labels, 1.0)?;
        }
        let now_micros = chrono::Utc::now().timestamp_micros();
        let mut f = Family::new(
            &mut enc,
            "heartbeat_age_seconds",
            "Time since the newest heartbeat that came back through the change stream was written",
            MetricType::Gauge,
        )?;
        for s in &state.sources {
            if let Some(age) = s.stats.heartbeat_age(now_micros) {
                f.sample(&source(&s.name), age)?;
            }
        }
        let mut f = Family::new(
            &mut enc,
            "changes_per_second",
            "Row changes applied per second, over the last 10 seconds",
            MetricType::Gauge,
        )?;
        for s in &state.sources {
            f.sample(&source(&s.name), s.stats.changes_per_second())?;
        }
        if let Some(c) = &state.checkpoints {
            for (name, help, kind, value) in [
                ("checkpoint_writes", "Checkpoints written", MetricType::Counter, c.writes.load(Relaxed) as f64),
                (
                    "checkpoint_failures",
                    "Checkpoints that could not be written",
                    MetricType::Counter,
                    c.failures.load(Relaxed) as f64,
                ),
                (
                    "checkpoint_bytes",
                    "Size of the last checkpoint",
                    MetricType::Gauge,
                    c.last_bytes.load(Relaxed) as f64,
                ),
                ("checkpoint_rows", "Rows in the last checkpoint", MetricType::Gauge, c.last_rows.load(Relaxed) as f64),
                (
                    "checkpoint_duration_seconds",
                    "Time the last checkpoint took to write",
                    MetricType::Gauge,
                    c.last_duration_micros.load(Relaxed) as f64 / 1e6,
                ),
            ] {
                Family::new(&mut enc, name, help, kind)?.sample(&vec![], value)?;
            }
            let at = c.last_written_at.load(Relaxed) as i64;
            if at > 0 {
                Family::new(&mut enc, "checkpoint_age_seconds", "Time since the last checkpoint", MetricType::Gauge)?
                    .sample(&vec![], (now_micros - at).max(0) as f64 / 1e6)?;
            }
        }

        if let Some(c) = &state.cluster {
            for (name, help, kind, value) in [
                (
                    "cluster_leader",
                    "1 while this instance leads its cluster (reads the sources)",
                    MetricType::Gauge,
                    c.leader.load(Relaxed) as u64,
                ),
                (
                    "cluster_epoch",
                    "The epoch of this instance's lead (0 before it first led)",
                    MetricType::Gauge,
                    c.epoch.load(Relaxed),
                ),
                (
                    "cluster_redis_up",
                    "0 while Redis cannot be reached (the instance is then not ready)",
                    MetricType::Gauge,
                    !c.redis_down.load(Relaxed) as u64,
                ),
                (
                    "bus_published",
                    "Events this instance published to the bus",
                    MetricType::Counter,
                    c.published.load(Relaxed),
                ),
                (
                    "bus_read",
                    "Events this instance read from the bus and applied",
                    MetricType::Counter,
                    c.read.load(Relaxed),
                ),
            ] {
                Family::new(&mut enc, name, help, kind)?.sample(&vec![], value as f64)?;
            }
        }

        if let Some(l) = &state.live {
            for (name, help, kind, value) in [
                ("live_subscriptions", "Open live subscriptions", MetricType::Gauge, l.subscriptions.load(Relaxed)),
                (
                    "live_queries",
                    "Distinct live queries (identical subscriptions share one)",
                    MetricType::Gauge,
                    l.queries.load(Relaxed),
                ),
                (
                    "live_evaluations",
                    "Live query results updated: one per distinct query per transaction that touched it",
                    MetricType::Counter,
                    l.evaluations.load(Relaxed),
                ),
                (
                    "live_payloads",
                    "Live updates serialised (each shared by every subscriber of its query)",
                    MetricType::Counter,
                    l.payloads.load(Relaxed),
                ),
                (
                    "live_deliveries",
                    "Live messages left for subscribers",
                    MetricType::Counter,
                    l.deliveries.load(Relaxed),
                ),
                (
                    "live_slow_client_resets",
                    "Resets sent instead of patches to clients that had too many waiting",
                    MetricType::Counter,
                    l.resets_for_slow_clients.load(Relaxed),
                ),
            ] {
                Family::new(&mut enc, name, help, kind)?.sample(&vec![], value as f64)?;
            }
        }

        if let Some(feed) = &state.changes {
            let (log, retention) = feed.figures();
            let stats = &feed.stats;
            for (name, help, kind, value) in [
                (
                    "changes_log_transactions",
                    "Transactions the change log holds",
                    MetricType::Gauge,
                    log.transactions as f64,
                ),
                ("changes_log_rows", "Row changes the change log holds", MetricType::Gauge, log.rows as f64),
                (
                    "changes_log_age_seconds",
                    "Age of the oldest transaction in the change log: how far back a cursor can resume",
                    MetricType::Gauge,
                    log.oldest_age_micros as f64 / 1e6,
                ),
                ("changes_log_retain_rows", "[changes] retain_rows", MetricType::Gauge, retention.rows as f64),
                (
                    "changes_log_retain_seconds",
                    "[changes] retain_seconds",
                    MetricType::Gauge,
                    retention.age_micros as f64 / 1e6,
                ),
                ("changes_streams", "Change streams open", MetricType::Gauge, stats.streams.load(Relaxed) as f64),
                (
                    "changes_messages",
                    "Change-stream messages sent (one per transaction with news for a subscriber)",
                    MetricType::Counter,
                    stats.messages.load(Relaxed) as f64,
                ),
                (
                    "changes_expired",
                    "Change streams refused or ended with CURSOR_EXPIRED",
                    MetricType::Counter,
                    stats.expired.load(Relaxed) as f64,
                ),
            ] {
                Family::new(&mut enc, name, help, kind)?.sample(&vec![], value)?;
            }
        }

        if let Some(a) = &state.admission {
            Family::new(&mut enc, "live_connections", "Live (WebSocket) connections open", MetricType::Gauge)?
                .sample(&vec![], a.connections.load(Relaxed) as f64)?;
            let mut refused = Family::new(
                &mut enc,
                "live_refused",
                "Live connections and subscribes refused, and connections closed, by [limits], by the limit reached",
                MetricType::Counter,
            )?;
            for (limit, count) in [
                ("max_pending_bytes", &a.closed_frozen),
                ("write_timeout_seconds", &a.closed_stalled),
                ("connections_per_address", &a.refused_address),
                ("connections_per_subject", &a.refused_subject),
                ("subscriptions_per_connection", &a.refused_subscriptions),
                ("subscribes_per_second", &a.refused_rate),
            ] {
                refused.sample(&vec![("limit", limit.to_string())], count.load(Relaxed) as f64)?;
            }
        }

        if let Some(n) = &state.notify {
            use crate::notify::contact::ChannelKind;
            use crate::notify::outbox::ChannelCounters;
            type Read = fn(&ChannelCounters) -> u64;
            let counters: [(&str, &str, Read); 5] = [
                ("notifications_sent", "Notifications delivered, per channel", |c| c.sent.load(Relaxed)),
                ("notifications_failed", "Notification attempts that failed, per channel", |c| c.failed.load(Relaxed)),
                ("notifications_retried", "Notification attempts scheduled again after a temporary failure", |c| {
                    c.retried.load(Relaxed)
                }),
                ("notifications_dead", "Notifications given up after their last attempt", |c| c.dead.load(Relaxed)),
                (
                    "notifications_repeated",
                    "Notifications sent again because a restart found their send in flight",
                    |c| c.repeated.load(Relaxed),
                ),
            ];
            for (name, help, read) in counters {
                let mut f = Family::new(&mut enc, name, help, MetricType::Counter)?;
                for kind in ChannelKind::ALL {
                    f.sample(&vec![("channel", kind.name().to_string())], read(n.channel(kind)) as f64)?;
                }
            }
            Family::new(&mut enc, "notification_outbox_depth", "Notifications waiting to be sent", MetricType::Gauge)?
                .sample(&vec![], n.depth.load(Relaxed) as f64)?;
            Family::new(
                &mut enc,
                "notification_outbox_oldest_age_seconds",
                "Age of the oldest notification waiting to be sent",
                MetricType::Gauge,
            )?
            .sample(&vec![], n.oldest_age_micros.load(Relaxed) as f64 / 1e6)?;
        }

        let mut f = Family::new(
            &mut enc,
            "source_position_bytes",
            "Source log positions (a PostgreSQL LSN as a byte offset; MariaDB binlog file number << 32 | offset): the server's flushed end, and how far \
             opslive received, applied and acknowledged",
            MetricType::Gauge,
        )?;
        for s in &state.sources {
            let v = s.watermarks.values();
            for (which, p) in [
                ("server", s.watermarks.server_position()),
                ("received", v.received),
                ("applied", v.applied),
                ("checkpointed", v.checkpointed),
                ("acknowledged", v.acknowledged),
            ] {
                let mut labels = source(&s.name);
                labels.push(("watermark", which.to_string()));
                f.sample(&labels, p.0 as f64)?;
            }
        }
        let mut f = Family::new(
            &mut enc,
            "replication_lag_bytes",
            "Source log bytes between the server's flushed end and what the replica covers",
            MetricType::Gauge,
        )?;
        for s in &state.sources {
            f.sample(&source(&s.name), s.watermarks.lag_bytes() as f64)?;
        }
        let now = chrono::Utc::now().timestamp_micros();
        let mut f = Family::new(
            &mut enc,
            "replication_lag_seconds",
            "While transactions are received but not applied: age of the newest applied commit; else 0",
            MetricType::Gauge,
        )?;
        for s in &state.sources {
            f.sample(&source(&s.name), s.watermarks.lag_seconds(now))?;
        }
        {
            let mut e = enc.encode_descriptor(
                "apply_delay_seconds",
                "Time from a transaction's commit at the source to its application in the replica",
                None,
                MetricType::Histogram,
            )?;
            for (name, histogram) in state.apply.delays() {
                histogram.encode(e.encode_family(&source(&name))?)?;
            }
        }

        // Each table's counters with its labels, looked up once per scrape.
        let tables: Vec<(Labels, _)> =
            state.apply.tables().into_iter().filter_map(|(id, c)| Some((table_labels(id)?, c))).collect();
        let mut f =
            Family::new(&mut enc, "changes_applied", "Row changes applied to the replica", MetricType::Counter)?;
        for (labels, c) in &tables {
            for (op, n) in
                [("insert", &c.inserts), ("update", &c.updates), ("delete", &c.deletes), ("truncate", &c.truncates)]
            {
                let mut l = labels.clone();
                l.push(("op", op.to_string()));
                f.sample(&l, n.load(Relaxed) as f64)?;
            }
        }
        let mut f = Family::new(
            &mut enc,
            "transactions_applied",
            "Source transactions applied to the replica",
            MetricType::Counter,
        )?;
        f.sample(&vec![], state.apply.transactions.load(Relaxed) as f64)?;
        let mut f = Family::new(
            &mut enc,
            "transactions_skipped",
            "Source transactions delivered again (after a reconnect or restart) and skipped by position",
            MetricType::Counter,
        )?;
        f.sample(&vec![], state.apply.skipped.load(Relaxed) as f64)?;
        let mut f = Family::new(
            &mut enc,
            "source_values_read_as_null",
            "Source values with no meaning in opslive's types, read as NULL (MariaDB zero dates such as 0000-00-00)",
            MetricType::Counter,
        )?;
        f.sample(&vec![], crate::source::values_read_as_null() as f64)?;
        let mut f = Family::new(
            &mut enc,
            "replica_anomalies",
            "Changes that contradicted the replica (a correct pipeline has none)",
            MetricType::Counter,
        )?;
        f.sample(&vec![], state.apply.anomalies.load(Relaxed) as f64)?;
        let memory = &state.transactions;
        let mut f = Family::new(
            &mut enc,
            "transaction_buffer_bytes",
            "Bytes large transactions hold on their way to the replica now (now), at most since start (peak), and may hold ([transactions] buffer_bytes: limit)",
            MetricType::Gauge,
        )?;
        for (which, bytes) in [("now", memory.held()), ("peak", memory.peak()), ("limit", memory.limit())] {
            f.sample(&vec![("which", which.to_string())], bytes as f64)?;
        }

        let mut f = Family::new(
            &mut enc,
            "snapshot_rows",
            "Rows of the table's current (or last) snapshot applied so far",
            MetricType::Gauge,
        )?;
        for (labels, c) in &tables {
            f.sample(labels, c.snapshot_rows.load(Relaxed) as f64)?;
        }
        let mut f = Family::new(
            &mut enc,
            "snapshot_estimated_rows",
            "The source's estimate of the table's rows when its snapshot began (absent when it has none)",
            MetricType::Gauge,
        )?;
        for (labels, c) in &tables {
            let estimate = c.snapshot_estimated_rows.load(Relaxed);
            if estimate != u64::MAX {
                f.sample(labels, estimate as f64)?;
            }
        }
        let mut f =
            Family::new(&mut enc, "snapshot_complete", "1 once the table's snapshot is applied", MetricType::Gauge)?;
        for (labels, c) in &tables {
            f.sample(labels, f64::from(u8::from(c.snapshot_done.load(Relaxed))))?;
        }
        let mut f =
            Family::new(&mut enc, "snapshots", "Snapshots begun per table, reloads included", MetricType::Counter)?;
        for (labels, c) in &tables {
            f.sample(labels, c.snapshots.load(Relaxed) as f64)?;
        }

        let replica = state.replica.borrow().clone();
        let held: Vec<(Labels, usize, usize)> =
            replica.tables().filter_map(|t| Some((table_labels(t.schema.id())?, t.len(), t.approx_bytes()))).collect();
        let mut f = Family::new(
            &mut enc,
            "table_state",
            "1 for the table's state: loading, ready, stale (columns changed, resync pending) or quarantined",
            MetricType::Gauge,
        )?;
        let states = replica.tables().map(|t| (t.schema.id(), t.state.name()));
        for (id, state) in states.chain(replica.never_loaded_tables().map(|id| (id, "quarantined"))) {
            if let Some(mut labels) = table_labels(id) {
                labels.push(("state", state.to_string()));
                f.sample(&labels, 1.0)?;
            }
        }
        let mut f = Family::new(&mut enc, "replica_rows", "Rows held in memory per table", MetricType::Gauge)?;
        for (labels, rows, _) in &held {
            f.sample(labels, *rows as f64)?;
        }
        let mut f = Family::new(
            &mut enc,
            "replica_memory_bytes",
            "Estimated memory of the rows held per table (values and row overhead)",
            MetricType::Gauge,
        )?;
        for (labels, _, bytes) in &held {
            f.sample(labels, *bytes as f64)?;
        }
        Ok(())
    }
}

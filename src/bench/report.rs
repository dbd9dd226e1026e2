//! The run's figures: a table for people, the same as JSON (`--json`) for scripts.
//!
//! Everything rate-like is over the measured window — from the end of the warm-up to the
//! writer's last commit — so start-up, subscriptions and the drain at the end do not dilute it.
//! Deliveries are counted over all changes, warm-up included: a missing one is a failure whenever
//! it happened, and the report says so first.

use std::fmt;

use super::frame::Form;
use super::latency::Percentiles;
use super::ledger::DeliveryCount;
use super::scenario::ScenarioKind;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub scenario: ScenarioKind,
    pub form: Form,
    /// Where the server and database came from.
    pub target: String,
    pub clients: usize,
    pub clients_ready: usize,
    pub queries: usize,
    pub limit: usize,
    pub writer: WriterFigures,
    /// Commit returned → frame arrived, for changes of the measured window.
    pub latency: Percentiles,
    /// Deliveries whose frame came before the writer's commit call returned (counted as 0 ms).
    pub early_deliveries: u64,
    pub deliveries: DeliveryCount,
    /// Rows that entered results without being written by this run.
    pub foreign_rows: u64,
    /// Upserts of rows a client already held.
    pub changed_rows: u64,
    /// Patches that did not fit a client's result (lost or misapplied).
    pub inconsistent_patches: u64,
    /// Patches whose `seq` did not follow the previous message's.
    pub seq_gaps: u64,
    /// Whole results after the first in the patch form (the server's answer to a client that
    /// fell behind: its unsent patches replaced by the current result).
    pub resets: u64,
    pub received: Traffic,
    pub server: Option<Usage>,
    /// The other instances of a cluster, when the run has several (`server` is the leader).
    pub followers: Vec<Usage>,
    /// The bench process itself: clients and writer, on the same cores.
    pub bench: Usage,
    pub client_errors: u64,
    pub error_messages: Vec<(String, u64)>,
    /// Cores of the machine, and its 1-minute load average at the end of the window (anything
    /// else running competes with the server, the database and the clients).
    /// Clients that subscribed and then stopped reading, beside `clients`.
    pub frozen: usize,
    /// Of those, the ones the server closed (1008) during the run.
    pub frozen_closed: u64,
    pub cores: usize,
    pub load_average: Option<f64>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WriterFigures {
    pub connections: usize,
    pub target_rate: f64,
    /// Commits per second over the measured window.
    pub achieved_rate: f64,
    pub committed: u64,
    pub failed: u64,
    pub warmup_s: f64,
    /// The measured window's length.
    pub window_s: f64,
    /// The latest any change went out against its schedule.
    pub max_behind_ms: f64,
    pub errors: Vec<String>,
}

/// What all clients received over the measured window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Traffic {
    pub messages: u64,
    pub bytes: u64,
    pub messages_per_s: f64,
    pub bytes_per_s: f64,
}

/// A process's CPU and memory over the window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Usage {
    pub pid: u32,
    /// Share of one core, in percent.
    pub cpu_percent: f64,
    pub rss_start_mb: f64,
    /// Highest resident size sampled (every 100 ms) during the run.
    pub rss_peak_mb: f64,
    /// The kernel's high-water mark of the process's life (start-up included).
    pub rss_hwm_mb: f64,
}

impl Report {
    /// Whether every expected delivery arrived and nothing went wrong on the way.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.deliveries.missing > 0 {
            out.push(format!(
                "{} of {} expected deliveries are missing (changes {:?}…)",
                self.deliveries.missing, self.deliveries.expected, self.deliveries.missing_ids
            ));
        }
        if self.clients_ready < self.clients {
            out.push(format!("only {} of {} clients subscribed", self.clients_ready, self.clients));
        }
        if self.client_errors > 0 {
            out.push(format!("{} client errors", self.client_errors));
        }
        if self.inconsistent_patches > 0 {
            out.push(format!("{} patches did not fit the client's result", self.inconsistent_patches));
        }
        if self.seq_gaps > 0 {
            out.push(format!("{} patches did not follow the previous message (seq gap)", self.seq_gaps));
        }
        if self.writer.failed > 0 {
            out.push(format!("{} inserts failed", self.writer.failed));
        }
        out
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Usage {
    pub fn new(pid: u32, cpu_percent: f64, rss_start: u64, rss_peak: u64, hwm: u64) -> Usage {
        Usage { pid, cpu_percent, rss_start_mb: mb(rss_start), rss_peak_mb: mb(rss_peak), rss_hwm_mb: mb(hwm) }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failures = self.failures();
        writeln!(f)?;
        if !failures.is_empty() {
            writeln!(f, "!! FAILED: {}", failures.join("; "))?;
            writeln!(f)?;
        }
        let form = match self.form {
            Form::Full => "full results",
            Form::Patches => "patches",
            Form::Changes => "change streams",
        };
        writeln!(f, "opslive bench — {:?} scenario, {form}, against {}", self.scenario, self.target)?;
        let w = &self.writer;
        let row = |f: &mut fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "  {k:<22} {v}");
        row(
            f,
            "subscribers",
            format!(
                "{} of {} subscribed, on {} distinct live queries (latest {} orders)",
                self.clients_ready, self.clients, self.queries, self.limit
            ),
        )?;
        row(
            f,
            "writer",
            format!(
                "{:.0} changes/s committed (target {:.0}) on {} connections; {} committed, {} failed; \
                 at most {:.1} ms behind schedule",
                w.achieved_rate, w.target_rate, w.connections, w.committed, w.failed, w.max_behind_ms
            ),
        )?;
        row(f, "window", format!("{:.1} s measured after {:.1} s of warm-up", w.window_s, w.warmup_s))?;
        let l = &self.latency;
        row(
            f,
            "latency",
            format!(
                "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} samples, mean {:.3} ms)",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.samples, l.mean_ms
            ),
        )?;
        row(
            f,
            "",
            format!(
                "(commit returned → frame read; {} frames came before the commit call returned, counted as 0)",
                self.early_deliveries
            ),
        )?;
        let d = &self.deliveries;
        row(
            f,
            "deliveries",
            format!(
                "{} of {} expected ({} missing, {} extra) for {} changes, {:.1} per change",
                d.delivered,
                d.expected,
                d.missing,
                d.extra,
                d.changes,
                if d.changes > 0 { d.expected as f64 / d.changes as f64 } else { 0.0 }
            ),
        )?;
        let r = &self.received;
        row(
            f,
            "received",
            format!(
                "{:.0} messages/s, {:.2} MB/s ({} messages, {:.1} MB in the window)",
                r.messages_per_s,
                r.bytes_per_s / 1e6,
                r.messages,
                r.bytes as f64 / 1e6
            ),
        )?;
        match &self.server {
            Some(s) => row(
                f,
                "server",
                format!(
                    "pid {}: CPU {:.0} % of one core; RSS {:.0} MB at the start, {:.0} MB peak (high-water mark {:.0} MB)",
                    s.pid, s.cpu_percent, s.rss_start_mb, s.rss_peak_mb, s.rss_hwm_mb
                ),
            )?,
            None => row(f, "server", "not measured (pass --server-pid)".into())?,
        }
        for (i, s) in self.followers.iter().enumerate() {
            row(
                f,
                &format!("follower {}", i + 1),
                format!(
                    "pid {}: CPU {:.0} % of one core; RSS {:.0} MB at the end",
                    s.pid, s.cpu_percent, s.rss_peak_mb
                ),
            )?;
        }
        let b = &self.bench;
        row(
            f,
            "bench process",
            format!(
                "CPU {:.0} % of one core; RSS {:.0} MB peak (clients and writer, on the same cores)",
                b.cpu_percent, b.rss_peak_mb
            ),
        )?;
        if self.resets > 0 {
            row(f, "resets", format!("{} whole results replaced patches clients had not taken yet", self.resets))?;
        }
        if self.foreign_rows + self.changed_rows > 0 {
            row(
                f,
                "other rows",
                format!(
                    "{} rows not written by the run entered results; {} upserts of rows already held",
                    self.foreign_rows, self.changed_rows
                ),
            )?;
        }
        row(
            f,
            "machine",
            format!(
                "{} cores, load average {} at the end of the window",
                self.cores,
                self.load_average.map_or("unknown".into(), |l| format!("{l:.2}"))
            ),
        )?;
        if self.frozen > 0 {
            row(
                f,
                "frozen clients",
                format!(
                    "{} stopped reading after their first result; the server closed {}",
                    self.frozen, self.frozen_closed
                ),
            )?;
        }
        row(f, "client errors", self.client_errors.to_string())?;
        for (message, count) in &self.error_messages {
            row(f, "", format!("{count} × {message}"))?;
        }
        for e in &w.errors {
            row(f, "writer error", e.clone())?;
        }
        Ok(())
    }
}

/// The line comparing a run without frozen clients and the same run with them.
pub fn frozen_comparison(without: &Report, with: &Report) -> String {
    let ratio = |a: f64, b: f64| if a > 0.0 { format!("{:.2}×", b / a) } else { "n/a".into() };
    format!(
        "frozen clients: p50 {:.3} → {:.3} ms ({}), p99 {:.3} → {:.3} ms ({}) with {} of {} frozen clients closed by the server",
        without.latency.p50_ms,
        with.latency.p50_ms,
        ratio(without.latency.p50_ms, with.latency.p50_ms),
        without.latency.p99_ms,
        with.latency.p99_ms,
        ratio(without.latency.p99_ms, with.latency.p99_ms),
        with.frozen_closed,
        with.frozen,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            scenario: ScenarioKind::Hot,
            form: Form::Patches,
            target: "test".into(),
            clients: 2,
            clients_ready: 2,
            queries: 1,
            limit: 100,
            writer: WriterFigures { committed: 10, target_rate: 10.0, achieved_rate: 10.0, ..Default::default() },
            latency: Percentiles { samples: 20, p50_ms: 0.8, ..Default::default() },
            early_deliveries: 0,
            deliveries: DeliveryCount { changes: 10, expected: 20, delivered: 20, ..Default::default() },
            foreign_rows: 0,
            changed_rows: 0,
            inconsistent_patches: 0,
            seq_gaps: 0,
            resets: 0,
            received: Traffic::default(),
            server: None,
            followers: Vec::new(),
            bench: Usage::default(),
            frozen: 0,
            frozen_closed: 0,
            client_errors: 0,
            error_messages: vec![],
            cores: 2,
            load_average: Some(1.5),
        }
    }

    #[test]
    fn a_clean_run_has_no_failures_and_a_missing_delivery_is_one() {
        let ok = report();
        assert!(ok.failures().is_empty());
        let text = ok.to_string();
        assert!(!text.contains("FAILED") && text.contains("p50 0.800 ms"), "{text}");
        let mut bad = report();
        bad.deliveries.missing = 3;
        bad.deliveries.missing_ids = vec![7];
        assert_eq!(bad.failures().len(), 1);
        assert!(bad.to_string().contains("!! FAILED: 3 of 20 expected deliveries are missing"));
        let json = serde_json::to_value(&bad).unwrap();
        assert_eq!(json["deliveries"]["missing"], 3);
        assert_eq!(json["form"], "patches");
        assert_eq!(json["scenario"], "hot");
    }
}

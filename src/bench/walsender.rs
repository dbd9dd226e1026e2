//! CPU time of the walsender serving a replication slot, for `opslive cdc-bench`: decoding and
//! sending pgoutput costs the server more than reading it costs opslive, so the two are
//! measured side by side.
//!
//! The walsender is a process of its own, started for one replication session: its CPU time
//! at the end of a drain is what that drain cost it. It exits as soon as its client goes, so
//! its counters are read every few milliseconds while it lives and the last reading is kept.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::usage;

/// Watches the walsender of one slot's next session.
pub struct WalsenderCpu {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Option<u64>>,
}

impl WalsenderCpu {
    /// Starts watching `slot` on the server behind `url` (a connection of its own: the reads
    /// must go on while the bench's connection waits).
    pub async fn watch(url: &str, slot: &str) -> Result<WalsenderCpu, tokio_postgres::Error> {
        let (sql, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let stop = CancellationToken::new();
        let (s, slot) = (stop.clone(), slot.to_string());
        let task = tokio::spawn(async move {
            let mut pid = None;
            let mut last = None;
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tokio::select! {
                    () = s.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if pid.is_none() {
                    let row = sql
                        .query_opt("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
                        .await
                        .ok()
                        .flatten();
                    pid = row.and_then(|r| r.get::<_, Option<i32>>(0)).and_then(|p| u32::try_from(p).ok());
                }
                if let Some(p) = pid {
                    match usage::cpu(Some(p)) {
                        Ok(reading) => last = Some(reading.ticks),
                        // Gone: its client stopped.
                        Err(_) => break,
                    }
                }
            }
            last
        });
        Ok(WalsenderCpu { stop, task })
    }

    /// Stops watching; the walsender's CPU seconds as last read (`None`: never seen).
    pub async fn finish(self) -> Option<f64> {
        self.stop.cancel();
        let ticks = self.task.await.ok().flatten()?;
        Some(ticks as f64 / usage::clock_ticks_per_second() as f64)
    }
}

/// This process's CPU seconds (user + system, all threads) so far.
pub fn own_cpu_seconds() -> f64 {
    usage::cpu(None).map_or(f64::NAN, |r| r.ticks as f64 / usage::clock_ticks_per_second() as f64)
}

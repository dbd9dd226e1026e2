//! Keeps a source running: a session that fails in a way that may pass (a lost connection, a
//! server restarting) is started again after a capped, jittered exponential backoff; one that
//! cannot pass without a person (the configuration, the data) stops the source with its error.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Source, SourceStats};
use crate::change::SourceEvent;
use crate::error::SourceError;

/// Runs `source` until `cancel`, or until it fails for good.
pub async fn supervise(
    name: String,
    source: Arc<dyn Source>,
    stats: Arc<SourceStats>,
    out: mpsc::Sender<SourceEvent>,
    cancel: CancellationToken,
) -> Result<(), SourceError> {
    let mut delay = Duration::from_millis(500);
    loop {
        let started = std::time::Instant::now();
        let result = source.run(out.clone(), cancel.child_token()).await;
        if cancel.is_cancelled() {
            return Ok(());
        }
        match result {
            Ok(()) => tracing::warn!(source = %name, "the change stream ended; reconnecting"),
            Err(SourceError::Closed(_)) => return Ok(()),
            Err(e) if e.is_retryable() => {
                tracing::error!(source = %name, error = %e, "source failed; retrying");
                stats.failed(e.to_string());
            }
            Err(e) => {
                stats.failed(e.to_string());
                return Err(e);
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            delay = Duration::from_millis(500);
        }
        let jitter = rand::rng().random_range(0.5..1.5);
        tokio::select! {
            _ = tokio::time::sleep(delay.mul_f64(jitter)) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

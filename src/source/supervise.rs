//! Keeps a source running: a session that fails in a way that may pass (a lost connection, a
//! server restarting, a panic in a driver) is started again after a capped, jittered
//! exponential backoff; one that cannot pass without a person (the configuration, the data)
//! stops the source with its error. A panic would otherwise end the source's task without a
//! word, leaving the replica silently frozen.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Source, SourceStats};
use crate::change::SourceEvent;
use crate::error::SourceError;

/// Runs `source` until `cancel`, or until it fails for good.
/// What a caught panic said.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

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
        let session = std::panic::AssertUnwindSafe(source.run(out.clone(), cancel.child_token()));
        let result = session.catch_unwind().await.unwrap_or_else(|panic| {
            Err(SourceError::Panicked { source_name: name.clone(), detail: panic_message(panic.as_ref()) })
        });
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::change::Position;
    use crate::store::SourceRecord;

    /// Panics in its first session; the second ends as at shutdown.
    struct PanicsOnce(AtomicUsize);

    impl Source for PanicsOnce {
        fn record(&self) -> SourceRecord {
            SourceRecord { name: "p".into(), kind: "test".into(), details: serde_json::json!({}) }
        }

        fn run(
            &self,
            _: mpsc::Sender<SourceEvent>,
            _: CancellationToken,
        ) -> BoxFuture<'static, Result<(), SourceError>> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    panic!("index out of range in a driver");
                }
                Err(SourceError::Closed("p".into()))
            })
        }

        fn acknowledge_final(&self, _: Position) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn a_session_that_panics_is_reported_and_started_again() {
        let source = Arc::new(PanicsOnce(AtomicUsize::new(0)));
        let stats = Arc::new(SourceStats::default());
        let (tx, _rx) = mpsc::channel(1);
        let outcome = supervise("p".into(), source.clone(), stats.clone(), tx, CancellationToken::new()).await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(source.0.load(Ordering::SeqCst), 2, "started again after the panic");
        let error = stats.last_error().unwrap_or_default();
        assert!(error.contains("panicked: index out of range in a driver"), "{error}");
    }
}

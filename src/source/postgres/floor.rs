//! The do-nothing consumer: the yardstick for how fast opslive's CDC keeps up. It opens a
//! replication session exactly as a source does (same crate, same options, same acks) and reads
//! every message of a slot up to a position, discarding each one: no decode, no apply. What it
//! takes to drain a backlog is what the walsender and the transport cost; opslive's CDC is
//! measured against it (`opslive cdc-bench`).

use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use tokio::sync::watch;

use super::PgError;
use super::connection::Endpoint;
use crate::change::Position;
use crate::config::SecretUrl;
use crate::error::SourceError;
use crate::value::PG_EPOCH_OFFSET_MICROS;

/// What draining took.
#[derive(Debug, Clone)]
pub struct FloorDrain {
    /// Row messages (insert, update, delete) read.
    pub rows: u64,
    pub transactions: u64,
    /// From the connect to the commit at or past the target.
    pub elapsed: Duration,
    /// Where that commit ends, and when it arrived.
    pub end: Position,
    pub reached_at: Instant,
    /// Each commit's time (µs since 1970) and lag: from its commit time on the server to its arrival here, in µs.
    pub lags_micros: Vec<(i64, i64)>,
}

/// Reads `slot` of `publication` from where it stands until a commit ends at or past `until`,
/// with column values in binary form when `binary`.
pub async fn drain(
    url: &SecretUrl,
    slot: &str,
    publication: &str,
    until: Position,
    binary: bool,
) -> Result<FloorDrain, SourceError> {
    follow(url, slot, publication, watch::channel(Some(until)).1, binary).await
}

/// Like [`drain`], for a target that is not known yet: the consumer follows a live stream, and
/// stops at the first commit at or past the position `until` is given (or at once, if it has
/// read that far when it is given).
pub async fn follow(
    url: &SecretUrl,
    slot: &str,
    publication: &str,
    mut until: watch::Receiver<Option<Position>>,
    binary: bool,
) -> Result<FloorDrain, SourceError> {
    let endpoint = Endpoint::new("floor", url, None)?;
    let config = endpoint.replication(slot, publication, Lsn(0))?.with_binary(binary);
    let replication = |error| SourceError::from(PgError::Replication { source_name: "floor".into(), error });
    let started = Instant::now();
    let mut client = ReplicationClient::connect(config).await.map_err(replication)?;
    let (mut rows, mut transactions) = (0u64, 0u64);
    let mut lags_micros = Vec::new();
    let mut end = Position::ZERO;
    let reached = |end: Position, until: &watch::Receiver<Option<Position>>| {
        until.borrow().is_some_and(|target| end.0 >= target.0)
    };
    // A target given once, its sender gone, is final: only the stream is left to wait on.
    let mut final_target = false;
    loop {
        let event = tokio::select! {
            event = client.recv() => event.map_err(replication)?,
            changed = until.changed(), if !final_target => {
                final_target = changed.is_err();
                if final_target && until.borrow().is_none() {
                    return Err(SourceError::Protocol {
                        source_name: "floor".into(),
                        position: end,
                        detail: "the load stopped before its last commit".into(),
                    });
                }
                if reached(end, &until) {
                    break;
                }
                continue;
            }
        };
        match event {
            Some(ReplicationEvent::XLogData { data, .. }) => {
                rows += u64::from(matches!(data.first(), Some(b'I' | b'U' | b'D')));
            }
            Some(ReplicationEvent::Commit { end_lsn, commit_time_micros, .. }) => {
                transactions += 1;
                let committed = commit_time_micros + PG_EPOCH_OFFSET_MICROS;
                lags_micros.push((committed, (chrono::Utc::now().timestamp_micros() - committed).max(0)));
                // Acknowledged as a source does, so the walsender sees the same feedback.
                client.update_applied_lsn(end_lsn);
                end = Position(end_lsn.0);
                if reached(end, &until) {
                    break;
                }
            }
            Some(_) => {}
            None => {
                return Err(SourceError::Protocol {
                    source_name: "floor".into(),
                    position: Position(0),
                    detail: "the replication stream ended before the target position".into(),
                });
            }
        }
    }
    let (reached_at, elapsed) = (Instant::now(), started.elapsed());
    client.stop();
    Ok(FloorDrain { rows, transactions, elapsed, end, reached_at, lags_micros })
}

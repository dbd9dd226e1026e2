//! The do-nothing consumer: the yardstick for how fast opslive's CDC keeps up. It opens a
//! replication session exactly as a source does (same crate, same options, same acks) and reads
//! every message of a slot up to a position, discarding each one: no decode, no apply. What it
//! takes to drain a backlog is what the walsender and the transport cost; opslive's CDC is
//! measured against it (`opslive cdc-bench`).

use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};

use super::PgError;
use super::connection::Endpoint;
use crate::change::Position;
use crate::config::SecretUrl;
use crate::error::SourceError;

/// What draining took.
#[derive(Debug, Clone, Copy)]
pub struct FloorDrain {
    /// Row messages (insert, update, delete) read.
    pub rows: u64,
    pub transactions: u64,
    /// From the connect to the commit at or past the target.
    pub elapsed: Duration,
    /// Where that commit ends.
    pub end: Position,
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
    let endpoint = Endpoint::new("floor", url, None)?;
    let config = endpoint.replication(slot, publication, Lsn(0))?.with_binary(binary);
    let replication = |error| SourceError::from(PgError::Replication { source_name: "floor".into(), error });
    let started = Instant::now();
    let mut client = ReplicationClient::connect(config).await.map_err(replication)?;
    let (mut rows, mut transactions) = (0u64, 0u64);
    let end = loop {
        match client.recv().await.map_err(replication)? {
            Some(ReplicationEvent::XLogData { data, .. }) => {
                rows += u64::from(matches!(data.first(), Some(b'I' | b'U' | b'D')));
            }
            Some(ReplicationEvent::Commit { end_lsn, .. }) => {
                transactions += 1;
                // Acknowledged as a source does, so the walsender sees the same feedback.
                client.update_applied_lsn(end_lsn);
                if end_lsn.0 >= until.0 {
                    break Position(end_lsn.0);
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
    };
    let elapsed = started.elapsed();
    client.stop();
    Ok(FloorDrain { rows, transactions, elapsed, end })
}

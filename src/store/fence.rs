//! Fencing in the app database: what a cluster's leader writes (alert transitions and
//! instances, the notifications they cause, KPI history) is refused once a newer leader has
//! claimed the cluster.
//!
//! The lease in Redis says who should lead; it cannot stop a leader that was paused past its
//! lease (a stopped VM, a long GC pause) from writing when it wakes. So a new leader first
//! claims its epoch here (`leader_epochs`, never lowered), and each write runs in a
//! transaction that takes the claimed epoch under `FOR SHARE` and goes on only if it is the
//! writer's own. A claim takes the row for update, so it waits for a write in flight and every
//! write after it sees the new epoch: the old leader's next write is refused, not interleaved.

use std::future::Future;
use std::time::Duration;

use sqlx::{Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};

/// Who writes: a cluster's name and the epoch of the leadership writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub cluster: String,
    pub epoch: u64,
}

impl Fence {
    fn epoch(&self) -> i64 {
        i64::try_from(self.epoch).unwrap_or(i64::MAX)
    }
}

impl Store {
    /// Claims the cluster for `fence`'s epoch: refused (`Fenced`) when a newer one has.
    pub async fn claim_epoch(&self, fence: &Fence) -> Result<(), StoreError> {
        let row = sqlx::query(
            "INSERT INTO leader_epochs (cluster, epoch) VALUES ($1, $2) \
             ON CONFLICT (cluster) DO UPDATE SET epoch = GREATEST(leader_epochs.epoch, EXCLUDED.epoch), \
               claimed_at = CASE WHEN EXCLUDED.epoch > leader_epochs.epoch THEN now() ELSE leader_epochs.claimed_at END \
             RETURNING epoch",
        )
        .bind(&fence.cluster)
        .bind(fence.epoch())
        .fetch_one(&self.pool)
        .await?;
        let current: i64 = row.get("epoch");
        match current > fence.epoch() {
            true => Err(StoreError::Fenced { ours: fence.epoch, current: current as u64 }),
            false => Ok(()),
        }
    }

    /// Inside a write's transaction: goes on only while `fence` is the cluster's newest
    /// claim (no fence: a lone instance, never refused).
    pub(super) async fn check_fence(
        tx: &mut Transaction<'_, Postgres>,
        fence: Option<&Fence>,
    ) -> Result<Option<i64>, StoreError> {
        let Some(fence) = fence else { return Ok(None) };
        let current: Option<i64> = sqlx::query("SELECT epoch FROM leader_epochs WHERE cluster = $1 FOR SHARE")
            .bind(&fence.cluster)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.get("epoch"));
        match current {
            Some(c) if c > fence.epoch() => Err(StoreError::Fenced { ours: fence.epoch, current: c as u64 }),
            _ => Ok(Some(fence.epoch())),
        }
    }
}

/// Runs a write the sources' acknowledgement waits for until it is done: tried again after a
/// doubling pause (from `retry`, up to 10 s) while the database is away. Refused because a
/// newer leader claimed the cluster, it tells the instance (`fenced`) and gives up; `false`
/// when it gave up or the instance stops.
pub async fn until_written<F, W>(
    what: &str,
    retry: Duration,
    cancel: &CancellationToken,
    fenced: &CancellationToken,
    mut write: W,
) -> bool
where
    W: FnMut() -> F,
    F: Future<Output = Result<(), StoreError>>,
{
    let mut delay = retry;
    loop {
        match write().await {
            Ok(()) => return true,
            Err(e @ StoreError::Fenced { .. }) => {
                tracing::error!(error = %e, "{what} not written: another instance leads the cluster now");
                fenced.cancel();
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write {what}; retrying (the source is not acknowledged meanwhile)");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.cancelled() => return false,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

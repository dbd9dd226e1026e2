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

use sqlx::{Postgres, Row, Transaction};

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

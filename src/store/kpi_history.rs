//! KPI history in the app database: per-minute rollups, merged idempotently, read back in
//! steps for charts and at an instant for comparisons.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::fence::Fence;
use super::{Store, StoreError};
use crate::kpi::KpiId;
use crate::kpi::history::Rollup;

/// One step of a KPI's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryPoint {
    /// Start of the step, µs since the Unix epoch.
    pub at: i64,
    /// `""` for an ungrouped KPI, else the JSON of the group key.
    pub group: String,
    pub last: String,
    pub last_value: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// A history row as a point, dated by its `at` column.
fn point(row: &sqlx::postgres::PgRow, at: &str) -> HistoryPoint {
    HistoryPoint {
        at: row.get::<DateTime<Utc>, _>(at).timestamp_micros(),
        group: row.get("group_key"),
        last: row.get("last"),
        last_value: row.get("last_value"),
        min: row.get("min"),
        max: row.get("max"),
    }
}

impl Store {
    /// Merges rollups: min of mins, max of maxes, the last of the higher order. Writing the
    /// same rollup twice changes nothing; rollups of a KPI deleted meanwhile are dropped.
    pub async fn record_rollups(&self, rollups: &[Rollup], fence: Option<&Fence>) -> Result<(), StoreError> {
        if rollups.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let epoch = Store::check_fence(&mut tx, fence).await?;
        // One statement for the whole batch (a rollup per KPI, group and minute: none twice).
        let kpis: Vec<i64> = rollups.iter().map(|r| r.kpi.0).collect();
        let groups: Vec<&str> = rollups.iter().map(|r| r.group.as_str()).collect();
        let minutes: Vec<_> = rollups.iter().map(|r| time(r.minute)).collect();
        let lasts: Vec<&str> = rollups.iter().map(|r| r.last.as_str()).collect();
        let last_values: Vec<Option<f64>> = rollups.iter().map(|r| r.last_value).collect();
        let mins: Vec<Option<f64>> = rollups.iter().map(|r| r.min).collect();
        let maxes: Vec<Option<f64>> = rollups.iter().map(|r| r.max).collect();
        let orders: Vec<i64> = rollups.iter().map(|r| i64::try_from(r.order).unwrap_or(i64::MAX)).collect();
        sqlx::query(
            "INSERT INTO kpi_history (kpi_id, group_key, minute, last, last_value, min, max, last_position, epoch) \
             SELECT r.*, $9::bigint FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::float8[], \
               $6::float8[], $7::float8[], $8::bigint[]) AS r(kpi_id, group_key, minute, last, last_value, min, max, \
               last_position) \
             WHERE EXISTS (SELECT 1 FROM kpis WHERE id = r.kpi_id) \
             ON CONFLICT (kpi_id, group_key, minute) DO UPDATE SET \
             min = LEAST(kpi_history.min, EXCLUDED.min), max = GREATEST(kpi_history.max, EXCLUDED.max), \
             last = CASE WHEN EXCLUDED.last_position >= kpi_history.last_position THEN EXCLUDED.last ELSE kpi_history.last END, \
             last_value = CASE WHEN EXCLUDED.last_position >= kpi_history.last_position \
             THEN EXCLUDED.last_value ELSE kpi_history.last_value END, \
             last_position = GREATEST(kpi_history.last_position, EXCLUDED.last_position), epoch = EXCLUDED.epoch",
        )
        .bind(kpis)
        .bind(groups)
        .bind(minutes)
        .bind(lasts)
        .bind(last_values)
        .bind(mins)
        .bind(maxes)
        .bind(orders)
        .bind(epoch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A KPI's history from `from` to `to` (µs), in steps of `step` µs (a multiple of a
    /// minute): per step and group, the last value, the lowest and the highest.
    pub async fn kpi_history(
        &self,
        kpi: KpiId,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let step_secs = (step / 1_000_000).max(60);
        let rows = sqlx::query(
            "SELECT date_bin(make_interval(secs => $4), minute, 'epoch'::timestamptz) AS bucket, group_key, \
             (array_agg(last ORDER BY minute DESC, last_position DESC))[1] AS last, \
             (array_agg(last_value ORDER BY minute DESC, last_position DESC))[1] AS last_value, \
             min(min) AS min, max(max) AS max \
             FROM kpi_history WHERE kpi_id = $1 AND minute >= $2 AND minute < $3 \
             GROUP BY bucket, group_key ORDER BY bucket, group_key",
        )
        .bind(kpi.0)
        .bind(time(from))
        .bind(time(to))
        .bind(step_secs as f64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|row| point(row, "bucket")).collect())
    }

    /// Each group's value as it stood at `at` (µs): the last value of the latest minute at or
    /// before it, within a day before it (older is no comparison). For `previousValue`.
    pub async fn kpi_values_at(&self, kpi: KpiId, at: i64) -> Result<Vec<HistoryPoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT ON (group_key) minute, group_key, last, last_value, min, max FROM kpi_history \
             WHERE kpi_id = $1 AND minute <= $2 AND minute > $2 - interval '1 day' \
             ORDER BY group_key, minute DESC",
        )
        .bind(kpi.0)
        .bind(time(at))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|row| point(row, "minute")).collect())
    }

    /// Forgets history older than `before` (retention). Returns the rows removed.
    pub async fn prune_kpi_history(&self, before: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM kpi_history WHERE minute < $1").bind(time(before)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}

//! KPI definitions in the app database: what `createKpi` stores and every start loads.
//!
//! Definitions are kept as their JSON (`jsonb`, passed as text: the crate's sqlx has no JSON
//! feature), so a field added to [`KpiDefinition`] needs no migration; names are unique, and a
//! clash is a typed error the API reports as such.

// The only text put into these statements is the constant column list: values are bound.
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError};
use crate::kpi::{KpiDefinition, KpiId, KpiRecord, SourceKpi};

const COLUMNS: &str = "id, definition::text AS definition, created_by, updated_by, \
     (extract(epoch from created_at) * 1000000)::bigint AS created_us, \
     (extract(epoch from updated_at) * 1000000)::bigint AS updated_us";

fn record(row: &PgRow) -> Result<KpiRecord, StoreError> {
    let text: String = row.try_get("definition")?;
    let definition: KpiDefinition =
        serde_json::from_str(&text).map_err(|e| StoreError::Query(sqlx::Error::Decode(Box::new(e))))?;
    Ok(KpiRecord {
        id: KpiId(row.try_get("id")?),
        definition,
        created_by: row.try_get("created_by")?,
        updated_by: row.try_get("updated_by")?,
        created_at: row.try_get("created_us")?,
        updated_at: row.try_get("updated_us")?,
        builtin: None,
    })
}

/// A unique-name violation becomes [`StoreError::KpiNameTaken`].
fn named(name: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::KpiNameTaken(name.to_string()),
        _ => StoreError::Query(e),
    }
}

fn json(def: &KpiDefinition) -> String {
    serde_json::to_string(def).unwrap_or_else(|_| "{}".into())
}

impl Store {
    /// Stores a new KPI; `by` is the author's token subject.
    pub async fn insert_kpi(&self, def: &KpiDefinition, by: Option<&str>) -> Result<KpiRecord, StoreError> {
        let sql = format!(
            "INSERT INTO kpis (name, definition, created_by, updated_by) VALUES ($1, $2::jsonb, $3, $3) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&def.name)
            .bind(json(def))
            .bind(by)
            .fetch_one(&self.pool)
            .await
            .map_err(named(&def.name))?;
        record(&row)
    }

    /// The rows of these built-in KPIs, made on first use: their ids and creation times.
    pub async fn builtin_kpis(&self, kpis: &[SourceKpi]) -> Result<Vec<KpiRecord>, StoreError> {
        let mut out = Vec::with_capacity(kpis.len());
        for kpi in kpis {
            // The stored name is the key: the name people see comes with the source's name
            // and cannot clash with a KPI someone defines.
            let key = kpi.key();
            let row = sqlx::query(
                "INSERT INTO kpis (name, definition, builtin) VALUES ('builtin:' || $1, '{}', $1) \
                 ON CONFLICT (builtin) DO UPDATE SET builtin = EXCLUDED.builtin \
                 RETURNING id, (extract(epoch from created_at) * 1000000)::bigint AS created_us",
            )
            .bind(&key)
            .fetch_one(&self.pool)
            .await?;
            let created: i64 = row.try_get("created_us")?;
            out.push(KpiRecord {
                id: KpiId(row.try_get("id")?),
                definition: kpi.definition(),
                created_by: None,
                updated_by: None,
                created_at: created,
                updated_at: created,
                builtin: Some(kpi.clone()),
            });
        }
        Ok(out)
    }

    /// Replaces a KPI's definition; `None` when there is no such KPI.
    pub async fn update_kpi(
        &self,
        id: KpiId,
        def: &KpiDefinition,
        by: Option<&str>,
    ) -> Result<Option<KpiRecord>, StoreError> {
        let sql = format!(
            "UPDATE kpis SET name = $2, definition = $3::jsonb, updated_by = $4, updated_at = now() WHERE id = $1 \
             AND builtin IS NULL RETURNING {COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.0)
            .bind(&def.name)
            .bind(json(def))
            .bind(by)
            .fetch_optional(&self.pool)
            .await
            .map_err(named(&def.name))?;
        row.as_ref().map(record).transpose()
    }

    /// Deletes a KPI (and its history); whether it existed. Built-in ones stay.
    pub async fn delete_kpi(&self, id: KpiId) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM kpis WHERE id = $1 AND builtin IS NULL").bind(id.0).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every KPI someone defined, by id (built-in ones are [`Store::builtin_kpis`]).
    pub async fn load_kpis(&self) -> Result<Vec<KpiRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM kpis WHERE builtin IS NULL ORDER BY id")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record).collect()
    }
}

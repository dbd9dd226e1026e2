//! Each user's workspace in the app database, keyed by the token's `sub`: queries saved in the
//! Explorer, and the overview's arrangement of KPI tiles.
//!
//! Nothing here is shared between users, so every statement is scoped by `owner`: one user can
//! neither read nor delete another's saved query, whatever id it names.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Store, StoreError};

/// Saved queries one user may keep: enough for a working library, not a dumping ground.
pub const MAX_SAVED_QUERIES: i64 = 200;

/// A query saved in the Explorer.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedQuery {
    pub id: i64,
    pub name: String,
    pub query: String,
    /// Its variables, a JSON object, if it was saved with any.
    pub variables: Option<serde_json::Value>,
    /// µs since the Unix epoch.
    pub updated_at: i64,
}

/// How one user's overview arranges the KPI tiles: `tiles` first in that order, then any KPI
/// not named, minus `hidden`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverviewLayout {
    pub tiles: Vec<i64>,
    pub hidden: Vec<i64>,
    /// µs since the Unix epoch; `None` for a user who never saved one.
    pub updated_at: Option<i64>,
}

const QUERY_COLUMNS: &str = "id, name, query, variables::text AS variables, \
     (extract(epoch from updated_at) * 1000000)::bigint AS updated_us";

fn saved_query(row: &PgRow) -> Result<SavedQuery, StoreError> {
    let variables: Option<String> = row.try_get("variables")?;
    let variables = variables
        .map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Query(sqlx::Error::Decode(Box::new(e)))))
        .transpose()?;
    Ok(SavedQuery {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        query: row.try_get("query")?,
        variables,
        updated_at: row.try_get("updated_us")?,
    })
}

impl Store {
    /// `owner`'s saved queries, by name.
    pub async fn saved_queries(&self, owner: &str) -> Result<Vec<SavedQuery>, StoreError> {
        let sql = format!("SELECT {QUERY_COLUMNS} FROM saved_queries WHERE owner = $1 ORDER BY name, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner).fetch_all(&self.pool).await?;
        rows.iter().map(saved_query).collect()
    }

    /// Saves a query under `name`, replacing `owner`'s query of that name if there is one.
    pub async fn save_query(
        &self,
        owner: &str,
        name: &str,
        query: &str,
        variables: Option<&serde_json::Value>,
    ) -> Result<SavedQuery, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One user's saves are serialised, so the cap cannot be raced past.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('saved_queries'), hashtext($1))")
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        let (count, exists): (i64, bool) =
            sqlx::query_as("SELECT count(*), coalesce(bool_or(name = $2), false) FROM saved_queries WHERE owner = $1")
                .bind(owner)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if !exists && count >= MAX_SAVED_QUERIES {
            return Err(StoreError::Limit(format!(
                "you have {count} saved queries, the most one user may keep: delete one first"
            )));
        }
        let sql = format!(
            "INSERT INTO saved_queries (owner, name, query, variables) VALUES ($1, $2, $3, $4::jsonb) \
             ON CONFLICT (owner, name) DO UPDATE SET query = excluded.query, variables = excluded.variables, \
             updated_at = now() RETURNING {QUERY_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(name)
            .bind(query)
            .bind(variables.map(|v| v.to_string()))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        saved_query(&row)
    }

    /// Deletes one of `owner`'s saved queries; false when `owner` has none with that id.
    pub async fn delete_saved_query(&self, owner: &str, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM saved_queries WHERE owner = $1 AND id = $2")
            .bind(owner)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// `owner`'s overview layout; the empty one (every KPI, in the server's order) if never saved.
    pub async fn overview_layout(&self, owner: &str) -> Result<OverviewLayout, StoreError> {
        let row = sqlx::query(
            "SELECT tiles, hidden, (extract(epoch from updated_at) * 1000000)::bigint AS updated_us \
             FROM overview_layouts WHERE owner = $1",
        )
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        row.map_or(Ok(OverviewLayout::default()), |row| layout(&row))
    }

    pub async fn save_overview_layout(
        &self,
        owner: &str,
        tiles: &[i64],
        hidden: &[i64],
    ) -> Result<OverviewLayout, StoreError> {
        let row = sqlx::query(
            "INSERT INTO overview_layouts (owner, tiles, hidden) VALUES ($1, $2, $3) \
             ON CONFLICT (owner) DO UPDATE SET tiles = excluded.tiles, hidden = excluded.hidden, updated_at = now() \
             RETURNING tiles, hidden, (extract(epoch from updated_at) * 1000000)::bigint AS updated_us",
        )
        .bind(owner)
        .bind(tiles)
        .bind(hidden)
        .fetch_one(&self.pool)
        .await?;
        layout(&row)
    }
}

fn layout(row: &PgRow) -> Result<OverviewLayout, StoreError> {
    Ok(OverviewLayout {
        tiles: row.try_get("tiles")?,
        hidden: row.try_get("hidden")?,
        updated_at: Some(row.try_get("updated_us")?),
    })
}

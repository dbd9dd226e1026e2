//! Sources and their watermarks in the app database.

use crate::change::Position;
use crate::watermark::WatermarkValues;

use super::{Store, StoreError};

/// A source as the app database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub name: String,
    pub kind: String,
    /// What the source keeps on its server, in the kind's own names (`slot`, `server_id`).
    pub details: serde_json::Value,
}

impl Store {
    /// Records a source, and the fresh snapshot its replica was just loaded from.
    pub async fn register_source(&self, source: &SourceRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sources (name, kind, details) VALUES ($1, $2, $3::jsonb) \
             ON CONFLICT (name) DO UPDATE SET kind = $2, details = $3::jsonb, updated_at = now()",
        )
        .bind(&source.name)
        .bind(&source.kind)
        .bind(source.details.to_string())
        .execute(&self.pool)
        .await?;
        sqlx::query("INSERT INTO source_watermarks (source) VALUES ($1) ON CONFLICT (source) DO NOTHING")
            .bind(&source.name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn record_snapshot(&self, source: &str, position: Position) -> Result<(), StoreError> {
        sqlx::query("UPDATE source_watermarks SET snapshot_position = $2, snapshot_at = now(), updated_at = now() WHERE source = $1")
            .bind(source)
            .bind(position.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn record_watermarks(&self, source: &str, w: WatermarkValues) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE source_watermarks SET received = $2, applied = $3, acknowledged = $4, updated_at = now() WHERE source = $1",
        )
        .bind(source)
        .bind(w.received.to_string())
        .bind(w.applied.to_string())
        .bind(w.acknowledged.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

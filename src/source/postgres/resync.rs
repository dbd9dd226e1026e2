//! Resync: one table copied again on its own while the others stream.
//!
//! One mechanism serves four cases — a table whose columns changed (`ADD COLUMN … DEFAULT` and
//! rewrites emit no row events), a table added to the configuration or missing from the
//! checkpoint, a quarantined table, and a table the snapshot's TRUNCATE guard caught. A
//! temporary slot exports a snapshot at its consistent point `C`; the table is read in it, and
//! the stream, which held back the table's changes meanwhile, drops those at or before `C` and
//! applies the rest (see [`super::stream`]). The temporary slot is never streamed from and
//! vanishes with its session.

use std::sync::Arc;

use pgwire_replication::{Lsn, ReplicationClient};
use tokio::sync::mpsc;

use super::PgError;
use super::catalog::PgTable;
use super::connection::Endpoint;
use super::snapshot::SnapshotTx;
use super::{preflight, slot};
use crate::change::{Position, SourceEvent};
use crate::error::SourceError;
use crate::registry::TableSpec;

/// How many times a resync is tried before the table is quarantined.
pub const ATTEMPTS: u32 = 3;
/// How many TRUNCATE races a resync may lose before the table is quarantined.
pub const RACE_ATTEMPTS: u32 = 30;

/// What a resync needs; cheap to clone for a retry.
#[derive(Clone)]
pub struct Job {
    pub endpoint: Endpoint,
    pub source_name: Arc<str>,
    /// The source's slot: the temporary one is named after it.
    pub slot: String,
    pub publication: String,
    pub spec: Arc<TableSpec>,
    /// The version the new shape gets.
    pub version: u32,
    pub chunk_rows: usize,
    pub out: mpsc::Sender<SourceEvent>,
    /// The stream reads binary tuples.
    pub binary: bool,
}

/// A table copied again: its new shape, consistent as of `position`.
pub struct Resynced {
    pub table: PgTable,
    pub position: Position,
}

/// Copies the table at a new consistent point; its rows go to `out` between SnapshotBegin and
/// SnapshotEnd.
pub async fn run(job: Job) -> Result<Resynced, SourceError> {
    let name = &*job.source_name;
    let temp_slot = format!("{}_resync_{}", job.slot, job.spec.id.0);
    let config = job.endpoint.replication(&temp_slot, &job.publication, Lsn(0))?;
    let mut repl = ReplicationClient::connect_gated(config)
        .await
        .map_err(|error| PgError::Replication { source_name: name.into(), error })?;
    let client = job.endpoint.connect().await?;
    // A table added to the configuration at run time is not published yet. Added before the
    // consistent point, so every change after it reaches the stream.
    preflight::ensure_publication(&client, name, &job.publication, std::slice::from_ref(&job.spec)).await?;
    let new_slot = slot::create(&mut repl, name, &temp_slot, true, true).await?;
    let snap = SnapshotTx { client: &client, source_name: name };
    let specs = [job.spec.clone()];
    snap.begin_and_lock(new_slot.snapshot_name.as_deref(), &specs).await?;
    let mut tables = snap.shapes(&specs, job.version).await?;
    let table = tables.pop().expect("one shape per table");
    // A binary stream would carry this table's values in a form opslive cannot read: nothing
    // is copied, and the session starts again in text (the table, not ready since its
    // ResyncBegin, is copied by the next session, so no change of it is lost or doubled).
    if job.binary
        && let Some(why) = super::tuple_format::unsupported(&table)
    {
        snap.rollback().await;
        return Err(PgError::TextNeeded { source_name: name.into(), reason: why }.into());
    }
    if table.rewritten() {
        snap.rollback().await;
        return Err(SourceError::SnapshotUnstable {
            source_name: name.into(),
            table: job.spec.to_string(),
            attempts: 1,
        });
    }
    let position = new_slot.consistent_point;
    let started = std::time::Instant::now();
    let rows = snap.copy_table(&table, position, job.chunk_rows, job.binary, &job.out).await?;
    snap.commit().await?;
    drop(repl);
    tracing::info!(source = name, table = %job.spec, rows, position = %position, ms = started.elapsed().as_millis() as u64, "table resynced");
    Ok(Resynced { table, position })
}

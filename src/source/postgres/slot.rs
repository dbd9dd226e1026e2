//! Replication slots: dropping the old one and creating a new one that exports a snapshot.
//!
//! Until checkpoints exist the replica lives only in memory, so every start takes a fresh
//! snapshot on a new slot: resuming an old slot into an empty replica would lose rows silently.

use pgwire_replication::ReplicationClient;
use tokio_postgres::Client;

use crate::change::Position;
use crate::error::SourceError;

/// A slot just created, with the snapshot it exported.
pub struct NewSlot {
    pub consistent_point: Position,
    /// `None` when the slot was created without exporting a snapshot.
    pub snapshot_name: Option<String>,
}

/// Who holds a slot.
enum Holder {
    NoSlot,
    Free,
    /// The server process streaming from it.
    Process(i32),
}

async fn holder(client: &Client, source_name: &str, slot: &str) -> Result<Holder, SourceError> {
    let row = client
        .query_opt("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .map_err(|error| sql_error(source_name, "reading replication slots", error))?;
    Ok(match row {
        None => Holder::NoSlot,
        Some(row) => row.get::<_, Option<i32>>(0).map_or(Holder::Free, Holder::Process),
    })
}

async fn drop(client: &Client, source_name: &str, slot: &str) -> Result<(), SourceError> {
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .map_err(|error| sql_error(source_name, "dropping the replication slot", error))?;
    tracing::debug!(source = source_name, slot, "dropped the slot");
    Ok(())
}

fn sql_error(source_name: &str, context: &str, error: tokio_postgres::Error) -> SourceError {
    SourceError::Sql { source_name: source_name.into(), context: context.into(), error }
}

/// Drops `slot` if it exists and no one is using it.
pub async fn drop_if_exists(client: &Client, source_name: &str, slot: &str) -> Result<(), SourceError> {
    match holder(client, source_name, slot).await? {
        Holder::NoSlot => Ok(()),
        Holder::Free => drop(client, source_name, slot).await,
        Holder::Process(pid) => Err(SourceError::Preflight {
            source_name: source_name.into(),
            problems: format!(
                "  - replication slot `{slot}` is in use by server process {pid} (another opslive serving this source?); \
                 stop it, or give this instance another `slot`"
            ),
        }),
    }
}

/// Drops `slot` once its session has let go of it; a failure is only logged (the next start
/// drops it anyway).
pub async fn drop_when_released(client: &Client, source_name: &str, slot: &str) {
    for _ in 0..100 {
        let outcome = match holder(client, source_name, slot).await {
            Ok(Holder::NoSlot) => return,
            Ok(Holder::Free) => drop(client, source_name, slot).await,
            // Still held by the walsender that is shutting down.
            Ok(Holder::Process(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => tracing::info!(source = source_name, slot, "dropped the slot on shutdown"),
            Err(e) => tracing::warn!(source = source_name, slot, error = %e, "cannot drop the slot on shutdown"),
        }
        return;
    }
    tracing::warn!(source = source_name, slot, "the slot was still in use after shutdown; the next start drops it");
}

/// Creates the slot on a gated replication session (before it starts streaming).
pub async fn create(
    repl: &mut ReplicationClient,
    source_name: &str,
    slot: &str,
    temporary: bool,
    export_snapshot: bool,
) -> Result<NewSlot, SourceError> {
    // The pre-15 spelling, still accepted, so older servers work too.
    let cmd = format!(
        "CREATE_REPLICATION_SLOT {slot}{} LOGICAL pgoutput {}",
        if temporary { " TEMPORARY" } else { "" },
        if export_snapshot { "EXPORT_SNAPSHOT" } else { "NOEXPORT_SNAPSHOT" }
    );
    let rows = repl
        .simple_query(&cmd)
        .await
        .map_err(|error| SourceError::Replication { source_name: source_name.into(), error })?;
    let text = |i: usize| -> Option<String> {
        rows.first()?.get(i)?.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let consistent_point = text(1).and_then(|s| Position::parse_lsn(&s)).ok_or_else(|| SourceError::Protocol {
        source_name: source_name.into(),
        position: Position::ZERO,
        detail: "CREATE_REPLICATION_SLOT returned no consistent point".into(),
    })?;
    Ok(NewSlot { consistent_point, snapshot_name: if export_snapshot { text(2) } else { None } })
}

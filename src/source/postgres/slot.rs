//! Replication slots: their state and health, dropping an unusable one, creating one that
//! exports a snapshot, and acknowledging one explicitly at shutdown.
//!
//! A slot is resumed only into a replica that holds everything up to where the slot was
//! acknowledged (a checkpoint, or the running replica after a reconnect); otherwise the old
//! slot is dropped and a new one created with a fresh snapshot — resuming an old slot into an
//! empty replica would lose rows silently.

use pgwire_replication::ReplicationClient;
use tokio_postgres::Client;

use super::PgError;
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

/// Ends the server process streaming from a slot.
pub async fn terminate(client: &Client, source_name: &str, pid: i32) -> Result<(), SourceError> {
    client
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .map_err(|error| sql_error(source_name, "ending the previous leader's replication session", error))?;
    Ok(())
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
    PgError::Sql { source_name: source_name.into(), context: context.into(), error }.into()
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
        .map_err(|error| PgError::Replication { source_name: source_name.into(), error })?;
    let text = |i: usize| -> Option<String> {
        rows.first()?.get(i)?.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let consistent_point = text(1).and_then(|s| Position::parse(&s)).ok_or_else(|| SourceError::Protocol {
        source_name: source_name.into(),
        position: Position::ZERO,
        detail: "CREATE_REPLICATION_SLOT returned no consistent point".into(),
    })?;
    Ok(NewSlot { consistent_point, snapshot_name: if export_snapshot { text(2) } else { None } })
}

/// A slot's state, for deciding whether it can be resumed.
pub struct SlotState {
    pub wal_status: Option<String>,
    pub confirmed_flush: Position,
    pub active_pid: Option<i32>,
}

/// The slot's state, `None` when it does not exist.
pub async fn state(client: &Client, source_name: &str, slot: &str) -> Result<Option<SlotState>, SourceError> {
    let row = client
        .query_opt(
            "SELECT wal_status, confirmed_flush_lsn::text, active_pid FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(|error| sql_error(source_name, "reading replication slots", error))?;
    Ok(row.map(|row| SlotState {
        wal_status: row.get(0),
        confirmed_flush: row.get::<_, Option<String>>(1).as_deref().and_then(Position::parse).unwrap_or_default(),
        active_pid: row.get(2),
    }))
}

/// The slot's health for the metrics: WAL status, retained WAL, safe WAL size.
pub async fn health(client: &Client, slot: &str) -> Result<Option<crate::source::SlotHealth>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT coalesce(wal_status, ''), \
                    coalesce(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                                                  ELSE pg_current_wal_lsn() END, restart_lsn), 0)::int8, \
                    safe_wal_size \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(row.map(|row| crate::source::SlotHealth {
        wal_status: row.get(0),
        retained_bytes: row.get::<_, i64>(1).max(0) as u64,
        safe_wal_bytes: row.get(2),
    }))
}

/// Moves the slot's acknowledged position up to `position` once its session has let go of it.
/// `Ok(false)` when there was nothing to do (no slot, or already there).
pub async fn advance_when_released(
    client: &Client,
    source_name: &str,
    slot: &str,
    position: Position,
) -> Result<bool, SourceError> {
    for _ in 0..100 {
        match state(client, source_name, slot).await? {
            None => return Ok(false),
            Some(s) if s.confirmed_flush >= position => return Ok(false),
            Some(s) if s.active_pid.is_some() => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            Some(_) => {
                client
                    .execute(
                        "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                        &[&slot, &position.to_string()],
                    )
                    .await
                    .map_err(|error| sql_error(source_name, "acknowledging the slot", error))?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

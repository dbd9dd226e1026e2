//! PostgreSQL source: logical replication with `pgoutput`.
//!
//! A start checks the server and tables (saying what to change when something is missing),
//! makes sure the publication exists, creates a slot that exports a snapshot, copies every
//! watched table inside that snapshot, and then streams from the slot's consistent point.
//! Protocol types stay in this module: it emits [`SourceEvent`]s only.

mod capture;
mod catalog;
mod connection;
mod copy_text;
mod decode;
mod pgoutput;
mod preflight;
mod slot;
mod snapshot;
mod stream;
pub mod text;

use std::path::PathBuf;
use std::sync::Arc;

use pgwire_replication::{Lsn, ReplicationClient};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use capture::replay as replay_capture;
pub use connection::Endpoint;

use crate::change::{SourceEvent, SourceName};
use crate::config::SecretUrl;
use crate::error::SourceError;
use crate::registry::{Registry, TableSpec};
use crate::watermark::Watermarks;
use catalog::TableProblems;
use snapshot::{Shapes, SnapshotTx, send};

/// How many times a snapshot is retaken when a table is rewritten under it.
const SNAPSHOT_ATTEMPTS: u32 = 8;

/// Everything needed to run one PostgreSQL source.
pub struct PostgresSource {
    pub name: SourceName,
    pub endpoint: Endpoint,
    pub slot: String,
    pub publication: String,
    /// A temporary slot vanishes with the session (`tail`); a permanent one is dropped and
    /// recreated at each start until checkpoints exist.
    pub temporary: bool,
    /// Copy the tables first; without it only changes from now on are streamed.
    pub snapshot: bool,
    pub chunk_rows: usize,
    pub registry: Arc<Registry>,
    pub watermarks: Arc<Watermarks>,
    pub stats: Arc<super::SourceStats>,
    /// Record the raw stream to this file.
    pub capture: Option<PathBuf>,
}

impl PostgresSource {
    pub fn new(
        name: &str,
        url: &SecretUrl,
        slot: String,
        publication: String,
        registry: Arc<Registry>,
        watermarks: Arc<Watermarks>,
    ) -> Result<PostgresSource, SourceError> {
        Ok(PostgresSource {
            name: Arc::from(name),
            endpoint: Endpoint::new(name, url)?,
            slot,
            publication,
            temporary: false,
            snapshot: true,
            chunk_rows: 1024,
            registry,
            watermarks,
            stats: Arc::default(),
            capture: None,
        })
    }

    fn specs(&self) -> Vec<Arc<TableSpec>> {
        self.registry.of_source(&self.name).cloned().collect()
    }

    /// Runs until cancelled or an error; emits the snapshot, then transactions.
    pub async fn run(self, out: mpsc::Sender<SourceEvent>, cancel: CancellationToken) -> Result<(), SourceError> {
        let stats = self.stats.clone();
        let result = self.session(out, cancel).await;
        stats.set_connected(false);
        result
    }

    async fn session(self, out: mpsc::Sender<SourceEvent>, cancel: CancellationToken) -> Result<(), SourceError> {
        let name = self.name.to_string();
        let sql = self.endpoint.connect().await?;
        preflight::check_server(&sql, &name, &self.slot).await?;
        let specs = self.specs();
        // Report every table problem before touching publication or slot.
        let mut problems = Vec::new();
        for spec in &specs {
            let read = catalog::read_table(&sql, spec, 1).await.map_err(|error| SourceError::Sql {
                source_name: name.clone(),
                context: format!("reading the catalog for {spec}"),
                error,
            })?;
            if let Err(TableProblems(mut p)) = read {
                problems.append(&mut p);
            }
        }
        if !problems.is_empty() {
            return Err(SourceError::Preflight { source_name: name, problems: preflight::bullet(&problems) });
        }
        preflight::ensure_publication(&sql, &name, &self.publication, &specs).await?;

        for attempt in 1..=SNAPSHOT_ATTEMPTS {
            if !self.temporary {
                slot::drop_if_exists(&sql, &name, &self.slot).await?;
            }
            let config = self.endpoint.replication(&self.slot, &self.publication, Lsn(0))?;
            let mut repl = ReplicationClient::connect_gated(config)
                .await
                .map_err(|error| SourceError::Replication { source_name: name.clone(), error })?;
            // Connected before the slot exists, so nothing but one round trip separates the
            // snapshot's export from the tables' lock.
            let snap_client = self.endpoint.connect().await?;
            let new_slot = slot::create(&mut repl, &name, &self.slot, self.temporary, self.snapshot).await?;
            let snap = SnapshotTx { client: &snap_client, source_name: &name };
            snap.begin_and_lock(new_slot.snapshot_name.as_deref(), &specs).await?;
            let tables = match snap.shapes(&specs, 1).await? {
                Shapes::Ready(tables) => tables,
                Shapes::Rewritten(table) => {
                    tracing::warn!(source = %name, table = %table, attempt, "table rewritten while the snapshot was taken; taking it again");
                    snap.rollback().await;
                    drop(repl);
                    self.stats.snapshot_retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if attempt == SNAPSHOT_ATTEMPTS {
                        return Err(SourceError::SnapshotUnstable { source_name: name, table, attempts: attempt });
                    }
                    // Step out of the rhythm of whatever keeps rewriting the table.
                    let pause = rand::random_range(50..150) * u64::from(attempt);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    continue;
                }
            };
            // The snapshot is imported: the replication session may now start; what it sends
            // waits in its bounded buffer while the tables are copied.
            repl.start().await.map_err(|error| SourceError::Replication { source_name: name.clone(), error })?;
            let position = new_slot.consistent_point;
            tracing::info!(source = %name, slot = %self.slot, consistent_point = %position, "slot created");
            if self.snapshot {
                for table in &tables {
                    let started = std::time::Instant::now();
                    let rows = snap.copy_table(table, position, self.chunk_rows, &out).await?;
                    tracing::info!(source = %name, table = %table.schema.spec, rows, ms = started.elapsed().as_millis() as u64, "table copied");
                }
            } else {
                for table in &tables {
                    let id = table.schema.id();
                    send(
                        &out,
                        SourceEvent::Table(crate::change::TableEvent::SnapshotBegin {
                            schema: table.schema.clone(),
                            estimated_rows: None,
                        }),
                        &name,
                    )
                    .await?;
                    send(
                        &out,
                        SourceEvent::Table(crate::change::TableEvent::SnapshotEnd { table: id, position, rows: 0 }),
                        &name,
                    )
                    .await?;
                }
            }
            snap.commit().await?;
            drop(snap_client);
            send(&out, SourceEvent::Consistent { source: self.name.clone(), position }, &name).await?;
            self.stats.set_connected(true);
            repl.wait_started().await.map_err(|error| SourceError::Replication { source_name: name.clone(), error })?;
            let capture = match &self.capture {
                Some(path) => Some(capture::Capture::create(path).map_err(|e| SourceError::Protocol {
                    source_name: name.clone(),
                    position,
                    detail: format!("cannot write capture file {}: {e}", path.display()),
                })?),
                None => None,
            };
            let stream = stream::Stream {
                source_name: self.name.clone(),
                repl,
                decoder: decode::Decoder::new(self.name.clone(), self.registry.clone(), tables),
                watermarks: self.watermarks.clone(),
                capture,
                idle_at: position,
            };
            // The server's own position, for the lag metrics, is polled beside the stream on the
            // SQL session (the stream's keepalives report only what was sent).
            tokio::select! {
                result = stream.run(out, cancel) => result?,
                () = poll_server_position(&sql, &self.watermarks) => {}
            }
            if !self.temporary {
                // The next start snapshots afresh on a new slot, so this one has no use once
                // stopped: drop it rather than let it hold WAL while opslive is down.
                // (Checkpoints, which resume a slot, will keep it.)
                slot::drop_when_released(&sql, &name, &self.slot).await;
            }
            return Ok(());
        }
        unreachable!("the loop returns on its last attempt")
    }
}

/// How often the server's WAL position is read for the lag metrics.
const SERVER_POSITION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads the server's flushed WAL position (what a walsender may send) forever.
async fn poll_server_position(sql: &tokio_postgres::Client, watermarks: &Watermarks) {
    let query = "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                 ELSE pg_current_wal_flush_lsn() END)::text";
    let mut tick = tokio::time::interval(SERVER_POSITION_INTERVAL);
    loop {
        tick.tick().await;
        match sql.query_one(query, &[]).await {
            Ok(row) => {
                if let Some(p) = row.get::<_, Option<String>>(0).as_deref().and_then(crate::change::Position::parse_lsn)
                {
                    watermarks.server(p);
                }
            }
            // The stream notices a lost server itself; this only feeds a metric.
            Err(e) => tracing::debug!(error = %e, "cannot read the server's WAL position"),
        }
    }
}

/// Decodes a captured stream against table shapes derived from its Relation messages, for
/// tests of the decoder on real bytes. Returns the changes as canonical JSON lines.
pub fn decode_capture_for_test(source: &str, registry: Arc<Registry>, bytes: &[u8]) -> Result<Vec<String>, String> {
    use crate::registry::{Column, TableSchema};
    let messages = capture::replay(bytes).map_err(|e| e.to_string())?;
    let mut tables = Vec::new();
    for m in &messages {
        if let pgoutput::Message::Relation(rel) = m {
            let Some(id) = registry.find(source, &rel.namespace, &rel.name) else { continue };
            let spec = registry.get(id).expect("registered").clone();
            let columns: Vec<Column> = rel
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.as_str().into(),
                    ty: text::column_type(c.type_oid, "unknown", array_element(c.type_oid)),
                    nullable: true,
                })
                .collect();
            let key = rel.columns.iter().enumerate().filter(|(_, c)| c.flags & 1 == 1).map(|(i, _)| i).collect();
            tables.push(catalog::PgTable {
                schema: Arc::new(TableSchema { spec, columns, key, indexed: vec![], version: 1 }),
                column_type_oids: rel.columns.iter().map(|c| c.type_oid).collect(),
                relfilenode_in_snapshot: 0,
                relfilenode_now: 0,
                estimated_rows: None,
            });
        }
    }
    let mut decoder = decode::Decoder::new(source.into(), registry, tables);
    let mut out = Vec::new();
    let mut decoded = Vec::new();
    // Lines are written as text with `serde_json::to_string`, not built as `serde_json::Value`:
    // a `Value::Json` serialises as a raw value, which `serde_json::Value` would re-parse into
    // f64 numbers and sorted keys, losing exactly what the canonical form keeps.
    fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
        serde_json::to_string(v).expect("canonical values serialise")
    }
    // A cell the source did not send (`None`: unchanged TOAST, outside a key-only old tuple) is
    // the string "<unsent>", so that it stays distinguishable from SQL NULL (`null`).
    let image = |i: &Option<crate::change::Image>| match i {
        None => "null".to_string(),
        Some(i) => {
            let cells: Vec<String> =
                i.0.iter().map(|v| v.as_ref().map_or_else(|| "\"<unsent>\"".to_string(), json)).collect();
            format!("[{}]", cells.join(","))
        }
    };
    for m in messages {
        decoder.decode(m, &mut decoded).map_err(|e| e.to_string())?;
        for d in decoded.drain(..) {
            if let decode::Decoded::Change(c) = d {
                out.push(format!(
                    "{{\"op\":{},\"key\":{},\"before\":{},\"after\":{}}}",
                    json(&c.op),
                    json(&c.key.0),
                    image(&c.before),
                    image(&c.after)
                ));
            }
        }
    }
    Ok(out)
}

/// Element types of the built-in array types (for decoding captures without a catalog).
fn array_element(oid: u32) -> Option<(u32, &'static str)> {
    Some(match oid {
        1000 => (16, "boolean"),
        1005 => (21, "smallint"),
        1007 => (23, "integer"),
        1016 => (20, "bigint"),
        1021 => (700, "real"),
        1022 => (701, "double precision"),
        1231 => (1700, "numeric"),
        1009 => (25, "text"),
        1015 => (1043, "character varying"),
        2951 => (2950, "uuid"),
        1182 => (1082, "date"),
        1115 => (1114, "timestamp"),
        1185 => (1184, "timestamptz"),
        3807 => (3802, "jsonb"),
        _ => return None,
    })
}

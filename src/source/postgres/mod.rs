//! PostgreSQL source: logical replication with `pgoutput`.
//!
//! A start checks the server and tables (saying what to change when something is missing),
//! makes sure the publication exists, creates a slot that exports a snapshot, copies every
//! watched table inside that snapshot, and then streams from the slot's consistent point.
//! Protocol types stay in this module: it emits [`SourceEvent`]s only.

pub mod binary;
mod capture;
mod catalog;
mod connection;
mod copy_binary;
mod copy_text;
mod decode;
mod error;
pub mod floor;
mod held;
mod pgoutput;
mod preflight;
mod resync;
mod slot;
mod snapshot;
mod stream;
pub mod text;
pub mod tls;
mod tuple_format;

use std::path::PathBuf;
use std::sync::Arc;

use pgwire_replication::{Lsn, ReplicationClient};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use capture::replay as replay_capture;
pub use connection::Endpoint;
pub use error::PgError;

use super::send;
use crate::change::{Position, SourceEvent, SourceName, TableEvent};
use crate::config::{PostgresConfig, SecretUrl};
use crate::error::SourceError;
use crate::registry::{Registry, TableId, TableSpec};
use crate::watermark::Watermarks;
use catalog::{PgTable, TableProblems};
use snapshot::SnapshotTx;

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
    /// Resume the slot from the replica's position when possible, instead of a snapshot.
    pub resume: Option<Resume>,
    /// Keep the slot when the session ends (checkpoints resume it).
    pub keep_slot: bool,
    /// Emit a heartbeat through the slot this often.
    pub heartbeat: Option<std::time::Duration>,
    /// Resyncs asked for from outside.
    pub requests: Arc<super::ResyncRequests>,
    /// Ask for binary tuples (used when the server and every watched type allow it).
    pub binary: bool,
    /// What a large transaction may hold before it is passed on in parts.
    pub memory: Arc<crate::tx_memory::TxMemory>,
    /// End a session that still holds the slot (a cluster leader taking over from one that
    /// lost its lease) instead of waiting for it.
    pub take_over: bool,
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
            endpoint: Endpoint::new(name, url, None)?,
            slot,
            publication,
            temporary: false,
            snapshot: true,
            chunk_rows: 1024,
            registry,
            watermarks,
            stats: Arc::default(),
            capture: None,
            resume: None,
            keep_slot: false,
            take_over: false,
            heartbeat: None,
            requests: Arc::default(),
            binary: crate::config::DEFAULT_POSTGRES_BINARY,
            memory: Arc::default(),
        })
    }

    fn specs(&self) -> Vec<Arc<TableSpec>> {
        self.registry.of_source(&self.name)
    }

    /// Runs until cancelled or an error: resumes the slot when `resume` allows it, otherwise
    /// emits a snapshot; then transactions.
    pub async fn run(self, out: mpsc::Sender<SourceEvent>, cancel: CancellationToken) -> Result<(), SourceError> {
        let stats = self.stats.clone();
        let result = self.session(out, cancel).await;
        stats.set_connected(false);
        result
    }

    async fn session(self, out: mpsc::Sender<SourceEvent>, cancel: CancellationToken) -> Result<(), SourceError> {
        let name = self.name.to_string();
        let sql = self.endpoint.connect().await?;
        let server_version = preflight::check_server(&sql, &name, &self.slot).await?;
        let specs = self.specs();
        // Report every table problem before touching publication or slot.
        let mut problems = Vec::new();
        let mut now = Vec::new();
        for spec in &specs {
            let read = catalog::read_table(&sql, spec, 1).await.map_err(|error| PgError::Sql {
                source_name: name.clone(),
                context: format!("reading the catalog for {spec}"),
                error,
            })?;
            match read {
                Ok(table) => now.push(table),
                Err(TableProblems(mut p)) => problems.append(&mut p),
            }
        }
        if !problems.is_empty() {
            return Err(SourceError::Preflight { source_name: name, problems: preflight::bullet(&problems) });
        }
        preflight::ensure_publication(&sql, &name, &self.publication, &specs).await?;
        let binary = match tuple_format::choose(self.binary, server_version, &now) {
            Ok(binary) => binary,
            Err(why) => {
                tracing::warn!(source = %name, reason = %why, "binary tuples were asked for; streaming text instead");
                false
            }
        };
        // Before the snapshot's first event: whoever sees the tables loaded sees the form too.
        self.stats.binary_tuples.store(binary, std::sync::atomic::Ordering::Relaxed);

        if let Some(resume) = self.resume.clone().filter(|_| !self.temporary)
            && let Some((tables, resync)) = self.resumable(&sql, &resume, now).await?
        {
            let config =
                self.endpoint.replication(&self.slot, &self.publication, Lsn(resume.position.0))?.with_binary(binary);
            let repl = ReplicationClient::connect(config)
                .await
                .map_err(|error| PgError::Replication { source_name: name.clone(), error })?;
            tracing::info!(source = %name, slot = %self.slot, position = %resume.position, "resuming the slot; no snapshot needed");
            self.stats.resumes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            send(&out, SourceEvent::Consistent { source: self.name.clone(), position: resume.position }, &name).await?;
            self.stats.set_connected(true);
            let quarantined = resume.quarantined.clone();
            let started = Started { repl, tables, position: resume.position, resync, quarantined, binary };
            return self.stream(sql, started, out, cancel).await;
        }

        if !self.temporary {
            slot::drop_if_exists(&sql, &name, &self.slot).await?;
        }
        let config = self.endpoint.replication(&self.slot, &self.publication, Lsn(0))?.with_binary(binary);
        let mut repl = ReplicationClient::connect_gated(config)
            .await
            .map_err(|error| PgError::Replication { source_name: name.clone(), error })?;
        // Connected before the slot exists, so nothing but one round trip separates the
        // snapshot's export from the tables' lock.
        let snap_client = self.endpoint.connect().await?;
        let new_slot = slot::create(&mut repl, &name, &self.slot, self.temporary, self.snapshot).await?;
        let snap = SnapshotTx { client: &snap_client, source_name: &name };
        snap.begin_and_lock(new_slot.snapshot_name.as_deref(), &specs).await?;
        let (tables, rewritten): (Vec<PgTable>, Vec<PgTable>) =
            snap.shapes(&specs, 1).await?.into_iter().partition(|t| !t.rewritten());
        // The snapshot is imported: the replication session may now start; what it sends
        // waits in its bounded buffer while the tables are copied.
        repl.start().await.map_err(|error| PgError::Replication { source_name: name.clone(), error })?;
        let position = new_slot.consistent_point;
        tracing::info!(source = %name, slot = %self.slot, consistent_point = %position, "slot created");
        self.stats.snapshots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.snapshot {
            for table in &tables {
                let started = std::time::Instant::now();
                let rows = snap.copy_table(table, position, self.chunk_rows, binary, &out).await?;
                let format = if binary { "binary" } else { "text" };
                tracing::info!(source = %name, table = %table.schema.spec, rows, format, ms = started.elapsed().as_millis() as u64, "table copied");
            }
        } else {
            for table in &tables {
                let id = table.schema.id();
                let begin = TableEvent::SnapshotBegin { schema: table.schema.clone(), estimated_rows: None };
                send(&out, SourceEvent::Table(begin), &name).await?;
                send(&out, SourceEvent::Table(TableEvent::SnapshotEnd { table: id, position, rows: 0 }), &name).await?;
            }
        }
        // A table truncated or rewritten after the snapshot was exported reads as empty in it
        // (TRUNCATE is not MVCC-safe): it is copied again on its own while the rest streams.
        let mut resync = Vec::new();
        for table in &rewritten {
            tracing::warn!(source = %name, table = %table.schema.spec, "table rewritten while the snapshot was taken; it is copied again on its own");
            self.stats.snapshot_retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let begin =
                TableEvent::SnapshotBegin { schema: table.schema.clone(), estimated_rows: table.estimated_rows };
            send(&out, SourceEvent::Table(begin), &name).await?;
            resync.push((table.schema.id(), "truncated or rewritten while the snapshot was taken".to_string()));
        }
        snap.commit().await?;
        drop(snap_client);
        send(&out, SourceEvent::Consistent { source: self.name.clone(), position }, &name).await?;
        self.stats.set_connected(true);
        repl.wait_started().await.map_err(|error| PgError::Replication { source_name: name.clone(), error })?;
        let started = Started { repl, tables, position, resync, quarantined: Vec::new(), binary };
        self.stream(sql, started, out, cancel).await
    }

    /// Whether the slot can be resumed from `resume` (the replica's position): it exists, is not
    /// invalidated, and has not been acknowledged past the replica. Says why not in the log.
    /// `Some` gives the shapes to decode with, and the tables to copy again on their own: those
    /// the replica does not hold (added, or still loading), and those whose columns changed
    /// while opslive was away.
    async fn resumable(
        &self,
        sql: &tokio_postgres::Client,
        resume: &Resume,
        now: Vec<PgTable>,
    ) -> Result<Option<(Vec<PgTable>, Vec<(TableId, String)>)>, SourceError> {
        let name = &*self.name;
        // After a crash the server may not have noticed yet that the old session is gone.
        let mut state = slot::state(sql, name, &self.slot).await?;
        if self.take_over
            && let Some(pid) = state.as_ref().and_then(|s| s.active_pid)
        {
            // The cluster's lease says this instance leads: whoever streams from the slot is a
            // leader that lost its lease (its writes to the bus are already refused).
            tracing::warn!(source = %name, slot = %self.slot, pid, "ending the session of the previous leader on the slot");
            slot::terminate(sql, name, pid).await?;
        }
        for _ in 0..100 {
            if state.as_ref().is_none_or(|s| s.active_pid.is_none()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            state = slot::state(sql, name, &self.slot).await?;
        }
        let why_not = match state {
            None => Some("the replication slot is gone (dropped, or never created on this server)".to_string()),
            Some(s) if s.wal_status.as_deref() == Some("lost") => {
                Some("the replication slot was invalidated (wal_status = lost: max_slot_wal_keep_size exceeded)".into())
            }
            Some(s) if s.confirmed_flush > resume.position => Some(format!(
                "the replication slot is acknowledged up to {} but the replica only holds changes up to {}: \
                 the slot was used or recreated since",
                s.confirmed_flush, resume.position
            )),
            Some(s) if s.active_pid.is_some() => {
                return Err(SourceError::Preflight {
                    source_name: name.into(),
                    problems: format!(
                        "  - replication slot `{}` is in use by server process {} (another opslive serving this source?); \
                         stop it, or give this instance another `slot`",
                        self.slot,
                        s.active_pid.unwrap_or_default()
                    ),
                });
            }
            Some(_) => None,
        };
        if let Some(reason) = why_not {
            tracing::warn!(source = %name, slot = %self.slot, reason = %reason, "cannot resume; taking a fresh snapshot on a new slot");
            return Ok(None);
        }
        let mut tables = Vec::with_capacity(now.len());
        let mut resync = Vec::new();
        for table in now {
            match resume.plan(&table.schema) {
                Ok(held) => tables.push(PgTable { schema: held, ..table }),
                Err(why) => resync.push((table.schema.id(), why)),
            }
        }
        Ok(Some((tables, resync)))
    }

    /// Streams from a started replication session until cancelled, beside a task that polls
    /// the server (WAL position, slot health) and emits heartbeats.
    async fn stream(
        self,
        sql: tokio_postgres::Client,
        started: Started,
        out: mpsc::Sender<SourceEvent>,
        cancel: CancellationToken,
    ) -> Result<(), SourceError> {
        let Started { repl, tables, position, resync, quarantined, binary } = started;
        tracing::info!(source = %self.name, tuples = if binary { "binary" } else { "text" }, "streaming changes");
        let name = self.name.to_string();
        let held = held::Held::new(
            held::Jobs {
                endpoint: self.endpoint.clone(),
                source_name: self.name.clone(),
                slot: self.slot.clone(),
                publication: self.publication.clone(),
                chunk_rows: self.chunk_rows,
                registry: self.registry.clone(),
                out: out.clone(),
                binary,
            },
            quarantined,
        );
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
            stats: self.stats.clone(),
            held,
            requests: self.requests.clone(),
            decoded: Vec::new(),
            memory: self.memory.clone(),
        };
        let monitor = Monitor {
            source_name: &name,
            sql: &sql,
            slot: &self.slot,
            watermarks: &self.watermarks,
            stats: &self.stats,
        };
        tokio::select! {
            result = stream.run(out, cancel, resync) => result?,
            e = monitor.run(self.heartbeat) => return Err(e),
        }
        if !self.temporary && !self.keep_slot {
            // Without checkpoints the next start snapshots afresh on a new slot, so this one has
            // no use once stopped: drop it rather than let it hold WAL while opslive is down.
            slot::drop_when_released(&sql, &name, &self.slot).await;
        }
        Ok(())
    }
}

/// A replication session ready to stream: its tables' shapes, where it starts, and the tables
/// to copy again on their own first.
struct Started {
    repl: ReplicationClient,
    tables: Vec<PgTable>,
    position: Position,
    resync: Vec<(TableId, String)>,
    /// Tables set aside: the replica's quarantine when resuming, none after a fresh snapshot
    /// (it copies them too).
    quarantined: Vec<TableId>,
    /// Column values come in binary form.
    binary: bool,
}

pub use super::Resume;

/// A configured PostgreSQL source, as `serve` runs it: each session is a [`PostgresSource`]
/// on the configured slot and publication.
pub struct Configured {
    name: String,
    url: SecretUrl,
    endpoint: Endpoint,
    slot: String,
    publication: String,
    chunk_rows: usize,
    heartbeat: Option<std::time::Duration>,
    binary: bool,
    wiring: super::Wiring,
}

impl Configured {
    pub fn new(name: &str, config: &PostgresConfig, wiring: super::Wiring) -> Result<Configured, SourceError> {
        let slot = match wiring.session {
            super::SessionKind::Serving => config.slot_name(name),
            // A temporary slot, dropped by the server when the session ends.
            super::SessionKind::OneOff { .. } => format!("opslive_tail_{}", std::process::id()),
        };
        Ok(Configured {
            name: name.to_string(),
            url: config.url.clone(),
            endpoint: Endpoint::new(name, &config.url, config.tls_ca_file.as_deref())?,
            slot,
            publication: config.publication_name(name),
            chunk_rows: config.snapshot_chunk_rows,
            heartbeat: config.heartbeat(),
            binary: config.binary,
            wiring,
        })
    }

    fn session(&self) -> Result<PostgresSource, SourceError> {
        let w = &self.wiring;
        let mut s = PostgresSource::new(
            &self.name,
            &self.url,
            self.slot.clone(),
            self.publication.clone(),
            w.registry.clone(),
            w.watermarks.clone(),
        )?;
        s.endpoint = self.endpoint.clone();
        s.chunk_rows = self.chunk_rows;
        s.stats = w.stats.clone();
        s.keep_slot = w.durable;
        s.heartbeat = self.heartbeat;
        s.binary = self.binary;
        s.resume = (w.resume)();
        s.requests = w.requests.clone();
        s.memory = w.memory.clone();
        s.take_over = w.take_over;
        if let super::SessionKind::OneOff { snapshot, capture } = &w.session {
            s.temporary = true;
            s.snapshot = *snapshot;
            s.capture = capture.clone();
        }
        Ok(s)
    }
}

impl super::Source for Configured {
    fn record(&self) -> crate::store::SourceRecord {
        crate::store::SourceRecord {
            name: self.name.clone(),
            kind: "postgres".into(),
            details: serde_json::json!({ "slot": self.slot, "publication": self.publication }),
        }
    }

    fn run(
        &self,
        out: mpsc::Sender<SourceEvent>,
        cancel: CancellationToken,
    ) -> futures_util::future::BoxFuture<'static, Result<(), SourceError>> {
        let session = self.session();
        Box::pin(async move { session?.run(out, cancel).await })
    }

    fn acknowledge_final(&self, position: Position) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(acknowledge_on_shutdown(&self.endpoint, &self.name, &self.slot, position))
    }
}

/// After shutdown: acknowledges `position` (the final checkpoint's) on the slot, which
/// pgwire-replication's shutdown does not do. Waits for the walsender to let go of the slot.
pub async fn acknowledge_on_shutdown(endpoint: &Endpoint, name: &str, slot_name: &str, position: Position) {
    let result = async {
        let sql = endpoint.connect().await?;
        slot::advance_when_released(&sql, name, slot_name, position).await
    }
    .await;
    match result {
        Ok(true) => {
            tracing::info!(source = name, slot = slot_name, position = %position, "slot acknowledged up to the final checkpoint")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(source = name, slot = slot_name, error = %e, "cannot acknowledge the final checkpoint; the next start replays from the last acknowledged position")
        }
    }
}

/// How often the server's WAL position and the slot's state are read.
const MONITOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Polls the server beside the stream: its WAL position (for the lag), the slot's health, and
/// emits heartbeats that travel through the slot.
struct Monitor<'a> {
    source_name: &'a str,
    sql: &'a tokio_postgres::Client,
    slot: &'a str,
    watermarks: &'a Watermarks,
    stats: &'a super::SourceStats,
}

impl Monitor<'_> {
    /// Polls until the server ends the monitoring connection: it is shutting down (or the
    /// network is gone). The session ends then, with a retryable error, rather than wait for
    /// the stream to notice: a shutting-down server waits for its walsender, and the walsender
    /// for this client to confirm the last WAL, which may wait on a durable consumer whose
    /// database is this very server (the app database's default) — a deadlock until opslive
    /// lets go. The slot delivers again whatever was not confirmed.
    async fn run(&self, heartbeat: Option<std::time::Duration>) -> SourceError {
        let query = "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                     ELSE pg_current_wal_flush_lsn() END)::text";
        let mut tick = tokio::time::interval(MONITOR_INTERVAL);
        let mut last_beat = std::time::Instant::now();
        loop {
            tick.tick().await;
            match self.sql.query_one(query, &[]).await {
                Ok(row) => {
                    if let Some(p) = row.get::<_, Option<String>>(0).as_deref().and_then(Position::parse) {
                        self.watermarks.server(p);
                    }
                }
                Err(e) if going_away(&e) => {
                    return PgError::Sql {
                        source_name: self.source_name.to_string(),
                        context: "the server ended the monitoring connection (shutting down?); letting go of the slot"
                            .into(),
                        error: e,
                    }
                    .into();
                }
                // The stream notices other trouble itself; this only feeds metrics.
                Err(e) => tracing::debug!(error = %e, "cannot read the server's WAL position"),
            }
            match slot::health(self.sql, self.slot).await {
                Ok(h) => self.stats.set_slot(h),
                Err(e) => tracing::debug!(error = %e, "cannot read the slot's state"),
            }
            if let Some(every) = heartbeat
                && last_beat.elapsed() >= every
            {
                last_beat = std::time::Instant::now();
                let now = chrono::Utc::now().timestamp_micros().to_string();
                if let Err(e) = self
                    .sql
                    .execute("SELECT pg_logical_emit_message(false, $1, $2)", &[&stream::HEARTBEAT_PREFIX, &now])
                    .await
                {
                    tracing::warn!(error = %crate::error::describe_pg_error(&e), "cannot emit a heartbeat");
                }
            }
        }
    }
}

/// Whether an error means the server is going away: it closed the connection, or said it is
/// shutting down (SQLSTATE class 57, operator intervention).
fn going_away(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.is_closed()
        || e.code().is_some_and(|c| {
            [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW].contains(c)
        })
}

/// Parses one pgoutput message (for the fuzzers: an error or a message, never a panic).
pub(crate) fn parse_pgoutput(bytes: &[u8]) -> Result<(), String> {
    pgoutput::parse(bytes::Bytes::copy_from_slice(bytes)).map(|_| ()).map_err(|e| e.to_string())
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
            let spec = registry.get(id).expect("registered");
            let columns: Vec<Column> = rel
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.as_str().into(),
                    ty: text::column_type(c.type_oid, "unknown", array_element(c.type_oid)),
                    nullable: true,
                })
                .collect();
            // Under REPLICA IDENTITY FULL every column is flagged; the captured tables have
            // their primary key first.
            let key = if rel.replica_identity == b'f' {
                vec![0]
            } else {
                rel.columns.iter().enumerate().filter(|(_, c)| c.flags & 1 == 1).map(|(i, _)| i).collect()
            };
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
    for m in messages {
        decoder.decode(m, &mut decoded).map_err(|e| e.to_string())?;
        for d in decoded.drain(..) {
            if let decode::Decoded::Change(c) = d {
                out.push(crate::source::capture_line(&c));
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

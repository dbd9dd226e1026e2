//! MariaDB source: the row binlog, read as a replica would (`COM_BINLOG_DUMP`).
//!
//! A start checks the server's binlog settings and the user's privileges (listing every
//! problem with its fix) and the watched tables. It then resumes from the replica's binlog
//! position when that position is still on the server and the tables kept their shape, and
//! otherwise copies every table in one consistent snapshot and streams from the binlog
//! position that snapshot saw. Nothing is kept on the server: the binlog is the server's own
//! (kept for `binlog_expire_logs_seconds`), and a purged position means a fresh snapshot.
//! Protocol types stay in this module: it emits [`SourceEvent`]s only.

mod binlog;
mod capture;
mod catalog;
mod connection;
mod ddl;
mod error;
mod heartbeat;
mod preflight;
mod rows;
mod snapshot;
mod stream;
mod value;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::BoxFuture;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use capture::{Frame, ReplayCatalog, frames as capture_frames, registry_for, replay as replay_capture};
pub use catalog::CatalogRow;
pub use connection::driver_opts;
pub use error::MariaError;
pub use value::ZERO_DATES;

use super::send;
use crate::change::{Position, SourceEvent, SourceName, TableEvent};
use crate::config::MariadbConfig;
use crate::error::SourceError;
use crate::registry::TableId;
use binlog::Coordinates;
use catalog::{MyTable, TableProblems};
use connection::Endpoint;

/// Attempts at a snapshot that TRUNCATE or DDL keeps invalidating.
const SNAPSHOT_ATTEMPTS: u32 = 5;

/// A configured MariaDB source.
#[derive(Clone)]
pub struct Configured {
    name: SourceName,
    endpoint: Endpoint,
    server_id: u32,
    chunk_rows: usize,
    heartbeat: Option<Duration>,
    /// Where the heartbeat row is written (serving sessions only: `tail` writes nothing).
    heartbeat_table: Option<heartbeat::HeartbeatTable>,
    wiring: super::Wiring,
}

impl Configured {
    pub fn new(name: &str, config: &MariadbConfig, wiring: super::Wiring) -> Result<Configured, SourceError> {
        let server_id = match wiring.session {
            super::SessionKind::Serving => config.server_id(name),
            // A one-off reader of its own, beside a serving one with the configured id.
            super::SessionKind::OneOff { .. } => 0x2000_0000 | (std::process::id() & 0x0FFF_FFFF),
        };
        let database = config.url.0.path().trim_start_matches('/').to_string();
        let heartbeat_table = match wiring.session {
            super::SessionKind::Serving => {
                config.heartbeat_table.as_deref().map(|t| heartbeat::HeartbeatTable::parse(t, &database))
            }
            super::SessionKind::OneOff { .. } => None,
        };
        Ok(Configured {
            heartbeat_table,
            name: Arc::from(name),
            endpoint: Endpoint::new(name, &config.url, config.tls_ca_file.as_deref())?,
            server_id,
            chunk_rows: config.snapshot_chunk_rows,
            heartbeat: config.heartbeat(),
            wiring,
        })
    }

    async fn session(
        self: Arc<Self>,
        out: mpsc::Sender<SourceEvent>,
        cancel: CancellationToken,
    ) -> Result<(), SourceError> {
        let w = &self.wiring;
        let name = self.name.to_string();
        let mut conn = self.endpoint.connect().await?;
        preflight::check_server(&mut conn, &self.endpoint).await?;
        if let Some(table) = &self.heartbeat_table {
            table.prepare(&mut conn, &self.endpoint, &name).await?;
        }
        let mut problems = Vec::new();
        let mut now = Vec::new();
        for spec in w.registry.of_source(&self.name) {
            match catalog::read_table(&mut conn, &self.endpoint, &spec, 1).await? {
                Ok(table) => now.push(table),
                Err(TableProblems(mut p)) => problems.append(&mut p),
            }
        }
        if !problems.is_empty() {
            return Err(SourceError::Preflight { source_name: name, problems: preflight::bullet(&problems) });
        }
        let files = binlog_files(&mut conn, &self.endpoint).await?;
        let checksum: Option<String> = conn
            .query_first("SELECT @@GLOBAL.binlog_checksum")
            .await
            .map_err(self.endpoint.sql("reading binlog_checksum"))?;
        let one_off = matches!(w.session, super::SessionKind::OneOff { .. });
        let resume = if one_off { None } else { (w.resume)() };
        let versions =
            resume.as_ref().map(|r| r.tables.iter().map(|t| (t.id(), t.version)).collect()).unwrap_or_default();
        // A quarantine holds only when resuming: a fresh snapshot copies those tables too.
        let mut quarantined = HashSet::new();
        let (start, tables, resync) = match resume.and_then(|r| Some((self.resumable(&r, &files, now.clone())?, r))) {
            Some(((start, tables, resync), r)) => {
                quarantined.extend(r.quarantined);
                tracing::info!(source = %name, file = %start.file, offset = start.offset, "resuming the binlog; no snapshot needed");
                w.stats.resumes.fetch_add(1, Ordering::Relaxed);
                let position = start.position().unwrap_or_default();
                send(&out, SourceEvent::Consistent { source: self.name.clone(), position }, &self.endpoint.source_name)
                    .await?;
                (start, tables, resync)
            }
            None => {
                let snapshot = !matches!(w.session, super::SessionKind::OneOff { snapshot: false, .. });
                let start = self.snapshot(&now, snapshot, &out).await?;
                (start, now, Vec::new())
            }
        };
        w.stats.set_connected(true);
        let position = start.position().unwrap_or_default();
        let binlog = self.open_binlog(&start).await?;
        let stream = stream::Stream {
            endpoint: self.endpoint.clone(),
            source_name: self.name.clone(),
            registry: w.registry.clone(),
            watermarks: w.watermarks.clone(),
            stats: w.stats.clone(),
            requests: w.requests.clone(),
            tables: tables.into_iter().map(|t| (t.schema.id(), t)).collect(),
            versions,
            quarantined,
            chunk_rows: self.chunk_rows,
            file: start.file.clone(),
            checksums: checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE")),
            at: position,
            heartbeat: self.heartbeat_table.clone(),
            memory: w.memory.clone(),
            capture: match &w.session {
                super::SessionKind::OneOff { capture: Some(path), .. } => {
                    Some(capture::Capture::create(path).map_err(|e| SourceError::Protocol {
                        source_name: name.clone(),
                        position,
                        detail: format!("cannot write capture file {}: {e}", path.display()),
                    })?)
                }
                _ => None,
            },
        };
        tokio::select! {
            result = stream.run(binlog, out, cancel, resync) => result,
            e = monitor(&self.endpoint, conn, &w.watermarks, self.beats()) => Err(e),
        }
    }

    /// The heartbeat row's table, interval and key, when it is written.
    fn beats(&self) -> Option<(&heartbeat::HeartbeatTable, Duration, &str)> {
        Some((self.heartbeat_table.as_ref()?, self.heartbeat?, &self.name))
    }

    /// Whether the stream can go on from the replica's position: its file is still on the
    /// server, and says which tables must be copied again (added, still loading, changed
    /// shape while opslive was away).
    #[allow(clippy::type_complexity)]
    fn resumable(
        &self,
        resume: &super::Resume,
        files: &[String],
        now: Vec<MyTable>,
    ) -> Option<(Coordinates, Vec<MyTable>, Vec<(TableId, String)>)> {
        if resume.position == Position::ZERO {
            return None;
        }
        let sibling = files.first()?;
        let start = binlog::coordinates(resume.position, sibling);
        if !files.contains(&start.file) {
            tracing::warn!(source = %self.name, file = %start.file, "the binlog file of the replica's position is no longer on the server (purged); taking a fresh snapshot");
            return None;
        }
        let mut tables = Vec::with_capacity(now.len());
        let mut resync = Vec::new();
        for table in now {
            match resume.plan(&table.schema) {
                Ok(held) => tables.push(MyTable { schema: held, ..table }),
                Err(why) => resync.push((table.schema.id(), why)),
            }
        }
        Some((start, tables, resync))
    }

    /// Copies every table in one consistent snapshot (or, with `copy` off, only announces
    /// them empty), and returns the binlog position the stream starts at.
    async fn snapshot(
        &self,
        tables: &[MyTable],
        copy: bool,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<Coordinates, SourceError> {
        let stats = &self.wiring.stats;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut snap = snapshot::begin(&self.endpoint).await?;
            let at = snap.at.clone();
            let position = at.position().ok_or_else(|| SourceError::Protocol {
                source_name: self.name.to_string(),
                position: Position::ZERO,
                detail: format!("binlog file name {} has no number", at.file),
            })?;
            tracing::info!(source = %self.name, file = %at.file, offset = at.offset, "snapshot taken");
            stats.snapshots.fetch_add(1, Ordering::Relaxed);
            let mut result = Ok(());
            for table in tables {
                if copy {
                    let started = std::time::Instant::now();
                    match snap.copy_table(&self.endpoint, table, position, self.chunk_rows, out).await {
                        Ok(rows) => {
                            tracing::info!(source = %self.name, table = %table.schema.spec, rows, ms = started.elapsed().as_millis() as u64, "table copied")
                        }
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                } else {
                    let id = table.schema.id();
                    let begin = TableEvent::SnapshotBegin { schema: table.schema.clone(), estimated_rows: None };
                    send(out, SourceEvent::Table(begin), &self.endpoint.source_name).await?;
                    let end = TableEvent::SnapshotEnd { table: id, position, rows: 0 };
                    send(out, SourceEvent::Table(end), &self.endpoint.source_name).await?;
                }
            }
            match result {
                Ok(()) => {
                    snap.commit(&self.endpoint).await?;
                    send(
                        out,
                        SourceEvent::Consistent { source: self.name.clone(), position },
                        &self.endpoint.source_name,
                    )
                    .await?;
                    return Ok(at);
                }
                Err(e) if snapshot::raced(&e) && attempt < SNAPSHOT_ATTEMPTS => {
                    tracing::warn!(source = %self.name, "a table was truncated or altered while the snapshot was read; taking it again");
                    stats.snapshot_retries.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if snapshot::raced(&e) => {
                    return Err(SourceError::SnapshotUnstable {
                        source_name: self.name.to_string(),
                        table: "a watched table".into(),
                        attempts: attempt,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A binlog stream from `start`, registered as a replica with this source's id, with the
    /// server's heartbeats on and MariaDB's own GTID events.
    async fn open_binlog(&self, start: &Coordinates) -> Result<mysql_async::BinlogStream, SourceError> {
        let mut conn = self.endpoint.connect().await?;
        let mut setup = vec!["SET @mariadb_slave_capability = 4".to_string()];
        if let Some(every) = self.heartbeat {
            setup.push(format!("SET @master_heartbeat_period = {}", every.as_nanos()));
        }
        for sql in &setup {
            connection::exec(&mut conn, &self.endpoint, sql).await?;
        }
        let request = mysql_async::BinlogStreamRequest::new(self.server_id)
            .with_filename(start.file.as_bytes())
            .with_pos(start.offset);
        conn.get_binlog_stream(request).await.map_err(self.endpoint.sql("starting the binlog stream"))
    }
}

impl super::Source for Configured {
    fn record(&self) -> crate::store::SourceRecord {
        crate::store::SourceRecord {
            name: self.name.to_string(),
            kind: "mariadb".into(),
            details: serde_json::json!({ "server_id": self.server_id }),
        }
    }

    fn run(
        &self,
        out: mpsc::Sender<SourceEvent>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        let me = Arc::new(self.clone());
        let stats = self.wiring.stats.clone();
        Box::pin(async move {
            let result = me.session(out, cancel).await;
            stats.set_connected(false);
            result
        })
    }

    fn acknowledge_final(&self, position: Position) -> BoxFuture<'_, ()> {
        // The server keeps no state for opslive: the next start resumes from the checkpoint's
        // position for as long as the server keeps that binlog file.
        tracing::info!(source = %self.name, position = %position, "stopped; the next start resumes from the final checkpoint");
        Box::pin(async {})
    }
}

/// The binlog files on the server, oldest first.
async fn binlog_files(conn: &mut mysql_async::Conn, endpoint: &Endpoint) -> Result<Vec<String>, SourceError> {
    let rows: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS").await.map_err(endpoint.sql("listing the binlog files"))?;
    Ok(rows.into_iter().filter_map(|mut r| r.take::<String, _>(0)).collect())
}

/// Polls the server's binlog end beside the stream (for the lag in bytes); ends when the
/// server ends the connection, so the session fails and is started again.
async fn monitor(
    endpoint: &Endpoint,
    mut conn: mysql_async::Conn,
    watermarks: &crate::watermark::Watermarks,
    beats: Option<(&heartbeat::HeartbeatTable, Duration, &str)>,
) -> SourceError {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut beat = tokio::time::interval(beats.map_or(Duration::from_secs(3600), |b| b.1));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = beat.tick(), if beats.is_some() => {
                let (table, _, source) = beats.expect("checked");
                if let Err(e) = table.beat(&mut conn, source).await {
                    tracing::warn!(source, error = %e, "cannot write the heartbeat row");
                }
                continue;
            }
        }
        match conn.query_first::<mysql_async::Row, _>("SHOW MASTER STATUS").await {
            Ok(Some(mut row)) => {
                if let (Some(file), Some(offset)) = (row.take::<String, _>(0), row.take::<u64, _>(1))
                    && let Some(p) = (Coordinates { file, offset }).position()
                {
                    watermarks.server(p);
                }
            }
            Ok(None) => {}
            Err(e @ (mysql_async::Error::Io(_) | mysql_async::Error::Driver(_))) => {
                return endpoint.sql("the server ended the monitoring connection")(e);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the server's binlog position"),
        }
    }
}

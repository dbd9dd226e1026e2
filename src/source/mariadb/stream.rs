//! Streaming: binlog events → one [`Transaction`] per committed event group.
//!
//! A group opens at MariaDB's GTID event (or a `BEGIN` query from a server that sends none),
//! collects the row events of watched tables, and is sent downstream at its XID (or `COMMIT`)
//! with the position just after that event (a group that outgrows its share of the transaction
//! memory goes on in parts as it is read, the last at its commit; see [`crate::tx_memory`]). A standalone group (DDL, TRUNCATE) ends with its
//! statement: a TRUNCATE of a watched table is a table-wide change in its own transaction; DDL
//! on one copies that table again (resync) right after, while the others wait in the server's
//! send buffer. Between groups, the server's heartbeats and groups that touch nothing watched
//! become `Progress`, so a quiet source still reports that it is current.
//!
//! A resynced table's copy is consistent at a binlog position `S` past the stream's: the
//! replica skips the table's transactions at or before `S` (they are in the copy) and applies
//! the later ones.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::BinlogStream;
use mysql_async::binlog::events::EventData;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::binlog::{file_number, rotated_to};
use super::catalog::MyTable;
use super::connection::Endpoint;
use super::ddl::{Statement, classify};
use super::rows;
use crate::change::{Change, Key, Op, Position, SourceEvent, TableEvent, Transaction};
use crate::error::SourceError;
use crate::registry::{Registry, TableId};
use crate::source::{Parting, send};
use crate::tx_memory::TxMemory;
use crate::watermark::Watermarks;

/// MariaDB's own event types, which mysql_common does not read.
const MARIADB_GTID: u8 = 162;
/// A GTID event's flag: the group is one statement with no XID (DDL, TRUNCATE).
const FL_STANDALONE: u8 = 1;
const QUERY: u8 = 2;
const ROTATE: u8 = 4;
const FORMAT_DESCRIPTION: u8 = 15;
const XID: u8 = 16;
const HEARTBEAT: u8 = 27;

pub struct Stream {
    pub endpoint: Endpoint,
    pub source_name: Arc<str>,
    pub registry: Arc<Registry>,
    pub watermarks: Arc<Watermarks>,
    pub stats: Arc<crate::source::SourceStats>,
    pub requests: Arc<crate::source::ResyncRequests>,
    pub tables: HashMap<TableId, MyTable>,
    /// The newest shape version each table has had (the replica's, then each resync's), so
    /// a table copied again always gets a newer one.
    pub versions: HashMap<TableId, u32>,
    pub quarantined: HashSet<TableId>,
    pub chunk_rows: usize,
    /// The binlog file being read (the stream starts in it).
    pub file: String,
    /// The server writes event checksums (`binlog_checksum` is not NONE).
    pub checksums: bool,
    /// The last position reported downstream.
    pub at: Position,
    /// The heartbeat row's table, whose rows tell the exact time they were written.
    pub heartbeat: Option<super::heartbeat::HeartbeatTable>,
    /// Where `tail --capture` records every event.
    pub capture: Option<super::capture::Capture>,
    pub memory: Arc<TxMemory>,
}

/// An event group being read.
struct Open {
    xid: u64,
    commit_ts: i64,
    standalone: bool,
    changes: Vec<Change>,
    table_events: Vec<(usize, TableEvent)>,
    /// Tables whose DDL was in the group: copied again once it ends.
    resync: Vec<TableId>,
    parting: Parting,
}

impl Open {
    fn new(xid: u64, commit_ts: i64, standalone: bool) -> Open {
        Open {
            xid,
            commit_ts,
            standalone,
            changes: Vec::new(),
            table_events: Vec::new(),
            resync: Vec::new(),
            parting: Parting::default(),
        }
    }

    /// What it read since its last part (all of it, without parts), as a transaction at `position`.
    fn take(&mut self, source: &Arc<str>, position: Position) -> Transaction {
        let at = (source.clone(), position, self.commit_ts, self.xid);
        Transaction::taking(at, &mut self.changes, &mut self.table_events)
    }
}

impl Stream {
    /// Streams until cancelled; `resync` lists tables to copy again first, with why.
    pub async fn run(
        mut self,
        mut binlog: BinlogStream,
        out: mpsc::Sender<SourceEvent>,
        cancel: CancellationToken,
        resync: Vec<(TableId, String)>,
    ) -> Result<(), SourceError> {
        for (table, reason) in resync {
            self.resync(table, reason, &out).await?;
        }
        let mut open: Option<Open> = None;
        // Whether the stream's format description has come (see [`rotated_to`]).
        let mut seen_format = false;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let requests = self.requests.clone();
        let mut reported = self.at;
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                event = binlog.next() => event,
                _ = requests.wait(), if open.is_none() => {
                    for (table, reason) in self.requests.take() {
                        if self.tables.contains_key(&table) {
                            self.resync(table, reason, &out).await?;
                        }
                    }
                    continue;
                }
                _ = tick.tick() => {
                    if open.is_none() && self.at > reported {
                        reported = self.at;
                        send(&out, SourceEvent::Progress { source: self.source_name.clone(), position: self.at }, &self.endpoint.source_name).await?;
                    }
                    // Nothing on the server waits for an acknowledgement: what is acknowledged is
                    // only how far opslive needs the binlog kept.
                    self.watermarks.acknowledged(self.watermarks.ack_target());
                    continue;
                }
            };
            let event = match event {
                None => return Ok(()),
                Some(Err(error)) => {
                    return Err(self.endpoint.sql("reading the binlog stream")(error));
                }
                Some(Ok(event)) => event,
            };
            if let Some(capture) = &mut self.capture {
                capture.event(&event);
            }
            let header = event.header();
            let here = Position((file_number(&self.file).unwrap_or(0) << 32) | header.log_pos() as u64);
            // Binlog event times are whole seconds.
            let commit_ts = header.timestamp() as i64 * 1_000_000;
            match header.event_type_raw() {
                MARIADB_GTID => {
                    let data = event.data();
                    let seq = data.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).unwrap_or(0);
                    let flags = data.get(12).copied().unwrap_or(0);
                    open = Some(Open::new(seq, commit_ts, flags & FL_STANDALONE != 0));
                }
                FORMAT_DESCRIPTION => seen_format = true,
                ROTATE => match event.read_data() {
                    Ok(Some(EventData::RotateEvent(r))) => {
                        self.file = rotated_to(r.name_raw(), self.checksums && !seen_format);
                    }
                    other => return Err(self.unreadable(here, format!("a rotate event read as {other:?}"))),
                },
                HEARTBEAT => {
                    // The server's heartbeat says only that nothing is pending; the heartbeat
                    // row, when there is one, tells how old what was read is.
                    if self.heartbeat.is_none() {
                        self.stats.heartbeat_seen(chrono::Utc::now().timestamp_micros());
                    }
                    if open.is_none() && header.log_pos() > 0 {
                        self.at = self.at.max(here);
                    }
                    self.watermarks.received(self.at);
                }
                XID => {
                    if let Some(tx) = open.take() {
                        self.commit(tx, here, &out).await?;
                    }
                }
                QUERY => {
                    // A statement missed would be a TRUNCATE or DDL missed.
                    let q = match event.read_data() {
                        Ok(Some(EventData::QueryEvent(q))) => q,
                        other => return Err(self.unreadable(here, format!("a query event read as {other:?}"))),
                    };
                    let text = q.query();
                    match text.trim() {
                        "BEGIN" => {
                            if open.is_none() {
                                open = Some(Open::new(0, commit_ts, false));
                            }
                            continue;
                        }
                        "COMMIT" => {
                            if let Some(tx) = open.take() {
                                self.commit(tx, here, &out).await?;
                            }
                            continue;
                        }
                        _ => {}
                    }
                    let tx = open.get_or_insert_with(|| Open::new(0, commit_ts, true));
                    match classify(&text, &q.schema()) {
                        Statement::Truncate(names) => {
                            for (db, table) in names {
                                if let Some(id) = self.watched(&db, &table) {
                                    tx.changes.push(Change {
                                        table: id,
                                        op: Op::Truncate,
                                        key: Key::none(),
                                        before: None,
                                        after: None,
                                    });
                                }
                            }
                        }
                        Statement::Ddl(names) => {
                            for (db, table) in names {
                                if let Some(id) = self.watched(&db, &table)
                                    && !tx.resync.contains(&id)
                                {
                                    tx.resync.push(id);
                                }
                            }
                        }
                        Statement::Other => {}
                    }
                    if tx.standalone
                        && let Some(tx) = open.take()
                    {
                        self.commit(tx, here, &out).await?;
                    }
                }
                _ => {
                    // A rows event that cannot be read names no table to hold back: the session
                    // ends with why (and resumes from the checkpoint), rather than skip rows.
                    let rows = match rows::rows_event(&event) {
                        Ok(Some(rows)) => rows,
                        Ok(None) => continue,
                        Err(detail) => return Err(self.unreadable(here, detail)),
                    };
                    let Some(tx) = open.as_mut() else { continue };
                    let Some(tme) = binlog.get_tme(rows.table_id()) else {
                        return Err(SourceError::Protocol {
                            source_name: self.source_name.to_string(),
                            position: here,
                            detail: format!("a rows event for table id {} without its table map", rows.table_id()),
                        });
                    };
                    if let Some(beat) = &self.heartbeat
                        && beat.is(tme)
                    {
                        if let Some(at) = super::heartbeat::HeartbeatTable::emitted_at(&rows, tme, &self.source_name) {
                            self.stats.heartbeat_seen(at);
                            // To the microsecond, where the event's own time is whole seconds.
                            tx.commit_ts = at;
                        }
                        continue;
                    }
                    let Some(id) = self.watched(&tme.database_name(), &tme.table_name()) else { continue };
                    if self.quarantined.contains(&id) {
                        continue;
                    }
                    let decoded = rows::changes(id, &self.tables[&id], &rows, tme);
                    match decoded {
                        Ok(changes) => {
                            changes.iter().for_each(|c| tx.parting.add(c));
                            tx.changes.extend(changes);
                            if tx.parting.bytes >= self.memory.part_bytes() {
                                // Inside the group: before its commit, after everything before it.
                                let part = tx.take(&self.source_name, here);
                                tx.parting.send(part, false, &self.memory, &out).await?;
                            }
                        }
                        Err(reason) => {
                            let spec = self.registry.get(id).map(|s| s.to_string()).unwrap_or_default();
                            tracing::error!(source = %self.source_name, table = %spec, position = %here, reason = %reason, "cannot decode a row; the table is quarantined until a resync");
                            self.quarantined.insert(id);
                            tx.changes.retain(|c| c.table != id);
                            let at = tx.changes.len();
                            tx.table_events.push((at, TableEvent::Quarantined { table: id, position: here, reason }));
                        }
                    }
                }
            }
        }
    }

    /// The error for an event that cannot be read at `position`.
    fn unreadable(&self, position: Position, detail: String) -> SourceError {
        SourceError::Protocol { source_name: self.source_name.to_string(), position, detail }
    }

    fn watched(&self, db: &str, table: &str) -> Option<TableId> {
        self.registry.find(&self.source_name, db, table).filter(|id| self.tables.contains_key(id))
    }

    /// Ends a group at `position`: a transaction downstream when it changed something watched,
    /// then the resyncs its DDL asked for.
    async fn commit(
        &mut self,
        mut tx: Open,
        position: Position,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<(), SourceError> {
        let transaction = tx.take(&self.source_name, position);
        if tx.parting.parts > 0 {
            tx.parting.send(transaction, true, &self.memory, out).await?;
        } else if !transaction.changes.is_empty() || !transaction.table_events.is_empty() {
            self.memory.passed(tx.parting.bytes);
            send(out, SourceEvent::Transaction(transaction), &self.endpoint.source_name).await?;
        }
        let resync = std::mem::take(&mut tx.resync);
        self.at = self.at.max(position);
        self.watermarks.received(self.at);
        for table in resync {
            self.resync(table, "its definition changed (DDL in the binlog)".into(), out).await?;
        }
        Ok(())
    }

    /// Copies one table again on its own at a fresh consistent point, between two groups.
    async fn resync(
        &mut self,
        table: TableId,
        reason: String,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<(), SourceError> {
        let Some(spec) = self.registry.get(table) else { return Ok(()) };
        tracing::info!(source = %self.source_name, table = %spec, reason = %reason, "copying the table again");
        self.stats.resyncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        send(out, SourceEvent::Table(TableEvent::ResyncBegin { table, reason }), &self.endpoint.source_name).await?;
        let held = self.tables.get(&table).map_or(0, |t| t.schema.version);
        let version = self.versions.get(&table).copied().unwrap_or(0).max(held) + 1;
        self.versions.insert(table, version);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let mut snap = super::snapshot::begin(&self.endpoint).await?;
                let shape = super::catalog::read_table(&mut snap.conn, &self.endpoint, &spec, version).await?;
                let shape = match shape {
                    Ok(shape) => shape,
                    Err(problems) => return Ok(Err(problems.0.join("; "))),
                };
                let position = snap.at.position().unwrap_or(self.at).max(self.at);
                snap.copy_table(&self.endpoint, &shape, position, self.chunk_rows, out).await?;
                snap.commit(&self.endpoint).await?;
                Ok::<_, SourceError>(Ok(shape))
            }
            .await;
            match result {
                Ok(Ok(shape)) => {
                    self.tables.insert(table, shape);
                    self.quarantined.remove(&table);
                    return Ok(());
                }
                Ok(Err(problem)) => {
                    return self.quarantine(table, problem, out).await;
                }
                Err(e) if super::snapshot::raced(&e) && attempt < 30 => {
                    self.stats.snapshot_retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) if e.is_retryable() || matches!(e, SourceError::Closed(_)) => return Err(e),
                Err(e) if attempt < 3 => {
                    tracing::warn!(source = %self.source_name, table = %spec, error = %e, "resync failed; trying again");
                }
                Err(e) => return self.quarantine(table, e.to_string(), out).await,
            }
        }
    }

    async fn quarantine(
        &mut self,
        table: TableId,
        reason: String,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<(), SourceError> {
        tracing::error!(source = %self.source_name, table = ?table, reason = %reason, "the table is quarantined until a resync");
        self.quarantined.insert(table);
        let event = TableEvent::Quarantined { table, position: self.at, reason };
        send(out, SourceEvent::Table(event), &self.endpoint.source_name).await
    }
}

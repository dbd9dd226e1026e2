//! Streaming: replication events → one [`Transaction`] per source transaction.
//!
//! Relation and row messages between Begin and Commit are decoded into the transaction, which is
//! sent downstream whole at Commit with the commit's `end_lsn` as its position. A transaction
//! that outgrows its share of the transaction memory is sent on in parts as it is read (the
//! server sends only committed transactions, so a part is never taken back); the replica shows
//! it to readers at its last part (see [`crate::tx_memory`]). Between
//! transactions, keepalives and heartbeat messages tell how far the server has gone with nothing
//! watched to send: that becomes a `Progress` event, so a quiet slot still advances. The slot is
//! acknowledged up to what the watermarks say is durable, never further.

use std::sync::Arc;
use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use std::collections::HashMap;

use smallvec::{SmallVec, smallvec};

use super::PgError;
use super::capture::Capture;
use super::decode::{DecodeError, Decoded, Decoder};
use super::held::{Held, HeldTx, Route};
use super::pgoutput::{self, Message};
use super::resync::Resynced;
use crate::change::{Position, SourceEvent, TableEvent, Transaction};
use crate::error::SourceError;
use crate::registry::TableId;
use crate::source::{Parting, send};
use crate::tx_memory::TxMemory;
use crate::value::PG_EPOCH_OFFSET_MICROS;
use crate::watermark::Watermarks;

pub struct Stream {
    pub source_name: Arc<str>,
    pub repl: ReplicationClient,
    pub decoder: Decoder,
    pub watermarks: Arc<Watermarks>,
    pub capture: Option<Capture>,
    /// The last position reported downstream (a transaction's or a `Progress`).
    pub idle_at: Position,
    pub stats: Arc<crate::source::SourceStats>,
    /// Tables being resynced or quarantined.
    pub held: Held,
    /// Resyncs asked for from outside (the API).
    pub requests: Arc<crate::source::ResyncRequests>,
    /// What the decoder made of the current message; kept to reuse its allocation.
    pub decoded: Vec<Decoded>,
    pub memory: Arc<TxMemory>,
}

/// The prefix of opslive's heartbeat messages (`pg_logical_emit_message`).
pub const HEARTBEAT_PREFIX: &str = "opslive.heartbeat";

struct Open {
    xid: u64,
    commit_ts: i64,
    final_lsn: u64,
    changes: Vec<crate::change::Change>,
    table_events: Vec<(usize, TableEvent)>,
    /// Messages of tables being resynced, held back.
    held: Vec<(TableId, Message)>,
    parting: Parting,
}

impl Open {
    fn new(xid: u64, commit_ts: i64, final_lsn: u64) -> Open {
        Open {
            xid,
            commit_ts,
            final_lsn,
            changes: Vec::new(),
            table_events: Vec::new(),
            held: Vec::new(),
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
    /// Streams until cancelled. `resync` lists tables to copy again first, with why.
    pub async fn run(
        mut self,
        out: mpsc::Sender<SourceEvent>,
        cancel: CancellationToken,
        resync: Vec<(TableId, String)>,
    ) -> Result<(), SourceError> {
        let name = self.source_name.clone();
        let mut open: Option<Open> = None;
        let mut last_position = Position::ZERO;
        for (table, reason) in resync {
            self.start_resync(table, reason, &out).await?;
        }
        // Acks are also sent when the stream is quiet, so what was applied reaches the server.
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let requests = self.requests.clone();
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => { self.ack(); continue }
                // Only between transactions: a transaction still open may hold messages of the
                // table, which would miss the catch-up and be lost at its commit.
                Some(done) = self.held.running.join_next(), if open.is_none() => {
                    let (table, result) = done.expect("a resync task does not panic");
                    self.resynced(table, result, &out).await?;
                    continue;
                }
                // Between transactions too: a transaction sent in parts is not cut by a table event.
                _ = requests.wait(), if open.is_none() => {
                    for (table, reason) in requests.take() {
                        self.start_resync(table, reason, &out).await?;
                    }
                    continue;
                }
                ev = self.repl.recv() => ev,
            };
            let event = match event {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(error) => return Err(PgError::Replication { source_name: name.to_string(), error }.into()),
            };
            match event {
                ReplicationEvent::Begin { final_lsn, xid, commit_time_micros } => {
                    if let Some(c) = self.capture.as_mut() {
                        c.begin(final_lsn.0, commit_time_micros, xid);
                    }
                    open = Some(Open::new(xid.into(), commit_time_micros + PG_EPOCH_OFFSET_MICROS, final_lsn.0));
                }
                ReplicationEvent::XLogData { data, .. } => {
                    if let Some(c) = self.capture.as_mut() {
                        c.message(&data);
                    }
                    let position = Position(open.as_ref().map_or(last_position.0, |o| o.final_lsn));
                    let msg = pgoutput::parse(data).map_err(|e| SourceError::Protocol {
                        source_name: name.to_string(),
                        position,
                        detail: e.to_string(),
                    })?;
                    for (route, msg) in self.split(msg) {
                        match (route, open.as_mut()) {
                            (Route::Drop, _) => {}
                            (Route::Hold(table), Some(tx)) => tx.held.push((table, msg)),
                            // A Relation outside a transaction only primes the cache (done).
                            (Route::Hold(_), None) => {}
                            (Route::Decode, tx) => {
                                let mut scratch = Open::new(0, 0, 0);
                                let in_tx = tx.is_some();
                                let target = tx.unwrap_or(&mut scratch);
                                let changed = self.decode_into(msg, target, position)?;
                                for (table, reason) in changed {
                                    self.start_resync(table, reason, &out).await?;
                                }
                                if !in_tx {
                                    continue;
                                }
                                if let Some(tx) = open.as_mut()
                                    && tx.parting.bytes >= self.memory.part_bytes()
                                {
                                    // Not yet committed here, so one past where the commit record starts.
                                    let part = tx.take(&name, Position(tx.final_lsn + 1));
                                    tx.parting.send(part, false, &self.memory, &out).await?;
                                }
                            }
                        }
                    }
                }
                ReplicationEvent::Commit { lsn, end_lsn, commit_time_micros } => {
                    if let Some(c) = self.capture.as_mut() {
                        c.commit(lsn.0, end_lsn.0, commit_time_micros);
                    }
                    let Some(mut tx) = open.take() else { continue };
                    let position = Position(end_lsn.0);
                    last_position = position;
                    self.hold(std::mem::take(&mut tx.held), position, tx.commit_ts, tx.xid);
                    if tx.parting.parts > 0 {
                        self.watermarks.received(position);
                        self.idle_at = self.idle_at.max(position);
                        let part = tx.take(&name, position);
                        tx.parting.send(part, true, &self.memory, &out).await?;
                        self.ack();
                        continue;
                    }
                    self.memory.passed(tx.parting.bytes);
                    // A transaction with nothing to apply now (held back, or nothing watched)
                    // is passed on as progress only.
                    if tx.changes.is_empty() && tx.table_events.is_empty() {
                        self.progress(position, &out).await?;
                        continue;
                    }
                    self.watermarks.received(position);
                    self.idle_at = self.idle_at.max(position);
                    send(&out, SourceEvent::Transaction(tx.take(&name, position)), &name).await?;
                    self.ack();
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    if open.is_none() {
                        self.progress(Position(wal_end.0), &out).await?;
                    }
                }
                ReplicationEvent::Message { transactional, lsn, prefix, content } => {
                    if prefix == HEARTBEAT_PREFIX {
                        let sent: Option<i64> = std::str::from_utf8(&content).ok().and_then(|s| s.parse().ok());
                        if let Some(sent) = sent {
                            self.stats.heartbeat_seen(sent);
                        }
                    }
                    if !transactional && open.is_none() {
                        self.progress(Position(lsn.0), &out).await?;
                    }
                }
                ReplicationEvent::StoppedAt { .. } => break,
            }
        }
        self.ack();
        if let Some(c) = self.capture.as_mut() {
            c.flush();
        }
        self.held.running.abort_all();
        // Ends the session and waits for it, so the slot is released when this returns.
        if let Err(error) = self.repl.shutdown().await {
            tracing::debug!(source = %name, error = %error, "replication session ended with an error");
        }
        Ok(())
    }

    /// Where each part of a message goes: decoded now, held back (resync) or dropped
    /// (quarantine). A TRUNCATE naming several tables is split; any other message stays whole
    /// (inline, no allocation: this runs for every row streamed).
    fn split(&mut self, msg: Message) -> SmallVec<[(Route, Message); 1]> {
        let table = match &msg {
            Message::Relation(rel) => {
                let table = self.decoder.watched(rel);
                if table.is_some_and(|t| !matches!(self.held.route(Some(t)), Route::Decode)) {
                    self.decoder.remember(rel.clone());
                }
                table
            }
            Message::Insert { relation, .. } | Message::Update { relation, .. } | Message::Delete { relation, .. } => {
                self.decoder.table_of(*relation)
            }
            Message::Truncate { options, relations } => {
                let mut parts = SmallVec::new();
                let mut decode = Vec::new();
                for r in relations {
                    match self.held.route(self.decoder.table_of(*r)) {
                        Route::Decode => decode.push(*r),
                        route => parts.push((route, Message::Truncate { options: *options, relations: vec![*r] })),
                    }
                }
                if !decode.is_empty() {
                    parts.push((Route::Decode, Message::Truncate { options: *options, relations: decode }));
                }
                return parts;
            }
            _ => None,
        };
        smallvec![(self.held.route(table), msg)]
    }

    /// Decodes one message into `tx`; a table whose rows cannot be read is quarantined there.
    /// Returns the tables whose columns or replica identity changed, each with why (they need
    /// a resync).
    fn decode_into(
        &mut self,
        msg: Message,
        tx: &mut Open,
        position: Position,
    ) -> Result<Vec<(TableId, String)>, SourceError> {
        let mut decoded = std::mem::take(&mut self.decoded);
        let mut changed = Vec::new();
        match self.decoder.decode(msg, &mut decoded) {
            Ok(()) => {}
            Err(DecodeError::Table { table, id, detail }) => {
                tracing::error!(source = %self.source_name, table = %table, position = %position, error = %detail, "cannot decode a change; the table is quarantined until it is resynced");
                self.held.quarantined.insert(id);
                self.decoder.forget(id);
                let reason = format!("cannot decode a change at {position}: {detail}");
                tx.table_events.push((tx.changes.len(), TableEvent::Quarantined { table: id, position, reason }));
                decoded.clear();
                self.decoded = decoded;
                return Ok(changed);
            }
            Err(e @ DecodeError::UnknownRelation(_)) => {
                return Err(SourceError::Protocol {
                    source_name: self.source_name.to_string(),
                    position,
                    detail: e.to_string(),
                });
            }
        }
        for d in decoded.drain(..) {
            match d {
                Decoded::Change(c) => {
                    tx.parting.add(&c);
                    tx.changes.push(c);
                }
                Decoded::Table(ev) => {
                    if let TableEvent::SchemaChanged { table, .. } = &ev {
                        changed.push((*table, "the table's columns changed at the source".to_string()));
                    }
                    tx.table_events.push((tx.changes.len(), ev));
                }
                Decoded::IdentityChanged { table, reason } => changed.push((table, reason)),
                Decoded::Nothing => {}
            }
        }
        self.decoded = decoded;
        Ok(changed)
    }

    /// Keeps a committed transaction's held messages with their table's resync.
    fn hold(&mut self, messages: Vec<(TableId, Message)>, position: Position, commit_ts: i64, xid: u64) {
        let mut by_table: HashMap<TableId, Vec<Message>> = HashMap::new();
        for (table, msg) in messages {
            by_table.entry(table).or_default().push(msg);
        }
        for (table, messages) in by_table {
            if let Some(r) = self.held.resyncing.get_mut(&table) {
                r.held.push(HeldTx { position, commit_ts, xid, messages });
            }
        }
    }

    /// Begins a table's resync: its queries answer NOT_READY and its changes are held.
    async fn start_resync(
        &mut self,
        table: TableId,
        reason: String,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<(), SourceError> {
        let version = self.decoder.shape(table).map_or(1, |t| t.schema.version);
        if !self.held.start(table, reason.clone(), version) {
            return Ok(());
        }
        self.decoder.forget(table);
        self.stats.resyncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        send(out, SourceEvent::Table(TableEvent::ResyncBegin { table, reason }), &self.source_name).await
    }

    /// A resync ended: on success the table's new shape is installed and the changes held
    /// since are applied after its consistent point; on failure it is retried, a bounded
    /// number of times, then quarantined.
    async fn resynced(
        &mut self,
        table: TableId,
        result: Result<Resynced, SourceError>,
        out: &mpsc::Sender<SourceEvent>,
    ) -> Result<(), SourceError> {
        let name = self.source_name.clone();
        let done = match result {
            Ok(done) => done,
            Err(SourceError::Closed(s)) => return Err(SourceError::Closed(s)),
            // The session ends; the next one streams text and copies the table.
            Err(e @ SourceError::Postgres(PgError::TextNeeded { .. })) => return Err(e),
            Err(e) => {
                if self.held.retry(table, &e) {
                    tracing::warn!(source = %name, table = %self.held.label(table), error = %e, "resync failed; trying again");
                    return Ok(());
                }
                let r = self.held.resyncing.remove(&table);
                let attempts = r.map_or(0, |r| r.attempts + r.races);
                let reason = format!("resync failed {attempts} times: {e}");
                tracing::error!(source = %name, table = %self.held.label(table), error = %e, "resync failed; the table is quarantined");
                self.held.quarantined.insert(table);
                let position = self.idle_at;
                return send(out, SourceEvent::Table(TableEvent::Quarantined { table, position, reason }), &name).await;
            }
        };
        let Some(resyncing) = self.held.resyncing.remove(&table) else { return Ok(()) };
        self.decoder.install(done.table);
        for held in resyncing.held {
            if held.position <= done.position {
                continue;
            }
            let mut tx = Open::new(held.xid, held.commit_ts, held.position.0);
            let mut again = false;
            for msg in held.messages {
                again |= !self.decode_into(msg, &mut tx, held.position)?.is_empty();
            }
            if !tx.changes.is_empty() || !tx.table_events.is_empty() {
                send(out, SourceEvent::Transaction(tx.take(&name, held.position)), &name).await?;
            }
            if again {
                // The columns changed again while it was copied: copy it once more (what is
                // still held was committed before the next copy's consistent point).
                self.start_resync(table, "the table's columns changed again during its resync".into(), out).await?;
                break;
            }
        }
        Ok(())
    }

    /// Reports that the server has nothing watched up to `position` (it is between
    /// transactions): otherwise a quiet slot, or one whose writes are all to unwatched tables,
    /// would hold WAL, and PostgreSQL's shutdown, which waits for the client to confirm
    /// everything sent, would hang.
    async fn progress(&mut self, position: Position, out: &mpsc::Sender<SourceEvent>) -> Result<(), SourceError> {
        if position <= self.idle_at {
            return Ok(());
        }
        self.idle_at = position;
        send(out, SourceEvent::Progress { source: self.source_name.clone(), position }, &self.source_name).await?;
        Ok(())
    }

    /// Acknowledges what is durable.
    fn ack(&self) {
        let target = self.watermarks.ack_target();
        if target > Position::ZERO {
            self.repl.update_applied_lsn(Lsn(target.0));
            self.watermarks.acknowledged(target);
        }
    }
}

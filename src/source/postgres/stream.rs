//! Streaming: replication events → one [`Transaction`] per source transaction.
//!
//! Relation and row messages between Begin and Commit are decoded into the transaction, which is
//! sent downstream whole at Commit with the commit's `end_lsn` as its position. Between
//! transactions, keepalives and heartbeat messages tell how far the server has gone with nothing
//! watched to send: that becomes a `Progress` event, so a quiet slot still advances. The slot is
//! acknowledged up to what the watermarks say is durable, never further.

use std::sync::Arc;
use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::capture::Capture;
use super::decode::{Decoded, Decoder};
use super::pgoutput;
use super::snapshot::send;
use crate::change::{Position, SourceEvent, TableEvent, Transaction};
use crate::error::SourceError;
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
}

/// The prefix of opslive's heartbeat messages (`pg_logical_emit_message`).
pub const HEARTBEAT_PREFIX: &str = "opslive.heartbeat";

struct Open {
    xid: u64,
    commit_ts: i64,
    final_lsn: u64,
    changes: Vec<crate::change::Change>,
    table_events: Vec<(usize, TableEvent)>,
}

impl Stream {
    pub async fn run(mut self, out: mpsc::Sender<SourceEvent>, cancel: CancellationToken) -> Result<(), SourceError> {
        let name = self.source_name.clone();
        let mut open: Option<Open> = None;
        let mut decoded = Vec::new();
        let mut last_position = Position::ZERO;
        // Acks are also sent when the stream is quiet, so what was applied reaches the server.
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => { self.ack(); continue }
                ev = self.repl.recv() => ev,
            };
            let event = match event {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(error) => return Err(SourceError::Replication { source_name: name.to_string(), error }),
            };
            match event {
                ReplicationEvent::Begin { final_lsn, xid, commit_time_micros } => {
                    if let Some(c) = self.capture.as_mut() {
                        c.begin(final_lsn.0, commit_time_micros, xid);
                    }
                    open = Some(Open {
                        xid: xid.into(),
                        commit_ts: commit_time_micros + PG_EPOCH_OFFSET_MICROS,
                        final_lsn: final_lsn.0,
                        changes: Vec::new(),
                        table_events: Vec::new(),
                    });
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
                    self.decoder.decode(msg, &mut decoded).map_err(|e| SourceError::Decode {
                        source_name: name.to_string(),
                        table: match &e {
                            super::decode::DecodeError::Table { table, .. } => table.clone(),
                            super::decode::DecodeError::UnknownRelation(oid) => format!("relation {oid}"),
                        },
                        position,
                        detail: e.to_string(),
                    })?;
                    let Some(tx) = open.as_mut() else {
                        // Row messages only come inside transactions; a Relation outside one
                        // just primed the cache.
                        decoded.clear();
                        continue;
                    };
                    for d in decoded.drain(..) {
                        match d {
                            Decoded::Change(c) => tx.changes.push(c),
                            Decoded::Table(ev) => tx.table_events.push((tx.changes.len(), ev)),
                            Decoded::Nothing => {}
                        }
                    }
                }
                ReplicationEvent::Commit { lsn, end_lsn, commit_time_micros } => {
                    if let Some(c) = self.capture.as_mut() {
                        c.commit(lsn.0, end_lsn.0, commit_time_micros);
                    }
                    let Some(tx) = open.take() else { continue };
                    let position = Position(end_lsn.0);
                    last_position = position;
                    // A transaction with nothing watched in it (servers before 15 send those) is
                    // not passed on, so it must not raise `received` above what can be applied.
                    if tx.changes.is_empty() && tx.table_events.is_empty() {
                        continue;
                    }
                    self.watermarks.received(position);
                    self.idle_at = self.idle_at.max(position);
                    let tx = Transaction {
                        source: name.clone(),
                        position,
                        commit_ts: tx.commit_ts,
                        xid: tx.xid,
                        changes: tx.changes,
                        table_events: tx.table_events,
                    };
                    send(&out, SourceEvent::Transaction(tx), &name).await?;
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
        // Ends the session and waits for it, so the slot is released when this returns.
        if let Err(error) = self.repl.shutdown().await {
            tracing::debug!(source = %name, error = %error, "replication session ended with an error");
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

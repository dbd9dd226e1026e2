//! The task that writes the change log, and the handle readers use.
//!
//! One consumer of the apply loop: it appends each batch and wakes the readers through a watch
//! of the log's head. Readers take the log's lock only to copy out the `Arc`s of the entries
//! they want, so the feed never waits on a client and a client never waits on another.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::cursor::Cursor;
use super::log::{ChangeLog, Entry, Expired, LogFigures, Resumed, Retention};
use crate::change::{Position, SourceName};
use crate::pipeline::Batch;
use crate::query::wall_micros;
use crate::registry::TableId;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Change streams open now.
    pub streams: AtomicU64,
    /// Messages sent on them (one per transaction with news for the subscriber).
    pub messages: AtomicU64,
    /// Cursors refused, and streams ended, because the log no longer leads on from them.
    pub expired: AtomicU64,
}

/// The change log and what readers need to follow it.
#[derive(Clone, Debug)]
pub struct ChangeFeed {
    log: Arc<RwLock<ChangeLog>>,
    /// The log's epoch, fixed at start: cursors are written without the lock.
    epoch: u64,
    head: watch::Receiver<u64>,
    pub stats: Arc<FeedStats>,
    /// How long a stream whose subscriber has had no news may go without a cursor while the
    /// log moves on (`[changes] heartbeat_seconds`).
    pub heartbeat: Duration,
}

impl ChangeFeed {
    /// Starts logging the batches of an apply loop whose replica stands at `starts`, keeping
    /// `retention`.
    pub fn start(
        batches: mpsc::Receiver<Arc<Batch>>,
        retention: Retention,
        heartbeat: Duration,
        starts: std::collections::HashMap<SourceName, Position>,
        cancel: CancellationToken,
    ) -> ChangeFeed {
        // A process's cursors must not be mistaken for another's: the epoch is drawn afresh.
        let epoch = rand::random();
        let log = Arc::new(RwLock::new(ChangeLog::starting_at(epoch, retention, starts)));
        let (tx, head) = watch::channel(0);
        tokio::spawn(run(log.clone(), batches, tx, cancel));
        ChangeFeed { log, epoch, head, stats: Arc::default(), heartbeat }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ChangeLog> {
        self.log.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn head(&self) -> Cursor {
        self.read().head()
    }

    pub fn cursor(&self, seq: u64, position: Position) -> Cursor {
        Cursor { epoch: self.epoch, seq, position }
    }

    /// See [`ChangeLog::cursor_at`].
    pub fn cursor_at(&self, seq: u64, source: &str) -> Cursor {
        self.read().cursor_at(seq, source)
    }

    /// Where a reader of `table` (of `source`) resuming after `cursor` starts.
    pub fn resume(&self, cursor: Cursor, table: TableId, source: &str) -> Result<Resumed, Expired> {
        self.read().resume_from(cursor, table, source)
    }

    /// See [`ChangeLog::after`].
    pub fn after(&self, seq: u64, table: TableId, max: usize) -> Result<(Vec<Arc<Entry>>, u64), Expired> {
        self.read().after(seq, table, max)
    }

    /// A watch of the log's head: it changes with every entry.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    pub fn figures(&self) -> (LogFigures, Retention) {
        let log = self.read();
        (log.figures(wall_micros()), log.retention())
    }
}

async fn run(
    log: Arc<RwLock<ChangeLog>>,
    mut batches: mpsc::Receiver<Arc<Batch>>,
    head: watch::Sender<u64>,
    cancel: CancellationToken,
) {
    // Age is evicted on a clock too, so a quiet log still forgets what is too old.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let write = || log.write().unwrap_or_else(|p| p.into_inner());
    loop {
        tokio::select! {
            biased;
            batch = batches.recv() => {
                let Some(batch) = batch else { return };
                if let Some(seq) = write().append(&batch.applied, batch.at) {
                    head.send_replace(seq);
                }
            }
            _ = tick.tick() => write().evict(wall_micros()),
            _ = cancel.cancelled() => return,
        }
    }
}

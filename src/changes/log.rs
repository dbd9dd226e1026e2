//! The change log: committed transactions in apply order, each with a sequence number, bounded
//! by rows and by age.
//!
//! Pure: the feed appends what the apply loop hands it and evicts by the clock it is given.
//! A table's history can break — it is truncated, copied again (resync), set aside
//! (quarantine) or reshaped — and the log remembers the last break per table: a cursor from
//! before it cannot be resumed, because what the client holds no longer leads to what the
//! table holds through the changes that follow.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use super::cursor::Cursor;
use crate::change::{Op, Position, ResetReason, SourceName};
use crate::registry::TableId;
use crate::replica::{Applied, Delta, RowDelta, TxInfo};

/// How much of the past the log keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Row changes kept at most (the oldest transactions go first).
    pub rows: usize,
    /// How long a transaction is kept, in microseconds.
    pub age_micros: i64,
}

/// One logged event: a transaction's changes, or a break outside one.
#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    /// The source transaction; `None` for a table event outside one (a resync beginning).
    pub tx: Option<TxInfo>,
    /// When it was applied here, µs since the Unix epoch.
    pub at: i64,
    pub items: Vec<Item>,
    /// The tables its items touch, so a reader skips the rest without looking.
    tables: Vec<TableId>,
}

impl Entry {
    pub fn touches(&self, table: TableId) -> bool {
        self.tables.contains(&table)
    }

    fn rows(&self) -> usize {
        self.items.len()
    }
}

/// One thing that happened to a table inside an entry, in source order.
#[derive(Debug)]
pub enum Item {
    Row(RowDelta),
    /// Every row of the table is gone at once.
    Truncated(TableId),
    /// The table's history breaks here: readers of it cannot go on.
    Broken(TableId, Break),
}

/// Why a table's history broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Break {
    Truncated,
    /// It is being copied again (a resync, or its first copy).
    Reloaded,
    Quarantined,
    /// Its columns changed at the source.
    Reshaped,
    /// A transaction changed more of its rows than are kept to pass on one by one.
    LargeTransaction,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Break::Truncated => "was truncated",
            Break::Reloaded => "was copied again (resync)",
            Break::Quarantined => "was quarantined",
            Break::Reshaped => "changed columns",
            Break::LargeTransaction => "changed in a transaction too large to pass on row by row",
        })
    }
}

/// Why a cursor cannot be resumed: the client must read the table again and subscribe anew.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Expired {
    #[error("the cursor is from before this server started: read the table again, then subscribe without `after`")]
    OtherProcess,
    #[error(
        "the cursor is older than the change log (it keeps {rows} row changes and {seconds} s): read the table \
         again, then subscribe without `after`"
    )]
    TooOld { rows: usize, seconds: i64 },
    #[error("the table {0} after the cursor: read it again, then subscribe without `after`")]
    Broke(Break),
    #[error("the cursor is ahead of this server's change log: pass a cursor this server gave you")]
    Ahead,
    #[error(
        "the cursor is from before this server's change log begins (at {start}): read the table again, then subscribe without `after`"
    )]
    Before { start: Position },
}

/// The log's size, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LogFigures {
    pub transactions: usize,
    pub rows: usize,
    /// Age of the oldest entry, µs (0 when empty).
    pub oldest_age_micros: i64,
    pub head: u64,
}

#[derive(Debug)]
pub struct ChangeLog {
    epoch: u64,
    retention: Retention,
    entries: VecDeque<Arc<Entry>>,
    /// The sequence number of the last entry appended (0: none yet).
    head: u64,
    /// Every entry up to this one was evicted.
    evicted_through: u64,
    rows: usize,
    /// Per table: the last entry that broke its history, and why.
    breaks: HashMap<TableId, (u64, Break)>,
    /// Per source: where its history in this log begins (the replica's position when the log
    /// began), and the newest position evicted since.
    starts: HashMap<SourceName, Position>,
    evicted: HashMap<SourceName, Position>,
}

/// Where a resumed reader starts: after `seq`, skipping transactions at or below `through`
/// (a cursor of another log, whose position this one may not have reached yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumed {
    pub seq: u64,
    pub through: Option<Position>,
}

impl ChangeLog {
    pub fn new(epoch: u64, retention: Retention) -> ChangeLog {
        ChangeLog {
            epoch,
            retention,
            entries: VecDeque::new(),
            head: 0,
            evicted_through: 0,
            rows: 0,
            breaks: HashMap::new(),
            starts: HashMap::new(),
            evicted: HashMap::new(),
        }
    }

    /// A log whose history of each source begins at the given position (the replica's, as
    /// the log starts).
    pub fn starting_at(epoch: u64, retention: Retention, starts: HashMap<SourceName, Position>) -> ChangeLog {
        ChangeLog { starts, ..ChangeLog::new(epoch, retention) }
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Where a reader starting now stands: after everything logged so far.
    pub fn head(&self) -> Cursor {
        Cursor { epoch: self.epoch, seq: self.head, position: Position::ZERO }
    }

    pub fn cursor(&self, seq: u64, position: Position) -> Cursor {
        Cursor { epoch: self.epoch, seq, position }
    }

    /// Logs what one applied event did, if it did anything to a table's rows or history, and
    /// evicts what is now past the retention. Returns the new entry's sequence number.
    pub fn append(&mut self, applied: &Applied, at: i64) -> Option<u64> {
        if applied.skipped {
            return None;
        }
        let mut items = Vec::new();
        for delta in &applied.deltas {
            match delta {
                Delta::Row(row) if row.op != Op::Truncate => items.push(Item::Row(row.clone())),
                Delta::Row(_) => {}
                Delta::Reset { table, reason: ResetReason::Truncate } => items.push(Item::Truncated(*table)),
                Delta::Reset { table, reason: ResetReason::Resync } => {
                    items.push(Item::Broken(*table, Break::Reloaded))
                }
                Delta::Reset { table, reason: ResetReason::Quarantine } => {
                    items.push(Item::Broken(*table, Break::Quarantined))
                }
                Delta::Reset { table, reason: ResetReason::LargeTransaction } => {
                    items.push(Item::Broken(*table, Break::LargeTransaction))
                }
                Delta::SnapshotBegin { schema } => items.push(Item::Broken(schema.id(), Break::Reloaded)),
                Delta::SchemaChanged { table, .. } => items.push(Item::Broken(*table, Break::Reshaped)),
                Delta::SnapshotRows { .. } | Delta::SnapshotEnd { .. } | Delta::Consistent { .. } => {}
            }
        }
        if items.is_empty() {
            return None;
        }
        self.head += 1;
        let seq = self.head;
        let mut tables = Vec::new();
        for item in &items {
            let table = match item {
                Item::Row(r) => r.table,
                Item::Truncated(t) => {
                    self.breaks.insert(*t, (seq, Break::Truncated));
                    *t
                }
                Item::Broken(t, why) => {
                    self.breaks.insert(*t, (seq, why.clone()));
                    *t
                }
            };
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
        let entry = Entry { seq, tx: applied.tx.clone(), at, items, tables };
        self.rows += entry.rows();
        self.entries.push_back(Arc::new(entry));
        self.evict(at);
        Some(seq)
    }

    /// Drops the entries past the retention: beyond its row count, or older than its age at
    /// `now`. The newest entry stays even when it alone is over the row count, so a reader at
    /// the head is never told it expired.
    pub fn evict(&mut self, now: i64) {
        while let Some(oldest) = self.entries.front() {
            let too_many = self.rows > self.retention.rows && self.entries.len() > 1;
            let too_old = now - oldest.at > self.retention.age_micros;
            if !(too_many || too_old) {
                break;
            }
            self.rows -= oldest.rows();
            self.evicted_through = oldest.seq;
            if let Some(tx) = &oldest.tx {
                self.evicted.insert(tx.source.clone(), tx.position);
            }
            self.entries.pop_front();
        }
    }

    /// The cursor of a reader of a table of `source` that has read through `seq`: its position
    /// is that of the source's last transaction logged at or before `seq` (where the log began,
    /// if none), the same whenever it is asked.
    pub fn cursor_at(&self, seq: u64, source: &str) -> Cursor {
        let logged = self
            .entries
            .iter()
            .rev()
            .filter(|e| e.seq <= seq)
            .find_map(|e| e.tx.as_ref().filter(|tx| *tx.source == *source).map(|tx| tx.position));
        let floor = |m: &HashMap<SourceName, Position>| m.get(source).copied().unwrap_or(Position::ZERO);
        let position = logged.unwrap_or_else(|| floor(&self.starts).max(floor(&self.evicted)));
        self.cursor(seq, position)
    }

    /// Where a reader of `table` (of `source`) resuming after `cursor` starts: in this log by
    /// its sequence number; from another log (another instance, an earlier process) by its
    /// position in the source's history, if this log holds the history from there on.
    pub fn resume_from(&self, cursor: Cursor, table: TableId, source: &str) -> Result<Resumed, Expired> {
        if cursor.epoch == self.epoch {
            return self.resume(cursor, table).map(|seq| Resumed { seq, through: None });
        }
        let at = cursor.position;
        if at == Position::ZERO {
            return Err(Expired::OtherProcess);
        }
        let start = self.starts.get(source).copied().unwrap_or(Position::ZERO);
        let evicted = self.evicted.get(source).copied().unwrap_or(Position::ZERO);
        if at < start {
            return Err(Expired::Before { start });
        }
        if at < evicted {
            return Err(self.too_old());
        }
        // After the last transaction of the source at or below the cursor: a table's entries
        // come in its source's order, whatever other sources did in between.
        let mut seq = self.evicted_through;
        for entry in &self.entries {
            match &entry.tx {
                Some(tx) if *tx.source == *source && tx.position > at => break,
                Some(tx) if *tx.source == *source => seq = entry.seq,
                _ => {}
            }
        }
        if let Some((broke, why)) = self.breaks.get(&table)
            && *broke > seq
        {
            return Err(Expired::Broke(why.clone()));
        }
        Ok(Resumed { seq, through: Some(at) })
    }

    /// Checks that `cursor` can be resumed by a reader of `table`: it is this log's, not ahead
    /// of it, not older than it, and the table's history has not broken since.
    pub fn resume(&self, cursor: Cursor, table: TableId) -> Result<u64, Expired> {
        if cursor.epoch != self.epoch {
            return Err(Expired::OtherProcess);
        }
        if cursor.seq > self.head {
            return Err(Expired::Ahead);
        }
        if let Some((at, why)) = self.breaks.get(&table)
            && *at > cursor.seq
        {
            return Err(Expired::Broke(why.clone()));
        }
        if cursor.seq < self.evicted_through {
            return Err(self.too_old());
        }
        Ok(cursor.seq)
    }

    fn too_old(&self) -> Expired {
        Expired::TooOld { rows: self.retention.rows, seconds: self.retention.age_micros / 1_000_000 }
    }

    /// Up to `max` entries after `seq` that touch `table`, oldest first, and the sequence number
    /// read through (the last entry looked at, touching the table or not). Fails when entries
    /// after `seq` were already evicted.
    pub fn after(&self, seq: u64, table: TableId, max: usize) -> Result<(Vec<Arc<Entry>>, u64), Expired> {
        if seq < self.evicted_through {
            return Err(self.too_old());
        }
        // Entries are numbered without gaps, so the first one after `seq` is found by offset.
        let first = self.entries.front().map_or(self.head + 1, |e| e.seq);
        let skip = usize::try_from((seq + 1).saturating_sub(first)).unwrap_or(usize::MAX);
        let mut found = Vec::new();
        let mut through = seq;
        for entry in self.entries.iter().skip(skip) {
            through = entry.seq;
            if entry.touches(table) {
                found.push(entry.clone());
                if found.len() == max {
                    break;
                }
            }
        }
        Ok((found, through))
    }

    pub fn figures(&self, now: i64) -> LogFigures {
        LogFigures {
            transactions: self.entries.len(),
            rows: self.rows,
            oldest_age_micros: self.entries.front().map_or(0, |e| (now - e.at).max(0)),
            head: self.head,
        }
    }
}

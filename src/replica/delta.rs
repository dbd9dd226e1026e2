//! What applying a source event changed: the input of the live-query, KPI and alert engines.
//!
//! Deltas carry whole rows (shared with the replica through `Arc`), before and after, so an
//! engine can tell whether a row entered, left or moved inside a filter without a lookup, and
//! aggregates can subtract the old contribution and add the new one.

use std::sync::Arc;

use crate::change::{Key, Op, Position, ResetReason, Row, SourceName};
use crate::registry::{TableId, TableSchema};

/// The effect of one [`crate::change::SourceEvent`] on the replica.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Set for transactions: where they came from and where they sit in the source's history.
    pub tx: Option<TxInfo>,
    /// A re-delivered transaction at or below the applied position: nothing changed.
    pub skipped: bool,
    pub deltas: Vec<Delta>,
    /// Things the stream said that contradict the replica. Each one means the replica and the
    /// source disagreed; a correct pipeline has none.
    pub anomalies: Vec<Anomaly>,
}

#[derive(Clone, Debug)]
pub struct TxInfo {
    pub source: SourceName,
    pub position: Position,
    pub commit_ts: i64,
    pub xid: u64,
}

#[derive(Clone, Debug)]
pub enum Delta {
    Row(RowDelta),
    /// Rows of a table's initial copy, in the order the source read them.
    SnapshotRows {
        table: TableId,
        rows: Vec<Row>,
    },
    /// A table starts being (re)loaded: everything downstream of it resets.
    SnapshotBegin {
        schema: Arc<TableSchema>,
    },
    SnapshotEnd {
        table: TableId,
        rows: u64,
    },
    /// All rows of the table are gone at once.
    Reset {
        table: TableId,
        reason: ResetReason,
    },
    /// The source's column set for the table no longer matches the replica's.
    SchemaChanged {
        table: TableId,
        columns: Vec<Arc<str>>,
    },
    /// Every table of the source is loaded; the replica is consistent as of `position`.
    Consistent {
        source: SourceName,
        position: Position,
    },
}

/// One row's change. Insert: `after` only. Delete: `before` only. Update: both (their keys
/// differ when the primary key changed). Truncate is reported as [`Delta::Reset`].
#[derive(Clone, Debug)]
pub struct RowDelta {
    pub table: TableId,
    pub op: Op,
    /// Ordinal of the change inside its transaction.
    pub ordinal: u32,
    pub key: Key,
    pub before: Option<Row>,
    pub after: Option<Row>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub table: TableId,
    pub key: Key,
    pub kind: AnomalyKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// An insert (or snapshot row) for a key the replica already holds; the new row wins.
    InsertExisting,
    /// An update of a key the replica does not hold; applied as an insert when complete.
    UpdateMissing,
    /// A delete of a key the replica does not hold.
    DeleteMissing,
    /// An update left a value unsent (unchanged TOAST) for a row the replica does not hold, so
    /// the row cannot be completed; the change was dropped.
    UnsentValueForMissingRow,
    /// A change for a table whose snapshot has not begun.
    UnknownTable,
}

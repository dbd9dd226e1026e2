//! The seam: what every source emits and everything downstream consumes.
//!
//! A source turns its protocol into [`SourceEvent`]s — snapshot rows, table-level events and one
//! [`Transaction`] per source transaction — and nothing after this point knows whether they came
//! from pgoutput or a binlog. Positions are totally ordered per source, so re-delivered
//! transactions can be recognised and skipped.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

pub use crate::registry::SourceName;
use crate::registry::{TableId, TableSchema};
use crate::value::Value;

/// A point in one source's history, ordered within the source. PostgreSQL: the commit's
/// `end_lsn`. MariaDB: the binlog file's number in the high 32 bits and the offset just after
/// the commit event in the low ones. Its text is `X/Y`, both halves in hex, for every kind
/// (PostgreSQL's own LSN notation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

impl Position {
    pub const ZERO: Position = Position(0);

    /// Parses the `X/Y` text.
    pub fn parse(s: &str) -> Option<Position> {
        let (hi, lo) = s.trim().split_once('/')?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        Some(Position((hi << 32) | lo))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Position, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Position::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a position (X/Y)")))
    }
}

/// A row of a watched table: values in the table's column order (see [`crate::registry`]).
/// Immutable and shared: the replica, deltas and results hold the same allocation.
pub type Row = Arc<[Value]>;

/// A primary-key value, in key-column order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub KeyValues);

impl Key {
    pub fn of(row: &[Value], key_columns: &[usize]) -> Key {
        Key(key_columns.iter().map(|&i| row[i].clone()).collect())
    }

    /// The empty key, used by table-wide operations (truncate).
    pub fn none() -> Key {
        Key(KeyValues::Many(Arc::from(Vec::new())))
    }
}

/// A key's values. Most keys are one column: that value is held inline, so a key costs no
/// allocation of its own (the replica holds one per row, and one more per index entry); a
/// wider key shares one allocation. Compared, ordered and hashed as the slice of values, so
/// the two forms of the same values are equal.
#[derive(Clone, Debug)]
pub enum KeyValues {
    One(Value),
    Many(Arc<[Value]>),
}

impl std::ops::Deref for KeyValues {
    type Target = [Value];

    fn deref(&self) -> &[Value] {
        match self {
            KeyValues::One(value) => std::slice::from_ref(value),
            KeyValues::Many(values) => values,
        }
    }
}

impl FromIterator<Value> for KeyValues {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> KeyValues {
        let mut iter = iter.into_iter();
        match (iter.next(), iter.next()) {
            (Some(one), None) => KeyValues::One(one),
            (first, second) => KeyValues::Many(first.into_iter().chain(second).chain(iter).collect()),
        }
    }
}

impl From<Vec<Value>> for KeyValues {
    fn from(values: Vec<Value>) -> KeyValues {
        values.into_iter().collect()
    }
}

impl PartialEq for KeyValues {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for KeyValues {}

impl PartialOrd for KeyValues {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyValues {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::hash::Hash for KeyValues {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

// Held inline, a one-column key is no wider than a value: map and index entries stay small.
const _: () = assert!(std::mem::size_of::<KeyValues>() == std::mem::size_of::<Value>());

/// A tuple as the source sent it: `None` marks a value the source did not send (an unchanged
/// TOAST column, a column outside a key-only before-image). That is not NULL, and the replica
/// fills it from the row it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Image(pub Vec<Option<Value>>);

impl Image {
    /// An image with every value sent.
    pub fn full(values: Vec<Value>) -> Image {
        Image(values.into_iter().map(Some).collect())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
    Truncate,
}

/// One row change inside a transaction.
#[derive(Clone, Debug)]
pub struct Change {
    pub table: TableId,
    pub op: Op,
    /// The key of the row after the change (insert, update) or of the removed row (delete); for
    /// an update that moved the key, `before` carries the old key.
    pub key: Key,
    /// Update: the old key (key-only image) or the full old row (REPLICA IDENTITY FULL), when
    /// the source sent one. Delete: the old key or row.
    pub before: Option<Image>,
    pub after: Option<Image>,
}

impl Change {
    /// Bytes the change holds (an estimate), what a transaction's memory budget counts.
    pub fn approx_bytes(&self) -> usize {
        let image = |i: &Option<Image>| {
            i.as_ref().map_or(0, |i| i.0.iter().map(|v| v.as_ref().map_or(1, Value::approx_bytes)).sum::<usize>())
        };
        std::mem::size_of::<Change>()
            + self.key.0.iter().map(Value::approx_bytes).sum::<usize>()
            + image(&self.before)
            + image(&self.after)
    }
}

/// Why a table's contents were reset or need to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    Truncate,
    Resync,
    Quarantine,
    /// A transaction whose row changes outgrew the memory kept for them: the engines read the
    /// table afresh from the replica as of its commit instead of following each row.
    LargeTransaction,
}

/// Events about a whole table, carried through the seam so that the engines reset instead of
/// diffing.
#[derive(Clone, Debug)]
pub enum TableEvent {
    /// The table's initial copy starts, with the shape its rows have; its queries answer
    /// `NOT_READY` until `SnapshotEnd`. Any rows the replica held for it are dropped.
    /// `estimated_rows` is the source's own estimate of the table's size (statistics), for
    /// progress reporting only.
    SnapshotBegin { schema: Arc<TableSchema>, estimated_rows: Option<u64> },
    /// The initial copy is complete and consistent as of `position`.
    SnapshotEnd { table: TableId, position: Position, rows: u64 },
    /// The table's column set changed at the source. Rows decoded after this event still use
    /// the last known shape (columns the source dropped read as NULL, added ones are ignored)
    /// until the table is resynced; `columns` is what the source now sends.
    SchemaChanged { table: TableId, columns: Vec<Arc<str>> },
    /// The table's changes cannot be decoded or applied from `position` on: it is set aside
    /// (its queries answer `NOT_READY`) while the rest of the source streams, until a resync.
    Quarantined { table: TableId, position: Position, reason: String },
    /// The table is about to be copied again on its own (resync): its queries answer
    /// `NOT_READY` until the copy's `SnapshotEnd`; the other tables go on streaming.
    ResyncBegin { table: TableId, reason: String },
}

/// One committed source transaction.
#[derive(Clone, Debug)]
pub struct Transaction {
    pub source: SourceName,
    pub position: Position,
    /// Commit time, microseconds since the Unix epoch.
    pub commit_ts: i64,
    /// The source's transaction id (PostgreSQL xid).
    pub xid: u64,
    pub changes: Vec<Change>,
    /// Table events decoded inside the transaction, each with the index of the change it
    /// precedes (a relation can change between two row changes).
    pub table_events: Vec<(usize, TableEvent)>,
}

impl Transaction {
    /// A transaction of `source` at `position`, committed at `commit_ts` as `xid`, of the
    /// changes and table events a source gathered (taken, leaving them empty for more).
    pub fn taking(
        (source, position, commit_ts, xid): (SourceName, Position, i64, u64),
        changes: &mut Vec<Change>,
        table_events: &mut Vec<(usize, TableEvent)>,
    ) -> Transaction {
        let (changes, table_events) = (std::mem::take(changes), std::mem::take(table_events));
        Transaction { source, position, commit_ts, xid, changes, table_events }
    }
}

/// One part of a transaction too large to hold whole: a source passes it on in parts, in
/// order, as it reads it, and the replica applies each without showing any of it to readers
/// until the last (see [`crate::replica`]). Parts of one transaction are numbered from 0; a
/// source that starts again mid-way sends the transaction again from part 0. Only committed
/// transactions are sent in parts, so no part is ever taken back by its source.
#[derive(Clone, Debug)]
pub struct TxPart {
    /// The changes and table events of this part. Its position is the commit's only in the
    /// last part; before it, one past where the commit record starts (no position a table may
    /// be consistent at lies between the two).
    pub tx: Transaction,
    pub index: u32,
    pub last: bool,
    /// What the part counts against the transaction memory, given back when the part (every
    /// copy of it) is dropped: once it is applied.
    pub claim: Option<Arc<crate::tx_memory::InFlight>>,
}

/// What a source emits, in order.
#[derive(Clone, Debug)]
pub enum SourceEvent {
    Table(TableEvent),
    /// A chunk of a table's initial copy (complete rows).
    SnapshotRows {
        table: TableId,
        rows: Vec<Row>,
    },
    /// Every watched table has been copied: the replica is consistent as of `position`, and
    /// the stream continues after it.
    Consistent {
        source: SourceName,
        position: Position,
    },
    Transaction(Transaction),
    /// A part of a large transaction.
    Part(TxPart),
    /// Nothing watched happened at the source up to `position` (a quiet stream, a heartbeat,
    /// writes to other tables): the replica is current as of it, so it may be checkpointed
    /// and acknowledged, and the slot does not hold WAL for nothing.
    Progress {
        source: SourceName,
        position: Position,
    },
}

impl SourceEvent {
    /// The source whose stream position the event moves (a transaction, a part, progress, a
    /// consistent point); table events and snapshot rows move none.
    pub fn positioned_source(&self) -> Option<&SourceName> {
        match self {
            SourceEvent::Transaction(tx) | SourceEvent::Part(TxPart { tx, .. }) => Some(&tx.source),
            SourceEvent::Progress { source, .. } | SourceEvent::Consistent { source, .. } => Some(source),
            SourceEvent::Table(_) | SourceEvent::SnapshotRows { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_text_round_trips() {
        let p = Position::parse("16/B374D848").unwrap();
        assert_eq!(p.0, 0x16_B374_D848);
        assert_eq!(p.to_string(), "16/B374D848");
        assert_eq!(Position::parse("0/0"), Some(Position::ZERO));
        assert_eq!(Position::parse("nonsense"), None);
    }

    fn hash_of(key: &Key) -> u64 {
        use std::hash::{BuildHasher, RandomState};
        thread_local!(static STATE: RandomState = RandomState::new());
        STATE.with(|s| s.hash_one(key))
    }

    #[test]
    fn a_key_held_inline_and_the_same_values_shared_are_one_key() {
        let inline = Key(vec![Value::Int8(7)].into());
        assert!(matches!(inline.0, KeyValues::One(_)), "one column is held inline");
        let shared = Key(KeyValues::Many(Arc::from(vec![Value::Int8(7)])));
        assert_eq!(inline, shared);
        assert_eq!(inline.cmp(&shared), std::cmp::Ordering::Equal);
        assert_eq!(hash_of(&inline), hash_of(&shared));
        // Ordered as value slices: a one-column key before a longer key it starts, keys by value.
        let wider = Key(vec![Value::Int8(7), Value::text("a")].into());
        assert!(matches!(wider.0, KeyValues::Many(_)));
        assert!(inline < wider && Key(vec![Value::Int8(6)].into()) < inline && Key::none() < inline);
        assert_eq!(Key::of(&[Value::text("x"), Value::Int8(7)], &[1]), inline);
    }
}

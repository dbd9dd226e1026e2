//! One watched table in memory: rows by primary key, ordered indexes on chosen columns.
//!
//! Both live in persistent maps (`imbl`), so cloning a table is O(1): a reader takes a
//! transaction-consistent version while apply goes on, and unchanged subtrees are shared.

use std::ops::RangeBounds;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use crate::change::{Key, KeyValues, Position, Row};
use crate::registry::TableSchema;
use crate::value::Value;

/// Whether a table's rows can be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableState {
    /// The initial copy is being loaded: queries must answer `NOT_READY`.
    Loading,
    Ready,
    /// The rows are exact for the columns the replica knows, but the source's column set
    /// changed; the table needs a resync.
    Stale {
        reason: String,
    },
    /// The table's changes could not be decoded or applied from `position` on: its rows are set
    /// aside (no longer followed) until a resync reloads it.
    Quarantined {
        reason: String,
        position: Position,
    },
}

impl TableState {
    /// Whether queries may be answered from the table's rows.
    pub fn is_ready(&self) -> bool {
        matches!(self, TableState::Ready)
    }

    pub fn name(&self) -> &'static str {
        match self {
            TableState::Loading => "loading",
            TableState::Ready => "ready",
            TableState::Stale { .. } => "stale",
            TableState::Quarantined { .. } => "quarantined",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Index {
    /// Position of the indexed column in the schema.
    pub column: usize,
    entries: OrdSet<(Value, Key)>,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub schema: Arc<TableSchema>,
    pub state: TableState,
    /// Every change of the source at or below this position is in the rows: the snapshot's
    /// consistent point, then each applied transaction's. A change at or below it is a
    /// re-delivery and is skipped, table by table, so that one table can be reloaded (resync)
    /// while the others stream.
    pub since: Position,
    rows: OrdMap<Key, Row>,
    indexes: Vec<Index>,
    approx_bytes: usize,
}

impl Table {
    pub fn new(schema: Arc<TableSchema>) -> Table {
        let indexes = schema.indexed.iter().map(|&column| Index { column, entries: OrdSet::new() }).collect();
        Table {
            schema,
            state: TableState::Loading,
            since: Position::ZERO,
            rows: OrdMap::new(),
            indexes,
            approx_bytes: 0,
        }
    }

    /// A table rebuilt from stored rows (a checkpoint), in the given state.
    pub fn restore(
        schema: Arc<TableSchema>,
        state: TableState,
        since: Position,
        rows: impl IntoIterator<Item = Row>,
    ) -> Table {
        let mut table = Table::new(schema);
        let key_columns = table.schema.key.clone();
        for row in rows {
            table.upsert(Key::of(&row, &key_columns), row);
        }
        table.state = state;
        table.since = since;
        table
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, key: &Key) -> Option<&Row> {
        self.rows.get(key)
    }

    /// Rows in primary-key order.
    pub fn rows(&self) -> impl Iterator<Item = (&Key, &Row)> {
        self.rows.iter()
    }

    /// An estimate of the memory the rows take (values and row overhead, not shared tree nodes).
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes
    }

    /// Keys of the rows whose `column` lies in `range`, in (value, key) order. `None` when the
    /// column has no index.
    pub fn index_range<'a>(
        &'a self,
        column: usize,
        range: impl RangeBounds<Value> + 'a,
    ) -> Option<impl Iterator<Item = &'a Key> + 'a> {
        use std::ops::Bound;
        let index = self.indexes.iter().find(|i| i.column == column)?;
        // Keys sort after the empty key, so (v, empty) starts v and the next step past
        // (v, max) ends it; `Key` has no max, so bound the end by checking the value.
        let start = match range.start_bound() {
            Bound::Included(v) => Bound::Included((v.clone(), Key::none())),
            Bound::Excluded(v) => Bound::Excluded((v.clone(), Key::none())),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = range.end_bound().cloned();
        let start_excluded = match range.start_bound() {
            Bound::Excluded(v) => Some(v.clone()),
            _ => None,
        };
        Some(
            index
                .entries
                .range((start, Bound::Unbounded))
                .skip_while(move |(v, _)| start_excluded.as_ref() == Some(v))
                .take_while(move |(v, _)| match &end {
                    Bound::Included(e) => v <= e,
                    Bound::Excluded(e) => v < e,
                    Bound::Unbounded => true,
                })
                .map(|(_, k)| k),
        )
    }

    /// Like [`index_range`](Self::index_range), in descending (value, key) order: a "latest
    /// first" walk reads the index back to front instead of collecting it.
    pub fn index_range_desc<'a>(
        &'a self,
        column: usize,
        range: impl RangeBounds<Value> + 'a,
    ) -> Option<impl Iterator<Item = &'a Key> + 'a> {
        use std::ops::Bound;
        let index = self.indexes.iter().find(|i| i.column == column)?;
        // Start after every entry of the highest wanted value: (v, empty) is the first entry of
        // v, so the entries below it are those of smaller values; for an included upper end,
        // skip from the top down to it instead.
        let (top, skip_above) = match range.end_bound() {
            Bound::Excluded(v) => (Bound::Excluded((v.clone(), Key::none())), None),
            Bound::Included(v) => (Bound::Unbounded, Some(v.clone())),
            Bound::Unbounded => (Bound::Unbounded, None),
        };
        let start = range.start_bound().cloned();
        Some(
            index
                .entries
                .range((Bound::Unbounded, top))
                .rev()
                .skip_while(move |(v, _)| skip_above.as_ref().is_some_and(|above| v > above))
                .take_while(move |(v, _)| match &start {
                    Bound::Included(s) => v >= s,
                    Bound::Excluded(s) => v > s,
                    Bound::Unbounded => true,
                })
                .map(|(_, k)| k),
        )
    }

    /// Inserts or replaces a row, keeping indexes; returns the row it replaced.
    pub fn upsert(&mut self, key: Key, row: Row) -> Option<Row> {
        // One descent of the row map, replacing in place: a remove first would walk (and, on a
        // tree shared with a published version, copy) the same path twice.
        let added = row_bytes(&row) + key_bytes(&key);
        let old = self.rows.insert(key.clone(), row.clone());
        if let Some(old) = &old {
            self.approx_bytes = self.approx_bytes.saturating_sub(row_bytes(old) + key_bytes(&key));
        }
        for index in &mut self.indexes {
            let value = &row[index.column];
            match &old {
                // The entry (value, key) would be removed and put back as it was.
                Some(old) if old[index.column] == *value => {}
                Some(old) => {
                    index.entries.remove(&(old[index.column].clone(), key.clone()));
                    index.entries.insert((value.clone(), key.clone()));
                }
                None => {
                    index.entries.insert((value.clone(), key.clone()));
                }
            }
        }
        self.approx_bytes += added;
        old
    }

    pub fn remove(&mut self, key: &Key) -> Option<Row> {
        let old = self.rows.remove(key)?;
        for index in &mut self.indexes {
            index.entries.remove(&(old[index.column].clone(), key.clone()));
        }
        self.approx_bytes = self.approx_bytes.saturating_sub(row_bytes(&old) + key_bytes(key));
        Some(old)
    }

    pub fn clear(&mut self) {
        self.rows = OrdMap::new();
        for index in &mut self.indexes {
            index.entries = OrdSet::new();
        }
        self.approx_bytes = 0;
    }
}

fn key_bytes(key: &Key) -> usize {
    match &key.0 {
        // Inline in the map's entry: only what the value points to is extra.
        KeyValues::One(value) => value.approx_bytes() - std::mem::size_of::<Value>(),
        KeyValues::Many(values) => values.iter().map(Value::approx_bytes).sum::<usize>() + 16,
    }
}

pub(crate) fn row_bytes(row: &Row) -> usize {
    row.iter().map(Value::approx_bytes).sum::<usize>() + 16
}

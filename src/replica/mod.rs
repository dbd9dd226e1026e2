//! The in-memory replica of every watched table.
//!
//! `apply` is pure: it takes one [`SourceEvent`], changes the tables and returns what changed
//! ([`Applied`]) for the engines downstream. A change at or below its table's position is
//! skipped, so a source may re-deliver after a reconnect or a restart without effect, and one
//! table can be reloaded at its own consistent point while the others stream. Values the
//! source did not send (unchanged TOAST) are filled from the row the replica holds.
//!
//! A large transaction comes in parts ([`TxPart`]), applied as they come so that none is held
//! whole; the tables it touches keep their version from before it, and [`Replica::visible`],
//! the version readers get, shows those until its last part. A source that starts the
//! transaction again (it reconnected mid-way) or moves past it takes it back: the tables are
//! put back as they were, except one copied anew meanwhile (a resync beside the stream).

mod delta;
mod table;

use std::collections::HashMap;
use std::sync::Arc;

pub use delta::{Anomaly, AnomalyKind, Applied, Delta, RowDelta, TxInfo};
pub(crate) use table::row_bytes;
pub use table::{Index, Table, TableState};

use crate::change::{
    Change, Image, Key, Op, Position, ResetReason, Row, SourceEvent, SourceName, TableEvent, Transaction, TxPart,
};
use crate::registry::TableId;
use crate::value::Value;

/// A consistent, cheaply cloned version of the replica.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    tables: HashMap<TableId, Table>,
    /// Highest applied position per source.
    applied: HashMap<SourceName, Position>,
    /// Tables set aside before they ever loaded (a table added to the configuration that
    /// cannot be copied): why, so `/tables` and the metrics can say so. Not checkpointed: a
    /// restart tries them again.
    never_loaded: HashMap<TableId, String>,
    /// Tables start empty in the middle of the stream (`tail --no-snapshot`): changes to rows
    /// never seen are expected, so they are counted but do not quarantine the table.
    mid_stream: bool,
    /// Large transactions being applied in parts, by source.
    open: HashMap<SourceName, OpenTx>,
}

/// A transaction whose parts are being applied.
#[derive(Clone, Debug, Default)]
struct OpenTx {
    /// The index the next part must have to continue it.
    next: u32,
    /// The tables it touched, as they were before it.
    before: HashMap<TableId, Table>,
    /// Tables with row changes in it: their positions advance at its commit.
    changed: Vec<TableId>,
    /// Whether any part changed anything.
    any: bool,
}

impl Replica {
    pub fn new() -> Replica {
        Replica::default()
    }

    /// This replica, for tables loaded empty at the stream's current position instead of
    /// copied: they do not hold the source's rows exactly (see `mid_stream`).
    pub fn loaded_mid_stream(self) -> Replica {
        Replica { mid_stream: true, ..self }
    }

    pub fn table(&self, id: TableId) -> Option<&Table> {
        self.tables.get(&id)
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// Why a table that never loaded was set aside, if it was.
    pub fn never_loaded(&self, id: TableId) -> Option<&str> {
        self.never_loaded.get(&id).map(String::as_str)
    }

    pub fn never_loaded_tables(&self) -> impl Iterator<Item = TableId> + '_ {
        self.never_loaded.keys().copied()
    }

    /// The position up to which the source's changes are applied (zero before its snapshot is
    /// consistent).
    pub fn applied_position(&self, source: &str) -> Position {
        self.applied.get(source).copied().unwrap_or(Position::ZERO)
    }

    /// Every source's applied position.
    pub fn applied_positions(&self) -> impl Iterator<Item = (&SourceName, Position)> {
        self.applied.iter().map(|(s, p)| (s, *p))
    }

    /// Drops a source's tables and position (its checkpoint cannot be resumed).
    pub fn forget_source(&mut self, source: &str) {
        self.tables.retain(|_, t| &*t.schema.spec.source != source);
        self.applied.remove(source);
    }

    /// A replica rebuilt from stored tables and positions (a checkpoint).
    pub fn restore(tables: Vec<Table>, applied: HashMap<SourceName, Position>) -> Replica {
        Replica {
            tables: tables.into_iter().map(|t| (t.schema.id(), t)).collect(),
            applied,
            never_loaded: HashMap::new(),
            mid_stream: false,
            open: HashMap::new(),
        }
    }

    /// The version readers see: every table a transaction still being applied in parts has
    /// touched as it was before that transaction.
    pub fn visible(&self) -> Replica {
        let mut version = self.clone();
        for (_, open) in std::mem::take(&mut version.open) {
            version.tables.extend(open.before);
        }
        version
    }

    /// Whether a transaction of `source` is being applied in parts.
    pub fn in_transaction(&self, source: &str) -> bool {
        self.open.contains_key(source)
    }

    /// Takes back the parts applied of `source`'s open transaction, if it has one.
    fn abandon(&mut self, source: &str) {
        if let Some(open) = self.open.remove(source) {
            tracing::info!(source = %source, tables = open.before.len(), "a transaction applied in part is taken back; its source sends it again");
            self.tables.extend(open.before);
        }
    }

    pub fn apply(&mut self, event: &SourceEvent) -> Applied {
        // A table copied again (a resync beside the stream) is not a restart of the source.
        if let Some(source) = event.positioned_source()
            && self.open.contains_key(source)
        {
            let continues = matches!(event, SourceEvent::Part(p)
                if p.index > 0 && self.open.get(source).is_some_and(|o| o.next == p.index));
            if !continues {
                let source = source.clone();
                self.abandon(&source);
            }
        }
        match event {
            SourceEvent::Part(part) => self.apply_part(part),
            SourceEvent::Table(ev) => self.apply_table_event(ev),
            SourceEvent::SnapshotRows { table, rows } => self.apply_snapshot_rows(*table, rows),
            SourceEvent::Consistent { source, position } => {
                let slot = self.applied.entry(source.clone()).or_default();
                *slot = (*slot).max(*position);
                Applied {
                    deltas: vec![Delta::Consistent { source: source.clone(), position: *position }],
                    ..Applied::default()
                }
            }
            SourceEvent::Transaction(tx) => self.apply_transaction(tx),
            SourceEvent::Progress { source, position } => {
                if let Some(slot) = self.applied.get_mut(source) {
                    *slot = (*slot).max(*position);
                }
                Applied::default()
            }
        }
    }

    fn apply_table_event(&mut self, ev: &TableEvent) -> Applied {
        let delta = match ev {
            TableEvent::SnapshotBegin { schema, .. } => {
                // Copied anew: what an open transaction kept of it is no longer the table.
                for open in self.open.values_mut() {
                    open.before.remove(&schema.id());
                }
                self.never_loaded.remove(&schema.id());
                self.tables.insert(schema.id(), Table::new(schema.clone()));
                Delta::SnapshotBegin { schema: schema.clone() }
            }
            TableEvent::SnapshotEnd { table, rows, position } => {
                if let Some(t) = self.tables.get_mut(table) {
                    t.state = TableState::Ready;
                    t.since = *position;
                }
                Delta::SnapshotEnd { table: *table, rows: *rows }
            }
            TableEvent::SchemaChanged { table, columns } => {
                self.mark_stale(*table, columns);
                Delta::SchemaChanged { table: *table, columns: columns.clone() }
            }
            TableEvent::ResyncBegin { table, .. } => {
                self.never_loaded.remove(table);
                if let Some(t) = self.tables.get_mut(table) {
                    t.state = TableState::Loading;
                }
                Delta::Reset { table: *table, reason: ResetReason::Resync }
            }
            TableEvent::Quarantined { table, position, reason } => {
                match self.tables.get_mut(table) {
                    Some(t) => t.state = TableState::Quarantined { reason: reason.clone(), position: *position },
                    None => {
                        self.never_loaded.insert(*table, reason.clone());
                    }
                }
                Delta::Reset { table: *table, reason: ResetReason::Quarantine }
            }
        };
        Applied { deltas: vec![delta], ..Applied::default() }
    }

    fn mark_stale(&mut self, table: TableId, columns: &[Arc<str>]) {
        if let Some(t) = self.tables.get_mut(&table) {
            let known: Vec<&str> = t.schema.columns.iter().map(|c| &*c.name).collect();
            t.state = TableState::Stale {
                reason: format!(
                    "source columns changed from ({}) to ({}); a resync is needed",
                    known.join(", "),
                    columns.iter().map(|c| &**c).collect::<Vec<_>>().join(", ")
                ),
            };
        }
    }

    fn apply_snapshot_rows(&mut self, table: TableId, rows: &[Row]) -> Applied {
        let mut applied = Applied::default();
        let Some(t) = self.tables.get_mut(&table) else {
            applied.anomalies.push(Anomaly { table, key: Key::none(), kind: AnomalyKind::UnknownTable });
            return applied;
        };
        let key_columns = t.schema.key.clone();
        for row in rows {
            let key = Key::of(row, &key_columns);
            if t.upsert(key.clone(), row.clone()).is_some() {
                applied.anomalies.push(Anomaly { table, key, kind: AnomalyKind::InsertExisting });
            }
        }
        applied.deltas.push(Delta::SnapshotRows { table, rows: rows.to_vec() });
        applied
    }

    fn apply_transaction(&mut self, tx: &Transaction) -> Applied {
        let mut applied = Applied {
            tx: Some(TxInfo { source: tx.source.clone(), position: tx.position, commit_ts: tx.commit_ts, xid: tx.xid }),
            deltas: Vec::with_capacity(tx.changes.len()),
            ..Applied::default()
        };
        let any = self.apply_changes(tx, &mut applied);
        // Positions only advance once every change of a transaction is applied.
        for change in &tx.changes {
            if let Some(t) = self.tables.get_mut(&change.table) {
                t.since = t.since.max(tx.position);
            }
        }
        self.commit(&tx.source, tx.position, any, &mut applied);
        applied
    }

    /// Applies one part of a large transaction. The tables it touches keep their version from
    /// before it for readers; at the last part its positions advance as a whole transaction's.
    fn apply_part(&mut self, part: &TxPart) -> Applied {
        let tx = &part.tx;
        let mut applied = Applied {
            tx: Some(TxInfo { source: tx.source.clone(), position: tx.position, commit_ts: tx.commit_ts, xid: tx.xid }),
            deltas: Vec::with_capacity(tx.changes.len()),
            ..Applied::default()
        };
        let open = self.open.entry(tx.source.clone()).or_default();
        open.next = part.index + 1;
        let events = tx.table_events.iter().map(|(_, ev)| event_table(ev));
        for table in tx.changes.iter().map(|c| c.table).chain(events) {
            if !open.before.contains_key(&table)
                && let Some(t) = self.tables.get(&table)
            {
                open.before.insert(table, t.clone());
            }
        }
        for change in &tx.changes {
            if !open.changed.contains(&change.table) {
                open.changed.push(change.table);
            }
        }
        let any = self.apply_changes(tx, &mut applied);
        let open = self.open.get_mut(&tx.source).expect("opened above");
        open.any |= any;
        // Nothing new in this part (it was applied before this restart, or its table is set aside).
        applied.skipped = !any;
        if part.last {
            let open = self.open.remove(&tx.source).expect("opened above");
            for table in &open.changed {
                if let Some(t) = self.tables.get_mut(table) {
                    t.since = t.since.max(tx.position);
                }
            }
            self.commit(&tx.source, tx.position, open.any, &mut applied);
        }
        applied
    }

    /// Applies a transaction's changes and table events in order; whether any was new.
    fn apply_changes(&mut self, tx: &Transaction, applied: &mut Applied) -> bool {
        let mut events = tx.table_events.iter().peekable();
        let mut any = false;
        for (ordinal, change) in tx.changes.iter().enumerate() {
            while let Some((_, ev)) = events.next_if(|(at, _)| *at <= ordinal) {
                any |= self.apply_table_event_at(tx.position, ev, applied);
            }
            if self.follows(change.table, tx.position) {
                any = true;
                let seen = applied.anomalies.len();
                self.apply_change(ordinal as u32, change, applied);
                if let Some(anomaly) = applied.anomalies.get(seen).map(|a| a.kind) {
                    self.quarantine_contradicted(change.table, anomaly, tx.position, applied);
                }
            }
        }
        for (_, ev) in events {
            any |= self.apply_table_event_at(tx.position, ev, applied);
        }
        any
    }

    /// Moves the source's applied position to a committed transaction's.
    fn commit(&mut self, source: &SourceName, position: Position, any: bool, applied: &mut Applied) {
        let source_applied = self.applied.entry(source.clone()).or_default();
        applied.skipped = !any && position <= *source_applied;
        *source_applied = (*source_applied).max(position);
    }

    /// Whether a change at `position` is new for the table: not already in its rows, and the
    /// table is followed (not quarantined). Unknown tables are reported by `apply_change`.
    fn follows(&self, table: TableId, position: Position) -> bool {
        match self.tables.get(&table) {
            Some(t) => position > t.since && !matches!(t.state, TableState::Quarantined { .. }),
            None => true,
        }
    }

    fn apply_table_event_at(&mut self, position: Position, ev: &TableEvent, applied: &mut Applied) -> bool {
        if !self.follows(event_table(ev), position) {
            return false;
        }
        let mut out = self.apply_table_event(ev);
        applied.deltas.append(&mut out.deltas);
        true
    }

    /// A change that contradicts a table the replica holds exactly (an update or delete of a row
    /// it does not hold, an insert of one it does) means its rows can no longer be trusted: the
    /// table is set aside, as when a change cannot be decoded, until a resync reloads it; the
    /// rest of its transaction's changes to it are not applied.
    fn quarantine_contradicted(
        &mut self,
        table: TableId,
        anomaly: AnomalyKind,
        position: Position,
        applied: &mut Applied,
    ) {
        if self.mid_stream {
            return;
        }
        let Some(t) = self.tables.get_mut(&table) else { return };
        if matches!(t.state, TableState::Quarantined { .. } | TableState::Loading) {
            return;
        }
        let what = match anomaly {
            AnomalyKind::InsertExisting => "an insert of a row it already holds",
            AnomalyKind::UpdateMissing => "an update of a row it does not hold",
            AnomalyKind::DeleteMissing => "a delete of a row it does not hold",
            AnomalyKind::UnsentValueForMissingRow => "an update with unsent values of a row it does not hold",
            AnomalyKind::UnknownTable => return,
        };
        t.state = TableState::Quarantined {
            reason: format!(
                "the stream contradicted the replica at {position}: {what}; its rows cannot be trusted until the table is resynced"
            ),
            position,
        };
        applied.deltas.push(Delta::Reset { table, reason: ResetReason::Quarantine });
    }

    fn apply_change(&mut self, ordinal: u32, change: &Change, applied: &mut Applied) {
        let table_id = change.table;
        let Some(t) = self.tables.get_mut(&table_id) else {
            applied.anomalies.push(Anomaly {
                table: table_id,
                key: change.key.clone(),
                kind: AnomalyKind::UnknownTable,
            });
            return;
        };
        let anomaly = |kind, key: &Key| Anomaly { table: table_id, key: key.clone(), kind };
        let delta =
            |op, key: Key, before, after| Delta::Row(RowDelta { table: table_id, op, ordinal, key, before, after });
        match change.op {
            Op::Truncate => {
                t.clear();
                applied.deltas.push(Delta::Reset { table: table_id, reason: ResetReason::Truncate });
            }
            Op::Insert => {
                let Some(row) = change.after.as_ref().and_then(|a| complete(a, None)) else {
                    applied.anomalies.push(anomaly(AnomalyKind::UnsentValueForMissingRow, &change.key));
                    return;
                };
                let old = t.upsert(change.key.clone(), row.clone());
                if old.is_some() {
                    applied.anomalies.push(anomaly(AnomalyKind::InsertExisting, &change.key));
                }
                applied.deltas.push(delta(Op::Insert, change.key.clone(), old, Some(row)));
            }
            Op::Update => {
                let old_key = change
                    .before
                    .as_ref()
                    .and_then(|b| key_of_image(b, &t.schema.key))
                    .unwrap_or_else(|| change.key.clone());
                let old = t.get(&old_key).cloned();
                let Some(row) = change.after.as_ref().and_then(|a| complete(a, old.as_ref())) else {
                    applied.anomalies.push(anomaly(AnomalyKind::UnsentValueForMissingRow, &old_key));
                    return;
                };
                if old.is_none() {
                    applied.anomalies.push(anomaly(AnomalyKind::UpdateMissing, &old_key));
                }
                if old_key != change.key {
                    t.remove(&old_key);
                    if t.get(&change.key).is_some() {
                        applied.anomalies.push(anomaly(AnomalyKind::InsertExisting, &change.key));
                    }
                }
                t.upsert(change.key.clone(), row.clone());
                applied.deltas.push(delta(Op::Update, change.key.clone(), old, Some(row)));
            }
            Op::Delete => match t.remove(&change.key) {
                Some(old) => applied.deltas.push(delta(Op::Delete, change.key.clone(), Some(old), None)),
                None => applied.anomalies.push(anomaly(AnomalyKind::DeleteMissing, &change.key)),
            },
        }
    }
}

/// The table a table event is about.
fn event_table(ev: &TableEvent) -> TableId {
    match ev {
        TableEvent::SnapshotBegin { schema, .. } => schema.id(),
        TableEvent::SnapshotEnd { table, .. }
        | TableEvent::SchemaChanged { table, .. }
        | TableEvent::ResyncBegin { table, .. }
        | TableEvent::Quarantined { table, .. } => *table,
    }
}

/// Builds a full row from an image, taking unsent values from `old`. `None` when a value is
/// unsent and there is no old row to take it from.
fn complete(image: &Image, old: Option<&Row>) -> Option<Row> {
    // Checked before building, so the row is collected from an exact-size iterator straight
    // into its one allocation (collecting through `Option` would build a `Vec` and copy it).
    if old.is_none() && image.0.iter().any(Option::is_none) {
        return None;
    }
    Some(
        image
            .0
            .iter()
            .enumerate()
            .map(|(i, cell)| match (cell, old) {
                (Some(v), _) => v.clone(),
                (None, Some(o)) => o[i].clone(),
                (None, None) => unreachable!("checked above"),
            })
            .collect(),
    )
}

/// The key of a before-image, if it carries every key column.
fn key_of_image(image: &Image, key_columns: &[usize]) -> Option<Key> {
    key_columns
        .iter()
        .map(|&i| image.0.get(i).cloned().flatten())
        .collect::<Option<Vec<Value>>>()
        .map(|v| Key(v.into()))
}

#[cfg(test)]
mod tests;

//! Stage two of decoding: pgoutput messages → [`Change`]s in the watched tables' shapes.
//!
//! Keeps the relation cache (pgoutput sends each table's Relation message before its first row
//! change in a session and again after it changes), maps relation columns to the replica's columns
//! by name, drops excluded columns before parsing them, and tells apart NULL from a value the
//! server did not send.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::PgTable;
use super::pgoutput::{Message, OldKind, Relation, Tuple, TupleValue};
use super::{binary, text};
use crate::change::{Change, Image, Key, Op, TableEvent};
use crate::registry::{Registry, TableId};
use crate::value::Value;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A row of a watched table that cannot be read; the table is quarantined.
    #[error("row change for relation {0} before its Relation message")]
    UnknownRelation(u32),
    #[error("{table}: {detail}")]
    Table { table: String, id: TableId, detail: String },
}

/// How one relation's columns map onto a watched table's columns.
struct RelationMap {
    table: TableId,
    /// For each replica column, the relation column holding it (`None`: dropped at the source).
    source_column: Vec<Option<usize>>,
}

pub struct Decoder {
    source: Arc<str>,
    registry: Arc<Registry>,
    tables: HashMap<TableId, PgTable>,
    /// `None` marks a relation that is published but not watched (or whose table is being
    /// resynced and has no shape installed).
    relations: HashMap<u32, Option<RelationMap>>,
    /// Every watched relation seen, and its newest Relation message: a table whose shape is
    /// installed again after a resync maps its columns from it.
    seen: HashMap<u32, (TableId, Relation)>,
}

/// What one message turned into.
pub enum Decoded {
    Change(Change),
    Table(TableEvent),
    /// The table's replica identity (the columns old tuples carry) no longer matches the key
    /// its rows are held by: a resync copies it again keyed by the new identity.
    IdentityChanged {
        table: TableId,
        reason: String,
    },
    Nothing,
}

impl Decoder {
    pub fn new(source: Arc<str>, registry: Arc<Registry>, tables: impl IntoIterator<Item = PgTable>) -> Decoder {
        let tables = tables.into_iter().map(|t| (t.schema.id(), t)).collect();
        Decoder { source, registry, tables, relations: HashMap::new(), seen: HashMap::new() }
    }

    /// The watched table a relation oid stands for, once its Relation message was seen.
    pub fn table_of(&self, relation: u32) -> Option<TableId> {
        self.seen.get(&relation).map(|(t, _)| *t)
    }

    /// The watched table a Relation message describes (by name, from the configuration).
    pub fn watched(&self, rel: &Relation) -> Option<TableId> {
        self.registry.find(&self.source, &rel.namespace, &rel.name)
    }

    /// Records a Relation message of a table whose changes are held back (resync): its rows
    /// are decoded later, with the shape the resync installs.
    pub fn remember(&mut self, rel: Relation) {
        if let Some(table) = self.watched(&rel) {
            self.relations.insert(rel.oid, None);
            self.seen.insert(rel.oid, (table, rel));
        }
    }

    /// Stops decoding a table (its resync begins): its shape is dropped until `install`.
    pub fn forget(&mut self, table: TableId) {
        self.tables.remove(&table);
        for (oid, (t, _)) in &self.seen {
            if *t == table {
                self.relations.insert(*oid, None);
            }
        }
    }

    /// Installs a table's shape (after its resync) and maps its columns from the newest
    /// Relation message seen for it. A difference is not reported here: the server sends a new
    /// Relation message before the table's next change whenever its columns changed.
    pub fn install(&mut self, table: PgTable) {
        let id = table.schema.id();
        let source_column_for = |rel: &Relation| -> Vec<Option<usize>> {
            table.schema.columns.iter().map(|c| rel.columns.iter().position(|rc| *rc.name == *c.name)).collect()
        };
        let maps: Vec<(u32, Vec<Option<usize>>)> = self
            .seen
            .iter()
            .filter(|(_, (t, _))| *t == id)
            .map(|(oid, (_, rel))| (*oid, source_column_for(rel)))
            .collect();
        for (oid, source_column) in maps {
            self.relations.insert(oid, Some(RelationMap { table: id, source_column }));
        }
        self.tables.insert(id, table);
    }

    /// The shape a table is decoded with.
    pub fn shape(&self, table: TableId) -> Option<&PgTable> {
        self.tables.get(&table)
    }

    /// Decodes one message; several for a multi-table TRUNCATE.
    pub fn decode(&mut self, msg: Message, out: &mut Vec<Decoded>) -> Result<(), DecodeError> {
        match msg {
            Message::Relation(rel) => out.push(self.relation(rel)),
            Message::Insert { relation, new } => {
                if let Some((map, table)) = self.map(relation)? {
                    let after = self.image(map, table, &new, false)?;
                    let key = self.key(table, &after)?;
                    out.push(Decoded::Change(Change {
                        table: map.table,
                        op: Op::Insert,
                        key,
                        before: None,
                        after: Some(after),
                    }));
                }
            }
            Message::Update { relation, old, new } => {
                if let Some((map, table)) = self.map(relation)? {
                    let after = self.image(map, table, &new, false)?;
                    let key = self.key(table, &after)?;
                    let before = match old {
                        Some((kind, tuple)) => Some(self.image(map, table, &tuple, kind == OldKind::Key)?),
                        None => None,
                    };
                    out.push(Decoded::Change(Change {
                        table: map.table,
                        op: Op::Update,
                        key,
                        before,
                        after: Some(after),
                    }));
                }
            }
            Message::Delete { relation, old: (kind, tuple) } => {
                if let Some((map, table)) = self.map(relation)? {
                    let before = self.image(map, table, &tuple, kind == OldKind::Key)?;
                    let key = self.key(table, &before)?;
                    out.push(Decoded::Change(Change {
                        table: map.table,
                        op: Op::Delete,
                        key,
                        before: Some(before),
                        after: None,
                    }));
                }
            }
            Message::Truncate { relations, .. } => {
                for relation in relations {
                    if let Some((map, _)) = self.map(relation)? {
                        out.push(Decoded::Change(Change {
                            table: map.table,
                            op: Op::Truncate,
                            key: Key::none(),
                            before: None,
                            after: None,
                        }));
                    }
                }
            }
            Message::Begin { .. }
            | Message::Commit { .. }
            | Message::Origin { .. }
            | Message::Type { .. }
            | Message::Logical { .. } => {}
        }
        Ok(())
    }

    /// The relation's column map and the shape of its table (`None`: not decoded).
    fn map(&self, relation: u32) -> Result<Option<(&RelationMap, &PgTable)>, DecodeError> {
        match self.relations.get(&relation) {
            // A map exists only while its table's shape is installed (`install`, `forget`).
            Some(m) => Ok(m.as_ref().and_then(|m| Some((m, self.tables.get(&m.table)?)))),
            None => Err(DecodeError::UnknownRelation(relation)),
        }
    }

    fn relation(&mut self, rel: Relation) -> Decoded {
        let Some(table) = self.registry.find(&self.source, &rel.namespace, &rel.name) else {
            self.relations.insert(rel.oid, None);
            return Decoded::Nothing;
        };
        self.seen.insert(rel.oid, (table, rel.clone()));
        let Some(known) = self.tables.get(&table) else {
            self.relations.insert(rel.oid, None);
            return Decoded::Nothing;
        };
        let spec = &known.schema.spec;
        let source_column: Vec<Option<usize>> =
            known.schema.columns.iter().map(|c| rel.columns.iter().position(|rc| *rc.name == *c.name)).collect();
        let sent: Vec<(&str, u32)> = rel
            .columns
            .iter()
            .filter(|c| !spec.exclude.iter().any(|e| **e == c.name))
            .map(|c| (c.name.as_str(), c.type_oid))
            .collect();
        let expected: Vec<(&str, u32)> =
            known.schema.columns.iter().zip(&known.column_type_oids).map(|(c, oid)| (&*c.name, *oid)).collect();
        let changed = sent != expected;
        let identity_changed = identity_change(&rel, &known.schema);
        self.relations.insert(rel.oid, Some(RelationMap { table, source_column }));
        if !changed && let Some(reason) = identity_changed {
            tracing::warn!(source = %self.source, table = %spec, reason = %reason, "the table's replica identity changed at the source; it is copied again");
            return Decoded::IdentityChanged { table, reason };
        }
        if changed {
            tracing::warn!(source = %self.source, table = %spec, "the table's columns changed at the source; it needs a resync");
            Decoded::Table(TableEvent::SchemaChanged {
                table,
                columns: sent.iter().map(|(n, _)| Arc::from(*n)).collect(),
            })
        } else {
            Decoded::Nothing
        }
    }

    /// Converts a tuple into the table's column order. In a key-only old tuple the non-key
    /// columns are NULL markers that mean "not sent", so they become absent.
    fn image(&self, map: &RelationMap, table: &PgTable, tuple: &Tuple, key_only: bool) -> Result<Image, DecodeError> {
        let mut cells = Vec::with_capacity(map.source_column.len());
        for (i, column) in table.schema.columns.iter().enumerate() {
            let cell = match map.source_column[i].and_then(|j| tuple.get(j)) {
                // A column the source no longer has: NULL until the table is resynced.
                None => Some(Value::Null),
                Some(_) if key_only && !table.schema.key.contains(&i) => None,
                Some(TupleValue::Null) => Some(Value::Null),
                Some(TupleValue::Unchanged) => None,
                Some(TupleValue::Text(bytes)) => {
                    let s = std::str::from_utf8(bytes)
                        .map_err(|_| self.error(map.table, format!("column `{}` is not UTF-8", column.name)))?;
                    Some(
                        text::parse(&column.ty, s)
                            .map_err(|e| self.error(map.table, format!("column `{}`: {e}", column.name)))?,
                    )
                }
                Some(TupleValue::Binary(bytes)) => {
                    // The session asks for binary only when every watched column's type has a
                    // binary reader; a type the server sends in binary without one is a table
                    // error, not a guess at the value.
                    if !binary::supported(&column.ty) {
                        return Err(self.error(
                            map.table,
                            format!(
                                "column `{}` of type {:?} arrived in binary form, which opslive cannot read for \
                                 this type (set `binary = false` on the source)",
                                column.name, column.ty
                            ),
                        ));
                    }
                    Some(
                        binary::parse(&column.ty, bytes)
                            .map_err(|e| self.error(map.table, format!("column `{}`: {e}", column.name)))?,
                    )
                }
            };
            cells.push(cell);
        }
        Ok(Image(cells))
    }

    fn key(&self, table: &PgTable, image: &Image) -> Result<Key, DecodeError> {
        let schema = &table.schema;
        // Key columns are NOT NULL (primary key, or a replica identity index): a NULL there is
        // a column the server did not send — the table's replica identity no longer matches
        // the key its rows are held by.
        if let Some(&i) = schema.key.iter().find(|&&i| image.0[i].as_ref().is_none_or(|v| v.is_null())) {
            return Err(self.error(
                schema.id(),
                format!(
                    "key column `{}` was not sent (did the table's REPLICA IDENTITY change?)",
                    schema.columns[i].name
                ),
            ));
        }
        // Checked above; collected from an exact-size iterator, the key is one allocation.
        Ok(Key(schema.key.iter().map(|&i| image.0[i].clone().unwrap_or(Value::Null)).collect()))
    }

    fn error(&self, table: TableId, detail: String) -> DecodeError {
        let name = self.tables.get(&table).map(|t| t.schema.spec.to_string()).unwrap_or_default();
        DecodeError::Table { table: name, id: table, detail }
    }
}

/// Why a Relation message's replica identity differs from the key the table is held by, if it
/// does. With `DEFAULT` or `USING INDEX`, the flagged columns are the identity, which is the
/// key (the catalog picks the identity index, else the primary key); `FULL` flags every column
/// and its old tuples carry the key anyway; `NOTHING` publishes no updates or deletes.
fn identity_change(rel: &Relation, schema: &crate::registry::TableSchema) -> Option<String> {
    if !matches!(rel.replica_identity, b'd' | b'i') {
        return None;
    }
    let mut flagged: Vec<&str> = rel.columns.iter().filter(|c| c.flags & 1 == 1).map(|c| c.name.as_str()).collect();
    let mut key: Vec<&str> = schema.key.iter().map(|&i| &*schema.columns[i].name).collect();
    flagged.sort_unstable();
    key.sort_unstable();
    (flagged != key).then(|| {
        format!("its replica identity is now ({}), its rows are keyed by ({})", flagged.join(", "), key.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::registry::{Column, ColumnType};
    use crate::source::postgres::pgoutput::RelationColumn;

    /// `public.t (id int4 key, v <ty>)` registered and decoded, its Relation message seen.
    fn decoder(ty: ColumnType, type_oid: u32) -> Decoder {
        let registry = Arc::new(Registry::default());
        let columns = vec![
            Column { name: "id".into(), ty: ColumnType::Int4, nullable: false },
            Column { name: "v".into(), ty, nullable: true },
        ];
        let table = PgTable::for_test(&registry, columns, vec![23, type_oid]);
        let mut decoder = Decoder::new("s".into(), registry, [table]);
        let column =
            |flags, name: &str, type_oid| RelationColumn { flags, name: name.into(), type_oid, type_modifier: -1 };
        let rel = Relation {
            oid: 16384,
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: b'd',
            columns: vec![column(1, "id", 23), column(0, "v", type_oid)],
        };
        let mut out = Vec::new();
        decoder.decode(Message::Relation(rel), &mut out).expect("relation");
        decoder
    }

    fn insert(v: &'static [u8]) -> Message {
        Message::Insert {
            relation: 16384,
            new: vec![TupleValue::Binary(Bytes::from_static(&[0, 0, 0, 7])), TupleValue::Binary(Bytes::from_static(v))],
        }
    }

    #[test]
    fn binary_values_are_read_by_their_column_type() {
        let mut d = decoder(ColumnType::Numeric, 1700);
        let mut out = Vec::new();
        // numeric 1.50: one base-10000 digit before the point, 5000 after, scale 2.
        d.decode(insert(&[0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88]), &mut out).expect("decodes");
        let [Decoded::Change(c)] = &out[..] else { panic!("one change") };
        let after = c.after.as_ref().expect("after-image");
        assert_eq!(after.0[0], Some(Value::Int4(7)));
        assert!(after.0[1].as_ref().is_some_and(|v| v.same_spelling(&Value::Numeric("1.50".into()))));
    }

    #[test]
    fn a_binary_value_of_a_type_without_a_reader_is_a_table_error() {
        let mut d = decoder(ColumnType::Other("mood".into()), 90_000);
        let err = d.decode(insert(b"happy"), &mut Vec::new()).expect_err("an error");
        let DecodeError::Table { detail, .. } = err else { panic!("a table error: {err}") };
        assert!(detail.contains("column `v` of type Other(\"mood\") arrived in binary form"), "{detail}");
        // A malformed value of a known type is one too.
        let mut d = decoder(ColumnType::Numeric, 1700);
        let err = d.decode(insert(&[0, 2, 0]), &mut Vec::new()).expect_err("an error");
        assert!(matches!(err, DecodeError::Table { .. }), "{err}");
    }
}

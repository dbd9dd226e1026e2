//! The watched tables: who they are (from configuration) and what they look like (from the
//! source's catalog).
//!
//! A table is identified by (source, schema, table) and gets a [`TableId`] and a GraphQL name
//! that is unique across sources. Its shape — a [`TableSchema`] — is discovered by the source and
//! travels through the seam inside table events, so the replica and the engines always read rows
//! with the column set they were decoded with.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::watch;

/// The name of a source, as configured (`[sources.shop]` → `shop`). Defined with the tables
/// that belong to sources; changes name their source with it too.
pub type SourceName = Arc<str>;

/// Index of a watched table in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TableId(pub u32);

/// A watched table as configured.
#[derive(Clone, Debug)]
pub struct TableSpec {
    pub id: TableId,
    pub source: SourceName,
    pub schema: Arc<str>,
    pub table: Arc<str>,
    /// Unique across all sources; what GraphQL and `tail` call the table.
    pub name: Arc<str>,
    /// Columns people filter by: the replica keeps ordered indexes on them.
    pub indexes: Vec<Arc<str>>,
    /// Columns that never enter memory (personal data).
    pub exclude: Vec<Arc<str>>,
}

impl TableSpec {
    /// `schema.table`, quoted for SQL.
    pub fn qualified_sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

impl fmt::Display for TableSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.source, self.schema, self.table)
    }
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The type of a column, independent of the source's type system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Uuid,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Json,
    Bytes,
    Array(Box<ColumnType>),
    /// A type opslive does not interpret; its values are [`crate::value::Value::Other`].
    Other(Arc<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: Arc<str>,
    pub ty: ColumnType,
    pub nullable: bool,
}

/// The shape of a watched table at one version of its column set.
#[derive(Clone, Debug)]
pub struct TableSchema {
    pub spec: Arc<TableSpec>,
    /// Visible columns in source order (excluded columns are not here).
    pub columns: Vec<Column>,
    /// Positions in `columns` of the primary-key columns, in key order.
    pub key: Vec<usize>,
    /// Positions in `columns` of the indexed columns.
    pub indexed: Vec<usize>,
    /// Incremented each time the source reports a different column set.
    pub version: u32,
}

impl TableSchema {
    pub fn id(&self) -> TableId {
        self.spec.id
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| &*c.name == name)
    }
}

/// All watched tables, from configuration.
///
/// Append-only: a table added to the configuration at run time gets the next id, and ids never
/// change while the process runs, so everything keyed by [`TableId`] stays valid. Readers take
/// the lock only to look a table up (per relation, per request), never across I/O.
#[derive(Debug)]
pub struct Registry {
    inner: RwLock<Tables>,
    /// The number of tables, for whoever must act when one is added (the policy is checked
    /// again: a role may name a table the registry did not have yet).
    grown: watch::Sender<usize>,
}

#[derive(Clone, Debug, Default)]
struct Tables {
    tables: Vec<Arc<TableSpec>>,
    by_source_table: HashMap<(SourceName, Arc<str>, Arc<str>), TableId>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry { inner: RwLock::default(), grown: watch::Sender::new(0) }
    }
}

impl Clone for Registry {
    fn clone(&self) -> Registry {
        let tables = self.read().clone();
        let n = tables.tables.len();
        Registry { inner: RwLock::new(tables), grown: watch::Sender::new(n) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("GraphQL name `{name}` is used by both {first} and {second}: give one of them another `name`")]
    DuplicateName { name: String, first: String, second: String },
    #[error("table {0} is listed twice")]
    DuplicateTable(String),
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a table; ids follow registration order.
    pub fn add(
        &self,
        source: SourceName,
        schema: &str,
        table: &str,
        name: &str,
        indexes: Vec<Arc<str>>,
        exclude: Vec<Arc<str>>,
    ) -> Result<TableId, RegistryError> {
        let mut tables = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let id = TableId(tables.tables.len() as u32);
        let spec = TableSpec {
            id,
            source: source.clone(),
            schema: schema.into(),
            table: table.into(),
            name: name.into(),
            indexes,
            exclude,
        };
        if let Some(other) = tables.tables.iter().find(|t| t.name == spec.name) {
            return Err(RegistryError::DuplicateName {
                name: name.to_string(),
                first: other.to_string(),
                second: spec.to_string(),
            });
        }
        let k = (source, spec.schema.clone(), spec.table.clone());
        if tables.by_source_table.contains_key(&k) {
            return Err(RegistryError::DuplicateTable(spec.to_string()));
        }
        tables.by_source_table.insert(k, id);
        tables.tables.push(Arc::new(spec));
        let n = tables.tables.len();
        drop(tables);
        self.grown.send_replace(n);
        Ok(id)
    }

    pub fn get(&self, id: TableId) -> Option<Arc<TableSpec>> {
        self.read().tables.get(id.0 as usize).cloned()
    }

    pub fn find(&self, source: &str, schema: &str, table: &str) -> Option<TableId> {
        self.read().by_source_table.get(&(Arc::from(source), Arc::from(schema), Arc::from(table))).copied()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<TableSpec>> {
        self.read().tables.iter().find(|t| &*t.name == name).cloned()
    }

    /// Every table, in id order, as of now.
    pub fn tables(&self) -> std::vec::IntoIter<Arc<TableSpec>> {
        self.read().tables.clone().into_iter()
    }

    /// The tables of one source, in id order, as of now.
    pub fn of_source(&self, source: &str) -> Vec<Arc<TableSpec>> {
        self.read().tables.iter().filter(|t| &*t.source == source).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes (to the number of tables) whenever a table is added.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.grown.subscribe()
    }
}

/// A one-table world for the engines' unit tests: a schema of source `s` keyed by its first
/// column, and a ready, empty replica of it.
#[cfg(test)]
pub(crate) mod fixture {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::{Column, ColumnType, Registry, TableSchema};
    use crate::change::Position;
    use crate::replica::{Replica, Table, TableState};

    pub fn schema(table: &str, columns: &[(&str, ColumnType)]) -> Arc<TableSchema> {
        let reg = Registry::default();
        let id = reg.add("s".into(), "public", table, table, vec![], vec![]).expect("register");
        Arc::new(TableSchema {
            spec: reg.get(id).expect("spec").clone(),
            columns: columns
                .iter()
                .map(|(name, ty)| Column { name: (*name).into(), ty: ty.clone(), nullable: true })
                .collect(),
            key: vec![0],
            indexed: vec![],
            version: 1,
        })
    }

    pub fn replica(schema: &Arc<TableSchema>) -> Replica {
        let mut table = Table::new(schema.clone());
        table.state = TableState::Ready;
        // Generated writes may contradict it (an insert of a row it holds): the engines' answer
        // to them is under test, not whether the replica trusts them.
        Replica::restore(vec![table], HashMap::from([(Arc::from("s"), Position(1))])).loaded_mid_stream()
    }
}

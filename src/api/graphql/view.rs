//! One table as one role sees it: the granted columns under their GraphQL names, the row filter,
//! the root fields. The schema is generated from views, and resolvers read through them, so
//! what a role can ask for and what it gets back come from the same place.

use std::collections::HashMap;
use std::sync::Arc;

use crate::policy::names::{self, column_fields};
use crate::policy::{Grant, Operations};
use crate::query::{Capabilities, capabilities};
use crate::registry::{ColumnType, TableId, TableSchema};

/// A visible column.
#[derive(Debug, Clone)]
pub struct FieldColumn {
    /// Position in the table's rows.
    pub position: usize,
    /// GraphQL field name (`warehouseId`).
    pub name: String,
    /// Its value in the `…Column` enum (`WAREHOUSE_ID`).
    pub enum_value: String,
    pub ty: ColumnType,
    pub nullable: bool,
    pub can: Capabilities,
}

#[derive(Debug)]
pub struct TableView {
    pub schema: Arc<TableSchema>,
    /// Type name prefix (`Orders`).
    pub type_name: String,
    /// Root field name (`orders`).
    pub field: String,
    pub columns: Vec<FieldColumn>,
    /// Names a client's `where` may use: the visible columns only.
    pub visible: HashMap<String, usize>,
    /// Names the policy's row filter may use: every column.
    pub all: HashMap<String, usize>,
    pub grant: Grant,
}

impl TableView {
    pub fn new(schema: Arc<TableSchema>, grant: Grant) -> TableView {
        let fields = column_fields(&schema);
        let columns: Vec<FieldColumn> = fields
            .iter()
            .filter(|(i, _)| grant.columns.contains(i))
            .map(|(i, name)| {
                let column = &schema.columns[*i];
                FieldColumn {
                    position: *i,
                    name: name.clone(),
                    enum_value: names::enum_value(name),
                    ty: column.ty.clone(),
                    nullable: column.nullable,
                    can: capabilities(&column.ty),
                }
            })
            .collect();
        let visible = columns.iter().map(|c| (c.name.clone(), c.position)).collect();
        let all = fields.into_iter().map(|(i, n)| (n, i)).collect();
        TableView {
            type_name: names::type_name(&schema.spec.name),
            field: names::root_field_name(&schema.spec.name),
            schema,
            columns,
            visible,
            all,
            grant,
        }
    }

    pub fn id(&self) -> TableId {
        self.schema.id()
    }

    pub fn operations(&self) -> Operations {
        self.grant.operations
    }

    /// The visible key columns, in key order; `None` when the table has no key or a key column
    /// is hidden (then there is no `…ByKey`).
    pub fn key_columns(&self) -> Option<Vec<&FieldColumn>> {
        if self.schema.key.is_empty() {
            return None;
        }
        self.schema.key.iter().map(|k| self.columns.iter().find(|c| c.position == *k)).collect()
    }

    pub fn column(&self, position: usize) -> Option<&FieldColumn> {
        self.columns.iter().find(|c| c.position == position)
    }
}

//! What a live query computes: a compiled query over one table, with the role's row filter
//! already AND-ed into its filter.
//!
//! Two subscriptions with equal specs see the same rows in the same order, so the engine
//! computes them once (multiplexing). Equality is structural: the same table, filter, order,
//! page, key or aggregate — two analysts who wrote the same `where` in a different spelling
//! that compiles to the same filter share one computation.

use std::sync::Arc;

use crate::aggregate::AggregateSpec;
use crate::change::Key;
use crate::query::{Filter, Query};
use crate::registry::{TableId, TableSchema};

#[derive(Clone, Debug)]
pub struct LiveSpec {
    pub table: TableId,
    /// The table's shape the query was compiled against (column positions). A resync that
    /// brings other columns ends the query: its positions may mean other columns now.
    pub schema: Arc<TableSchema>,
    pub shape: Shape,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Rows passing the query's filter, in its order, paged.
    Rows(Query),
    /// The row with this key, when it passes `filter` (the role's row filter).
    Row { key: Key, filter: Filter },
    /// Aggregate groups over the rows passing `filter`.
    Aggregate { filter: Filter, spec: AggregateSpec },
}

impl LiveSpec {
    /// The filter every row of the result passes (with the role's row filter in it).
    pub fn filter(&self) -> &Filter {
        match &self.shape {
            Shape::Rows(query) => &query.filter,
            Shape::Row { filter, .. } | Shape::Aggregate { filter, .. } => filter,
        }
    }

    /// Whether the table's current shape still has the columns this query was compiled for.
    pub fn fits(&self, schema: &Arc<TableSchema>) -> bool {
        Arc::ptr_eq(&self.schema, schema) || same_columns(&self.schema, schema)
    }
}

fn same_columns(a: &TableSchema, b: &TableSchema) -> bool {
    a.key == b.key
        && a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| x.name == y.name && x.ty == y.ty && x.nullable == y.nullable)
}

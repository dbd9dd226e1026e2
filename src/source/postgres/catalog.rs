//! Reading a watched table's shape from `pg_catalog`: columns, types, key, replica identity.
//!
//! Read inside the snapshot transaction, so the column set matches the rows copied with it.

use std::sync::Arc;

use tokio_postgres::Client;

use super::text::column_type;
use crate::registry::{Column, TableSchema, TableSpec};

/// What the source knows of a table beyond its [`TableSchema`].
#[derive(Clone, Debug)]
pub struct PgTable {
    pub schema: Arc<TableSchema>,
    /// The type OID of each visible column as `pg_attribute` has it (before resolving domains),
    /// to notice when a Relation message changes a type.
    pub column_type_oids: Vec<u32>,
    /// The table's file in the snapshot and now: they differ when the table was truncated or
    /// rewritten after the snapshot was taken (see the snapshot's TRUNCATE guard).
    pub relfilenode_in_snapshot: u32,
    pub relfilenode_now: u32,
    /// The planner's row count estimate (`pg_class.reltuples`), for snapshot progress.
    pub estimated_rows: Option<u64>,
}

#[cfg(test)]
impl PgTable {
    /// `public.t` of source `s` in `registry`, keyed by its first column, with these columns
    /// and type OIDs: the decoder's and the tuple form's unit tests build tables alike.
    pub fn for_test(
        registry: &crate::registry::Registry,
        columns: Vec<crate::registry::Column>,
        column_type_oids: Vec<u32>,
    ) -> PgTable {
        let id = registry.add("s".into(), "public", "t", "t", vec![], vec![]).expect("registers");
        PgTable {
            schema: Arc::new(TableSchema {
                spec: registry.get(id).expect("spec"),
                columns,
                key: vec![0],
                indexed: vec![],
                version: 1,
            }),
            column_type_oids,
            relfilenode_in_snapshot: 0,
            relfilenode_now: 0,
            estimated_rows: None,
        }
    }
}

impl PgTable {
    /// The table was truncated or rewritten after the snapshot was exported: inside the
    /// snapshot its rows would read as empty (TRUNCATE is not MVCC-safe), so it must be copied
    /// again on its own.
    pub fn rewritten(&self) -> bool {
        self.relfilenode_in_snapshot != 0 && self.relfilenode_in_snapshot != self.relfilenode_now
    }
}

/// Problems found with one table, each with what to change.
#[derive(Debug, Default)]
pub struct TableProblems(pub Vec<String>);

/// Reads `spec`'s shape; `Err` lists what is wrong with the table.
pub async fn read_table(
    client: &Client,
    spec: &Arc<TableSpec>,
    version: u32,
) -> Result<Result<PgTable, TableProblems>, tokio_postgres::Error> {
    let name = spec.qualified_sql();
    let rel = client
        .query_opt(
            "SELECT c.oid, c.relreplident::text, c.relfilenode, pg_relation_filenode(c.oid), \
                    has_table_privilege(c.oid, 'SELECT'), c.reltuples::float8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&&*spec.schema, &&*spec.table],
        )
        .await?;
    let Some(rel) = rel else {
        return Ok(Err(TableProblems(vec![format!(
            "table {name} does not exist (check `table` in the source's configuration)"
        )])));
    };
    let oid: u32 = rel.get(0);
    let replica_identity = rel.get::<_, String>(1).bytes().next().unwrap_or(b'd');
    let relfilenode_in_snapshot: u32 = rel.get(2);
    let relfilenode_now: Option<u32> = rel.get(3);
    let can_select: bool = rel.get(4);
    // -1 until the table was first vacuumed or analysed: no estimate.
    let reltuples: f64 = rel.get(5);
    let estimated_rows = (reltuples >= 0.0).then_some(reltuples as u64);

    let columns = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.attnotnull, bt.oid, format_type(bt.oid, NULL), \
                    CASE WHEN bt.typcategory = 'A' THEN bt.typelem END, \
                    CASE WHEN bt.typcategory = 'A' THEN format_type(bt.typelem, NULL) END \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    // The key rows are identified by: the replica identity index when one is named (that is
    // what key-only old tuples carry), else the primary key; in key order.
    let key_names: Vec<String> = client
        .query(
            "SELECT a.attname::text FROM ( \
                SELECT i.indrelid, i.indkey FROM pg_index i \
                WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident) \
                ORDER BY i.indisreplident DESC, i.indisprimary DESC LIMIT 1) i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             ORDER BY k.ord",
            &[&oid],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();

    let mut problems = Vec::new();
    if !can_select {
        problems.push(format!("the source user may not read {name}: GRANT SELECT ON {name} TO <user>"));
    }
    if key_names.is_empty() {
        problems.push(format!(
            "table {name} has no primary key: add one (ALTER TABLE {name} ADD PRIMARY KEY (…)) \
             or name a unique index (ALTER TABLE {name} REPLICA IDENTITY USING INDEX …)"
        ));
    }
    if replica_identity == b'n' {
        problems.push(format!(
            "table {name} has REPLICA IDENTITY NOTHING, so updates and deletes carry no key: \
             ALTER TABLE {name} REPLICA IDENTITY DEFAULT"
        ));
    }
    let mut visible = Vec::new();
    let mut type_oids = Vec::new();
    let all_names: Vec<String> = columns.iter().map(|r| r.get::<_, String>(0)).collect();
    for wanted in spec.indexes.iter().chain(spec.exclude.iter()) {
        if !all_names.iter().any(|n| n == &**wanted) {
            problems.push(format!("table {name} has no column `{wanted}` (named in `indexes` or `exclude`)"));
        }
    }
    for key in &key_names {
        if spec.exclude.iter().any(|e| &**e == key) {
            problems.push(format!("column `{key}` of {name} is part of its key and cannot be excluded"));
        }
    }
    for row in &columns {
        let col_name: String = row.get(0);
        if spec.exclude.iter().any(|e| **e == col_name) {
            continue;
        }
        let type_oid: u32 = row.get(1);
        let base_oid: u32 = row.get(3);
        let type_name: String = row.get(4);
        let elem: Option<u32> = row.get(5);
        let elem_name: Option<String> = row.get(6);
        let ty = column_type(base_oid, &type_name, elem.zip(elem_name.as_deref()));
        visible.push(Column { name: col_name.into(), ty, nullable: !row.get::<_, bool>(2) });
        type_oids.push(type_oid);
    }
    if !problems.is_empty() {
        return Ok(Err(TableProblems(problems)));
    }
    let position = |n: &str| visible.iter().position(|c| &*c.name == n);
    let key = key_names.iter().filter_map(|k| position(k)).collect();
    let indexed = spec.indexes.iter().filter_map(|c| position(c)).collect();
    Ok(Ok(PgTable {
        schema: Arc::new(TableSchema { spec: spec.clone(), columns: visible, key, indexed, version }),
        column_type_oids: type_oids,
        relfilenode_in_snapshot,
        relfilenode_now: relfilenode_now.unwrap_or(0),
        estimated_rows,
    }))
}

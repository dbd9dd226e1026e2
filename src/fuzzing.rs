//! Entry points for fuzzers: each takes untrusted input the way the server receives it — a
//! client's WebSocket frame, a `where` filter, a policy file, pgoutput and binlog bytes — and
//! must come back with an answer or an error, never a panic. The property tests in
//! `tests/fuzz.rs` drive them briefly in every CI run; `fuzz/` holds cargo-fuzz targets over
//! the same functions for long runs (fuzz/README.md). A crash either finds becomes a test.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::change::{Key, Row};
use crate::registry::{Column, ColumnType, Registry, TableSchema};
use crate::replica::Table;
use crate::value::Value;

/// A client's text frame, read as each WebSocket protocol reads it.
pub fn ws_message(text: &str) {
    use crate::api::graphql::ws::protocol::{Protocol, parse};
    for protocol in [Protocol::TransportWs, Protocol::Legacy] {
        let _ = parse(protocol, text);
    }
}

/// A table with a column of every scalar type the `where` language compares, and a few rows
/// that hold NULLs, extremes and ordinary values.
pub fn filter_table() -> Table {
    let registry = Registry::default();
    let id = registry.add("fuzz".into(), "public", "t", "t", vec![], vec![]).expect("a table registers");
    let column = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    let schema = Arc::new(TableSchema {
        spec: registry.get(id).expect("its spec").clone(),
        columns: vec![
            column("id", ColumnType::Int8),
            column("qty", ColumnType::Int4),
            column("status", ColumnType::Text),
            column("total", ColumnType::Numeric),
            column("score", ColumnType::Float8),
            column("paid", ColumnType::Bool),
            column("created_at", ColumnType::TimestampTz),
            column("due", ColumnType::Date),
            column("ref", ColumnType::Uuid),
            column("tags", ColumnType::Array(Box::new(ColumnType::Text))),
            column("doc", ColumnType::Json),
        ],
        key: vec![0],
        indexed: vec![1, 2],
        version: 1,
    });
    let mut table = Table::new(schema.clone());
    let rows = [
        vec![Value::Int8(1), Value::Int4(5), Value::text("paid"), Value::Null, Value::Float8(0.5)],
        vec![Value::Int8(2), Value::Null, Value::text(""), Value::Null, Value::Float8(f64::NAN)],
        vec![Value::Int8(i64::MAX), Value::Int4(i32::MIN), Value::text("pâid%_\\"), Value::Null, Value::Float8(-0.0)],
    ];
    for mut row in rows {
        row.resize(schema.columns.len(), Value::Null);
        table.upsert(Key::of(&row, &[0]), Row::from(row));
    }
    table
}

/// A `where` filter as JSON (as KPI definitions and the policy file give it) on
/// [`filter_table`]'s table, evaluated on each of its rows, now and far in the past and future.
pub fn where_filter(table: &Table, json: &Json) -> Result<(), String> {
    let filter = crate::query::parse_json_filter(&table.schema, json).map_err(|e| e.to_string())?;
    for (_, row) in table.rows() {
        for now in [0, 1_765_000_000_000_000, i64::MIN, i64::MAX] {
            let _ = filter.eval_at(row, now);
            let _ = filter.next_change(row, now);
        }
    }
    Ok(())
}

/// A policy file's text, loaded against [`filter_table`]'s table and granted to each of its roles.
pub fn policy_file(table: &Table, text: &str) -> Result<(), String> {
    let registry = Registry::default();
    registry.add("fuzz".into(), "public", "t", "t", vec![], vec![]).map_err(|e| e.to_string())?;
    let policy = crate::policy::Policy::from_toml(text, "fuzz.toml", &registry).map_err(|e| e.to_string())?;
    let roles: Vec<String> = policy.roles().map(str::to_string).collect();
    for role in roles {
        let _ = policy.grant(&role, &table.schema);
    }
    Ok(())
}

/// One pgoutput message (an XLogData payload).
pub fn pgoutput_message(bytes: &[u8]) -> Result<(), String> {
    crate::source::postgres::parse_pgoutput(bytes)
}

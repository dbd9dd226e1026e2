//! Which form pgoutput sends column values in: text (each type's output function), or binary
//! (`binary 'true'`, PostgreSQL 14+: each type's send function, read by [`super::binary`]).
//!
//! The server decides per type, not opslive: in binary mode every type with a send function
//! goes out in binary, unknown ones included. So a session asks for binary only when every
//! watched column's type has a binary reader, and says in the log why it stays on text
//! otherwise. A table that joins a binary session later with such a type restarts the session
//! in text (see [`super::resync`]).

use super::binary;
use super::catalog::PgTable;

/// The first server version whose pgoutput takes `binary 'true'`.
const BINARY_SINCE: i32 = 140_000;

/// Whether a session streams in binary: `asked` (the source's `binary` setting), on a server of
/// `server_version` (`server_version_num`), for `tables`. `Err` says why it stays on text.
pub fn choose(asked: bool, server_version: i32, tables: &[PgTable]) -> Result<bool, String> {
    if !asked {
        return Ok(false);
    }
    if server_version < BINARY_SINCE {
        return Err(format!("PostgreSQL {} sends no binary tuples (14 or newer does)", version_label(server_version)));
    }
    match tables.iter().find_map(unsupported) {
        Some(why) => Err(why),
        None => Ok(true),
    }
}

/// The first watched column of `table` whose type has no binary reader, named with its type.
pub fn unsupported(table: &PgTable) -> Option<String> {
    let schema = &table.schema;
    schema.columns.iter().find(|c| !binary::supported(&c.ty)).map(|c| {
        format!(
            "column {}.{}.{} is of type {}, which has no binary reader",
            schema.spec.schema,
            schema.spec.table,
            c.name,
            type_label(&c.ty)
        )
    })
}

fn type_label(ty: &crate::registry::ColumnType) -> String {
    use crate::registry::ColumnType;
    match ty {
        ColumnType::Other(name) => name.to_string(),
        ColumnType::Array(element) => format!("{}[]", type_label(element)),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `150020` → `15.20`; `90624` → `9.6.24`.
fn version_label(v: i32) -> String {
    if v >= 100_000 {
        format!("{}.{}", v / 10_000, v % 10_000)
    } else {
        format!("{}.{}.{}", v / 10_000, v / 100 % 100, v % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Column, ColumnType, Registry};

    fn table(types: &[ColumnType]) -> PgTable {
        let columns: Vec<Column> = types
            .iter()
            .enumerate()
            .map(|(i, ty)| Column { name: format!("c{i}").into(), ty: ty.clone(), nullable: true })
            .collect();
        PgTable::for_test(&Registry::default(), columns, vec![])
    }

    #[test]
    fn binary_only_when_asked_on_14_and_every_type_is_read() {
        let known = table(&[ColumnType::Int8, ColumnType::Array(Box::new(ColumnType::Numeric))]);
        assert_eq!(choose(true, 150_020, std::slice::from_ref(&known)), Ok(true));
        assert_eq!(choose(false, 150_020, std::slice::from_ref(&known)), Ok(false));
        assert_eq!(
            choose(true, 130_011, std::slice::from_ref(&known)),
            Err("PostgreSQL 13.11 sends no binary tuples (14 or newer does)".into())
        );
        let unknown = table(&[ColumnType::Int8, ColumnType::Array(Box::new(ColumnType::Other("inet".into())))]);
        assert_eq!(
            choose(true, 150_020, &[known, unknown]),
            Err("column public.t.c1 is of type inet[], which has no binary reader".into())
        );
    }
}

//! What a watched MariaDB table looks like: its columns from `information_schema`, each with
//! the way its values decode (the binlog sends raw storage forms: enum indexes, set bitmasks,
//! bytes in the column's charset), its primary key, and the problems that keep it from being
//! captured.

use std::sync::Arc;

use mysql_async::prelude::Queryable;

use super::connection::Endpoint;
use crate::error::SourceError;
use crate::registry::{Column, ColumnType, TableSchema, TableSpec};

/// How one source column's values decode.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// An integer type, kept in the narrowest [`ColumnType`] that holds every value of its
    /// declared width and signedness (BIGINT UNSIGNED as an exact decimal).
    Int(ColumnType),
    /// A signed MEDIUMINT: mysql_common reads its binlog form without sign extension
    /// (-8388608 arrives as 8388608).
    MediumInt,
    Decimal,
    Float,
    Double,
    /// Text in the column's charset: utf8/utf8mb4/ascii, or latin1 (cp1252, as MariaDB's).
    Text {
        latin1: bool,
    },
    /// LONGTEXT with a `json_valid` check: MariaDB's JSON.
    Json,
    Enum(Arc<[Arc<str>]>),
    Set(Arc<[Arc<str>]>),
    Date,
    DateTime,
    /// TIMESTAMP: stored and sent in UTC.
    Timestamp,
    /// TIME: -838:59:59 to 838:59:59, so an interval, not a time of day.
    Time,
    Year,
    Bytes,
    /// BIT(n): BIT(1) as a boolean, wider as an integer.
    Bit(u32),
}

impl Kind {
    pub fn column_type(&self) -> ColumnType {
        match self {
            Kind::Int(t) => t.clone(),
            Kind::MediumInt => ColumnType::Int4,
            Kind::Decimal => ColumnType::Numeric,
            Kind::Float => ColumnType::Float4,
            Kind::Double => ColumnType::Float8,
            Kind::Text { .. } | Kind::Enum(_) | Kind::Set(_) => ColumnType::Text,
            Kind::Json => ColumnType::Json,
            Kind::Date => ColumnType::Date,
            Kind::DateTime => ColumnType::Timestamp,
            Kind::Timestamp => ColumnType::TimestampTz,
            Kind::Time => ColumnType::Interval,
            Kind::Year => ColumnType::Int2,
            Kind::Bytes => ColumnType::Bytes,
            Kind::Bit(1) => ColumnType::Bool,
            Kind::Bit(64) => ColumnType::Numeric,
            Kind::Bit(_) => ColumnType::Int8,
        }
    }
}

/// One column as the source has it, excluded ones included (the binlog sends every column).
#[derive(Clone, Debug)]
pub struct SourceColumn {
    pub name: Arc<str>,
    pub kind: Kind,
    /// Its place in the replica's row; `None` for an excluded column.
    pub keep: Option<usize>,
}

/// A watched table: the shape the replica holds and how each source column maps to it.
#[derive(Clone, Debug)]
pub struct MyTable {
    pub schema: Arc<TableSchema>,
    pub columns: Vec<SourceColumn>,
}

/// Why a table cannot be captured, one line each.
pub struct TableProblems(pub Vec<String>);

/// Reads a table's shape; `Ok(Err(_))` lists what is wrong with the table itself.
pub async fn read_table(
    conn: &mut mysql_async::Conn,
    endpoint: &Endpoint,
    spec: &Arc<TableSpec>,
    version: u32,
) -> Result<Result<MyTable, TableProblems>, SourceError> {
    let rows: Vec<CatalogRow> = conn
        .exec(
            "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.CHARACTER_SET_NAME, c.IS_NULLABLE, \
                    CASE WHEN EXISTS (SELECT 1 FROM information_schema.CHECK_CONSTRAINTS k \
                                      WHERE k.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
                                        AND k.CHECK_CLAUSE LIKE CONCAT('json_valid(`', c.COLUMN_NAME, '`)')) \
                         THEN 'json' ELSE '' END \
             FROM information_schema.COLUMNS c \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
            (&*spec.schema, &*spec.table),
        )
        .await
        .map_err(endpoint.sql(format!("reading the catalog for {spec}")))?;
    if rows.is_empty() {
        return Ok(Err(TableProblems(vec![format!(
            "table {spec} does not exist (or this user may not see it: GRANT SELECT ON {}.* TO …)",
            spec.schema
        )])));
    }
    let key_names: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (&*spec.schema, &*spec.table),
        )
        .await
        .map_err(endpoint.sql(format!("reading the primary key of {spec}")))?;
    Ok(shape(spec, rows, &key_names, version))
}

/// A column as `information_schema` describes it: name, DATA_TYPE, COLUMN_TYPE, charset,
/// IS_NULLABLE, and `json` when a `json_valid` check marks it as MariaDB's JSON.
pub type CatalogRow = (String, String, String, Option<String>, String, String);

/// A table's shape from its catalog rows and primary key, or what is wrong with it.
pub fn shape(
    spec: &Arc<TableSpec>,
    rows: Vec<CatalogRow>,
    key_names: &[String],
    version: u32,
) -> Result<MyTable, TableProblems> {
    let mut problems = Vec::new();
    if key_names.is_empty() {
        problems.push(format!("table {spec} has no primary key: add one (rows are matched by it)"));
    }
    for c in &spec.exclude {
        if !rows.iter().any(|r| *r.0 == **c) {
            problems.push(format!("table {spec}: excluded column `{c}` does not exist"));
        }
        if key_names.iter().any(|k| **k == **c) {
            problems.push(format!("table {spec}: column `{c}` is part of the primary key and cannot be excluded"));
        }
    }
    let mut columns = Vec::new();
    let mut schema_columns = Vec::new();
    for (name, data_type, column_type, charset, nullable, json) in rows {
        let excluded = spec.exclude.iter().any(|c| **c == *name);
        let kind = match kind_of(&data_type, &column_type, charset.as_deref(), json == "json") {
            Ok(kind) => kind,
            Err(why) if excluded => {
                tracing::debug!(table = %spec, column = %name, why, "excluded column of an unsupported type");
                Kind::Bytes
            }
            Err(why) => {
                problems.push(format!("table {spec}, column `{name}`: {why}; exclude it (`exclude = [\"{name}\"]`)"));
                continue;
            }
        };
        let keep = (!excluded).then(|| {
            schema_columns.push(Column {
                name: name.as_str().into(),
                ty: kind.column_type(),
                nullable: nullable == "YES",
            });
            schema_columns.len() - 1
        });
        columns.push(SourceColumn { name: name.into(), kind, keep });
    }
    for c in &spec.indexes {
        if !schema_columns.iter().any(|s| s.name == *c) {
            problems.push(format!("table {spec}: indexed column `{c}` does not exist"));
        }
    }
    if !problems.is_empty() {
        return Err(TableProblems(problems));
    }
    let position = |n: &str| schema_columns.iter().position(|c| &*c.name == n);
    let key = key_names.iter().filter_map(|k| position(k)).collect();
    let indexed = spec.indexes.iter().filter_map(|c| position(c)).collect();
    let schema = Arc::new(TableSchema { spec: spec.clone(), columns: schema_columns, key, indexed, version });
    Ok(MyTable { schema, columns })
}

/// How a column of this declared type decodes, or why it cannot.
pub fn kind_of(data_type: &str, column_type: &str, charset: Option<&str>, json: bool) -> Result<Kind, String> {
    let unsigned = column_type.contains("unsigned");
    Ok(match data_type {
        "tinyint" => Kind::Int(ColumnType::Int2),
        "smallint" if unsigned => Kind::Int(ColumnType::Int4),
        "smallint" => Kind::Int(ColumnType::Int2),
        "mediumint" if unsigned => Kind::Int(ColumnType::Int4),
        "mediumint" => Kind::MediumInt,
        "int" if unsigned => Kind::Int(ColumnType::Int8),
        "int" => Kind::Int(ColumnType::Int4),
        "bigint" if unsigned => Kind::Int(ColumnType::Numeric),
        "bigint" => Kind::Int(ColumnType::Int8),
        "decimal" => Kind::Decimal,
        "float" => Kind::Float,
        "double" => Kind::Double,
        "longtext" if json => Kind::Json,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => match charset {
            Some("latin1") => Kind::Text { latin1: true },
            Some("utf8mb4" | "utf8mb3" | "utf8" | "ascii") | None => Kind::Text { latin1: false },
            Some(other) => {
                return Err(format!("character set {other} is not supported (utf8mb4, latin1 and ascii are)"));
            }
        },
        "enum" => Kind::Enum(members(column_type, "enum")?),
        "set" => Kind::Set(members(column_type, "set")?),
        "date" => Kind::Date,
        "datetime" => Kind::DateTime,
        "timestamp" => Kind::Timestamp,
        "time" => Kind::Time,
        "year" => Kind::Year,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Bytes,
        "bit" => {
            let bits = column_type
                .trim_start_matches("bit(")
                .trim_end_matches(')')
                .parse()
                .map_err(|_| format!("cannot read the width of {column_type}"))?;
            Kind::Bit(bits)
        }
        other => return Err(format!("type {other} is not supported")),
    })
}

/// The members of `enum('a','b')` / `set('a','b')`, in order ('' quotes unescaped).
fn members(column_type: &str, word: &str) -> Result<Arc<[Arc<str>]>, String> {
    let inner = column_type
        .strip_prefix(word)
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("cannot read the members of {column_type}"))?;
    let mut out: Vec<Arc<str>> = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut member = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    member.push('\'');
                }
                Some('\'') => break,
                Some('\\') => {
                    if let Some(n) = chars.next() {
                        member.push(n);
                    }
                }
                Some(ch) => member.push(ch),
                None => return Err(format!("unterminated member in {column_type}")),
            }
        }
        out.push(member.into());
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_widths_and_signedness_pick_a_type_that_holds_every_value() {
        let k = |d: &str, c: &str| kind_of(d, c, None, false).unwrap().column_type();
        assert_eq!(k("tinyint", "tinyint(1)"), ColumnType::Int2, "TINYINT(1) stays the declared type");
        assert_eq!(k("smallint", "smallint(5) unsigned"), ColumnType::Int4);
        assert_eq!(k("int", "int(10) unsigned"), ColumnType::Int8);
        assert_eq!(k("bigint", "bigint(20) unsigned"), ColumnType::Numeric);
        assert_eq!(k("bigint", "bigint(20)"), ColumnType::Int8);
        assert_eq!(kind_of("longtext", "longtext", Some("utf8mb4"), true).unwrap(), Kind::Json);
        assert!(kind_of("point", "point", None, false).unwrap_err().contains("point"));
        assert!(kind_of("varchar", "varchar(3)", Some("sjis"), false).is_err());
    }

    #[test]
    fn enum_and_set_members_are_read_with_their_quotes() {
        let Kind::Enum(m) = kind_of("enum", "enum('open','it''s','a,b')", None, false).unwrap() else { panic!() };
        assert_eq!(m.iter().map(|s| &**s).collect::<Vec<_>>(), ["open", "it's", "a,b"]);
        let Kind::Set(m) = kind_of("set", "set('x','y')", None, false).unwrap() else { panic!() };
        assert_eq!(m.len(), 2);
    }
}

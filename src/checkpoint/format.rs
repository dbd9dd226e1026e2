//! The checkpoint file's encoding: a versioned header, a stream of postcard records, and a
//! trailer with the body's length and CRC-32.
//!
//! Records are written one by one (a header, then each table's description followed by its
//! rows) so that a large replica is encoded without a second copy of it in memory. The stored
//! types mirror the replica's but are owned by this module: the file format changes only when
//! `FORMAT` does, never because an internal type was reshaped.

use std::io::{self, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::registry::{Column, ColumnType};
use crate::value::{Interval, Value};

pub const MAGIC: &[u8; 8] = b"OPSLCKPT";
/// Bumped whenever a stored type changes; a file of another version is not read.
pub const FORMAT: u32 = 1;
/// Length (u64) and CRC-32 (u32) of the body, little-endian.
pub const TRAILER_LEN: usize = 12;

#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    /// Microseconds since the Unix epoch.
    pub written_at: i64,
    pub sources: Vec<StoredSource>,
    pub tables: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoredSource {
    pub name: String,
    pub origin: String,
    /// Every change of the source at or below this position is in the checkpoint.
    pub position: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoredTable {
    pub source: String,
    pub schema: String,
    pub table: String,
    pub exclude: Vec<String>,
    pub columns: Vec<StoredColumn>,
    pub key: Vec<u32>,
    pub version: u32,
    pub state: StoredState,
    pub since: u64,
    pub rows: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoredColumn {
    pub name: String,
    pub ty: StoredType,
    pub nullable: bool,
}

impl StoredColumn {
    /// A table's columns in their stored form (the checkpoint's tables, the bus's snapshots).
    pub fn all(columns: &[Column]) -> Vec<StoredColumn> {
        columns
            .iter()
            .map(|c| StoredColumn { name: c.name.to_string(), ty: (&c.ty).into(), nullable: c.nullable })
            .collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum StoredState {
    Ready,
    Stale { reason: String },
    Quarantined { reason: String, position: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum StoredType {
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
    Array(Box<StoredType>),
    Other(String),
}

impl From<&ColumnType> for StoredType {
    fn from(t: &ColumnType) -> StoredType {
        use ColumnType as C;
        match t {
            C::Bool => StoredType::Bool,
            C::Int2 => StoredType::Int2,
            C::Int4 => StoredType::Int4,
            C::Int8 => StoredType::Int8,
            C::Float4 => StoredType::Float4,
            C::Float8 => StoredType::Float8,
            C::Numeric => StoredType::Numeric,
            C::Text => StoredType::Text,
            C::Uuid => StoredType::Uuid,
            C::Date => StoredType::Date,
            C::Time => StoredType::Time,
            C::Timestamp => StoredType::Timestamp,
            C::TimestampTz => StoredType::TimestampTz,
            C::Interval => StoredType::Interval,
            C::Json => StoredType::Json,
            C::Bytes => StoredType::Bytes,
            C::Array(e) => StoredType::Array(Box::new(e.as_ref().into())),
            C::Other(n) => StoredType::Other(n.to_string()),
        }
    }
}

impl From<StoredType> for ColumnType {
    fn from(t: StoredType) -> ColumnType {
        use StoredType as S;
        match t {
            S::Bool => ColumnType::Bool,
            S::Int2 => ColumnType::Int2,
            S::Int4 => ColumnType::Int4,
            S::Int8 => ColumnType::Int8,
            S::Float4 => ColumnType::Float4,
            S::Float8 => ColumnType::Float8,
            S::Numeric => ColumnType::Numeric,
            S::Text => ColumnType::Text,
            S::Uuid => ColumnType::Uuid,
            S::Date => ColumnType::Date,
            S::Time => ColumnType::Time,
            S::Timestamp => ColumnType::Timestamp,
            S::TimestampTz => ColumnType::TimestampTz,
            S::Interval => ColumnType::Interval,
            S::Json => ColumnType::Json,
            S::Bytes => ColumnType::Bytes,
            S::Array(e) => ColumnType::Array(Box::new((*e).into())),
            S::Other(n) => ColumnType::Other(n.into()),
        }
    }
}

/// A value as written: borrows from the replica, so writing copies nothing.
#[derive(Serialize)]
pub enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Numeric(&'a str),
    Text(&'a str),
    Uuid([u8; 16]),
    Date(i32),
    Time(i64),
    Timestamp(i64),
    TimestampTz(i64),
    Interval(i32, i32, i64),
    Json(&'a str),
    Bytes(&'a [u8]),
    Array(Vec<ValueRef<'a>>),
    Other(&'a str, &'a str),
}

/// A value as read; the variants are those of [`ValueRef`], in the same order.
#[derive(Deserialize)]
pub enum ValueOwned {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Numeric(String),
    Text(String),
    Uuid([u8; 16]),
    Date(i32),
    Time(i64),
    Timestamp(i64),
    TimestampTz(i64),
    Interval(i32, i32, i64),
    Json(String),
    Bytes(Vec<u8>),
    Array(Vec<ValueOwned>),
    Other(String, String),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> ValueRef<'a> {
        match v {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int2(i) => ValueRef::Int2(*i),
            Value::Int4(i) => ValueRef::Int4(*i),
            Value::Int8(i) => ValueRef::Int8(*i),
            Value::Float4(f) => ValueRef::Float4(*f),
            Value::Float8(f) => ValueRef::Float8(*f),
            Value::Numeric(s) => ValueRef::Numeric(s),
            Value::Text(s) => ValueRef::Text(s),
            Value::Uuid(u) => ValueRef::Uuid(*u.as_bytes()),
            Value::Date(d) => ValueRef::Date(*d),
            Value::Time(t) => ValueRef::Time(*t),
            Value::Timestamp(t) => ValueRef::Timestamp(*t),
            Value::TimestampTz(t) => ValueRef::TimestampTz(*t),
            Value::Interval(i) => ValueRef::Interval(i.months, i.days, i.micros),
            Value::Json(s) => ValueRef::Json(s),
            Value::Bytes(b) => ValueRef::Bytes(b),
            Value::Array(items) => ValueRef::Array(items.iter().map(ValueRef::from).collect()),
            Value::Other(other) => ValueRef::Other(&other.type_name, &other.text),
        }
    }
}

impl From<ValueOwned> for Value {
    fn from(v: ValueOwned) -> Value {
        match v {
            ValueOwned::Null => Value::Null,
            ValueOwned::Bool(b) => Value::Bool(b),
            ValueOwned::Int2(i) => Value::Int2(i),
            ValueOwned::Int4(i) => Value::Int4(i),
            ValueOwned::Int8(i) => Value::Int8(i),
            ValueOwned::Float4(f) => Value::Float4(f),
            ValueOwned::Float8(f) => Value::Float8(f),
            ValueOwned::Numeric(s) => Value::Numeric(s.into()),
            ValueOwned::Text(s) => Value::Text(s.into()),
            ValueOwned::Uuid(u) => Value::Uuid(uuid::Uuid::from_bytes(u)),
            ValueOwned::Date(d) => Value::Date(d),
            ValueOwned::Time(t) => Value::Time(t),
            ValueOwned::Timestamp(t) => Value::Timestamp(t),
            ValueOwned::TimestampTz(t) => Value::TimestampTz(t),
            ValueOwned::Interval(months, days, micros) => Value::Interval(Interval { months, days, micros }),
            ValueOwned::Json(s) => Value::Json(s.into()),
            ValueOwned::Bytes(b) => Value::Bytes(b.into()),
            ValueOwned::Array(items) => Value::Array(items.into_iter().map(Value::from).collect::<Arc<[Value]>>()),
            ValueOwned::Other(type_name, text) => Value::other(type_name.into(), &text),
        }
    }
}

/// A writer that counts and checksums what passes through it.
pub struct Summing<W> {
    inner: W,
    pub len: u64,
    pub crc: crc32fast::Hasher,
}

impl<W: Write> Summing<W> {
    pub fn new(inner: W) -> Summing<W> {
        Summing { inner, len: 0, crc: crc32fast::Hasher::new() }
    }

    pub fn record<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        postcard::to_io(value, &mut *self).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(())
    }

    /// Writes the trailer and hands back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let crc = self.crc.clone().finalize();
        self.inner.write_all(&self.len.to_le_bytes())?;
        self.inner.write_all(&crc.to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

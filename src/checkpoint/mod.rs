//! Checkpoints: the replica and each source's position, made durable in the data directory, so
//! a restart resumes the source (its slot, its binlog position) instead of copying every table
//! again.
//!
//! A checkpoint is one file, written from an immutable replica version (a cheap clone of the
//! persistent maps), so apply never waits for it: encoded to a temporary file, synced, then
//! renamed over the previous one, with the directory synced too. A source is acknowledged only
//! up to the position of its last durable checkpoint (see [`crate::watermark`]), so whatever
//! the source may discard (WAL behind a slot, purged binlogs) is already on disk. A missing,
//! corrupt or incompatible file is reported with its reason, and the caller takes a fresh
//! snapshot.

pub(crate) mod format;
pub mod writer;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use format::{FORMAT, Header, MAGIC, StoredColumn, StoredSource, StoredState, StoredTable, Summing, TRAILER_LEN};

use crate::change::{Position, Row, SourceName};
use crate::registry::{Column, Registry, TableId, TableSchema, TableSpec};
use crate::replica::{Replica, Table, TableState};
use crate::value::Value;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "replica.checkpoint";

/// Where a source stands in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceMark {
    /// What the positions belong to (a PostgreSQL slot, a MariaDB server's binlog).
    pub origin: String,
    pub position: Position,
}

/// What a write did.
#[derive(Clone, Debug)]
pub struct Written {
    pub bytes: u64,
    pub rows: u64,
    pub elapsed: Duration,
    /// The position each source is durable at.
    pub sources: Vec<(SourceName, Position)>,
}

/// A checkpoint read back, matched against the current configuration.
#[derive(Debug)]
pub struct Loaded {
    pub replica: Replica,
    pub sources: HashMap<SourceName, SourceMark>,
    /// Watched tables of a checkpointed source that the checkpoint cannot provide (added to the
    /// configuration since, still loading when it was written, or configured differently): they
    /// must be copied again.
    pub missing: Vec<TableId>,
    /// What was dropped or could not be used, for the log.
    pub notes: Vec<String>,
    pub rows: u64,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("no checkpoint at {0}")]
    Missing(PathBuf),
    #[error("the checkpoint {path} is damaged ({detail}); it is ignored")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the checkpoint {path} was written by an incompatible version (format {found}, this build reads {FORMAT}); it is ignored"
    )]
    Incompatible { path: PathBuf, found: u32 },
    #[error("cannot {action} the checkpoint {path}: {error}")]
    Io { action: &'static str, path: PathBuf, error: io::Error },
}

/// The checkpoint file of a data directory.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Writes `replica` as the checkpoint of `data_dir`. Only sources that reached their consistent
/// point are written, with their tables that are loaded (a table still loading is left out and
/// will be copied again).
pub fn write(
    data_dir: &Path,
    replica: &Replica,
    origins: &HashMap<SourceName, String>,
) -> Result<Written, CheckpointError> {
    let started = Instant::now();
    let path = path_in(data_dir);
    let io_err = |action, error| CheckpointError::Io { action, path: path.clone(), error };
    fs::create_dir_all(data_dir).map_err(|e| io_err("create the directory of", e))?;
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(|e| io_err("create", e))?;
    let (out, encoded) =
        encode(replica, origins, BufWriter::with_capacity(1 << 20, file)).map_err(|e| io_err("write", e))?;
    let file = out.into_inner().map_err(|e| io_err("write", e.into_error()))?;
    file.sync_all().map_err(|e| io_err("sync", e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| io_err("replace", e))?;
    // The rename is durable only once the directory is.
    File::open(data_dir).and_then(|d| d.sync_all()).map_err(|e| io_err("sync the directory of", e))?;
    Ok(Written { bytes: encoded.bytes, rows: encoded.rows, elapsed: started.elapsed(), sources: encoded.sources })
}

/// What [`encode`] wrote.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub bytes: u64,
    pub rows: u64,
    pub sources: Vec<(SourceName, Position)>,
}

/// Encodes `replica` as a checkpoint into `out` (a file, or the body a follower bootstraps
/// from): the sources that reached their consistent point, with their tables that are loaded.
pub fn encode<W: Write>(
    replica: &Replica,
    origins: &HashMap<SourceName, String>,
    mut out: W,
) -> io::Result<(W, Encoded)> {
    let sources: Vec<(SourceName, Position)> = replica
        .applied_positions()
        .filter(|(name, p)| *p > Position::ZERO && origins.contains_key(*name))
        .map(|(n, p)| (n.clone(), p))
        .collect();
    let tables: Vec<&Table> = replica
        .tables()
        .filter(|t| t.state != TableState::Loading && sources.iter().any(|(s, _)| *s == t.schema.spec.source))
        .collect();
    let header = Header {
        written_at: chrono::Utc::now().timestamp_micros(),
        sources: sources
            .iter()
            .map(|(name, position)| StoredSource {
                name: name.to_string(),
                origin: origins[name].clone(),
                position: position.0,
            })
            .collect(),
        tables: tables.len() as u32,
    };
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT.to_le_bytes())?;
    let mut body = Summing::new(out);
    let mut rows = 0u64;
    body.record(&header)?;
    let mut cells: Vec<format::ValueRef> = Vec::new();
    for t in tables {
        body.record(&stored_table(t))?;
        for (_, row) in t.rows() {
            cells.clear();
            cells.extend(row.iter().map(format::ValueRef::from));
            body.record(&cells)?;
            rows += 1;
        }
    }
    let bytes = body.len + (MAGIC.len() + 4 + TRAILER_LEN) as u64;
    let out = body.finish()?;
    Ok((out, Encoded { bytes, rows, sources }))
}

fn stored_table(t: &Table) -> StoredTable {
    let s = &t.schema;
    StoredTable {
        source: s.spec.source.to_string(),
        schema: s.spec.schema.to_string(),
        table: s.spec.table.to_string(),
        exclude: s.spec.exclude.iter().map(|e| e.to_string()).collect(),
        columns: StoredColumn::all(&s.columns),
        key: s.key.iter().map(|&k| k as u32).collect(),
        version: s.version,
        state: match &t.state {
            TableState::Stale { reason } => StoredState::Stale { reason: reason.clone() },
            TableState::Quarantined { reason, position } => {
                StoredState::Quarantined { reason: reason.clone(), position: position.0 }
            }
            TableState::Ready | TableState::Loading => StoredState::Ready,
        },
        since: t.since.0,
        rows: t.len() as u64,
    }
}

/// Reads the checkpoint of `data_dir` and matches it with the configured tables.
pub fn load(data_dir: &Path, registry: &Registry) -> Result<Loaded, CheckpointError> {
    let started = Instant::now();
    let path = path_in(data_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(CheckpointError::Missing(path)),
        Err(error) => return Err(CheckpointError::Io { action: "read", path, error }),
    };
    decode(&bytes, path, registry, started)
}

/// Reads a checkpoint's bytes (`path` names where they came from, for errors) and matches it
/// with the configured tables.
pub fn decode(bytes: &[u8], path: PathBuf, registry: &Registry, started: Instant) -> Result<Loaded, CheckpointError> {
    let corrupt = |detail: String| CheckpointError::Corrupt { path: path.clone(), detail };
    let prefix = MAGIC.len() + 4;
    if bytes.len() < prefix + TRAILER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not an opslive checkpoint".into()));
    }
    let found = u32::from_le_bytes(bytes[MAGIC.len()..prefix].try_into().expect("4 bytes"));
    if found != FORMAT {
        return Err(CheckpointError::Incompatible { path, found });
    }
    let (body, trailer) = bytes[prefix..].split_at(bytes.len() - prefix - TRAILER_LEN);
    let len = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(trailer[8..].try_into().expect("4 bytes"));
    if len != body.len() as u64 {
        return Err(corrupt(format!("{} body bytes where the trailer says {len}: truncated?", body.len())));
    }
    if crc32fast::hash(body) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut rest = body;
    let (header, tail): (Header, _) = postcard::take_from_bytes(rest).map_err(|e| corrupt(format!("header: {e}")))?;
    rest = tail;
    let mut notes = Vec::new();
    let mut sources = HashMap::new();
    for s in header.sources {
        if registry.of_source(&s.name).is_empty() {
            notes.push(format!("source `{}` is no longer configured; its tables are dropped", s.name));
            continue;
        }
        sources
            .insert(SourceName::from(s.name.as_str()), SourceMark { origin: s.origin, position: Position(s.position) });
    }
    let mut tables = Vec::new();
    let mut rows_read = 0u64;
    for _ in 0..header.tables {
        let (stored, tail): (StoredTable, _) =
            postcard::take_from_bytes(rest).map_err(|e| corrupt(format!("table header: {e}")))?;
        rest = tail;
        let mut rows: Vec<Row> = Vec::with_capacity(stored.rows as usize);
        for _ in 0..stored.rows {
            let (cells, tail): (Vec<format::ValueOwned>, _) =
                postcard::take_from_bytes(rest).map_err(|e| corrupt(format!("row of {}: {e}", stored.table)))?;
            rest = tail;
            rows.push(cells.into_iter().map(Value::from).collect());
        }
        rows_read += rows.len() as u64;
        let label = format!("{}.{}.{}", stored.source, stored.schema, stored.table);
        let Some(spec) = registry.find(&stored.source, &stored.schema, &stored.table).and_then(|id| registry.get(id))
        else {
            notes.push(format!("table {label} is no longer watched; dropped"));
            continue;
        };
        if !sources.contains_key(&*spec.source) {
            continue;
        }
        let mut exclude: Vec<&str> = spec.exclude.iter().map(|e| &**e).collect();
        let mut stored_exclude: Vec<&str> = stored.exclude.iter().map(|e| e.as_str()).collect();
        exclude.sort_unstable();
        stored_exclude.sort_unstable();
        if exclude != stored_exclude {
            notes.push(format!("table {label}: its excluded columns changed; it is copied again"));
            continue;
        }
        if stored.key.iter().any(|&k| k as usize >= stored.columns.len())
            || rows.iter().any(|r| r.len() != stored.columns.len())
        {
            return Err(corrupt(format!(
                "a row of {label} does not have its table's {} columns",
                stored.columns.len()
            )));
        }
        let schema = Arc::new(schema_of(&spec, stored.columns, stored.key, stored.version));
        let state = match stored.state {
            StoredState::Ready => TableState::Ready,
            StoredState::Stale { reason } => TableState::Stale { reason },
            StoredState::Quarantined { reason, position } => {
                TableState::Quarantined { reason, position: Position(position) }
            }
        };
        tables.push(Table::restore(schema, state, Position(stored.since), rows));
    }
    if !rest.is_empty() {
        return Err(corrupt(format!("{} bytes after the last table", rest.len())));
    }
    let missing = registry
        .tables()
        .filter(|spec| sources.contains_key(&*spec.source))
        .filter(|spec| !tables.iter().any(|t| t.schema.id() == spec.id))
        .map(|spec| spec.id)
        .collect();
    let applied = sources.iter().map(|(name, mark)| (name.clone(), mark.position)).collect();
    Ok(Loaded {
        replica: Replica::restore(tables, applied),
        sources,
        missing,
        notes,
        rows: rows_read,
        elapsed: started.elapsed(),
    })
}

/// A stored table's shape under the table's current configuration (its id, name and indexes
/// may have changed since the checkpoint was written).
pub(crate) fn schema_of(spec: &Arc<TableSpec>, columns: Vec<StoredColumn>, key: Vec<u32>, version: u32) -> TableSchema {
    let columns: Vec<Column> =
        columns.into_iter().map(|c| Column { name: c.name.into(), ty: c.ty.into(), nullable: c.nullable }).collect();
    let indexed = spec.indexes.iter().filter_map(|name| columns.iter().position(|c| c.name == *name)).collect();
    TableSchema { spec: spec.clone(), columns, key: key.into_iter().map(|k| k as usize).collect(), indexed, version }
}

#[cfg(test)]
mod tests;

//! Recording the raw binlog stream to a file (`opslive tail --capture`), and replaying it
//! through the decoder without a server: for decoder tests and bug reports.
//!
//! A capture is the events as the server sent them, back to back, each with its own header
//! (whose `event_size` frames it) and checksum. Replay reads them with mysql_common's reader,
//! after checking each frame's length itself: the reader panics on an event shorter than its
//! header says, and a truncated capture is an error, not a crash.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use mysql_async::binlog::BinlogVersion;
use mysql_async::binlog::events::Event;
use mysql_common::binlog::EventStreamReader;

use super::catalog::{self, CatalogRow};
use super::rows;
use crate::registry::{Registry, TableId};

/// The binlog event header's length, and where `event_size` sits in it.
const HEADER_LEN: usize = 19;
const EVENT_SIZE_AT: usize = 9;

pub struct Capture {
    out: BufWriter<std::fs::File>,
}

impl Capture {
    pub fn create(path: &Path) -> std::io::Result<Capture> {
        Ok(Capture { out: BufWriter::new(std::fs::File::create(path)?) })
    }

    /// Appends one event as the server sent it; written through at once (tail is stopped with
    /// Ctrl-C). A capture is a diagnostic aid: a full disk must not stop the stream.
    pub fn event(&mut self, event: &Event) {
        let _ = event.write(BinlogVersion::Version4, &mut self.out);
        let _ = self.out.flush();
    }
}

/// The catalog a replay decodes with, per table name: its `information_schema` rows and its
/// primary key's columns (what a live session reads from the server).
pub type ReplayCatalog = HashMap<String, (Vec<CatalogRow>, Vec<String>)>;

/// One event's place in a capture: its first byte, its length and its raw type.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    pub at: usize,
    pub len: usize,
    pub event_type: u8,
}

/// The events' frames, each checked to be whole.
pub fn frames(bytes: &[u8]) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let len = match rest.get(EVENT_SIZE_AT..EVENT_SIZE_AT + 4) {
            Some(b) => u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize,
            None => return Err(format!("the capture ends inside an event header at byte {at}")),
        };
        if len < HEADER_LEN {
            return Err(format!("the event at byte {at} says it has {len} bytes, less than its header"));
        }
        if rest.len() < len {
            return Err(format!("the capture ends inside an event at byte {at} ({} of {len} bytes)", rest.len()));
        }
        frames.push(Frame { at, len, event_type: rest[4] });
        at += len;
    }
    Ok(frames)
}

/// Decodes a capture of source `source` into one line per row change,
/// `{"op":…,"key":[…],"before":[…],"after":[…]}`, each value in its canonical JSON form.
pub fn replay(source: &str, registry: &Registry, catalog: &ReplayCatalog, bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut shapes: HashMap<TableId, catalog::MyTable> = HashMap::new();
    let mut out = Vec::new();
    for frame in frames(bytes)? {
        // With checksums on, the reader takes the last 4 bytes as one without looking.
        let checksummed = reader.get_fde().footer().get_checksum_alg().ok().flatten().is_some();
        if checksummed && frame.len < HEADER_LEN + 4 {
            return Err(format!("the event at byte {} has {} bytes, too few for its checksum", frame.at, frame.len));
        }
        let event = match reader.read(&bytes[frame.at..frame.at + frame.len]) {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e) => return Err(format!("the event at byte {} cannot be read: {e}", frame.at)),
        };
        let Some(data) = rows::rows_event(&event)? else { continue };
        let tme = reader.get_tme(data.table_id()).ok_or("a rows event without its table map")?;
        let Some(id) = registry.find(source, &tme.database_name(), &tme.table_name()) else { continue };
        if let std::collections::hash_map::Entry::Vacant(slot) = shapes.entry(id) {
            let spec = registry.get(id).expect("registered");
            let (columns, key) = catalog.get(&*spec.table).ok_or_else(|| format!("no catalog for {spec}"))?;
            slot.insert(catalog::shape(&spec, columns.clone(), key, 1).map_err(|p| p.0.join("; "))?);
        }
        for c in rows::changes(id, &shapes[&id], &data, tme)? {
            out.push(crate::source::capture_line(&c));
        }
    }
    Ok(out)
}

/// For tests: a registry holding `tables` of `database` as source `source`.
pub fn registry_for(source: &str, database: &str, tables: &[&str]) -> Arc<Registry> {
    let r = Registry::default();
    for t in tables {
        r.add(source.into(), database, t, t, vec![], vec![]).expect("registers");
    }
    Arc::new(r)
}

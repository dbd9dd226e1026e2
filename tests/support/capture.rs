//! Decoder tests on captured bytes (`tests/decoder_capture.rs`, `tests/mariadb_decoder_capture.rs`):
//! a replayed change line read back with each cell as its exact JSON text, so digits, JSON
//! whitespace and key order are part of what is compared.

use serde_json::value::RawValue;

/// One decoded change, each cell as its exact JSON text.
#[derive(Debug)]
pub struct Change {
    pub op: String,
    pub key: Vec<String>,
    pub before: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
}

/// Reads a line `{"op":…,"key":[…],"before":[…],"after":[…]}` of a capture replay.
pub fn parse_line(line: &str) -> Change {
    #[derive(serde::Deserialize)]
    struct Line {
        op: String,
        key: Vec<Box<RawValue>>,
        before: Option<Vec<Box<RawValue>>>,
        after: Option<Vec<Box<RawValue>>>,
    }
    let l: Line = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a change line ({e}): {line}"));
    let raw = |v: Vec<Box<RawValue>>| v.into_iter().map(|c| c.get().to_string()).collect::<Vec<_>>();
    Change { op: l.op, key: raw(l.key), before: l.before.map(raw), after: l.after.map(raw) }
}

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

/// The catalog of `fixtures/mariadb/kinds.capture`'s table, as a live session read it
/// (`fixtures/mariadb/kinds.catalog`, tab-separated `information_schema` rows).
pub fn mariadb_kinds_catalog() -> opslive::source::mariadb::ReplayCatalog {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mariadb/kinds.catalog");
    let text = std::fs::read_to_string(path).expect("fixtures/mariadb/kinds.catalog");
    let rows = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let charset = (f[3] != "NULL").then(|| f[3].to_string());
            (f[0].to_string(), f[1].to_string(), f[2].to_string(), charset, f[4].to_string(), f[5].to_string())
        })
        .collect();
    opslive::source::mariadb::ReplayCatalog::from([("kinds".to_string(), (rows, vec!["id".to_string()]))])
}

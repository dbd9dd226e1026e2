//! The MariaDB binlog decoder on bytes captured from a real MariaDB 10.11 (no server needed).
//!
//! `fixtures/mariadb/kinds.capture` was recorded by `opslive tail --capture` while the DML in
//! `fixtures/mariadb/kinds.sql` ran (its header says how); `kinds.catalog` is the table's
//! catalog as a live session reads it. Every type the source reads is in it, with its extremes,
//! NULLs, utf8mb4 and latin1 text and zero dates, in inserts, an update that moves the key and a
//! delete. Values are compared as the exact JSON text of each cell, so digits and JSON text are
//! part of the assertion; the same values are what `tests/mariadb_cdc.rs` checks live against
//! the snapshot's.
//!
//! Bad bytes: a capture cut anywhere, and every rows event cut short (re-framed with a valid
//! header and checksum, so only the decoder can notice), are errors or lose whole rows, never
//! a panic and never a wrong value.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use opslive::source::mariadb::{ReplayCatalog, capture_frames, registry_for, replay_capture};
use support::capture::{Change, parse_line};

const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mariadb/kinds.capture");
/// The binlog event header's length; a checksum follows each event's data.
const HEADER: usize = 19;
const CHECKSUM: usize = 4;

fn capture() -> Vec<u8> {
    std::fs::read(CAPTURE).expect("fixtures/mariadb/kinds.capture")
}

fn catalog() -> ReplayCatalog {
    support::capture::mariadb_kinds_catalog()
}

fn replay(bytes: &[u8]) -> Result<Vec<String>, String> {
    replay_capture("cap", &registry_for("cap", "capture", &["kinds"]), &catalog(), bytes)
}

fn columns() -> Vec<String> {
    catalog()["kinds"].0.iter().map(|c| c.0.clone()).collect()
}

/// `image`'s cell of `column`.
fn cell<'a>(image: &'a [String], column: &str) -> &'a str {
    let at = columns().iter().position(|c| c == column).unwrap_or_else(|| panic!("no column {column}"));
    &image[at]
}

#[test]
fn every_type_decodes_from_captured_binlog_bytes() {
    let changes: Vec<Change> = replay(&capture()).expect("the capture decodes").iter().map(|l| parse_line(l)).collect();
    let ops: Vec<&str> = changes.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(ops, ["insert", "insert", "insert", "insert", "update", "update", "delete"]);
    let after = |i: usize| changes[i].after.as_deref().expect("an after image");

    // Row 1: each type's largest value.
    let max = [
        ("id", "1"),
        ("ti", "127"),
        ("tu", "255"),
        ("si", "32767"),
        ("su", "65535"),
        ("mi", "8388607"),
        ("mu", "16777215"),
        ("i", "2147483647"),
        ("iu", "\"4294967295\""),
        ("bi", "\"9223372036854775807\""),
        ("bu", "\"18446744073709551615\""),
        ("flag", "1"),
        ("d", "\"99999999999999999999999999999999999.999999999999999999999999999999\""),
        ("f", "3.5"),
        ("db", "0.1"),
        ("vc", "\"Grüße 🚀\""),
        ("l1", "\"café €\""),
        ("ch", "\"ab\""),
        ("j", "{\"n\": 1.10, \"a\": [true, null]}"),
        ("e", "\"it's\""),
        ("s", "\"x,z\""),
        ("dt", "\"9999-12-31\""),
        ("dtm", "\"1969-12-31T23:59:59.5\""),
        ("ts", "\"2038-01-19T03:14:07.999999Z\""),
        ("tm", "\"PT838H59M59S\""),
        ("y", "2155"),
        ("bin", "\"\\\\x00ff10\""),
        ("bl", "\"\\\\xdeadbeef\""),
        ("bt", "true"),
        ("b12", "\"2730\""),
    ];
    for (column, want) in max {
        assert_eq!(cell(after(0), column), want, "row 1, column {column}");
    }
    assert_eq!(cell(after(0), "tx"), format!("\"{}\"", "x".repeat(300)));

    // Row 2: the smallest values, empty text and bytes.
    let min = [
        ("ti", "-128"),
        ("si", "-32768"),
        ("mi", "-8388608"),
        ("i", "-2147483648"),
        ("bi", "\"-9223372036854775808\""),
        ("bu", "\"0\""),
        ("d", "\"-0.000000000000000000000000000001\""),
        ("f", "-3.5"),
        ("db", "-1e+308"),
        ("vc", "\"\""),
        ("j", "[]"),
        ("e", "\"open\""),
        ("s", "\"\""),
        ("dt", "\"1000-01-01\""),
        ("ts", "\"1970-01-01T00:00:01Z\""),
        ("tm", "\"PT-838H-59M-59S\""),
        ("y", "1901"),
        ("bin", "\"\\\\x\""),
        ("bt", "false"),
        ("b12", "\"0\""),
    ];
    for (column, want) in min {
        assert_eq!(cell(after(1), column), want, "row 2, column {column}");
    }
    // Row 3: NULL everywhere but the key; row 4: zero dates read as NULL, zero TIME and YEAR kept.
    assert!(after(2)[1..].iter().all(|c| c == "null"), "row 3: {:?}", after(2));
    assert_eq!((cell(after(3), "dt"), cell(after(3), "dtm"), cell(after(3), "ts")), ("null", "null", "null"));
    assert_eq!((cell(after(3), "tm"), cell(after(3), "y")), ("\"PT0S\"", "0"));

    // The update that moved the key: keyed by the new id, with the whole old row before it.
    let moved = &changes[4];
    assert_eq!(moved.key, ["10"]);
    let before = moved.before.as_deref().expect("a before image");
    assert_eq!((cell(before, "id"), cell(before, "vc")), ("1", "\"Grüße 🚀\""));
    assert_eq!((cell(after(4), "id"), cell(after(4), "vc")), ("10", "\"moved\""));
    assert_eq!(before[2..], after(0)[2..], "the before image is the inserted row");
    assert_eq!(cell(after(5), "tx"), "null", "set to NULL");
    assert_eq!(changes[6].key, ["3"]);
    assert!(changes[6].after.is_none());
}

/// Runs `replay`, failing the test on a panic with what was fed.
fn replay_without_panic(bytes: &[u8], what: &str) -> Result<Vec<String>, String> {
    catch_unwind(AssertUnwindSafe(|| replay(bytes))).unwrap_or_else(|_| panic!("a panic on {what}"))
}

#[test]
fn a_capture_cut_anywhere_is_an_error_never_a_panic() {
    let bytes = capture();
    let full = replay(&bytes).unwrap();
    let ends: Vec<usize> = capture_frames(&bytes).unwrap().iter().map(|f| f.at + f.len).collect();
    for cut in 0..bytes.len() {
        match replay_without_panic(&bytes[..cut], &format!("the first {cut} bytes")) {
            Ok(lines) => {
                assert!(cut == 0 || ends.contains(&cut), "cut at {cut}, inside an event, read as whole");
                assert_eq!(lines[..], full[..lines.len()], "a whole prefix decodes as before");
            }
            Err(e) => assert!(!ends.contains(&cut), "cut at {cut}, between events: {e}"),
        }
    }
}

#[test]
fn a_rows_event_cut_short_is_an_error_or_loses_whole_rows_never_a_wrong_value() {
    let bytes = capture();
    let full = replay(&bytes).unwrap();
    let frames = capture_frames(&bytes).unwrap();
    let rows_events: Vec<_> = frames.iter().filter(|f| [23, 24, 25, 30, 31, 32].contains(&f.event_type)).collect();
    assert_eq!(rows_events.len(), 4, "the capture's rows events: one insert of four rows, two updates, a delete");
    let (mut errors, mut shorter) = (0, 0);
    for frame in rows_events {
        let data = &bytes[frame.at + HEADER..frame.at + frame.len - CHECKSUM];
        for keep in 0..data.len() {
            // The event re-framed around its first `keep` bytes: a valid length and checksum.
            let mut event = bytes[frame.at..frame.at + HEADER].to_vec();
            event[9..13].copy_from_slice(&((HEADER + keep + CHECKSUM) as u32).to_le_bytes());
            event.extend_from_slice(&data[..keep]);
            let crc = crc32fast::hash(&event);
            event.extend_from_slice(&crc.to_le_bytes());
            let mut damaged = bytes[..frame.at].to_vec();
            damaged.extend_from_slice(&event);
            damaged.extend_from_slice(&bytes[frame.at + frame.len..]);
            match replay_without_panic(&damaged, &format!("the event at byte {} cut to {keep} bytes", frame.at)) {
                Err(_) => errors += 1,
                Ok(lines) => {
                    // What decodes is the original, less whole rows.
                    let mut rest = full.iter();
                    for line in &lines {
                        assert!(rest.any(|l| l == line), "cut to {keep} bytes, a line that was not there: {line}");
                    }
                    assert!(lines.len() < full.len(), "cut to {keep} bytes and nothing lost");
                    shorter += 1;
                }
            }
        }
    }
    assert!(errors > 0, "no cut was an error ({shorter} lost rows)");
}

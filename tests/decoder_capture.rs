//! The pgoutput decoder on bytes captured from a real PostgreSQL 15 (no database needed).
//!
//! `fixtures/pgoutput/kinds.capture` was recorded by `opslive tail --capture` while the DML in
//! `fixtures/pgoutput/kinds.sql` ran (its header says how). The database's own output defaults
//! were set to non-ISO styles (DateStyle SQL, IntervalStyle postgres_verbose, TimeZone
//! Asia/Kolkata, bytea_output escape, extra_float_digits -3), so every ISO/hex/UTC value below also
//! shows that the replication session's pinned options took effect.
//!
//! Every expected value was checked by hand against the SQL. Values are compared as the exact
//! JSON text of each cell (via `RawValue`), so numeric digits, JSON whitespace and key order are
//! part of the assertion.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use opslive::registry::Registry;
use opslive::source::postgres::{decode_capture_for_test, replay_capture};
use support::capture::{Change, parse_line};

const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgoutput/kinds.capture");

/// `public.kinds` in column order.
const KINDS: [&str; 25] = [
    "id", "b", "i2", "i4", "i8", "f4", "f8", "n", "t", "vc", "ch", "u", "d", "tm", "ts", "tstz", "iv", "j", "jb", "by",
    "ia", "ta", "m2", "mood", "big",
];
const FULL_IDENT: [&str; 4] = ["id", "name", "qty", "note"];

/// What `decode_capture_for_test` prints for a cell the source did not send.
const UNSENT: &str = r#""<unsent>""#;
/// In an expected row: a float cell checked numerically instead of by its text.
const FLOAT: &str = "<float, checked numerically>";

fn capture() -> Vec<u8> {
    std::fs::read(CAPTURE).expect("fixtures/pgoutput/kinds.capture")
}

fn registry(tables: &[&str]) -> Arc<Registry> {
    let r = Registry::default();
    for t in tables {
        r.add("cap".into(), "public", t, t, vec![], vec![]).expect("registers");
    }
    Arc::new(r)
}

fn decode(tables: &[&str]) -> Vec<Change> {
    decode_capture_for_test("cap", registry(tables), &capture())
        .expect("the capture decodes")
        .iter()
        .map(|l| parse_line(l))
        .collect()
}

fn changes() -> Vec<Change> {
    decode(&["kinds", "full_ident"])
}

/// Compares an image with the expected JSON text of every column, by name.
#[track_caller]
fn assert_image(columns: &[&str], actual: &[String], expected: &[(&str, &str)]) {
    let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, columns, "the expectation must list every column in order");
    assert_eq!(actual.len(), columns.len(), "image width: {actual:?}");
    for ((name, want), got) in expected.iter().zip(actual) {
        if *want != FLOAT {
            assert_eq!(got, want, "column `{name}`");
        }
    }
}

fn float(cell: &str) -> f64 {
    cell.parse().unwrap_or_else(|e| panic!("{cell:?} is not a JSON number: {e}"))
}

fn big() -> String {
    format!("\"{}\"", "0123456789".repeat(500))
}

#[test]
fn op_sequence_matches_the_sql() {
    let got: Vec<(String, Vec<String>)> = changes().into_iter().map(|c| (c.op, c.key)).collect();
    let k = |op: &str, key: &[&str]| (op.to_string(), key.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    // full_ident keys: decode_capture_for_test derives the key from the Relation message's
    // replica-identity flags, and under REPLICA IDENTITY FULL pgoutput flags every column; so
    // for that table this harness's "key" is the whole row (the real source takes the primary
    // key from the catalog instead).
    let want = vec![
        // tx 1-4: kinds inserts
        k("insert", &["1"]),
        k("insert", &["2"]),
        k("insert", &["3"]),
        k("insert", &["4"]),
        k("insert", &["5"]),
        k("insert", &["6"]),
        // tx 5: update with unchanged TOAST; tx 6: key update; tx 7: delete
        k("update", &["1"]),
        k("update", &["100"]),
        k("delete", &["3"]),
        // tx 8-12: full_ident (REPLICA IDENTITY FULL): keyed by its primary key
        k("insert", &["1"]),
        k("insert", &["2"]),
        k("update", &["1"]),
        k("update", &["2"]),
        k("update", &["3"]),
        k("delete", &["2"]),
        // tx 13: both tables in one transaction, in statement order
        k("insert", &["7"]),
        k("update", &["3"]),
        k("delete", &["4"]),
        // tx 14: TRUNCATE kinds, full_ident: one change per table, no key
        k("truncate", &[]),
        k("truncate", &[]),
    ];
    assert_eq!(got, want);
}

#[test]
fn the_capture_holds_the_fourteen_transactions_of_the_sql() {
    // The message types are not nameable from outside the crate; their Debug form is enough here.
    let messages: Vec<String> = replay_capture(&capture()).expect("replays").iter().map(|m| format!("{m:?}")).collect();
    let count = |prefix: &str| messages.iter().filter(|m| m.starts_with(prefix)).count();
    assert_eq!(count("Begin {"), 14);
    assert_eq!(count("Commit {"), 14);
    assert_eq!(count("Insert {"), 9);
    assert_eq!(count("Update {"), 6);
    assert_eq!(count("Delete {"), 3);
    assert_eq!(count("Truncate {"), 1);
    // The enum column's type is announced before the relation that uses it.
    assert!(messages[1].starts_with(r#"Type { oid: "#) && messages[1].contains(r#"name: "mood""#), "{}", messages[1]);
    assert!(messages[2].starts_with("Relation(Relation {") && messages[2].contains(r#"name: "kinds""#));
}

#[test]
fn every_type_has_its_canonical_json() {
    let c = changes();
    let big = big();
    let after = |i: usize| {
        assert_eq!(c[i].op, "insert");
        assert_eq!(c[i].before, None, "an insert has no before-image");
        c[i].after.as_deref().expect("an insert has an after-image")
    };

    // Row 1: one ordinary value of each type.
    assert_image(
        &KINDS,
        after(0),
        &[
            ("id", "1"),
            ("b", "true"),
            ("i2", "-32768"),
            ("i4", "2147483647"),
            // int8 and numeric are strings: JavaScript numbers cannot hold them.
            ("i8", r#""9223372036854775807""#),
            ("f4", "1.5"),
            ("f8", "0.1"),
            ("n", r#""1234567890123456789012345678901234567890""#),
            ("t", r#""héllo \"wörld\"\n\ttab\\""#),
            ("vc", r#""varchar ✓""#),
            // char(3) keeps its padding.
            ("ch", r#""ab ""#),
            ("u", r#""a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11""#),
            // 44 BC is astronomical year -43.
            ("d", r#""-0043-03-15""#),
            ("tm", r#""23:59:59.999999""#),
            ("ts", r#""2024-02-29T12:34:56.789""#),
            // 2024-01-02 03:04:05.25+05:30 in UTC.
            ("tstz", r#""2024-01-01T21:34:05.25Z""#),
            ("iv", r#""P1Y2M3DT4H5M6.789S""#),
            // json keeps the source's text exactly (2.50, spacing); jsonb is PostgreSQL's
            // normalised text, with all of 1.000000000000000001.
            ("j", r#"{"a": [1, 2.50], "b": null}"#),
            ("jb", r#"{"a": "x", "b": [true, 1.000000000000000001]}"#),
            ("by", r#""\\xdeadbeef00""#),
            ("ia", "[1,2,null,-3]"),
            ("ta", r#"["plain",null,"NULL","with \"quotes\"","a,b","{braces}","back\\slash",""," spaced ","ünï"]"#),
            ("m2", "[[1,2,3],[4,5,6]]"),
            // A user-defined enum is an unknown type: its text.
            ("mood", r#""happy""#),
            ("big", &big),
        ],
    );

    // Row 2: extremes, NaN and infinities, empties.
    assert_image(
        &KINDS,
        after(1),
        &[
            ("id", "2"),
            ("b", "false"),
            ("i2", "32767"),
            ("i4", "-2147483648"),
            ("i8", r#""-9223372036854775808""#),
            ("f4", r#""NaN""#),
            ("f8", r#""Infinity""#),
            ("n", r#""NaN""#),
            ("t", r#""""#),
            ("vc", r#""""#),
            ("ch", r#""xyz""#),
            ("u", r#""00000000-0000-0000-0000-000000000000""#),
            ("d", r#""infinity""#),
            ("tm", r#""00:00:00""#),
            ("ts", r#""infinity""#),
            ("tstz", r#""-infinity""#),
            // Mixed signs: -14 months, +3 days, -(4h 5m 6.5s).
            ("iv", r#""P-1Y-2M3DT-4H-5M-6.5S""#),
            ("j", r#""str""#),
            ("jb", r#"[1, "two", {"k": {}}]"#),
            ("by", r#""\\x""#),
            ("ia", "[]"),
            ("ta", "[]"),
            // '[0:1][1:2]={{7,8},{9,NULL}}': the bounds are dropped, the elements kept.
            ("m2", "[[7,8],[9,null]]"),
            ("mood", r#""sad""#),
            ("big", "null"),
        ],
    );

    // Row 3.
    assert_image(
        &KINDS,
        after(2),
        &[
            ("id", "3"),
            ("b", "null"),
            ("i2", "null"),
            ("i4", "null"),
            ("i8", "null"),
            ("f4", r#""-Infinity""#),
            ("f8", r#""NaN""#),
            ("n", r#""Infinity""#),
            ("t", "null"),
            ("vc", "null"),
            ("ch", "null"),
            // Given in upper case, printed in lower case.
            ("u", r#""ffffffff-ffff-ffff-ffff-ffffffffffff""#),
            ("d", r#""-infinity""#),
            ("tm", r#""24:00:00""#),
            ("ts", r#""-infinity""#),
            ("tstz", r#""infinity""#),
            // '1 day -1 second'.
            ("iv", r#""P1DT-1S""#),
            ("j", "null"),
            ("jb", "12345678901234567890.5"),
            ("by", r#""\\x00ff""#),
            ("ia", "[7,8,9]"),
            ("ta", r#"["x y"]"#),
            ("m2", "[]"),
            ("mood", r#""so so""#),
            ("big", "null"),
        ],
    );

    // Row 4.
    let row4 = after(3);
    assert_image(
        &KINDS,
        row4,
        &[
            ("id", "4"),
            ("b", "null"),
            ("i2", "null"),
            ("i4", "null"),
            ("i8", "null"),
            ("f4", FLOAT),
            ("f8", FLOAT),
            ("n", r#""-Infinity""#),
            ("t", "null"),
            ("vc", "null"),
            ("ch", "null"),
            ("u", "null"),
            // 1 BC is year 0.
            ("d", r#""0000-01-01""#),
            ("tm", r#""12:00:00.5""#),
            ("ts", r#""-0043-03-15T12:00:00""#),
            ("tstz", r#""1900-01-01T00:00:00Z""#),
            ("iv", r#""PT0S""#),
            ("j", "null"),
            ("jb", "null"),
            ("by", "null"),
            ("ia", "null"),
            ("ta", "null"),
            ("m2", "null"),
            ("mood", r#""ok""#),
            ("big", "null"),
        ],
    );
    // real 1.1: the same float4 as PostgreSQL's, printed as PostgreSQL sent it (not widened to
    // f64 digits).
    assert_eq!(float(&row4[5]) as f32, 1.1f32, "f4 is {}", row4[5]);
    assert_eq!(row4[5], "1.1");
    // The smallest subnormal double.
    assert_eq!(float(&row4[6]), 5e-324, "f8 is {}", row4[6]);

    // Row 5.
    let row5 = after(4);
    assert_image(
        &KINDS,
        row5,
        &[
            ("id", "5"),
            ("b", "null"),
            ("i2", "null"),
            ("i4", "null"),
            ("i8", "null"),
            ("f4", "-0.25"),
            ("f8", FLOAT),
            // The scale is kept.
            ("n", r#""-0.0010""#),
            ("t", "null"),
            ("vc", "null"),
            ("ch", "null"),
            ("u", "null"),
            // Years past 9999 carry a sign (ISO 8601 expanded form).
            ("d", r#""+10000-12-31""#),
            ("tm", "null"),
            ("ts", r#""+10000-01-01T00:00:00.000001""#),
            // 0001-01-01 00:00:00+00 BC.
            ("tstz", r#""0000-01-01T00:00:00Z""#),
            ("iv", r#""PT-0.000001S""#),
            ("j", "null"),
            ("jb", "null"),
            ("by", "null"),
            ("ia", "null"),
            ("ta", "null"),
            ("m2", "null"),
            ("mood", "null"),
            ("big", "null"),
        ],
    );
    assert_eq!(float(&row5[6]), -f64::MAX, "f8 is {}", row5[6]);
}

#[test]
fn sql_null_is_null_in_every_column() {
    let c = changes();
    let row6 = c[5].after.as_deref().expect("insert");
    assert_eq!(c[5].key, ["6"]);
    let mut want = vec!["6"];
    want.extend(["null"; 24]);
    assert_eq!(row6, want);
}

#[test]
fn unchanged_toast_is_absent_not_null() {
    let c = changes();
    let big = big();
    // The insert sent the whole 5000-character value.
    assert_eq!(c[0].after.as_ref().unwrap()[24], big);

    // UPDATE kinds SET t = 'changed', i4 = 42 WHERE id = 1: default replica identity and an
    // unchanged key, so no old tuple; `big` was not sent ('u').
    let u = &c[6];
    assert_eq!(u.op, "update");
    assert_eq!(u.key, ["1"]);
    assert_eq!(u.before, None);
    let after = u.after.as_deref().unwrap();
    assert_eq!(after[24], UNSENT, "big must be absent, not null");
    assert_ne!(after[24], "null");
    // Every other column was sent, with the new values where they changed.
    assert_eq!(after[KINDS.iter().position(|c| *c == "t").unwrap()], r#""changed""#);
    assert_eq!(after[KINDS.iter().position(|c| *c == "i4").unwrap()], "42");
    let inserted = c[0].after.as_deref().unwrap();
    for (i, name) in KINDS.iter().enumerate() {
        match *name {
            "t" | "i4" | "big" => {}
            _ => assert_eq!(after[i], inserted[i], "column `{name}` unchanged"),
        }
    }
    assert_eq!(after.iter().filter(|v| *v == UNSENT).count(), 1);

    // A NULL that stays NULL is sent as NULL, not as unchanged: row 2's `big` is NULL in its
    // insert; the full_ident update below keeps a NULL `note` as null in its before-image.
    assert_eq!(c[1].after.as_ref().unwrap()[24], "null");
}

#[test]
fn key_update_has_a_key_only_before_image() {
    let c = changes();
    // UPDATE kinds SET id = 100 WHERE id = 1.
    let u = &c[7];
    assert_eq!(u.op, "update");
    assert_eq!(u.key, ["100"], "the key is the new one");
    let before = u.before.as_deref().expect("a key-only old tuple");
    let mut want = vec!["1"];
    want.extend([UNSENT; 24]);
    assert_eq!(before, want, "only the old key is present");
    let after = u.after.as_deref().unwrap();
    assert_eq!(after[0], "100");
    assert_eq!(after[KINDS.iter().position(|c| *c == "t").unwrap()], r#""changed""#);
    // Still out of line and unchanged.
    assert_eq!(after[24], UNSENT);
    assert_eq!(after.iter().filter(|v| *v == UNSENT).count(), 1);
}

#[test]
fn delete_has_a_key_only_before_image() {
    let c = changes();
    for (i, id) in [(8, "3"), (17, "4")] {
        let d = &c[i];
        assert_eq!(d.op, "delete");
        assert_eq!(d.key, [id]);
        assert_eq!(d.after, None);
        let mut want = vec![id];
        want.extend([UNSENT; 24]);
        assert_eq!(d.before.as_deref().unwrap(), want);
    }
}

#[test]
fn full_identity_before_images_are_complete() {
    let c = changes();
    let row = |id: &str, name: &str, qty: &str, note: &str| {
        vec![
            id.to_string(),
            format!("\"{name}\""),
            qty.to_string(),
            if note == "null" { note.into() } else { format!("\"{note}\"") },
        ]
    };
    let image = |i: usize, before: Option<Vec<String>>, after: Option<Vec<String>>| {
        assert_eq!(c[i].before, before, "change {i} before");
        assert_eq!(c[i].after, after, "change {i} after");
        for img in [&c[i].before, &c[i].after].into_iter().flatten() {
            assert_eq!(img.len(), FULL_IDENT.len());
            assert!(!img.contains(&UNSENT.to_string()), "change {i}: a FULL image is complete: {img:?}");
        }
    };
    image(9, None, Some(row("1", "widget", "5", "first")));
    image(10, None, Some(row("2", "gadget", "7", "null")));
    // UPDATE full_ident SET qty = 6 WHERE id = 1.
    image(11, Some(row("1", "widget", "5", "first")), Some(row("1", "widget", "6", "first")));
    // UPDATE full_ident SET note = 'now set' WHERE id = 2: the old NULL is present, as null.
    image(12, Some(row("2", "gadget", "7", "null")), Some(row("2", "gadget", "7", "now set")));
    // UPDATE full_ident SET id = 3 WHERE id = 1.
    image(13, Some(row("1", "widget", "6", "first")), Some(row("3", "widget", "6", "first")));
    // DELETE FROM full_ident WHERE id = 2.
    image(14, Some(row("2", "gadget", "7", "now set")), None);
    // In the multi-table transaction.
    image(16, Some(row("3", "widget", "6", "first")), Some(row("3", "widget2", "6", "first")));
}

#[test]
fn multi_table_transaction_keeps_statement_order() {
    let c = changes();
    let mut want = vec!["7", "null", "null", "null", "null", "null", "null", "null", r#""multi""#];
    want.extend(["null"; 14]);
    want.extend([r#""ok""#, "null"]);
    assert_eq!(c[15].op, "insert");
    assert_eq!(c[15].after.as_deref().unwrap(), want);
    assert_eq!((c[16].op.as_str(), c[16].after.as_ref().unwrap().len()), ("update", FULL_IDENT.len()));
    assert_eq!((c[17].op.as_str(), c[17].before.as_ref().unwrap().len()), ("delete", KINDS.len()));
}

#[test]
fn truncate_reports_each_watched_table_once() {
    // One Truncate message names both relations; each watched one becomes a change.
    let both = changes();
    assert_eq!(both.iter().filter(|c| c.op == "truncate").count(), 2);
    for c in both.iter().filter(|c| c.op == "truncate") {
        assert_eq!((c.key.len(), &c.before, &c.after), (0, &None, &None));
    }
    // Watching one table: the other's changes (and its share of the truncate) are skipped.
    let kinds = decode(&["kinds"]);
    assert_eq!(kinds.len(), 12);
    assert!(kinds.iter().all(|c| c.after.iter().chain(&c.before).all(|i| i.len() == KINDS.len())));
    assert_eq!(kinds.last().unwrap().op, "truncate");
    let full = decode(&["full_ident"]);
    assert_eq!(full.len(), 8);
    assert!(full.iter().all(|c| c.after.iter().chain(&c.before).all(|i| i.len() == FULL_IDENT.len())));
    assert_eq!(full.last().unwrap().op, "truncate");
    assert_eq!(full.iter().filter(|c| c.op == "truncate").count(), 1);
}

/// Byte offsets where frames start (and the end), read independently of the code under test.
fn frame_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = vec![0];
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + len;
        out.push(at);
    }
    assert_eq!(at, bytes.len(), "the capture is a whole number of frames");
    out
}

#[test]
fn a_capture_cut_inside_a_frame_is_an_error_not_a_panic() {
    let bytes = capture();
    let boundaries = frame_boundaries(&bytes);
    assert!(boundaries.len() > 50);
    let registry = registry(&["kinds", "full_ident"]);
    for cut in 0..=bytes.len() {
        let prefix = &bytes[..cut];
        let replayed = catch_unwind(|| replay_capture(prefix).map(|m| m.len()).map_err(|e| e.to_string()))
            .unwrap_or_else(|_| panic!("replay_capture panicked on the first {cut} bytes"));
        let decoded = catch_unwind(AssertUnwindSafe(|| decode_capture_for_test("cap", registry.clone(), prefix)))
            .unwrap_or_else(|_| panic!("decode_capture_for_test panicked on the first {cut} bytes"));
        match boundaries.binary_search(&cut) {
            Ok(frames) => {
                assert_eq!(replayed, Ok(frames), "cut at frame boundary {cut}");
                assert!(decoded.is_ok(), "cut at frame boundary {cut}: {decoded:?}");
            }
            Err(i) => {
                let frame_start = boundaries[i - 1];
                assert_eq!(replayed, Err(format!("capture ends inside a frame at byte {frame_start}")), "cut at {cut}");
                assert!(decoded.is_err(), "cut at {cut} decoded");
            }
        }
    }
}

#[test]
fn a_message_cut_short_is_an_error_not_a_panic() {
    // Each frame on its own, re-framed with a shorter body: the framing is intact and the
    // pgoutput message itself ends early.
    let bytes = capture();
    let boundaries = frame_boundaries(&bytes);
    for w in boundaries.windows(2) {
        let body = &bytes[w[0] + 4..w[1]];
        for len in 0..body.len() {
            let mut framed = (len as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&body[..len]);
            let result = catch_unwind(|| replay_capture(&framed).map(|m| m.len()).map_err(|e| e.to_string()))
                .unwrap_or_else(|_| panic!("frame at {} cut to {len} bytes: panic", w[0]));
            let err = result.expect_err("a short message must not parse");
            assert!(
                err.starts_with("frame at byte 0: pgoutput message ended early while reading "),
                "frame at {} cut to {len}: {err}",
                w[0]
            );
        }
    }
}

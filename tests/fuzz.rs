//! Property-based fuzzing of what the server reads from outside: clients' WebSocket frames,
//! `where` filters, policy files, pgoutput messages and binlog events. Each property is "an
//! answer or an error, never a panic" (see `opslive::fuzzing`), on inputs built to reach past
//! the first check: structured messages with wrong fields, filters from the language's own
//! words, and captured replication bytes with a few bytes changed (binlog events re-sealed with
//! a valid checksum, so the decoder itself meets them).
//!
//! CI runs each property on a few hundred cases; for a long run set `PROPTEST_CASES`
//! (`PROPTEST_CASES=100000 cargo nextest run --profile ci --test fuzz`), or use the cargo-fuzz
//! targets in `fuzz/` (fuzz/README.md). A failure found either way becomes a case below.

mod support;

use std::sync::{Arc, OnceLock};

use opslive::fuzzing;
use opslive::registry::Registry;
use opslive::replica::Table;
use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};

/// Cases per property: a few hundred in CI, `PROPTEST_CASES` for a long run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// JSON with the given leaves, nested a few levels.
fn json_with(leaf: BoxedStrategy<Json>, key: BoxedStrategy<String>) -> impl Strategy<Value = Json> {
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map(key.clone(), inner, 0..4)
                .prop_map(|m| Json::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn any_scalar() -> BoxedStrategy<Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        ".{0,12}".prop_map(Json::from),
    ]
    .boxed()
}

/// Words of the `where` language, the test table's columns, and a little noise.
fn filter_word() -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "id", "qty", "status", "total", "score", "paid", "createdAt", "due", "ref", "tags", "doc",
            "eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "isNull", "like", "ilike", "and", "or", "not",
            "column", "ago", "claim", "ltColumn", "gteAgo", "eqColumn", "lteAgo",
        ])
        .prop_map(String::from),
        1 => "[a-zA-Z_]{0,8}",
    ]
    .boxed()
}

/// Values a filter compares with: numbers at the edges, durations, dates, patterns.
fn filter_value() -> BoxedStrategy<Json> {
    prop_oneof![
        3 => any_scalar(),
        2 => prop::sample::select(vec![
            "PT10M", "-P1W", "P99999999999999W", "PT0.000001S", "P1M", "PT", "2024-02-29", "2024-02-30",
            "2024-01-01T00:00:00Z", "9999-12-31T23:59:59.999999+14:00", "%", "_%\\", "\\", "NaN", "-0",
            "1e400", "00000000-0000-0000-0000-000000000000", "99999999999999999999999999999.99",
        ])
        .prop_map(Json::from),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1, i32::MAX as i64 + 1]).prop_map(Json::from),
    ]
    .boxed()
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(fuzzing::filter_table)
}

/// A protocol message with plausible and implausible parts.
fn ws_frame() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        prop::sample::select(vec![
            "connection_init",
            "subscribe",
            "start",
            "complete",
            "stop",
            "ping",
            "pong",
            "connection_terminate",
            "next",
            "ka",
            "",
        ])
        .prop_map(Json::from),
        any_scalar(),
    ];
    let id = prop_oneof![Just(None), any_scalar().prop_map(Some), "[a-z0-9]{0,4}".prop_map(|s| Some(Json::from(s)))];
    let payload = prop_oneof![
        Just(None),
        json_with(any_scalar(), "[a-z]{0,6}".boxed()).prop_map(Some),
        (".{0,40}", json_with(any_scalar(), "[a-z]{0,4}".boxed()), any_scalar())
            .prop_map(|(q, v, op)| Some(json!({ "query": q, "variables": v, "operationName": op }))),
    ];
    (kind, id, payload, any::<bool>()).prop_map(|(kind, id, payload, broken)| {
        let mut m = Map::new();
        m.insert("type".into(), kind);
        if let Some(id) = id {
            m.insert("id".into(), id);
        }
        if let Some(p) = payload {
            m.insert("payload".into(), p);
        }
        let text = Json::Object(m).to_string();
        // Half the time, cut it: JSON that ends early.
        if broken {
            let cut = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text[..cut].to_string()
        } else {
            text
        }
    })
}

/// A policy file as TOML, from a JSON document of roles, or raw text.
fn policy_text() -> impl Strategy<Value = String> {
    let columns = prop_oneof![
        Just(json!("*")),
        prop::collection::vec(filter_word().prop_map(Json::from), 0..4).prop_map(Json::Array),
        prop::collection::vec(filter_word().prop_map(Json::from), 0..3).prop_map(|c| json!({ "except": c })),
        any_scalar(),
    ];
    let filter = json_with(filter_value(), filter_word());
    let operations = prop::collection::vec(
        prop::sample::select(vec!["rows", "by_key", "aggregate", "changes", "x"]).prop_map(Json::from),
        0..3,
    );
    let table = (columns, prop::option::of(filter), prop::option::of(operations)).prop_map(|(c, f, o)| {
        let mut t = Map::new();
        t.insert("columns".into(), c);
        if let Some(f) = f {
            t.insert("filter".into(), f);
        }
        if let Some(o) = o {
            t.insert("operations".into(), Json::Array(o));
        }
        Json::Object(t)
    });
    let role = (
        prop::collection::btree_map(prop::sample::select(vec!["t", "u", "T"]).prop_map(String::from), table, 0..2),
        any::<bool>(),
        prop::collection::vec(
            prop::sample::select(vec!["manage_kpis", "revoke_tokens", "resync", "nope"]).prop_map(Json::from),
            0..2,
        ),
    )
        .prop_map(|(tables, all, permissions)| {
            json!({ "description": "fuzzed", "all_tables": all, "permissions": permissions, "tables": tables })
        });
    prop_oneof![
        4 => prop::collection::btree_map("[a-z_]{1,6}", role, 0..3).prop_map(|roles| {
            // TOML has no null: a document with one cannot be written, and is tried as JSON text.
            let doc = json!({ "roles": roles });
            toml::to_string(&doc).unwrap_or_else(|_| doc.to_string())
        }),
        1 => ".{0,80}",
    ]
}

/// Captured bytes, and the ranges of them a mutation may change.
type Capture = (Vec<u8>, Vec<(usize, usize)>);

/// `bytes` with `edits` bytes changed in `[from, to)` ranges picked by `ranges`.
fn mutate(bytes: &mut [u8], ranges: &[(usize, usize)], edits: &[(usize, usize, u8)]) -> Vec<usize> {
    let mut touched = Vec::new();
    for &(which, offset, value) in edits {
        let (from, to) = ranges[which % ranges.len()];
        if to > from {
            let at = from + offset % (to - from);
            bytes[at] = value;
            touched.push(which % ranges.len());
        }
    }
    touched
}

fn pgoutput_capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgoutput/kinds.capture")).unwrap();
        // Each frame is a big-endian u32 length and a message: change messages, not lengths.
        let mut bodies = Vec::new();
        let mut at = 0;
        while at + 4 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            bodies.push((at + 4, at + 4 + len));
            at += 4 + len;
        }
        (bytes, bodies)
    })
}

fn pg_registry() -> Arc<Registry> {
    let r = Registry::default();
    for t in ["kinds", "full_ident"] {
        r.add("cap".into(), "public", t, t, vec![], vec![]).unwrap();
    }
    Arc::new(r)
}

/// The binlog capture and each event's body (between its 19-byte header and 4-byte checksum).
fn binlog_capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mariadb/kinds.capture")).unwrap();
        let bodies = opslive::source::mariadb::capture_frames(&bytes)
            .unwrap()
            .into_iter()
            .map(|f| (f.at + 19, f.at + f.len - 4))
            .collect();
        (bytes, bodies)
    })
}

fn edits() -> impl Strategy<Value = Vec<(usize, usize, u8)>> {
    prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..6)
}

proptest! {
    // Failures are kept as named tests below, not in proptest's regression files.
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_websocket_text_is_read_or_refused(text in ".{0,200}") {
        fuzzing::ws_message(&text);
    }

    #[test]
    fn websocket_messages_with_wrong_parts_are_read_or_refused(frame in ws_frame()) {
        fuzzing::ws_message(&frame);
    }

    #[test]
    fn where_filters_compile_or_are_refused_and_evaluate_on_any_row(
        filter in json_with(filter_value(), filter_word())
    ) {
        let _ = fuzzing::where_filter(table(), &filter);
    }

    #[test]
    fn policy_files_load_or_are_refused(text in policy_text()) {
        let _ = fuzzing::policy_file(table(), &text);
    }

    #[test]
    fn any_bytes_are_a_pgoutput_message_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = fuzzing::pgoutput_message(&bytes);
    }

    #[test]
    fn a_captured_pgoutput_stream_with_bytes_changed_decodes_or_is_refused(edits in edits()) {
        let (original, bodies) = pgoutput_capture();
        let mut bytes = original.clone();
        mutate(&mut bytes, bodies, &edits);
        let _ = opslive::source::postgres::decode_capture_for_test("cap", pg_registry(), &bytes);
    }

    #[test]
    fn a_captured_binlog_with_bytes_changed_and_resealed_decodes_or_is_refused(edits in edits()) {
        let (original, bodies) = binlog_capture();
        let mut bytes = original.clone();
        for event in mutate(&mut bytes, bodies, &edits) {
            // Sealed again, so the checksum passes and the event reaches the decoder.
            let (from, to) = bodies[event];
            let crc = crc32fast::hash(&bytes[from - 19..to]);
            bytes[to..to + 4].copy_from_slice(&crc.to_le_bytes());
        }
        let registry = opslive::source::mariadb::registry_for("cap", "capture", &["kinds"]);
        let _ = opslive::source::mariadb::replay_capture("cap", &registry, &support::capture::mariadb_kinds_catalog(), &bytes);
    }
}

/// Found by `a_captured_binlog_with_bytes_changed_and_resealed_decodes_or_is_refused`: a byte
/// changed in a DECIMAL's last digit group made mysql_common's decoder overflow a multiplication
/// and panic. It is now an error for the event.
#[test]
fn a_decimal_whose_digits_overflow_is_an_error_not_a_panic() {
    let (original, bodies) = binlog_capture();
    let mut bytes = original.clone();
    let edits = [(8684550221332351562, 3858692863581845936, 8)];
    let touched = mutate(&mut bytes, bodies, &edits);
    let (from, to) = bodies[touched[0]];
    let crc = crc32fast::hash(&bytes[from - 19..to]);
    bytes[to..to + 4].copy_from_slice(&crc.to_le_bytes());
    let registry = opslive::source::mariadb::registry_for("cap", "capture", &["kinds"]);
    let replayed =
        opslive::source::mariadb::replay_capture("cap", &registry, &support::capture::mariadb_kinds_catalog(), &bytes);
    let error = replayed.expect_err("the changed event is refused");
    assert!(error.contains("cannot be decoded") && error.contains("overflow"), "{error}");
}

/// The properties reach past the first check: a sample of the generated inputs is accepted, not
/// only refused (a generator that only made garbage would prove little).
#[test]
fn the_generators_make_inputs_that_are_accepted_too() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let filters = json_with(filter_value(), filter_word());
    let accepted = (0..2_000)
        .filter(|_| fuzzing::where_filter(table(), &filters.new_tree(&mut runner).unwrap().current()).is_ok())
        .count();
    assert!(accepted > 20, "{accepted} of 2,000 generated filters compiled");
    let policies = policy_text();
    let loaded = (0..2_000)
        .filter(|_| fuzzing::policy_file(table(), &policies.new_tree(&mut runner).unwrap().current()).is_ok())
        .count();
    assert!(loaded > 20, "{loaded} of 2,000 generated policy files loaded");
    // Unchanged captures decode: the mutations start from real streams.
    let (pg, _) = pgoutput_capture();
    assert!(opslive::source::postgres::decode_capture_for_test("cap", pg_registry(), pg).is_ok());
    let (binlog, _) = binlog_capture();
    let registry = opslive::source::mariadb::registry_for("cap", "capture", &["kinds"]);
    let replayed =
        opslive::source::mariadb::replay_capture("cap", &registry, &support::capture::mariadb_kinds_catalog(), binlog);
    assert!(replayed.is_ok_and(|lines| !lines.is_empty()));
}

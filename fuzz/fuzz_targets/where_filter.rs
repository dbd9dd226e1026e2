//! A `where` filter given as JSON text, compiled against a table of every type and evaluated.
#![no_main]
use std::sync::OnceLock;

static TABLE: OnceLock<opslive::replica::Table> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = opslive::fuzzing::where_filter(TABLE.get_or_init(opslive::fuzzing::filter_table), &json);
    }
});

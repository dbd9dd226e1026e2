//! A policy file's text, loaded and granted against a table of every type.
#![no_main]
use std::sync::OnceLock;

static TABLE: OnceLock<opslive::replica::Table> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = opslive::fuzzing::policy_file(TABLE.get_or_init(opslive::fuzzing::filter_table), text);
});

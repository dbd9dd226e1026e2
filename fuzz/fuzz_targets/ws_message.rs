//! A client's WebSocket text frame, in both GraphQL-over-WebSocket protocols.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| opslive::fuzzing::ws_message(text));

//! One pgoutput message (an XLogData payload) as the replication stream delivers it.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = opslive::fuzzing::pgoutput_message(bytes);
});

//! See `node_host::fuzzing::juturna_envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| node_host::fuzzing::juturna_envelope(data));

//! See `node_host::fuzzing::json_values`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| node_host::fuzzing::json_values(data));

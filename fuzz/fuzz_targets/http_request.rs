//! See `node_host::fuzzing::http_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| node_host::fuzzing::http_request(data));

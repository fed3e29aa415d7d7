//! See `node_host::fuzzing::component`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| node_host::fuzzing::component(data));

//! See `node_host::fuzzing::worker_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| node_host::fuzzing::worker_frame(data));

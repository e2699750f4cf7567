//! Fuzz target: `gatehouse::fuzzing::link` (see that function for the properties).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::link(data));

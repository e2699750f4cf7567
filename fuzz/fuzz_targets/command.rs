//! Fuzz target: `gatehouse::fuzzing::command` (see that function for the properties).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::command(data));

//! Fuzz target: `gatehouse::fuzzing::markup` (see that function for the properties).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::markup(data));

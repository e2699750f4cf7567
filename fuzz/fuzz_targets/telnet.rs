//! Fuzz target: `gatehouse::fuzzing::telnet` (see that function for the properties).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::telnet(data));

//! Arbitrary bytes as a model file, checksum and all.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    chispa_fuzz::parse_and_exercise(data);
});

//! Mutated model files with a correct checksum: the validation alone must stand between
//! any bytes and the forward pass.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    chispa_fuzz::reseal(&mut bytes);
    chispa_fuzz::parse_and_exercise(&bytes);
});

//! GGUF files from arbitrary bytes: the reader refuses or converts, and what converts must run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((model, _)) = chispa_tools::gguf::read(data) {
        chispa_fuzz::convert_and_exercise(&model);
    }
});

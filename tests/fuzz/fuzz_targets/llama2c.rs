//! llama2.c checkpoint and tokenizer readers on arbitrary bytes (the first four bytes say
//! how long the checkpoint is; the tokenizer is the rest), then the writer and the core.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else { return };
    let at = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (ckpt, tok) = rest.split_at(at);
    let split = len[0];
    let _ = chispa_tools::llama2c::read_params(ckpt);
    if let Ok(model) = chispa_tools::llama2c::read(ckpt, tok) {
        chispa_fuzz::convert_and_exercise(&model);
    }
    let _ = chispa_tools::llama2c::read_tokenizer(tok, (split as usize) + 1);
});

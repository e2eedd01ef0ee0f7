//! The GPT-2 layout and byte-level tokenizer under resealed random edits: every edited file
//! is a model or a typed error, never a panic, and the files that still validate run (forward
//! and byte-level encoding).

use chispa_core::format::{file_checksum, CHECKSUM_OFFSET, HEADER_BYTES};
use chispa_core::{Model, Session, SessionOptions};
use chispa_tests::hf::{convert_dir_fixed, hf_dir};
use chispa_tools::aligned::AlignedBytes;

#[test]
fn resealed_random_edits_of_a_gpt2_file_never_panic() -> anyhow::Result<()> {
    let file = convert_dir_fixed(&hf_dir("gpt2-tiny")?)?.as_slice().to_vec();
    let tok_start =
        Model::parse(AlignedBytes::copy_from(&file).as_slice())?.header().scores_offset as usize;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..2000 {
        let mut f = file.clone();
        for _ in 0..1 + next() % 3 {
            let at = match next() % 3 {
                0 => (next() % HEADER_BYTES as u64) as usize,
                1 => HEADER_BYTES + (next() % (64 * 32)) as usize,
                _ => tok_start + (next() % (f.len() - tok_start) as u64) as usize,
            };
            f[at] = next() as u8;
        }
        let crc = file_checksum(&f);
        f[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        let a = AlignedBytes::copy_from(&f);
        if let Ok(m) = Model::parse(a.as_slice()) {
            accepted += 1;
            let opts = SessionOptions { context: 4, ..Default::default() };
            let Ok(plan) = m.plan(&opts) else { continue };
            let mut arena = AlignedBytes::zeroed(plan.arena_bytes);
            let mut s = Session::new(&m, &opts, arena.as_mut_slice())?;
            for pos in 0..4 {
                s.forward((pos * 97 % m.config().vocab_size) as u32, pos)?;
            }
            let mut ids = [0u32; 128];
            let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
            let _ = m.tokenizer().encode(
                "It's naïve café 🙂  x\n\n y",
                true,
                true,
                &mut ids,
                &mut scratch,
            );
        }
    }
    eprintln!("{accepted} of 2000 edited GPT-2 files were still valid and ran");
    assert!(accepted > 0, "no edit kept the file valid: the test would not exercise running");
    Ok(())
}

//! Text generation with `chispa-core` alone, as a program outside the crate uses it.
//!
//! ```text
//! cargo run --release -p chispa-core --example generate -- [MODEL.chispa] [PROMPT] [STEPS]
//! ```
//!
//! MODEL is a `.chispa` file (`chispa-convert llama2c stories260K.bin -t tok512.bin -o
//! stories260K.chispa`); without one, the 17 KB test model of the repository runs (random
//! weights: nonsense text, real mechanics). Sampling: temperature 0.8, top-p 0.9, top-k 40,
//! a repeat penalty of 1.1 over the last 64 tokens, seed 42.

use std::io::Write;
use std::process::ExitCode;

use chispa_core::{
    Event, Generator, Model, Sampler, SamplerConfig, SamplerFilters, Session, SessionOptions,
};

/// The repository's test model (the fuzz corpus seed), 16-byte aligned as models must be.
#[repr(C, align(16))]
struct Aligned<const N: usize>([u8; N]);
static TINY: Aligned<{ include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa").len() }> =
    Aligned(*include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa"));

/// A file's bytes in 16-byte aligned memory, and their number.
fn read_aligned(path: &str) -> Result<(Vec<u128>, usize), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut words = vec![0u128; bytes.len().div_ceil(16)];
    bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    Ok((words, bytes.len()))
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args.next();
    let prompt = args.next().unwrap_or_else(|| "Once upon a time".into());
    let steps: usize = match args.next() {
        Some(s) => s.parse().map_err(|_| format!("STEPS must be a number, got {s:?}"))?,
        None => 64,
    };
    let file = path.as_deref().map(read_aligned).transpose()?;
    let bytes: &[u8] = match &file {
        Some((words, len)) => &bytemuck::cast_slice::<u128, u8>(words)[..*len],
        None => &TINY.0,
    };
    let model = Model::parse(bytes).map_err(|e| format!("not a valid .chispa model: {e}"))?;

    // Memory: plan first, then one arena for the whole session.
    let options = SessionOptions::default();
    let plan = model.plan(&options).map_err(|e| format!("cannot plan: {e}"))?;
    let mut arena = vec![0u128; plan.arena_bytes.div_ceil(16)];
    let arena = &mut bytemuck::cast_slice_mut::<u128, u8>(&mut arena)[..plan.arena_bytes];
    let mut session =
        Session::new(&model, &options, arena).map_err(|e| format!("cannot start: {e}"))?;

    let tok = model.tokenizer();
    let mut ids = vec![0u32; prompt.len() + 3];
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = tok
        .encode(&prompt, true, false, &mut ids, &mut scratch)
        .map_err(|e| format!("encode: {e}"))?;
    ids.truncate(n);

    let config = SamplerConfig { temperature: 0.8, top_p: 0.9, seed: 42 };
    let filters = SamplerFilters { top_k: 40, min_p: 0.0, repeat_penalty: 1.1 };
    let mut window = [0u32; 64];
    let sampler = Sampler::with_filters(config, filters, &mut window);
    let mut gen = Generator::new(&mut session, &ids, steps, sampler)
        .map_err(|e| format!("cannot start generation: {e}"))?;

    let mut out = std::io::stdout().lock();
    let mut write = |b: &[u8]| out.write_all(b).and_then(|()| out.flush());
    let reason = loop {
        let piece = match gen.step().map_err(|e| format!("generation failed: {e}"))? {
            Event::Prompt { pos, next } => tok.decode(Some(ids[pos]), next),
            Event::Token { id, prev } => tok.decode(Some(prev), id),
            Event::Stop(reason) => break reason,
        };
        if write(piece.bytes()).is_err() {
            return Ok(()); // stdout closed
        }
    };
    let _ = write(b"\n");
    eprintln!("{} tokens generated, stop: {reason:?}", gen.generated());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("generate: {e}");
            ExitCode::FAILURE
        }
    }
}

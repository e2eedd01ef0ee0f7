//! `chispa bench`: prompt and generation speed.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chispa_core::{Session, SessionOptions};
use chispa_runner::load::Loaded;
use chispa_runner::run::arena_for;
use chispa_tools::outln;

use super::common::rate;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn cmd_bench(
    loaded: &Loaded,
    prompt_tokens: usize,
    gen_tokens: usize,
    repeats: usize,
) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let c = model.config();
    let total = prompt_tokens.checked_add(gen_tokens).filter(|t| *t <= c.max_seq_len);
    let Some(total) = total.filter(|_| prompt_tokens > 0) else {
        bail!(
            "--prompt-tokens {prompt_tokens} + --gen-tokens {gen_tokens}: need 1 ≤ prompt tokens and prompt + generated ≤ {} (the context)",
            c.max_seq_len
        );
    };
    // A deterministic prompt: BOS then ids cycling through the vocabulary.
    let bos = model.bos_id().unwrap_or(0);
    let prompt: Vec<u32> = std::iter::once(bos)
        .chain((0..prompt_tokens as u32 - 1).map(|i| (i * 7 + 300) % c.vocab_size as u32))
        .collect();
    let options = SessionOptions { context: total, ..Default::default() };
    let mut arena = arena_for(&model, &options)?;
    let (mut p_rates, mut g_rates) = (Vec::new(), Vec::new());
    for _ in 0..repeats.max(1) {
        let mut session = Session::new(&model, &options, arena.as_mut_slice())?;
        session.set_kernels(chispa_runner::threads::kernels());
        let (mut pt, mut gt, mut gn) = (Duration::ZERO, Duration::ZERO, 0usize);
        // No stop ids in a benchmark: run every requested step.
        let mut pos = 0;
        let mut token = prompt[0];
        while pos < total {
            let t0 = Instant::now();
            let logits = session.forward(token, pos)?;
            let next = if pos + 1 < prompt.len() {
                prompt[pos + 1]
            } else {
                chispa_core::sampler::argmax(logits)
            };
            let dt = t0.elapsed();
            if pos + 1 < prompt.len() {
                pt += dt;
            } else {
                gt += dt;
                gn += 1;
            }
            token = next;
            pos += 1;
        }
        p_rates.push(rate(prompt.len() - 1, pt));
        g_rates.push(rate(gn, gt));
    }
    // Every generated token reads every matrix once: the model's bytes (tokenizer and
    // header included, a small overestimate) times the rate is the weight read bandwidth.
    let g_rate = median(g_rates);
    let gb_s = model.bytes().len() as f64 * g_rate / 1e9;
    outln!(
        "{}: {} params, {} — prompt {:.0} tok/s, generation {:.0} tok/s ≈ {gb_s:.1} GB/s of weights (median of {}, {} + {} tokens, {} thread(s), {} kernels)",
        loaded.name,
        c.parameter_count(),
        c.dtype.name(),
        median(p_rates),
        g_rate,
        repeats.max(1),
        prompt_tokens,
        gen_tokens,
        chispa_runner::threads::threads(),
        chispa_runner::threads::kernels().backend().name()
    )?;
    Ok(())
}

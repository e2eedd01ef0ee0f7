//! `chispa run`: stream generated text.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chispa_core::{Event, Generator, Sampler, SamplerConfig, Session, SessionOptions, StopReason};
use chispa_runner::load::Loaded;
use chispa_runner::run::{arena_for, printable};
use serde_json::json;

use super::common::{encode, out_ok, rate, reason_text};

#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_run(
    loaded: &Loaded,
    prompt: &str,
    steps: usize,
    temperature: f32,
    top_p: f32,
    seed: Option<u64>,
    context: usize,
    json: bool,
) -> Result<()> {
    if !temperature.is_finite() || temperature < 0.0 {
        bail!("--temperature must be a finite number ≥ 0, got {temperature}");
    }
    if !top_p.is_finite() {
        bail!("--top-p must be finite, got {top_p}");
    }
    let model = loaded.bytes.parse(&loaded.name)?;
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let ids = encode(&model, prompt, true)?;
    let options = SessionOptions { context, ..Default::default() };
    let mut arena = arena_for(&model, &options)?;
    let mut session = Session::new(&model, &options, arena.as_mut_slice())?;
    let sampler = Sampler::new(SamplerConfig { temperature, top_p, seed });
    let mut gen = Generator::new(&mut session, &ids, steps, sampler)?;
    let tok = model.tokenizer();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut open = true;
    // Prompt events print the token after each position; print the first one here unless it
    // is BOS (GPT-2 prepends nothing).
    if let (false, Some(first)) = (json, ids.first()) {
        if Some(*first) != tok.bos() {
            open = out_ok(out.write_all(printable(tok.decode(None, *first))))?;
        }
    }
    let (mut prompt_time, mut gen_time) = (Duration::ZERO, Duration::ZERO);
    let (mut n_prompt, mut n_gen) = (0usize, 0usize);
    let reason = loop {
        let t0 = Instant::now();
        let ev = gen.step()?;
        let dt = t0.elapsed();
        match ev {
            Event::Prompt { pos, next } => {
                prompt_time += dt;
                n_prompt += 1;
                if !json && open {
                    let piece = tok.decode(Some(ids[pos]), next);
                    open = out_ok(out.write_all(printable(piece)).and_then(|_| out.flush()))?;
                }
            }
            Event::Token { id, prev } => {
                gen_time += dt;
                n_gen += 1;
                let piece = tok.decode(Some(prev), id);
                if open {
                    let r = if json {
                        let text = String::from_utf8_lossy(piece.bytes());
                        writeln!(out, "{}", json!({ "id": id, "text": text }))
                    } else {
                        out.write_all(printable(piece)).and_then(|_| out.flush())
                    };
                    open = out_ok(r)?;
                }
            }
            Event::Stop(r) => {
                if matches!(r, StopReason::EndOfSequence { .. }) {
                    gen_time += dt;
                    n_gen += 1;
                }
                break r;
            }
        }
    };
    let summary = json!({
        "summary": {
            "prompt_tokens": ids.len(),
            "generated_tokens": n_gen,
            "stop_reason": reason_text(reason),
            "prompt_tokens_per_s": rate(n_prompt, prompt_time),
            "generation_tokens_per_s": rate(n_gen, gen_time),
            "seed": seed,
        }
    });
    if open {
        out_ok(if json { writeln!(out, "{summary}") } else { writeln!(out) })?;
    }
    eprintln!(
        "model {} | prompt {} tokens ({:.0} tok/s) | generated {} tokens ({:.0} tok/s) | stop: {} | seed {seed}",
        loaded.name,
        ids.len(),
        rate(n_prompt, prompt_time),
        n_gen,
        rate(n_gen, gen_time),
        reason_text(reason)
    );
    Ok(())
}

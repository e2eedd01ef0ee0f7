//! `chispa run`: stream generated text.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chispa_core::sampler::softmax;
use chispa_core::{
    Digest, Event, Generator, Sampler, SamplerConfig, Session, SessionOptions, StopReason,
};
use chispa_runner::load::Loaded;
use chispa_runner::run::{arena_for, printable};
use clap::Args;
use serde_json::json;

use super::common::{encode, out_ok, rate, reason_text, Kv};

/// Options of `chispa run`.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Prompt text (BOS is added).
    #[arg(long, short = 'p', default_value = "")]
    prompt: String,
    /// New tokens to generate after the prompt.
    #[arg(long, short = 'n', default_value_t = 256)]
    steps: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Nucleus sampling threshold; ≤ 0 or ≥ 1 samples from all tokens.
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// PRNG seed; default: from the clock (printed, so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Context length in tokens; default: the model's maximum.
    #[arg(long, default_value_t = 0)]
    context: usize,
    /// One JSON object per generated token ({"id", "text"}) and a final summary object.
    #[arg(long)]
    json: bool,
    /// After each generated token, the K most likely tokens and their probabilities
    /// (temperature 1); in text mode one line per token.
    #[arg(long, value_name = "K", default_value_t = 0)]
    top_k_probs: usize,
    /// Print `digest: <hex>` (FNV-1a 64 of all token ids and logit bits, as the firmware
    /// prints it) after the text; with --json, a "digest" field in the summary.
    #[arg(long)]
    digest: bool,
    /// KV-cache element type.
    #[arg(long, value_enum, default_value_t = Kv::F32)]
    kv: Kv,
}

/// The `k` most likely tokens under `logits` (softmax at temperature 1), most likely first.
fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut probs = logits.to_vec();
    softmax(&mut probs);
    let mut ranked: Vec<(u32, f32)> =
        probs.into_iter().enumerate().map(|(i, p)| (i as u32, p)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

pub(crate) fn cmd_run(loaded: &Loaded, a: &RunArgs) -> Result<()> {
    let RunArgs {
        ref prompt,
        steps,
        temperature,
        top_p,
        seed,
        context,
        json,
        top_k_probs,
        digest: want_digest,
        kv,
    } = *a;
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
    let options = SessionOptions { context, kv: kv.into() };
    let mut arena = arena_for(&model, &options)?;
    let mut session = Session::new(&model, &options, arena.as_mut_slice())?;
    let sampler = Sampler::new(SamplerConfig { temperature, top_p, seed });
    let mut gen = Generator::new(&mut session, &ids, steps, sampler)?;
    let mut digest = Digest::new();
    digest.tokens(&ids);
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
        digest.event(&ev, gen.logits());
        match ev {
            Event::Prompt { pos, next } => {
                prompt_time += dt;
                n_prompt += 1;
                if !json && top_k_probs == 0 && open {
                    let piece = tok.decode(Some(ids[pos]), next);
                    open = out_ok(out.write_all(printable(piece)).and_then(|_| out.flush()))?;
                }
            }
            Event::Token { id, prev } => {
                gen_time += dt;
                n_gen += 1;
                let piece = tok.decode(Some(prev), id);
                let text = String::from_utf8_lossy(piece.bytes());
                let top =
                    if top_k_probs > 0 { top_k(gen.logits(), top_k_probs) } else { Vec::new() };
                let label = |id: u32| String::from_utf8_lossy(tok.piece(id)).into_owned();
                if open {
                    let r = if json && top_k_probs > 0 {
                        let top: Vec<_> = top
                            .iter()
                            .map(|(i, p)| json!({ "id": i, "text": label(*i), "p": p }))
                            .collect();
                        writeln!(out, "{}", json!({ "id": id, "text": text, "top": top }))
                    } else if json {
                        writeln!(out, "{}", json!({ "id": id, "text": text }))
                    } else if top_k_probs > 0 {
                        let alts: Vec<String> =
                            top.iter().map(|(i, p)| format!("{p:.3} {:?}", label(*i))).collect();
                        writeln!(out, "{text:?}\t{}", alts.join(" | "))
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
    let digest_hex = format!("{:016x}", digest.value());
    let mut summary = json!({
        "summary": {
            "prompt_tokens": ids.len(),
            "generated_tokens": n_gen,
            "stop_reason": reason_text(reason),
            "prompt_tokens_per_s": rate(n_prompt, prompt_time),
            "generation_tokens_per_s": rate(n_gen, gen_time),
            "seed": seed,
        }
    });
    if want_digest {
        summary["summary"]["digest"] = json!(digest_hex);
    }
    if open {
        open = out_ok(if json { writeln!(out, "{summary}") } else { writeln!(out) })?;
    }
    if open && want_digest && !json {
        out_ok(writeln!(out, "digest: {digest_hex}"))?;
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

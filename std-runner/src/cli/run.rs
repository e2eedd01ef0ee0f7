//! `chispa run`: stream generated text.
//!
//! Ctrl-C (SIGINT) ends generation at the next token boundary: the usual statistics (with
//! the seed) follow, and the exit status is 130; a second Ctrl-C exits at once. A closed
//! stdout (`chispa run | head`) ends generation quietly: nothing more is written to stdout,
//! the statistics line still goes to stderr, and the exit status is 0.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chispa_core::generate::STOP_STRING_MAX;
use chispa_core::sampler::softmax;
use chispa_core::{
    Digest, Event, Generator, Sampler, SamplerConfig, SamplerFilters, Session, SessionOptions,
    StopReason, StopStrings,
};
use chispa_runner::chat::{encode_chat, Conversation};
use chispa_runner::load::Loaded;
use chispa_runner::run::{arena_for, printable};
use clap::Args;
use serde_json::json;

use super::common::{encode, out_ok, rate, reason_text, Kv};

/// Options of `chispa run` (llama.cpp's names where they do not clash).
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Prompt text (BOS is added, unless --chat).
    #[arg(long, short = 'p', conflicts_with = "file")]
    prompt: Option<String>,
    /// Wrap the prompt as one user message in the model's chat template (with the
    /// assistant's header after it), as `chispa chat` does for one turn.
    #[arg(long)]
    chat: bool,
    /// With --chat: a system message before the user's.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Read the prompt from FILE (`-`: standard input); one final newline is dropped, as
    /// llama.cpp does.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// New tokens to generate after the prompt.
    #[arg(long, short = 'n', visible_alias = "n-predict", default_value_t = 256)]
    steps: usize,
    /// Sampling temperature; 0 is greedy (as is a temperature so small that the logits
    /// divided by it overflow).
    #[arg(long, visible_alias = "temp", default_value_t = 1.0, allow_negative_numbers = true, value_parser = parse_temperature)]
    temperature: f32,
    /// Keep only the K most likely tokens; 0 keeps all.
    #[arg(long, value_name = "K", default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling threshold; ≤ 0 or ≥ 1 samples from all tokens.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true, value_parser = parse_top_p)]
    top_p: f32,
    /// Keep only tokens with at least P times the probability of the most likely one; 0 is
    /// off.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_min_p)]
    min_p: f32,
    /// Penalise the tokens of the last --repeat-last-n (prompt included): their positive
    /// logits are divided by X, the others multiplied (llama.cpp's rule); 1 is off.
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = parse_penalty)]
    repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at; 0 turns it off, -1 is the context
    /// length.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        allow_negative_numbers = true,
        value_parser = parse_last_n
    )]
    repeat_last_n: i64,
    /// Stop once the generated text ends with TEXT (repeatable; at most 64 bytes). As with
    /// llama.cpp's -r, the stop string is printed: the output keeps it.
    #[arg(long = "reverse-prompt", short = 'r', value_name = "TEXT", visible_alias = "stop", value_parser = parse_stop)]
    stop: Vec<String>,
    /// PRNG seed; default (or -1): from the clock (printed, so a run can be repeated).
    #[arg(long, short = 's', allow_negative_numbers = true, value_parser = parse_seed)]
    seed: Option<Seed>,
    /// Context length in tokens; default: the model's maximum.
    #[arg(long, short = 'c', visible_alias = "ctx-size", default_value_t = 0)]
    context: usize,
    /// One JSON object per generated token ({"id", "text", "bytes"}: the exact bytes, as
    /// "text" cannot hold part of a UTF-8 character) and a final summary object.
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

/// A seed from the command line: a number, or -1 for one from the clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seed(Option<u64>);

fn parse_seed(s: &str) -> Result<Seed, String> {
    if s == "-1" {
        return Ok(Seed(None));
    }
    s.parse()
        .map(|v| Seed(Some(v)))
        .map_err(|_| "expected a number from 0 to 2^64 - 1, or -1".into())
}

fn parse_temperature(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err("expected a finite number ≥ 0 (0 is greedy)".into()),
    }
}

fn parse_top_p(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(p) if p.is_finite() => Ok(p),
        _ => Err("expected a finite number (≤ 0 or ≥ 1 samples from all tokens)".into()),
    }
}

fn parse_min_p(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err("expected a number from 0 to 1".into()),
    }
}

fn parse_penalty(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(p) if p.is_finite() && p > 0.0 => Ok(p),
        _ => Err("expected a finite number above 0 (1 is off)".into()),
    }
}

fn parse_last_n(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if n >= -1 => Ok(n),
        _ => Err("expected a token count ≥ 0, or -1 for the context length".into()),
    }
}

fn parse_stop(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a stop string cannot be empty".into());
    }
    if s.len() > STOP_STRING_MAX {
        return Err(format!(
            "a stop string has at most {STOP_STRING_MAX} bytes, this one {}",
            s.len()
        ));
    }
    Ok(s.to_string())
}

/// How `chispa run` ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Generation ended by itself (or the reader of stdout went away): exit 0.
    Done,
    /// Ctrl-C: exit 130.
    Interrupted,
}

/// Why the generation loop ended.
enum End {
    Model(StopReason),
    StopString(usize),
    Interrupted,
    OutputClosed,
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

/// The prompt: `-p`, else the file of `-f` (`-`: stdin) without one final newline.
fn prompt_text(a: &RunArgs) -> Result<String> {
    if let Some(p) = &a.prompt {
        return Ok(p.clone());
    }
    let Some(file) = &a.file else { return Ok(String::new()) };
    let (bytes, what) = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        io::stdin().read_to_end(&mut b).context("cannot read the prompt from stdin")?;
        (b, "standard input".to_string())
    } else {
        let b = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        (b, file.display().to_string())
    };
    let mut text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{what} is not UTF-8 text (byte {})", e.utf8_error().valid_up_to())
    })?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

/// Ctrl-C sets the returned flag (the loop checks it at each token); a second Ctrl-C, with
/// the flag already set, exits at once with 130.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::SIGINT;
    let flag = Arc::new(AtomicBool::new(false));
    chispa_tools::output::sigint_handled_elsewhere();
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&flag))
        .context("cannot handle SIGINT")?;
    signal_hook::flag::register(SIGINT, Arc::clone(&flag)).context("cannot handle SIGINT")?;
    Ok(flag)
}

pub(crate) fn cmd_run(loaded: &Loaded, a: &RunArgs) -> Result<Outcome> {
    let RunArgs {
        steps,
        temperature,
        top_k: k,
        top_p,
        min_p,
        repeat_penalty,
        repeat_last_n,
        seed,
        context,
        json,
        top_k_probs,
        digest: want_digest,
        kv,
        ..
    } = *a;
    let prompt = prompt_text(a)?;
    let interrupted = interrupt_flag()?;
    let model = loaded.bytes.parse(&loaded.name)?;
    let seed = seed.and_then(|s| s.0).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let max = model.config().max_seq_len;
    let ids = if a.chat {
        let mut convo = Conversation::new(&model, a.system.as_deref())?;
        convo.push("user", &prompt);
        encode_chat(&model, &convo.prompt()?)?
    } else {
        encode(&model, &prompt, true, Some(if context == 0 { max } else { context.min(max) }))?
    };
    let options = SessionOptions { context, kv: kv.into() };
    let mut arena = arena_for(&model, &options)?;
    let mut session = Session::new(&model, &options, arena.as_mut_slice())?;
    session.set_kernels(chispa_runner::threads::kernels());
    // The window never holds more tokens than the context has positions.
    let window = match usize::try_from(repeat_last_n) {
        _ if repeat_penalty == 1.0 => 0,
        Ok(n) => n.min(session.context()),
        Err(_) => session.context(),
    };
    let mut history = vec![0u32; window];
    let filters = SamplerFilters { top_k: k, min_p, repeat_penalty };
    let sampler =
        Sampler::with_filters(SamplerConfig { temperature, top_p, seed }, filters, &mut history);
    let mut gen = Generator::new(&mut session, &ids, steps, sampler)?;
    let stop_bytes: Vec<&[u8]> = a.stop.iter().map(|s| s.as_bytes()).collect();
    let mut stops = StopStrings::new(&stop_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
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
    let end = loop {
        if !open {
            break End::OutputClosed;
        }
        if interrupted.load(Ordering::Relaxed) {
            break End::Interrupted;
        }
        let t0 = Instant::now();
        let ev = gen.step()?;
        let dt = t0.elapsed();
        digest.event(&ev, gen.logits());
        match ev {
            Event::Prompt { pos, next } => {
                prompt_time += dt;
                n_prompt += 1;
                if !json && top_k_probs == 0 {
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
                let r = if json {
                    let mut line = json!({ "id": id, "text": text, "bytes": piece.bytes() });
                    if top_k_probs > 0 {
                        let top: Vec<_> = top
                            .iter()
                            .map(|(i, p)| {
                                let bytes = tok.decode(Some(prev), *i).bytes();
                                json!({ "id": i, "text": label(*i), "bytes": bytes, "p": p })
                            })
                            .collect();
                        line["top"] = json!(top);
                    }
                    writeln!(out, "{line}")
                } else if top_k_probs > 0 {
                    let alts: Vec<String> =
                        top.iter().map(|(i, p)| format!("{p:.3} {:?}", label(*i))).collect();
                    writeln!(out, "{text:?}\t{}", alts.join(" | "))
                } else {
                    out.write_all(printable(piece)).and_then(|_| out.flush())
                };
                open = out_ok(r)?;
                if let Some(i) = stops.push(piece.bytes()) {
                    break End::StopString(i);
                }
            }
            Event::Stop(r) => {
                if matches!(r, StopReason::EndOfSequence { .. }) {
                    gen_time += dt;
                    n_gen += 1;
                }
                break End::Model(r);
            }
        }
    };
    let reason = match end {
        End::Model(r) => reason_text(r),
        End::StopString(i) => format!("stop string {:?}", a.stop[i]),
        End::Interrupted => "interrupted".into(),
        End::OutputClosed => "output closed".into(),
    };
    let digest_hex = format!("{:016x}", digest.value());
    let mut summary = json!({
        "summary": {
            "prompt_tokens": ids.len(),
            "generated_tokens": n_gen,
            "stop_reason": reason,
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
        "model {} | prompt {} tokens ({:.0} tok/s) | generated {} tokens ({:.0} tok/s) | stop: {reason} | seed {seed}",
        loaded.name,
        ids.len(),
        rate(n_prompt, prompt_time),
        n_gen,
        rate(n_gen, gen_time),
    );
    Ok(if matches!(end, End::Interrupted) { Outcome::Interrupted } else { Outcome::Done })
}

//! `chispa`: run `.chispa` models (or llama2.c checkpoints) on the desktop.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chispa_core::format::DType;
use chispa_core::{
    Event, Generator, Model, Sampler, SamplerConfig, Session, SessionOptions, StopReason,
};
use chispa_runner::load::{self, Loaded, ModelSource};
use chispa_runner::run::{arena_for, mean_nll, printable, teacher_forced};
use chispa_tools::writer::WriteOptions;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

/// chispa runs small transformer language models — the same code as on a microcontroller.
///
/// MODEL is a .chispa file (from chispa-convert; memory-mapped), or a llama2.c checkpoint with
/// --tokenizer (converted in memory). Without MODEL, the default model stories260K is taken from
/// the data directory ($CHISPA_DATA, else ../shared).
///
/// Exit codes: 0 success, 1 bad model or input (the message says which), 2 bad command line.
#[derive(Parser, Debug)]
#[command(name = "chispa", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct ModelArgs {
    /// Tokenizer for a llama2.c checkpoint (e.g. tok512.bin).
    #[arg(long, short = 't')]
    tokenizer: Option<PathBuf>,
    /// Weights to convert a llama2.c checkpoint to in memory.
    #[arg(long, value_enum, default_value_t = Dtype::Int8)]
    dtype: Dtype,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dtype {
    /// Symmetric int8, f16 group scales (what the firmware runs).
    Int8,
    /// 32-bit float reference.
    F32,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate text: streams it to stdout, statistics to stderr.
    Run {
        /// Model (.chispa, or llama2.c .bin with --tokenizer); default stories260K.
        model: Option<PathBuf>,
        #[command(flatten)]
        m: ModelArgs,
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
    },
    /// Print the token ids of TEXT (comma-separated; --verbose: one per line with its piece).
    Tokenize {
        /// Model.
        model: PathBuf,
        /// Text to encode.
        text: String,
        #[command(flatten)]
        m: ModelArgs,
        /// Show each piece.
        #[arg(long, short)]
        verbose: bool,
        /// Do not prepend BOS.
        #[arg(long)]
        no_bos: bool,
    },
    /// Teacher-forced pass over given tokens: perplexity, optionally all logits as JSON.
    Eval {
        /// Model.
        model: PathBuf,
        #[command(flatten)]
        m: ModelArgs,
        /// Comma-separated token ids.
        #[arg(long, conflicts_with = "text", required_unless_present = "text")]
        tokens: Option<String>,
        /// A text file to encode (BOS is added).
        #[arg(long)]
        text: Option<PathBuf>,
        /// Write {"input_ids": [...], "logits": [[...], ...]} here (row t after input_ids[0..=t]).
        #[arg(long)]
        logits_out: Option<PathBuf>,
    },
    /// Measure prompt and generation speed (greedy), median of repeats.
    Bench {
        /// Model; default stories260K.
        model: Option<PathBuf>,
        #[command(flatten)]
        m: ModelArgs,
        /// Prompt length in tokens.
        #[arg(long, default_value_t = 32)]
        prompt_tokens: usize,
        /// Tokens to generate.
        #[arg(long, default_value_t = 224)]
        gen_tokens: usize,
        /// Repeats (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
}

fn load_model(path: Option<PathBuf>, m: &ModelArgs) -> Result<Loaded> {
    let dtype = match m.dtype {
        Dtype::Int8 => DType::I8,
        Dtype::F32 => DType::F32,
    };
    load::load(&ModelSource {
        path,
        tokenizer: m.tokenizer.clone(),
        convert: WriteOptions { dtype, group_size: None },
    })
}

fn encode(model: &Model<'_>, text: &str, bos: bool) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; text.len() + 3];
    let n =
        model.tokenizer().encode(text, bos, false, &mut ids).context("cannot encode the text")?;
    ids.truncate(n);
    Ok(ids)
}

fn rate(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

fn reason_text(r: StopReason) -> String {
    match r {
        StopReason::MaxTokens => "max tokens".into(),
        StopReason::EndOfSequence { id } => format!("end of sequence (token {id})"),
        StopReason::ContextFull => "context full".into(),
    }
}

/// Output that ends quietly when the reader goes away (`chispa run | head`).
fn out_ok(r: io::Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

#[allow(clippy::too_many_arguments)]
fn cmd_run(
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

fn cmd_tokenize(loaded: &Loaded, text: &str, verbose: bool, no_bos: bool) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let ids = encode(&model, text, !no_bos)?;
    let mut out = io::stdout().lock();
    let r = if verbose {
        ids.iter().try_for_each(|id| {
            let piece = String::from_utf8_lossy(model.tokenizer().piece(*id));
            writeln!(out, "{id}\t{piece:?}")
        })
    } else {
        let s: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "{}", s.join(","))
    };
    out_ok(r).map(|_| ())
}

fn cmd_eval(
    loaded: &Loaded,
    tokens: Option<String>,
    text: Option<PathBuf>,
    logits_out: Option<PathBuf>,
) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let ids: Vec<u32> = match (tokens, text) {
        (Some(t), _) => t
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .with_context(|| format!("--tokens: {s:?} is not a token id"))
            })
            .collect::<Result<_>>()?,
        (None, Some(path)) => {
            let s = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            encode(&model, &s, true)?
        }
        (None, None) => bail!("give --tokens or --text"),
    };
    if ids.is_empty() {
        bail!("no tokens to evaluate");
    }
    let max = model.config().max_seq_len;
    if ids.len() > max {
        bail!("{} tokens exceed the model's context of {max}", ids.len());
    }
    let start = Instant::now();
    let logits = teacher_forced(&model, &ids)?;
    let elapsed = start.elapsed();
    let nll = mean_nll(&logits, &ids);
    println!(
        "tokens {}  mean NLL {:.4} nats  perplexity {:.3}  ({:.0} tok/s)",
        ids.len(),
        nll,
        nll.exp(),
        rate(ids.len(), elapsed)
    );
    if let Some(path) = logits_out {
        let doc = json!({ "input_ids": ids, "logits": logits });
        let bytes = serde_json::to_vec(&doc)?;
        chispa_tools::writer::write_atomic(&path, &bytes)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn cmd_bench(
    loaded: &Loaded,
    prompt_tokens: usize,
    gen_tokens: usize,
    repeats: usize,
) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let c = model.config();
    let total = prompt_tokens + gen_tokens;
    if prompt_tokens == 0 || total > c.max_seq_len {
        bail!("need 1 ≤ prompt tokens and prompt + generated ≤ {} (context)", c.max_seq_len);
    }
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
    println!(
        "{}: {} params, {} — prompt {:.0} tok/s, generation {:.0} tok/s (median of {}, {} + {} tokens, 1 thread)",
        loaded.name,
        c.parameter_count(),
        c.dtype.name(),
        median(p_rates),
        median(g_rates),
        repeats.max(1),
        prompt_tokens,
        gen_tokens
    );
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { model, m, prompt, steps, temperature, top_p, seed, context, json } => {
            let loaded = load_model(model, &m)?;
            cmd_run(&loaded, &prompt, steps, temperature, top_p, seed, context, json)
        }
        Command::Tokenize { model, text, m, verbose, no_bos } => {
            cmd_tokenize(&load_model(Some(model), &m)?, &text, verbose, no_bos)
        }
        Command::Eval { model, m, tokens, text, logits_out } => {
            cmd_eval(&load_model(Some(model), &m)?, tokens, text, logits_out)
        }
        Command::Bench { model, m, prompt_tokens, gen_tokens, repeats } => {
            cmd_bench(&load_model(model, &m)?, prompt_tokens, gen_tokens, repeats)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chispa: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

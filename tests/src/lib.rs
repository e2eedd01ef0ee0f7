//! Shared helpers for the golden tests: the reference files in the data directory, models
//! converted in memory, and the quality metrics (KL divergence, top-1 agreement).
//!
//! The data directory is `$CHISPA_DATA`, else `../shared` (see `chispa_runner::data`). When it
//! is missing, every test fails with a message that says where to get the data.

use anyhow::{Context, Result};
use chispa_core::format::DType;
use chispa_core::{Event, Generator, Model, Sampler, SamplerConfig, Session, SessionOptions};
use chispa_runner::data::{data_file, default_model};
use chispa_runner::load::convert_llama2c;
use chispa_runner::run::{arena_for, log_softmax};
use chispa_tools::aligned::AlignedBytes;
use chispa_tools::writer::WriteOptions;
use serde::Deserialize;

pub mod bytebpe;
pub mod hf;

/// One case of a `reference.json` (format `llm-reference/v1`).
#[derive(Debug, Deserialize)]
pub struct Case {
    /// Case name.
    pub name: String,
    /// Prompt text.
    pub prompt: String,
    /// Whether BOS is prepended.
    pub add_bos: bool,
    /// Tokenizer output.
    pub prompt_ids: Vec<u32>,
    /// Greedy continuation.
    pub greedy_ids: Vec<u32>,
    /// `prompt_ids + greedy_ids`.
    pub input_ids: Vec<u32>,
    /// Reference logits, row t after `input_ids[0..=t]` (in the JSON, or read from a
    /// `reference.f32` beside it: [`hf::tiny_reference`]).
    #[serde(default)]
    pub logits: Vec<Vec<f32>>,
}

/// A `reference.json`.
#[derive(Debug, Deserialize)]
pub struct Reference {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// The cases.
    pub cases: Vec<Case>,
}

/// Reads a reference file from the data directory (`relative` to it).
///
/// # Errors
/// The file is missing (the message says where to get it) or malformed.
pub fn reference(relative: &str) -> Result<Reference> {
    let path = data_file(relative)?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The stories260K reference (llama2.c `run.c`).
///
/// # Errors
/// As [`reference()`].
pub fn stories_reference() -> Result<Reference> {
    reference("reference/stories260K.reference.json")
}

/// stories260K converted in memory (`group_size: None` = the converter's default policy).
///
/// # Errors
/// The model files are missing (the message says where to get them).
pub fn stories_model(dtype: DType, group_size: Option<usize>) -> Result<AlignedBytes> {
    stories_model_with(&WriteOptions::new(dtype, group_size))
}

/// stories260K converted in memory with `opts`.
///
/// # Errors
/// The model files are missing (the message says where to get them).
pub fn stories_model_with(opts: &WriteOptions) -> Result<AlignedBytes> {
    let (ckpt, tok) = default_model()?;
    convert_llama2c(&ckpt, &tok, opts)
}

/// Quality of logits against reference logits.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Agreement {
    /// Positions compared.
    pub positions: usize,
    /// Mean KL(reference ‖ ours) in nats.
    pub mean_kl: f64,
    /// Largest KL at one position.
    pub max_kl: f64,
    /// Fraction of positions whose argmax agrees.
    pub top1: f64,
    /// Largest absolute logit difference.
    pub max_abs_err: f64,
}

/// KL(p ‖ q) from two logit rows.
pub fn kl(reference: &[f32], ours: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(reference), log_softmax(ours));
    lp.iter().zip(&lq).map(|(a, b)| a.exp() * (a - b)).sum()
}

/// Compares rows of logits.
pub fn agreement(reference: &[Vec<f32>], ours: &[Vec<f32>]) -> Agreement {
    let mut a = Agreement::default();
    let mut top1 = 0usize;
    for (r, o) in reference.iter().zip(ours) {
        let k = kl(r, o);
        a.mean_kl += k;
        a.max_kl = a.max_kl.max(k);
        if chispa_core::sampler::argmax(r) == chispa_core::sampler::argmax(o) {
            top1 += 1;
        }
        for (x, y) in r.iter().zip(o) {
            a.max_abs_err = a.max_abs_err.max((*x as f64 - *y as f64).abs());
        }
        a.positions += 1;
    }
    if a.positions > 0 {
        a.mean_kl /= a.positions as f64;
        a.top1 = top1 as f64 / a.positions as f64;
    }
    a
}

/// `model` teacher-forced on every case of `reference`, against the reference's logits: the
/// agreement over all positions.
///
/// # Errors
/// A case the model cannot run.
pub fn reference_agreement(model: &Model<'_>, reference: &Reference) -> Result<Agreement> {
    let parts: Vec<_> = reference
        .cases
        .iter()
        .map(|c| {
            Ok(agreement(&c.logits, &chispa_runner::run::teacher_forced(model, &c.input_ids)?))
        })
        .collect::<Result<_>>()?;
    Ok(combine(&parts))
}

/// Merges several agreements, weighting by positions.
pub fn combine(parts: &[Agreement]) -> Agreement {
    let n: usize = parts.iter().map(|p| p.positions).sum();
    let w = |f: fn(&Agreement) -> f64| {
        parts.iter().map(|p| f(p) * p.positions as f64).sum::<f64>() / n.max(1) as f64
    };
    Agreement {
        positions: n,
        mean_kl: w(|p| p.mean_kl),
        max_kl: parts.iter().map(|p| p.max_kl).fold(0.0, f64::max),
        top1: w(|p| p.top1),
        max_abs_err: parts.iter().map(|p| p.max_abs_err).fold(0.0, f64::max),
    }
}

/// Greedy continuation of `prompt`, up to `n` tokens; it ends early at a stop id (the
/// stories260K references never reach one).
///
/// # Errors
/// Planning or running errors.
pub fn greedy(model: &Model<'_>, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    let options = SessionOptions { context: prompt.len() + n, ..Default::default() };
    let mut arena = arena_for(model, &options)?;
    let mut session = Session::new(model, &options, arena.as_mut_slice())?;
    session.set_kernels(chispa_runner::threads::kernels());
    let mut gen = Generator::new(&mut session, prompt, n, Sampler::new(SamplerConfig::greedy()))?;
    let mut out = Vec::new();
    loop {
        match gen.step()? {
            Event::Prompt { .. } => {}
            Event::Token { id, .. } => out.push(id),
            Event::Stop(_) => return Ok(out),
        }
    }
}

/// Length of the common prefix of two id lists.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

//! The byte-level BPE tokenizers of `tests/data/tokenizers` (built by
//! `tests/tokenizers/make_cases.py` with Hugging Face `tokenizers`): conversion into a small
//! random-weight model, and the reference cases.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chispa_core::format::DType;
use chispa_tools::aligned::AlignedBytes;
use chispa_tools::source::{Params, SourceModel};
use chispa_tools::writer::{self, Groups, WriteOptions};
use chispa_tools::{hf_tokenizer, synth};
use serde::Deserialize;

/// The folder of a tokenizer in `tests/data/tokenizers`.
pub fn tokenizer_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tokenizers").join(name)
}

/// One reference case: the text, the ids `tokenizers` gives, the text it decodes them to.
#[derive(Debug, Deserialize)]
pub struct Case {
    /// Input text.
    pub text: String,
    /// Ids from `tokenizers` (with its post-processor's BOS).
    pub ids: Vec<u32>,
    /// `tokenizers`' decoding of `ids`, special tokens kept.
    pub decoded: String,
}

#[derive(Debug, Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

/// The reference cases of tokenizer `name`.
///
/// # Errors
/// A missing or malformed `cases.json` (run `tests/tokenizers/make_cases.py`).
pub fn cases(name: &str) -> Result<Vec<Case>> {
    let path = tokenizer_dir(name).join("cases.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("reading {} (made by tests/tokenizers/make_cases.py)", path.display())
    })?;
    Ok(serde_json::from_str::<Cases>(&text)?.cases)
}

/// Tiny Llama hyper-parameters over a vocabulary of `vocab_size`.
pub fn tiny_params(vocab_size: usize) -> Params {
    chispa_tools::synth::tiny_llama(vocab_size)
}

/// A random-weight tiny Llama (llama-tiny's shapes) with the tokenizer of the Hugging Face
/// folder `dir`, as a `.chispa` image; and the line the converter printed for the tokenizer.
///
/// # Errors
/// Whatever the converter refuses.
pub fn model_with_tokenizer(dir: &Path, dtype: DType) -> Result<(AlignedBytes, String)> {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let vocab_size =
        config.get("vocab_size").and_then(serde_json::Value::as_u64).context("vocab_size")?;
    let (vocab, line) = hf_tokenizer::read(dir, &config, vocab_size as usize)?;
    let random = synth::random_model(tiny_params(vocab_size as usize), 7, 0.3)?;
    let model = SourceModel { vocab, ..random };
    let opts = WriteOptions { dtype, groups: Groups::Fixed, ..Default::default() };
    Ok((writer::build(&model, &opts, |_, _| {})?.0, line))
}

//! Pieces every subcommand shares: model arguments and loading, encoding, rates, stdout.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chispa_core::format::DType;
use chispa_core::kernels::{self, Backend, EnvBackendError, ALL_BACKENDS};
use chispa_core::{KvType, Model, StopReason};
use chispa_runner::load::{self, Loaded, ModelSource};
use chispa_runner::usage::UsageError;
use chispa_tools::writer::WriteOptions;
use clap::{Args, ValueEnum};

#[derive(Args, Debug)]
pub(crate) struct ModelArgs {
    /// Tokenizer of a llama2.c checkpoint (e.g. tok512.bin); an error with any other MODEL.
    #[arg(long)]
    pub(crate) tokenizer: Option<PathBuf>,
    /// Weights to convert a checkpoint (llama2.c, Hugging Face, GGUF) to [default: int8]; an
    /// error with a .chispa MODEL.
    #[arg(long, value_enum)]
    pub(crate) dtype: Option<Dtype>,
    /// Convert a Hugging Face folder or GGUF file again, without the cache of converted models
    /// ($CHISPA_CACHE, else $XDG_CACHE_HOME/chispa or ~/.cache/chispa).
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Matmul kernels: scalar (the specification), avx2, avx512, neon, dsp, mve; default: the
    /// best this CPU has, or $CHISPA_BACKEND. Every backend gives the same bits.
    #[arg(long, value_parser = parse_backend)]
    pub(crate) backend: Option<Backend>,
    /// Threads for the int8 matmuls (rows split across them; same bits as one thread).
    #[arg(long, short = 't', value_name = "N", default_value_t = 1, value_parser = parse_threads)]
    pub(crate) threads: u16,
}

fn parse_threads(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err("expected a thread count from 1 to 256 (-t is --threads, as in llama.cpp; \
                  the temperature is --temp)"
            .into()),
    }
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    Backend::from_name(s).ok_or_else(|| {
        let names: Vec<_> = ALL_BACKENDS.iter().map(|b| b.name()).collect();
        format!("unknown backend {s:?} (one of {})", names.join(", "))
    })
}

/// Selects the kernels: `--backend`, else `$CHISPA_BACKEND`, else the best the CPU has.
pub(crate) fn select_backend(choice: Option<Backend>) -> Result<Backend> {
    let b = match choice {
        Some(b) => b,
        None => match kernels::backend_from_env() {
            Ok(Some(b)) => b,
            Ok(None) => Backend::best(),
            Err(EnvBackendError::Unknown) => {
                let names: Vec<_> = ALL_BACKENDS.iter().map(|b| b.name()).collect();
                let value = std::env::var("CHISPA_BACKEND").unwrap_or_default();
                return Err(UsageError(format!(
                    "CHISPA_BACKEND={value:?} names no backend (one of {})",
                    names.join(", ")
                ))
                .into());
            }
            Err(EnvBackendError::Unsupported(b)) => bail!("{}", kernels::Unsupported(b)),
        },
    };
    chispa_runner::threads::select(kernels::Kernels::for_backend(b)?);
    Ok(b)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Dtype {
    /// Symmetric int8, f16 group scales (what the firmware runs).
    Int8,
    /// 32-bit float reference.
    F32,
}

/// KV-cache element type on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Kv {
    /// 32-bit float (exact, the reference).
    F32,
    /// Half precision.
    F16,
    /// int8, one scale per cached row.
    Int8,
    /// The bytes of int8, more accurate: Hadamard-rotated heads, 10-bit keys, 7-bit values.
    K10v7,
}

impl From<Kv> for KvType {
    fn from(k: Kv) -> Self {
        match k {
            Kv::F32 => KvType::F32,
            Kv::F16 => KvType::F16,
            Kv::Int8 => KvType::I8,
            Kv::K10v7 => KvType::K10V7,
        }
    }
}

pub(crate) fn load_model(path: Option<PathBuf>, m: &ModelArgs) -> Result<Loaded> {
    select_backend(m.backend)?;
    chispa_runner::threads::set_threads(m.threads as usize)
        .with_context(|| format!("cannot start {} threads", m.threads))?;
    let dtype = match m.dtype.unwrap_or(Dtype::Int8) {
        Dtype::Int8 => DType::I8,
        Dtype::F32 => DType::F32,
    };
    load::load(&ModelSource {
        path,
        tokenizer: m.tokenizer.clone(),
        convert: WriteOptions::new(dtype, None),
        convert_given: m.dtype.is_some(),
        no_cache: m.no_cache,
    })
}

/// Encodes `text`; with a `context`, a text that cannot fit it by its length alone (see
/// [`chispa_core::Tokenizer::min_tokens`]) is refused before any encoding.
pub(crate) fn encode(
    model: &Model<'_>,
    text: &str,
    bos: bool,
    context: Option<usize>,
) -> Result<Vec<u32>> {
    let tok = model.tokenizer();
    let extra = usize::from(bos && tok.bos().is_some());
    if let Some(context) = context {
        let least = tok.min_tokens(text).saturating_add(extra);
        if least > context {
            bail!(
                "the prompt has at least {least} tokens ({} bytes, at most {} a token) but the context holds {context}; shorten it",
                text.len(),
                tok.max_piece_len()
            );
        }
    }
    let cap = text.len().checked_add(3).context("the text is too long")?;
    let mut ids = vec![0u32; cap];
    let scratch_len = cap
        .checked_mul(chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN)
        .context("the text is too long")?;
    let mut scratch = vec![0u32; scratch_len];
    let n =
        tok.encode(text, bos, false, &mut ids, &mut scratch).context("cannot encode the text")?;
    ids.truncate(n);
    Ok(ids)
}

pub(crate) fn rate(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

pub(crate) fn reason_text(r: StopReason) -> String {
    match r {
        StopReason::MaxTokens => "max tokens".into(),
        StopReason::EndOfSequence { id } => format!("end of sequence (token {id})"),
        StopReason::ContextFull => "context full".into(),
    }
}

/// Output that ends quietly when the reader goes away (`chispa run | head`): `Ok(false)`;
/// any other write error is [`chispa_tools::stdout::error`].
pub(crate) fn out_ok(r: io::Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if chispa_tools::stdout::is_broken_pipe(&e) => Ok(false),
        Err(e) => Err(chispa_tools::stdout::error(e)),
    }
}

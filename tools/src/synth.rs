//! Random-weight models in the shapes of llama2.c's TinyStories checkpoints, for benchmarks:
//! the speed of a shape does not depend on what its weights learned.

use anyhow::{bail, Result};
use chispa_core::format::{Arch, TokenizerKind};

use crate::source::{canonical_names, Params, SourceModel, Tensor, Vocab};

/// The shapes `chispa-convert synth --shape` knows (llama2.c's `model.py` configurations).
pub const SHAPES: [&str; 3] = ["stories15M", "stories42M", "stories110M"];

/// Hyper-parameters of a named shape, or of a custom one written as `key=value` pairs
/// separated by commas: `dim`, `hidden`, `layers`, `heads` (required), `kv_heads` (default
/// `heads`), `vocab` (default 512, at least 259), `context` (default 256) and `arch`
/// (`llama`, the default, or `gpt2`), e.g. `dim=64,hidden=172,layers=2,heads=8,kv_heads=4`.
///
/// # Errors
/// A name not in [`SHAPES`], or a custom shape with an unknown key, a value that is not a
/// number, or a required key missing.
pub fn params(shape: &str) -> Result<Params> {
    if shape.contains('=') {
        return custom(shape);
    }
    // (dim, hidden, layers, heads, context)
    let (dim, hidden_dim, n_layers, n_heads, max_seq_len) = match shape {
        "stories15M" => (288, 768, 6, 6, 256),
        "stories42M" => (512, 1376, 8, 8, 1024),
        "stories110M" => (768, 2048, 12, 12, 1024),
        _ => bail!(
            "unknown shape {shape:?} (one of {}, or key=value pairs such as dim=64,hidden=172,layers=2,heads=8)",
            SHAPES.join(", ")
        ),
    };
    Ok(llama(dim, hidden_dim, n_layers, n_heads, n_heads, 32_000, max_seq_len))
}

fn llama(
    dim: usize,
    hidden_dim: usize,
    n_layers: usize,
    n_heads: usize,
    n_kv_heads: usize,
    vocab_size: usize,
    max_seq_len: usize,
) -> Params {
    Params {
        arch: Arch::Llama,
        dim,
        hidden_dim,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim: 0,
        vocab_size,
        max_seq_len,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
        shared_classifier: true,
    }
}

/// A custom shape: `key=value,...` (see [`params`]).
fn custom(spec: &str) -> Result<Params> {
    let mut arch = Arch::Llama;
    let mut v: [Option<usize>; 7] = [None; 7];
    const KEYS: [&str; 7] = ["dim", "hidden", "layers", "heads", "kv_heads", "vocab", "context"];
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("shape {spec:?}: {pair:?} is not key=value");
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "arch" {
            arch = match value {
                "llama" => Arch::Llama,
                "gpt2" => Arch::Gpt2,
                _ => bail!("shape {spec:?}: arch={value}: use llama or gpt2"),
            };
            continue;
        }
        let Some(i) = KEYS.iter().position(|k| *k == key) else {
            bail!("shape {spec:?}: unknown key {key:?} (keys: arch, {})", KEYS.join(", "));
        };
        let n = value
            .parse()
            .map_err(|_| anyhow::anyhow!("shape {spec:?}: {key}={value} is not a number"))?;
        v[i] = Some(n);
    }
    let need =
        |i: usize| v[i].ok_or_else(|| anyhow::anyhow!("shape {spec:?}: {} is missing", KEYS[i]));
    let heads = need(3)?;
    let mut p = llama(
        need(0)?,
        need(1)?,
        need(2)?,
        heads,
        v[4].unwrap_or(heads),
        v[5].unwrap_or(512),
        v[6].unwrap_or(256),
    );
    if p.vocab_size < 259 {
        bail!("shape {spec:?}: vocab must be at least 259 (3 specials and 256 byte pieces)");
    }
    if arch == Arch::Gpt2 {
        if p.n_kv_heads != p.n_heads {
            bail!("shape {spec:?}: gpt2 has as many key/value heads as heads");
        }
        p.arch = Arch::Gpt2;
        p.norm_eps = 1e-5;
    }
    Ok(p)
}

/// A Llama-2-like vocabulary of `n` distinct pieces: `<unk>`, `<s>`, `</s>`, 256 byte pieces,
/// then made-up words.
fn vocab(n: usize) -> Vocab {
    let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    pieces.extend((0..256).map(|b| format!("<0x{b:02X}>").into_bytes()));
    let mut i = 0;
    while pieces.len() < n {
        pieces.push(format!("\u{2581}w{i}").into_bytes());
        i += 1;
    }
    pieces.truncate(n);
    let scores = (0..pieces.len()).map(|i| -(i as f32)).collect();
    Vocab {
        kind: TokenizerKind::ScoreBpe,
        pieces,
        scores,
        bos: Some(1),
        eos: Some(2),
        byte_fallback_base: Some(3),
        dummy_prefix: true,
        no_prefix_before_space: false,
        stop_ids: vec![1, 2],
        ext: crate::source::TokenizerExt::default(),
    }
}

/// A model of `shape` with weights uniform in ±0.05 (xorshift from `seed`) and unit norms.
///
/// # Errors
/// An unknown shape.
pub fn model(shape: &str, seed: u64) -> Result<SourceModel> {
    random_model(params(shape)?, seed, 0.05)
}

/// A model with `params`, weights uniform in ±`amplitude` (xorshift from `seed`) and unit
/// norms; the vocabulary as in [`model`] (`vocab_size` ≥ 259 for its byte pieces).
///
/// # Errors
/// Parameters outside the core's limits.
pub fn random_model(params: Params, seed: u64, amplitude: f32) -> Result<SourceModel> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * (2.0 * amplitude)
    };
    let tensors = canonical_names(&params)?
        .into_iter()
        .map(|(name, rows, cols)| {
            let data = if rows == 1 {
                vec![1.0; cols]
            } else {
                (0..rows * cols).map(|_| next()).collect()
            };
            Tensor { name, rows, cols, data }
        })
        .collect();
    Ok(SourceModel { vocab: vocab(params.vocab_size), params, tensors })
}

/// llama-tiny's hyper-parameters (dim 64, hidden 172, 2 layers, 8 heads, 4 KV heads, context
/// 256, tied head) over a vocabulary of `vocab_size`.
pub fn tiny_llama(vocab_size: usize) -> Params {
    Params {
        arch: Arch::Llama,
        dim: 64,
        hidden_dim: 172,
        n_layers: 2,
        n_heads: 8,
        n_kv_heads: 4,
        head_dim: 0,
        vocab_size,
        max_seq_len: 256,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
        shared_classifier: true,
    }
}

/// A random-weight instruct-shaped Llama ([`tiny_llama`]; weights ±0.3, seed 11) with the tokenizer, and chat
/// template, of the Hugging Face folder `dir` (`config.json` with `vocab_size`,
/// `tokenizer.json`, `tokenizer_config.json`): a chat model for tests, on the desktop and on
/// the boards.
///
/// # Errors
/// An unreadable or unsupported tokenizer, or one without a chat template.
pub fn instruct_model(dir: &std::path::Path) -> Result<SourceModel> {
    use anyhow::Context;
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let vocab_size = config
        .get("vocab_size")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("{}: no vocab_size", path.display()))?
        as usize;
    let (vocab, line) = crate::hf_tokenizer::read(dir, &config, vocab_size)?;
    if !line.contains("chat template") {
        bail!("{}: the tokenizer has no chat template ({line})", dir.display());
    }
    let random = random_model(tiny_llama(vocab_size), 11, 0.3)?;
    Ok(SourceModel { vocab, ..random })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_shapes() {
        let p = params("dim=64, hidden=172,layers=2,heads=8,kv_heads=4,vocab=300,context=128")
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            (p.dim, p.hidden_dim, p.n_layers, p.n_heads, p.n_kv_heads, p.vocab_size, p.max_seq_len),
            (64, 172, 2, 8, 4, 300, 128)
        );
        assert_eq!(p.arch, Arch::Llama);
        let g = params("arch=gpt2,dim=32,hidden=64,layers=1,heads=2")
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((g.arch, g.n_kv_heads, g.vocab_size), (Arch::Gpt2, 2, 512));
        for bad in [
            "dim=64",
            "dim=x,hidden=1,layers=1,heads=1",
            "dim=8,hidden=8,layers=1,heads=1,foo=2",
            "nope",
            "dim=8,hidden=8,layers=1,heads=1,vocab=10",
        ] {
            assert!(params(bad).is_err(), "{bad}");
        }
        assert!(model("dim=32,hidden=64,layers=1,heads=2,vocab=300", 1).is_ok());
        assert!(model("arch=gpt2,dim=32,hidden=64,layers=1,heads=2,vocab=300", 1).is_ok());
    }
}

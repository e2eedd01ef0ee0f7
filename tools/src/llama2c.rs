//! llama2.c legacy ("version 0") checkpoints and `tokenizer.bin` files.
//!
//! Checkpoint: seven little-endian `i32` (`dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//! vocab_size, seq_len`; a negative `vocab_size` means a separate classifier), then f32
//! tensors: embedding, and for all layers at once `rms_att, wq, wk, wv, wo, rms_ffn, w1, w2,
//! w3`, then `rms_final`, two unused RoPE tables (`seq_len * head_size / 2` each), and the
//! classifier when not shared. The file must be exactly that long.
//!
//! Tokenizer: an `i32` max token length, then per token an `f32` score, an `i32` length and
//! the bytes.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use anyhow::{bail, ensure, Context, Result};

use chispa_core::format::byte_groups;
use chispa_core::model::{MAX_DIM, MAX_LAYERS, MAX_SEQ, MAX_VOCAB};

use crate::source::{canonical_tensors, Converted, Params, SourceModel, Tensor, Vocab};

const HEADER_BYTES: usize = 7 * 4;

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn positive(name: &str, v: i32, max: u32) -> Result<usize> {
    ensure!(v > 0, "checkpoint header: {name} = {v}, must be positive");
    ensure!(
        v as u32 <= max,
        "checkpoint header: {name} = {v} is larger than chispa supports ({max})"
    );
    Ok(v as usize)
}

/// Reads the hyper-parameters of a checkpoint.
///
/// # Errors
/// A file shorter than its header or with non-positive or inconsistent dimensions.
pub fn read_params(ckpt: &[u8]) -> Result<Params> {
    ensure!(
        ckpt.len() >= HEADER_BYTES,
        "checkpoint is truncated: {} bytes, the header alone needs {HEADER_BYTES}",
        ckpt.len()
    );
    let mut h = [0i32; 7];
    for (v, b) in h.iter_mut().zip(byte_groups(ckpt)) {
        *v = i32::from_le_bytes(b);
    }
    let [dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab, seq_len] = h;
    ensure!(vocab != 0 && vocab != i32::MIN, "checkpoint header: vocab_size = {vocab}");
    let p = Params {
        dim: positive("dim", dim, MAX_DIM)?,
        hidden_dim: positive("hidden_dim", hidden_dim, MAX_DIM)?,
        n_layers: positive("n_layers", n_layers, MAX_LAYERS)?,
        n_heads: positive("n_heads", n_heads, MAX_DIM)?,
        n_kv_heads: positive("n_kv_heads", n_kv_heads, MAX_DIM)?,
        head_dim: 0,
        vocab_size: positive("vocab_size", vocab.saturating_abs(), MAX_VOCAB)?,
        max_seq_len: positive("seq_len", seq_len, MAX_SEQ)?,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
        shared_classifier: vocab > 0,
        arch: chispa_core::format::Arch::Llama,
    };
    ensure!(
        p.dim % p.n_heads == 0 && (p.dim / p.n_heads) % 2 == 0,
        "checkpoint header: dim {} is not a multiple of 2 × n_heads {}",
        p.dim,
        p.n_heads
    );
    ensure!(
        p.n_kv_heads <= p.n_heads && p.n_heads % p.n_kv_heads == 0,
        "checkpoint header: n_heads {} is not a multiple of n_kv_heads {}",
        p.n_heads,
        p.n_kv_heads
    );
    Ok(p)
}

/// Reads a checkpoint file and its tokenizer file ([`read`]), with what was recognised.
///
/// # Errors
/// Unreadable files, and what [`read`] refuses.
pub fn read_files(checkpoint: &std::path::Path, tokenizer: &std::path::Path) -> Result<Converted> {
    let model =
        read(&crate::output::read_input(checkpoint)?, &crate::output::read_input(tokenizer)?)?;
    let p = &model.params;
    let recognised = vec![
        format!(
            "llama2.c checkpoint: Llama, dim {}, hidden {}, layers {}, heads {} (kv {}), vocab {}, context {}, classifier {}",
            p.dim,
            p.hidden_dim,
            p.n_layers,
            p.n_heads,
            p.n_kv_heads,
            p.vocab_size,
            p.max_seq_len,
            if p.shared_classifier { "shared" } else { "separate" }
        ),
        format!(
            "llama2.c tokenizer.bin, {} pieces, byte fallback {}",
            model.vocab.pieces.len(),
            if model.vocab.byte_fallback_base.is_some() { "yes" } else { "no" }
        ),
    ];
    Ok(Converted { model, recognised, inputs: vec![checkpoint.into(), tokenizer.into()] })
}

/// Reads a checkpoint and its tokenizer into a [`SourceModel`].
///
/// # Errors
/// Size mismatches (truncated or over-long files), non-finite weights, and a tokenizer that
/// does not hold exactly `vocab_size` tokens.
pub fn read(ckpt: &[u8], tokenizer: &[u8]) -> Result<SourceModel> {
    let p = read_params(ckpt)?;
    let (dim, hidden, layers) = (p.dim, p.hidden_dim, p.n_layers);
    let kv_dim = dim * p.n_kv_heads / p.n_heads;
    let head_size = dim / p.n_heads;
    // Element counts in file order.
    let order: [(&str, usize); 13] = [
        ("tok_embeddings", p.vocab_size * dim),
        ("attention_norm", layers * dim),
        ("wq", layers * dim * dim),
        ("wk", layers * kv_dim * dim),
        ("wv", layers * kv_dim * dim),
        ("wo", layers * dim * dim),
        ("ffn_norm", layers * dim),
        ("w1", layers * hidden * dim),
        ("w2", layers * dim * hidden),
        ("w3", layers * hidden * dim),
        ("norm", dim),
        ("freq_cis", p.max_seq_len * head_size),
        ("output", if p.shared_classifier { 0 } else { p.vocab_size * dim }),
    ];
    let floats: usize = order.iter().map(|(_, n)| n).sum();
    let expected = HEADER_BYTES + floats * 4;
    if ckpt.len() < expected {
        bail!(
            "checkpoint is truncated: {} bytes, a model with this header needs {expected}",
            ckpt.len()
        );
    }
    ensure!(
        ckpt.len() == expected,
        "checkpoint has {} bytes, {} more than this header implies ({expected}); is it a newer (version 1+) export?",
        ckpt.len(),
        ckpt.len() - expected
    );
    let mut at = HEADER_BYTES;
    let mut chunks = std::collections::HashMap::new();
    for (name, n) in order {
        let bytes = ckpt
            .get(at..at + n * 4)
            .with_context(|| format!("checkpoint is truncated in tensor {name}"))?;
        let data: Vec<f32> = byte_groups(bytes).map(f32::from_le_bytes).collect();
        if let Some((i, v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            bail!("checkpoint tensor {name}: element {i} is {v} (not finite)");
        }
        chunks.insert(name, data);
        at += n * 4;
    }
    let mut tensors = Vec::new();
    for t in canonical_tensors(&p)? {
        // llama2.c stores each kind for all layers at once, under the canonical name.
        let (key, layer, rows, cols, name) = (t.kind.name(), t.layer, t.rows, t.cols, t.name);
        let all = chunks.get(key).with_context(|| format!("no tensor {key}"))?;
        let n = rows * cols;
        let data = all
            .get(layer * n..(layer + 1) * n)
            .with_context(|| format!("checkpoint tensor {key} has no layer {layer}"))?
            .to_vec();
        tensors.push(Tensor { name, rows, cols, data });
    }
    let vocab = read_tokenizer(tokenizer, p.vocab_size)?;
    Ok(SourceModel { params: p, tensors, vocab })
}

/// Reads a llama2.c `tokenizer.bin` holding exactly `vocab_size` tokens.
///
/// # Errors
/// Truncation, negative lengths, non-finite scores, or a token count other than `vocab_size`.
pub fn read_tokenizer(b: &[u8], vocab_size: usize) -> Result<Vocab> {
    let max_len = read_i32(b, 0).context("tokenizer is empty or truncated")?;
    ensure!(max_len > 0, "tokenizer: max token length {max_len} is not positive");
    let mut at = 4;
    // Each token takes at least 8 bytes: never reserve more than the file can hold.
    let cap = vocab_size.min(b.len() / 8);
    let mut pieces = Vec::with_capacity(cap);
    let mut scores = Vec::with_capacity(cap);
    for id in 0..vocab_size {
        let (Some(score), Some(len)) = (read_i32(b, at), read_i32(b, at + 4)) else {
            bail!("tokenizer holds {id} tokens, the model's vocabulary has {vocab_size}");
        };
        let score = f32::from_bits(score as u32);
        ensure!(score.is_finite(), "tokenizer: token {id} has a non-finite score");
        ensure!(
            (0..=max_len).contains(&len),
            "tokenizer: token {id} has length {len} (max {max_len})"
        );
        let start = at + 8;
        let Some(piece) = b.get(start..start + len as usize) else {
            bail!("tokenizer is truncated in token {id}");
        };
        pieces.push(piece.to_vec());
        scores.push(score);
        at = start + len as usize;
    }
    ensure!(
        at == b.len(),
        "tokenizer has {} bytes after token {}: it holds more tokens than the model's vocabulary of {vocab_size}",
        b.len() - at,
        vocab_size - 1
    );
    let byte_fallback_base = pieces
        .get(3..3 + 256)
        .is_some_and(|bytes| {
            bytes.iter().enumerate().all(|(i, p)| *p == format!("<0x{i:02X}>").as_bytes())
        })
        .then_some(3);
    Ok(Vocab {
        kind: chispa_core::format::TokenizerKind::ScoreBpe,
        pieces,
        scores,
        bos: Some(1),
        eos: Some(2),
        byte_fallback_base,
        dummy_prefix: true,
        no_prefix_before_space: false,
        // run.c ends a sample when the model emits BOS (id 1).
        stop_ids: vec![1],
        ext: crate::source::TokenizerExt::default(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn header(v: [i32; 7]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(read_params(&[0; 5]).is_err());
        assert!(read_params(&header([0, 1, 1, 1, 1, 1, 1])).is_err());
        assert!(read_params(&header([6, 1, 1, 2, 1, 1, 1])).is_err()); // head size 3 is odd
        assert!(read_params(&header([8, 1, 1, 2, 3, 1, 1])).is_err()); // 2 heads, 3 kv heads
        let p = read_params(&header([8, 4, 1, 2, 1, -5, 3])).expect("valid header");
        assert!(!p.shared_classifier);
        assert_eq!(p.vocab_size, 5);
    }

    #[test]
    fn tokenizer_count_must_match() {
        let mut t = 4i32.to_le_bytes().to_vec();
        for piece in [&b"a"[..], b"b"] {
            t.extend(0f32.to_le_bytes());
            t.extend((piece.len() as i32).to_le_bytes());
            t.extend(piece);
        }
        assert!(read_tokenizer(&t, 2).is_ok());
        assert!(read_tokenizer(&t, 3).is_err());
        assert!(read_tokenizer(&t, 1).is_err());
    }
}

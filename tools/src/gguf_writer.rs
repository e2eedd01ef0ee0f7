//! A small GGUF v3 writer for tests and fuzz seeds: turns a converted Llama [`SourceModel`]
//! into the file llama.cpp's converter would write (names, metadata keys, `[cols, rows]` dims,
//! Q/K already in adjacent-pair RoPE order, sentencepiece-style vocabulary with `▁`), so
//! `chispa-convert gguf` is tested on files made at test time and never committed.

use crate::gguf::gguf_name;
use crate::source::{canonical_tensors, SourceModel};

/// Tensor storage in the written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufType {
    /// Every tensor f32.
    F32,
    /// Matrices Q8_0 (F16 when a row is not whole blocks of 32, as llama.cpp falls back);
    /// norms f32.
    Q8_0,
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

enum V<'a> {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(&'a str),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn kv(out: &mut Vec<u8>, key: &str, v: V<'_>) {
    string(out, key);
    match v {
        V::U32(x) => {
            out.extend(4u32.to_le_bytes());
            out.extend(x.to_le_bytes());
        }
        V::F32(x) => {
            out.extend(6u32.to_le_bytes());
            out.extend(x.to_le_bytes());
        }
        V::Bool(x) => {
            out.extend(7u32.to_le_bytes());
            out.push(x as u8);
        }
        V::Str(s) => {
            out.extend(8u32.to_le_bytes());
            string(out, s);
        }
        V::Strs(v) => {
            out.extend(9u32.to_le_bytes());
            out.extend(8u32.to_le_bytes());
            out.extend((v.len() as u64).to_le_bytes());
            v.iter().for_each(|s| string(out, s));
        }
        V::F32s(v) => {
            out.extend(9u32.to_le_bytes());
            out.extend(6u32.to_le_bytes());
            out.extend((v.len() as u64).to_le_bytes());
            v.iter().for_each(|x| out.extend(x.to_le_bytes()));
        }
        V::I32s(v) => {
            out.extend(9u32.to_le_bytes());
            out.extend(5u32.to_le_bytes());
            out.extend((v.len() as u64).to_le_bytes());
            v.iter().for_each(|x| out.extend(x.to_le_bytes()));
        }
    }
}

fn q8_0(data: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in data.chunks(32) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|x| (x * inv).round() as i8 as u8));
    }
    out
}

/// A `tokenizer.ggml.model = gpt2` tokenizer, as llama.cpp's converter writes it.
#[derive(Clone, Debug, Default)]
pub struct Gpt2Tokenizer {
    /// Token strings by id (GPT-2 byte-mapped; added tokens as their text).
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (1 normal, 3 control, 4 user-defined).
    pub token_types: Vec<i32>,
    /// Merges `"a b"` in rank order.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
    /// Beginning-of-sequence id, prepended when set.
    pub bos: Option<u32>,
    /// End-of-sequence id.
    pub eos: Option<u32>,
}

/// The GGUF bytes of a Llama model.
///
/// # Errors
/// Parameters outside the core's limits (the tensor names come from the canonical list).
pub fn write(m: &SourceModel, ty: GgufType) -> anyhow::Result<Vec<u8>> {
    write_with(m, ty, None)
}

/// The GGUF bytes of a Llama model, with `gpt2` instead of the model's own vocabulary.
///
/// # Errors
/// As [`write()`].
pub fn write_with(
    m: &SourceModel,
    ty: GgufType,
    gpt2: Option<&Gpt2Tokenizer>,
) -> anyhow::Result<Vec<u8>> {
    let p = &m.params;
    let v = &m.vocab;
    let mut meta = Vec::new();
    let mut n_meta = 0u64;
    let mut add = |k: &str, val: V<'_>| {
        kv(&mut meta, k, val);
        n_meta += 1;
    };
    add("general.architecture", V::Str("llama"));
    add("general.alignment", V::U32(32));
    add("llama.context_length", V::U32(p.max_seq_len as u32));
    add("llama.embedding_length", V::U32(p.dim as u32));
    add("llama.block_count", V::U32(p.n_layers as u32));
    add("llama.feed_forward_length", V::U32(p.hidden_dim as u32));
    add("llama.attention.head_count", V::U32(p.n_heads as u32));
    add("llama.attention.head_count_kv", V::U32(p.n_kv_heads as u32));
    add("llama.rope.dimension_count", V::U32((p.dim / p.n_heads) as u32));
    add("llama.rope.freq_base", V::F32(p.rope_theta));
    add("llama.attention.layer_norm_rms_epsilon", V::F32(p.norm_eps));
    if let Some(t) = gpt2 {
        add("tokenizer.ggml.model", V::Str("gpt2"));
        add("tokenizer.ggml.pre", V::Str(&t.pre));
        add("tokenizer.ggml.tokens", V::Strs(t.tokens.clone()));
        add("tokenizer.ggml.token_type", V::I32s(t.token_types.clone()));
        add("tokenizer.ggml.merges", V::Strs(t.merges.clone()));
        if let Some(b) = t.bos {
            add("tokenizer.ggml.bos_token_id", V::U32(b));
        }
        if let Some(e) = t.eos {
            add("tokenizer.ggml.eos_token_id", V::U32(e));
        }
        add("tokenizer.ggml.add_bos_token", V::Bool(t.bos.is_some()));
        if let Some(c) = &t.chat_template {
            add("tokenizer.chat_template", V::Str(c));
        }
    }
    let meta_llama = gpt2.is_none();
    let mut add = |k: &str, val: V<'_>| {
        if meta_llama {
            add(k, val);
        }
    };
    add("tokenizer.ggml.model", V::Str("llama"));
    let tokens: Vec<String> =
        v.pieces.iter().map(|b| String::from_utf8_lossy(b).replace(' ', "▁")).collect();
    let types: Vec<i32> = (0..tokens.len() as u32)
        .map(|id| {
            if v.byte_fallback_base.is_some_and(|b| (b..b + 256).contains(&id)) {
                6
            } else if Some(id) == v.bos || Some(id) == v.eos || id == 0 {
                3
            } else {
                1
            }
        })
        .collect();
    add("tokenizer.ggml.tokens", V::Strs(tokens));
    add("tokenizer.ggml.scores", V::F32s(v.scores.clone()));
    add("tokenizer.ggml.token_type", V::I32s(types));
    if let Some(b) = v.bos {
        add("tokenizer.ggml.bos_token_id", V::U32(b));
    }
    if let Some(e) = v.eos {
        add("tokenizer.ggml.eos_token_id", V::U32(e));
    }
    add("tokenizer.ggml.add_bos_token", V::Bool(v.bos.is_some()));

    let mut infos = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let canonical = canonical_tensors(&m.params)?;
    for (t, c) in m.tensors.iter().zip(&canonical) {
        let (code, bytes) = match ty {
            GgufType::Q8_0 if t.rows > 1 && t.cols % 32 == 0 => (8u32, q8_0(&t.data)),
            GgufType::Q8_0 if t.rows > 1 => {
                (1, t.data.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect())
            }
            _ => (0, t.data.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        data.resize(data.len().div_ceil(32) * 32, 0);
        string(&mut infos, &gguf_name(c.kind, c.layer));
        let dims: Vec<u64> =
            if t.rows == 1 { vec![t.cols as u64] } else { vec![t.cols as u64, t.rows as u64] };
        infos.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| infos.extend(d.to_le_bytes()));
        infos.extend(code.to_le_bytes());
        infos.extend((data.len() as u64).to_le_bytes());
        data.extend(bytes);
    }
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((m.tensors.len() as u64).to_le_bytes());
    out.extend(n_meta.to_le_bytes());
    out.extend(meta);
    out.extend(infos);
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.extend(data);
    Ok(out)
}

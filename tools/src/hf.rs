//! Hugging Face checkpoint folders: `config.json`, `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`) and `tokenizer.json`.
//!
//! Supported: `LlamaForCausalLM` (tied or untied head, grouped-query attention, `rope_theta`
//! in `rope_parameters` or at the top level). Tensors may be f32, f16 or bf16; they are
//! widened to f32 here and quantized by the writer.
//!
//! RoPE: Hugging Face rotates the pairs `(i, i + head_size/2)` of each head (`rotate_half`);
//! chispa (like llama2.c and Meta's original code) rotates adjacent pairs `(2i, 2i + 1)`. The
//! two are the same rotation on permuted coordinates, so the rows of `wq` and `wk` are
//! permuted once here ([`rotate_half_to_adjacent`]) and the core has one RoPE. Attention
//! scores are dot products of q and k under the same permutation, so they do not change.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use chispa_core::format::byte_groups;

use crate::hf_tokenizer;
use crate::source::{canonical_names, Params, SourceModel, Tensor};

/// A converted folder and what was recognised in it (one line per fact, for the CLI).
#[derive(Debug)]
pub struct Converted {
    /// The model, ready for the writer.
    pub model: SourceModel,
    /// What was recognised: architecture, shapes, tensor types, tokenizer.
    pub recognised: Vec<String>,
    /// Every file read (the configuration, the checkpoint files, the tokenizer files).
    pub inputs: Vec<PathBuf>,
}

/// All tensors of a checkpoint, widened to f32.
#[derive(Debug, Default)]
pub struct Checkpoint {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    /// Element types seen (`F32`, `F16`, `BF16`).
    pub dtypes: BTreeSet<String>,
    /// Files read.
    pub files: Vec<PathBuf>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = crate::output::read_input_text(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn widen(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => byte_groups(data).map(f32::from_le_bytes).collect(),
        Dtype::F16 => byte_groups(data).map(|b| half::f16::from_le_bytes(b).to_f32()).collect(),
        Dtype::BF16 => byte_groups(data).map(|b| half::bf16::from_le_bytes(b).to_f32()).collect(),
        other => bail!("tensor {name}: element type {other:?} is not supported (f32, f16, bf16)"),
    })
}

/// The shard `name` of `weight_map[tensor]`: a relative path inside `dir` (no `..`, not
/// absolute) to a regular file (checked before it is opened: a FIFO or device never is).
fn shard_path(dir: &Path, tensor: &str, name: &str) -> Result<PathBuf> {
    use std::path::Component;
    let rel = Path::new(name);
    let inside = !name.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    ensure!(
        inside,
        "model.safetensors.index.json: weight_map[{tensor:?}] = {name:?} is not a file inside the folder"
    );
    let path = dir.join(rel);
    let meta = std::fs::metadata(&path).with_context(|| {
        format!(
            "model.safetensors.index.json: weight_map[{tensor:?}] = {name:?}: cannot read {}",
            path.display()
        )
    })?;
    ensure!(
        meta.is_file(),
        "model.safetensors.index.json: weight_map[{tensor:?}] = {name:?} is not a regular file"
    );
    Ok(path)
}

impl Checkpoint {
    /// Reads `model.safetensors`, or every shard named by `model.safetensors.index.json`.
    ///
    /// # Errors
    /// No checkpoint in `dir`, unreadable or malformed files, unsupported element types.
    pub fn load(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let files: Vec<PathBuf> = if index.is_file() {
            let v = read_json(&index)?;
            let map = v
                .get("weight_map")
                .and_then(Value::as_object)
                .context("model.safetensors.index.json: no \"weight_map\" object")?;
            let mut names = BTreeSet::new();
            for (tensor, v) in map {
                let name = v.as_str().with_context(|| {
                    format!("model.safetensors.index.json: weight_map[{tensor:?}] is {v}, expected a file name")
                })?;
                names.insert(shard_path(dir, tensor, name)?);
            }
            ensure!(!names.is_empty(), "model.safetensors.index.json: empty \"weight_map\"");
            names.into_iter().collect()
        } else if single.is_file() {
            vec![single]
        } else {
            bail!(
                "{}: neither model.safetensors nor model.safetensors.index.json found",
                dir.display()
            );
        };
        let mut ck = Checkpoint::default();
        for file in &files {
            let bytes = crate::output::read_input(file)?;
            let st = SafeTensors::deserialize(&bytes)
                .with_context(|| format!("{} is not a valid safetensors file", file.display()))?;
            for (name, view) in st.iter() {
                ck.dtypes.insert(format!("{:?}", view.dtype()));
                let data = widen(name, view.dtype(), view.data())?;
                ck.tensors.insert(name.to_string(), (view.shape().to_vec(), data));
            }
        }
        ck.files = files;
        Ok(ck)
    }

    /// Whether a tensor of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Removes and returns tensor `name`, checking its shape.
    ///
    /// # Errors
    /// The tensor is missing or has another shape.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (have, data) =
            self.tensors.remove(name).with_context(|| format!("missing tensor {name}"))?;
        ensure!(have == shape, "tensor {name} has shape {have:?}, expected {shape:?}");
        Ok(data)
    }

    /// Names not taken yet, sorted.
    pub fn remaining(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tensors.keys().cloned().collect();
        v.sort();
        v
    }
}

/// A key of `config.json`.
fn key<'a>(config: &'a Value, name: &str) -> Option<&'a Value> {
    config.get(name).filter(|v| !v.is_null())
}

fn usize_key(config: &Value, name: &str) -> Result<usize> {
    let v = key(config, name).with_context(|| format!("config.json: missing key \"{name}\""))?;
    let n = v.as_u64().with_context(|| {
        format!("config.json: \"{name}\" is {v}, expected a non-negative integer")
    })?;
    ensure!(n > 0, "config.json: \"{name}\" is 0");
    usize::try_from(n).with_context(|| format!("config.json: \"{name}\" = {n} is too large"))
}

fn f32_key(config: &Value, name: &str) -> Result<Option<f32>> {
    match key(config, name) {
        None => Ok(None),
        Some(v) => {
            let x = v
                .as_f64()
                .with_context(|| format!("config.json: \"{name}\" is {v}, expected a number"))?;
            Ok(Some(x as f32))
        }
    }
}

/// A float key that must be finite as an f32 and within `ok` (described by `expected`).
fn checked_f32(v: f32, name: &str, ok: impl Fn(f32) -> bool, expected: &str) -> Result<f32> {
    ensure!(v.is_finite() && ok(v), "config.json: \"{name}\" is {v:e}, expected {expected}");
    Ok(v)
}

/// Permutes the rows of a `[n_heads * head_size, cols]` projection from Hugging Face's
/// `rotate_half` pairing `(i, i + head_size/2)` to adjacent pairs `(2i, 2i + 1)`: new row
/// `2i` of each head is old row `i`, new row `2i + 1` is old row `i + head_size/2`.
///
/// # Errors
/// `w` holds fewer than `n_heads * head_size` rows of `cols`.
pub fn rotate_half_to_adjacent(
    w: &[f32],
    n_heads: usize,
    head_size: usize,
    cols: usize,
) -> Result<Vec<f32>> {
    let half = head_size / 2;
    let mut out = vec![0.0; w.len()];
    let row = |r: usize| r * cols..(r + 1) * cols;
    for h in 0..n_heads {
        for i in 0..half {
            for (new, old) in [(2 * i, i), (2 * i + 1, i + half)] {
                let (dst, src) = (row(h * head_size + new), row(h * head_size + old));
                let (Some(dst), Some(src)) = (out.get_mut(dst), w.get(src)) else {
                    bail!(
                        "projection of {} values is smaller than {n_heads} heads × {head_size} rows × {cols}",
                        w.len()
                    );
                };
                dst.copy_from_slice(src);
            }
        }
    }
    Ok(out)
}

/// The architecture named by `config.json`.
fn architecture(config: &Value) -> Result<String> {
    let archs = key(config, "architectures")
        .and_then(Value::as_array)
        .context("config.json: missing key \"architectures\"")?;
    let first =
        archs.first().and_then(Value::as_str).context("config.json: \"architectures\" is empty")?;
    Ok(first.to_string())
}

/// Converts a Hugging Face folder.
///
/// # Errors
/// An unsupported architecture or configuration (the message names the key), missing
/// tensors, shape mismatches, and a tokenizer that does not fit the vocabulary.
pub fn read_dir(dir: &Path) -> Result<Converted> {
    ensure!(dir.is_dir(), "{}: not a directory", dir.display());
    let config = read_json(&dir.join("config.json"))?;
    let arch = architecture(&config)?;
    let mut converted = match arch.as_str() {
        "LlamaForCausalLM" => read_llama(dir, &config),
        "GPT2LMHeadModel" => read_gpt2(dir, &config),
        other => bail!(
            "config.json: architecture \"{other}\" is not supported (supported: LlamaForCausalLM, GPT2LMHeadModel)"
        ),
    }?;
    for name in
        ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json"]
    {
        let p = dir.join(name);
        if p.is_file() {
            converted.inputs.push(p);
        }
    }
    Ok(converted)
}

fn rope_theta(config: &Value) -> Result<(f32, &'static str)> {
    if let Some(rp) = key(config, "rope_parameters") {
        if let Some(t) = rp.get("rope_type").and_then(Value::as_str) {
            ensure!(
                t == "default",
                "config.json: rope_parameters.rope_type \"{t}\" is not supported (only \"default\")"
            );
        }
        let theta = f32_key(rp, "rope_theta")?
            .context("config.json: rope_parameters has no \"rope_theta\"")?;
        return Ok((theta, "rope_parameters.rope_theta"));
    }
    if let Some(s) = key(config, "rope_scaling") {
        let t = s.get("rope_type").or_else(|| s.get("type")).and_then(Value::as_str);
        ensure!(
            t == Some("default"),
            "config.json: rope_scaling {s} is not supported (only unscaled RoPE)"
        );
    }
    Ok(match f32_key(config, "rope_theta")? {
        Some(t) => (t, "rope_theta"),
        None => (10000.0, "default 10000"),
    })
}

fn read_llama(dir: &Path, config: &Value) -> Result<Converted> {
    if let Some(act) = key(config, "hidden_act").and_then(Value::as_str) {
        ensure!(act == "silu", "config.json: hidden_act \"{act}\" is not supported (only silu)");
    }
    for flag in ["attention_bias", "mlp_bias"] {
        ensure!(
            key(config, flag).and_then(Value::as_bool) != Some(true),
            "config.json: \"{flag}\": true is not supported (Llama without biases only)"
        );
    }
    let dim = usize_key(config, "hidden_size")?;
    let n_heads = usize_key(config, "num_attention_heads")?;
    let n_kv_heads = match key(config, "num_key_value_heads") {
        Some(_) => usize_key(config, "num_key_value_heads")?,
        None => n_heads,
    };
    ensure!(
        dim % n_heads == 0,
        "config.json: hidden_size {dim} is not a multiple of num_attention_heads {n_heads}"
    );
    let head_size = dim / n_heads;
    if key(config, "head_dim").is_some() {
        let hd = usize_key(config, "head_dim")?;
        ensure!(
            hd == head_size,
            "config.json: head_dim {hd} differs from hidden_size / num_attention_heads = {head_size} (not supported)"
        );
    }
    ensure!(head_size % 2 == 0, "config.json: head size {head_size} is odd");
    ensure!(
        n_heads % n_kv_heads == 0,
        "config.json: num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv_heads}"
    );
    let (theta, theta_from) = rope_theta(config)?;
    let theta = checked_f32(theta, theta_from, |t| t > 1.0, "a finite number above 1")?;
    let eps = f32_key(config, "rms_norm_eps")?.unwrap_or(1e-6);
    let eps = checked_f32(eps, "rms_norm_eps", |e| e >= 0.0, "a finite number ≥ 0 (an f32)")?;
    let tied = key(config, "tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false);
    let p = Params {
        arch: chispa_core::format::Arch::Llama,
        dim,
        hidden_dim: usize_key(config, "intermediate_size")?,
        n_layers: usize_key(config, "num_hidden_layers")?,
        n_heads,
        n_kv_heads,
        vocab_size: usize_key(config, "vocab_size")?,
        max_seq_len: usize_key(config, "max_position_embeddings")?,
        rope_theta: theta,
        norm_eps: eps,
        shared_classifier: tied,
    };
    let kv_dim = head_size * n_kv_heads;

    let mut ck = Checkpoint::load(dir)?;
    let mut tensors = Vec::new();
    for (name, rows, cols) in canonical_names(&p)? {
        let hf = hf_llama_name(&name);
        let shape: Vec<usize> = if rows == 1 { vec![cols] } else { vec![rows, cols] };
        let mut data = ck.take(&hf, &shape)?;
        if name.ends_with(".wq") {
            data = rotate_half_to_adjacent(&data, n_heads, head_size, cols)?;
        } else if name.ends_with(".wk") {
            data = rotate_half_to_adjacent(&data, n_kv_heads, head_size, cols)?;
        }
        tensors.push(Tensor { name, rows, cols, data });
    }
    if tied && ck.has("lm_head.weight") {
        ck.take("lm_head.weight", &[p.vocab_size, dim])?; // tied: transformers ignores it
    }
    let unused: Vec<String> =
        ck.remaining().into_iter().filter(|n| !n.ends_with("rotary_emb.inv_freq")).collect();
    if let Some(first) = unused.first() {
        bail!("tensor {first} is not part of a Llama model (unsupported)");
    }

    let (vocab, tok_line) = hf_tokenizer::read(dir, config, p.vocab_size)?;
    let dtype_key = key(config, "torch_dtype").or_else(|| key(config, "dtype"));
    let recognised = vec![
        format!(
            "LlamaForCausalLM: dim {dim}, hidden {}, layers {}, heads {n_heads} (kv {n_kv_heads}, kv_dim {kv_dim}), vocab {}, context {}",
            p.hidden_dim, p.n_layers, p.vocab_size, p.max_seq_len
        ),
        format!(
            "rope_theta {theta} (from {theta_from}), rms_norm_eps {eps:e}, head {}, wq/wk rows permuted from rotate_half to adjacent pairs",
            if tied { "tied to the embedding" } else { "separate lm_head.weight" }
        ),
        format!(
            "tensors: {} in {} file(s), element types {} (config dtype {})",
            tensors.len(),
            ck.files.len(),
            ck.dtypes.iter().cloned().collect::<Vec<_>>().join(", "),
            dtype_key.map_or("not given".to_string(), Value::to_string)
        ),
        tok_line,
    ];
    Ok(Converted { model: SourceModel { params: p, tensors, vocab }, recognised, inputs: ck.files })
}

/// `[rows, cols]` → `[cols, rows]` (Conv1D weights are stored `[in, out]`).
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    // Column `c` of `w` is every `cols`-th value from `c`.
    (0..cols).flat_map(|c| w.iter().skip(c).step_by(cols).take(rows)).copied().collect()
}

fn read_gpt2(dir: &Path, config: &Value) -> Result<Converted> {
    if let Some(act) = key(config, "activation_function").and_then(Value::as_str) {
        ensure!(
            act == "gelu_new" || act == "gelu_pytorch_tanh",
            "config.json: activation_function \"{act}\" is not supported (gelu_new only)"
        );
    }
    ensure!(
        key(config, "scale_attn_by_inverse_layer_idx").and_then(Value::as_bool) != Some(true),
        "config.json: \"scale_attn_by_inverse_layer_idx\": true is not supported"
    );
    ensure!(
        key(config, "scale_attn_weights").and_then(Value::as_bool) != Some(false),
        "config.json: \"scale_attn_weights\": false is not supported"
    );
    let dim = usize_key(config, "n_embd")?;
    let n_heads = usize_key(config, "n_head")?;
    ensure!(
        dim % n_heads == 0 && (dim / n_heads) % 2 == 0,
        "config.json: n_embd {dim} is not a multiple of 2 × n_head {n_heads}"
    );
    let hidden = match key(config, "n_inner") {
        Some(_) => usize_key(config, "n_inner")?,
        None => 4 * dim,
    };
    let eps = f32_key(config, "layer_norm_epsilon")?.unwrap_or(1e-5);
    let eps = checked_f32(eps, "layer_norm_epsilon", |e| e >= 0.0, "a finite number ≥ 0 (an f32)")?;
    let tied = key(config, "tie_word_embeddings").and_then(Value::as_bool).unwrap_or(true);
    let p = Params {
        arch: chispa_core::format::Arch::Gpt2,
        dim,
        hidden_dim: hidden,
        n_layers: usize_key(config, "n_layer")?,
        n_heads,
        n_kv_heads: n_heads,
        vocab_size: usize_key(config, "vocab_size")?,
        max_seq_len: usize_key(config, "n_positions")?,
        rope_theta: 0.0,
        norm_eps: eps,
        shared_classifier: tied,
    };
    let mut ck = Checkpoint::load(dir)?;
    let prefix = if ck.has("transformer.wte.weight") { "transformer." } else { "" };
    let mut tensors = Vec::new();
    // Per layer: c_attn split into q, k, v (weights transposed to [out, in]) and biases.
    let mut qkv: Vec<[Vec<f32>; 3]> = Vec::new();
    let mut qkv_bias: Vec<[Vec<f32>; 3]> = Vec::new();
    for l in 0..p.n_layers {
        let w = ck.take(&format!("{prefix}h.{l}.attn.c_attn.weight"), &[dim, 3 * dim])?;
        let w = transpose(&w, dim, 3 * dim);
        let b = ck.take(&format!("{prefix}h.{l}.attn.c_attn.bias"), &[3 * dim])?;
        let split = |v: &[f32], n: usize| -> Result<[Vec<f32>; 3]> {
            let part = |i: usize| {
                v.get(i * n..(i + 1) * n)
                    .map(<[f32]>::to_vec)
                    .with_context(|| format!("layer {l}: c_attn is shorter than 3 × n_embd"))
            };
            Ok([part(0)?, part(1)?, part(2)?])
        };
        qkv.push(split(&w, dim * dim)?);
        qkv_bias.push(split(&b, dim)?);
    }
    for (name, rows, cols) in canonical_names(&p)? {
        let data = match name.split_once('.').map_or(("", name.as_str()), |(_, r)| ("l", r)) {
            ("", "tok_embeddings") => ck.take(&format!("{prefix}wte.weight"), &[rows, cols])?,
            ("", "pos_embeddings") => ck.take(&format!("{prefix}wpe.weight"), &[rows, cols])?,
            ("", "norm") => ck.take(&format!("{prefix}ln_f.weight"), &[cols])?,
            ("", "norm_bias") => ck.take(&format!("{prefix}ln_f.bias"), &[cols])?,
            ("", _) => ck.take("lm_head.weight", &[rows, cols])?,
            (_, rest) => {
                let (l, kind) = rest.split_once('.').unwrap_or((rest, ""));
                let li: usize = l.parse().unwrap_or(0);
                let t = |s: &str| format!("{prefix}h.{l}.{s}");
                let part = |all: &[[Vec<f32>; 3]], j: usize| -> Result<Vec<f32>> {
                    all.get(li)
                        .and_then(|p| p.get(j))
                        .cloned()
                        .with_context(|| format!("no c_attn for layer {li}"))
                };
                match kind {
                    "attention_norm" => ck.take(&t("ln_1.weight"), &[cols])?,
                    "attention_norm_bias" => ck.take(&t("ln_1.bias"), &[cols])?,
                    "wq" => part(&qkv, 0)?,
                    "wk" => part(&qkv, 1)?,
                    "wv" => part(&qkv, 2)?,
                    "bq" => part(&qkv_bias, 0)?,
                    "bk" => part(&qkv_bias, 1)?,
                    "bv" => part(&qkv_bias, 2)?,
                    "wo" => transpose(&ck.take(&t("attn.c_proj.weight"), &[dim, dim])?, dim, dim),
                    "bo" => ck.take(&t("attn.c_proj.bias"), &[dim])?,
                    "ffn_norm" => ck.take(&t("ln_2.weight"), &[cols])?,
                    "ffn_norm_bias" => ck.take(&t("ln_2.bias"), &[cols])?,
                    "w1" => {
                        transpose(&ck.take(&t("mlp.c_fc.weight"), &[dim, hidden])?, dim, hidden)
                    }
                    "b1" => ck.take(&t("mlp.c_fc.bias"), &[hidden])?,
                    "w2" => {
                        transpose(&ck.take(&t("mlp.c_proj.weight"), &[hidden, dim])?, hidden, dim)
                    }
                    _ => ck.take(&t("mlp.c_proj.bias"), &[dim])?,
                }
            }
        };
        tensors.push(Tensor { name, rows, cols, data });
    }
    if tied && ck.has("lm_head.weight") {
        ck.take("lm_head.weight", &[p.vocab_size, dim])?; // tied: transformers ignores it
    }
    let unused: Vec<String> = ck
        .remaining()
        .into_iter()
        .filter(|n| !(n.ends_with(".attn.bias") || n.ends_with(".attn.masked_bias")))
        .collect();
    if let Some(first) = unused.first() {
        bail!("tensor {first} is not part of a GPT-2 model (unsupported)");
    }
    let (vocab, tok_line) = hf_tokenizer::read(dir, config, p.vocab_size)?;
    let recognised = vec![
        format!(
            "GPT2LMHeadModel: n_embd {dim}, n_inner {hidden}, layers {}, heads {n_heads}, vocab {}, positions {}",
            p.n_layers, p.vocab_size, p.max_seq_len
        ),
        format!(
            "layer_norm_epsilon {eps:e}, gelu_new, head {}, tensor names {}, c_attn split into q/k/v, Conv1D weights transposed",
            if tied { "tied to wte" } else { "separate lm_head.weight" },
            if prefix.is_empty() { "without prefix" } else { "with the transformer. prefix" }
        ),
        format!(
            "tensors: {} in {} file(s), element types {}",
            tensors.len(),
            ck.files.len(),
            ck.dtypes.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        tok_line,
    ];
    Ok(Converted { model: SourceModel { params: p, tensors, vocab }, recognised, inputs: ck.files })
}

/// The Hugging Face name of a canonical Llama tensor.
fn hf_llama_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("layers.") else {
        return match name {
            "tok_embeddings" => "model.embed_tokens.weight",
            "norm" => "model.norm.weight",
            _ => "lm_head.weight",
        }
        .to_string();
    };
    let (layer, kind) = rest.split_once('.').unwrap_or((rest, ""));
    let suffix = match kind {
        "attention_norm" => "input_layernorm",
        "wq" => "self_attn.q_proj",
        "wk" => "self_attn.k_proj",
        "wv" => "self_attn.v_proj",
        "wo" => "self_attn.o_proj",
        "ffn_norm" => "post_attention_layernorm",
        "w1" => "mlp.gate_proj",
        "w2" => "mlp.down_proj",
        _ => "mlp.up_proj",
    };
    format!("model.layers.{layer}.{suffix}.weight")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    /// Hugging Face's RoPE on one head: `x * cos + rotate_half(x) * sin`, with frequency
    /// `i mod head_size/2`.
    fn rope_rotate_half(x: &[f32], pos: f32, theta: f32) -> Vec<f32> {
        let (n, half) = (x.len(), x.len() / 2);
        (0..n)
            .map(|j| {
                let i = j % half;
                let a = pos * theta.powf(-((2 * i) as f32) / n as f32);
                let rot = if j < half { -x[j + half] } else { x[j - half] };
                x[j] * a.cos() + rot * a.sin()
            })
            .collect()
    }

    /// llama2.c's RoPE on one head: adjacent pairs.
    fn rope_adjacent(x: &[f32], pos: f32, theta: f32) -> Vec<f32> {
        let n = x.len();
        let mut out = x.to_vec();
        for i in 0..n / 2 {
            let a = pos * theta.powf(-((2 * i) as f32) / n as f32);
            let (u, v) = (x[2 * i], x[2 * i + 1]);
            out[2 * i] = u * a.cos() - v * a.sin();
            out[2 * i + 1] = u * a.sin() + v * a.cos();
        }
        out
    }

    #[test]
    fn permuted_rows_turn_rotate_half_into_adjacent_pairs() {
        let hs = 8;
        let x: Vec<f32> = (0..2 * hs).map(|i| (i as f32 * 0.37).sin()).collect();
        // The projection output in HF layout is x; permuting the rows permutes the output.
        let permuted = rotate_half_to_adjacent(&x, 2, hs, 1).unwrap();
        for pos in [0.0, 1.0, 7.0, 100.0] {
            for h in 0..2 {
                let hf = rope_rotate_half(&x[h * hs..(h + 1) * hs], pos, 10000.0);
                let ours = rope_adjacent(&permuted[h * hs..(h + 1) * hs], pos, 10000.0);
                let hf_permuted = rotate_half_to_adjacent(&hf, 1, hs, 1).unwrap();
                for (a, b) in hf_permuted.iter().zip(&ours) {
                    assert!((a - b).abs() < 1e-5, "pos {pos}: {hf_permuted:?} vs {ours:?}");
                }
            }
        }
        // Without the permutation the two conventions disagree.
        let unpermuted = rope_adjacent(&x[..hs], 7.0, 10000.0);
        let hf =
            rotate_half_to_adjacent(&rope_rotate_half(&x[..hs], 7.0, 10000.0), 1, hs, 1).unwrap();
        assert!(unpermuted.iter().zip(&hf).any(|(a, b)| (a - b).abs() > 1e-2));
    }

    #[test]
    fn names_map_to_transformers() {
        assert_eq!(hf_llama_name("layers.3.w1"), "model.layers.3.mlp.gate_proj.weight");
        assert_eq!(
            hf_llama_name("layers.0.ffn_norm"),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(hf_llama_name("output"), "lm_head.weight");
    }
}

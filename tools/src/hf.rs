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
use chispa_core::arch::{Arch, HfMap, Spec};
use chispa_core::format::TensorKind;

pub use crate::source::Converted;
use crate::source::{canonical_tensors, Params, SourceModel, Tensor};

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

    /// Removes and returns the first `rows` rows of tensor `name`, which must be `[n, cols]`
    /// with `n ≥ rows`.
    ///
    /// # Errors
    /// The tensor is missing, has another width or fewer rows.
    pub fn take_first_rows(&mut self, name: &str, rows: usize, cols: usize) -> Result<Vec<f32>> {
        let (have, mut data) =
            self.tensors.remove(name).with_context(|| format!("missing tensor {name}"))?;
        ensure!(
            matches!(have.as_slice(), [n, c] if *n >= rows && *c == cols),
            "tensor {name} has shape {have:?}, expected [≥ {rows}, {cols}]"
        );
        data.truncate(rows * cols);
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
    let supported = Arch::ALL.map(|a| a.spec().hf_architecture);
    let Some(spec) = Arch::ALL.iter().map(|a| a.spec()).find(|s| s.hf_architecture == arch) else {
        bail!(
            "config.json: architecture \"{arch}\" is not supported (supported: {})",
            supported.join(", ")
        );
    };
    let mut converted = match spec.arch {
        Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => read_llama(dir, &config, spec),
        Arch::Gpt2 => read_gpt2(dir, &config),
        Arch::GptNeo => read_gpt_neo(dir, &config),
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

/// The configuration keys of the Llama family that chispa does not implement, refused by name.
fn refuse_llama_keys(config: &Value, spec: &Spec) -> Result<()> {
    if let Some(act) = key(config, "hidden_act").and_then(Value::as_str) {
        ensure!(act == "silu", "config.json: hidden_act \"{act}\" is not supported (only silu)");
    }
    // Qwen2 always has q/k/v biases (no key); the others have none unless a key says so.
    let flags: &[&str] =
        if spec.arch == Arch::Qwen2 { &["mlp_bias"] } else { &["attention_bias", "mlp_bias"] };
    for flag in flags {
        ensure!(
            key(config, flag).and_then(Value::as_bool) != Some(true),
            "config.json: \"{flag}\": true is not supported ({} without these biases only)",
            spec.hf_architecture
        );
    }
    ensure!(
        key(config, "use_sliding_window").and_then(Value::as_bool) != Some(true),
        "config.json: \"use_sliding_window\": true is not supported (full attention only)"
    );
    if let Some(types) = key(config, "layer_types").and_then(Value::as_array) {
        if let Some(t) = types.iter().find(|t| t.as_str() != Some("full_attention")) {
            bail!("config.json: layer_types entry {t} is not supported (full_attention only)");
        }
    }
    Ok(())
}

fn read_llama(dir: &Path, config: &Value, spec: &Spec) -> Result<Converted> {
    refuse_llama_keys(config, spec)?;
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
    // `head_dim` may differ from hidden_size / num_attention_heads where the architecture
    // allows it (Qwen3's real sizes do); 0 in the file means the quotient.
    let mut head_size = dim / n_heads;
    let mut head_dim = 0;
    if key(config, "head_dim").is_some() {
        let hd = usize_key(config, "head_dim")?;
        ensure!(
            hd == head_size || spec.free_head_dim,
            "config.json: head_dim {hd} differs from hidden_size / num_attention_heads = {head_size} (not supported for {})",
            spec.hf_architecture
        );
        if hd != head_size {
            (head_size, head_dim) = (hd, hd);
        }
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
        arch: spec.arch,
        dim,
        hidden_dim: usize_key(config, "intermediate_size")?,
        n_layers: usize_key(config, "num_hidden_layers")?,
        n_heads,
        n_kv_heads,
        head_dim,
        vocab_size: usize_key(config, "vocab_size")?,
        max_seq_len: usize_key(config, "max_position_embeddings")?,
        rope_theta: theta,
        norm_eps: eps,
        shared_classifier: tied,
    };
    let kv_dim = head_size * n_kv_heads;

    let mut ck = Checkpoint::load(dir)?;
    let tensors = take_tensors(&mut ck, &p, "")?;
    let (vocab, tok_line) = hf_tokenizer::read(dir, config, p.vocab_size)?;
    let dtype_key = key(config, "torch_dtype").or_else(|| key(config, "dtype"));
    let recognised = vec![
        format!(
            "{}: dim {dim}, hidden {}, layers {}, heads {n_heads} (kv {n_kv_heads}, head_size {head_size}, kv_dim {kv_dim}), vocab {}, context {}",
            spec.hf_architecture, p.hidden_dim, p.n_layers, p.vocab_size, p.max_seq_len
        ),
        format!(
            "rope_theta {theta} (from {theta_from}), rms_norm_eps {eps:e}, head {}, {} permuted from rotate_half to adjacent pairs",
            if tied { "tied to the embedding" } else { "separate lm_head.weight" },
            match spec.arch {
                Arch::Qwen2 => "q/k projection rows and biases",
                Arch::Qwen3 => "q/k projection rows and q/k norm weights",
                _ => "wq/wk rows",
            }
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
        arch: Arch::Gpt2,
        dim,
        hidden_dim: hidden,
        n_layers: usize_key(config, "n_layer")?,
        n_heads,
        n_kv_heads: n_heads,
        head_dim: 0,
        vocab_size: usize_key(config, "vocab_size")?,
        max_seq_len: usize_key(config, "n_positions")?,
        rope_theta: 0.0,
        norm_eps: eps,
        shared_classifier: tied,
    };
    let mut ck = Checkpoint::load(dir)?;
    let prefix = if ck.has("transformer.wte.weight") { "transformer." } else { "" };
    let tensors = take_tensors(&mut ck, &p, prefix)?;
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

/// GPT-Neo's layer kinds, `attention_types` `[[["global", "local"], n], …]` expanded.
fn gpt_neo_layers(config: &Value, n_layers: usize) -> Result<Vec<String>> {
    let types = key(config, "attention_types")
        .and_then(Value::as_array)
        .context("config.json: missing key \"attention_types\"")?;
    let mut layers = Vec::new();
    for t in types {
        let bad = || format!("config.json: attention_types entry {t} is not [[kinds…], count]");
        let (kinds, count) = match t.as_array().map(Vec::as_slice) {
            Some([k, n]) => (k.as_array().with_context(bad)?, n.as_u64().with_context(bad)?),
            _ => bail!(bad()),
        };
        for _ in 0..count {
            for k in kinds {
                match k.as_str() {
                    Some(s @ ("global" | "local")) => layers.push(s.to_string()),
                    _ => bail!("config.json: attention type {k} is not supported (global, local)"),
                }
                ensure!(
                    layers.len() <= n_layers,
                    "config.json: attention_types has more layers than num_layers {n_layers}"
                );
            }
        }
    }
    ensure!(
        layers.len() == n_layers,
        "config.json: attention_types covers {} layers, num_layers is {n_layers}",
        layers.len()
    );
    Ok(layers)
}

fn read_gpt_neo(dir: &Path, config: &Value) -> Result<Converted> {
    if let Some(act) = key(config, "activation_function").and_then(Value::as_str) {
        ensure!(
            act == "gelu_new",
            "config.json: activation_function \"{act}\" is not supported (gelu_new only)"
        );
    }
    let dim = usize_key(config, "hidden_size")?;
    let n_heads = usize_key(config, "num_heads")?;
    ensure!(
        dim % n_heads == 0 && (dim / n_heads) % 2 == 0,
        "config.json: hidden_size {dim} is not a multiple of 2 × num_heads {n_heads}"
    );
    let hidden = match key(config, "intermediate_size") {
        Some(_) => usize_key(config, "intermediate_size")?,
        None => 4 * dim,
    };
    let n_layers = usize_key(config, "num_layers")?;
    let layers = gpt_neo_layers(config, n_layers)?;
    let positions = usize_key(config, "max_position_embeddings")?;
    let window = usize_key(config, "window_size")?;
    let local = layers.iter().any(|t| t == "local");
    // Within the window, local attention sees every earlier position, as global does.
    let context = if local { positions.min(window) } else { positions };
    let eps = f32_key(config, "layer_norm_epsilon")?.unwrap_or(1e-5);
    let eps = checked_f32(eps, "layer_norm_epsilon", |e| e >= 0.0, "a finite number ≥ 0 (an f32)")?;
    let tied = key(config, "tie_word_embeddings").and_then(Value::as_bool).unwrap_or(true);
    let p = Params {
        arch: Arch::GptNeo,
        dim,
        hidden_dim: hidden,
        n_layers,
        n_heads,
        n_kv_heads: n_heads,
        head_dim: 0,
        vocab_size: usize_key(config, "vocab_size")?,
        max_seq_len: context,
        rope_theta: 0.0,
        norm_eps: eps,
        shared_classifier: tied,
    };
    let mut ck = Checkpoint::load(dir)?;
    let tensors = take_tensors(&mut ck, &p, "")?;
    let (vocab, tok_line) = hf_tokenizer::read(dir, config, p.vocab_size)?;
    let recognised = vec![
        format!(
            "GPTNeoForCausalLM: hidden_size {dim}, intermediate {hidden}, layers {n_layers} ({}), heads {n_heads}, vocab {}, positions {positions}",
            layers.join("/"),
            p.vocab_size
        ),
        format!(
            "window_size {window}: context {context}{}, attention scores unscaled, layer_norm_epsilon {eps:e}, gelu_new, head {}",
            if local && context < positions {
                " (limited to the local window, where local and global attention agree)"
            } else {
                ""
            },
            if tied { "tied to wte" } else { "separate lm_head.weight" }
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

/// A tensor of `rows` rows (1: a vector) in Hugging Face's rotate_half order turned into
/// chispa's adjacent RoPE pairs as `map` says (per query head, per key head, or one head);
/// other maps leave it as it is.
///
/// # Errors
/// The tensor does not hold whole heads.
pub fn to_adjacent_pairs(map: HfMap, w: Vec<f32>, p: &Params, rows: usize) -> Result<Vec<f32>> {
    let hs = p.head_size();
    // Elements of a vector are rows of one column for the permutation.
    let row_cols = if rows <= 1 { 1 } else { w.len() / rows };
    match map {
        HfMap::RotateQuery => rotate_half_to_adjacent(&w, p.n_heads, hs, row_cols),
        HfMap::RotateKey => rotate_half_to_adjacent(&w, p.n_kv_heads, hs, row_cols),
        HfMap::RotateHead => rotate_half_to_adjacent(&w, 1, hs, 1),
        _ => Ok(w),
    }
}

/// The checkpoint name of a canonical tensor: its architecture's Hugging Face name with the
/// layer index filled in (and `prefix`, except on the classifier).
pub fn hf_name(
    spec: &Spec,
    kind: TensorKind,
    layer: usize,
    prefix: &str,
) -> Result<(String, HfMap)> {
    let t = spec.hf_globals.iter().chain(spec.hf_layer).find(|t| t.kind == kind).with_context(
        || format!("{}: no Hugging Face name for tensor {}", spec.hf_architecture, kind.name()),
    )?;
    let name = t.name.replace("{l}", &layer.to_string());
    let prefix = if kind == TensorKind::Classifier { "" } else { prefix };
    Ok((format!("{prefix}{name}"), t.map))
}

/// Takes every canonical tensor of `p` from the checkpoint, converted as its architecture's
/// table says, then refuses whatever is left that transformers would use: one line naming
/// every such tensor.
fn take_tensors(ck: &mut Checkpoint, p: &Params, prefix: &str) -> Result<Vec<Tensor>> {
    let spec = p.arch.spec();
    // Fused Conv1D tensors (GPT-2's c_attn), taken once: weights transposed to [3·out, in].
    let mut fused: HashMap<String, Vec<f32>> = HashMap::new();
    let mut tensors = Vec::new();
    for t in canonical_tensors(p)? {
        let (name, map) = hf_name(spec, t.kind, t.layer, prefix)?;
        let (rows, cols) = (t.rows, t.cols);
        let shape: Vec<usize> = if rows == 1 { vec![cols] } else { vec![rows, cols] };
        let data = match map {
            HfMap::Copy => ck.take(&name, &shape)?,
            HfMap::RotateQuery | HfMap::RotateKey | HfMap::RotateHead => {
                to_adjacent_pairs(map, ck.take(&name, &shape)?, p, rows)?
            }
            HfMap::FirstRows => ck.take_first_rows(&name, rows, cols)?,
            HfMap::Transpose => transpose(&ck.take(&name, &[cols, rows])?, cols, rows),
            HfMap::Fused(part) => {
                if !fused.contains_key(&name) {
                    let whole = if rows == 1 {
                        ck.take(&name, &[3 * cols])?
                    } else {
                        transpose(&ck.take(&name, &[cols, 3 * rows])?, cols, 3 * rows)
                    };
                    fused.insert(name.clone(), whole);
                }
                let n = rows * cols;
                let part = usize::from(part);
                fused
                    .get(&name)
                    .and_then(|w| w.get(part * n..(part + 1) * n))
                    .map(<[f32]>::to_vec)
                    .with_context(|| format!("tensor {name} is shorter than 3 parts of {n}"))?
            }
        };
        tensors.push(Tensor { name: t.name, rows, cols, data });
    }
    if p.shared_classifier && ck.has("lm_head.weight") {
        ck.take("lm_head.weight", &[p.vocab_size, p.dim])?; // tied: transformers ignores it
    }
    let unused: Vec<String> = ck
        .remaining()
        .into_iter()
        .filter(|n| !spec.hf_ignored.iter().any(|s| n.ends_with(s)))
        .collect();
    ensure!(
        unused.is_empty(),
        "tensor{} {} not part of a {} model (unsupported)",
        if unused.len() == 1 { "" } else { "s" },
        unused.join(", ") + if unused.len() == 1 { " is" } else { " are" },
        spec.hf_architecture
    );
    Ok(tensors)
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
        let llama = Arch::Llama.spec();
        let name = |s, k, l, p| hf_name(s, k, l, p).unwrap().0;
        assert_eq!(name(llama, TensorKind::W1, 3, ""), "model.layers.3.mlp.gate_proj.weight");
        assert_eq!(
            name(llama, TensorKind::FfnNorm, 0, ""),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(name(llama, TensorKind::Classifier, 0, ""), "lm_head.weight");
        let gpt2 = Arch::Gpt2.spec();
        assert_eq!(
            name(gpt2, TensorKind::Bk, 1, "transformer."),
            "transformer.h.1.attn.c_attn.bias"
        );
        assert_eq!(name(gpt2, TensorKind::Classifier, 0, "transformer."), "lm_head.weight");
        assert_eq!(
            name(Arch::Qwen3.spec(), TensorKind::KNorm, 2, ""),
            "model.layers.2.self_attn.k_norm.weight"
        );
        // Every tensor of every architecture has a name.
        for a in Arch::ALL {
            let s = a.spec();
            for k in s.globals.iter().chain(s.layer).chain([&TensorKind::Classifier]) {
                assert!(hf_name(s, *k, 0, "").is_ok(), "{a:?} {k:?}");
            }
        }
    }
}

//! GGUF v3 files (llama.cpp): the `llama`, `qwen2` and `qwen3` architectures, tensors in F32, F16 or a block type of
//! [`crate::ggml_quants`], and the sentencepiece-style (`tokenizer.ggml.model = "llama"`) or
//! byte-level BPE (`"gpt2"`) vocabulary.
//!
//! Layout: `"GGUF"`, version `u32`, tensor count `u64`, metadata count `u64`; metadata
//! key/value pairs; tensor infos (name, dims with the fastest-varying first, ggml type,
//! offset); padding to `general.alignment` (default 32); tensor data. Every read is bounds
//! checked: a malformed file is an error, never a panic.
//!
//! For `llama`, llama.cpp stores `attn_q`/`attn_k` with RoPE on adjacent pairs (its converter
//! permutes Hugging Face's rows back to Meta's layout), which is chispa's convention; for the
//! Qwen architectures it keeps Hugging Face's rotate_half order, permuted here (`ARCHS`).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};
use chispa_core::format::{byte_groups, Arch, TokenizerKind};

use crate::hf_tokenizer::NO_MERGE;
use chispa_core::arch::info;
use chispa_core::format::TensorKind;

use crate::source::{canonical_tensors, Converted, Params, SourceModel, Tensor, Vocab};

/// ggml type codes this reader accepts.
pub const GGML_F32: u32 = 0;
/// IEEE half.
pub const GGML_F16: u32 = 1;
/// Blocks of 32 int8 with one f16 scale.
pub const GGML_Q8_0: u32 = 8;

/// A metadata value, borrowed from the file's bytes: arrays are not decoded until read (a
/// large array costs no memory).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Meta<'a> {
    /// Any integer type.
    Int(i128),
    /// f32 or f64.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    Str(&'a str),
    /// Array of values.
    Array(Array<'a>),
}

/// A metadata array: its element type, length and encoded elements.
#[derive(Clone, Copy, PartialEq)]
pub struct Array<'a> {
    ty: u32,
    len: usize,
    bytes: &'a [u8],
}

impl std::fmt::Debug for Array<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an array of {} values of type {}", self.len, self.ty)
    }
}

impl<'a> Array<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements, decoded one at a time.
    pub fn iter(&self) -> impl Iterator<Item = Result<Meta<'a>>> + 'a {
        let mut c = Cursor { b: self.bytes, at: 0 };
        let ty = self.ty;
        (0..self.len).map(move |_| c.value(ty, 1))
    }
}

/// Bytes of one fixed-size element of metadata type `ty` (`None` for strings and arrays).
fn fixed_size(ty: u32) -> Option<usize> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).context("GGUF: size overflow")?;
        let s = self
            .b
            .get(self.at..end)
            .with_context(|| format!("GGUF: truncated at byte {} (needed {n} more)", self.at))?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        ensure!(
            n <= self.b.len().saturating_sub(self.at) as u64,
            "GGUF: length {n} at byte {} runs past the end",
            self.at
        );
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<&'a str> {
        let n = self.len()?;
        let at = self.at;
        std::str::from_utf8(self.take(n)?)
            .with_context(|| format!("GGUF: string at byte {at} is not UTF-8"))
    }
    /// Moves past one value of type `ty` without decoding it.
    fn skip(&mut self, ty: u32, depth: usize) -> Result<()> {
        if let Some(n) = fixed_size(ty) {
            self.take(n)?;
            return Ok(());
        }
        match ty {
            8 => {
                let n = self.len()?;
                self.take(n)?;
            }
            9 => {
                self.array(depth)?;
            }
            other => bail!("GGUF: unknown metadata type {other} at byte {}", self.at),
        }
        Ok(())
    }
    /// An array's header and extent; its elements are skipped, not decoded.
    fn array(&mut self, depth: usize) -> Result<Array<'a>> {
        ensure!(depth < 4, "GGUF: arrays nested too deeply");
        let ty = self.u32()?;
        let len = self.len()?;
        let start = self.at;
        match fixed_size(ty) {
            Some(size) => {
                self.take(len.checked_mul(size).context("GGUF: array size overflow")?)?;
            }
            None => {
                for _ in 0..len {
                    self.skip(ty, depth + 1)?;
                }
            }
        }
        let bytes = self.b.get(start..self.at).unwrap_or_default();
        Ok(Array { ty, len, bytes })
    }
    fn value(&mut self, ty: u32, depth: usize) -> Result<Meta<'a>> {
        let int = |b: &[u8], signed: bool| -> i128 {
            let negative = signed && b.last().is_some_and(|x| x & 0x80 != 0);
            let mut v = [if negative { 0xFF } else { 0 }; 16];
            for (to, from) in v.iter_mut().zip(b) {
                *to = *from;
            }
            i128::from_le_bytes(v)
        };
        Ok(match ty {
            // u8, i8, u16, i16, u32, i32, u64, i64: the odd codes are signed.
            0..=5 | 10 | 11 => {
                let n = fixed_size(ty).unwrap_or(8);
                Meta::Int(int(self.take(n)?, ty % 2 == 1))
            }
            6 => Meta::Float(f32::from_le_bytes(self.take(4)?.try_into()?) as f64),
            12 => Meta::Float(f64::from_le_bytes(self.take(8)?.try_into()?)),
            7 => Meta::Bool(self.take(1)?.iter().any(|b| *b != 0)),
            8 => Meta::Str(self.string()?),
            9 => Meta::Array(self.array(depth)?),
            other => bail!("GGUF: unknown metadata type {other} at byte {}", self.at),
        })
    }
}

struct Info {
    dims: [usize; 4],
    nd: usize,
    ty: u32,
    offset: usize,
}

impl Info {
    fn dims(&self) -> &[usize] {
        self.dims.get(..self.nd).unwrap_or_default()
    }
}

/// A parsed GGUF file: metadata and tensor infos, borrowing the bytes.
pub struct Gguf<'a> {
    /// Metadata by key.
    pub meta: HashMap<&'a str, Meta<'a>>,
    infos: HashMap<&'a str, Info>,
    data: &'a [u8],
}

impl std::fmt::Debug for Gguf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("keys", &self.meta.len())
            .field("tensors", &self.infos.len())
            .finish()
    }
}

impl<'a> Gguf<'a> {
    /// Parses the header, metadata and tensor infos. Nothing is copied: strings and arrays
    /// borrow `b`.
    ///
    /// # Errors
    /// Not GGUF, a version other than 3, truncation, unknown types.
    pub fn parse(b: &'a [u8]) -> Result<Self> {
        let mut c = Cursor { b, at: 0 };
        ensure!(c.take(4).ok() == Some(b"GGUF"), "not a GGUF file (no \"GGUF\" magic)");
        let version = c.u32()?;
        ensure!(version == 3, "GGUF version {version} is not supported (version 3 only)");
        let n_tensors = c.len()?;
        let n_meta = c.len()?;
        let mut meta = HashMap::new();
        for _ in 0..n_meta {
            let k = c.string()?;
            let ty = c.u32()?;
            let v = c.value(ty, 0)?;
            meta.insert(k, v);
        }
        let mut infos = HashMap::new();
        for _ in 0..n_tensors {
            let name = c.string()?;
            let nd = c.u32()? as usize;
            ensure!((1..=4).contains(&nd), "GGUF: tensor {name} has {nd} dimensions");
            let mut dims = [1usize; 4];
            for d in dims.iter_mut().take(nd) {
                *d = usize::try_from(c.u64()?).context("GGUF: dimension overflow")?;
            }
            let ty = c.u32()?;
            let offset = usize::try_from(c.u64()?).context("GGUF: offset overflow")?;
            infos.insert(name, Info { dims, nd, ty, offset });
        }
        let align = match meta.get("general.alignment") {
            Some(Meta::Int(a)) if *a > 0 && *a <= 1 << 16 => *a as usize,
            None => 32,
            Some(other) => bail!("GGUF: general.alignment is {other:?}"),
        };
        let start = c.at.div_ceil(align) * align;
        let data = b.get(start..).unwrap_or(&[]);
        Ok(Self { meta, infos, data })
    }

    fn get(&self, key: &str) -> Result<&Meta<'a>> {
        self.meta.get(key).with_context(|| format!("GGUF: missing key {key}"))
    }

    fn int(&self, key: &str) -> Result<usize> {
        match self.get(key)? {
            Meta::Int(v) if *v > 0 && *v <= u32::MAX as i128 => Ok(*v as usize),
            other => bail!("GGUF: {key} is {other:?}, expected a positive integer"),
        }
    }

    fn float(&self, key: &str) -> Result<Option<f32>> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(Meta::Float(v)) => Ok(Some(*v as f32)),
            Some(other) => bail!("GGUF: {key} is {other:?}, expected a float"),
        }
    }

    /// A float key that must be finite as an f32 and satisfy `ok` (`expected` says how).
    fn checked_float(
        &self,
        key: &str,
        default: f32,
        ok: impl Fn(f32) -> bool,
        expected: &str,
    ) -> Result<f32> {
        let v = self.float(key)?.unwrap_or(default);
        ensure!(v.is_finite() && ok(v), "GGUF: {key} is {v:e}, expected {expected}");
        Ok(v)
    }

    fn string(&self, key: &str) -> Result<&'a str> {
        match self.get(key)? {
            Meta::Str(s) => Ok(*s),
            other => bail!("GGUF: {key} is {other:?}, expected a string"),
        }
    }

    /// Whether a tensor exists.
    pub fn has(&self, name: &str) -> bool {
        self.infos.contains_key(name)
    }

    /// Tensor `name` as f32, checked to be `[rows, cols]` (GGUF dims `[cols, rows]`).
    ///
    /// # Errors
    /// Missing tensor, other shape, unsupported type, data out of the file.
    pub fn tensor(&self, name: &str, rows: usize, cols: usize) -> Result<Vec<f32>> {
        let i = self.infos.get(name).with_context(|| format!("missing tensor {name}"))?;
        let want: Vec<usize> = if rows == 1 { vec![cols] } else { vec![cols, rows] };
        let have: Vec<usize> = i.dims().iter().copied().filter(|d| *d != 1).collect();
        let want_n: Vec<usize> = want.iter().copied().filter(|d| *d != 1).collect();
        ensure!(have == want_n, "tensor {name} has GGUF dims {:?}, expected {want:?}", i.dims());
        let n = rows.checked_mul(cols).context("GGUF: tensor size overflow")?;
        let bytes = |len: usize| -> Result<&[u8]> {
            self.data
                .get(i.offset..i.offset.checked_add(len).context("GGUF: size overflow")?)
                .with_context(|| format!("tensor {name}: data runs past the end of the file"))
        };
        Ok(match i.ty {
            GGML_F32 => byte_groups(bytes(4 * n)?).map(f32::from_le_bytes).collect(),
            GGML_F16 => {
                byte_groups(bytes(2 * n)?).map(|b| half::f16::from_le_bytes(b).to_f32()).collect()
            }
            ty if crate::ggml_quants::block(ty).is_some() => {
                let (elems, size, tname) = crate::ggml_quants::block(ty).context("block type")?;
                ensure!(
                    cols % elems == 0,
                    "tensor {name}: {tname} rows of {cols} are not whole blocks of {elems}"
                );
                crate::ggml_quants::dequantize(ty, bytes(n / elems * size)?, n)
                    .with_context(|| format!("tensor {name}"))?
            }
            other => bail!(
                "tensor {name}: ggml type {other} is not supported (F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)"
            ),
        })
    }

    /// The ggml types used, by name.
    pub fn types(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .infos
            .values()
            .map(|i| match i.ty {
                GGML_F32 => "F32",
                GGML_F16 => "F16",
                ty => crate::ggml_quants::block(ty).map_or("other", |b| b.2),
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The GGUF name of a canonical tensor (the tensor table's, with the layer index).
pub fn gguf_name(kind: TensorKind, layer: usize) -> String {
    info(kind).gguf.replace("{l}", &layer.to_string())
}

fn strings<'a>(g: &Gguf<'a>, key: &str) -> Result<Vec<&'a str>> {
    match g.get(key)? {
        Meta::Array(v) => v
            .iter()
            .map(|m| match m? {
                Meta::Str(s) => Ok(s),
                other => bail!("GGUF: {key} holds {other:?}, expected strings"),
            })
            .collect(),
        other => bail!("GGUF: {key} is {other:?}, expected an array"),
    }
}

fn optional_id(g: &Gguf<'_>, key: &str, vocab: usize) -> Result<Option<u32>> {
    match g.meta.get(key) {
        None => Ok(None),
        Some(Meta::Int(v)) if *v >= 0 && (*v as usize) < vocab => Ok(Some(*v as u32)),
        Some(other) => bail!("GGUF: {key} is {other:?}, not an id in the vocabulary of {vocab}"),
    }
}

/// The split a `tokenizer.ggml.pre` name stands for (llama.cpp's names): stages, their
/// description, and whether whole-chunk tokens come first (llama.cpp's `ignore_merges`).
fn pre_tokenizer(pre: &str) -> Result<(Vec<u32>, String, bool)> {
    use crate::regex_split::{compile, program, GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN};
    let (pattern, name, ignore_merges) = match pre {
        "gpt-2" => (GPT2_PATTERN, "GPT-2 split", false),
        "llama-bpe" | "llama3" | "llama-v3" => (LLAMA3_PATTERN, "Llama 3 split", true),
        "qwen2" => (QWEN2_PATTERN, "Qwen2 split", false),
        other => {
            bail!("GGUF: tokenizer.ggml.pre \"{other}\" is not supported (gpt-2, llama-bpe, qwen2)")
        }
    };
    Ok((
        program(&[compile(pattern)?]),
        format!("tokenizer.ggml.pre \"{pre}\": {name}"),
        ignore_merges,
    ))
}

/// A `tokenizer.ggml.model = gpt2` byte-level BPE: tokens, merges, token types (control and
/// user-defined tokens are added tokens, matched in text), `tokenizer.ggml.pre`.
fn gpt2_vocab(g: &Gguf<'_>, vocab_size: usize) -> Result<(Vocab, String)> {
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    ensure!(
        tokens.len() == vocab_size,
        "GGUF: tokenizer.ggml.tokens has {} tokens, the model's vocabulary has {vocab_size}",
        tokens.len()
    );
    let types: Vec<i128> = match g.meta.get("tokenizer.ggml.token_type") {
        Some(Meta::Array(v)) => v
            .iter()
            .map(|m| match m? {
                Meta::Int(i) => Ok(i),
                other => bail!("GGUF: tokenizer.ggml.token_type holds {other:?}"),
            })
            .collect::<Result<_>>()?,
        None => vec![1; vocab_size],
        Some(other) => bail!("GGUF: tokenizer.ggml.token_type is {other:?}"),
    };
    ensure!(
        types.len() == vocab_size,
        "GGUF: tokenizer.ggml.token_type has {} entries",
        types.len()
    );
    let merges = strings(g, "tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .with_context(|| format!("GGUF: tokenizer.ggml.merges[{i}] {m:?} is not \"a b\""))
        })
        .collect::<Result<Vec<_>>>()?;
    let pre = match g.meta.get("tokenizer.ggml.pre") {
        Some(Meta::Str(s)) => *s,
        None => bail!("GGUF: tokenizer.ggml.pre is missing (the split of a gpt2 tokenizer)"),
        Some(other) => bail!("GGUF: tokenizer.ggml.pre is {other:?}"),
    };
    let (program, pre_name, ignore_merges) = pre_tokenizer(pre)?;
    let table: Vec<Option<String>> = tokens.iter().map(|t| Some(t.to_string())).collect();
    let added: Vec<String> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| matches!(**t, 3 | 4))
        .map(|(s, _)| s.to_string())
        .collect();
    let bos = optional_id(g, "tokenizer.ggml.bos_token_id", vocab_size)?;
    let eos = optional_id(g, "tokenizer.ggml.eos_token_id", vocab_size)?;
    let add_bos = matches!(g.meta.get("tokenizer.ggml.add_bos_token"), Some(Meta::Bool(true)));
    let chat = match g.meta.get("tokenizer.chat_template") {
        None => None,
        Some(Meta::Str(t)) => {
            let name = |id: Option<u32>| {
                id.and_then(|i| tokens.get(i as usize)).map(|s| s.to_string()).unwrap_or_default()
            };
            let specials = crate::chat::Specials { bos: name(bos), eos: name(eos) };
            Some(
                crate::chat::from_template(t.to_string(), &specials)
                    .context("GGUF: tokenizer.chat_template")?,
            )
        }
        Some(other) => bail!("GGUF: tokenizer.chat_template is {other:?}"),
    };
    crate::hf_tokenizer::byte_level_vocab(crate::hf_tokenizer::ByteLevelSpec {
        source: "GGUF",
        table,
        merges,
        added,
        program,
        pre_name,
        ignore_merges,
        bos,
        eos,
        add_bos: add_bos && bos.is_some(),
        chat,
        notes: Vec::new(),
    })
}

fn vocab(g: &Gguf<'_>, vocab_size: usize) -> Result<(Vocab, String)> {
    let model = g.string("tokenizer.ggml.model")?;
    if model == "gpt2" {
        return gpt2_vocab(g, vocab_size);
    }
    ensure!(
        model == "llama",
        "GGUF: tokenizer.ggml.model \"{model}\" is not supported (\"llama\" sentencepiece or \"gpt2\" byte-level BPE)"
    );
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    ensure!(
        tokens.len() == vocab_size,
        "GGUF: tokenizer.ggml.tokens has {} tokens, the model's vocabulary has {vocab_size}",
        tokens.len()
    );
    let scores: Vec<f32> = match g.meta.get("tokenizer.ggml.scores") {
        Some(Meta::Array(v)) => {
            ensure!(v.len() == vocab_size, "GGUF: tokenizer.ggml.scores has {} entries", v.len());
            v.iter()
                .enumerate()
                .map(|(i, m)| match m? {
                    Meta::Float(f) if (f as f32).is_finite() => Ok(f as f32),
                    Meta::Float(f) => {
                        bail!("GGUF: tokenizer.ggml.scores[{i}] is {f} (not a finite f32)")
                    }
                    other => bail!("GGUF: tokenizer.ggml.scores holds {other:?}"),
                })
                .collect::<Result<_>>()?
        }
        None => vec![NO_MERGE; vocab_size],
        Some(other) => bail!("GGUF: tokenizer.ggml.scores is {other:?}"),
    };
    ensure!(scores.len() == vocab_size, "GGUF: tokenizer.ggml.scores has {} entries", scores.len());
    let base = tokens.iter().position(|t| *t == "<0x00>").map(|i| i as u32);
    if let Some(base) = base {
        for b in 0..=255u32 {
            ensure!(
                tokens.get((base + b) as usize).copied() == Some(format!("<0x{b:02X}>").as_str()),
                "GGUF: byte token <0x{b:02X}> is not at id {}",
                base + b
            );
        }
    }
    let bos = optional_id(g, "tokenizer.ggml.bos_token_id", vocab_size)?;
    let eos = optional_id(g, "tokenizer.ggml.eos_token_id", vocab_size)?;
    let add_bos = !matches!(g.meta.get("tokenizer.ggml.add_bos_token"), Some(Meta::Bool(false)));
    let v = Vocab {
        kind: TokenizerKind::ScoreBpe,
        pieces: tokens.iter().map(|t| t.replace('▁', " ").into_bytes()).collect(),
        scores,
        bos: if add_bos { bos } else { None },
        eos,
        byte_fallback_base: base,
        dummy_prefix: true,
        no_prefix_before_space: false,
        stop_ids: eos.into_iter().collect(),
        ext: crate::source::TokenizerExt::default(),
    };
    let line = format!(
        "tokenizer: tokenizer.ggml.model \"llama\" (sentencepiece scores), {vocab_size} tokens, byte fallback {}, BOS {bos:?}{}, EOS {eos:?}",
        base.map_or("no".to_string(), |b| format!("at {b}")),
        if add_bos { " prepended" } else { " not prepended" },
    );
    Ok((v, line))
}

/// The architectures this reader takes: `general.architecture` (also the metadata keys'
/// prefix), chispa's architecture, and whether llama.cpp keeps the Hugging Face (rotate_half)
/// row order of q/k for it (its NEOX RoPE) — chispa's RoPE is on adjacent pairs, so those
/// rows are permuted here as `chispa-convert hf` permutes them. For `llama` its converter
/// already stores adjacent pairs.
const ARCHS: [(&str, Arch, bool); 3] =
    [("llama", Arch::Llama, false), ("qwen2", Arch::Qwen2, true), ("qwen3", Arch::Qwen3, true)];

/// Reads a GGUF file ([`read`]).
///
/// # Errors
/// An unreadable file, and what [`read`] refuses.
pub fn read_file(path: &std::path::Path) -> Result<Converted> {
    let bytes = crate::output::read_input(path)?;
    let (model, recognised) = read(&bytes)?;
    Ok(Converted { model, recognised, inputs: vec![path.to_path_buf()] })
}

/// Converts a GGUF file of the `llama`, `qwen2` or `qwen3` architecture.
///
/// # Errors
/// Another architecture, missing keys or tensors, shape mismatches, unsupported tensor types,
/// a vocabulary that does not fit.
pub fn read(bytes: &[u8]) -> Result<(SourceModel, Vec<String>)> {
    let g = Gguf::parse(bytes)?;
    let name = g.string("general.architecture")?;
    let Some(&(name, arch, rotate_half)) = ARCHS.iter().find(|a| a.0 == name) else {
        let known: Vec<&str> = ARCHS.iter().map(|a| a.0).collect();
        bail!("GGUF: general.architecture \"{name}\" is not supported ({})", known.join(", "));
    };
    let key = |k: &str| format!("{name}.{k}");
    let dim = g.int(&key("embedding_length"))?;
    let n_heads = g.int(&key("attention.head_count"))?;
    let n_kv_heads = match g.meta.get(key("attention.head_count_kv").as_str()) {
        Some(_) => g.int(&key("attention.head_count_kv"))?,
        None => n_heads,
    };
    ensure!(
        n_heads <= dim && n_heads % n_kv_heads == 0,
        "GGUF: embedding_length {dim}, head_count {n_heads}, head_count_kv {n_kv_heads} do not fit"
    );
    // A head width other than embedding_length / head_count where the architecture allows
    // it (Qwen3); 0 stands for the quotient.
    let mut head_dim = 0;
    let mut head_size = dim / n_heads;
    if g.meta.contains_key(key("attention.key_length").as_str()) {
        let kl = g.int(&key("attention.key_length"))?;
        let vl = match g.meta.get(key("attention.value_length").as_str()) {
            Some(_) => g.int(&key("attention.value_length"))?,
            None => kl,
        };
        ensure!(vl == kl, "GGUF: attention.value_length {vl} differs from key_length {kl}");
        if kl != head_size || dim % n_heads != 0 {
            ensure!(
                arch.spec().free_head_dim,
                "GGUF: attention.key_length {kl} differs from embedding_length / head_count = {head_size} (not supported for {name})"
            );
            (head_size, head_dim) = (kl, kl);
        }
    }
    ensure!(
        (head_dim != 0 || dim % n_heads == 0) && head_size % 2 == 0,
        "GGUF: embedding_length {dim}, head_count {n_heads}: the head width {head_size} must be a whole, even number"
    );
    if g.meta.contains_key(key("rope.dimension_count").as_str()) {
        let rd = g.int(&key("rope.dimension_count"))?;
        ensure!(
            rd == head_size,
            "GGUF: {name}.rope.dimension_count {rd} (partial RoPE) is not supported"
        );
    }
    for k in ["embedding_length", "feed_forward_length", "context_length"] {
        let v = g.int(&key(k))?;
        ensure!(v <= 1 << 20, "GGUF: {name}.{k} = {v} is larger than chispa supports (2^20)");
    }
    let vocab_size = match (g.meta.get(key("vocab_size").as_str()), g.get("tokenizer.ggml.tokens")?)
    {
        (Some(_), _) => g.int(&key("vocab_size"))?,
        (None, Meta::Array(tokens)) => tokens.len(),
        (None, other) => bail!("GGUF: tokenizer.ggml.tokens is {other:?}, expected an array"),
    };
    ensure!(
        vocab_size <= chispa_core::model::MAX_VOCAB as usize,
        "GGUF: the vocabulary of {vocab_size} tokens is larger than chispa supports (2^20)"
    );
    let p = Params {
        arch,
        dim,
        hidden_dim: g.int(&key("feed_forward_length"))?,
        n_layers: g.int(&key("block_count"))?,
        n_heads,
        n_kv_heads,
        head_dim,
        vocab_size,
        max_seq_len: g.int(&key("context_length"))?,
        rope_theta: g.checked_float(
            &key("rope.freq_base"),
            10000.0,
            |t| t > 1.0,
            "a finite number above 1",
        )?,
        norm_eps: g.checked_float(
            &key("attention.layer_norm_rms_epsilon"),
            1e-5,
            |e| e >= 0.0,
            "a finite number ≥ 0 (an f32)",
        )?,
        shared_classifier: !g.has("output.weight"),
    };
    let mut tensors = Vec::new();
    for t in canonical_tensors(&p)? {
        let mut data = g.tensor(&gguf_name(t.kind, t.layer), t.rows, t.cols)?;
        if rotate_half {
            let (_, map) = crate::hf::hf_name(arch.spec(), t.kind, t.layer, "")?;
            data = crate::hf::to_adjacent_pairs(map, data, &p, t.rows)?;
        }
        tensors.push(Tensor { name: t.name, rows: t.rows, cols: t.cols, data });
    }
    let (v, tok_line) = vocab(&g, vocab_size)?;
    let recognised = vec![
        format!(
            "GGUF v3, {name}: dim {dim}, hidden {}, layers {}, heads {n_heads} (kv {n_kv_heads}, width {head_size}), vocab {vocab_size}, context {}",
            p.hidden_dim, p.n_layers, p.max_seq_len
        ),
        format!(
            "rope freq_base {}, rms eps {:e}, head {}, tensor types {} (Q8_0/F16 widened to f32, then requantized)",
            p.rope_theta,
            p.norm_eps,
            if p.shared_classifier { "tied to token_embd" } else { "separate output.weight" },
            g.types().join(", ")
        ),
        tok_line,
    ];
    Ok((SourceModel { params: p, tensors, vocab: v }, recognised))
}

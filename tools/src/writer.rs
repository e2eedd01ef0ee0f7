//! Writes `.chispa` files: the layout comes from `chispa_core::format`, and every file is
//! parsed back by `chispa_core::Model::parse` before it is handed out.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use chispa_core::format::{
    align_up, file_checksum, DType, Header, TensorEntry, TensorKind, EXT_ADDED_TOKENS,
    EXT_CHAT_BOS_TOKEN, EXT_CHAT_EOS_TOKEN, EXT_CHAT_PREFIX, EXT_CHAT_SUFFIX, EXT_CHAT_TEMPLATE,
    EXT_MERGE_SPLITS, EXT_PRETOKENIZER, FLAG_SHARED_CLASSIFIER, HEADER_BYTES, MAGIC, MAX_STOP_IDS,
    NONE, TENSOR_ENTRY_BYTES, TOK_FLAG_DUMMY_PREFIX, TOK_FLAG_IGNORE_MERGES,
    TOK_FLAG_NO_PREFIX_BEFORE_SPACE, VERSION_MAJOR, VERSION_MINOR,
};
use chispa_core::model::MAX_GROUP;
use chispa_core::Model;

use crate::aligned::AlignedBytes;
use crate::calibrate::{choose_groups, choose_types, Calibration, TypeChoice, TypeGoal};
use crate::quant::{pack_i4, quantize, quantize_i4, QuantStats};
use crate::source::{canonical_names, SourceModel, TokenizerExt, Vocab};

/// Fixed quantization group for most matrices (see the README for the measurement).
pub const DEFAULT_GROUP: usize = 32;
/// Fixed group for `w2`, whose input (the SwiGLU product) has outliers.
pub const W2_GROUP: usize = 16;
/// Fixed group for the classifier, whose error lands directly in the logits.
pub const CLASSIFIER_GROUP: usize = 8;

/// The fixed quantization group for a matrix of `kind` (`shared`: the classifier is the
/// embedding).
pub fn fixed_group(kind: TensorKind, shared: bool) -> usize {
    match kind {
        TensorKind::W2 => W2_GROUP,
        TensorKind::Classifier => CLASSIFIER_GROUP,
        TensorKind::TokEmbed if shared => CLASSIFIER_GROUP,
        _ => DEFAULT_GROUP,
    }
}

/// How int8 matrices are grouped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Groups {
    /// Per matrix, from the logit SNR measured on calibration text sampled from the model
    /// ([`crate::calibrate`]): the fixed groups if they reach the target, finer groups for
    /// the most sensitive matrices otherwise. The default.
    Calibrated {
        /// Target logit SNR in dB.
        target_snr_db: f32,
    },
    /// [`DEFAULT_GROUP`], [`W2_GROUP`] for `w2`, [`CLASSIFIER_GROUP`] for the classifier;
    /// nothing measured.
    Fixed,
    /// One group for every matrix.
    Uniform(usize),
}

impl Default for Groups {
    fn default() -> Self {
        Self::Calibrated { target_snr_db: crate::calibrate::DEFAULT_TARGET_SNR_DB }
    }
}

/// How to write.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WriteOptions {
    /// Element type of the matrices (int8 by default). [`DType::I4`]: int4 matrices, except
    /// those calibration keeps int8 ([`Mix::int4_min_snr_db`]).
    pub dtype: DType,
    /// Quantization groups of the quantized matrices (an int4 matrix takes the group its
    /// int8 form would have).
    pub groups: Groups,
    /// int4 or int8 per matrix: a quality floor (int4) and a byte budget (any quantized type).
    pub mix: Mix,
}

/// How a quantized file chooses between int4 and int8 per matrix
/// ([`crate::calibrate::choose_types`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// With [`DType::I4`]: matrices go back to int8, the most logit noise removed per byte
    /// first, until the logit SNR on calibration text reaches this (dB); 0: every matrix
    /// int4, nothing measured.
    pub int4_min_snr_db: f32,
    /// The file must fit in this many bytes: starting from int8, matrices become int4, the
    /// least logit noise added per byte saved first, until it fits (an error if even every
    /// matrix int4 does not).
    pub max_bytes: Option<usize>,
}

impl Default for Mix {
    fn default() -> Self {
        Self { int4_min_snr_db: crate::calibrate::DEFAULT_INT4_MIN_SNR_DB, max_bytes: None }
    }
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self { dtype: DType::I8, groups: Groups::default(), mix: Mix::default() }
    }
}

impl WriteOptions {
    /// `dtype` with the default groups, or one group for every matrix.
    pub fn new(dtype: DType, group_size: Option<usize>) -> Self {
        Self {
            dtype,
            groups: group_size.map_or_else(Groups::default, Groups::Uniform),
            mix: Mix::default(),
        }
    }
}

/// What was written for one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    /// Name.
    pub name: String,
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// Stored element type.
    pub dtype: DType,
    /// Quantization group (int8 and int4; 0 for f32).
    pub group: usize,
    /// Bytes stored (elements and scales).
    pub bytes: usize,
    /// Quantization error (int8 and int4).
    pub stats: Option<QuantStats>,
}

/// What was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Per tensor, in file order.
    pub tensors: Vec<TensorReport>,
    /// Parameters stored.
    pub parameters: usize,
    /// Bytes of the whole file.
    pub file_bytes: usize,
    /// What calibration measured and chose ([`Groups::Calibrated`], quantized files only).
    pub calibration: Option<Calibration>,
    /// The int4 / int8 choice per matrix, when one was measured ([`Mix`]).
    pub types: Option<TypeChoice>,
}

fn pad(out: &mut Vec<u8>) -> u32 {
    out.resize(align_up(out.len()), 0);
    out.len() as u32
}

fn check_group(g: usize) -> Result<()> {
    ensure!((1..=MAX_GROUP as usize).contains(&g), "group size {g} is not in 1..={MAX_GROUP}");
    Ok(())
}

fn check(model: &SourceModel) -> Result<()> {
    let p = &model.params;
    let names = canonical_names(p)?;
    ensure!(
        names.len() == model.tensors.len(),
        "model has {} tensors, its shape needs {}",
        model.tensors.len(),
        names.len()
    );
    for ((name, rows, cols), t) in names.iter().zip(&model.tensors) {
        ensure!(
            t.rows == *rows && t.cols == *cols && t.data.len() == rows * cols,
            "tensor {}: shape [{}, {}] with {} elements, expected [{rows}, {cols}] for {name}",
            t.name,
            t.rows,
            t.cols,
            t.data.len()
        );
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            bail!("tensor {}: element {i} is {} (not finite)", t.name, t.data[i]);
        }
    }
    ensure!(
        p.norm_eps.is_finite() && p.norm_eps >= 0.0,
        "the norm epsilon {:e} is not a finite number ≥ 0",
        p.norm_eps
    );
    ensure!(
        !p.arch.spec().rope || (p.rope_theta.is_finite() && p.rope_theta > 1.0),
        "the RoPE base {:e} is not a finite number above 1",
        p.rope_theta
    );
    ensure!(
        p.head_dim == 0 || p.arch.spec().free_head_dim,
        "a head width of {} (not dim / n_heads) is not supported for {}",
        p.head_dim,
        p.arch.name()
    );
    let v = &model.vocab;
    if let Some(i) = v.scores.iter().position(|s| !s.is_finite()) {
        bail!("tokenizer: the score of token {i} is {} (not finite)", v.scores[i]);
    }
    ensure!(
        v.pieces.len() == p.vocab_size && v.scores.len() == p.vocab_size,
        "tokenizer has {} tokens, the model's vocabulary has {}",
        v.pieces.len(),
        p.vocab_size
    );
    ensure!(v.stop_ids.len() <= MAX_STOP_IDS, "more than {MAX_STOP_IDS} stop ids");
    Ok(())
}

fn sorted_index(v: &Vocab) -> Result<Vec<u32>> {
    let mut ids: Vec<u32> = (0..v.pieces.len() as u32).collect();
    ids.sort_by(|a, b| v.pieces[*a as usize].cmp(&v.pieces[*b as usize]));
    for w in ids.windows(2) {
        if v.pieces[w[0] as usize] == v.pieces[w[1] as usize] {
            bail!(
                "tokenizer: tokens {} and {} have the same piece {:?}",
                w[0],
                w[1],
                String::from_utf8_lossy(&v.pieces[w[0] as usize])
            );
        }
    }
    Ok(ids)
}

/// Builds a `.chispa` image in memory and checks that `chispa_core` accepts it.
/// `progress(done, total)` is called after each tensor of the final image (calibration, if
/// any, comes first).
///
/// # Errors
/// Inconsistent shapes, non-finite weights, a vocabulary of the wrong size or with duplicate
/// pieces, an unsupported group size, or a file over 4 GiB.
pub fn build(
    model: &SourceModel,
    opts: &WriteOptions,
    progress: impl FnMut(usize, usize),
) -> Result<(AlignedBytes, Report)> {
    check(model)?;
    let per_kind = |f: &dyn Fn(TensorKind) -> usize| -> Vec<usize> {
        (0..model.tensors.len())
            .map(|i| match model.params.tensor(i) {
                Some((kind, ..)) if !kind.is_vector() => f(kind),
                _ => 0,
            })
            .collect()
    };
    let shared = model.params.shared_classifier;
    let (groups, calibration) = match (opts.dtype, opts.groups) {
        (DType::F32, _) => (vec![0; model.tensors.len()], None),
        (_, Groups::Uniform(g)) => {
            check_group(g)?;
            (per_kind(&|_| g), None)
        }
        (_, Groups::Fixed) => (per_kind(&|k| fixed_group(k, shared)), None),
        (_, Groups::Calibrated { target_snr_db }) => {
            let c = choose_groups(model, target_snr_db as f64)?;
            (c.groups.clone(), Some(c))
        }
    };
    let matrices = |d: DType| -> Vec<DType> {
        (0..model.tensors.len())
            .map(|i| match model.params.tensor(i) {
                Some((kind, ..)) if !kind.is_vector() => d,
                _ => DType::F32,
            })
            .collect()
    };
    let goal = match (opts.dtype, opts.mix.max_bytes) {
        (DType::F32, Some(_)) => bail!("a byte budget needs quantized matrices (int8 or int4)"),
        (DType::F32, None) => None,
        (_, Some(n)) => Some(TypeGoal::MaxBytes(n)),
        (DType::I4, None) if opts.mix.int4_min_snr_db > 0.0 => {
            Some(TypeGoal::MinSnr(opts.mix.int4_min_snr_db as f64))
        }
        (d, None) => {
            let (image, mut report) = build_with_types(model, &matrices(d), &groups, progress)?;
            report.calibration = calibration;
            return Ok((image, report));
        }
    };
    let (dtypes, types) = match goal {
        Some(goal) => {
            let t = choose_types(model, &groups, goal)?;
            (t.dtypes.clone(), Some(t))
        }
        None => (matrices(DType::F32), None),
    };
    let (image, mut report) = build_with_types(model, &dtypes, &groups, progress)?;
    report.calibration = calibration;
    report.types = types;
    Ok((image, report))
}

/// [`build`] with an explicit group per tensor in canonical order (0 for vectors; ignored
/// for f32). Matrices that read the same activation (`wq`/`wk`/`wv`, `w1`/`w3`) must share
/// one group.
///
/// # Errors
/// As [`build`].
pub fn build_with_groups(
    model: &SourceModel,
    weight_dtype: DType,
    groups: &[usize],
    progress: impl FnMut(usize, usize),
) -> Result<(AlignedBytes, Report)> {
    let dtypes: Vec<DType> = (0..model.tensors.len())
        .map(|i| match model.params.tensor(i) {
            Some((kind, ..)) if !kind.is_vector() => weight_dtype,
            _ => DType::F32,
        })
        .collect();
    build_with_types(model, &dtypes, groups, progress)
}

/// [`build_with_groups`] with an element type per tensor too (vectors are always f32; the
/// matrices all f32, or each int8 or int4). The header's weight type is int4 when any
/// matrix is (a mixed file), else the matrices' type.
///
/// # Errors
/// As [`build`], or matrices that mix f32 with a quantized type.
pub fn build_with_types(
    model: &SourceModel,
    dtypes: &[DType],
    groups: &[usize],
    mut progress: impl FnMut(usize, usize),
) -> Result<(AlignedBytes, Report)> {
    check(model)?;
    ensure!(groups.len() == model.tensors.len(), "one group per tensor");
    ensure!(dtypes.len() == model.tensors.len(), "one element type per tensor");
    let matrix_types = (0..model.tensors.len())
        .filter(|i| model.params.tensor(*i).is_some_and(|(k, ..)| !k.is_vector()))
        .map(|i| dtypes[i]);
    let (mut any_f32, mut any_i4, mut any_i8) = (false, false, false);
    for d in matrix_types {
        any_f32 |= d == DType::F32;
        any_i4 |= d == DType::I4;
        any_i8 |= d == DType::I8;
    }
    ensure!(!(any_f32 && (any_i4 || any_i8)), "f32 and quantized matrices in one file");
    let weight_dtype = if any_i4 {
        DType::I4
    } else if any_i8 {
        DType::I8
    } else {
        DType::F32
    };
    let p = &model.params;
    let v = &model.vocab;
    let n = model.tensors.len();
    let mut out = vec![0u8; HEADER_BYTES];
    let tensors_offset = pad(&mut out);
    out.resize(out.len() + n * TENSOR_ENTRY_BYTES, 0);
    let mut entries = Vec::with_capacity(n);
    let mut reports = Vec::with_capacity(n);
    for (i, t) in model.tensors.iter().enumerate() {
        let (kind, layer, ..) = p.tensor(i).context("tensor beyond the canonical list")?;
        let dtype = if kind.is_vector() { DType::F32 } else { dtypes[i] };
        let group = match dtype {
            DType::F32 => 0,
            DType::I8 | DType::I4 => {
                check_group(groups[i])?;
                groups[i]
            }
        };
        let mut e = TensorEntry {
            kind: kind as u16,
            layer: layer as u16,
            dtype: dtype as u16,
            group: group as u16,
            rows: t.rows as u32,
            cols: t.cols as u32,
            ..TensorEntry::default()
        };
        e.data_offset = pad(&mut out);
        let stats = match dtype {
            DType::F32 => {
                out.extend(t.data.iter().flat_map(|x| x.to_le_bytes()));
                None
            }
            DType::I8 => {
                let qz = quantize(&t.data, t.cols, group);
                out.extend(qz.q.iter().map(|x| *x as u8));
                e.data_len = qz.q.len() as u32;
                e.scales_offset = pad(&mut out);
                out.extend(qz.row_scales.iter().flat_map(|s| s.to_le_bytes()));
                out.extend(&qz.mults);
                e.scales_len = (qz.row_scales.len() * 4 + qz.mults.len()) as u32;
                Some(qz.stats)
            }
            DType::I4 => {
                let qz = quantize_i4(&t.data, t.cols, group);
                let packed = pack_i4(&qz.q, t.cols);
                out.extend(&packed);
                e.data_len = packed.len() as u32;
                e.scales_offset = pad(&mut out);
                out.extend(qz.row_scales.iter().flat_map(|s| s.to_le_bytes()));
                out.extend(&qz.mults);
                e.scales_len = (qz.row_scales.len() * 4 + qz.mults.len()) as u32;
                Some(qz.stats)
            }
        };
        if dtype == DType::F32 {
            e.data_len = (t.data.len() * 4) as u32;
        }
        reports.push(TensorReport {
            name: t.name.clone(),
            rows: t.rows,
            cols: t.cols,
            dtype,
            group,
            bytes: (e.data_len + e.scales_len) as usize,
            stats,
        });
        entries.push(e);
        progress(i + 1, n);
    }
    for (i, e) in entries.iter().enumerate() {
        let at = tensors_offset as usize + i * TENSOR_ENTRY_BYTES;
        out[at..at + TENSOR_ENTRY_BYTES].copy_from_slice(&e.write());
    }

    let scores_offset = pad(&mut out);
    out.extend(v.scores.iter().flat_map(|s| s.to_le_bytes()));
    let piece_offsets_offset = pad(&mut out);
    let mut acc = 0u32;
    out.extend(0u32.to_le_bytes());
    for piece in &v.pieces {
        acc += piece.len() as u32;
        out.extend(acc.to_le_bytes());
    }
    let pieces_offset = pad(&mut out);
    for piece in &v.pieces {
        out.extend(piece);
    }
    let sorted_offset = pad(&mut out);
    out.extend(sorted_index(v)?.iter().flat_map(|i| i.to_le_bytes()));
    let ext_offset = pad(&mut out);
    let ext = extension(&v.ext);
    out.extend(&ext);
    let (tok_ext_offset, tok_ext_len) =
        if ext.is_empty() { (0, 0) } else { (ext_offset, ext.len() as u32) };
    pad(&mut out);
    ensure!(out.len() <= u32::MAX as usize, "model file would exceed 4 GiB");

    let mut stop_ids = [0u32; MAX_STOP_IDS];
    stop_ids[..v.stop_ids.len()].copy_from_slice(&v.stop_ids);
    let header = Header {
        magic: MAGIC,
        version_major: VERSION_MAJOR,
        version_minor: VERSION_MINOR,
        header_bytes: HEADER_BYTES as u32,
        file_bytes: out.len() as u32,
        checksum: 0,
        arch: p.arch as u32,
        weight_dtype: weight_dtype as u32,
        dim: p.dim as u32,
        hidden_dim: p.hidden_dim as u32,
        n_layers: p.n_layers as u32,
        n_heads: p.n_heads as u32,
        n_kv_heads: p.n_kv_heads as u32,
        vocab_size: p.vocab_size as u32,
        max_seq_len: p.max_seq_len as u32,
        rope_theta: p.rope_theta,
        norm_eps: p.norm_eps,
        flags: if p.shared_classifier { FLAG_SHARED_CLASSIFIER } else { 0 },
        n_tensors: n as u32,
        tensors_offset,
        tok_kind: v.kind as u32,
        tok_flags: if v.dummy_prefix { TOK_FLAG_DUMMY_PREFIX } else { 0 }
            | if v.no_prefix_before_space { TOK_FLAG_NO_PREFIX_BEFORE_SPACE } else { 0 }
            | if v.ext.ignore_merges { TOK_FLAG_IGNORE_MERGES } else { 0 },
        bos_id: v.bos.unwrap_or(NONE),
        eos_id: v.eos.unwrap_or(NONE),
        byte_fallback_base: v.byte_fallback_base.unwrap_or(NONE),
        max_piece_len: v.pieces.iter().map(Vec::len).max().unwrap_or(0) as u32,
        scores_offset,
        piece_offsets_offset,
        pieces_offset,
        pieces_len: acc,
        sorted_offset,
        n_stop_ids: v.stop_ids.len() as u32,
        stop_ids,
        tok_ext_offset,
        tok_ext_len,
        head_dim: p.head_dim as u32,
    };
    out[..HEADER_BYTES].copy_from_slice(&header.write());
    let crc = file_checksum(&out);
    out[chispa_core::format::CHECKSUM_OFFSET..][..4].copy_from_slice(&crc.to_le_bytes());

    let image = AlignedBytes::copy_from(&out);
    Model::parse(image.as_slice()).context("the written file does not parse (a writer bug)")?;
    let parameters = model.tensors.iter().map(|t| t.data.len()).sum();
    let file_bytes = out.len();
    Ok((image, Report { tensors: reports, parameters, file_bytes, calibration: None, types: None }))
}

/// The tokenizer extension section: one record per item present (empty when none is).
fn extension(e: &TokenizerExt) -> Vec<u8> {
    fn record(out: &mut Vec<u8>, tag: u32, payload: &[u8]) {
        out.extend(tag.to_le_bytes());
        out.extend((payload.len() as u32).to_le_bytes());
        out.extend(payload);
        out.resize(out.len().div_ceil(4) * 4, 0);
    }
    let words = |w: &[u32]| -> Vec<u8> { w.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut out = Vec::new();
    if let Some(p) = &e.pre_tokenizer {
        record(&mut out, EXT_PRETOKENIZER, &words(p));
    }
    if let Some(s) = &e.merge_splits {
        record(&mut out, EXT_MERGE_SPLITS, s);
    }
    if !e.added_tokens.is_empty() {
        record(&mut out, EXT_ADDED_TOKENS, &words(&e.added_tokens));
    }
    if let Some(c) = &e.chat {
        record(&mut out, EXT_CHAT_PREFIX, c.prefix.as_bytes());
        record(&mut out, EXT_CHAT_SUFFIX, c.suffix.as_bytes());
        record(&mut out, EXT_CHAT_TEMPLATE, c.template.as_bytes());
        record(&mut out, EXT_CHAT_BOS_TOKEN, c.specials.bos.as_bytes());
        record(&mut out, EXT_CHAT_EOS_TOKEN, c.specials.eos.as_bytes());
    }
    out
}

/// Writes `bytes` to `path` by the [output policy](crate::output) for a command without
/// inputs (a cache): through a synced temporary file, renamed into place.
///
/// # Errors
/// As [`crate::output::write`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::output::write(path, &[], bytes)
}

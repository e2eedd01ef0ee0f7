//! `Model::parse`: validate a `.chispa` byte string once, then borrow its tensors in place.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use crate::arch::{info, Input, Params};
use crate::error::FormatError;
use crate::format::{
    self, byte_groups, file_checksum, i8_scales_len, Arch, DType, Header, TensorEntry,
    TokenizerKind, ALIGN, BASE_ALIGN, FLAG_SHARED_CLASSIFIER, HEADER_BYTES, NONE,
    TENSOR_ENTRY_BYTES,
};
use crate::tokenizer::Tokenizer;

/// Largest accepted width (dim, hidden_dim).
pub const MAX_DIM: u32 = 1 << 16;
/// Largest accepted vocabulary.
pub const MAX_VOCAB: u32 = 1 << 20;
/// Largest accepted layer count.
pub const MAX_LAYERS: u32 = 1024;
/// Largest accepted context.
pub const MAX_SEQ: u32 = 1 << 20;
/// Largest accepted quantization group (keeps a group's i32 sum exact).
pub const MAX_GROUP: u32 = crate::kernels::MAX_GROUP as u32;

/// A parsed model's hyper-parameters ([`Params`], which it dereferences to) and the element
/// type and quantization found in its tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Hyper-parameters (architecture and shapes).
    pub params: Params,
    /// Element type of the matrices.
    pub dtype: DType,
    /// Smallest quantization group of any matrix (0 for f32).
    pub min_group: usize,
}

impl core::ops::Deref for Config {
    type Target = Params;
    fn deref(&self) -> &Params {
        &self.params
    }
}

/// Elements of a matrix, borrowed from the model bytes.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    /// f32 elements `[rows, cols]`.
    F32(&'a [f32]),
    /// int8 elements `[rows, cols]`; element `j` of row `r` is
    /// `q[r, j] · (row_scales[r] · mults[r, j / group])`.
    I8 {
        /// Quantized elements.
        q: &'a [i8],
        /// One f32 scale per row.
        row_scales: &'a [f32],
        /// One multiplier per row and group, `[rows, groups_per_row]`.
        mults: &'a [u8],
    },
    /// int4 elements, two per byte (`[rows, cols.div_ceil(2)]` bytes, the even column in the
    /// low nibble); element `j` of row `r` is `w4[r, j] · (row_scales[r] · mults[r, j / group])`.
    I4 {
        /// Packed elements.
        q: &'a [u8],
        /// One f32 scale per row.
        row_scales: &'a [f32],
        /// One multiplier per row and group, `[rows, groups_per_row]`.
        mults: &'a [u8],
    },
}

/// A matrix (or, with `rows == 1`, a vector) borrowed from the model bytes.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// Quantization group along `cols` (0 for f32).
    pub group: usize,
    /// The elements.
    pub weights: Weights<'a>,
}

/// A validated model, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    bytes: &'a [u8],
    header: Header,
    config: Config,
    tokenizer: Tokenizer<'a>,
}

/// Checks that `[offset, offset + len)` lies in `bytes` and starts at an [`ALIGN`] boundary.
pub(crate) fn section<'a>(
    bytes: &'a [u8],
    name: &'static str,
    offset: u32,
    len: usize,
) -> Result<&'a [u8], FormatError> {
    let offset = offset as usize;
    let bad = FormatError::BadSection { section: name, offset, len };
    if offset % ALIGN != 0 {
        return Err(bad);
    }
    let end = offset.checked_add(len).ok_or(bad)?;
    bytes.get(offset..end).ok_or(bad)
}

fn dim(field: &'static str, value: u32, max: u32) -> Result<usize, FormatError> {
    if value == 0 || value > max {
        return Err(FormatError::BadDimension { field, value });
    }
    Ok(value as usize)
}

impl<'a> Model<'a> {
    /// Validates every byte of a `.chispa` file and returns a model that borrows it.
    ///
    /// # Errors
    /// A [`FormatError`] naming the first problem found: size, magic, version, checksum,
    /// alignment, dimensions, tensor directory or tokenizer tables. After `Ok`, inference
    /// cannot index out of bounds.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let head: &[u8; HEADER_BYTES] =
            bytes
                .get(..HEADER_BYTES)
                .and_then(|h| h.try_into().ok())
                .ok_or(FormatError::Truncated { needed: HEADER_BYTES, found: bytes.len() })?;
        let h = Header::read(head);
        if h.magic != format::MAGIC {
            return Err(FormatError::BadMagic { found: h.magic });
        }
        if h.version_major != format::VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                major: h.version_major,
                minor: h.version_minor,
            });
        }
        if h.header_bytes as usize != HEADER_BYTES {
            return Err(FormatError::BadHeaderSize { found: h.header_bytes });
        }
        let declared = h.file_bytes as usize;
        if declared > bytes.len() {
            return Err(FormatError::Truncated { needed: declared, found: bytes.len() });
        }
        if declared < bytes.len() {
            return Err(FormatError::TrailingBytes { declared, found: bytes.len() });
        }
        let computed = file_checksum(bytes);
        if computed != h.checksum {
            return Err(FormatError::ChecksumMismatch { stored: h.checksum, computed });
        }
        // What a newer minor version may add (a reserved field, a code) is refused as that
        // version, so the message says to update rather than that the file is broken.
        let newer = |e: FormatError| match e {
            FormatError::ReservedNotZero { .. }
            | FormatError::UnknownCode { .. }
            | FormatError::BadTensor { .. }
                if h.version_minor > format::VERSION_MINOR =>
            {
                FormatError::UnsupportedVersion { major: h.version_major, minor: h.version_minor }
            }
            e => e,
        };
        if let Some(off) = head[Header::USED_BYTES..].iter().position(|b| *b != 0) {
            return Err(newer(FormatError::ReservedNotZero { offset: Header::USED_BYTES + off }));
        }
        if bytes.as_ptr() as usize % BASE_ALIGN != 0 {
            return Err(FormatError::MisalignedBuffer { required: BASE_ALIGN });
        }
        let mut config = Self::parse_config(&h).map_err(newer)?;
        config.min_group = Self::check_tensors(bytes, &h, &config).map_err(newer)?;
        let tokenizer = Tokenizer::parse(bytes, &h, config.vocab_size)?;
        Ok(Self { bytes, header: h, config, tokenizer })
    }

    fn parse_config(h: &Header) -> Result<Config, FormatError> {
        let arch = Arch::from_code(h.arch)
            .ok_or(FormatError::UnknownCode { field: "architecture", value: h.arch })?;
        let dtype = DType::from_code(h.weight_dtype)
            .ok_or(FormatError::UnknownCode { field: "weight dtype", value: h.weight_dtype })?;
        let params = Params {
            arch,
            dim: dim("dim", h.dim, MAX_DIM)?,
            hidden_dim: dim("hidden_dim", h.hidden_dim, MAX_DIM)?,
            n_layers: dim("n_layers", h.n_layers, MAX_LAYERS)?,
            n_heads: dim("n_heads", h.n_heads, h.dim)?,
            n_kv_heads: dim("n_kv_heads", h.n_kv_heads, h.n_heads)?,
            head_dim: match h.head_dim {
                0 => 0,
                d if arch.spec().free_head_dim => dim("head_dim", d, MAX_DIM)?,
                d => return Err(FormatError::BadDimension { field: "head_dim", value: d }),
            },
            vocab_size: dim("vocab_size", h.vocab_size, MAX_VOCAB)?,
            max_seq_len: dim("max_seq_len", h.max_seq_len, MAX_SEQ)?,
            rope_theta: h.rope_theta,
            norm_eps: h.norm_eps,
            shared_classifier: h.flags & FLAG_SHARED_CLASSIFIER != 0,
        };
        let c = Config { params, dtype, min_group: 0 };
        if h.flags & !FLAG_SHARED_CLASSIFIER != 0 {
            return Err(FormatError::UnknownCode { field: "flags", value: h.flags });
        }
        if (c.head_dim == 0 && c.dim % c.n_heads != 0) || c.head_size() % 2 != 0 {
            return Err(FormatError::BadDimension { field: "n_heads", value: h.n_heads });
        }
        if c.n_heads % c.n_kv_heads != 0 {
            return Err(FormatError::BadDimension { field: "n_kv_heads", value: h.n_kv_heads });
        }
        if c.arch.spec().rope && !(c.rope_theta.is_finite() && c.rope_theta > 1.0) {
            return Err(FormatError::BadFloat { field: "rope_theta" });
        }
        if !(c.norm_eps.is_finite() && c.norm_eps >= 0.0) {
            return Err(FormatError::BadFloat { field: "norm_eps" });
        }
        Ok(c)
    }

    /// Validates the directory and every tensor; returns the smallest int8 group.
    fn check_tensors(bytes: &[u8], h: &Header, c: &Config) -> Result<usize, FormatError> {
        let p = &c.params;
        let n = p.tensor_count();
        if h.n_tensors as usize != n {
            return Err(FormatError::BadDimension { field: "n_tensors", value: h.n_tensors });
        }
        let dir_len = n * TENSOR_ENTRY_BYTES;
        let dir = section(bytes, "tensor directory", h.tensors_offset, dir_len)?;
        if (h.tensors_offset as usize) < HEADER_BYTES {
            return Err(FormatError::BadSection {
                section: "tensor directory",
                offset: h.tensors_offset as usize,
                len: dir_len,
            });
        }
        // The tensor section: after the directory, before the first tokenizer table. Tensors
        // lie in it in directory order (data, then scales), so no two overlap.
        let mut free_from = h.tensors_offset as usize + dir_len;
        let section_end =
            [h.scores_offset, h.piece_offsets_offset, h.pieces_offset, h.sorted_offset]
                .into_iter()
                .min()
                .unwrap_or(0) as usize;
        let mut claim = |offset: u32, len: usize, i: usize| -> Result<(), FormatError> {
            let bad = |what| FormatError::BadTensor { index: i, what };
            let start = offset as usize;
            if start < free_from {
                return Err(bad(
                    "data overlaps the directory or an earlier tensor (tensors follow the directory in its order)",
                ));
            }
            let end = start.checked_add(len).ok_or(bad("data runs past the file"))?;
            if end > section_end {
                return Err(bad("data runs into the tokenizer tables"));
            }
            free_from = end;
            Ok(())
        };
        let mut min_group = usize::MAX;
        for i in 0..n {
            let bad = |what| FormatError::BadTensor { index: i, what };
            let e = entry(dir, i).ok_or(bad("directory entry out of bounds"))?;
            let (kind, layer, rows, cols) = p.tensor(i).ok_or(bad("beyond the canonical list"))?;
            if e.kind != kind as u16 || e.layer as usize != layer {
                return Err(bad("kind or layer out of canonical order"));
            }
            if e.rows as usize != rows || e.cols as usize != cols {
                return Err(bad("shape does not match the hyper-parameters"));
            }
            // Vectors are f32; matrices have the model's type, except that an int4 model's
            // matrices may each be int4 or int8 (a mixed file).
            let stored = DType::from_code(u32::from(e.dtype));
            let dtype = match (kind.is_vector(), c.dtype, stored) {
                (true, ..) => DType::F32,
                (false, DType::I4, Some(DType::I8)) => DType::I8,
                (false, model, _) => model,
            };
            if stored != Some(dtype) {
                return Err(bad("element type does not match the model's"));
            }
            let group = e.group as usize;
            let scales_len = match dtype {
                DType::F32 if group == 0 => 0,
                DType::I8 | DType::I4 if (1..=MAX_GROUP as usize).contains(&group) => {
                    i8_scales_len(rows, cols, group)
                }
                _ => return Err(bad("quantization group out of range")),
            };
            let data_len = dtype.data_len(rows, cols);
            if dtype.is_quantized() {
                min_group = min_group.min(group);
            }
            // Matrices that read one quantized activation must group it alike: the first
            // earlier matrix of the layer that reads the same one (the tensor table's input).
            let partner = shared_input_partner(p, i);
            if let Some(p) = partner {
                let pe = entry(dir, p).ok_or(bad("directory entry out of bounds"))?;
                if pe.group != e.group {
                    return Err(bad("group differs from the matrix that reads the same input"));
                }
            }
            if e.data_len as usize != data_len || e.scales_len as usize != scales_len {
                return Err(bad("stored length does not match its shape"));
            }
            section(bytes, "tensor data", e.data_offset, data_len)?;
            claim(e.data_offset, data_len, i)?;
            if dtype.is_quantized() {
                let s = section(bytes, "tensor scales", e.scales_offset, scales_len)?;
                claim(e.scales_offset, scales_len, i)?;
                let row_scales = s.get(..rows * 4).unwrap_or_default();
                if byte_groups(row_scales).any(|b| !f32::from_le_bytes(b).is_finite()) {
                    return Err(bad("a row scale is not finite"));
                }
            } else if e.scales_offset != 0 {
                return Err(bad("f32 tensor with scales"));
            }
        }
        Ok(if c.dtype.is_quantized() { min_group } else { 0 })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The raw header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The tokenizer stored in the file.
    pub fn tokenizer(&self) -> &Tokenizer<'a> {
        &self.tokenizer
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Token ids that end generation.
    pub fn stop_ids(&self) -> &[u32] {
        let all = &self.header.stop_ids;
        // All of them at most (`parse` checked `n_stop_ids <= MAX_STOP_IDS`).
        all.get(..self.header.n_stop_ids as usize).unwrap_or(all)
    }

    /// The directory entry at `index`.
    pub fn tensor_entry(&self, index: usize) -> Option<TensorEntry> {
        if index >= self.header.n_tensors as usize {
            return None;
        }
        let start = self.header.tensors_offset as usize;
        entry(self.bytes.get(start..)?, index)
    }

    /// The matrix at directory `index` (validated by `parse`).
    pub fn matrix(&self, index: usize) -> Matrix<'a> {
        let e = self.tensor_entry(index).unwrap_or_default();
        let data = slice(self.bytes, e.data_offset, e.data_len);
        let scales = slice(self.bytes, e.scales_offset, e.scales_len);
        let (row_scales, mults) = scales.split_at(scales.len().min(e.rows as usize * 4));
        let row_scales = bytemuck::cast_slice(row_scales);
        let weights = match DType::from_code(u32::from(e.dtype)) {
            Some(DType::I8) => Weights::I8 { q: bytemuck::cast_slice(data), row_scales, mults },
            Some(DType::I4) => Weights::I4 { q: data, row_scales, mults },
            _ => Weights::F32(bytemuck::cast_slice(data)),
        };
        Matrix { rows: e.rows as usize, cols: e.cols as usize, group: e.group as usize, weights }
    }

    /// The norm weight or bias at directory `index` (validated by `parse` as f32 of its
    /// shape; the architectures' `Layer` structs only ask for the indices of vectors).
    pub fn vector(&self, index: usize) -> &'a [f32] {
        let e = self.tensor_entry(index).unwrap_or_default();
        bytemuck::cast_slice(slice(self.bytes, e.data_offset, e.data_len))
    }

    /// Whether the token ids `stop_ids` contain `id`.
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids().contains(&id)
    }

    /// Beginning-of-sequence id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        (self.header.bos_id != NONE).then_some(self.header.bos_id)
    }

    /// The tokenizer algorithm.
    pub fn tokenizer_kind(&self) -> Option<TokenizerKind> {
        TokenizerKind::from_code(self.header.tok_kind)
    }
}

/// The directory index of the first matrix before `index` in its layer that reads the same
/// activation (the tensor table's [`Input`]), if any.
fn shared_input_partner(p: &Params, index: usize) -> Option<usize> {
    let (kind, layer, ..) = p.tensor(index)?;
    let input = info(kind).input;
    if input == Input::None || !info(kind).per_layer {
        return None;
    }
    let base = crate::arch::layer_base_of(p, layer);
    (base..index).find(|j| p.tensor(*j).is_some_and(|(k, ..)| info(k).input == input))
}

/// Entry `i` of the directory `dir`, or `None` past its end.
fn entry(dir: &[u8], i: usize) -> Option<TensorEntry> {
    let start = i.checked_mul(TENSOR_ENTRY_BYTES)?;
    dir.get(start..)?.first_chunk().map(TensorEntry::read)
}

fn slice(bytes: &[u8], offset: u32, len: u32) -> &[u8] {
    let (o, l) = (offset as usize, len as usize);
    bytes.get(o..o + l).unwrap_or(&[])
}

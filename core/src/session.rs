//! Memory planning and the forward pass.
//!
//! `Model::plan` says exactly how many bytes a session needs; the caller owns that arena and
//! hands it to `Session::new`, which carves every buffer (activations, KV cache, sampler
//! scratch) out of it once. `forward` then allocates nothing and cannot fail after its two
//! argument checks.

use crate::error::{PlanError, RunError};
use crate::kernels::Kernels;
use crate::kv::KvCache;
use crate::model::{Config, Model};
use crate::observe::{NoObserver, Observer};

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KvType {
    /// 32-bit float (exact).
    #[default]
    F32,
    /// IEEE half precision (`half::f16`, round to nearest even).
    F16,
    /// int8 with one f32 scale per cached row (layer, position): see the `kv` module.
    I8,
    /// The bytes of `I8`, spent where the error is: Hadamard-rotated heads, 10-bit keys and
    /// 7-bit values, one f16 scale each per row: see the `kv` module.
    K10V7,
}

impl KvType {
    /// All types, in the order the command line lists them.
    pub const ALL: [KvType; 4] = [Self::F32, Self::F16, Self::I8, Self::K10V7];

    /// Bytes of one cached key row and one value row of `kv_dim` elements, and of the scale
    /// stored with each (0 when there is none); `None` on overflow.
    pub fn row_bytes(self, kv_dim: usize) -> Option<(usize, usize, usize)> {
        Some(match self {
            Self::F32 => (kv_dim.checked_mul(4)?, kv_dim.checked_mul(4)?, 0),
            Self::F16 => (kv_dim.checked_mul(2)?, kv_dim.checked_mul(2)?, 0),
            Self::I8 => (kv_dim, kv_dim, 4),
            Self::K10V7 => (
                crate::kv::packed_row_bytes(kv_dim, crate::kv::K_ROW_BITS)?,
                crate::kv::packed_row_bytes(kv_dim, crate::kv::V_ROW_BITS)?,
                2,
            ),
        })
    }

    /// Name as the command line spells it (`f32`, `f16`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::I8 => "int8",
            Self::K10V7 => "k10v7",
        }
    }
}

/// What a session is planned for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SessionOptions {
    /// Context length in tokens; 0 means the model's maximum.
    pub context: usize,
    /// KV-cache element type.
    pub kv: KvType,
}

/// Alignment of every buffer carved from the arena (and of the arena itself).
pub const ARENA_ALIGN: usize = 16;

/// The memory a session needs, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Context length planned for.
    pub context: usize,
    /// KV-cache element type.
    pub kv: KvType,
    /// Bytes of the key and value caches together (with int8 scales).
    pub kv_cache_bytes: usize,
    /// Bytes of activations, logits and sampler scratch.
    pub scratch_bytes: usize,
    /// Total: the exact size of the arena `Session::new` needs.
    pub arena_bytes: usize,
}

/// Buffers in carving order: (elements, element bytes).
const N_BUFFERS: usize = 20;

fn buffer_sizes(c: &Config, ctx: usize, kv: KvType) -> Option<[(usize, usize); N_BUFFERS]> {
    let widest = c.dim.max(c.hidden_dim).max(c.q_dim());
    // The int16 activations of the matmuls, and two heads' queries for int8 or packed keys.
    let queries = if matches!(kv, KvType::I8 | KvType::K10V7) { 2 * c.head_size() } else { 0 };
    let xq = if c.dtype.is_quantized() { widest.max(queries) } else { queries };
    let rows = c.n_layers.checked_mul(ctx)?;
    let (key_row, value_row, scale) = kv.row_bytes(c.kv_dim())?;
    let scales = if scale == 0 { 0 } else { rows };
    Some([
        (c.dim, 4),                // x: residual stream [dim]
        (c.dim.max(c.q_dim()), 4), // xb [max(dim, q_dim)]
        (c.dim, 4),                // xb2 [dim]
        (c.hidden_dim, 4),         // hb [hidden]
        (c.hidden_dim, 4),         // hb2 [hidden]
        (c.q_dim(), 4),            // q [q_dim]
        (c.kv_dim(), 4),           // k [kv_dim]
        (c.kv_dim(), 4),           // v [kv_dim]
        (ctx, 4),                  // att [ctx], one head at a time
        (c.vocab_size, 4),         // logits [vocab]
        (c.vocab_size, 4),         // probs [vocab]
        (c.vocab_size, 4),         // sampler scratch [vocab] u32
        (xq, 2),                   // quantized activation [max(dim, hidden)] / queries i16
        (c.head_size() / 2, 4),    // RoPE frequencies [head_size / 2]
        (c.head_size() / 2, 4),    // cos at this position
        (c.head_size() / 2, 4),    // sin at this position
        (rows, key_row),           // key cache [n_layers, ctx] rows of kv_dim keys
        (rows, value_row),         // value cache [n_layers, ctx] rows of kv_dim values
        (scales, scale),           // key scales [n_layers, ctx] (I8: f32, K10V7: f16)
        (scales, scale),           // value scales [n_layers, ctx]
    ])
}

fn padded(elems: usize, size: usize) -> Option<usize> {
    elems.checked_mul(size)?.checked_next_multiple_of(ARENA_ALIGN)
}

impl Model<'_> {
    /// The exact arena size for a session with `options`.
    ///
    /// # Errors
    /// [`PlanError::BadContext`] for a context of 0 or above the model's maximum, and
    /// [`PlanError::TooLarge`] if the sizes overflow.
    pub fn plan(&self, options: &SessionOptions) -> Result<Plan, PlanError> {
        let c = self.config();
        let ctx = if options.context == 0 { c.max_seq_len } else { options.context };
        if ctx > c.max_seq_len {
            return Err(PlanError::BadContext { requested: ctx, max: c.max_seq_len });
        }
        let sizes = buffer_sizes(c, ctx, options.kv).ok_or(PlanError::TooLarge)?;
        let mut total = 0usize;
        let mut kv = 0usize;
        for (i, (n, s)) in sizes.iter().enumerate() {
            let b = padded(*n, *s).ok_or(PlanError::TooLarge)?;
            total = total.checked_add(b).ok_or(PlanError::TooLarge)?;
            if i >= N_BUFFERS - 4 {
                kv += b;
            }
        }
        Ok(Plan {
            context: ctx,
            kv: options.kv,
            kv_cache_bytes: kv,
            scratch_bytes: total - kv,
            arena_bytes: total,
        })
    }
}

/// Cuts typed buffers off the front of the arena.
struct Carver<'a> {
    rest: &'a mut [u8],
}

impl<'a> Carver<'a> {
    fn take<T: bytemuck::Pod>(&mut self, elems: usize) -> Result<&'a mut [T], PlanError> {
        let bytes = padded(elems, core::mem::size_of::<T>()).ok_or(PlanError::TooLarge)?;
        let rest = core::mem::take(&mut self.rest);
        let given = rest.len();
        if bytes > given {
            return Err(PlanError::ArenaTooSmall { needed: bytes, given });
        }
        let (head, tail) = rest.split_at_mut(bytes);
        self.rest = tail;
        let n = elems * core::mem::size_of::<T>();
        bytemuck::try_cast_slice_mut(&mut head[..n]).map_err(|_| PlanError::ArenaMisaligned)
    }
}

/// Working buffers, shapes beside each.
#[derive(Debug)]
pub(crate) struct Buffers<'a> {
    /// The kernel table every operation of the forward pass runs through.
    pub(crate) kern: Kernels,
    /// [dim] residual stream.
    pub(crate) x: &'a mut [f32],
    /// [max(dim, q_dim)] normalised input [dim] / attention output [q_dim].
    pub(crate) xb: &'a mut [f32],
    /// [dim] projection output.
    pub(crate) xb2: &'a mut [f32],
    /// [hidden] gate.
    pub(crate) hb: &'a mut [f32],
    /// [hidden] up.
    pub(crate) hb2: &'a mut [f32],
    /// [q_dim] query.
    pub(crate) q: &'a mut [f32],
    /// [kv_dim] key at this position.
    pub(crate) k: &'a mut [f32],
    /// [kv_dim] value at this position.
    pub(crate) v: &'a mut [f32],
    /// [n_heads, ctx] attention scores.
    pub(crate) att: &'a mut [f32],
    /// [vocab] output of the last forward pass.
    pub(crate) logits: &'a mut [f32],
    /// [vocab] sampler's working copy.
    pub(crate) probs: &'a mut [f32],
    /// [vocab] sampler's candidate ids.
    pub(crate) sample: &'a mut [u32],
    /// [max(dim, hidden)] quantized activation.
    pub(crate) xq: &'a mut [i16],
    /// [head_size / 2] RoPE frequencies.
    pub(crate) freq: &'a mut [f32],
    /// [head_size / 2] cos(pos · freq).
    pub(crate) cos: &'a mut [f32],
    /// [head_size / 2] sin(pos · freq).
    pub(crate) sin: &'a mut [f32],
    /// Keys and values, [n_layers, ctx, kv_dim] each.
    pub(crate) kv: KvCache<'a>,
}

/// An inference session: a model plus the arena that holds its state.
#[derive(Debug)]
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    ctx: usize,
    b: Buffers<'a>,
}

impl<'m, 'a> Session<'m, 'a> {
    /// Carves the session's buffers out of `arena`, which must be at least
    /// `model.plan(options)?.arena_bytes` long and start at a 16-byte boundary.
    ///
    /// # Errors
    /// The plan's errors, [`PlanError::ArenaTooSmall`] and [`PlanError::ArenaMisaligned`];
    /// nothing is written to the arena on error.
    pub fn new(
        model: &'m Model<'m>,
        options: &SessionOptions,
        arena: &'a mut [u8],
    ) -> Result<Self, PlanError> {
        let plan = model.plan(options)?;
        if arena.len() < plan.arena_bytes {
            return Err(PlanError::ArenaTooSmall { needed: plan.arena_bytes, given: arena.len() });
        }
        if arena.as_ptr() as usize % ARENA_ALIGN != 0 {
            return Err(PlanError::ArenaMisaligned);
        }
        let c = model.config();
        let s = buffer_sizes(c, plan.context, options.kv).ok_or(PlanError::TooLarge)?;
        let mut a = Carver { rest: arena };
        let b = Buffers {
            kern: Kernels::default(),
            x: a.take(s[0].0)?,
            xb: a.take(s[1].0)?,
            xb2: a.take(s[2].0)?,
            hb: a.take(s[3].0)?,
            hb2: a.take(s[4].0)?,
            q: a.take(s[5].0)?,
            k: a.take(s[6].0)?,
            v: a.take(s[7].0)?,
            att: a.take(s[8].0)?,
            logits: a.take(s[9].0)?,
            probs: a.take(s[10].0)?,
            sample: a.take(s[11].0)?,
            xq: a.take(s[12].0)?,
            freq: a.take(s[13].0)?,
            cos: a.take(s[14].0)?,
            sin: a.take(s[15].0)?,
            kv: {
                // Cache buffers are sized in bytes; `take` wants elements of its type.
                let n = |i: usize, size: usize| s[i].0 * s[i].1 / size;
                match options.kv {
                    KvType::F32 => KvCache::F32 { k: a.take(n(16, 4))?, v: a.take(n(17, 4))? },
                    KvType::F16 => KvCache::F16 { k: a.take(n(16, 2))?, v: a.take(n(17, 2))? },
                    KvType::I8 => KvCache::I8 {
                        k: a.take(n(16, 1))?,
                        v: a.take(n(17, 1))?,
                        ks: a.take(n(18, 4))?,
                        vs: a.take(n(19, 4))?,
                    },
                    KvType::K10V7 => KvCache::K10V7 {
                        k: a.take(n(16, 1))?,
                        v: a.take(n(17, 1))?,
                        ks: a.take(n(18, 2))?,
                        vs: a.take(n(19, 2))?,
                    },
                }
            },
        };
        let hs = c.head_size() as f32;
        for (i, f) in b.freq.iter_mut().enumerate() {
            // llama2.c: 1 / powf(10000, head_dim / head_size) with head_dim = 2i.
            *f = 1.0 / libm::powf(c.rope_theta, (2 * i) as f32 / hs);
        }
        Ok(Self { model, ctx: plan.context, b })
    }

    /// The kernel table this session runs ([`Kernels::default`] until set).
    pub fn kernels(&self) -> Kernels {
        self.b.kern
    }

    /// Runs every later forward pass with `k` (any table gives the same bits).
    pub fn set_kernels(&mut self, k: Kernels) {
        self.b.kern = k;
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Context length in tokens.
    pub fn context(&self) -> usize {
        self.ctx
    }

    /// Logits of the last forward pass.
    pub fn logits(&self) -> &[f32] {
        self.b.logits
    }

    /// Copies the last logits into the sampler's buffer and lets `f` pick a token from it.
    pub(crate) fn with_probs<R>(&mut self, f: impl FnOnce(&mut [f32], &mut [u32]) -> R) -> R {
        self.b.probs.copy_from_slice(self.b.logits);
        f(self.b.probs, self.b.sample)
    }

    /// Runs the model on `token` at position `pos` and returns the logits `[vocab]`.
    /// Positions `0..pos` must have been run before (their keys and values are cached).
    ///
    /// # Errors
    /// [`RunError::TokenOutOfRange`] and [`RunError::PositionOutOfRange`].
    pub fn forward(&mut self, token: u32, pos: usize) -> Result<&[f32], RunError> {
        self.forward_observed(token, pos, &mut NoObserver)
    }

    /// [`forward`](Self::forward), showing `obs` the attention weights and probabilities
    /// (see [`crate::observe`]); the logits are the same bit for bit.
    ///
    /// # Errors
    /// As `forward`.
    pub fn forward_observed<O: Observer>(
        &mut self,
        token: u32,
        pos: usize,
        obs: &mut O,
    ) -> Result<&[f32], RunError> {
        let c = self.model.config();
        if token as usize >= c.vocab_size {
            return Err(RunError::TokenOutOfRange { id: token, vocab: c.vocab_size });
        }
        if pos >= self.ctx {
            return Err(RunError::PositionOutOfRange { pos, context: self.ctx });
        }
        crate::arch::forward(self.model, &mut self.b, self.ctx, token, pos, obs);
        if O::WANTS_PROBABILITIES {
            let b = &mut self.b;
            b.probs.copy_from_slice(b.logits);
            crate::ops::softmax(b.probs);
            obs.probabilities(b.probs);
        }
        Ok(self.b.logits)
    }
}

//! Memory planning and the forward pass.
//!
//! `Model::plan` says exactly how many bytes a session needs; the caller owns that arena and
//! hands it to `Session::new`, which carves every buffer (activations, KV cache, sampler
//! scratch) out of it once. `forward` then allocates nothing and cannot fail after its two
//! argument checks.

use crate::error::{PlanError, RunError};
use crate::format::{groups_per_row, DType, TensorKind};
use crate::kernels;
use crate::model::{Config, Matrix, Model, Weights};

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KvType {
    /// 32-bit float (exact).
    #[default]
    F32,
}

impl KvType {
    /// Bytes per cached element.
    pub fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
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
    /// Bytes of the key and value caches together.
    pub kv_cache_bytes: usize,
    /// Bytes of activations, logits and sampler scratch.
    pub scratch_bytes: usize,
    /// Total: the exact size of the arena `Session::new` needs.
    pub arena_bytes: usize,
}

/// Buffers in carving order: (elements, element bytes).
const N_BUFFERS: usize = 19;

fn buffer_sizes(c: &Config, ctx: usize, kv: KvType) -> Option<[(usize, usize); N_BUFFERS]> {
    let widest = c.dim.max(c.hidden_dim);
    let groups = if c.min_group == 0 { 0 } else { groups_per_row(widest, c.min_group) };
    let xq = if c.dtype == DType::I8 { widest } else { 0 };
    let cache = c.n_layers.checked_mul(ctx)?.checked_mul(c.kv_dim())?;
    let att = c.n_heads.checked_mul(ctx)?;
    Some([
        (c.dim, 4),             // x: residual stream [dim]
        (c.dim, 4),             // xb [dim]
        (c.dim, 4),             // xb2 [dim]
        (c.hidden_dim, 4),      // hb [hidden]
        (c.hidden_dim, 4),      // hb2 [hidden]
        (c.dim, 4),             // q [dim]
        (c.kv_dim(), 4),        // k [kv_dim]
        (c.kv_dim(), 4),        // v [kv_dim]
        (att, 4),               // att [n_heads, ctx]
        (c.vocab_size, 4),      // logits [vocab]
        (c.vocab_size, 4),      // probs [vocab]
        (c.vocab_size, 4),      // sampler scratch [vocab] u32
        (xq, 1),                // quantized activation [max(dim, hidden)] i8
        (groups, 4),            // its scales [groups] f32
        (c.head_size() / 2, 4), // RoPE frequencies [head_size / 2]
        (c.head_size() / 2, 4), // cos at this position
        (c.head_size() / 2, 4), // sin at this position
        (cache, kv.bytes()),    // key cache [n_layers, ctx, kv_dim]
        (cache, kv.bytes()),    // value cache [n_layers, ctx, kv_dim]
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
            if i >= N_BUFFERS - 2 {
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
struct Buffers<'a> {
    /// [dim] residual stream.
    x: &'a mut [f32],
    /// [dim] normalised input / attention output.
    xb: &'a mut [f32],
    /// [dim] projection output.
    xb2: &'a mut [f32],
    /// [hidden] gate.
    hb: &'a mut [f32],
    /// [hidden] up.
    hb2: &'a mut [f32],
    /// [dim] query.
    q: &'a mut [f32],
    /// [kv_dim] key at this position.
    k: &'a mut [f32],
    /// [kv_dim] value at this position.
    v: &'a mut [f32],
    /// [n_heads, ctx] attention scores.
    att: &'a mut [f32],
    /// [vocab] output of the last forward pass.
    logits: &'a mut [f32],
    /// [vocab] sampler's working copy.
    probs: &'a mut [f32],
    /// [vocab] sampler's candidate ids.
    sample: &'a mut [u32],
    /// [max(dim, hidden)] quantized activation.
    xq: &'a mut [i8],
    /// [groups] activation scales.
    xs: &'a mut [f32],
    /// [head_size / 2] RoPE frequencies.
    freq: &'a mut [f32],
    /// [head_size / 2] cos(pos · freq).
    cos: &'a mut [f32],
    /// [head_size / 2] sin(pos · freq).
    sin: &'a mut [f32],
    /// [n_layers, ctx, kv_dim].
    key_cache: &'a mut [f32],
    /// [n_layers, ctx, kv_dim].
    value_cache: &'a mut [f32],
}

/// An inference session: a model plus the arena that holds its state.
#[derive(Debug)]
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    ctx: usize,
    b: Buffers<'a>,
}

/// A matmul input: f32 as is, or quantized once and shared by every matrix that reads it.
enum Act<'b> {
    F32(&'b [f32]),
    I8(&'b [i8], &'b [f32]),
}

/// Quantizes `x` (if the model is int8) with the group of `w`, the first matrix that reads it.
fn prepare<'b>(x: &'b [f32], w: &Matrix<'_>, xq: &'b mut [i8], xs: &'b mut [f32]) -> Act<'b> {
    match w.weights {
        Weights::F32(_) => Act::F32(x),
        Weights::I8 { .. } => {
            let g = w.group;
            let (q, s) = (&mut xq[..x.len()], &mut xs[..groups_per_row(x.len(), g)]);
            kernels::quantize_i8(x, g, q, s);
            Act::I8(q, s)
        }
    }
}

fn matvec(out: &mut [f32], w: &Matrix<'_>, x: &Act<'_>) {
    match (w.weights, x) {
        (Weights::F32(m), Act::F32(x)) => kernels::matvec_f32(out, m, x),
        (Weights::I8 { q, scales }, Act::I8(xq, xs)) => {
            kernels::matvec_i8(out, q, scales, xq, xs, w.cols, w.group)
        }
        // `parse` guarantees one element type for every matrix.
        _ => out.fill(0.0),
    }
}

/// `o = w ⊙ x / sqrt(mean(x²) + eps)`, sums in order (llama2.c's `rmsnorm`).
fn rmsnorm(o: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let mut ss = 0.0f32;
    for v in x {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += eps;
    let ss = 1.0 / libm::sqrtf(ss);
    for ((o, x), w) in o.iter_mut().zip(x).zip(w) {
        *o = w * (ss * x);
    }
}

/// Rotates adjacent pairs `(v[2i], v[2i+1])` of every head by the angles in `cos`/`sin`.
fn rope(v: &mut [f32], head_size: usize, cos: &[f32], sin: &[f32]) {
    for head in v.chunks_exact_mut(head_size) {
        for ((pair, c), s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * c - b * s;
            pair[1] = a * s + b * c;
        }
    }
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
            xs: a.take(s[13].0)?,
            freq: a.take(s[14].0)?,
            cos: a.take(s[15].0)?,
            sin: a.take(s[16].0)?,
            key_cache: a.take(s[17].0)?,
            value_cache: a.take(s[18].0)?,
        };
        let hs = c.head_size() as f32;
        for (i, f) in b.freq.iter_mut().enumerate() {
            // llama2.c: 1 / powf(10000, head_dim / head_size) with head_dim = 2i.
            *f = 1.0 / libm::powf(c.rope_theta, (2 * i) as f32 / hs);
        }
        Ok(Self { model, ctx: plan.context, b })
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
        let model = self.model;
        let c = model.config();
        if token as usize >= c.vocab_size {
            return Err(RunError::TokenOutOfRange { id: token, vocab: c.vocab_size });
        }
        if pos >= self.ctx {
            return Err(RunError::PositionOutOfRange { pos, context: self.ctx });
        }
        let (dim, hs, kv_dim) = (c.dim, c.head_size(), c.kv_dim());
        let kv_mul = c.n_heads / c.n_kv_heads;
        let b = &mut self.b;

        // Token embedding.
        let emb = model.global(TensorKind::TokEmbed);
        let row = token as usize;
        match emb.weights {
            Weights::F32(w) => b.x.copy_from_slice(&w[row * dim..(row + 1) * dim]),
            Weights::I8 { q, scales } => {
                let gpr = groups_per_row(dim, emb.group);
                let (q, s) = (&q[row * dim..(row + 1) * dim], &scales[row * gpr..(row + 1) * gpr]);
                kernels::dequantize_row_i8(q, s, emb.group, b.x);
            }
        }
        for ((f, cs), sn) in b.freq.iter().zip(b.cos.iter_mut()).zip(b.sin.iter_mut()) {
            let val = pos as f32 * f;
            *cs = libm::cosf(val);
            *sn = libm::sinf(val);
        }

        for l in 0..c.n_layers {
            let w = |k| model.layer(l, k);
            // Attention.
            rmsnorm(b.xb, b.x, model.vector(w(TensorKind::AttnNorm)), c.norm_eps);
            let wq = w(TensorKind::Wq);
            let act = prepare(b.xb, &wq, b.xq, b.xs);
            matvec(b.q, &wq, &act);
            matvec(b.k, &w(TensorKind::Wk), &act);
            matvec(b.v, &w(TensorKind::Wv), &act);
            rope(b.q, hs, b.cos, b.sin);
            rope(b.k, hs, b.cos, b.sin);
            let layer_off = l * self.ctx * kv_dim;
            let at = layer_off + pos * kv_dim;
            b.key_cache[at..at + kv_dim].copy_from_slice(b.k);
            b.value_cache[at..at + kv_dim].copy_from_slice(b.v);

            let scale = libm::sqrtf(hs as f32);
            for h in 0..c.n_heads {
                let q = &b.q[h * hs..(h + 1) * hs];
                let att = &mut b.att[h * self.ctx..h * self.ctx + pos + 1];
                let kv_off = (h / kv_mul) * hs;
                for (t, a) in att.iter_mut().enumerate() {
                    let k0 = layer_off + t * kv_dim + kv_off;
                    let k = &b.key_cache[k0..k0 + hs];
                    let mut score = 0.0f32;
                    for (qi, ki) in q.iter().zip(k) {
                        score += qi * ki;
                    }
                    *a = score / scale;
                }
                crate::sampler::softmax(att);
                let out = &mut b.xb[h * hs..(h + 1) * hs];
                out.fill(0.0);
                for (t, a) in att.iter().enumerate() {
                    let v0 = layer_off + t * kv_dim + kv_off;
                    for (o, v) in out.iter_mut().zip(&b.value_cache[v0..v0 + hs]) {
                        *o += a * v;
                    }
                }
            }
            let wo = w(TensorKind::Wo);
            let act = prepare(b.xb, &wo, b.xq, b.xs);
            matvec(b.xb2, &wo, &act);
            for (x, d) in b.x.iter_mut().zip(b.xb2.iter()) {
                *x += d;
            }

            // Feed-forward (SwiGLU).
            rmsnorm(b.xb, b.x, model.vector(w(TensorKind::FfnNorm)), c.norm_eps);
            let w1 = w(TensorKind::W1);
            let act = prepare(b.xb, &w1, b.xq, b.xs);
            matvec(b.hb, &w1, &act);
            matvec(b.hb2, &w(TensorKind::W3), &act);
            for (h1, h3) in b.hb.iter_mut().zip(b.hb2.iter()) {
                *h1 *= 1.0 / (1.0 + libm::expf(-*h1));
                *h1 *= h3;
            }
            let w2 = w(TensorKind::W2);
            let act = prepare(b.hb, &w2, b.xq, b.xs);
            matvec(b.xb, &w2, &act);
            for (x, d) in b.x.iter_mut().zip(b.xb.iter()) {
                *x += d;
            }
        }

        b.xb.copy_from_slice(b.x);
        rmsnorm(b.x, b.xb, model.vector(model.global(TensorKind::FinalNorm)), c.norm_eps);
        let cls = if c.shared_classifier {
            model.global(TensorKind::TokEmbed)
        } else {
            model.global(TensorKind::Classifier)
        };
        let act = prepare(b.x, &cls, b.xq, b.xs);
        matvec(b.logits, &cls, &act);
        Ok(self.b.logits)
    }
}

//! The cost model behind `chispa plan`'s speed estimate: what one generated token asks of a
//! core, counted from the model itself, times per-core instruction costs fitted to QEMU
//! instruction counts (`firmware/boards/costs.toml`, written by `cargo xtask fit-costs`).
//!
//! A token's work is a sum of [`Feature`] counts: the int8 matmuls (multiply-accumulates,
//! quantization groups, rows, calls and their input columns, split by the kernel path the
//! group size and width take on the core), the KV-cache store and attention (per head, and per head and cached
//! position and per element of a head at each cached position, for each KV-cache type), and
//! the vector operations around them (activation quantization, norms, residual and bias
//! additions, embedding rows, SwiGLU or GELU, RoPE, the argmax over the vocabulary, a cost
//! per layer and per token). The counts at attended position `n` (the token at position
//! `n - 1` attends to `n` cached rows) are `fixed + n · per_position`; instructions are
//! `Σ cost · count`.
//!
//! Counts are exact for the code as it runs (they follow `core/src/arch` and the kernels'
//! path choices); the costs are a least-squares fit, so the estimate is as good as the fit's
//! validation (`cargo xtask test-qemu` checks it against fresh QEMU runs within 15 %).

use chispa_core::arch::{info, Arch, Role};
use chispa_core::format::DType;
use chispa_core::{KvType, Model};

/// Which part of the breakdown a feature belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Matrix-vector products (classifier included).
    Matmul,
    /// KV-cache store and attention.
    Attention,
    /// Everything else: quantization, norms, activations, RoPE, sampling, overheads.
    Other,
}

/// One countable piece of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    /// Its key in `costs.toml`.
    pub name: &'static str,
    /// The breakdown it is reported under.
    pub part: Part,
    /// What one unit is.
    pub unit: &'static str,
}

macro_rules! features {
    ($($id:ident = $name:literal, $part:ident, $unit:literal;)*) => {
        /// Indices into [`FEATURES`].
        #[allow(non_camel_case_types, missing_docs)]
        #[derive(Clone, Copy, Debug)]
        enum F { $($id),* }
        /// Every feature, in a fixed order.
        pub const FEATURES: &[Feature] = &[
            $(Feature { name: $name, part: Part::$part, unit: $unit }),*
        ];
    };
}

features! {
    // int8 weights (assembly row loops, or the Rust row driver), int4 weights, f32 weights.
    I8Mac = "i8_mac", Matmul, "int8 multiply-accumulate, assembly row loop (groups of 8, 16, 32, 64)";
    I8Group = "i8_group", Matmul, "int8 quantization group, assembly row loop";
    I8Row = "i8_row", Matmul, "matrix row, assembly row loop";
    I8MacGeneric = "i8_mac_generic", Matmul, "int8 multiply-accumulate, other group sizes (Rust row driver)";
    I8GroupGeneric = "i8_group_generic", Matmul, "int8 quantization group, other group sizes";
    I8RowGeneric = "i8_row_generic", Matmul, "matrix row, other group sizes";
    I4Mac = "i4_mac", Matmul, "int4 multiply-accumulate, DSP kernel (groups a multiple of 8, at most 256 inputs)";
    I4Group = "i4_group", Matmul, "int4 quantization group, DSP kernel";
    I4Row = "i4_row", Matmul, "int4 matrix row, DSP kernel";
    I4MacScalar = "i4_mac_scalar", Matmul, "int4 multiply-accumulate, the scalar kernel (other shapes and cores)";
    I4GroupScalar = "i4_group_scalar", Matmul, "int4 quantization group, the scalar kernel";
    I4RowScalar = "i4_row_scalar", Matmul, "int4 matrix row, the scalar kernel";
    Matvec = "matvec", Matmul, "matrix-vector call";
    MatvecCol = "matvec_col", Matmul, "input column of a matrix-vector call";
    F32Mac = "f32_mac", Matmul, "f32 multiply-accumulate (f32 weights)";
    Quantize = "quantize", Other, "activation element quantized to int16";
    RmsNorm = "rmsnorm", Other, "element through RMSNorm";
    LayerNorm = "layernorm", Other, "element through LayerNorm";
    Add = "add", Other, "element of a residual or bias addition";
    Embed = "embed", Other, "embedding element widened to f32";
    Swiglu = "swiglu", Other, "SwiGLU element (silu · up)";
    Gelu = "gelu", Other, "GELU (tanh) element";
    RopePair = "rope_pair", Other, "rotated RoPE pair";
    RopeAngle = "rope_angle", Other, "RoPE angle (cos and sin) per token";
    Argmax = "argmax", Other, "logit through the greedy sampler";
    Layer = "layer", Other, "transformer block (calls, loops)";
    Token = "token", Other, "token (step, embedding, classifier call)";
    StoreI8 = "kv_store_int8", Attention, "key and value element stored, int8 cache";
    StoreK10v7 = "kv_store_k10v7", Attention, "key and value element stored, k10v7 cache";
    StoreF32 = "kv_store_f32", Attention, "key and value element stored, f32 cache";
    HeadI8 = "att_head_int8", Attention, "query head, int8 cache";
    HeadK10v7 = "att_head_k10v7", Attention, "query head, k10v7 cache";
    HeadF32 = "att_head_f32", Attention, "query head, f32 cache";
    PosI8Pair8 = "att_pos_int8_pair8", Attention, "head x cached position, int8, paired heads of 8 (assembly)";
    ElemI8Pair8 = "att_elem_int8_pair8", Attention, "head element x cached position, int8, paired heads of 8";
    PosI8 = "att_pos_int8", Attention, "head x cached position, int8, other heads";
    ElemI8 = "att_elem_int8", Attention, "head element x cached position, int8, other heads";
    PosK10v7 = "att_pos_k10v7", Attention, "head x cached position, k10v7";
    ElemK10v7 = "att_elem_k10v7", Attention, "head element x cached position, k10v7";
    PosF32 = "att_pos_f32", Attention, "head x cached position, f32";
    ElemF32 = "att_elem_f32", Attention, "head element x cached position, f32";
}

/// Number of features.
pub const N: usize = FEATURES.len();

/// What one token costs in features: `fixed + n · per_position` at `n` attended positions.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    /// Counts that do not depend on the position.
    pub fixed: [f64; N],
    /// Counts per attended (cached) position.
    pub per_position: [f64; N],
}

impl Counts {
    /// The counts of a token attending to `n` cached positions.
    pub fn at(&self, n: f64) -> [f64; N] {
        let mut c = self.fixed;
        for (c, p) in c.iter_mut().zip(&self.per_position) {
            *c += n * p;
        }
        c
    }

    fn add(&mut self, f: F, v: usize) {
        self.fixed[f as usize] += v as f64;
    }
}

/// The widest input the DSP kernels' assembly row loops take (`kernels/dsp.rs`,
/// `XBUF_COLS`: the split input lives on the stack); Helium's have no limit.
const DSP_MAX_COLS: usize = 256;

/// Whether the Arm int8 kernels of `core` take an assembly row loop for this matrix
/// (`kernels/dsp.rs`, `kernels/mve.rs`: groups of 8, 16, 32 or 64, widths a multiple of 4
/// and at least a group; on the DSP cores at most [`DSP_MAX_COLS`] wide). Never on other
/// cores, which run the scalar code.
fn assembly_rows(core: &str, cols: usize, group: usize) -> bool {
    core.starts_with("cortex-m")
        && matches!(group, 8 | 16 | 32 | 64)
        && cols % 4 == 0
        && cols >= group
        && (core == "cortex-m55" || cols <= DSP_MAX_COLS)
}

/// Whether an int4 matrix of `cols` inputs in groups of `group` takes the DSP int4 kernel on
/// `core` (`kernels::dsp::matvec_i4`; the M55's Helium backend plugs it too).
fn dsp_int4(core: &str, cols: usize, group: usize) -> bool {
    matches!(core, "cortex-m4" | "cortex-m7" | "cortex-m33" | "cortex-m55")
        && group % 8 == 0
        && group > 0
        && cols % 4 == 0
        && cols <= DSP_MAX_COLS
}

/// The feature counts of one generated token of `model` with a `kv` cache (greedy sampling)
/// on `core` (which decides the kernel paths).
pub fn counts(model: &Model<'_>, kv: KvType, core: &str) -> Counts {
    let c = model.config();
    let p = c.params;
    let mut k = Counts { fixed: [0.0; N], per_position: [0.0; N] };
    let (dim, hidden, layers) = (p.dim, p.hidden_dim, p.n_layers);
    let (q_dim, kv_dim, hs) = (p.q_dim(), p.kv_dim(), p.head_size());
    let gpt = matches!(p.arch, Arch::Gpt2 | Arch::GptNeo);

    let matvec = |k: &mut Counts, rows: usize, cols: usize, group: usize, dtype: DType| {
        k.add(F::Matvec, 1);
        k.add(F::MatvecCol, cols);
        if dtype == DType::F32 {
            k.add(F::F32Mac, rows * cols);
            return;
        }
        let groups = rows * cols.div_ceil(group.max(1));
        if dtype == DType::I4 && dsp_int4(core, cols, group) {
            k.add(F::I4Mac, rows * cols);
            k.add(F::I4Group, groups);
            k.add(F::I4Row, rows);
        } else if dtype == DType::I4 {
            k.add(F::I4MacScalar, rows * cols);
            k.add(F::I4GroupScalar, groups);
            k.add(F::I4RowScalar, rows);
        } else if assembly_rows(core, cols, group) {
            k.add(F::I8Mac, rows * cols);
            k.add(F::I8Group, groups);
            k.add(F::I8Row, rows);
        } else {
            k.add(F::I8MacGeneric, rows * cols);
            k.add(F::I8GroupGeneric, groups);
            k.add(F::I8RowGeneric, rows);
        }
    };
    let mut embeds = 0usize;
    let mut biases = 0usize;
    for i in 0..model.header().n_tensors as usize {
        let Some((kind, _, rows, cols)) = p.tensor(i) else { continue };
        let m = model.matrix(i);
        let dtype = match m.weights {
            chispa_core::model::Weights::F32(_) => DType::F32,
            chispa_core::model::Weights::I8 { .. } => DType::I8,
            chispa_core::model::Weights::I4 { .. } => DType::I4,
        };
        match info(kind).role {
            Role::Matrix => matvec(&mut k, rows, cols, m.group, dtype),
            Role::Embedding => {
                embeds += 1;
                if p.shared_classifier && embeds == 1 {
                    matvec(&mut k, rows, cols, m.group, dtype);
                }
            }
            Role::Bias => biases += cols,
            Role::Norm => {}
        }
    }
    k.add(F::Embed, embeds * dim);
    // Activations quantized once per distinct matmul input: the block's input (q, k, v), the
    // attention output, the feed-forward input, the hidden activation; the final norm's.
    if c.dtype.is_quantized() {
        k.add(F::Quantize, layers * (dim + q_dim + dim + hidden) + dim);
    }
    let norm = if gpt { F::LayerNorm } else { F::RmsNorm };
    k.add(norm, (2 * layers + 1) * dim);
    if p.arch == Arch::Qwen3 {
        k.add(F::RmsNorm, layers * (q_dim + kv_dim));
    }
    // Residuals (two per block), biases (the norms' own are applied inside LayerNorm), and
    // GPT-2's position embedding added to the token's.
    let norm_biases = if gpt { (2 * layers + 1) * dim } else { 0 };
    k.add(
        F::Add,
        2 * layers * dim + biases.saturating_sub(norm_biases) + usize::from(embeds > 1) * dim,
    );
    k.add(if gpt { F::Gelu } else { F::Swiglu }, layers * hidden);
    if p.arch.spec().rope {
        k.add(F::RopePair, layers * (q_dim + kv_dim) / 2);
        k.add(F::RopeAngle, hs / 2);
    }
    k.add(F::Argmax, p.vocab_size);
    k.add(F::Layer, layers);
    k.add(F::Token, 1);

    // The KV cache: this position's key and value stored, then every query head over the
    // cached rows (int8 pairs two heads that share a key/value head).
    let (store, head, pos, elem) = match kv {
        KvType::I8 if p.n_heads / p.n_kv_heads.max(1) >= 2 && hs == 8 => {
            (F::StoreI8, F::HeadI8, F::PosI8Pair8, F::ElemI8Pair8)
        }
        KvType::I8 => (F::StoreI8, F::HeadI8, F::PosI8, F::ElemI8),
        KvType::K10V7 => (F::StoreK10v7, F::HeadK10v7, F::PosK10v7, F::ElemK10v7),
        // f16 is counted as f32 (not fitted separately).
        KvType::F32 | KvType::F16 => (F::StoreF32, F::HeadF32, F::PosF32, F::ElemF32),
    };
    k.add(store, 2 * layers * kv_dim);
    k.add(head, layers * p.n_heads);
    k.per_position[pos as usize] += (layers * p.n_heads) as f64;
    k.per_position[elem as usize] += (layers * p.n_heads * hs) as f64;
    k
}

/// Fitted costs of a core: instructions per unit of each feature it has a cost for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoreCosts {
    /// Core.
    pub core: &'static str,
    /// The QEMU board the fit ran on.
    pub board: &'static str,
    /// `(feature name, instructions per unit)`; a feature absent here was not fitted.
    pub costs: &'static [(&'static str, f64)],
}

impl CoreCosts {
    /// The cost of feature `i`, `None` when not fitted.
    pub fn cost(&self, i: usize) -> Option<f64> {
        let name = FEATURES.get(i)?.name;
        self.costs.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }
}

/// Instructions per token, split into the parts of the breakdown.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Matmul instructions per token.
    pub matmul: f64,
    /// Other (position-independent) instructions per token.
    pub other: f64,
    /// Attention instructions per token that do not depend on the position (store, heads).
    pub attention_fixed: f64,
    /// Attention instructions per attended position.
    pub attention_per_position: f64,
    /// Features the model needs that this core has no fitted cost for (the estimate leaves
    /// them out).
    pub missing: Vec<&'static str>,
}

impl Estimate {
    /// `counts` priced with `costs`.
    pub fn new(counts: &Counts, costs: &CoreCosts) -> Self {
        let mut e = Estimate {
            matmul: 0.0,
            other: 0.0,
            attention_fixed: 0.0,
            attention_per_position: 0.0,
            missing: Vec::new(),
        };
        for (i, f) in FEATURES.iter().enumerate() {
            let (fixed, per) = (counts.fixed[i], counts.per_position[i]);
            if fixed == 0.0 && per == 0.0 {
                continue;
            }
            let Some(cost) = costs.cost(i) else {
                e.missing.push(f.name);
                continue;
            };
            match f.part {
                Part::Matmul => e.matmul += cost * fixed,
                Part::Other => e.other += cost * fixed,
                Part::Attention => e.attention_fixed += cost * fixed,
            }
            e.attention_per_position += cost * per;
        }
        e
    }

    /// Instructions for a token attending to `n` cached positions.
    pub fn at(&self, n: f64) -> f64 {
        self.matmul + self.other + self.attention_fixed + n * self.attention_per_position
    }

    /// Attention instructions for a token attending to `n` cached positions.
    pub fn attention_at(&self, n: f64) -> f64 {
        self.attention_fixed + n * self.attention_per_position
    }

    /// Mean instructions per generated token over `steps` tokens after a `prompt`-token
    /// prompt: the tokens run at positions `prompt - 1 ..`, attending to `prompt ..= prompt +
    /// steps - 1` positions.
    pub fn mean(&self, prompt: usize, steps: usize) -> f64 {
        self.at(mean_attended(prompt, steps))
    }
}

/// Mean attended positions of `steps` generated tokens after a `prompt`-token prompt.
pub fn mean_attended(prompt: usize, steps: usize) -> f64 {
    prompt.max(1) as f64 + (steps.max(1) - 1) as f64 / 2.0
}

include!(concat!(env!("OUT_DIR"), "/costs.rs"));

/// The fitted costs of a core.
pub fn core_costs(core: &str) -> Option<&'static CoreCosts> {
    COSTS.iter().find(|c| c.core == core)
}

/// Solves `min ‖A x − b‖²` subject to `x ≥ 0` (Lawson and Hanson's active-set NNLS).
/// `a` holds the rows. Columns that are zero in every row get 0.
pub fn nnls(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = a.first().map_or(0, Vec::len);
    // Columns scaled to unit norm (the counts span many orders of magnitude).
    let norms: Vec<f64> =
        (0..n).map(|j| a.iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt()).collect();
    let col = |i: usize, j: usize| if norms[j] > 0.0 { a[i][j] / norms[j] } else { 0.0 };
    let m = a.len();
    let mut x = vec![0.0; n];
    let mut passive = vec![false; n];
    let residual = |x: &[f64]| -> Vec<f64> {
        (0..m).map(|i| b[i] - (0..n).map(|j| col(i, j) * x[j]).sum::<f64>()).collect()
    };
    let gradient = |r: &[f64]| -> Vec<f64> {
        (0..n).map(|j| (0..m).map(|i| col(i, j) * r[i]).sum()).collect()
    };
    // Least squares on the passive columns (normal equations, Gaussian elimination).
    let solve = |passive: &[bool]| -> Vec<f64> {
        let idx: Vec<usize> = (0..n).filter(|&j| passive[j]).collect();
        let k = idx.len();
        let mut g = vec![vec![0.0; k + 1]; k];
        for (r, &jr) in idx.iter().enumerate() {
            for (c, &jc) in idx.iter().enumerate() {
                g[r][c] = (0..m).map(|i| col(i, jr) * col(i, jc)).sum();
            }
            g[r][k] = (0..m).map(|i| col(i, jr) * b[i]).sum();
            g[r][r] += 1e-12; // keeps a rank-deficient set solvable
        }
        for p in 0..k {
            let piv = (p..k).max_by(|&u, &v| g[u][p].abs().total_cmp(&g[v][p].abs())).unwrap_or(p);
            g.swap(p, piv);
            let d = g[p][p];
            if d.abs() < 1e-300 {
                continue;
            }
            let pivot = g[p].clone();
            for (r, row) in g.iter_mut().enumerate() {
                if r != p {
                    let f = row[p] / d;
                    for (v, pv) in row.iter_mut().zip(&pivot).skip(p) {
                        *v -= f * pv;
                    }
                }
            }
        }
        let mut z = vec![0.0; n];
        for (r, &j) in idx.iter().enumerate() {
            z[j] = if g[r][r].abs() < 1e-300 { 0.0 } else { g[r][k] / g[r][r] };
        }
        z
    };
    for _ in 0..(3 * n + 10) {
        let w = gradient(&residual(&x));
        let best = (0..n)
            .filter(|&j| !passive[j] && norms[j] > 0.0)
            .max_by(|&u, &v| w[u].total_cmp(&w[v]));
        let Some(j) = best.filter(|&j| w[j] > 1e-10) else { break };
        passive[j] = true;
        loop {
            let z = solve(&passive);
            if (0..n).filter(|&j| passive[j]).all(|j| z[j] > 0.0) {
                x = z;
                break;
            }
            // Step back to the boundary and drop the columns that reach zero.
            let mut alpha = 1.0f64;
            for j in (0..n).filter(|&j| passive[j] && z[j] <= 0.0) {
                alpha = alpha.min(x[j] / (x[j] - z[j]));
            }
            for j in 0..n {
                x[j] += alpha * (z[j] - x[j]);
                if passive[j] && x[j] <= 1e-12 {
                    passive[j] = false;
                    x[j] = 0.0;
                }
            }
        }
    }
    x.iter().zip(&norms).map(|(x, n)| if *n > 0.0 { x / n } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nnls_recovers_nonnegative_coefficients() {
        // b = 2·a0 + 0·a1 + 5·a2, with a column that only a negative coefficient would use.
        let rows: Vec<Vec<f64>> = (0..12)
            .map(|i| {
                let i = i as f64;
                vec![1.0 + i, (i * 7.0) % 5.0, 100.0 + 3.0 * i * i, 0.0]
            })
            .collect();
        let b: Vec<f64> = rows.iter().map(|r| 2.0 * r[0] + 5.0 * r[2]).collect();
        let x = nnls(&rows, &b);
        assert!(
            (x[0] - 2.0).abs() < 1e-6 && x[1].abs() < 1e-6 && (x[2] - 5.0).abs() < 1e-6,
            "{x:?}"
        );
        assert_eq!(x[3], 0.0);
        // An exact fit would need a negative coefficient: NNLS keeps it at 0.
        let b: Vec<f64> = rows.iter().map(|r| 3.0 * r[0] - r[1]).collect();
        assert!(nnls(&rows, &b).iter().all(|v| *v >= 0.0));
    }

    fn synth(shape: &str, group: usize) -> chispa_tools::aligned::AlignedBytes {
        use chispa_tools::writer::{build, Groups, WriteOptions};
        let src = chispa_tools::synth::model(shape, 1).unwrap_or_else(|e| panic!("{e:#}"));
        let opts = WriteOptions {
            dtype: chispa_core::DType::I8,
            groups: Groups::Uniform(group),
            ..Default::default()
        };
        build(&src, &opts, |_, _| {}).unwrap_or_else(|e| panic!("{e:#}")).0
    }

    #[test]
    fn counts_follow_the_model_and_the_kernel_paths() {
        // 288 inputs: wider than the DSP row loops take, not too wide for Helium's.
        let bytes = synth("dim=288,hidden=128,layers=2,heads=6,kv_heads=3,vocab=300", 32);
        let model = Model::parse(bytes.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        let macs = model.config().matmul_macs_per_token() as f64;
        let m4 = counts(&model, KvType::I8, "cortex-m4");
        let m55 = counts(&model, KvType::I8, "cortex-m55");
        let (mac, generic) = (F::I8Mac as usize, F::I8MacGeneric as usize);
        assert_eq!(m4.fixed[mac] + m4.fixed[generic], macs);
        // w2 (128 inputs) runs the assembly on the M4; everything else (288) does not.
        assert_eq!(m4.fixed[mac], (2 * 288 * 128) as f64);
        assert_eq!((m55.fixed[mac], m55.fixed[generic]), (macs, 0.0));
        // Heads of 48: int8 attention per position, 2 layers × 6 heads.
        assert_eq!(m4.per_position[F::PosI8 as usize], 12.0);
        assert_eq!(m4.per_position[F::ElemI8 as usize], 12.0 * 48.0);
        assert_eq!(m4.fixed[F::StoreI8 as usize], (2 * 2 * 144) as f64);
        let k = counts(&model, KvType::K10V7, "cortex-m4");
        assert_eq!(k.per_position[F::PosI8 as usize], 0.0);
        assert_eq!(k.per_position[F::PosK10v7 as usize], 12.0);
        // Priced: a missing cost is named, the parts add up, attention grows with n.
        let costs =
            CoreCosts { core: "t", board: "t", costs: &[("i8_mac", 1.0), ("att_pos_int8", 10.0)] };
        let e = Estimate::new(&m55, &costs);
        assert_eq!(e.matmul, macs);
        assert_eq!(e.attention_per_position, 120.0);
        assert!(e.missing.contains(&"i8_group") && e.missing.contains(&"att_elem_int8"));
        assert_eq!(e.at(10.0) - e.at(0.0), 1200.0);
    }

    #[test]
    fn mean_attended_positions() {
        // A 5-token prompt: the first generated token runs at position 4 and attends to 5.
        assert_eq!(mean_attended(5, 1), 5.0);
        assert_eq!(mean_attended(5, 21), 15.0);
    }
}

//! Where the int8 error of a model comes from: the measurement behind calibrated groups
//! (README, "int8 error budget").
//!
//! The core quantizes weights and activations together (a matrix's group also groups its
//! input), so this re-implements the forward pass in f32 with *fake* quantization that can
//! be switched per tensor (weights, `chispa_tools::quant`, exactly as the writer rounds) and
//! per matmul input (activations, the core's own `kernels::quantize_i8`). With every switch
//! at the fixed groups it reproduces chispa's int8 result (llama-tiny: the same mean KL to
//! three digits and as many flipped positions, 29; gpt2-tiny: 21 against 22); with none it
//! matches transformers to 1e-11 KL. Teacher-forced on the reference `input_ids` of the
//! Hugging Face models.
//!
//! `cargo run --release -p chispa-tests --bin int8-ablation [llama-tiny|gpt2-tiny|stories260K-hf]`

use anyhow::{Context, Result};
use chispa_core::format::{Arch, TensorKind};
use chispa_core::kernels::quantize_act;
use chispa_tests::hf::{hf_dir, hf_reference};
use chispa_tests::{agreement, combine, Reference};
use chispa_tools::hf;
use chispa_tools::quant::quantize;
use chispa_tools::source::SourceModel;
use chispa_tools::writer::fixed_group;

/// Matmul inputs, each quantized once (as in the core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Site {
    /// Normed residual into wq/wk/wv.
    Qkv = 0,
    /// Attention output into wo.
    O = 1,
    /// Normed residual into w1/w3.
    Ffn = 2,
    /// SwiGLU/GELU output into w2.
    Down = 3,
    /// Final normed residual into the classifier.
    Cls = 4,
}

const SITES: [Site; 5] = [Site::Qkv, Site::O, Site::Ffn, Site::Down, Site::Cls];

/// What is quantized: a weight group per tensor and an activation group per (layer, site)
/// (`None` = exact f32; the classifier's input is `acts[0][Cls]`).
#[derive(Clone, Debug)]
struct Setup {
    weights: Vec<Option<usize>>,
    acts: Vec<[Option<usize>; 5]>,
}

/// The model with fake-quantized weights.
struct Net<'m> {
    m: &'m SourceModel,
    kinds: Vec<(TensorKind, usize)>,
    data: Vec<Vec<f32>>,
    acts: Vec<[Option<usize>; 5]>,
}

fn fake_weights(data: &[f32], cols: usize, group: Option<usize>) -> Vec<f32> {
    let Some(g) = group else { return data.to_vec() };
    let q = quantize(data, cols, g);
    let gpr = cols.div_ceil(g);
    q.q.iter()
        .enumerate()
        .map(|(i, v)| {
            *v as f32
                * (q.row_scales[i / cols] * f32::from(q.mults[(i / cols) * gpr + (i % cols) / g]))
        })
        .collect()
}

fn fake_acts(x: &[f32], group: Option<usize>) -> Vec<f32> {
    let Some(g) = group else { return x.to_vec() };
    // One scale per `g` inputs (the core quantizes a whole vector: `g` at least its width).
    let mut out = Vec::with_capacity(x.len());
    for c in x.chunks(g) {
        let mut q = vec![0i16; c.len()];
        let s = quantize_act(c, &mut q);
        out.extend(q.iter().map(|v| *v as f32 * s));
    }
    out
}

fn matvec(w: &[f32], x: &[f32]) -> Vec<f32> {
    w.chunks_exact(x.len()).map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

fn add(x: &mut [f32], d: &[f32]) {
    x.iter_mut().zip(d).for_each(|(a, b)| *a += b);
}

fn kinds(m: &SourceModel) -> Result<Vec<(TensorKind, usize)>> {
    (0..m.tensors.len())
        .map(|i| m.params.tensor(i).map(|(k, l, ..)| (k, l)).context("tensor past the list"))
        .collect()
}

impl<'m> Net<'m> {
    fn new(m: &'m SourceModel, setup: &Setup) -> Self {
        // `main` checked the list.
        let kinds = kinds(m).unwrap_or_default();
        let data = m
            .tensors
            .iter()
            .zip(&setup.weights)
            .map(|(t, g)| fake_weights(&t.data, t.cols, *g))
            .collect();
        Self { m, kinds, data, acts: setup.acts.clone() }
    }

    fn t(&self, kind: TensorKind, layer: usize) -> &[f32] {
        self.kinds.iter().position(|k| *k == (kind, layer)).map_or(&[][..], |i| &self.data[i])
    }

    fn norm(&self, x: &[f32], kind: TensorKind, bias: TensorKind, l: usize) -> Vec<f32> {
        let (w, eps) = (self.t(kind, l), self.m.params.norm_eps);
        let n = x.len() as f32;
        match self.m.params.arch {
            // `main` refuses the others.
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => {
                let inv = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / n + eps).sqrt();
                x.iter().zip(w).map(|(x, w)| w * (inv * x)).collect()
            }
            Arch::Gpt2 | Arch::GptNeo => {
                let mean = x.iter().sum::<f32>() / n;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                let inv = 1.0 / (var + eps).sqrt();
                let b = self.t(bias, l);
                x.iter().zip(w).zip(b).map(|((x, w), b)| (x - mean) * inv * w + b).collect()
            }
        }
    }

    /// Logits after each of `ids`, `[ids.len(), vocab]`.
    fn run(&self, ids: &[u32]) -> Vec<Vec<f32>> {
        use TensorKind::*;
        let p = &self.m.params;
        let (dim, hs) = (p.dim, p.dim / p.n_heads);
        let kv_mul = p.n_heads / p.n_kv_heads;
        let llama = p.arch == Arch::Llama;
        let mut keys = vec![Vec::<Vec<f32>>::new(); p.n_layers];
        let mut values = vec![Vec::<Vec<f32>>::new(); p.n_layers];
        let mut out = Vec::with_capacity(ids.len());
        for (pos, id) in ids.iter().enumerate() {
            let mut x = self.t(TokEmbed, 0)[*id as usize * dim..][..dim].to_vec();
            if !llama {
                add(&mut x, &self.t(PosEmbed, 0)[pos * dim..][..dim]);
            }
            let (cos, sin): (Vec<f32>, Vec<f32>) = (0..hs / 2)
                .map(|i| {
                    let v = pos as f32 * (1.0 / p.rope_theta.powf((2 * i) as f32 / hs as f32));
                    (v.cos(), v.sin())
                })
                .unzip();
            for l in 0..p.n_layers {
                let a = self.acts[l];
                let xq =
                    fake_acts(&self.norm(&x, AttnNorm, AttnNormBias, l), a[Site::Qkv as usize]);
                let (mut q, mut k, mut v) = (
                    matvec(self.t(Wq, l), &xq),
                    matvec(self.t(Wk, l), &xq),
                    matvec(self.t(Wv, l), &xq),
                );
                if llama {
                    for head in q.chunks_exact_mut(hs).chain(k.chunks_exact_mut(hs)) {
                        for ((pair, c), s) in head.chunks_exact_mut(2).zip(&cos).zip(&sin) {
                            let (a, b) = (pair[0], pair[1]);
                            pair[0] = a * c - b * s;
                            pair[1] = a * s + b * c;
                        }
                    }
                } else {
                    add(&mut q, self.t(Bq, l));
                    add(&mut k, self.t(Bk, l));
                    add(&mut v, self.t(Bv, l));
                }
                keys[l].push(k);
                values[l].push(v);
                let mut att = vec![0f32; dim];
                for h in 0..p.n_heads {
                    let (qh, off) = (&q[h * hs..(h + 1) * hs], (h / kv_mul) * hs);
                    let scores: Vec<f32> = keys[l]
                        .iter()
                        .map(|k| {
                            qh.iter().zip(&k[off..off + hs]).map(|(a, b)| a * b).sum::<f32>()
                                / (hs as f32).sqrt()
                        })
                        .collect();
                    let max = scores.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                    let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f32 = e.iter().sum();
                    for (w, v) in e.iter().zip(&values[l]) {
                        for (o, v) in att[h * hs..(h + 1) * hs].iter_mut().zip(&v[off..off + hs]) {
                            *o += w / sum * v;
                        }
                    }
                }
                let mut o = matvec(self.t(Wo, l), &fake_acts(&att, a[Site::O as usize]));
                if !llama {
                    add(&mut o, self.t(Bo, l));
                }
                add(&mut x, &o);
                let xf = fake_acts(&self.norm(&x, FfnNorm, FfnNormBias, l), a[Site::Ffn as usize]);
                let mut hb = matvec(self.t(W1, l), &xf);
                if llama {
                    for (g, u) in hb.iter_mut().zip(&matvec(self.t(W3, l), &xf)) {
                        *g *= 1.0 / (1.0 + (-*g).exp());
                        *g *= u;
                    }
                } else {
                    add(&mut hb, self.t(B1, l));
                    for v in hb.iter_mut() {
                        let u = *v;
                        *v = 0.5 * u * (1.0 + (0.797_884_6 * (u + 0.044_715 * u * u * u)).tanh());
                    }
                }
                let mut d = matvec(self.t(W2, l), &fake_acts(&hb, a[Site::Down as usize]));
                if !llama {
                    add(&mut d, self.t(B2, l));
                }
                add(&mut x, &d);
            }
            let xn = fake_acts(&self.norm(&x, FinalNorm, FinalNormBias, 0), self.acts[0][4]);
            let cls = if p.shared_classifier { TokEmbed } else { Classifier };
            out.push(matvec(self.t(cls, 0), &xn));
        }
        out
    }
}

struct Bench {
    name: String,
    m: SourceModel,
    reference: Reference,
}

impl Bench {
    /// The fixed group of each matrix (`None` for vectors).
    fn fixed_weights(&self) -> Vec<Option<usize>> {
        let shared = self.m.params.shared_classifier;
        kinds(&self.m)
            .unwrap_or_default()
            .iter()
            .map(|(k, _)| (!k.is_vector()).then(|| fixed_group(*k, shared)))
            .collect()
    }

    /// The fixed group of each matmul input (that of the matrix it feeds).
    fn fixed_acts(&self) -> Vec<[Option<usize>; 5]> {
        let shared = self.m.params.shared_classifier;
        let cls = fixed_group(TensorKind::Classifier, shared);
        let row = [32, 32, 32, fixed_group(TensorKind::W2, shared), cls].map(Some);
        vec![row; self.m.params.n_layers]
    }

    fn exact(&self) -> Setup {
        Setup {
            weights: vec![None; self.m.tensors.len()],
            acts: vec![[None; 5]; self.m.params.n_layers],
        }
    }

    fn row(&self, label: &str, setup: &Setup) {
        let net = Net::new(&self.m, setup);
        let parts: Vec<_> = self
            .reference
            .cases
            .iter()
            .map(|c| {
                let n = c.logits.len();
                agreement(&c.logits, &net.run(&c.input_ids[..n]))
            })
            .collect();
        let a = combine(&parts);
        let flips = a.positions - (a.top1 * a.positions as f64).round() as usize;
        println!(
            "| {} | {label} | {:.2e} | {:.2e} | {:.1}% ({flips}) |",
            self.name,
            a.mean_kl,
            a.max_kl,
            100.0 * a.top1
        );
    }
}

fn main() -> Result<()> {
    let names: Vec<String> = match std::env::args().nth(1) {
        Some(n) => vec![n],
        None => vec!["llama-tiny".into(), "gpt2-tiny".into()],
    };
    println!("| model | quantized (rest exact f32) | mean KL | max KL | top-1 (flips) |");
    println!("|---|---|---|---|---|");
    for name in names {
        let m = hf::read_dir(&hf_dir(&name)?).with_context(|| name.clone())?.model;
        anyhow::ensure!(
            matches!(m.params.arch, Arch::Llama | Arch::Gpt2),
            "{name}: the ablation implements Llama and GPT-2 only, not {}",
            m.params.arch.name()
        );
        let b = Bench { reference: hf_reference(&name)?, name, m };
        let (fw, fa, exact) = (b.fixed_weights(), b.fixed_acts(), b.exact());
        let kinds = kinds(&b.m)?;

        // Weights against activations, at the fixed groups and uniform ones.
        b.row("nothing (f32)", &exact);
        b.row(
            "weights + activations, fixed groups",
            &Setup { weights: fw.clone(), acts: fa.clone() },
        );
        b.row("weights only, fixed groups", &Setup { weights: fw.clone(), ..exact.clone() });
        b.row("activations only, fixed groups", &Setup { acts: fa.clone(), ..exact.clone() });
        // The core's: one scale per activation vector.
        let whole = vec![[Some(usize::MAX); 5]; b.m.params.n_layers];
        b.row(
            "activations only, one scale per vector",
            &Setup { acts: whole.clone(), ..exact.clone() },
        );
        b.row(
            "weights (fixed groups) + activations (per vector) (= chispa int8)",
            &Setup { weights: fw.clone(), acts: whole },
        );
        for g in [8, 4, 2] {
            let w: Vec<_> = fw.iter().map(|x| x.map(|_| g)).collect();
            let a = vec![[Some(g); 5]; b.m.params.n_layers];
            b.row(
                &format!("weights only, group {g}"),
                &Setup { weights: w.clone(), ..exact.clone() },
            );
            b.row(
                &format!("activations only, group {g}"),
                &Setup { acts: a.clone(), ..exact.clone() },
            );
            b.row(&format!("weights + activations, group {g}"), &Setup { weights: w, acts: a });
        }

        // One matrix at a time (its fixed group), then one matmul input at a time.
        for (i, (k, l)) in kinds.iter().enumerate() {
            if let Some(g) = fw[i] {
                let mut weights = exact.weights.clone();
                weights[i] = Some(g);
                let label = match k {
                    TensorKind::TokEmbed | TensorKind::PosEmbed | TensorKind::Classifier => {
                        format!("weights of {} (group {g})", k.name())
                    }
                    _ => format!("weights of layers.{l}.{} (group {g})", k.name()),
                };
                b.row(&label, &Setup { weights, ..exact.clone() });
            }
        }
        for l in 0..b.m.params.n_layers {
            for s in SITES {
                if s == Site::Cls && l > 0 {
                    continue;
                }
                let mut acts = exact.acts.clone();
                acts[l][s as usize] = fa[l][s as usize];
                let at = if s == Site::Cls { String::new() } else { format!("layers.{l} ") };
                let label = format!(
                    "activations into {at}{s:?} (group {})",
                    fa[l][s as usize].unwrap_or(0)
                );
                b.row(&label, &Setup { acts, ..exact.clone() });
            }
        }
    }
    Ok(())
}

//! Quantization groups per matrix, chosen from the measured end-to-end error.
//!
//! The fixed groups (32; 16 for `w2`; 8 for the classifier) were measured on stories260K, a
//! trained model, where they give 100 % top-1 agreement. They are not enough everywhere:
//! the random-weight Hugging Face test models (llama-tiny, gpt2-tiny) have nearly hard
//! attention and logits with near-ties, and a few of their matrices are 40× more sensitive
//! than the rest (README, "int8 error budget"). So the converter measures instead of guessing:
//!
//! 1. **Calibration text**: [`SEQUENCES`] sequences of up to [`SEQ_LEN`] tokens sampled from
//!    the f32 model itself (temperature 1, top-p 0.9, fixed seeds, from BOS). No data set is
//!    needed, and the result is deterministic.
//! 2. **Logit SNR**: int8 against f32 logits, teacher-forced on that text. Signal: the mean
//!    per-position variance of the f32 logits; noise: the mean per-position variance of the
//!    difference (logits are shift-invariant, so both are taken about the position's mean).
//! 3. If the fixed groups reach the target ([`DEFAULT_TARGET_SNR_DB`]), they are kept.
//! 4. Otherwise each *unit* — the matrices that read one quantized activation and so share
//!    one group (`wq`/`wk`/`wv`, `wo`, `w1`/`w3`, `w2` of each layer, the token embedding
//!    with the tied classifier, the position embedding, a separate classifier) — is measured
//!    alone at each candidate group (its fixed group, then halving down to 1) with every other
//!    matrix at group 1 (near-exact: one f16 scale per weight). The group also sets how
//!    finely the unit's input activation is quantized, so this measures both. Noise from
//!    different units adds (predicted and measured SNR agree within 0.1 dB on llama-tiny and
//!    gpt2-tiny), so the groups are refined greedily, the most noise removed per byte added
//!    first, until the predicted SNR meets the target; the result is measured, and the
//!    budget tightened if it falls short.
//!
//! Cost: one f32 and one int8 pass over the calibration text when the fixed groups suffice
//! (stories260K); otherwise about five int8 passes per unit (44 for llama-tiny), spread
//! over the available cores. The passes with many matrices at group 1 are the slow ones.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{ensure, Context, Result};
use chispa_core::arch::{info, Role};
use chispa_core::format::{DType, TensorKind};
use chispa_core::{Model, Sampler, SamplerConfig, Session, SessionOptions};

use crate::aligned::AlignedBytes;
use crate::source::SourceModel;
use crate::writer::{build_with_groups, build_with_types, fixed_group};

/// Default end-to-end target: logit noise 36 dB below the logits (an RMS error of 1.6 % of
/// their spread). stories260K's fixed groups give 40 dB; llama-tiny's 23 dB, gpt2-tiny's 27.
pub const DEFAULT_TARGET_SNR_DB: f32 = 36.0;
/// Calibration sequences.
pub const SEQUENCES: usize = 4;
/// Tokens per calibration sequence (fewer if the model's context is shorter).
pub const SEQ_LEN: usize = 64;

/// Matrices that share one group, because they read the same quantized activation.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// Display name, e.g. `layers.0.wq/wk/wv`.
    pub name: String,
    /// Tensor indices (canonical order).
    pub tensors: Vec<usize>,
    /// Group chosen.
    pub group: usize,
    /// The fixed group for this unit.
    pub fixed_group: usize,
}

/// What calibration measured and chose.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Target logit SNR (dB).
    pub target_snr_db: f64,
    /// Logit SNR of the fixed groups (dB).
    pub fixed_snr_db: f64,
    /// Logit SNR of the chosen groups (dB), measured.
    pub snr_db: f64,
    /// Logit SNR of the chosen groups (dB) predicted by adding up the units' noise measured
    /// one at a time (equal to `snr_db` when the fixed groups are kept).
    pub predicted_snr_db: f64,
    /// Group per tensor in canonical order (0 for vectors).
    pub groups: Vec<usize>,
    /// The units and their groups.
    pub units: Vec<Unit>,
    /// Calibration positions.
    pub positions: usize,
    /// int8 passes over the calibration text.
    pub evaluations: usize,
}

/// Unit key of a matrix from the tensor table: per-layer matrices that read one activation
/// share a unit, `(layer, input)`; each global matrix is its own, `(usize::MAX, kind)`.
fn unit_key(kind: TensorKind, layer: usize) -> Option<(usize, u16)> {
    let t = info(kind);
    match t.role {
        Role::Matrix | Role::Embedding if t.per_layer => Some((layer, t.input as u16)),
        Role::Matrix | Role::Embedding => Some((usize::MAX, kind as u16)),
        Role::Norm | Role::Bias => None,
    }
}

fn units_of(model: &SourceModel) -> Vec<Unit> {
    let p = &model.params;
    let mut units: Vec<((usize, u16), Unit)> = Vec::new();
    for i in 0..model.tensors.len() {
        let Some((kind, layer, ..)) = p.tensor(i) else { continue };
        let Some(key) = unit_key(kind, layer) else { continue };
        let g = fixed_group(kind, p.shared_classifier);
        match units.iter_mut().find(|(k, _)| *k == key) {
            Some((_, u)) => {
                u.tensors.push(i);
                u.name = format!("{}/{}", u.name, kind.name());
            }
            None => {
                let name = match (kind, p.shared_classifier, key.0) {
                    (TensorKind::TokEmbed, true, _) => "tok_embeddings (= output)".to_string(),
                    (_, _, usize::MAX) => kind.name().to_string(),
                    _ => format!("layers.{layer}.{}", kind.name()),
                };
                units.push((key, Unit { name, tensors: vec![i], group: g, fixed_group: g }));
            }
        }
    }
    units.into_iter().map(|(_, u)| u).collect()
}

/// Calibration text and the f32 logits on it.
struct Text {
    sequences: Vec<Vec<u32>>,
    /// Per position: the f32 logits.
    reference: Vec<Vec<f32>>,
    /// Mean per-position variance of the f32 logits.
    signal: f64,
}

/// Variance of `f(j)` over `j in 0..n`, about its mean, in f64.
fn variance(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mean = (0..n).map(&f).sum::<f64>() / n as f64;
    (0..n).map(|j| (f(j) - mean).powi(2)).sum::<f64>() / n as f64
}

fn session_arena(model: &Model<'_>, context: usize) -> Result<(SessionOptions, AlignedBytes)> {
    let options = SessionOptions { context, ..Default::default() };
    let plan = model.plan(&options).context("calibration: cannot plan a session")?;
    Ok((options, AlignedBytes::zeroed(plan.arena_bytes)))
}

fn sample_text(source: &SourceModel) -> Result<Text> {
    let n = source.tensors.len();
    let (image, _) = build_with_groups(source, DType::F32, &vec![0; n], |_, _| {})?;
    let model = Model::parse(image.as_slice())?;
    let len = SEQ_LEN.min(source.params.max_seq_len);
    let (options, mut arena) = session_arena(&model, len)?;
    let vocab = source.params.vocab_size;
    let mut scratch = vec![0u32; vocab];
    let mut probs = vec![0f32; vocab];
    let mut text = Text { sequences: Vec::new(), reference: Vec::new(), signal: 0.0 };
    for s in 0..SEQUENCES {
        let mut session = Session::new(&model, &options, arena.as_mut_slice())?;
        let config = SamplerConfig { seed: 1 + s as u64, ..SamplerConfig::default() };
        let mut sampler = Sampler::new(config);
        let mut ids = vec![source.vocab.bos.unwrap_or(0)];
        for pos in 0..len {
            let logits = session.forward(ids[pos], pos)?;
            text.signal += variance(vocab, |j| logits[j] as f64);
            text.reference.push(logits.to_vec());
            if pos + 1 < len {
                probs.copy_from_slice(logits);
                ids.push(sampler.sample(&mut probs, &mut scratch));
            }
        }
        text.sequences.push(ids);
    }
    text.signal /= text.reference.len() as f64;
    Ok(text)
}

/// Measures int8 conversions of one source model against its calibration text.
struct Meter<'s> {
    source: &'s SourceModel,
    text: Text,
    evaluations: AtomicUsize,
}

impl Meter<'_> {
    /// [`noise`](Self::noise) of each entry of `trials`, on all cores; same results in the
    /// same order whatever the number of threads.
    fn noise_all(&self, trials: &[Vec<usize>]) -> Result<Vec<f64>> {
        self.map_all(trials, |groups| self.noise(groups))
    }

    /// `f` of each entry of `items`, on all cores, in order.
    fn map_all<T: Sync>(
        &self,
        trials: &[T],
        f: impl Fn(&T) -> Result<f64> + Sync,
    ) -> Result<Vec<f64>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(trials.len());
        let next = AtomicUsize::new(0);
        let mut out = vec![0.0; trials.len()];
        let results: Vec<Vec<(usize, Result<f64>)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(t) = trials.get(k) else { break };
                            done.push((k, f(t)));
                        }
                        done
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
        });
        let mut seen = 0;
        for (k, r) in results.into_iter().flatten() {
            out[k] = r?;
            seen += 1;
        }
        ensure!(seen == trials.len(), "calibration: a worker thread panicked");
        Ok(out)
    }

    /// Mean per-position logit noise power with `groups`, every matrix int8.
    fn noise(&self, groups: &[usize]) -> Result<f64> {
        let (image, _) = build_with_groups(self.source, DType::I8, groups, |_, _| {})?;
        self.noise_of(image)
    }

    /// [`noise`](Self::noise) with an element type per tensor.
    fn noise_typed(&self, dtypes: &[DType], groups: &[usize]) -> Result<f64> {
        let (image, _) = build_with_types(self.source, dtypes, groups, |_, _| {})?;
        self.noise_of(image)
    }

    /// Mean per-position logit noise power of the converted `image`.
    fn noise_of(&self, image: AlignedBytes) -> Result<f64> {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let model = Model::parse(image.as_slice())?;
        let len = self.text.sequences.first().map_or(0, Vec::len);
        let (options, mut arena) = session_arena(&model, len)?;
        let vocab = self.source.params.vocab_size;
        let mut noise = 0.0;
        let mut rows = self.text.reference.iter();
        for ids in &self.text.sequences {
            let mut session = Session::new(&model, &options, arena.as_mut_slice())?;
            for (pos, id) in ids.iter().enumerate() {
                let logits = session.forward(*id, pos)?;
                let r = rows.next().context("calibration: reference rows")?;
                noise += variance(vocab, |j| logits[j] as f64 - r[j] as f64);
            }
        }
        Ok(noise / self.text.reference.len() as f64)
    }

    fn snr_db(&self, noise: f64) -> f64 {
        if noise <= 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.text.signal / noise).log10()
        }
    }
}

/// Bytes of `unit` at group `g` (elements and scales, without padding).
fn unit_bytes(source: &SourceModel, unit: &Unit, g: usize) -> usize {
    unit.tensors
        .iter()
        .map(|i| {
            let t = &source.tensors[*i];
            t.rows * (t.cols + 2 * t.cols.div_ceil(g))
        })
        .sum()
}

/// The fixed group per tensor (0 for vectors).
fn fixed_groups(source: &SourceModel) -> Vec<usize> {
    (0..source.tensors.len())
        .map(|i| match source.params.tensor(i) {
            Some((kind, ..)) if !kind.is_vector() => {
                fixed_group(kind, source.params.shared_classifier)
            }
            _ => 0,
        })
        .collect()
}

fn apply(units: &[Unit], groups: &mut [usize], choice: impl Fn(usize) -> usize) {
    for (u, unit) in units.iter().enumerate() {
        for i in &unit.tensors {
            groups[*i] = choice(u);
        }
    }
}

/// Chooses a group per matrix so that the logit SNR on calibration text sampled from the
/// model reaches `target_snr_db` (see the module documentation). If even group 1 everywhere
/// falls short, the finest groups are returned with the SNR they reach.
///
/// # Errors
/// A model the writer refuses.
pub fn choose_groups(source: &SourceModel, target_snr_db: f64) -> Result<Calibration> {
    let text = sample_text(source)?;
    let positions = text.reference.len();
    let meter = Meter { source, text, evaluations: AtomicUsize::new(0) };
    let mut units = units_of(source);
    let mut groups = fixed_groups(source);
    let fixed_noise = meter.noise(&groups)?;
    let fixed_snr_db = meter.snr_db(fixed_noise);
    let (mut snr_db, mut predicted_snr_db) = (fixed_snr_db, fixed_snr_db);
    // A NaN SNR (non-finite logits) cannot be improved by finer groups: keep the fixed ones.
    if fixed_snr_db < target_snr_db {
        let target_noise = meter.text.signal / 10f64.powf(target_snr_db / 10.0);
        let table = measure_units(&meter, &units, &groups)?;
        let (at, noise) = refine(&meter, &units, &table, &mut groups, target_noise)?;
        let mut predicted = 0.0;
        for ((unit, row), i) in units.iter_mut().zip(&table).zip(at) {
            unit.group = row[i].group;
            predicted += row[i].noise;
        }
        snr_db = meter.snr_db(noise);
        predicted_snr_db = meter.snr_db(predicted);
    }
    Ok(Calibration {
        target_snr_db,
        fixed_snr_db,
        snr_db,
        predicted_snr_db,
        groups,
        units,
        positions,
        evaluations: meter.evaluations.load(Ordering::Relaxed),
    })
}

/// One candidate of a unit.
#[derive(Clone, Copy, Debug)]
struct Cell {
    group: usize,
    /// Logit noise power this unit adds at `group` (measured alone).
    noise: f64,
    /// Bytes of the unit at `group`.
    bytes: usize,
}

/// Per unit, its candidates from the fixed group down to 1 (halving): the noise of the
/// unit alone at that group, every other matrix at group 1 (near-exact), above the noise of
/// group 1 everywhere.
fn measure_units(meter: &Meter<'_>, units: &[Unit], fixed: &[usize]) -> Result<Vec<Vec<Cell>>> {
    let mut fine = fixed.to_vec();
    apply(units, &mut fine, |_| 1);
    let mut trials = vec![fine.clone()];
    let mut cells = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        let mut g = unit.fixed_group;
        while g > 1 {
            let mut trial = fine.clone();
            for i in &unit.tensors {
                trial[*i] = g;
            }
            trials.push(trial);
            cells.push((u, g));
            g /= 2;
        }
    }
    let noises = meter.noise_all(&trials)?;
    let floor = noises[0];
    let mut table: Vec<Vec<Cell>> = vec![Vec::new(); units.len()];
    for ((u, g), n) in cells.iter().zip(&noises[1..]) {
        let bytes = unit_bytes(meter.source, &units[*u], *g);
        table[*u].push(Cell { group: *g, noise: (n - floor).max(0.0), bytes });
    }
    for (row, unit) in table.iter_mut().zip(units) {
        row.push(Cell { group: 1, noise: 0.0, bytes: unit_bytes(meter.source, unit, 1) });
    }
    // The floor is shared: carry it in the first unit's cells, so sums predict the total.
    if let Some(row) = table.first_mut() {
        row.iter_mut().for_each(|c| c.noise += floor);
    }
    Ok(table)
}

/// Greedy refinement: repeatedly take the move (one unit to a finer candidate) that removes
/// the most predicted noise per byte added, until the prediction is within the budget; then
/// measure, and if the measurement misses `target_noise`, shrink the budget by the miss and
/// continue (at most 4 rounds). Writes the groups into `groups`; returns each unit's choice
/// and the noise measured with them.
fn refine(
    meter: &Meter<'_>,
    units: &[Unit],
    table: &[Vec<Cell>],
    groups: &mut [usize],
    target_noise: f64,
) -> Result<(Vec<usize>, f64)> {
    let mut at = vec![0usize; units.len()];
    let mut budget = target_noise;
    let mut noise = f64::NAN;
    for _ in 0..4 {
        loop {
            let predicted: f64 = table.iter().zip(&at).map(|(row, i)| row[*i].noise).sum();
            if predicted <= budget {
                break;
            }
            let mut best: Option<(usize, usize, f64)> = None;
            for (u, row) in table.iter().enumerate() {
                let now = row[at[u]];
                for (k, c) in row.iter().enumerate().skip(at[u] + 1) {
                    let rate =
                        (now.noise - c.noise) / c.bytes.saturating_sub(now.bytes).max(1) as f64;
                    if rate > 0.0 && best.is_none_or(|(.., r)| rate > r) {
                        best = Some((u, k, rate));
                    }
                }
            }
            match best {
                Some((u, k, _)) => at[u] = k,
                None => break,
            }
        }
        apply(units, groups, |u| table[u][at[u]].group);
        noise = meter.noise(groups)?;
        let exhausted = at.iter().zip(table).all(|(i, row)| *i + 1 == row.len());
        if noise <= target_noise || exhausted || !noise.is_finite() {
            break;
        }
        budget *= target_noise / noise;
    }
    Ok((at, noise))
}

/// Default logit SNR floor of `--dtype int4` (dB): matrices go back to int8 until the int4
/// file reaches it. Measured on stories260K (`docs/design/int4.md`): every matrix int4 gives
/// 18.6 dB (int8: 43.2); 20 dB keeps int8 the 9 of 36 matrices that cost the most per byte,
/// the embedding (= classifier) among them: KL to llama2.c's logits 3.3e-2 against 5.8e-2.
pub const DEFAULT_INT4_MIN_SNR_DB: f32 = 20.0;

/// What the int4 / int8 choice aims at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TypeGoal {
    /// Every matrix int4, except those that must stay int8 for the logit SNR to reach this (dB).
    MinSnr(f64),
    /// The smallest loss that fits the file in this many bytes.
    MaxBytes(usize),
}

/// One matrix's int4 cost.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeCell {
    /// Tensor index (canonical order).
    pub tensor: usize,
    /// Display name.
    pub name: String,
    /// Logit noise power this matrix adds as int4 (the others int8), measured alone.
    pub noise: f64,
    /// Bytes int4 saves on it (its padded element bytes, int8 minus int4).
    pub saved: usize,
    /// Whether it was chosen int4.
    pub int4: bool,
}

/// What the int4 / int8 choice measured and chose.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeChoice {
    /// The goal.
    pub goal: TypeGoal,
    /// Element type per tensor (canonical order; f32 for vectors).
    pub dtypes: Vec<DType>,
    /// Per matrix, in the order calibration makes them int4 (least noise per byte saved first).
    pub cells: Vec<TypeCell>,
    /// Logit SNR with every matrix int8 (dB).
    pub int8_snr_db: f64,
    /// Logit SNR of the choice (dB), measured.
    pub snr_db: f64,
    /// Logit SNR of the choice predicted from the matrices' noise measured alone.
    pub predicted_snr_db: f64,
    /// Bytes of the file with every matrix int8, and with the choice.
    pub int8_bytes: usize,
    /// Bytes of the file with the choice.
    pub bytes: usize,
    /// int8 / int4 passes over the calibration text.
    pub evaluations: usize,
}

/// Chooses int4 or int8 for each matrix (at the groups `groups`, one per tensor) on the
/// calibration text of [`choose_groups`]: each matrix is measured alone as int4, every other
/// int8; noise adds, so matrices become int4 in order of least noise added per byte saved
/// until the goal would be missed ([`TypeGoal::MinSnr`]: the predicted SNR would drop under
/// it; then measured, and one matrix fewer while the measurement misses) or is met
/// ([`TypeGoal::MaxBytes`]: the file fits; sizes are exact).
///
/// # Errors
/// A model the writer refuses, or a byte budget below the file with every matrix int4.
pub fn choose_types(source: &SourceModel, groups: &[usize], goal: TypeGoal) -> Result<TypeChoice> {
    let n = source.tensors.len();
    let matrices: Vec<usize> =
        (0..n).filter(|i| source.params.tensor(*i).is_some_and(|(k, ..)| !k.is_vector())).collect();
    let int8: Vec<DType> =
        (0..n).map(|i| if matrices.contains(&i) { DType::I8 } else { DType::F32 }).collect();
    let pad = chispa_core::format::align_up;
    let saved = |i: usize| {
        let t = &source.tensors[i];
        pad(DType::I8.data_len(t.rows, t.cols)) - pad(DType::I4.data_len(t.rows, t.cols))
    };
    let (image, _) = build_with_types(source, &int8, groups, |_, _| {})?;
    let int8_bytes = image.as_slice().len();
    let all_int4 = int8_bytes - matrices.iter().map(|i| saved(*i)).sum::<usize>();
    if let TypeGoal::MaxBytes(max) = goal {
        ensure!(
            max >= all_int4,
            "--max-bytes {max}: the smallest file is {all_int4} bytes (every matrix int4; \
             int8: {int8_bytes})"
        );
    }
    let text = sample_text(source)?;
    let meter = Meter { source, text, evaluations: AtomicUsize::new(0) };
    let base = meter.noise_of(image)?;
    let trials: Vec<Vec<DType>> = matrices
        .iter()
        .map(|i| {
            let mut d = int8.clone();
            d[*i] = DType::I4;
            d
        })
        .collect();
    let noises = meter.map_all(&trials, |d| meter.noise_typed(d, groups))?;
    let name = |i: usize| match source.params.tensor(i) {
        Some((TensorKind::TokEmbed, ..)) if source.params.shared_classifier => {
            "tok_embeddings (= output)".to_string()
        }
        Some((kind, layer, ..)) if info(kind).per_layer => {
            format!("layers.{layer}.{}", kind.name())
        }
        Some((kind, ..)) => kind.name().to_string(),
        None => String::new(),
    };
    let mut cells: Vec<TypeCell> = matrices
        .iter()
        .zip(&noises)
        .map(|(i, m)| TypeCell {
            tensor: *i,
            name: name(*i),
            noise: (m - base).max(0.0),
            saved: saved(*i),
            int4: false,
        })
        .collect();
    let rate = |c: &TypeCell| c.noise / c.saved.max(1) as f64;
    cells.sort_by(|a, b| rate(a).total_cmp(&rate(b)).then(a.tensor.cmp(&b.tensor)));
    // How many of `cells` (in order) become int4.
    let mut k = match goal {
        TypeGoal::MaxBytes(max) => {
            let mut bytes = int8_bytes;
            let mut k = 0;
            while bytes > max && k < cells.len() {
                bytes -= cells[k].saved;
                k += 1;
            }
            k
        }
        TypeGoal::MinSnr(snr) => {
            let floor = meter.text.signal / 10f64.powf(snr / 10.0);
            let mut noise = base;
            let mut k = 0;
            while k < cells.len() && noise + cells[k].noise <= floor {
                noise += cells[k].noise;
                k += 1;
            }
            k
        }
    };
    let choose = |k: usize| {
        let mut d = int8.clone();
        for c in &cells[..k] {
            d[c.tensor] = DType::I4;
        }
        d
    };
    let mut noise = meter.noise_typed(&choose(k), groups)?;
    if let TypeGoal::MinSnr(snr) = goal {
        while k > 0 && meter.snr_db(noise) < snr {
            k -= 1;
            noise = meter.noise_typed(&choose(k), groups)?;
        }
    }
    let dtypes = choose(k);
    for c in &mut cells[..k] {
        c.int4 = true;
    }
    let predicted = base + cells[..k].iter().map(|c| c.noise).sum::<f64>();
    let bytes = int8_bytes - cells[..k].iter().map(|c| c.saved).sum::<usize>();
    Ok(TypeChoice {
        goal,
        dtypes,
        int8_snr_db: meter.snr_db(base),
        snr_db: meter.snr_db(noise),
        predicted_snr_db: meter.snr_db(predicted),
        int8_bytes,
        bytes,
        cells,
        evaluations: meter.evaluations.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Params;
    use crate::synth::random_model;
    use chispa_core::format::Arch;

    /// A tiny random Llama (dim 16, two layers, a short last group in w2), weights ±`amp`.
    fn tiny(amp: f32) -> SourceModel {
        let params = Params {
            arch: Arch::Llama,
            dim: 16,
            hidden_dim: 40,
            n_layers: 2,
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 0,
            vocab_size: 300,
            max_seq_len: 24,
            rope_theta: 10000.0,
            norm_eps: 1e-5,
            shared_classifier: true,
        };
        random_model(params, 7, amp).expect("valid shape")
    }

    #[test]
    fn keeps_the_fixed_groups_when_they_reach_the_target() {
        let m = tiny(0.5);
        let c = choose_groups(&m, 10.0).expect("calibrates");
        assert!(c.fixed_snr_db >= 10.0, "{c:?}");
        assert_eq!(c.groups, fixed_groups(&m));
        assert_eq!(c.evaluations, 1);
        assert_eq!(c.positions, SEQUENCES * 24);
        assert!(c.units.iter().all(|u| u.group == u.fixed_group));
    }

    #[test]
    fn refines_the_groups_until_the_target_is_met() {
        let m = tiny(0.5);
        let fixed = choose_groups(&m, 10.0).expect("calibrates").fixed_snr_db;
        let target = fixed + 5.0;
        let c = choose_groups(&m, target).expect("calibrates");
        assert!(c.snr_db >= target, "{c:?}");
        assert!((c.predicted_snr_db - c.snr_db).abs() < 3.0, "{c:?}");
        assert!(c.units.iter().all(|u| u.group <= u.fixed_group));
        assert!(c.units.iter().any(|u| u.group < u.fixed_group));
        // The units' groups are what the tensors get; the file is valid (wq/wk/wv and w1/w3
        // share a group) and the same on every run.
        for u in &c.units {
            assert!(u.tensors.iter().all(|i| c.groups[*i] == u.group), "{u:?}");
        }
        let (image, _) = build_with_groups(&m, DType::I8, &c.groups, |_, _| {}).expect("builds");
        Model::parse(image.as_slice()).expect("parses");
        assert_eq!(choose_groups(&m, target).expect("calibrates").groups, c.groups);
    }

    #[test]
    fn an_unreachable_target_ends_at_the_finest_groups() {
        // Every unit ends at the candidate that measured least noisy (a group of 1 is not
        // always it: its multipliers are coarser against the row scale), finer than the fixed
        // groups, without an error.
        let m = tiny(0.5);
        let c = choose_groups(&m, 300.0).expect("calibrates");
        assert!(c.snr_db < 300.0);
        assert!(c.snr_db > c.fixed_snr_db, "{c:?}");
        assert!(c.units.iter().all(|u| u.group < u.fixed_group), "{:?}", c.units);
    }

    #[test]
    fn units_group_the_matrices_that_share_an_input() {
        let names: Vec<String> = units_of(&tiny(0.5)).into_iter().map(|u| u.name).collect();
        assert_eq!(
            names,
            [
                "tok_embeddings (= output)",
                "layers.0.wq/wk/wv",
                "layers.0.wo",
                "layers.0.w1/w3",
                "layers.0.w2",
                "layers.1.wq/wk/wv",
                "layers.1.wo",
                "layers.1.w1/w3",
                "layers.1.w2",
            ]
        );
    }
}

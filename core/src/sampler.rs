//! Choosing the next token: greedy, temperature, top-k, top-p, min-p and a repeat penalty,
//! with a seeded deterministic PRNG.
//!
//! The PRNG and the plain temperature/top-p path are llama2.c's (`xorshift*`, `random_f32`
//! from its top 24 bits, the top-p candidate cut-off `(1 - p) / (n - 1)`), so a seed means the
//! same thing here as there, and the same on every target. Top-k, min-p and the repeat penalty
//! are llama.cpp's; they are off unless set with [`SamplerFilters`].
//!
//! # Order of operations
//!
//! One call of [`Sampler::sample`] on the logits of a position:
//!
//! 1. **Repeat penalty** (when `repeat_penalty` is not 1 and the sampler has a history, see
//!    [`Sampler::with_filters`]): every distinct id among the last `history.len()` accepted
//!    tokens has its logit divided by the penalty when positive and multiplied by it
//!    otherwise (llama.cpp's rule). Ids outside the vocabulary are ignored.
//! 2. **Greedy**: a temperature of 0 (or below, or NaN) returns the first largest logit, and
//!    so does a positive temperature so small that a logit divided by it would overflow f32
//!    (below about `max |logit| / 3.4e38`): at such a temperature the distribution is a
//!    single token up to f32 precision, so every finite temperature has a defined result.
//! 3. **Temperature**: every logit is divided by it.
//! 4. **Top-k** (`top_k > 0`): only the `k` largest logits stay candidates; ties at the
//!    boundary go to the lower id, so exactly `min(k, vocab)` remain.
//! 5. **Softmax** over the candidates (the others get probability 0), with [`softmax`].
//! 6. **Top-p** (`0 < top_p < 1`): candidates in descending probability (equal
//!    probabilities by ascending id); the shortest prefix whose cumulative probability
//!    exceeds `top_p` stays.
//! 7. **Min-p** (`min_p > 0`): of those, the ones with probability ≥ `min_p` × the largest.
//! 8. **Sample**: one PRNG draw `r` in [0, 1), scaled by the kept probability mass; the first
//!    kept candidate (in the order above) whose cumulative probability exceeds it.
//!
//! Without top-k and min-p, steps 4–8 are exactly llama2.c's `sample` (its top-p keeps the
//! same candidates, found through the cut-off), so existing seeds give existing texts; the
//! repeat penalty, when set, only changes the logits they start from. One PRNG value is drawn
//! per non-greedy call, none per greedy one.
//!
//! llama.cpp applies the temperature last (after top-k/top-p/min-p, which it runs on the
//! logits at temperature 1); here it comes before top-p and min-p as in llama2.c, so at a
//! temperature other than 1 the same `top_p` or `min_p` keeps a different set than there.
//!
//! ```
//! use chispa_core::sampler::{Sampler, SamplerConfig, SamplerFilters};
//!
//! let config = SamplerConfig { temperature: 0.8, top_p: 0.95, seed: 42 };
//! let filters = SamplerFilters { top_k: 2, repeat_penalty: 1.3, ..SamplerFilters::default() };
//! let mut history = [0u32; 8]; // the repeat-penalty window: the last 8 tokens
//! let mut sampler = Sampler::with_filters(config, filters, &mut history);
//! let mut scratch = [0u32; 4];
//! let mut logits = [0.5, 3.0, 2.9, -1.0];
//! sampler.accept(1); // token 1 was just produced: it is penalised
//! let id = sampler.sample(&mut logits, &mut scratch);
//! assert!(id == 1 || id == 2, "top-k 2 keeps ids 1 and 2");
//! ```

pub use crate::ops::softmax;

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax); otherwise logits are divided by it before the softmax.
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability exceeds `top_p`.
    /// Values ≤ 0 or ≥ 1 sample from the whole distribution.
    pub top_p: f32,
    /// PRNG seed (0 is replaced by a fixed non-zero constant).
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self { temperature: 1.0, top_p: 0.9, seed: 42 }
    }
}

impl SamplerConfig {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, top_p: 0.0, seed: 1 }
    }
}

/// llama.cpp's filters on top of [`SamplerConfig`]; the default turns all of them off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerFilters {
    /// Keep only the `top_k` most likely tokens; 0 (or the vocabulary size or more) keeps all.
    pub top_k: usize,
    /// Keep only tokens with at least `min_p` times the probability of the most likely one;
    /// ≤ 0 (or NaN) keeps all.
    pub min_p: f32,
    /// Divide the positive logits (multiply the others) of the recently seen tokens by this;
    /// 1 (or anything not finite and positive) leaves the logits as they are. The window is
    /// the history buffer given to [`Sampler::with_filters`].
    pub repeat_penalty: f32,
}

impl Default for SamplerFilters {
    fn default() -> Self {
        Self { top_k: 0, min_p: 0.0, repeat_penalty: 1.0 }
    }
}

impl SamplerFilters {
    fn penalty(&self) -> Option<f32> {
        let p = self.repeat_penalty;
        (p.is_finite() && p > 0.0 && p != 1.0).then_some(p)
    }
}

/// A sampler with its PRNG state and, for the repeat penalty, a window of recent tokens in a
/// buffer the caller lends (`'h`; none for [`Sampler::new`]).
#[derive(Debug)]
pub struct Sampler<'h> {
    config: SamplerConfig,
    filters: SamplerFilters,
    state: u64,
    history: &'h mut [u32],
    accepted: usize,
}

impl Sampler<'static> {
    /// A sampler seeded from `config.seed`, without filters or history.
    pub fn new(config: SamplerConfig) -> Self {
        Sampler::with_filters(config, SamplerFilters::default(), &mut [])
    }
}

impl<'h> Sampler<'h> {
    /// A sampler seeded from `config.seed` with `filters`; `history` holds the repeat
    /// penalty's window: its length is the number of recent tokens penalised (llama.cpp's
    /// `--repeat-last-n`), filled by [`accept`](Self::accept). Its contents on entry do not
    /// matter.
    pub fn with_filters(
        config: SamplerConfig,
        filters: SamplerFilters,
        history: &'h mut [u32],
    ) -> Self {
        let state = if config.seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { config.seed };
        Self { config, filters, state, history, accepted: 0 }
    }

    /// The settings.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// The filters.
    pub fn filters(&self) -> &SamplerFilters {
        &self.filters
    }

    /// Records `id` as produced (or read from the prompt), for the repeat penalty: the
    /// window keeps the last `history.len()` ids. [`Generator`](crate::Generator) calls it
    /// for every prompt token and every sampled one.
    pub fn accept(&mut self, id: u32) {
        let n = self.history.len();
        if n > 0 {
            if let Some(slot) = self.history.get_mut(self.accepted % n) {
                *slot = id;
            }
            self.accepted += 1;
        }
    }

    /// The ids in the repeat-penalty window (at most `history.len()`, not in order).
    pub fn recent(&self) -> &[u32] {
        let n = self.accepted.min(self.history.len());
        self.history.get(..n).unwrap_or(&[])
    }

    fn next_u32(&mut self) -> u32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / 16_777_216.0
    }

    /// Picks a token from `logits` (which it may overwrite with probabilities), using `scratch`
    /// (at least `logits.len()` entries) for the candidates; the steps are in the
    /// [module documentation](self). It does not [`accept`](Self::accept) the token.
    pub fn sample(&mut self, logits: &mut [f32], scratch: &mut [u32]) -> u32 {
        if let Some(penalty) = self.filters.penalty() {
            let n = self.accepted.min(self.history.len());
            let recent = self.history.get(..n).unwrap_or(&[]);
            apply_repeat_penalty(logits, recent, penalty, scratch);
        }
        let t = self.config.temperature;
        if t.is_nan() || t <= 0.0 || logits.len() <= 1 {
            return argmax(logits);
        }
        let largest = logits.iter().fold(0f32, |m, l| m.max(l.abs()));
        if !(largest / t).is_finite() {
            return argmax(logits);
        }
        logits.iter_mut().for_each(|l| *l /= t);
        let p = self.config.top_p;
        let SamplerFilters { top_k, min_p, .. } = self.filters;
        if (top_k > 0 && top_k < logits.len()) || min_p > 0.0 {
            let coin_source = &mut *self;
            return sample_filtered(logits, scratch, top_k, p, min_p, || coin_source.next_f32());
        }
        softmax(logits);
        let coin = self.next_f32();
        if p <= 0.0 || p >= 1.0 {
            sample_mult(logits, coin)
        } else {
            sample_top_p(logits, p, scratch, coin)
        }
    }
}

/// Step 1: every distinct id of `recent` once (`scratch` sorts a copy when it is long
/// enough; otherwise a quadratic scan finds first occurrences: the same result).
fn apply_repeat_penalty(logits: &mut [f32], recent: &[u32], penalty: f32, scratch: &mut [u32]) {
    let mut penalise = |id: u32| {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    };
    if let Some(copy) = scratch.get_mut(..recent.len()) {
        copy.copy_from_slice(recent);
        copy.sort_unstable();
        let mut prev = None;
        for id in copy.iter() {
            if prev != Some(*id) {
                penalise(*id);
                prev = Some(*id);
            }
        }
    } else {
        for (i, id) in recent.iter().enumerate() {
            if !recent[..i].contains(id) {
                penalise(*id);
            }
        }
    }
}

/// Steps 4–8 with top-k and/or min-p (`logits` already divided by the temperature).
fn sample_filtered(
    logits: &mut [f32],
    scratch: &mut [u32],
    top_k: usize,
    top_p: f32,
    min_p: f32,
    coin: impl FnOnce() -> f32,
) -> u32 {
    let n = logits.len().min(scratch.len());
    let Some(cand) = scratch.get_mut(..n) else { return argmax(logits) };
    if n == 0 {
        return argmax(logits);
    }
    for (i, c) in cand.iter_mut().enumerate() {
        *c = i as u32;
    }
    // Ids past the scratch (too short a buffer) are never candidates.
    if let Some(rest) = logits.get_mut(n..) {
        rest.fill(f32::NEG_INFINITY);
    }
    let mut m = n;
    if top_k > 0 && top_k < n {
        let by_logit = |a: &u32, b: &u32| {
            let l = |i: &u32| logits.get(*i as usize).copied().unwrap_or(f32::NEG_INFINITY);
            l(b).total_cmp(&l(a)).then(a.cmp(b))
        };
        cand.select_nth_unstable_by(top_k - 1, by_logit);
        m = top_k;
        for id in &cand[m..] {
            if let Some(l) = logits.get_mut(*id as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    softmax(logits);
    let probs = &*logits;
    let prob = |i: &u32| probs.get(*i as usize).copied().unwrap_or(0.0);
    let cand = &mut cand[..m];
    cand.sort_unstable_by(|a, b| prob(b).total_cmp(&prob(a)).then(a.cmp(b)));
    let mut keep = m;
    if top_p > 0.0 && top_p < 1.0 {
        let mut cumulative = 0.0f32;
        for (i, id) in cand.iter().enumerate() {
            cumulative += prob(id);
            if cumulative > top_p {
                keep = i + 1;
                break;
            }
        }
    }
    if min_p > 0.0 {
        let threshold = min_p * prob(&cand[0]);
        let above = cand[..keep].iter().take_while(|id| prob(id) >= threshold).count();
        keep = above.max(1);
    }
    let kept = &cand[..keep];
    let mass: f32 = kept.iter().map(prob).sum();
    let r = coin() * mass;
    let mut cdf = 0.0f32;
    for id in kept {
        cdf += prob(id);
        if r < cdf {
            return *id;
        }
    }
    kept[keep - 1]
}

/// Index of the largest value (the first on ties; NaN never wins).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn sample_mult(probs: &[f32], coin: f32) -> u32 {
    let mut cdf = 0.0f32;
    for (i, p) in probs.iter().enumerate() {
        cdf += p;
        if coin < cdf {
            return i as u32;
        }
    }
    probs.len() as u32 - 1
}

fn sample_top_p(probs: &[f32], top_p: f32, scratch: &mut [u32], coin: f32) -> u32 {
    let n = probs.len();
    let cutoff = (1.0 - top_p) / (n - 1) as f32;
    let mut m = 0;
    for (i, p) in probs.iter().enumerate() {
        if *p >= cutoff {
            if let Some(slot) = scratch.get_mut(m) {
                *slot = i as u32;
                m += 1;
            }
        }
    }
    if m == 0 {
        return argmax(probs);
    }
    let cand = &mut scratch[..m];
    let prob = |i: &u32| probs.get(*i as usize).copied().unwrap_or(0.0);
    // Descending probability; equal probabilities by ascending id, so the order is total.
    cand.sort_unstable_by(|a, b| prob(b).total_cmp(&prob(a)).then(a.cmp(b)));
    let mut cumulative = 0.0f32;
    let mut last = m - 1;
    for (i, id) in cand.iter().enumerate() {
        cumulative += prob(id);
        if cumulative > top_p {
            last = i;
            break;
        }
    }
    let r = coin * cumulative;
    let mut cdf = 0.0f32;
    for id in &cand[..=last] {
        cdf += prob(id);
        if r < cdf {
            return *id;
        }
    }
    cand[last]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prng_matches_llama2c() {
        // llama2.c: state = 42; random_u32 → first three outputs.
        let mut s = Sampler::new(SamplerConfig { seed: 42, ..SamplerConfig::default() });
        let mut expect = 42u64;
        for _ in 0..3 {
            expect ^= expect >> 12;
            expect ^= expect << 25;
            expect ^= expect >> 27;
            assert_eq!(s.next_u32(), (expect.wrapping_mul(0x2545F4914F6CDD1D) >> 32) as u32);
        }
    }

    #[test]
    fn every_finite_positive_temperature_picks_a_real_token() {
        // 1e-45 is the smallest positive f32: the logits divided by it overflow.
        for t in [1e-45, 1e-40, 1e-38, 1e-30, 1e-6, 1.0, 1e30, f32::MAX] {
            for top_p in [0.0, 0.9] {
                let mut s = Sampler::new(SamplerConfig { temperature: t, top_p, seed: 3 });
                for _ in 0..10 {
                    let mut l = [1.0, 5.0, -20.0, 3.0];
                    let id = s.sample(&mut l, &mut [0; 4]);
                    assert!(id < 4, "t {t}: {id}");
                    if t <= 1e-6 {
                        assert_eq!(id, 1, "t {t}: a tiny temperature is greedy");
                    }
                }
            }
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        let mut l = [0.0, 2.0, 2.0, -1.0];
        assert_eq!(s.sample(&mut l, &mut [0; 4]), 1);
    }

    #[test]
    fn tiny_top_p_picks_the_most_likely() {
        let mut s = Sampler::new(SamplerConfig { temperature: 1.0, top_p: 1e-6, seed: 7 });
        for _ in 0..20 {
            let mut l = [0.0, 3.0, 1.0, -1.0];
            assert_eq!(s.sample(&mut l, &mut [0; 4]), 1);
        }
    }

    fn filtered(filters: SamplerFilters, history: &mut [u32]) -> Sampler<'_> {
        Sampler::with_filters(
            SamplerConfig { temperature: 1.0, top_p: 1.0, seed: 11 },
            filters,
            history,
        )
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut history = [0u32; 4];
        let filters = SamplerFilters { repeat_penalty: 2.0, ..SamplerFilters::default() };
        let mut s = Sampler::with_filters(SamplerConfig::greedy(), filters, &mut history);
        // Id 0 twice (penalised once), id 1 once, id 9 is outside the vocabulary.
        for id in [0, 1, 0, 9] {
            s.accept(id);
        }
        let mut l = [3.0, -1.0, 2.0];
        assert_eq!(s.sample(&mut l, &mut [0; 3]), 2);
        assert_eq!(l, [1.5, -2.0, 2.0]);
        // The same with a scratch too short to sort the window (the quadratic scan).
        let mut l = [3.0, -1.0, 2.0];
        assert_eq!(s.sample(&mut l, &mut [0; 2]), 2);
        assert_eq!(l, [1.5, -2.0, 2.0]);
    }

    #[test]
    fn the_window_keeps_the_last_tokens() {
        let mut history = [0u32; 2];
        let filters = SamplerFilters { repeat_penalty: 4.0, ..SamplerFilters::default() };
        let mut s = Sampler::with_filters(SamplerConfig::greedy(), filters, &mut history);
        for id in [0, 1, 2] {
            s.accept(id);
        }
        let mut r: [u32; 2] = [0; 2];
        r.copy_from_slice(s.recent());
        r.sort_unstable();
        assert_eq!(r, [1, 2]);
        // Id 0 left the window: its logit is untouched and wins.
        let mut l = [1.0, 2.0, 3.0];
        assert_eq!(s.sample(&mut l, &mut [0; 3]), 0);
    }

    #[test]
    fn top_k_keeps_exactly_k_with_ties_to_the_lower_id() {
        let mut s = filtered(SamplerFilters { top_k: 2, ..SamplerFilters::default() }, &mut []);
        let mut seen = [false; 4];
        for _ in 0..200 {
            let mut l = [1.0, 1.0, 1.0, 0.0];
            seen[s.sample(&mut l, &mut [0; 4]) as usize] = true;
        }
        assert_eq!(seen, [true, true, false, false]);
        let mut s = filtered(SamplerFilters { top_k: 1, ..SamplerFilters::default() }, &mut []);
        for _ in 0..50 {
            let mut l = [0.0, 0.5, 0.4, 0.3];
            assert_eq!(s.sample(&mut l, &mut [0; 4]), 1);
        }
    }

    #[test]
    fn min_p_drops_tokens_below_the_fraction_of_the_best() {
        // Probabilities 4/7, 2/7, 1/7: min-p 0.4 keeps the first two.
        let ln = |x: f32| libm::logf(x);
        let mut s = filtered(SamplerFilters { min_p: 0.4, ..SamplerFilters::default() }, &mut []);
        let mut seen = [false; 3];
        for _ in 0..300 {
            let mut l = [ln(4.0), ln(2.0), ln(1.0)];
            seen[s.sample(&mut l, &mut [0; 3]) as usize] = true;
        }
        assert_eq!(seen, [true, true, false]);
    }

    #[test]
    fn top_k_of_the_whole_vocabulary_is_no_top_k() {
        let run = |filters| {
            let mut s = filtered(filters, &mut []);
            let mut out = [0u32; 32];
            for o in out.iter_mut() {
                let mut l = [0.1, 0.5, 0.2, 0.4, 0.3];
                *o = s.sample(&mut l, &mut [0; 5]);
            }
            out
        };
        let all = SamplerFilters { top_k: 5, ..SamplerFilters::default() };
        assert_eq!(run(all), run(SamplerFilters::default()));
    }

    #[test]
    fn filtered_sampling_is_deterministic() {
        let run = |seed| {
            let mut history = [0u32; 3];
            let filters = SamplerFilters { top_k: 3, min_p: 0.05, repeat_penalty: 1.5 };
            let config = SamplerConfig { temperature: 0.9, top_p: 0.95, seed };
            let mut s = Sampler::with_filters(config, filters, &mut history);
            let mut out = [0u32; 24];
            for o in out.iter_mut() {
                let mut l = [0.1, 0.5, 0.2, 0.4, 0.3, -0.2];
                *o = s.sample(&mut l, &mut [0; 6]);
                s.accept(*o);
            }
            out
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn same_seed_same_tokens() {
        let run = |seed| {
            let mut s = Sampler::new(SamplerConfig { temperature: 1.0, top_p: 0.9, seed });
            let mut out = [0u32; 16];
            for o in out.iter_mut() {
                let mut l = [0.1, 0.5, 0.2, 0.4, 0.3];
                *o = s.sample(&mut l, &mut [0; 5]);
            }
            out
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}

//! Choosing the next token: greedy, temperature, top-p, with a seeded deterministic PRNG.
//!
//! The algorithm and PRNG are llama2.c's (`xorshift*`, `random_f32` from its top 24 bits,
//! the top-p candidate cut-off `(1 - p) / (n - 1)`), so a seed means the same thing here on
//! every target.

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

/// A sampler with its PRNG state.
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplerConfig,
    state: u64,
}

impl Sampler {
    /// A sampler seeded from `config.seed`.
    pub fn new(config: SamplerConfig) -> Self {
        let state = if config.seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { config.seed };
        Self { config, state }
    }

    /// The settings.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
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
    /// (at least `logits.len()` entries) for top-p.
    pub fn sample(&mut self, logits: &mut [f32], scratch: &mut [u32]) -> u32 {
        let t = self.config.temperature;
        if t.is_nan() || t <= 0.0 || logits.len() <= 1 {
            return argmax(logits);
        }
        logits.iter_mut().for_each(|l| *l /= t);
        softmax(logits);
        let coin = self.next_f32();
        let p = self.config.top_p;
        if p <= 0.0 || p >= 1.0 {
            sample_mult(logits, coin)
        } else {
            sample_top_p(logits, p, scratch, coin)
        }
    }
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

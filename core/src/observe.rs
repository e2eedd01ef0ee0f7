//! Looking inside the forward pass without changing it.
//!
//! An [`Observer`] is called with the attention weights of every layer and head at the
//! current position, and with the final probabilities. It only reads buffers the forward pass
//! computes anyway, so the logits are identical bit for bit with or without it; with
//! [`NoObserver`] (what `Session::forward` uses) every call is an empty inline function and
//! compiles away. No heap: the observer decides what to keep.

/// Receives what the forward pass computes at one position.
pub trait Observer {
    /// Whether [`probabilities`](Self::probabilities) should be called (it costs a softmax).
    const WANTS_PROBABILITIES: bool = false;

    /// Attention weights of `head` in `layer` for the current position: `weights[t]` for key
    /// positions `t = 0..=pos` (a distribution: non-negative, summing to 1).
    fn attention(&mut self, layer: usize, head: usize, weights: &[f32]) {
        let _ = (layer, head, weights);
    }

    /// The softmax of the logits (temperature 1), `[vocab]`.
    fn probabilities(&mut self, probs: &[f32]) {
        let _ = probs;
    }
}

/// Observes nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

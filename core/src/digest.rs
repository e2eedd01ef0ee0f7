//! A digest of a generation run, identical on every target: the firmware and `chispa run
//! --digest` print it so that anyone can compare the two.
//!
//! The digest is 64-bit FNV-1a over a byte stream, in this order:
//!
//! 1. every prompt token id (including BOS), as a little-endian `u32`;
//! 2. for every forward pass, in order: the bits of each logit (`f32::to_bits`, little-endian
//!    `u32`, index 0 first), then — if a token was sampled from those logits — its id as a
//!    little-endian `u32` (a final stop token included).
//!
//! [`Digest::event`] applies rule 2 to one [`Event`] of the [`crate::Generator`]. Any
//! difference in a single logit bit or token id changes the digest.

use crate::generate::{Event, StopReason};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over token ids and logit bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

impl Digest {
    /// The empty digest (FNV-1a's offset basis).
    pub const fn new() -> Self {
        Self(OFFSET)
    }

    /// Folds raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(PRIME);
        }
    }

    /// Folds token ids (little-endian `u32` each).
    pub fn tokens(&mut self, ids: &[u32]) {
        for id in ids {
            self.bytes(&id.to_le_bytes());
        }
    }

    /// Folds the bits of logits (little-endian `u32` each).
    pub fn logits(&mut self, logits: &[f32]) {
        for l in logits {
            self.bytes(&l.to_bits().to_le_bytes());
        }
    }

    /// Folds what one `Generator::step` produced; `logits` are the generator's logits after
    /// that step. Steps that ran no forward pass (a stop for length or a full context) add
    /// nothing.
    pub fn event(&mut self, event: &Event, logits: &[f32]) {
        match *event {
            Event::Prompt { .. } => self.logits(logits),
            Event::Token { id, .. } | Event::Stop(StopReason::EndOfSequence { id }) => {
                self.logits(logits);
                self.tokens(&[id]);
            }
            Event::Stop(_) => {}
        }
    }

    /// The digest value.
    pub fn value(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_64_known_values() {
        // Published FNV-1a 64 test vectors.
        let mut d = Digest::new();
        assert_eq!(d.value(), 0xcbf2_9ce4_8422_2325);
        d.bytes(b"a");
        assert_eq!(d.value(), 0xaf63_dc4c_8601_ec8c);
        let mut d = Digest::new();
        d.bytes(b"foobar");
        assert_eq!(d.value(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn one_bit_changes_it() {
        let (mut a, mut b) = (Digest::new(), Digest::new());
        a.logits(&[1.0, 2.0]);
        b.logits(&[1.0, f32::from_bits(2.0f32.to_bits() ^ 1)]);
        assert_ne!(a, b);
    }
}

//! A heap buffer whose bytes start at a 16-byte boundary, as `Model::parse` and
//! `Session::new` require.

/// Bytes backed by `u128`s, so the start is 16-byte aligned.
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    words: Vec<u128>,
    len: usize,
}

impl AlignedBytes {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        Self { words: vec![0; len.div_ceil(16)], len }
    }

    /// `len` zero bytes, or `None` when the allocator cannot provide them (instead of
    /// aborting the process as `zeroed` does).
    pub fn try_zeroed(len: usize) -> Option<Self> {
        let n = len.div_ceil(16);
        let mut words = Vec::new();
        words.try_reserve_exact(n).ok()?;
        words.resize(n, 0);
        Some(Self { words, len })
    }

    /// A copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut a = Self::zeroed(bytes.len());
        a.as_mut_slice().copy_from_slice(bytes);
        a
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    /// The bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_aligned_and_sized() {
        let a = AlignedBytes::copy_from(&[1, 2, 3]);
        assert_eq!(a.as_slice(), &[1, 2, 3]);
        assert_eq!(a.as_slice().as_ptr() as usize % 16, 0);
    }
}

//! chispa-core: int8 transformer inference for microcontrollers — `no_std`, no heap.
//!
//! Everything works on borrowed memory: the model is the bytes of a `.chispa` file (in flash,
//! or memory-mapped), and a session carves its KV cache and activations from one arena the
//! caller provides, whose exact size [`Model::plan`] gives ahead of time. The same code runs on
//! a Cortex-M0 and on the desktop (`chispa`), with the same bits on every target.
//!
//! ```text
//! Model::parse(bytes) → model.plan(&options) → Session::new(&model, &options, arena)
//!   → tokenizer().encode → Generator::step … → tokenizer().decode
//! ```
//!
//! * [`arch`]: the architectures as data (tensor table, typed weights, forward passes).
//! * [`format`]: the `.chispa` layout shared with the writer in `chispa-tools`.
//! * [`model`]: validation and zero-copy tensor views.
//! * [`session`]: memory plan, arena, forward pass.
//! * [`kernels`]: the numerics contract and its scalar reference.
//! * [`tokenizer`], [`sampler`] (its order of operations), [`generate`], [`observe`],
//!   [`digest`].
//!
//! # Features
//!
//! None is on by default: the default build is `no_std`, allocation-free and uses the
//! portable kernels (plus the Arm DSP/Helium ones a Cortex-M target enables at compile time).
//!
//! * **`std`** — for the desktop: run-time CPU detection that selects the x86 SIMD kernels
//!   (AVX2, AVX-512) or NEON, and `$CHISPA_BACKEND` to force one (`kernels::backend_from_env`,
//!   read by [`kernels::Kernels::default`]). Without it, only kernels known at compile time
//!   run. Every backend gives the same bits; each session carries its table of kernels
//!   ([`Session::set_kernels`]).
//! * **`defmt`** — derives `defmt::Format` for the error and event types (firmware logging).
//! * **`selftest`** — `kernels::selftest`: the active backend against the scalar code, on the
//!   target itself (`cargo xtask qemu --selftest`).
//!
//! # Examples
//!
//! The examples below use a 17 KB test model kept in the repository (2 layers, vocabulary
//! 300, random weights: the text is nonsense, the mechanics are real); a program would pass
//! the bytes of any `.chispa` file (from `chispa-convert`), e.g. from flash with
//! `include_bytes!` or from a memory map. Model bytes must be 16-byte aligned.
//! `core/examples/generate.rs` is a complete program.
//!
//! ## Parse a model
//!
//! [`Model::parse`] checks the whole file (checksum, header, every tensor's shape and
//! bounds) once; afterwards nothing is checked again and nothing is copied.
//!
//! ```
//! # #[repr(C, align(16))]
//! # struct Aligned<const N: usize>([u8; N]);
//! # static MODEL: Aligned<{ include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa").len() }> =
//! #     Aligned(*include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa"));
//! use chispa_core::{FormatError, Model};
//!
//! let model = Model::parse(&MODEL.0)?;
//! let c = model.config();
//! assert_eq!((c.n_layers, c.vocab_size), (2, 300));
//! println!("{} parameters, {} weights", c.parameter_count(), c.dtype.name());
//!
//! // A damaged file is a typed error, never a panic.
//! assert!(matches!(Model::parse(&MODEL.0[..1000]), Err(FormatError::Truncated { .. })));
//! # Ok::<(), FormatError>(())
//! ```
//!
//! ## Plan the memory
//!
//! [`Model::plan`] says how many bytes the arena needs for a context length and KV-cache
//! type, before anything is allocated: this is how the firmware sizes its static buffer.
//!
//! ```
//! # #[repr(C, align(16))]
//! # struct Aligned<const N: usize>([u8; N]);
//! # static MODEL: Aligned<{ include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa").len() }> =
//! #     Aligned(*include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa"));
//! use chispa_core::{KvType, Model, PlanError, Session, SessionOptions};
//!
//! let model = Model::parse(&MODEL.0).expect("a valid model");
//! let small = model.plan(&SessionOptions { context: 8, kv: KvType::I8 })?;
//! let exact = model.plan(&SessionOptions { context: 8, kv: KvType::F32 })?;
//! assert!(small.kv_cache_bytes < exact.kv_cache_bytes);
//! assert_eq!(small.arena_bytes, small.kv_cache_bytes + small.scratch_bytes);
//!
//! // The arena: any 16-byte aligned buffer of at least `arena_bytes`.
//! #[repr(C, align(16))]
//! struct Arena([u8; 16384]);
//! let mut arena = Arena([0; 16384]);
//! assert!(small.arena_bytes <= arena.0.len());
//! let options = SessionOptions { context: 8, kv: KvType::I8 };
//! let session = Session::new(&model, &options, &mut arena.0[..small.arena_bytes])?;
//! assert_eq!(session.context(), 8);
//!
//! // More context than the model was trained for is refused.
//! assert!(model.plan(&SessionOptions { context: 1 << 20, ..options }).is_err());
//! # Ok::<(), PlanError>(())
//! ```
//!
//! ## Generate text
//!
//! A [`Generator`] runs the prompt, then samples one token per [`Generator::step`] until the
//! token budget, a stop id or the end of the context. The [`Sampler`] is seeded: the same seed
//! gives the same tokens on every target. [`StopStrings`] watches the text for stop strings.
//!
//! ```
//! # #[repr(C, align(16))]
//! # struct Aligned<const N: usize>([u8; N]);
//! # static MODEL: Aligned<{ include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa").len() }> =
//! #     Aligned(*include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa"));
//! # #[repr(C, align(16))]
//! # struct Arena([u8; 16384]);
//! use chispa_core::{
//!     Event, Generator, Model, Sampler, SamplerConfig, SamplerFilters, Session, SessionOptions,
//! };
//!
//! let model = Model::parse(&MODEL.0).expect("a valid model");
//! let options = SessionOptions { context: 16, ..Default::default() };
//! let plan = model.plan(&options).expect("fits");
//! let mut arena = Arena([0; 16384]);
//! let mut session = Session::new(&model, &options, &mut arena.0[..plan.arena_bytes])
//!     .expect("session");
//!
//! let mut prompt = [0u32; 16];
//! let mut scratch = [0u32; 16 * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
//! let n = model
//!     .tokenizer()
//!     .encode("Once the", true, false, &mut prompt, &mut scratch)
//!     .expect("encode");
//!
//! // Temperature and top-p as llama2.c; top-k and a repeat penalty over the last 8 tokens
//! // as llama.cpp (the window is a buffer the caller lends).
//! let config = SamplerConfig { temperature: 0.8, top_p: 0.9, seed: 42 };
//! let filters = SamplerFilters { top_k: 40, repeat_penalty: 1.1, ..Default::default() };
//! let mut window = [0u32; 8];
//! let sampler = Sampler::with_filters(config, filters, &mut window);
//!
//! let mut gen = Generator::new(&mut session, &prompt[..n], 6, sampler).expect("prompt fits");
//! let tok = model.tokenizer();
//! let mut text = [0u8; 256];
//! let mut len = 0;
//! let reason = loop {
//!     match gen.step().expect("a valid session") {
//!         Event::Prompt { .. } => {}
//!         Event::Token { id, prev } => {
//!             for b in tok.decode(Some(prev), id).bytes() {
//!                 text[len] = *b;
//!                 len += 1;
//!             }
//!         }
//!         Event::Stop(reason) => break reason,
//!     }
//! };
//! assert!(gen.generated() <= 6);
//! println!("{:?} ({reason:?})", core::str::from_utf8(&text[..len]));
//! ```
//!
//! ## Observe the forward pass
//!
//! An [`Observer`] sees the attention weights of every layer and head, and optionally the
//! probabilities, without changing a bit of the logits (`chispa attention` draws its maps
//! this way).
//!
//! ```
//! # #[repr(C, align(16))]
//! # struct Aligned<const N: usize>([u8; N]);
//! # static MODEL: Aligned<{ include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa").len() }> =
//! #     Aligned(*include_bytes!("../../tests/fuzz/corpus/parse_raw/tiny.chispa"));
//! # #[repr(C, align(16))]
//! # struct Arena([u8; 16384]);
//! use chispa_core::{Model, Observer, Session, SessionOptions};
//!
//! /// The largest weight any head gives to position 0 (BOS), at the current position.
//! struct BosAttention {
//!     max: f32,
//!     best_p: f32,
//! }
//!
//! impl Observer for BosAttention {
//!     const WANTS_PROBABILITIES: bool = true;
//!     fn attention(&mut self, _layer: usize, _head: usize, weights: &[f32]) {
//!         self.max = self.max.max(weights[0]);
//!     }
//!     fn probabilities(&mut self, probs: &[f32]) {
//!         self.best_p = probs.iter().copied().fold(0.0, f32::max);
//!     }
//! }
//!
//! let model = Model::parse(&MODEL.0).expect("a valid model");
//! let options = SessionOptions { context: 4, ..Default::default() };
//! let plan = model.plan(&options).expect("fits");
//! let (mut a, mut b) = (Arena([0; 16384]), Arena([0; 16384]));
//! let mut watched = Session::new(&model, &options, &mut a.0[..plan.arena_bytes]).expect("fits");
//! let mut plain = Session::new(&model, &options, &mut b.0[..plan.arena_bytes]).expect("fits");
//! for (pos, token) in [1u32, 42, 7].into_iter().enumerate() {
//!     let mut obs = BosAttention { max: 0.0, best_p: 0.0 };
//!     let seen = watched.forward_observed(token, pos, &mut obs).expect("in range").to_vec();
//!     assert_eq!(seen, plain.forward(token, pos).expect("in range"), "the same logits");
//!     assert!(obs.max > 0.0 && obs.max <= 1.0 && obs.best_p > 0.0);
//! }
//! ```
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod arch;
mod attention;
pub mod digest;
pub mod error;
pub mod format;
pub mod generate;
pub mod kernels;
mod kv;
pub mod model;
pub mod observe;
mod ops;
pub mod pretokenize;
pub mod sampler;
pub mod session;
pub mod tokenizer;
mod unicode_letters;

pub use digest::Digest;
pub use error::{FormatError, PlanError, RunError, TokenizeError};
pub use format::{Arch, DType};
pub use generate::{Event, Generator, StopReason, StopStrings};
pub use model::{Config, Model};
pub use observe::{NoObserver, Observer};
pub use sampler::{Sampler, SamplerConfig, SamplerFilters};
pub use session::{KvType, Plan, Session, SessionOptions};
pub use tokenizer::{Piece, Tokenizer};

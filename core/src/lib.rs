//! chispa-core: int8 transformer inference for microcontrollers — `no_std`, no heap.
//!
//! ```text
//! Model::parse(bytes) → model.plan(&options) → Session::new(&model, &options, arena)
//!   → tokenizer().encode → Generator::step … → tokenizer().decode
//! ```
//!
//! * [`format`]: the `.chispa` layout shared with the writer in `chispa-tools`.
//! * [`model`]: validation and zero-copy tensor views.
//! * [`session`]: memory plan, arena, forward pass.
//! * [`kernels`]: the numerics contract and its scalar reference.
//! * [`tokenizer`], [`sampler`], [`generate`].
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod attention;
pub mod digest;
pub mod error;
pub mod format;
pub mod generate;
mod gpt2;
pub mod kernels;
mod kv;
mod llama;
pub mod model;
pub mod observe;
mod ops;
mod pretokenize;
pub mod sampler;
pub mod session;
pub mod tokenizer;

pub use digest::Digest;
pub use error::{FormatError, PlanError, RunError, TokenizeError};
pub use format::{Arch, DType};
pub use generate::{Event, Generator, StopReason, StopStrings};
pub use model::{Config, Model};
pub use observe::{NoObserver, Observer};
pub use sampler::{Sampler, SamplerConfig, SamplerFilters};
pub use session::{KvType, Plan, Session, SessionOptions};
pub use tokenizer::{Piece, Tokenizer};

//! chispa-tools: everything that turns foreign model files into `.chispa` files.
//!
//! * [`source`]: the in-memory model every reader produces (f32 tensors + vocabulary).
//! * [`llama2c`]: llama2.c checkpoints and `tokenizer.bin`.
//! * [`quant`]: group-wise int8 quantization and its error report.
//! * [`writer`]: the `.chispa` writer (layout from `chispa_core::format`), verified by
//!   parsing what it wrote, and the atomic file write.
//! * [`synth`]: random-weight models in the TinyStories shapes, for benchmarks.
//! * [`aligned`]: an aligned byte buffer for parsing in memory.
#![forbid(unsafe_code)]

pub mod aligned;
pub mod inspect;
pub mod llama2c;
pub mod quant;
pub mod source;
pub mod synth;
pub mod writer;

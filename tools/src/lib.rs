//! chispa-tools: everything that turns foreign model files into `.chispa` files.
//!
//! * [`source`]: the in-memory model every reader produces (f32 tensors + vocabulary).
//! * [`hf`], [`hf_tokenizer`]: Hugging Face folders (safetensors, config.json, tokenizer.json).
//! * [`gguf`]: llama.cpp GGUF v3 files (`llama`; F32, F16 and the block types of
//!   [`ggml_quants`]; `llama` and `gpt2` tokenizers); [`gguf_writer`] writes small ones for
//!   tests and fuzz seeds.
//! * [`regex_split`]: pre-tokenizer regexes compiled to the core's split program;
//!   [`chat`]: chat templates (minijinja).
//! * [`llama2c`]: llama2.c checkpoints and `tokenizer.bin`.
//! * [`quant`]: group-wise int8 quantization and its error report.
//! * [`writer`]: the `.chispa` writer (layout from `chispa_core::format`), verified by
//!   parsing what it wrote, and the atomic file write.
//! * [`synth`]: random-weight models in the TinyStories shapes, for benchmarks.
//! * [`output`]: the one policy for files read and written (no input overwritten, no device
//!   replaced, temporary files removed, the umask's mode); [`stdout`]: printing that ends
//!   quietly on a closed pipe and reports a full one.
//! * [`aligned`]: an aligned byte buffer for parsing in memory.
#![forbid(unsafe_code)]

pub mod aligned;
pub mod calibrate;
pub mod chat;
pub mod ggml_quants;
pub mod gguf;
pub mod gguf_writer;
pub mod hf;
pub mod hf_tokenizer;
pub mod inspect;
pub mod llama2c;
pub mod output;
pub mod quant;
pub mod regex_split;
pub mod source;
pub mod stdout;
pub mod synth;
pub mod usage;
pub mod writer;

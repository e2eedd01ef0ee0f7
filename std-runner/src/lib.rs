//! The desktop side of chispa: finding data, loading models (memory-mapped `.chispa` files, or
//! llama2.c checkpoints converted in memory), and running them.
//!
//! The core does the inference; this crate only adds files, clocks and text.

pub mod attention;
pub mod boards;
pub mod cache;
pub mod chat;
pub mod cost;
pub mod data;
pub mod load;
pub mod run;
pub mod threads;
pub mod usage;

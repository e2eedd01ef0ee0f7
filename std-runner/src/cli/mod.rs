//! The subcommands, one module each.

pub(crate) mod attention;
pub(crate) mod bench;
pub(crate) mod chat;
pub(crate) mod common;
pub(crate) mod eval;
pub(crate) mod plan;
pub(crate) mod run;
pub(crate) mod tokenize;

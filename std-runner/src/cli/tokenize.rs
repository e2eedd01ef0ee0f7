//! `chispa tokenize`: text to token ids.

use std::io::{self, Write};

use anyhow::Result;
use chispa_runner::load::Loaded;

use super::common::encode;

pub(crate) fn cmd_tokenize(loaded: &Loaded, text: &str, verbose: bool, no_bos: bool) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let ids = encode(&model, text, !no_bos, None)?;
    let mut out = io::stdout().lock();
    let r = if verbose {
        ids.iter().try_for_each(|id| {
            let piece = String::from_utf8_lossy(model.tokenizer().piece(*id));
            writeln!(out, "{id}\t{piece:?}")
        })
    } else {
        let s: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "{}", s.join(","))
    };
    r.and_then(|()| out.flush()).map_err(chispa_tools::stdout::error)
}

//! `chispa eval`: teacher-forced perplexity and logits.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chispa_runner::load::Loaded;
use chispa_runner::run::{mean_nll, teacher_forced};
use chispa_tools::outln;
use serde_json::json;

use super::common::{encode, rate};

pub(crate) fn cmd_eval(
    loaded: &Loaded,
    tokens: Option<String>,
    text: Option<PathBuf>,
    logits_out: Option<PathBuf>,
) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let mut inputs: Vec<&Path> = loaded.inputs.iter().map(PathBuf::as_path).collect();
    inputs.extend(text.as_deref());
    if let Some(out) = &logits_out {
        chispa_tools::output::check(out, &inputs)?;
    }
    let ids: Vec<u32> = match (tokens, text.as_deref()) {
        (Some(t), _) => t
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .with_context(|| format!("--tokens: {s:?} is not a token id"))
            })
            .collect::<Result<_>>()?,
        (None, Some(path)) => {
            let s = chispa_tools::output::read_input_text(path)?;
            encode(&model, &s, true, Some(model.config().max_seq_len))?
        }
        (None, None) => bail!("give --tokens or --text"),
    };
    if ids.is_empty() {
        bail!("no tokens to evaluate");
    }
    let max = model.config().max_seq_len;
    if ids.len() > max {
        bail!("{} tokens exceed the model's context of {max}", ids.len());
    }
    let start = Instant::now();
    let logits = teacher_forced(&model, &ids)?;
    let elapsed = start.elapsed();
    let nll = mean_nll(&logits, &ids);
    outln!(
        "tokens {}  mean NLL {:.4} nats  perplexity {:.3}  ({:.0} tok/s)",
        ids.len(),
        nll,
        nll.exp(),
        rate(ids.len(), elapsed)
    )?;
    if let Some(path) = logits_out {
        let doc = json!({ "input_ids": ids, "logits": logits });
        let bytes = serde_json::to_vec(&doc)?;
        chispa_tools::output::write(&path, &inputs, &bytes)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

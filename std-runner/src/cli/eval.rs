//! `chispa eval`: teacher-forced perplexity and logits.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chispa_runner::load::Loaded;
use chispa_runner::run::{mean_nll, teacher_forced};
use serde_json::json;

use super::common::{encode, rate};

pub(crate) fn cmd_eval(
    loaded: &Loaded,
    tokens: Option<String>,
    text: Option<PathBuf>,
    logits_out: Option<PathBuf>,
) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let ids: Vec<u32> = match (tokens, text) {
        (Some(t), _) => t
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .with_context(|| format!("--tokens: {s:?} is not a token id"))
            })
            .collect::<Result<_>>()?,
        (None, Some(path)) => {
            let s = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            encode(&model, &s, true)?
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
    println!(
        "tokens {}  mean NLL {:.4} nats  perplexity {:.3}  ({:.0} tok/s)",
        ids.len(),
        nll,
        nll.exp(),
        rate(ids.len(), elapsed)
    );
    if let Some(path) = logits_out {
        let doc = json!({ "input_ids": ids, "logits": logits });
        let bytes = serde_json::to_vec(&doc)?;
        chispa_tools::writer::write_atomic(&path, &bytes)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

//! `chispa attention`: draw the attention maps of a prompt as SVG.

use std::path::Path;

use anyhow::{bail, Result};
use chispa_runner::attention::{max_svg_tokens, record, render_svg, svg_cells, MAX_SVG_CELLS};
use chispa_runner::load::Loaded;

use super::common::encode;

/// Parses `all` or an index below `n`.
fn pick(what: &str, arg: &str, n: usize) -> Result<Vec<usize>> {
    if arg == "all" {
        return Ok((0..n).collect());
    }
    match arg.parse::<usize>() {
        Ok(i) if i < n => Ok(vec![i]),
        _ => bail!("--{what} must be 'all' or 0..{}, got {arg:?}", n.saturating_sub(1)),
    }
}

pub(crate) fn cmd_attention(
    loaded: &Loaded,
    prompt: &str,
    layer: &str,
    head: &str,
    out: &Path,
) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let inputs: Vec<&Path> = loaded.inputs.iter().map(|p| p.as_path()).collect();
    chispa_tools::output::check(out, &inputs)?;
    let c = model.config();
    let layers = pick("layer", layer, c.n_layers)?;
    let heads = pick("head", head, c.n_heads)?;
    let ids = encode(&model, prompt, true, Some(c.max_seq_len))?;
    if ids.len() > c.max_seq_len {
        bail!(
            "the prompt has {} tokens, more than the model's context of {}",
            ids.len(),
            c.max_seq_len
        );
    }
    let n_maps = layers.len() * heads.len();
    let cells = svg_cells(ids.len(), n_maps);
    if cells.is_none_or(|c| c > MAX_SVG_CELLS) {
        let narrow = if n_maps > 1 {
            "pick one --layer and one --head, or use a shorter prompt"
        } else {
            "use a shorter prompt"
        };
        bail!(
            "{} tokens × {} tokens × {n_maps} map(s) is above the limit of {MAX_SVG_CELLS} cells of an attention SVG (about 40 MB): {narrow} (at most {} tokens for {n_maps} map(s))",
            ids.len(),
            ids.len(),
            max_svg_tokens(n_maps)
        );
    }
    let maps = record(&model, &ids)?;
    let title = format!("attention of {prompt:?}");
    let svg = render_svg(&maps, &layers, &heads, &title);
    let inputs: Vec<&Path> = loaded.inputs.iter().map(|p| p.as_path()).collect();
    chispa_tools::output::write(out, &inputs, svg.as_bytes())?;
    eprintln!(
        "wrote {}: {} tokens, {} map(s)",
        out.display(),
        ids.len(),
        layers.len() * heads.len()
    );
    Ok(())
}

//! Attention maps: recorded by a core [`Observer`] during a teacher-forced pass over the
//! prompt, drawn as SVG heat maps (tokens on both axes).

use std::fmt::Write;

use anyhow::Result;
use chispa_core::{Model, Observer, Session, SessionOptions};

use crate::run::arena_for;

/// Attention weights of every layer and head for a token sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionMaps {
    /// Transformer blocks.
    pub n_layers: usize,
    /// Heads per block.
    pub n_heads: usize,
    /// Display label of each token.
    pub labels: Vec<String>,
    /// `[n_layers, n_heads, T, T]`: row = query position, column = key position; zero above
    /// the diagonal (a position never attends to later ones).
    pub weights: Vec<f32>,
}

impl AttentionMaps {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The `[T, T]` map of one head.
    pub fn head(&self, layer: usize, head: usize) -> &[f32] {
        let t = self.len();
        let start = (layer * self.n_heads + head) * t * t;
        &self.weights[start..start + t * t]
    }
}

struct Recorder<'a> {
    maps: &'a mut AttentionMaps,
    pos: usize,
}

impl Observer for Recorder<'_> {
    fn attention(&mut self, layer: usize, head: usize, weights: &[f32]) {
        let t = self.maps.labels.len();
        let row = ((layer * self.maps.n_heads + head) * t + self.pos) * t;
        self.maps.weights[row..row + weights.len()].copy_from_slice(weights);
    }
}

/// A readable label for a token: spaces as `▁`, newlines as `↵`, byte tokens as `<0xNN>`.
pub fn token_label(model: &Model<'_>, id: u32) -> String {
    let t = model.tokenizer();
    if Some(id) == t.bos() {
        return "<s>".into();
    }
    if let Some(b) = t.byte_of(id) {
        return match b {
            b'\n' => "↵".into(),
            b' ' => "▁".into(),
            _ => format!("<0x{b:02X}>"),
        };
    }
    String::from_utf8_lossy(t.piece(id)).replace(' ', "▁").replace('\n', "↵")
}

/// Runs `ids` through the model and records every attention map.
///
/// # Errors
/// More ids than the model's context, or ids outside the vocabulary.
pub fn record(model: &Model<'_>, ids: &[u32]) -> Result<AttentionMaps> {
    let c = model.config();
    let t = ids.len();
    let mut maps = AttentionMaps {
        n_layers: c.n_layers,
        n_heads: c.n_heads,
        labels: ids.iter().map(|id| token_label(model, *id)).collect(),
        weights: vec![0.0; c.n_layers * c.n_heads * t * t],
    };
    let options = SessionOptions { context: t.max(1), ..Default::default() };
    let mut arena = arena_for(model, &options)?;
    let mut session = Session::new(model, &options, arena.as_mut_slice())?;
    session.set_kernels(crate::threads::kernels());
    for (pos, id) in ids.iter().enumerate() {
        session.forward_observed(*id, pos, &mut Recorder { maps: &mut maps, pos })?;
    }
    Ok(maps)
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c if (c as u32) < 0x20 => format!("\\x{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Most cells (token pairs × maps) an SVG holds: about 40 MB of SVG at roughly 150 bytes
/// a cell.
pub const MAX_SVG_CELLS: usize = 1 << 18;

/// Cells of the SVG for `tokens` tokens and `maps` maps, or `None` on overflow.
pub fn svg_cells(tokens: usize, maps: usize) -> Option<usize> {
    tokens.checked_mul(tokens)?.checked_mul(maps)
}

/// The most tokens whose `maps` maps fit [`MAX_SVG_CELLS`].
pub fn max_svg_tokens(maps: usize) -> usize {
    (MAX_SVG_CELLS / maps.max(1)).isqrt()
}

/// White (0) to deep blue (1), with a square root so weak links stay visible.
fn colour(w: f32) -> String {
    let v = w.clamp(0.0, 1.0).sqrt();
    let mix = |from: f32, to: f32| (from + (to - from) * v).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// Draws one head's map at `(x, y)` with cells of `cell` pixels; labels when `labelled`.
fn draw_map(
    svg: &mut String,
    maps: &AttentionMaps,
    layer: usize,
    head: usize,
    x: f32,
    y: f32,
    cell: f32,
) {
    let t = maps.len();
    let m = maps.head(layer, head);
    let _ = writeln!(svg, r#"<g class="map" data-layer="{layer}" data-head="{head}">"#);
    for q in 0..t {
        for k in 0..t {
            let w = m[q * t + k];
            let _ = writeln!(
                svg,
                r#"<rect class="cell" data-q="{q}" data-k="{k}" x="{:.1}" y="{:.1}" width="{cell}" height="{cell}" fill="{}"><title>{} → {}: {w:.3}</title></rect>"#,
                x + k as f32 * cell,
                y + q as f32 * cell,
                colour(w),
                escape(&maps.labels[q]),
                escape(&maps.labels[k]),
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{x}" y="{y}" width="{}" height="{}" fill="none" stroke="#888" stroke-width="0.5"/></g>"##,
        t as f32 * cell,
        t as f32 * cell
    );
}

/// "layer 3", "layers 0–4", or "layers 0, 2" for the title.
fn describe(what: &str, picked: &[usize]) -> String {
    match picked {
        [one] => format!("{what} {one}"),
        [first, .., last] if picked.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("{what}s {first}–{last}")
        }
        _ => {
            let list: Vec<String> = picked.iter().map(usize::to_string).collect();
            format!("{what}s {}", list.join(", "))
        }
    }
}

/// At most `n` characters of a label (an ellipsis marks a cut).
fn short(label: &str, n: usize) -> String {
    if label.chars().count() <= n {
        label.to_string()
    } else {
        label.chars().take(n.saturating_sub(1)).chain(std::iter::once('…')).collect()
    }
}

/// The colour scale: a bar from weight 0 to 1 at `(x, y)`, with ticks.
fn draw_legend(svg: &mut String, x: f32, y: f32) {
    let w = 200.0;
    let _ = writeln!(svg, r#"<g class="legend"><defs><linearGradient id="scale">"#);
    for i in 0..=20 {
        let v = i as f32 / 20.0;
        let _ = writeln!(svg, r#"<stop offset="{:.0}%" stop-color="{}"/>"#, v * 100.0, colour(v));
    }
    let _ = writeln!(svg, "</linearGradient></defs>");
    let _ = writeln!(
        svg,
        r##"<rect x="{x}" y="{y}" width="{w}" height="10" fill="url(#scale)" stroke="#888" stroke-width="0.5"/>"##
    );
    for tick in [0.0f32, 0.25, 0.5, 0.75, 1.0] {
        let tx = x + tick * w;
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#555" stroke-width="0.5"/><text x="{tx:.1}" y="{:.1}" font-size="9" text-anchor="middle">{tick}</text>"##,
            y + 10.0,
            y + 13.0,
            y + 22.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#555">attention weight (colour ∝ √weight)</text></g>"##,
        x + w + 10.0,
        y + 9.0
    );
}

/// An SVG of the chosen maps: one large labelled map when one layer and one head are chosen,
/// otherwise a grid (layers down, heads across) of small maps, each row of maps labelled
/// with the query tokens and the top row with the attended ones. `title` is followed by the
/// layers and heads drawn; a colour scale is drawn below the maps.
pub fn render_svg(maps: &AttentionMaps, layers: &[usize], heads: &[usize], title: &str) -> String {
    let t = maps.len() as f32;
    let single = layers.len() == 1 && heads.len() == 1;
    // Grid labels: small, at most 8 characters.
    let max_chars = maps.labels.iter().map(|l| l.chars().count().min(8)).max().unwrap_or(1) as f32;
    let grid_label = 3.6 * max_chars + 6.0;
    let (cell, label_w) = if single { (22.0, 110.0) } else { (7.0, 24.0 + grid_label) };
    let map = t * cell;
    let gap = if single { 0.0 } else { 18.0 };
    let top = if single { 110.0 } else { 58.0 + grid_label };
    let title = format!("{title} — {}, {}", describe("layer", layers), describe("head", heads));
    let width = (label_w + heads.len() as f32 * (map + gap) + 20.0)
        .max(20.0 + 7.5 * title.chars().count() as f32)
        .max(420.0);
    let legend_y = top + layers.len() as f32 * (map + gap) + 12.0;
    let height = legend_y + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Arial, sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="18" font-size="13" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    let subtitle = if single {
        "rows: query token · columns: attended token · darker = more weight"
    } else {
        "rows of maps: layers · columns: heads · in each map, rows: query token, columns: attended token"
    };
    let _ = writeln!(svg, r##"<text x="10" y="34" font-size="10" fill="#555">{subtitle}</text>"##);
    for (li, layer) in layers.iter().enumerate() {
        for (hi, head) in heads.iter().enumerate() {
            let x = label_w + hi as f32 * (map + gap);
            let y = top + li as f32 * (map + gap);
            draw_map(&mut svg, maps, *layer, *head, x, y, cell);
            if single {
                continue;
            }
            if li == 0 {
                let _ = writeln!(
                    svg,
                    r#"<text x="{x}" y="50" font-size="9" font-weight="bold">H{head}</text>"#
                );
                // Attended tokens above the top row, one per column.
                for (k, label) in maps.labels.iter().enumerate() {
                    let cx = x + (k as f32 + 0.75) * cell;
                    let cy = y - 3.0;
                    let _ = writeln!(
                        svg,
                        r#"<text x="{cx:.1}" y="{cy:.1}" font-size="6" transform="rotate(-90 {cx:.1} {cy:.1})">{}</text>"#,
                        escape(&short(label, 8))
                    );
                }
            }
            if hi == 0 {
                let _ = writeln!(
                    svg,
                    r#"<text x="4" y="{:.1}" font-size="9" font-weight="bold">L{layer}</text>"#,
                    y + 8.0
                );
                // Query tokens left of the first column, one per row.
                for (q, label) in maps.labels.iter().enumerate() {
                    let _ = writeln!(
                        svg,
                        r#"<text x="{:.1}" y="{:.1}" font-size="6" text-anchor="end">{}</text>"#,
                        x - 2.0,
                        y + (q as f32 + 0.8) * cell,
                        escape(&short(label, 8))
                    );
                }
            }
        }
    }
    if single {
        let x0 = label_w;
        for (i, label) in maps.labels.iter().enumerate() {
            let l = escape(label);
            let cy = top + (i as f32 + 0.7) * cell;
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{cy:.1}" font-size="11" text-anchor="end">{l}</text>"#,
                x0 - 4.0
            );
            let cx = x0 + (i as f32 + 0.6) * cell;
            let _ = writeln!(
                svg,
                r#"<text x="{cx:.1}" y="{:.1}" font-size="11" transform="rotate(-60 {cx:.1} {:.1})">{l}</text>"#,
                top - 4.0,
                top - 4.0
            );
        }
    }
    draw_legend(&mut svg, 10.0, legend_y);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(t: usize) -> AttentionMaps {
        let (n_layers, n_heads) = (2, 3);
        let mut weights = vec![0.0; n_layers * n_heads * t * t];
        for m in weights.chunks_mut(t * t) {
            for q in 0..t {
                for k in 0..=q {
                    m[q * t + k] = 1.0 / (q + 1) as f32;
                }
            }
        }
        let labels = (0..t).map(|i| format!("tok{i}")).collect();
        AttentionMaps { n_layers, n_heads, labels, weights }
    }

    #[test]
    fn the_grid_names_its_layers_and_heads_and_labels_the_tokens() {
        let m = maps(4);
        let svg = render_svg(&m, &[0, 1], &[0, 1, 2], "attention of \"x\"");
        assert!(svg.contains("layers 0–1, heads 0–2"), "{svg}");
        assert!(!svg.contains("layer all"));
        // Each label: once left of each row of maps (2), once above each top map (3).
        for l in &m.labels {
            assert_eq!(svg.matches(&format!(">{l}</text>")).count(), 2 + 3, "{l}");
        }
        assert!(svg.contains(r#"class="legend""#) && svg.contains("linearGradient"));
        let single = render_svg(&m, &[1], &[2], "attention of \"x\"");
        assert!(single.contains("layer 1, head 2"));
        assert!(single.contains(r#"class="legend""#));
    }

    #[test]
    fn titles_list_what_is_not_a_range() {
        assert_eq!(describe("head", &[0, 2]), "heads 0, 2");
        assert_eq!(describe("layer", &[4]), "layer 4");
        assert_eq!(short("abcdefghij", 8), "abcdefg…");
    }
}

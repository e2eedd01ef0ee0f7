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

/// An SVG of the chosen maps: one large labelled map when one layer and one head are chosen,
/// otherwise a grid (layers down, heads across) of small maps.
pub fn render_svg(maps: &AttentionMaps, layers: &[usize], heads: &[usize], title: &str) -> String {
    let t = maps.len() as f32;
    let single = layers.len() == 1 && heads.len() == 1;
    let (cell, label_w) = if single { (22.0, 110.0) } else { (7.0, 40.0) };
    let map = t * cell;
    let gap = if single { 0.0 } else { 18.0 };
    let top = if single { 110.0 } else { 50.0 };
    let width = (label_w + heads.len() as f32 * (map + gap) + 20.0)
        .max(20.0 + 7.5 * title.chars().count() as f32);
    let height = top + layers.len() as f32 * (map + gap) + 20.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Arial, sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="18" font-size="13" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (li, layer) in layers.iter().enumerate() {
        for (hi, head) in heads.iter().enumerate() {
            let x = label_w + hi as f32 * (map + gap);
            let y = top + li as f32 * (map + gap);
            draw_map(&mut svg, maps, *layer, *head, x, y, cell);
            if !single {
                let _ = writeln!(
                    svg,
                    r#"<text x="{x}" y="{:.1}" font-size="9">L{layer} H{head}</text>"#,
                    y - 3.0
                );
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
        let _ = writeln!(
            svg,
            r##"<text x="10" y="34" font-size="10" fill="#555">rows: query token · columns: attended token · darker = more weight</text>"##
        );
    }
    svg.push_str("</svg>\n");
    svg
}

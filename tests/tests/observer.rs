//! The forward-pass observer: it sees every attention row and the final probabilities, and
//! changes nothing — logits are identical bit for bit with or without it.

use chispa_core::format::DType;
use chispa_core::{Model, Observer, Session, SessionOptions};
use chispa_runner::attention::{record, render_svg};
use chispa_runner::run::arena_for;
use chispa_tests::{stories_model, stories_reference};

#[derive(Default)]
struct Check {
    pos: usize,
    rows: usize,
    worst_sum_err: f32,
    prob_sum_err: f32,
    bad: Vec<String>,
}

impl Observer for Check {
    const WANTS_PROBABILITIES: bool = true;

    fn attention(&mut self, layer: usize, head: usize, w: &[f32]) {
        self.rows += 1;
        if w.len() != self.pos + 1 {
            self.bad.push(format!("L{layer} H{head} pos {}: {} weights", self.pos, w.len()));
        }
        if w.iter().any(|v| v.is_nan() || *v < 0.0) {
            self.bad.push(format!("L{layer} H{head} pos {}: negative or NaN weight", self.pos));
        }
        let sum: f32 = w.iter().sum();
        self.worst_sum_err = self.worst_sum_err.max((sum - 1.0).abs());
    }

    fn probabilities(&mut self, p: &[f32]) {
        let sum: f32 = p.iter().sum();
        self.prob_sum_err = self.prob_sum_err.max((sum - 1.0).abs());
    }
}

#[test]
fn observing_changes_no_bit_and_rows_are_distributions() -> anyhow::Result<()> {
    let reference = stories_reference()?;
    let ids = &reference.cases[1].input_ids[..100];
    for dtype in [DType::I8, DType::F32] {
        let bytes = stories_model(dtype, None)?;
        let model = Model::parse(bytes.as_slice())?;
        let c = *model.config();
        let options = SessionOptions { context: ids.len(), ..Default::default() };
        let mut a1 = arena_for(&model, &options)?;
        let mut a2 = arena_for(&model, &options)?;
        let mut plain = Session::new(&model, &options, a1.as_mut_slice())?;
        let mut seen = Session::new(&model, &options, a2.as_mut_slice())?;
        let mut check = Check::default();
        for (pos, id) in ids.iter().enumerate() {
            let want: Vec<u32> = plain.forward(*id, pos)?.iter().map(|v| v.to_bits()).collect();
            check.pos = pos;
            let got: Vec<u32> =
                seen.forward_observed(*id, pos, &mut check)?.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{dtype:?} logits differ at position {pos}");
        }
        assert!(check.bad.is_empty(), "{:?}", &check.bad[..check.bad.len().min(5)]);
        assert_eq!(check.rows, ids.len() * c.n_layers * c.n_heads);
        assert!(check.worst_sum_err <= 1e-5, "attention row sums off by {}", check.worst_sum_err);
        assert!(check.prob_sum_err <= 1e-5, "probabilities sum off by {}", check.prob_sum_err);
    }
    Ok(())
}

#[test]
fn attention_svg_is_well_formed_with_one_cell_per_pair() -> anyhow::Result<()> {
    let bytes = stories_model(DType::I8, None)?;
    let model = Model::parse(bytes.as_slice())?;
    let ids = &stories_reference()?.cases[2].prompt_ids; // "Tom and his dog went to the park"
    let maps = record(&model, ids)?;
    let t = ids.len();
    // Zero above the diagonal: nothing attends to the future.
    for q in 0..t {
        let row = &maps.head(2, 3)[q * t..(q + 1) * t];
        assert!(row[q + 1..].iter().all(|v| *v == 0.0));
        assert!((row.iter().sum::<f32>() - 1.0).abs() <= 1e-5);
    }
    let svg = render_svg(&maps, &[2], &[3], "Tom & \"his\" <dog>");
    let doc = roxmltree::Document::parse(&svg)?;
    let cells: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some("cell"))
        .collect();
    assert_eq!(cells.len(), t * t);
    let mut pairs: Vec<(usize, usize)> = cells
        .iter()
        .map(|n| {
            let get = |a| n.attribute(a).and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
            (get("data-q"), get("data-k"))
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), t * t, "every (query, key) pair exactly once");
    let labels: Vec<_> = doc.descendants().filter_map(|n| n.text()).collect();
    for l in &maps.labels {
        assert!(labels.contains(&l.as_str()), "label {l:?} is drawn");
    }
    assert!(maps.labels.iter().any(|l| l == "▁and"), "{:?}", maps.labels);

    // The grid of every layer and head is well-formed too.
    let grid = render_svg(&maps, &(0..5).collect::<Vec<_>>(), &(0..8).collect::<Vec<_>>(), "all");
    let doc = roxmltree::Document::parse(&grid)?;
    let n = doc.descendants().filter(|n| n.attribute("class") == Some("cell")).count();
    assert_eq!(n, 5 * 8 * t * t);
    Ok(())
}

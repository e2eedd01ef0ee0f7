//! Quality and size of int4 and mixed int4/int8 conversions against the f32 references:
//! stories260K against llama2.c's logits, llama-tiny against transformers', teacher-forced
//! on the reference ids — the tables in `docs/design/int4.md`.
//!
//! `cargo run --release -p chispa-tests --bin int4-quality`

use anyhow::Result;
use chispa_core::format::DType;
use chispa_core::Model;
use chispa_runner::data::default_model;
use chispa_runner::run::teacher_forced;
use chispa_tests::hf::{hf_dir, hf_reference};
use chispa_tests::{agreement, combine, Agreement, Reference};
use chispa_tools::source::SourceModel;
use chispa_tools::writer::{self, Groups, Mix, WriteOptions};
use chispa_tools::{hf, llama2c};

/// Converts `source` with `opts` and compares it with `reference` at every stored position.
fn measure(
    source: &SourceModel,
    opts: WriteOptions,
    reference: &Reference,
) -> Result<(Agreement, usize, String)> {
    let (bytes, report) = writer::build(source, &opts, |_, _| {})?;
    let model = Model::parse(bytes.as_slice())?;
    let parts = reference
        .cases
        .iter()
        .map(|c| {
            let n = c.logits.len();
            Ok(agreement(&c.logits, &teacher_forced(&model, &c.input_ids[..n])?))
        })
        .collect::<Result<Vec<_>>>()?;
    let note = match &report.types {
        Some(t) => {
            let kept: Vec<&str> =
                t.cells.iter().filter(|c| !c.int4).map(|c| c.name.as_str()).collect();
            format!(
                "{}/{} int4, logit SNR {:.1} dB; int8: {}",
                t.cells.len() - kept.len(),
                t.cells.len(),
                t.snr_db,
                match kept.len() {
                    0 => "none".to_string(),
                    1..=6 => kept.join(", "),
                    n => format!("{n} matrices"),
                }
            )
        }
        None => String::new(),
    };
    Ok((combine(&parts), report.file_bytes, note))
}

fn main() -> Result<()> {
    println!("| model | weights | file bytes | mean KL | top-1 | notes |");
    println!("|---|---|---|---|---|---|");
    let (ckpt, tok) = default_model()?;
    let stories = llama2c::read(&std::fs::read(ckpt)?, &std::fs::read(tok)?)?;
    let llama = hf::read_dir(&hf_dir("llama-tiny")?)?.model;
    let models: [(&str, &SourceModel, Reference); 2] = [
        ("stories260K", &stories, chispa_tests::stories_reference()?),
        ("llama-tiny", &llama, hf_reference("llama-tiny")?),
    ];
    for (name, source, reference) in &models {
        let int8 = WriteOptions::default();
        let int4 = |min_snr: f32| WriteOptions {
            dtype: DType::I4,
            mix: Mix { int4_min_snr_db: min_snr, max_bytes: None },
            ..Default::default()
        };
        let (a8, b8, _) = measure(source, int8, reference)?;
        let (a4, b4, _) = measure(source, int4(0.0), reference)?;
        let mut rows = vec![
            ("int8 (default)".to_string(), a8, b8, String::new()),
            ("int4, every matrix".to_string(), a4, b4, String::new()),
        ];
        for g in [16, 8] {
            let opts = WriteOptions { groups: Groups::Uniform(g), ..int4(0.0) };
            let (a, b, _) = measure(source, opts, reference)?;
            rows.push((format!("int4, every matrix, group {g}"), a, b, String::new()));
        }
        for snr in [20.0, 23.0, 26.0] {
            let (a, b, n) = measure(source, int4(snr), reference)?;
            rows.push((format!("int4, --int4-min-snr {snr}"), a, b, n));
        }
        for frac in [0.75, 0.5, 0.25] {
            let budget = b4 + ((b8 - b4) as f64 * frac) as usize;
            let opts =
                WriteOptions { mix: Mix { max_bytes: Some(budget), ..Mix::default() }, ..int8 };
            let (a, b, n) = measure(source, opts, reference)?;
            rows.push((format!("mixed, --max-bytes {budget}"), a, b, n));
        }
        for (label, a, bytes, note) in rows {
            println!(
                "| {name} | {label} | {bytes} | {:.2e} | {:.1}% | {note} |",
                a.mean_kl,
                100.0 * a.top1
            );
        }
    }
    Ok(())
}

//! Quality of int8 conversions of the Hugging Face reference models (and of llama-tiny through
//! a Q8_0 GGUF) against the transformers logits, teacher-forced on the reference `input_ids`
//! over every position of the 5 cases: the table in README.md.
//!
//! `cargo run --release -p chispa-tests --bin hf-quality`

use anyhow::Result;
use chispa_core::format::DType;
use chispa_core::Model;
use chispa_runner::run::teacher_forced;
use chispa_tests::hf::{hf_dir, hf_reference};
use chispa_tests::{agreement, combine, Agreement};
use chispa_tools::gguf_writer::{self, GgufType};
use chispa_tools::source::SourceModel;
use chispa_tools::writer::{self, Groups, WriteOptions};
use chispa_tools::{gguf, hf};

fn measure(name: &str, source: &SourceModel, opts: WriteOptions) -> Result<(Agreement, usize)> {
    let (bytes, report) = writer::build(source, &opts, |_, _| {})?;
    if let Some(c) = &report.calibration {
        let groups: Vec<String> =
            c.units.iter().map(|u| format!("{} {}", u.name, u.group)).collect();
        eprintln!(
            "{name}: calibration {:.1} dB fixed → {:.1} dB (target {:.1}), {} passes: {}",
            c.fixed_snr_db,
            c.snr_db,
            c.target_snr_db,
            c.evaluations,
            groups.join(", ")
        );
    }
    let model = Model::parse(bytes.as_slice())?;
    let parts = hf_reference(name)?
        .cases
        .iter()
        .map(|c| Ok(agreement(&c.logits, &teacher_forced(&model, &c.input_ids)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok((combine(&parts), report.file_bytes))
}

fn row(label: &str, a: &Agreement, bytes: usize) {
    println!(
        "| {label} | {bytes} | {:.2e} | {:.2e} | {:.1}% | {:.2e} |",
        a.mean_kl,
        a.max_kl,
        100.0 * a.top1,
        a.max_abs_err
    );
}

fn main() -> Result<()> {
    println!("| model, weights | file bytes | mean KL | max KL | top-1 | max abs err |");
    println!("|---|---|---|---|---|---|");
    for name in ["llama-tiny", "gpt2-tiny"] {
        let source = hf::read_dir(&hf_dir(name)?)?.model;
        for (label, dtype, groups) in [
            ("f32", DType::F32, Groups::Fixed),
            ("int8 default (calibrated groups)", DType::I8, Groups::default()),
            ("int8 fixed groups", DType::I8, Groups::Fixed),
            ("int8 group 8", DType::I8, Groups::Uniform(8)),
            ("int8 group 4", DType::I8, Groups::Uniform(4)),
            ("int8 group 2", DType::I8, Groups::Uniform(2)),
        ] {
            let (a, bytes) =
                measure(name, &source, WriteOptions { dtype, groups, ..Default::default() })?;
            row(&format!("{name}, {label}"), &a, bytes);
        }
    }
    let source = hf::read_dir(&hf_dir("llama-tiny")?)?.model;
    let (q8, _) = gguf::read(&gguf_writer::write(&source, GgufType::Q8_0)?)?;
    for (label, dtype) in [("f32", DType::F32), ("int8 default", DType::I8)] {
        let (a, bytes) = measure("llama-tiny", &q8, WriteOptions::new(dtype, None))?;
        row(&format!("llama-tiny via GGUF Q8_0, {label}"), &a, bytes);
    }
    Ok(())
}

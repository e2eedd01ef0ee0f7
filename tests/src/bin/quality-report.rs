//! Prints how close chispa's stories260K is to llama2.c's, for f32 and for int8 at several
//! quantization group sizes — the measurement behind the fixed groups, which calibration
//! keeps for this model (`chispa_tools::calibrate`).
//!
//! `cargo run --release -p chispa-tests --bin quality-report`

use anyhow::Result;
use chispa_core::format::DType;
use chispa_core::{Event, Generator, Model, Sampler, SamplerConfig, Session, SessionOptions};
use chispa_runner::run::{arena_for, teacher_forced};
use chispa_tests::{agreement, combine, common_prefix, greedy, stories_model, stories_reference};

/// A held-out sequence: 256 tokens sampled (temperature 1, top-p 0.9, seed 1234) from BOS
/// with the f32 model, which matches llama2.c to 2e-5.
fn held_out(f32_model: &Model<'_>) -> Result<Vec<u32>> {
    let options = SessionOptions { context: 256, ..Default::default() };
    let mut arena = arena_for(f32_model, &options)?;
    let mut session = Session::new(f32_model, &options, arena.as_mut_slice())?;
    let prompt = [f32_model.bos_id().unwrap_or(0)];
    let sampler = Sampler::new(SamplerConfig { temperature: 1.0, top_p: 0.9, seed: 1234 });
    let mut gen = Generator::new(&mut session, &prompt, 255, sampler)?;
    let mut ids = prompt.to_vec();
    while let Event::Token { id, .. } | Event::Prompt { next: id, .. } = gen.step()? {
        ids.push(id);
    }
    Ok(ids)
}

fn main() -> Result<()> {
    let reference = stories_reference()?;
    let f32_bytes = stories_model(DType::F32, None)?;
    let f32_model = Model::parse(f32_bytes.as_slice())?;
    let held = held_out(&f32_model)?;
    let held_f32 = teacher_forced(&f32_model, &held)?;
    println!(
        "| weights | group | file bytes | mean KL | max KL | top-1 | max abs err | greedy prefix (bos/once/tom) | held-out KL, top-1 vs f32 ({} tokens) |",
        held.len()
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let configs = [
        (DType::F32, None),
        (DType::I8, None),
        (DType::I8, Some(8)),
        (DType::I8, Some(16)),
        (DType::I8, Some(32)),
        (DType::I8, Some(64)),
        (DType::I8, Some(chispa_core::kernels::MAX_GROUP)),
    ];
    for (dtype, group) in configs {
        let bytes = stories_model(dtype, group)?;
        let model = Model::parse(bytes.as_slice())?;
        let mut parts = Vec::new();
        let mut prefixes = Vec::new();
        for case in &reference.cases {
            let n = case.logits.len();
            parts.push(agreement(&case.logits, &teacher_forced(&model, &case.input_ids[..n])?));
            let g = greedy(&model, &case.prompt_ids, case.greedy_ids.len())?;
            prefixes.push(format!(
                "{}/{}",
                common_prefix(&g, &case.greedy_ids),
                case.greedy_ids.len()
            ));
        }
        let a = combine(&parts);
        let h = agreement(&held_f32, &teacher_forced(&model, &held)?);
        let group = match (dtype, group) {
            (DType::F32, _) => "-".to_string(),
            (_, None) => "32; w2 16; classifier 8 (default: kept by calibration)".to_string(),
            (_, Some(chispa_core::kernels::MAX_GROUP)) => "row".to_string(),
            (_, Some(g)) => g.to_string(),
        };
        println!(
            "| {} | {} | {} | {:.2e} | {:.2e} | {:.1}% | {:.4} | {} | {:.2e}, {:.1}% |",
            dtype.name(),
            group,
            bytes.as_slice().len(),
            a.mean_kl,
            a.max_kl,
            100.0 * a.top1,
            a.max_abs_err,
            prefixes.join(" "),
            h.mean_kl,
            100.0 * h.top1
        );
    }
    Ok(())
}

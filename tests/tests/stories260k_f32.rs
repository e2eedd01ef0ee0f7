//! The f32 path against llama2.c's run.c on stories260K: logits within 1e-4 at every stored
//! position, and identical greedy ids.

use chispa_core::format::DType;
use chispa_core::Model;
use chispa_runner::run::teacher_forced;
use chispa_tests::{agreement, greedy, stories_model, stories_reference};

#[test]
fn f32_logits_match_llama2c_within_1e_4() -> anyhow::Result<()> {
    let reference = stories_reference()?;
    let bytes = stories_model(DType::F32, None)?;
    let model = Model::parse(bytes.as_slice())?;
    for case in &reference.cases {
        let n = case.logits.len();
        assert_eq!(n, 64, "reference layout changed");
        let ours = teacher_forced(&model, &case.input_ids[..n])?;
        let a = agreement(&case.logits, &ours);
        eprintln!("{}: max |Δlogit| {:.2e} over {} positions", case.name, a.max_abs_err, n);
        assert!(a.max_abs_err <= 1e-4, "{}: max abs error {}", case.name, a.max_abs_err);
        assert_eq!(a.top1, 1.0);
    }
    Ok(())
}

#[test]
fn f32_greedy_ids_match_llama2c() -> anyhow::Result<()> {
    let reference = stories_reference()?;
    let bytes = stories_model(DType::F32, None)?;
    let model = Model::parse(bytes.as_slice())?;
    for case in &reference.cases {
        let ours = greedy(&model, &case.prompt_ids, case.greedy_ids.len())?;
        assert_eq!(ours, case.greedy_ids, "case {}", case.name);
    }
    Ok(())
}

//! Hugging Face `Qwen2ForCausalLM` and `Qwen3ForCausalLM` converted by `chispa-convert hf`,
//! against transformers on the random-weight checkpoints `tests/hf/make_tiny.py` made
//! (`tests/data/qwen2-tiny`, `tests/data/qwen3-tiny`, with llama-tiny's tokenizer): prompt
//! ids, logits within 1e-4 at every position, greedy ids; int8 top-1 agreement; and what the
//! converter refuses.

use chispa_core::format::DType;
use chispa_core::{Arch, Model};
use chispa_runner::run::teacher_forced;
use chispa_tests::hf::{convert_dir, tiny_dir, tiny_reference};
use chispa_tests::{agreement, combine, greedy, Reference};

fn encode(model: &Model<'_>, text: &str) -> Vec<u32> {
    let mut ids = vec![0u32; text.len() + 3];
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = model.tokenizer().encode(text, true, false, &mut ids, &mut scratch).expect("capacity");
    ids.truncate(n);
    ids
}

fn check_f32(model: &Model<'_>, reference: &Reference) -> anyhow::Result<()> {
    for case in &reference.cases {
        assert_eq!(encode(model, &case.prompt), case.prompt_ids, "prompt ids, case {}", case.name);
        let ours = teacher_forced(model, &case.input_ids)?;
        assert_eq!(ours.len(), case.logits.len());
        let a = agreement(&case.logits, &ours);
        eprintln!(
            "{}: max |Δlogit| {:.2e} over {} positions",
            case.name, a.max_abs_err, a.positions
        );
        assert!(a.max_abs_err <= 1e-4, "{}: max abs error {}", case.name, a.max_abs_err);
        let g = greedy(model, &case.prompt_ids, case.greedy_ids.len())?;
        assert_eq!(g, case.greedy_ids, "greedy ids, case {}", case.name);
    }
    Ok(())
}

fn f32_matches(name: &str, arch: Arch) -> anyhow::Result<()> {
    let dir = tiny_dir(name)?;
    let bytes = convert_dir(&dir, DType::F32)?;
    let model = Model::parse(bytes.as_slice())?;
    assert_eq!(model.config().arch, arch);
    check_f32(&model, &tiny_reference(name)?)
}

fn int8_quality(name: &str) -> anyhow::Result<()> {
    let dir = tiny_dir(name)?;
    let bytes = convert_dir(&dir, DType::I8)?;
    let model = Model::parse(bytes.as_slice())?;
    let reference = tiny_reference(name)?;
    let parts: Vec<_> = reference
        .cases
        .iter()
        .map(|c| Ok(agreement(&c.logits, &teacher_forced(&model, &c.input_ids)?)))
        .collect::<anyhow::Result<_>>()?;
    let a = combine(&parts);
    eprintln!(
        "{name} int8: mean KL {:.3e}, max KL {:.3e}, top-1 {:.1}%, max |Δlogit| {:.3} over {} positions",
        a.mean_kl,
        a.max_kl,
        100.0 * a.top1,
        a.max_abs_err,
        a.positions
    );
    assert!(a.top1 >= 0.97, "top-1 {}", a.top1);
    Ok(())
}

#[test]
fn qwen2_tiny_f32_matches_transformers() -> anyhow::Result<()> {
    f32_matches("qwen2-tiny", Arch::Qwen2)
}

#[test]
fn qwen2_tiny_int8_quality() -> anyhow::Result<()> {
    int8_quality("qwen2-tiny")
}

#[test]
fn qwen3_tiny_f32_matches_transformers() -> anyhow::Result<()> {
    f32_matches("qwen3-tiny", Arch::Qwen3)
}

#[test]
fn qwen3_tiny_int8_quality() -> anyhow::Result<()> {
    int8_quality("qwen3-tiny")
}

/// `config.json` of `name` edited by `edit`, in a fresh folder.
fn edited(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> anyhow::Result<chispa_tests::hf::TestDir> {
    let dir = tiny_dir(name)?;
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string())?;
    Ok(dir)
}

fn refusal(dir: &std::path::Path) -> String {
    match chispa_tools::hf::read_dir(dir) {
        Ok(_) => panic!("{} converted", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn unsupported_qwen_configurations_are_refused_by_name() -> anyhow::Result<()> {
    let dir = edited("qwen2-tiny", |c| c["use_sliding_window"] = true.into())?;
    let err = refusal(&dir);
    assert!(err.contains("\"use_sliding_window\": true is not supported"), "{err}");
    let dir = edited("qwen3-tiny", |c| c["attention_bias"] = true.into())?;
    let err = refusal(&dir);
    assert!(err.contains("\"attention_bias\": true is not supported"), "{err}");
    let dir = edited("qwen3-tiny", |c| c["layer_types"][1] = "sliding_attention".into())?;
    let err = refusal(&dir);
    assert!(err.contains("layer_types entry \"sliding_attention\" is not supported"), "{err}");
    // Qwen3's q/k norms are tensors a Qwen2 model does not have: refused, all named.
    let dir = edited("qwen3-tiny", |c| {
        c["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]);
        c["attention_bias"] = false.into();
    })?;
    let err = refusal(&dir);
    assert!(err.contains("missing tensor model.layers.0.self_attn.q_proj.bias"), "{err}");
    Ok(())
}

//! Hugging Face `LlamaForCausalLM` folders converted by `chispa-convert hf`, against the
//! transformers reference (`reference/hf/llama-tiny`): prompt ids, logits within 1e-4 at every
//! position, greedy ids; int8 quality; the older config form with an untied head; f16/bf16
//! and sharded checkpoints.

use std::collections::HashMap;

use chispa_core::format::DType;
use chispa_core::Model;
use chispa_runner::run::teacher_forced;
use chispa_tests::hf::{
    convert_dir, convert_dir_fixed, copy_tokenizer, hf_dir, hf_reference, read_f32_tensors,
    temp_dir, write_checkpoint, Store,
};
use chispa_tests::{agreement, greedy, reference_agreement, Reference};

fn encode(model: &Model<'_>, text: &str) -> Vec<u32> {
    let mut ids = vec![0u32; text.len() + 3];
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = model.tokenizer().encode(text, true, false, &mut ids, &mut scratch).expect("capacity");
    ids.truncate(n);
    ids
}

/// Prompt ids, logits (scaled by `logit_scale`) within `tol`, greedy ids.
fn check_f32(model: &Model<'_>, reference: &Reference, logit_scale: f32, tol: f64) {
    for case in &reference.cases {
        assert_eq!(encode(model, &case.prompt), case.prompt_ids, "prompt ids, case {}", case.name);
        let ours = teacher_forced(model, &case.input_ids).expect("runs");
        assert_eq!(ours.len(), case.logits.len());
        let want: Vec<Vec<f32>> =
            case.logits.iter().map(|r| r.iter().map(|x| x * logit_scale).collect()).collect();
        let a = agreement(&want, &ours);
        eprintln!(
            "{}: max |Δlogit| {:.2e} over {} positions",
            case.name, a.max_abs_err, a.positions
        );
        assert!(a.max_abs_err <= tol, "{}: max abs error {}", case.name, a.max_abs_err);
        if logit_scale == 1.0 {
            let g = greedy(model, &case.prompt_ids, case.greedy_ids.len()).expect("runs");
            assert_eq!(g, case.greedy_ids, "greedy ids, case {}", case.name);
        }
    }
}

#[test]
fn llama_tiny_f32_matches_transformers() -> anyhow::Result<()> {
    let bytes = convert_dir(&hf_dir("llama-tiny")?, DType::F32)?;
    let model = Model::parse(bytes.as_slice())?;
    check_f32(&model, &hf_reference("llama-tiny")?, 1.0, 1e-4);
    Ok(())
}

#[test]
fn stories260k_hf_f32_matches_llama2c() -> anyhow::Result<()> {
    let bytes = convert_dir(&hf_dir("stories260K-hf")?, DType::F32)?;
    let model = Model::parse(bytes.as_slice())?;
    let reference = chispa_tests::stories_reference()?;
    for case in &reference.cases {
        assert_eq!(encode(&model, &case.prompt), case.prompt_ids, "case {}", case.name);
        let n = case.logits.len();
        let a = agreement(&case.logits, &teacher_forced(&model, &case.input_ids[..n])?);
        assert!(a.max_abs_err <= 1e-4, "{}: {}", case.name, a.max_abs_err);
    }
    Ok(())
}

#[test]
fn llama_tiny_int8_quality() -> anyhow::Result<()> {
    let bytes = convert_dir(&hf_dir("llama-tiny")?, DType::I8)?;
    let model = Model::parse(bytes.as_slice())?;
    let reference = hf_reference("llama-tiny")?;
    let a = reference_agreement(&model, &reference)?;
    eprintln!(
        "llama-tiny int8: mean KL {:.3e}, max KL {:.3e}, top-1 {:.1}%, max |Δlogit| {:.3} over {} positions",
        a.mean_kl,
        a.max_kl,
        100.0 * a.top1,
        a.max_abs_err,
        a.positions
    );
    // Measured with the default (calibrated) groups: mean KL 6.33e-4, top-1 99.0 % (README).
    // The fixed groups give 1.12e-2 and 90.2 %: this random-weight model has near-ties (3 %
    // of positions have a top-1 margin under 0.041) and a few matrices 40× more sensitive
    // than the rest, which calibration finds and gives finer groups.
    assert!(a.top1 >= 0.97, "top-1 {}", a.top1);
    assert!(a.mean_kl <= 1e-3, "mean KL {}", a.mean_kl);
    Ok(())
}

/// llama-tiny rewritten as real checkpoints often are: top-level `rope_theta`, `torch_dtype`,
/// and a separate `lm_head.weight` (here 2 × the embedding, so the logits must double).
#[test]
fn older_config_form_with_untied_head() -> anyhow::Result<()> {
    let src = hf_dir("llama-tiny")?;
    let dir = temp_dir("llama-old-config")?;
    let mut tensors = read_f32_tensors(&src.join("model.safetensors"))?;
    assert!(!tensors.contains_key("lm_head.weight"), "llama-tiny has a tied head");
    let (shape, embed) = tensors["model.embed_tokens.weight"].clone();
    tensors.insert("lm_head.weight".into(), (shape, embed.iter().map(|x| 2.0 * x).collect()));
    write_checkpoint(&dir, &tensors, Store::F32, 1)?;
    copy_tokenizer(&src, &dir)?;
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json"))?)?;
    let c = config.as_object_mut().expect("object");
    let theta = c.remove("rope_parameters").expect("new form")["rope_theta"].clone();
    c.insert("rope_theta".into(), theta);
    c.remove("dtype");
    c.insert("torch_dtype".into(), "float32".into());
    c.insert("tie_word_embeddings".into(), false.into());
    std::fs::write(dir.join("config.json"), config.to_string())?;

    let bytes = convert_dir(&dir, DType::F32)?;
    let model = Model::parse(bytes.as_slice())?;
    assert!(!model.config().shared_classifier);
    check_f32(&model, &hf_reference("llama-tiny")?, 2.0, 2e-4);
    Ok(())
}

#[test]
fn sharded_checkpoint_converts_to_the_same_file() -> anyhow::Result<()> {
    let src = hf_dir("llama-tiny")?;
    let dir = temp_dir("llama-sharded")?;
    let tensors = read_f32_tensors(&src.join("model.safetensors"))?;
    write_checkpoint(&dir, &tensors, Store::F32, 3)?;
    copy_tokenizer(&src, &dir)?;
    std::fs::copy(src.join("config.json"), dir.join("config.json"))?;
    assert!(!dir.join("model.safetensors").exists());
    let sharded = convert_dir(&dir, DType::F32)?;
    let single = convert_dir(&src, DType::F32)?;
    assert!(sharded.as_slice() == single.as_slice(), "sharded and single-file conversions differ");
    Ok(())
}

#[test]
fn f16_and_bf16_checkpoints_widen_exactly() -> anyhow::Result<()> {
    let src = hf_dir("llama-tiny")?;
    let tensors = read_f32_tensors(&src.join("model.safetensors"))?;
    let reference = hf_reference("llama-tiny")?;
    for (store, round) in [
        (Store::F16, (|x: f32| half::f16::from_f32(x).to_f32()) as fn(f32) -> f32),
        (Store::Bf16, |x: f32| half::bf16::from_f32(x).to_f32()),
    ] {
        let dir = temp_dir(&format!("llama-{store:?}"))?;
        write_checkpoint(&dir, &tensors, store, 2)?;
        copy_tokenizer(&src, &dir)?;
        std::fs::copy(src.join("config.json"), dir.join("config.json"))?;
        // The same model written in f32 after rounding: the conversions must be identical.
        let rounded: HashMap<_, _> = tensors
            .iter()
            .map(|(k, (s, v))| (k.clone(), (s.clone(), v.iter().map(|x| round(*x)).collect())))
            .collect();
        let dir32 = temp_dir(&format!("llama-{store:?}-as-f32"))?;
        write_checkpoint(&dir32, &rounded, Store::F32, 1)?;
        copy_tokenizer(&src, &dir32)?;
        std::fs::copy(src.join("config.json"), dir32.join("config.json"))?;
        let a = convert_dir(&dir, DType::F32)?;
        let b = convert_dir(&dir32, DType::F32)?;
        assert!(a.as_slice() == b.as_slice(), "{store:?} conversion differs from its f32 copy");
        // And the rounded model still computes about what the original does.
        let model = Model::parse(a.as_slice())?;
        let case = &reference.cases[0];
        let q = agreement(&case.logits, &teacher_forced(&model, &case.input_ids)?);
        eprintln!("{store:?}: mean KL {:.2e}, top-1 {:.1}%", q.mean_kl, 100.0 * q.top1);
        assert!(q.top1 >= 0.9, "{store:?}: top-1 {}", q.top1);
    }
    Ok(())
}

/// The score-merge tokenizer built from llama-tiny's tokenizer.json against Hugging Face
/// `tokenizers` on the same file, beyond the five reference prompts.
#[test]
fn llama_tiny_tokenizer_matches_hugging_face_tokenizers() -> anyhow::Result<()> {
    let dir = hf_dir("llama-tiny")?;
    let bytes = convert_dir_fixed(&dir)?;
    let model = Model::parse(bytes.as_slice())?;
    let hf = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let long: String =
        "This program is free software; you can redistribute it — naïve café 🙂 \n\t 12345 "
            .repeat(12);
    for text in ["", " ", "  x", "a\nb", "trailing ", "the other work, see <https://x.org/>", &long]
    {
        let want = hf.encode(text, true).map_err(|e| anyhow::anyhow!("{e}"))?.get_ids().to_vec();
        assert_eq!(encode(&model, text), want, "text {text:?}");
    }
    Ok(())
}

/// The newer Llama tokenizer.json form (no normalizer; a `Metaspace` pre-tokenizer with
/// `prepend_scheme: first`, `split: false`) converts to the same tokenizer: our ids equal
/// Hugging Face `tokenizers` on that rewritten file.
#[test]
fn metaspace_pre_tokenizer_form_matches_hugging_face() -> anyhow::Result<()> {
    let src = hf_dir("llama-tiny")?;
    let dir = temp_dir("llama-metaspace")?;
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.json"))?)?;
    tok["normalizer"] = serde_json::Value::Null;
    tok["pre_tokenizer"] = serde_json::json!({
        "type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string())?;
    for f in ["config.json", "tokenizer_config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f))?;
    }
    let bytes = convert_dir_fixed(&dir)?;
    let model = Model::parse(bytes.as_slice())?;
    let hf = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reference = hf_reference("llama-tiny")?;
    for text in reference.cases.iter().map(|c| c.prompt.as_str()).chain(["x", " a  b "]) {
        let want = hf.encode(text, true).map_err(|e| anyhow::anyhow!("{e}"))?.get_ids().to_vec();
        assert_eq!(encode(&model, text), want, "text {text:?}");
    }
    Ok(())
}

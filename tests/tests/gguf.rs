//! `chispa-convert gguf` on GGUF files made at test time from llama-tiny (by the tests'
//! own writer, `chispa_tools::gguf_writer`), against the transformers reference: F32 within
//! 1e-4 with the reference's prompt and greedy ids; Q8_0 quality reported.

use chispa_core::format::DType;
use chispa_core::Model;
use chispa_runner::run::teacher_forced;
use chispa_tests::hf::{hf_dir, hf_reference};
use chispa_tests::{agreement, combine, greedy};
use chispa_tools::gguf_writer::{write, GgufType};
use chispa_tools::writer::{self, WriteOptions};
use chispa_tools::{gguf, hf};

fn convert(ty: GgufType, dtype: DType) -> anyhow::Result<chispa_tools::aligned::AlignedBytes> {
    let source = hf::read_dir(&hf_dir("llama-tiny")?)?.model;
    let file = write(&source, ty)?;
    let (model, recognised) = gguf::read(&file)?;
    assert!(recognised[0].starts_with("GGUF v3, llama"), "{recognised:?}");
    Ok(writer::build(&model, &WriteOptions::new(dtype, None), |_, _| {})?.0)
}

fn encode(model: &Model<'_>, text: &str) -> Vec<u32> {
    let mut ids = vec![0u32; text.len() + 3];
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = model.tokenizer().encode(text, true, false, &mut ids, &mut scratch).expect("capacity");
    ids.truncate(n);
    ids
}

#[test]
fn gguf_f32_matches_transformers() -> anyhow::Result<()> {
    let bytes = convert(GgufType::F32, DType::F32)?;
    let model = Model::parse(bytes.as_slice())?;
    for case in &hf_reference("llama-tiny")?.cases {
        assert_eq!(encode(&model, &case.prompt), case.prompt_ids, "case {}", case.name);
        let a = agreement(&case.logits, &teacher_forced(&model, &case.input_ids)?);
        assert!(a.max_abs_err <= 1e-4, "{}: max abs error {}", case.name, a.max_abs_err);
        let g = greedy(&model, &case.prompt_ids, case.greedy_ids.len())?;
        assert_eq!(g, case.greedy_ids, "case {}", case.name);
    }
    Ok(())
}

#[test]
fn gguf_q8_0_quality() -> anyhow::Result<()> {
    let reference = hf_reference("llama-tiny")?;
    for dtype in [DType::F32, DType::I8] {
        let bytes = convert(GgufType::Q8_0, dtype)?;
        let model = Model::parse(bytes.as_slice())?;
        let parts: Vec<_> = reference
            .cases
            .iter()
            .map(|c| Ok(agreement(&c.logits, &teacher_forced(&model, &c.input_ids)?)))
            .collect::<anyhow::Result<_>>()?;
        let a = combine(&parts);
        eprintln!(
            "llama-tiny GGUF Q8_0 → chispa {}: mean KL {:.3e}, max KL {:.3e}, top-1 {:.1}%, max |Δlogit| {:.3}",
            dtype.name(),
            a.mean_kl,
            a.max_kl,
            100.0 * a.top1,
            a.max_abs_err
        );
        assert!(a.top1 >= 0.85 && a.mean_kl <= 0.02, "{a:?}");
    }
    Ok(())
}

#[test]
fn malformed_gguf_is_an_error_not_a_panic() -> anyhow::Result<()> {
    let source = hf::read_dir(&hf_dir("llama-tiny")?)?.model;
    let file = write(&source, GgufType::Q8_0)?;
    for cut in [0, 3, 4, 8, 23, 24, 100, 1000, file.len() / 2, file.len() - 1] {
        assert!(gguf::read(&file[..cut]).is_err(), "truncated at {cut} accepted");
    }
    let mut state = 0x2545_F491u32;
    for _ in 0..300 {
        let mut f = file[..4096.min(file.len())].to_vec();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let i = state as usize % f.len();
            f[i] = (state >> 8) as u8;
        }
        let _ = gguf::read(&f); // must return, not panic
    }
    let mut v2 = file.clone();
    v2[4] = 2;
    let e = gguf::read(&v2).expect_err("version 2");
    assert!(e.to_string().contains("version 2"), "{e}");
    Ok(())
}

//! The whole model under every kernel backend this machine runs: teacher-forced logits on
//! the llama2.c reference ids and greedy continuations identical bit for bit to the scalar
//! specification, int8 and int4 (every matrix int4, the embedding rows included). (Its own
//! test binary, one test: the runner's backend choice is process-wide.)

use chispa_core::format::DType;
use chispa_core::kernels::{Backend, Kernels, ALL_BACKENDS};
use chispa_core::Model;
use chispa_runner::run::teacher_forced;
use chispa_tests::{greedy, stories_model, stories_model_with, stories_reference};
use chispa_tools::writer::{Mix, WriteOptions};

/// FNV-1a over the logits' bits: one line to compare by eye across machines.
fn digest(rows: &[Vec<f32>]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in rows.iter().flatten() {
        for b in v.to_bits().to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// Logit rows of every case, then greedy ids of every case.
type Outputs = (Vec<Vec<f32>>, Vec<Vec<u32>>);

#[test]
fn every_backend_gives_the_scalar_bits() -> anyhow::Result<()> {
    same_bits_on_every_backend("int8", &stories_model(DType::I8, None)?)?;
    let int4 = WriteOptions {
        dtype: DType::I4,
        mix: Mix { int4_min_snr_db: 0.0, max_bytes: None },
        ..Default::default()
    };
    same_bits_on_every_backend("int4", &stories_model_with(&int4)?)
}

fn same_bits_on_every_backend(
    what: &str,
    bytes: &chispa_tools::aligned::AlignedBytes,
) -> anyhow::Result<()> {
    let reference = stories_reference()?;
    let model = Model::parse(bytes.as_slice())?;
    let run = |b: Backend| -> anyhow::Result<Outputs> {
        chispa_runner::threads::select(Kernels::for_backend(b)?);
        let mut logits = Vec::new();
        let mut ids = Vec::new();
        for case in &reference.cases {
            let n = case.logits.len();
            logits.extend(teacher_forced(&model, &case.input_ids[..n])?);
            ids.push(greedy(&model, &case.prompt_ids, case.greedy_ids.len())?);
        }
        Ok((logits, ids))
    };
    let (want, want_ids) = run(Backend::Scalar)?;
    eprintln!("{what} scalar: digest {:016x}", digest(&want));
    let supported: Vec<Backend> =
        ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()).collect();
    for &b in &supported[1..] {
        let (got, ids) = run(b)?;
        eprintln!("{what} {}: digest {:016x}", b.name(), digest(&got));
        assert_eq!(ids, want_ids, "{what}: greedy ids differ under {}", b.name());
        for (t, (g, w)) in got.iter().zip(&want).enumerate() {
            let gb: Vec<u32> = g.iter().map(|v| v.to_bits()).collect();
            let wb: Vec<u32> = w.iter().map(|v| v.to_bits()).collect();
            assert_eq!(gb, wb, "{what}: logits differ under {} at row {t}", b.name());
        }
    }
    // On x86-64 the test is only meaningful with SIMD: AVX2 is on every x86-64 CI machine.
    if cfg!(target_arch = "x86_64") {
        assert!(supported.contains(&Backend::Avx2), "no AVX2: nothing to compare");
    }
    Ok(())
}

//! `chispa-convert gguf` on hostile GGUF files made here: huge metadata arrays cost no
//! memory, bad values are named by their key.

use std::path::Path;
use std::process::{Command, Output};

use chispa_core::format::Arch;
use chispa_tools::gguf_writer::{write, GgufType};
use chispa_tools::source::{Params, SourceModel};

fn source() -> SourceModel {
    let params = Params {
        arch: Arch::Llama,
        dim: 16,
        hidden_dim: 24,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 2,
        head_dim: 0,
        vocab_size: 300,
        max_seq_len: 16,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
        shared_classifier: true,
    };
    chispa_tools::synth::random_model(params, 7, 0.05).expect("model")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn convert_in_sh(prefix: &str, file: &Path, out: &Path) -> Output {
    let script = format!(
        "{prefix} exec '{}' gguf '{}' -o '{}' --dtype f32 -q",
        env!("CARGO_BIN_EXE_chispa-convert"),
        s(file),
        s(out)
    );
    Command::new("sh").arg("-c").arg(&script).output().expect("sh runs")
}

/// `file` with one more metadata key: a u8 array of `n` bytes (n + 29 a multiple of 32, so
/// the tensor data stays aligned).
fn with_big_array(file: &[u8], n: usize) -> Vec<u8> {
    assert_eq!((n + 29) % 32, 0);
    let count = u64::from_le_bytes(file[16..24].try_into().expect("count"));
    let mut out = file[..16].to_vec();
    out.extend((count + 1).to_le_bytes());
    out.extend(5u64.to_le_bytes());
    out.extend(b"x.big");
    out.extend(9u32.to_le_bytes()); // array
    out.extend(0u32.to_le_bytes()); // of u8
    out.extend((n as u64).to_le_bytes());
    out.resize(out.len() + n, 7);
    out.extend(&file[24..]);
    out
}

#[test]
fn a_64_mb_metadata_array_converts_within_a_1_gb_address_space() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("big.gguf");
    let out = dir.path().join("m.chispa");
    let plain = write(&source(), GgufType::F32).expect("gguf");
    std::fs::write(&file, with_big_array(&plain, (64 << 20) + 3)).expect("write");
    // Decoded into values, the array took 2 GB; borrowed, the file's 64 MB once.
    let o = convert_in_sh("ulimit -v 1048576;", &file, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.is_file());
}

#[test]
fn bad_scores_and_floats_are_named_by_their_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    type Edit = fn(&mut SourceModel);
    let cases: [(&str, Edit); 4] = [
        ("tokenizer.ggml.scores[5]", |m| m.vocab.scores[5] = f32::NAN),
        ("llama.rope.freq_base", |m| m.params.rope_theta = -5.0),
        ("llama.attention.layer_norm_rms_epsilon", |m| m.params.norm_eps = -1.0),
        ("llama.attention.layer_norm_rms_epsilon", |m| m.params.norm_eps = f32::INFINITY),
    ];
    for (key, edit) in cases {
        let mut m = source();
        edit(&mut m);
        let file = dir.path().join("bad.gguf");
        std::fs::write(&file, write(&m, GgufType::F32).expect("gguf")).expect("write");
        let out = dir.path().join("m.chispa");
        let o = convert_in_sh("", &file, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(key), "{key} not in {err}");
        assert!(!err.contains("writer bug"), "{err}");
        assert!(!out.exists());
    }
}

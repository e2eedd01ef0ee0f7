//! `chispa-convert hf` as a user runs it: what it recognises, and one-line refusals that
//! leave no output file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;
use serde_json::Value;

fn hf_dir(name: &str) -> PathBuf {
    let data = std::env::var_os("CHISPA_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = data.join("reference/hf").join(name);
    assert!(
        dir.join("config.json").is_file(),
        "{} not found: set CHISPA_DATA to the data directory (see README.md)",
        dir.display()
    );
    dir
}

fn convert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chispa-convert")).args(args).output().expect("runs")
}

/// A temporary directory, removed when dropped (also when the test fails).
#[derive(Debug)]
struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

fn tempdir(name: &str) -> TestDir {
    let prefix = format!("chispa-hf-cli-{name}-");
    TestDir(tempfile::Builder::new().prefix(&prefix).tempdir().expect("temp dir"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A copy of llama-tiny with `edit` applied to its config and tensors dropped or renamed.
fn variant(name: &str, edit: impl Fn(&mut Value), drop: &[&str]) -> TestDir {
    let src = hf_dir("llama-tiny");
    let dir = tempdir(name);
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).expect("copy");
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("read"))
            .expect("json");
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write");
    let bytes = std::fs::read(src.join("model.safetensors")).expect("read");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let kept: Vec<_> = st.iter().filter(|(n, _)| !drop.contains(n)).collect();
    safetensors::serialize_to_file(kept, None, &dir.join("model.safetensors")).expect("write");
    dir
}

fn assert_refused(dir: &Path, needle: &str) {
    let out = dir.join("out.chispa");
    let o = convert(&["hf", s(dir), "-o", s(&out), "--dtype", "f32"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(needle), "{needle:?} not in {err:?}");
    assert!(!out.exists(), "output written despite the error");
    let leftovers = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".chispa-"))
        .count();
    assert_eq!(leftovers, 0, "temporary files left");
}

#[test]
fn converts_llama_tiny_and_says_what_it_recognised() {
    let dir = tempdir("ok");
    let out = dir.join("l.chispa");
    let o = convert(&["hf", s(&hf_dir("llama-tiny")), "-o", s(&out), "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for needle in [
        "LlamaForCausalLM",
        "layers 2, heads 8 (kv 4",
        "rope_theta 10000 (from rope_parameters.rope_theta)",
        "tied to the embedding",
        "Llama-style BPE",
        "BOS 1 = \"<s>\" prepended",
        "calibration logit SNR ",
        " dB with the fixed groups on 256 sampled positions",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(out.is_file());
}

#[test]
fn refuses_an_unsupported_architecture() {
    let dir =
        variant("arch", |c| c["architectures"] = serde_json::json!(["MistralForCausalLM"]), &[]);
    assert_refused(&dir, "architecture \"MistralForCausalLM\" is not supported");
}

#[test]
fn refuses_a_missing_tensor() {
    let dir = variant("missing", |_| {}, &["model.layers.1.mlp.up_proj.weight"]);
    assert_refused(&dir, "missing tensor model.layers.1.mlp.up_proj.weight");
}

#[test]
fn refuses_a_shape_mismatch() {
    let dir = variant("shape", |c| c["intermediate_size"] = 128.into(), &[]);
    assert_refused(
        &dir,
        "tensor model.layers.0.mlp.gate_proj.weight has shape [172, 64], expected [128, 64]",
    );
}

#[test]
fn refuses_a_tokenizer_that_does_not_fit_the_vocabulary() {
    // A smaller vocab_size in config.json is caught by the embedding's shape first; a
    // tokenizer with an id past the (consistent) vocabulary by the tokenizer check.
    let dir = variant("vocab", |c| c["vocab_size"] = 300.into(), &[]);
    assert_refused(&dir, "model.embed_tokens.weight has shape [512, 64], expected [300, 64]");
    let dir = variant("tok", |_| {}, &[]);
    let mut tok: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).expect("read"))
            .expect("json");
    tok["model"]["vocab"]["▁chispa"] = 600.into();
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).expect("write");
    assert_refused(&dir, "token \"▁chispa\" has id 600, outside the model's vocabulary of 512");
}

#[test]
fn refuses_unsupported_config_keys() {
    let dir = variant(
        "rope",
        |c| c["rope_parameters"] = serde_json::json!({"rope_type": "llama3", "rope_theta": 5e5}),
        &[],
    );
    assert_refused(&dir, "rope_parameters.rope_type \"llama3\" is not supported");
    let dir = variant("act", |c| c["hidden_act"] = "gelu".into(), &[]);
    assert_refused(&dir, "hidden_act \"gelu\" is not supported");
}

#[test]
fn gguf_of_another_architecture_is_refused() {
    let dir = tempdir("gguf-arch");
    let mut f = Vec::new();
    f.extend(b"GGUF");
    f.extend(3u32.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.extend(1u64.to_le_bytes());
    let key = "general.architecture";
    f.extend((key.len() as u64).to_le_bytes());
    f.extend(key.as_bytes());
    f.extend(8u32.to_le_bytes());
    f.extend(4u64.to_le_bytes());
    f.extend(b"gpt2");
    let file = dir.join("m.gguf");
    std::fs::write(&file, f).expect("write");
    let out = dir.join("out.chispa");
    let o = convert(&["gguf", s(&file), "-o", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("general.architecture \"gpt2\" is not supported"), "{err}");
    assert!(!out.exists());
}

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

#[test]
fn an_output_onto_a_file_of_the_folder_is_refused() {
    let dir = variant("onto-config", |_| {}, &[]);
    let config = std::fs::read(dir.join("config.json")).expect("read");
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        let out = dir.join(name);
        let before = std::fs::read(&out).expect("read");
        let o = convert(&["hf", s(&dir), "-o", s(&out), "-q"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("also an input"), "{err}");
        assert_eq!(std::fs::read(&out).expect("read"), before, "{name} untouched");
    }
    assert_eq!(std::fs::read(dir.join("config.json")).expect("read"), config);
    let o = convert(&["hf", s(&dir), "-o", s(&dir), "-q"]);
    assert_eq!(o.status.code(), Some(1));
}

/// Runs `chispa-convert ARGS`, failing the test if it has not ended within a minute.
fn convert_within_a_minute(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chispa-convert"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed().as_secs() > 60 {
            let _ = child.kill();
            panic!("chispa-convert {args:?} hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn index_paths_outside_the_folder_or_not_regular_files_are_refused() {
    let dir = variant("index", |_| {}, &[]);
    let fifo = dir.join("fifo.safetensors");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.safetensors")).expect("symlink");
    for (target, says) in [
        ("fifo.safetensors", "not a regular file"),
        ("/dev/zero", "not a file inside the folder"),
        ("zero.safetensors", "not a regular file"),
        ("../../etc/passwd", "not a file inside the folder"),
        ("/etc/passwd", "not a file inside the folder"),
        ("", "not a file inside the folder"),
        ("missing.safetensors", "cannot read"),
    ] {
        let index = serde_json::json!({ "weight_map": { "model.embed_tokens.weight": target } });
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).expect("write");
        let out = dir.join("out.chispa");
        let o = convert_within_a_minute(&["hf", s(&dir), "-o", s(&out), "-q"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{target}: {err}");
        assert!(err.contains(says) && err.contains("weight_map"), "{target}: {err}");
        assert!(!out.exists());
    }
}

#[test]
fn bad_float_values_are_named_by_their_key() {
    let set = |key: &'static str, v: f64| {
        move |c: &mut Value| {
            c[key] = serde_json::json!(v);
            c.as_object_mut().expect("object").remove("rope_parameters");
        }
    };
    assert_refused(&variant("eps-huge", set("rms_norm_eps", 1e300), &[]), "\"rms_norm_eps\"");
    assert_refused(&variant("eps-negative", set("rms_norm_eps", -1.0), &[]), "\"rms_norm_eps\"");
    assert_refused(&variant("theta-negative", set("rope_theta", -5.0), &[]), "\"rope_theta\"");
    let nested = |c: &mut Value| c["rope_parameters"]["rope_theta"] = serde_json::json!(-5.0);
    assert_refused(&variant("theta-nested", nested, &[]), "rope_parameters.rope_theta");
}

/// `tests/data/NAME` (a random-weight checkpoint `tests/hf/make_tiny.py` made) with
/// llama-tiny's tokenizer and `extra` tensors added, in a fresh folder.
fn tiny_variant(name: &str, extra: &[&str]) -> TestDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data").join(name);
    let dir = tempdir(name);
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(hf_dir("llama-tiny").join(f), dir.join(f)).expect("copy");
    }
    std::fs::copy(src.join("config.json"), dir.join("config.json")).expect("copy");
    let bytes = std::fs::read(src.join("model.safetensors")).expect("read");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut tensors: Vec<_> = st.iter().collect();
    let one = st.tensor("model.norm.weight").expect("norm");
    for name in extra {
        tensors.push((name, one.clone()));
    }
    safetensors::serialize_to_file(tensors, None, &dir.join("model.safetensors")).expect("write");
    dir
}

#[test]
fn converts_qwen3_and_refuses_tensors_it_does_not_know() {
    let dir = tiny_variant("qwen3-tiny", &[]);
    let out = dir.join("q.chispa");
    let o = convert(&["hf", s(&dir), "-o", s(&out), "-q", "--dtype", "f32"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for needle in [
        "Qwen3ForCausalLM: dim 64",
        "rope_theta 1000000 (from rope_parameters.rope_theta)",
        "q/k projection rows and q/k norm weights permuted",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(out.is_file());

    let extra = ["model.layers.0.self_attn.q_proj.bias", "model.layers.1.mlp.gate_proj.bias"];
    let dir = tiny_variant("qwen3-tiny", &extra);
    assert_refused(
        &dir,
        "tensors model.layers.0.self_attn.q_proj.bias, model.layers.1.mlp.gate_proj.bias are not part of a Qwen3ForCausalLM model (unsupported)",
    );
}

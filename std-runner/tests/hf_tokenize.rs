//! `chispa tokenize` on models converted from the Hugging Face reference folders prints the
//! reference `prompt_ids` (transformers' tokenizer) for every case; `chispa run` on GPT-2
//! generates the reference greedy text.

use std::path::Path;
use std::process::Command;

use chispa_core::format::DType;
use chispa_runner::data::data_file;
use chispa_tools::writer::{self, WriteOptions};

fn convert_to(name: &str, out: &Path) -> serde_json::Value {
    let config = data_file(&format!("reference/hf/{name}/config.json")).expect("data");
    let dir = config.parent().expect("folder");
    let c = chispa_tools::hf::read_dir(dir).expect("converts");
    let opts = WriteOptions::new(DType::F32, None);
    let (image, _) = writer::build(&c.model, &opts, |_, _| {}).expect("builds");
    writer::write_atomic(out, image.as_slice()).expect("writes");
    let text = std::fs::read_to_string(dir.join("reference.json")).expect("reference");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn tokenize_prints_the_reference_prompt_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tmp = dir.path();
    for name in ["llama-tiny", "gpt2-tiny"] {
        let file = tmp.join(format!("{name}.chispa"));
        let reference = convert_to(name, &file);
        let cases = reference["cases"].as_array().expect("cases");
        assert_eq!(cases.len(), 5);
        for case in cases {
            let prompt = case["prompt"].as_str().expect("prompt");
            let o = Command::new(env!("CARGO_BIN_EXE_chispa"))
                .args(["tokenize", file.to_str().expect("utf-8"), prompt])
                .output()
                .expect("runs");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let want: Vec<String> =
                case["prompt_ids"].as_array().expect("ids").iter().map(|v| v.to_string()).collect();
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim(),
                want.join(","),
                "{name} {prompt:?}"
            );
        }
    }
}

#[test]
fn run_prints_prompt_and_greedy_continuation_for_gpt2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tmp = dir.path();
    let file = tmp.join("gpt2.chispa");
    let reference = convert_to("gpt2-tiny", &file);
    let bytes =
        chispa_tools::aligned::AlignedBytes::copy_from(&std::fs::read(&file).expect("read"));
    let model = chispa_core::Model::parse(bytes.as_slice()).expect("parses");
    for case in reference["cases"].as_array().expect("cases") {
        let prompt = case["prompt"].as_str().expect("prompt");
        let greedy: Vec<u32> = case["greedy_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(|v| v.as_u64().map(|x| x as u32))
            .collect();
        let n = greedy.iter().position(|id| model.is_stop(*id)).unwrap_or(greedy.len());
        let mut want = prompt.as_bytes().to_vec();
        for id in &greedy[..n] {
            want.extend_from_slice(model.tokenizer().piece(*id));
        }
        let o = Command::new(env!("CARGO_BIN_EXE_chispa"))
            .args(["run", file.to_str().expect("utf-8"), "-p", prompt, "--temperature", "0"])
            .args(["-n", &n.to_string()])
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        want.push(b'\n'); // `chispa run` ends its output with a newline
        assert_eq!(o.stdout, want, "case {prompt:?}");
    }
}

#[test]
fn a_hugging_face_folder_runs_directly() {
    let config = data_file("reference/hf/gpt2-tiny/config.json").expect("data");
    let dir = config.parent().expect("folder");
    // The conversion goes to a cache of its own, removed afterwards.
    let cache = tempfile::tempdir().expect("temp dir");
    let o = Command::new(env!("CARGO_BIN_EXE_chispa"))
        .env("CHISPA_CACHE", cache.path())
        .args(["tokenize", dir.to_str().expect("utf-8"), "Hello world"])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference.json")).expect("reference"),
    )
    .expect("json");
    let case = reference["cases"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["prompt"] == "Hello world"))
        .expect("the Hello world case");
    let want: Vec<String> =
        case["prompt_ids"].as_array().expect("ids").iter().map(|v| v.to_string()).collect();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want.join(","));
}

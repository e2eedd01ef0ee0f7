//! The `chispa` command as a user runs it.

use std::process::{Command, Output};

use tempfile::TempDir;

use chispa_runner::data::{data_file, default_model};

fn chispa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chispa")).args(args).output().expect("chispa runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 1 with a one-line message (never a panic's 101).
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn model_paths() -> (String, String) {
    let (c, t) = default_model().expect("stories260K data");
    (c.display().to_string(), t.display().to_string())
}

#[test]
fn greedy_story_matches_llama2c_byte_for_byte() {
    let want = std::fs::read(data_file("reference/stories260K_greedy_once_256.txt").expect("data"))
        .expect("reference text");
    // run.c -n 256 runs 256 positions: 4 prompt tokens after BOS, then 252 new ones.
    let (ckpt, tok) = model_paths();
    let o = chispa(&[
        "run",
        &ckpt,
        "--tokenizer",
        &tok,
        "--dtype",
        "f32",
        "-p",
        "Once upon a time",
        "-n",
        "252",
        "--temperature",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.starts_with(&want), "got:\n{}", String::from_utf8_lossy(&o.stdout));
    assert!(stderr(&o).contains("generated 252 tokens"), "{}", stderr(&o));
}

#[test]
fn default_model_runs_with_no_arguments_and_json_streams_tokens() {
    let o = chispa(&["run", "-n", "5", "--seed", "7", "--json", "-p", "Once"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 6, "5 tokens + summary");
    assert!(lines[0]["id"].is_u64() && lines[0]["text"].is_string());
    assert_eq!(lines[5]["summary"]["generated_tokens"], 5);
    assert_eq!(lines[5]["summary"]["stop_reason"], "max tokens");
    // Same seed, same text.
    let again = chispa(&["run", "-n", "5", "--seed", "7", "--json", "-p", "Once"]);
    let first5 = |o: &Output| {
        String::from_utf8_lossy(&o.stdout).lines().take(5).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(first5(&o), first5(&again));
}

#[test]
fn tokenize_and_eval() {
    let (ckpt, tok) = model_paths();
    let o = chispa(&["tokenize", &ckpt, "--tokenizer", &tok, "Once upon a time"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1,403,407,261,378");
    let dir = tempdir();
    let out = dir.path().join("logits.json");
    let o = chispa(&[
        "eval",
        &ckpt,
        "--tokenizer",
        &tok,
        "--tokens",
        "1,403,407,261,378",
        "--logits-out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("perplexity"));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("written")).expect("json");
    assert_eq!(doc["logits"].as_array().map(Vec::len), Some(5));
    assert_eq!(doc["logits"][0].as_array().map(Vec::len), Some(512));
}

#[test]
fn bad_models_are_one_line_errors() {
    let tmp = tempdir();
    let dir = tmp.path();
    let empty = dir.join("empty.chispa");
    std::fs::write(&empty, b"").expect("write");
    assert_clean_failure(&chispa(&["run", empty.to_str().expect("utf-8")]), "truncated");

    let junk = dir.join("junk.chispa");
    std::fs::write(&junk, vec![0xA5u8; 5000]).expect("write");
    assert_clean_failure(&chispa(&["run", junk.to_str().expect("utf-8")]), "not a .chispa file");

    let missing = dir.join("nope.chispa");
    assert_clean_failure(&chispa(&["run", missing.to_str().expect("utf-8")]), "nope.chispa");

    // A real model, truncated and with its version bumped.
    let (ckpt, tok) = model_paths();
    let good = dir.join("good.chispa");
    let image = chispa_runner::load::convert_llama2c(
        std::path::Path::new(&ckpt),
        std::path::Path::new(&tok),
        &Default::default(),
    )
    .expect("convert");
    let bytes = image.as_slice();
    std::fs::write(&good, &bytes[..bytes.len() / 2]).expect("write");
    assert_clean_failure(&chispa(&["run", good.to_str().expect("utf-8")]), "truncated");
    let mut v = bytes.to_vec();
    v[4] = 9;
    std::fs::write(&good, &v).expect("write");
    let version = format!("version 9.{}", chispa_core::format::VERSION_MINOR);
    assert_clean_failure(&chispa(&["run", good.to_str().expect("utf-8")]), &version);

    // A checkpoint without its tokenizer.
    assert_clean_failure(&chispa(&["run", &ckpt]), "--tokenizer");
}

#[test]
fn prompt_longer_than_the_context_is_a_clear_error() {
    let long = "Once upon a time ".repeat(40);
    assert_clean_failure(&chispa(&["run", "--context", "16", "-p", &long]), "context holds 16");
    let o = chispa(&["run", "--context", "600"]);
    assert_clean_failure(&o, "context length 600");
}

#[test]
fn bad_flags_exit_2() {
    assert_eq!(chispa(&["run", "--temperature", "abc"]).status.code(), Some(2));
    assert_eq!(chispa(&["frobnicate"]).status.code(), Some(2));
    let o = chispa(&["run", "--temperature=-1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A temporary directory, removed when dropped (also when the test fails).
fn tempdir() -> TempDir {
    tempfile::Builder::new().prefix("chispa-cli-").tempdir().expect("temp dir")
}

#[test]
fn attention_map_and_top_k_probabilities() {
    let dir = tempdir();
    let svg = dir.path().join("att.svg");
    let o = chispa(&[
        "attention",
        "-p",
        "Once upon a time",
        "--layer",
        "1",
        "--head",
        "3",
        "-o",
        svg.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert_clean_failure(
        &chispa(&["attention", "-p", "x", "--layer", "9", "-o", svg.to_str().expect("utf-8")]),
        "--layer",
    );

    let o = chispa(&[
        "run",
        "-p",
        "Once",
        "-n",
        "3",
        "--temperature",
        "0",
        "--top-k-probs",
        "4",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().expect("a line"))
            .expect("json");
    let top = first["top"].as_array().expect("top list");
    assert_eq!(top.len(), 4);
    // Greedy: the chosen token is the most likely one, and probabilities descend.
    assert_eq!(top[0]["id"], first["id"]);
    let p: Vec<f64> = top.iter().filter_map(|t| t["p"].as_f64()).collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]) && p[0] <= 1.0 && p[3] >= 0.0, "{p:?}");
}

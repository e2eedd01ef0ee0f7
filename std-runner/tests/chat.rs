//! Chat: the chat template of a converted tokenizer (tests/data/tokenizers, made by
//! tests/tokenizers/make_cases.py) rendered and encoded exactly as Hugging Face transformers'
//! `apply_chat_template` does (reference ids in chat.json, from make_chat_cases.py), the fixed
//! prefix/suffix stored for boards, and `chispa chat` holding a three-turn conversation with a
//! random-weight instruct-shaped model (llama-tiny's shapes).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chispa_core::format::DType;
use chispa_core::Model;
use chispa_runner::chat::{encode_chat, Conversation};
use chispa_tools::aligned::AlignedBytes;
use chispa_tools::source::SourceModel;
use chispa_tools::writer::{self, Groups, WriteOptions};
use serde_json::Value;

fn tokenizer_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tokenizers").join(name)
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/tokenizers/make_cases.py)", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// A random-weight Llama in llama-tiny's shapes with the tokenizer (and chat template) of
/// `tests/data/tokenizers/NAME`.
fn instruct_model(name: &str) -> AlignedBytes {
    let model = chispa_tools::synth::instruct_model(&tokenizer_dir(name)).expect("model");
    let opts = WriteOptions { dtype: DType::I8, groups: Groups::Fixed, ..Default::default() };
    writer::build(&model, &opts, |_, _| {}).expect("builds").0
}

fn messages(case: &Value) -> Vec<(String, String)> {
    case["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().expect("role").into(),
                m["content"].as_str().expect("content").into(),
            )
        })
        .collect()
}

#[test]
fn conversations_render_and_encode_as_apply_chat_template() {
    for name in ["llama3", "smollm"] {
        let bytes = instruct_model(name);
        let model = Model::parse(bytes.as_slice()).expect("parses");
        let cases = json(&tokenizer_dir(name).join("chat.json"));
        let cases = cases["cases"].as_array().expect("cases");
        assert_eq!(cases.len(), 6);
        for case in cases {
            let mut c = Conversation::new(&model, None).expect("has a template");
            for (role, content) in messages(case) {
                c.push(&role, &content);
            }
            let text = c.prompt().expect("renders");
            assert_eq!(text, case["text"].as_str().expect("text"), "{name}");
            let want: Vec<u32> = case["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|v| v.as_u64().expect("id") as u32)
                .collect();
            assert_eq!(encode_chat(&model, &text).expect("encodes"), want, "{name}: {text:?}");
        }
    }
}

#[test]
fn the_stored_prefix_and_suffix_wrap_one_message_as_the_template_does() {
    for name in ["llama3", "smollm"] {
        let bytes = instruct_model(name);
        let model = Model::parse(bytes.as_slice()).expect("parses");
        let tok = model.tokenizer();
        let (prefix, suffix) =
            (tok.chat_prefix().expect("prefix"), tok.chat_suffix().expect("suffix"));
        let cases = json(&tokenizer_dir(name).join("chat.json"));
        let single = cases["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .find(|c| c["messages"].as_array().is_some_and(|m| m.len() == 1))
            .expect("a one-message case");
        let user = &messages(single)[0].1;
        let text = format!("{prefix}{user}{suffix}");
        assert_eq!(text, single["text"].as_str().expect("text"), "{name}");
        let want: Vec<u32> = single["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        assert_eq!(encode_chat(&model, &text).expect("encodes"), want, "{name}");
    }
}

fn chispa(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chispa"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chispa runs");
    // A chispa that refuses its arguments exits before it reads: a broken pipe is no error.
    match child.stdin.take().expect("stdin").write_all(stdin.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing stdin: {e}"),
        _ => {}
    }
    child.wait_with_output().expect("chispa ends")
}

#[test]
fn chat_holds_a_three_turn_conversation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("instruct.chispa");
    let bytes = instruct_model("smollm");
    writer::write_atomic(&file, bytes.as_slice()).expect("writes");
    let model = Model::parse(bytes.as_slice()).expect("parses");
    let im_start = model.tokenizer().lookup(b"<|im_start|>").expect("special token");
    let path = file.to_str().expect("utf-8");
    let users = ["Hi there!", "What's 12 + 30?", "Thanks, bye"];
    let o = chispa(
        &["chat", path, "--system", "Be brief.", "--temperature", "0", "-n", "6", "--json"],
        &users.map(|u| format!("{u}\n")).concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let turns: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(turns.len(), 3, "{}", String::from_utf8_lossy(&o.stdout));
    let mut c = Conversation::new(&model, Some("Be brief.")).expect("template");
    for (k, (turn, user)) in turns.iter().zip(users).enumerate() {
        assert_eq!(turn["user"], user);
        c.push("user", user);
        let want = encode_chat(&model, &c.prompt().expect("renders")).expect("encodes");
        let got: Vec<u32> = turn["prompt_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        assert_eq!(got, want, "turn {k}: the whole conversation, replies included");
        // system, k + 1 users, k replies, the assistant's header.
        assert_eq!(got.iter().filter(|id| **id == im_start).count(), 2 * k + 3, "turn {k}");
        assert!(!turn["reply_ids"].as_array().expect("reply ids").is_empty() || k > 0);
        c.push("assistant", turn["reply"].as_str().expect("reply"));
    }
    // One turn with `run --chat`: the same prompt as the first turn.
    let o = chispa(
        &[
            "run",
            path,
            "--chat",
            "--system",
            "Be brief.",
            "-p",
            users[0],
            "--temperature",
            "0",
            "-n",
            "2",
            "--json",
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let summary: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    let first = turns[0]["prompt_ids"].as_array().expect("ids").len();
    assert_eq!(summary["summary"]["prompt_tokens"], first);
}

#[test]
fn a_model_without_a_template_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plain.chispa");
    // qwen2's tokenizer has no chat template in tests/data.
    let tdir = tokenizer_dir("qwen2");
    let config = json(&tdir.join("config.json"));
    let vocab_size = config["vocab_size"].as_u64().expect("vocab") as usize;
    let (vocab, _) =
        chispa_tools::hf_tokenizer::read(&tdir, &config, vocab_size).expect("converts");
    let mut params = chispa_tools::synth::params("stories15M").expect("shape");
    params.vocab_size = vocab_size;
    params.dim = 64;
    params.hidden_dim = 128;
    params.n_layers = 1;
    params.n_heads = 4;
    params.n_kv_heads = 4;
    params.max_seq_len = 32;
    let random = chispa_tools::synth::random_model(params, 3, 0.1).expect("model");
    let opts = WriteOptions { dtype: DType::I8, groups: Groups::Fixed, ..Default::default() };
    let (img, _) =
        writer::build(&SourceModel { vocab, ..random }, &opts, |_, _| {}).expect("builds");
    writer::write_atomic(&file, img.as_slice()).expect("writes");
    let o = chispa(&["chat", file.to_str().expect("utf-8")], "hi\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no chat template"));
}

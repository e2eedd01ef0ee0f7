//! Byte-level BPE tokenizers (Llama 3, SmolLM and Qwen2 styles: regex `Split` or `Digits`
//! stages, then `ByteLevel`) against Hugging Face `tokenizers`: the ids it gave for ~300
//! strings each (mixed scripts, digits, white space, emoji, special tokens in the text),
//! and decoding back to its text.

use chispa_core::format::DType;
use chispa_core::Model;
use chispa_tests::bytebpe::{cases, model_with_tokenizer, tokenizer_dir};

fn encode(model: &Model<'_>, text: &str) -> Vec<u32> {
    let mut ids = vec![0u32; text.len() + 3];
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = model
        .tokenizer()
        .encode(text, true, false, &mut ids, &mut scratch)
        .expect("capacity text.len() + 3");
    ids.truncate(n);
    ids
}

fn decode(model: &Model<'_>, ids: &[u32]) -> Vec<u8> {
    let t = model.tokenizer();
    let mut out = Vec::new();
    let mut prev = None;
    for id in ids {
        out.extend_from_slice(t.decode(prev, *id).bytes());
        prev = Some(*id);
    }
    out
}

fn check(name: &str, expect_line: &str, min_cases: usize) -> anyhow::Result<()> {
    let (bytes, line) = model_with_tokenizer(&tokenizer_dir(name), DType::I8)?;
    assert!(line.contains(expect_line), "{name}: {line}");
    let model = Model::parse(bytes.as_slice())?;
    let cases = cases(name)?;
    assert!(cases.len() >= min_cases, "{name}: {} cases", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        let got = encode(&model, &c.text);
        if got != c.ids {
            wrong.push(format!("{:?}: got {got:?}, want {:?}", c.text, c.ids));
        }
        assert_eq!(
            String::from_utf8_lossy(&decode(&model, &got)),
            c.decoded,
            "{name}: decoding {:?}",
            c.text
        );
    }
    assert!(
        wrong.is_empty(),
        "{name}: {} of {} differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    Ok(())
}

#[test]
fn llama3_split_matches_tokenizers() -> anyhow::Result<()> {
    check("llama3", "Llama 3 split", 200)
}

#[test]
fn smollm_digits_and_gpt2_split_match_tokenizers() -> anyhow::Result<()> {
    check("smollm", "Digits (each) + ByteLevel with the GPT-2 split", 200)
}

#[test]
fn qwen2_split_matches_tokenizers() -> anyhow::Result<()> {
    check("qwen2", "Qwen2 split", 200)
}

#[test]
fn a_pair_merges_only_by_its_own_merge() -> anyhow::Result<()> {
    // "abc" is a token made by ("ab", "c"); "bc" merges first, and ("a", "bc") is no merge.
    check("handmade", "GPT-2 split", 6)
}

/// Copies tokenizer `name` to a temporary folder with `edit` applied to its tokenizer.json.
fn edited(
    name: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> anyhow::Result<chispa_tests::hf::TestDir> {
    let from = tokenizer_dir(name);
    let dir = chispa_tests::hf::temp_dir("bytebpe")?;
    for f in ["config.json", "tokenizer_config.json"] {
        std::fs::copy(from.join(f), dir.join(f))?;
    }
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from.join("tokenizer.json"))?)?;
    edit(&mut tok);
    std::fs::write(dir.join("tokenizer.json"), tok.to_string())?;
    Ok(dir)
}

fn refusal(dir: &std::path::Path) -> String {
    match model_with_tokenizer(dir, DType::I8) {
        Ok(_) => panic!("converted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn unsupported_pre_tokenizers_are_refused_in_one_line() -> anyhow::Result<()> {
    let dir = edited("llama3", |t| {
        t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\w+|\s+".into();
    })?;
    let e = refusal(&dir);
    assert!(e.contains(r#"the split pattern "\\w+|\\s+" is not supported"#), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let dir = edited("llama3", |t| {
        t["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed".into();
    })?;
    assert!(refusal(&dir).contains("Split behavior \"Removed\""));
    let dir = edited("smollm", |t| {
        t["pre_tokenizer"]["pretokenizers"][0] = serde_json::json!({"type": "Punctuation"});
    })?;
    assert!(refusal(&dir).contains("pre_tokenizer \"Punctuation\" is not supported"));
    let dir = edited("qwen2", |t| t["normalizer"] = serde_json::json!({"type": "NFKC"}))?;
    assert!(refusal(&dir).contains("normalizer \"NFKC\" is not supported"));
    let dir = edited("qwen2", |t| t["added_tokens"][0]["lstrip"] = true.into())?;
    assert!(refusal(&dir).contains("with lstrip true is not supported"));
    Ok(())
}

/// Tokenizer `name` written as a GGUF `tokenizer.ggml.model = gpt2` (as llama.cpp's converter
/// does) over a random-weight tiny Llama, converted back by `chispa-convert gguf`.
fn via_gguf(
    name: &str,
    pre: &str,
) -> anyhow::Result<(chispa_tools::aligned::AlignedBytes, Vec<String>)> {
    use chispa_tools::gguf_writer::{write_with, GgufType, Gpt2Tokenizer};
    let dir = tokenizer_dir(name);
    let read = |f: &str| -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&std::fs::read_to_string(dir.join(f))?)?)
    };
    let (tok, config, tok_config) =
        (read("tokenizer.json")?, read("config.json")?, read("tokenizer_config.json")?);
    let n = config["vocab_size"].as_u64().expect("vocab_size") as usize;
    let mut tokens = vec![String::new(); n];
    let mut types = vec![1i32; n];
    for (s, id) in tok["model"]["vocab"].as_object().expect("vocab") {
        tokens[id.as_u64().expect("id") as usize] = s.clone();
    }
    for t in tok["added_tokens"].as_array().expect("added") {
        let id = t["id"].as_u64().expect("id") as usize;
        tokens[id] = t["content"].as_str().expect("content").to_string();
        types[id] = 3;
    }
    let merges = chispa_tools::hf_tokenizer::merges(&tok["model"])?
        .into_iter()
        .map(|(a, b)| format!("{a} {b}"))
        .collect();
    let id = |k: &str| config.get(k).and_then(serde_json::Value::as_u64).map(|v| v as u32);
    let gpt2 = Gpt2Tokenizer {
        tokens,
        token_types: types,
        merges,
        pre: pre.to_string(),
        chat_template: tok_config.get("chat_template").and_then(|v| v.as_str()).map(str::to_string),
        bos: id("bos_token_id"),
        eos: id("eos_token_id"),
    };
    let random = chispa_tools::synth::random_model(chispa_tests::bytebpe::tiny_params(n), 5, 0.3)?;
    let file = write_with(&random, GgufType::F32, Some(&gpt2))?;
    let (model, lines) = chispa_tools::gguf::read(&file)?;
    let opts = chispa_tools::writer::WriteOptions {
        dtype: DType::F32,
        groups: chispa_tools::writer::Groups::Fixed,
        ..Default::default()
    };
    Ok((chispa_tools::writer::build(&model, &opts, |_, _| {})?.0, lines))
}

#[test]
fn gguf_gpt2_tokenizers_match_tokenizers() -> anyhow::Result<()> {
    for (name, pre) in [("llama3", "llama-bpe"), ("qwen2", "qwen2")] {
        let (bytes, lines) = via_gguf(name, pre)?;
        assert!(
            lines.iter().any(|l| l.contains(&format!("tokenizer.ggml.pre \"{pre}\""))),
            "{lines:?}"
        );
        let model = Model::parse(bytes.as_slice())?;
        for c in cases(name)? {
            assert_eq!(encode(&model, &c.text), c.ids, "{name} via GGUF: {:?}", c.text);
        }
        if name == "llama3" {
            // The chat template key gives the same board prefix as tokenizer_config.json.
            let (hf, _) = model_with_tokenizer(&tokenizer_dir(name), DType::I8)?;
            let hf = Model::parse(hf.as_slice())?;
            assert!(model.tokenizer().chat_prefix().is_some());
            assert_eq!(model.tokenizer().chat_prefix(), hf.tokenizer().chat_prefix());
            assert_eq!(model.tokenizer().chat_suffix(), hf.tokenizer().chat_suffix());
        }
    }
    let e = match via_gguf("llama3", "falcon") {
        Ok(_) => panic!("converted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("tokenizer.ggml.pre \"falcon\" is not supported"), "{e}");
    Ok(())
}

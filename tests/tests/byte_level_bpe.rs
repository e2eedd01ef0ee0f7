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

fn check(name: &str, expect_line: &str) -> anyhow::Result<()> {
    let (bytes, line) = model_with_tokenizer(&tokenizer_dir(name), DType::I8)?;
    assert!(line.contains(expect_line), "{name}: {line}");
    let model = Model::parse(bytes.as_slice())?;
    let cases = cases(name)?;
    assert!(cases.len() >= 200, "{name}: {} cases", cases.len());
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
    check("llama3", "Llama 3 split")
}

#[test]
fn smollm_digits_and_gpt2_split_match_tokenizers() -> anyhow::Result<()> {
    check("smollm", "Digits (each) + ByteLevel with the GPT-2 split")
}

#[test]
fn qwen2_split_matches_tokenizers() -> anyhow::Result<()> {
    check("qwen2", "Qwen2 split")
}

//! The heap-free tokenizer against two independent references: the prompt ids run.c produced
//! (stories260K.reference.json), and Hugging Face `tokenizers` on the stories260K-hf
//! tokenizer.json (which encodes as run.c does) for harder strings.

use chispa_core::format::DType;
use chispa_core::Model;
use chispa_runner::data::data_file;
use chispa_tests::{stories_model, stories_reference};

fn encode(model: &Model<'_>, text: &str) -> Vec<u32> {
    let mut ids = vec![0u32; text.len() + 3];
    let n = model.tokenizer().encode(text, true, false, &mut ids).expect("capacity text.len() + 3");
    ids.truncate(n);
    ids
}

fn decode(model: &Model<'_>, ids: &[u32]) -> Vec<u8> {
    let t = model.tokenizer();
    let mut out = Vec::new();
    for w in ids.windows(2) {
        out.extend_from_slice(t.decode(Some(w[0]), w[1]).bytes());
    }
    out
}

fn long_text() -> String {
    let base = "Once upon a time, in a small town, there lived a girl named Lily.\n\
                She loved to play  outside — and to eat café crème 🙂! 12345 ";
    let mut s = String::new();
    while s.chars().count() < 1000 {
        s.push_str(base);
    }
    s.chars().take(1000).collect()
}

#[test]
fn prompt_ids_match_run_c() -> anyhow::Result<()> {
    let bytes = stories_model(DType::I8, None)?;
    let model = Model::parse(bytes.as_slice())?;
    for case in &stories_reference()?.cases {
        assert!(case.add_bos);
        assert_eq!(encode(&model, &case.prompt), case.prompt_ids, "case {}", case.name);
    }
    Ok(())
}

#[test]
fn hard_strings_match_hugging_face_tokenizers() -> anyhow::Result<()> {
    let bytes = stories_model(DType::I8, None)?;
    let model = Model::parse(bytes.as_slice())?;
    let path = data_file("reference/hf/stories260K-hf/tokenizer.json")?;
    let hf = tokenizers::Tokenizer::from_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let long = long_text();
    let cases = [
        "",
        " Once",
        "  leading",
        "double  spaces",
        "trailing ",
        "a\nnewline",
        "\n",
        "café 🙂",
        &long,
    ];
    for text in cases {
        let want = hf.encode(text, true).map_err(|e| anyhow::anyhow!("{e}"))?.get_ids().to_vec();
        let got = encode(&model, text);
        assert_eq!(got, want, "text {text:?}");
        // Decoding gives the text back (the dummy-prefix space is dropped after BOS).
        assert_eq!(decode(&model, &got), text.as_bytes(), "round trip of {text:?}");
    }
    assert_eq!(encode(&model, ""), vec![1], "empty text is BOS alone");
    Ok(())
}

#[test]
fn a_small_output_buffer_is_an_error_not_a_panic() -> anyhow::Result<()> {
    let bytes = stories_model(DType::I8, None)?;
    let model = Model::parse(bytes.as_slice())?;
    let mut ids = [0u32; 3];
    let r = model.tokenizer().encode("Once upon a time there was", true, false, &mut ids);
    assert_eq!(r, Err(chispa_core::TokenizeError::OutputFull { capacity: 3 }));
    let v = model.tokenizer().encode_vec::<32>("Once upon a time", true, false)?;
    assert_eq!(v.as_slice(), &[1, 403, 407, 261, 378]);
    Ok(())
}

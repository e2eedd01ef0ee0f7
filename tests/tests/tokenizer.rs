//! The heap-free tokenizer against two independent references: the prompt ids run.c produced
//! (stories260K.reference.json), and Hugging Face `tokenizers` on the stories260K-hf
//! tokenizer.json (which encodes as run.c does) for harder strings.

use chispa_core::format::DType;
use chispa_core::Model;
use chispa_runner::data::data_file;
use chispa_tests::{stories_model, stories_reference};

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
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let r =
        model.tokenizer().encode("Once upon a time there was", true, false, &mut ids, &mut scratch);
    assert_eq!(r, Err(chispa_core::TokenizeError::OutputFull { capacity: 3 }));
    let v = model.tokenizer().encode_vec::<32>("Once upon a time", true, false)?;
    assert_eq!(v.as_slice(), &[1, 403, 407, 261, 378]);
    Ok(())
}

/// llama2.c's `encode` written out directly: the pieces of the text, then after every merge
/// a scan of all adjacent pairs for the best (the leftmost on ties), looked up by building
/// the concatenation. Quadratic; the reference for the tokenizer's heap of pairs.
fn rescanning_encode(model: &Model<'_>, text: &str) -> Vec<u32> {
    use chispa_core::format::{NONE, TOK_FLAG_DUMMY_PREFIX, TOK_FLAG_NO_PREFIX_BEFORE_SPACE};
    let t = model.tokenizer();
    let h = model.header();
    let mut ids: Vec<u32> = t.bos().into_iter().collect();
    let dummy = h.tok_flags & TOK_FLAG_DUMMY_PREFIX != 0;
    let no_prefix = h.tok_flags & TOK_FLAG_NO_PREFIX_BEFORE_SPACE != 0 && text.starts_with(' ');
    if dummy && !text.is_empty() && !no_prefix {
        ids.extend(t.lookup(b" "));
    }
    for c in text.chars() {
        let mut buf = [0u8; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        match t.lookup(bytes) {
            Some(id) => ids.push(id),
            None => {
                assert_ne!(h.byte_fallback_base, NONE);
                ids.extend(bytes.iter().map(|b| h.byte_fallback_base + u32::from(*b)));
            }
        }
    }
    loop {
        let mut best: Option<(f32, u32, usize)> = None;
        for (i, w) in ids.windows(2).enumerate() {
            let joined = [t.piece(w[0]), t.piece(w[1])].concat();
            if let Some(id) = t.lookup(&joined) {
                let s = t.score(id);
                if s > best.map_or(-1e10, |b| b.0) {
                    best = Some((s, id, i));
                }
            }
        }
        let Some((_, id, i)) = best else { break };
        ids[i] = id;
        ids.remove(i + 1);
    }
    ids
}

#[test]
fn merging_by_a_heap_of_pairs_gives_what_rescanning_gives() -> anyhow::Result<()> {
    let bytes = stories_model(DType::I8, None)?;
    let model = Model::parse(bytes.as_slice())?;
    let alphabet: Vec<char> = "aaabcdeeefghiilmnnooprssttuy      ,.!?'\n\té🙂—Zx".chars().collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut texts: Vec<String> = vec![
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        "ababababababababab abababab".into(),
        "  the the the the  the".into(),
        "Once upon a time ".repeat(30),
        long_text(),
    ];
    for len in [1, 2, 3, 5, 8, 13, 40, 100, 300, 1000] {
        for _ in 0..20 {
            texts.push(
                (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect(),
            );
        }
    }
    for text in &texts {
        assert_eq!(encode(&model, text), rescanning_encode(&model, text), "text {text:?}");
    }
    Ok(())
}

#[test]
fn a_scratch_buffer_too_small_is_an_error_not_a_panic() -> anyhow::Result<()> {
    let bytes = stories_model(DType::I8, None)?;
    let model = Model::parse(bytes.as_slice())?;
    let mut ids = [0u32; 32];
    let mut scratch = [0u32; 10];
    let r = model.tokenizer().encode("Once upon a time", true, false, &mut ids, &mut scratch);
    assert!(matches!(r, Err(chispa_core::TokenizeError::ScratchTooSmall { .. })), "{r:?}");
    Ok(())
}

//! What the fuzz targets share: a tiny synthetic model (not derived from any shared data) and
//! the work done on whatever parses.

use chispa_core::format::{file_checksum, Arch, TokenizerKind, CHECKSUM_OFFSET, HEADER_BYTES};
use chispa_core::{KvType, Model, Session, SessionOptions};
use chispa_tools::aligned::AlignedBytes;
use chispa_tools::source::{canonical_names, Params, SourceModel, Tensor, Vocab};
use chispa_tools::writer::{build, Groups, WriteOptions};

/// The fixed groups: calibration (the default) runs the model hundreds of times, too slow per
/// fuzz input; `chispa_tools::calibrate` has its own tests.
fn fixed() -> WriteOptions {
    WriteOptions {
        dtype: chispa_core::format::DType::I8,
        groups: Groups::Fixed,
        ..Default::default()
    }
}

/// A tiny Llama with a byte-fallback vocabulary of 300 pieces, random weights from `seed`.
/// hidden_dim 24 is not a multiple of the default group, so short groups are exercised.
pub fn tiny_model(seed: u64) -> SourceModel {
    let params = Params {
        arch: Arch::Llama,
        dim: 16,
        hidden_dim: 24,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 0,
        vocab_size: 300,
        max_seq_len: 32,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
        shared_classifier: true,
    };
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let names = canonical_names(&params).unwrap_or_else(|e| panic!("tiny shape: {e:#}"));
    let tensors = names
        .into_iter()
        .map(|(name, rows, cols)| Tensor {
            data: (0..rows * cols)
                .map(|_| if rows == 1 { 1.0 + next() * 0.1 } else { next() * 0.5 })
                .collect(),
            name,
            rows,
            cols,
        })
        .collect();
    let mut pieces: Vec<Vec<u8>> =
        vec![b"<unk>".to_vec(), b"\n<s>\n".to_vec(), b"\n</s>\n".to_vec()];
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
    let words = [
        " ", "a", "b", "c", "d", "e", "h", "i", "n", "o", "s", "t", "T", ".", ",", "é", "th", "he",
        "the", " the", "an", "and", " and", "on", "ce", "Once", " Once", "in", "is", "it", " a",
        "at", "st", "en", "er", "es", "ou", "or", "ar", "al", "🙂",
    ];
    pieces.extend(words.iter().map(|w| w.as_bytes().to_vec()));
    let n = pieces.len();
    let scores = (0..n).map(|i| if i < 259 { 0.0 } else { -((i - 259) as f32) }).collect();
    let vocab = Vocab {
        kind: TokenizerKind::ScoreBpe,
        pieces,
        scores,
        bos: Some(1),
        eos: Some(2),
        byte_fallback_base: Some(3),
        dummy_prefix: true,
        no_prefix_before_space: false,
        stop_ids: vec![1],
        ext: chispa_tools::source::TokenizerExt::default(),
    };
    SourceModel { params, tensors, vocab }
}

/// The tiny model as `.chispa` bytes.
pub fn tiny_image(seed: u64) -> Vec<u8> {
    match build(&tiny_model(seed), &fixed(), |_, _| {}) {
        Ok((image, _)) => image.as_slice().to_vec(),
        Err(e) => panic!("the tiny model must build: {e:#}"),
    }
}

/// Rewrites the checksum so mutations reach the validation behind it.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_BYTES {
        let crc = file_checksum(bytes);
        bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Parses `bytes` (copied to an aligned buffer) and, when it is a model, runs a few positions
/// and the tokenizer in a small arena. Any panic here is a bug.
pub fn parse_and_exercise(bytes: &[u8]) {
    let aligned = AlignedBytes::copy_from(bytes);
    let Ok(model) = Model::parse(aligned.as_slice()) else { return };
    let c = *model.config();
    // Every KV-cache type, chosen by the input's length.
    let kv = KvType::ALL[bytes.len() % KvType::ALL.len()];
    let options = SessionOptions { context: c.max_seq_len.min(4), kv };
    let Ok(plan) = model.plan(&options) else { return };
    if plan.arena_bytes > 64 << 20 {
        return; // a valid but huge model: planning said so without touching memory
    }
    let mut arena = AlignedBytes::zeroed(plan.arena_bytes);
    let Ok(mut session) = Session::new(&model, &options, arena.as_mut_slice()) else { return };
    for pos in 0..options.context {
        let token = (bytes.get(pos).copied().unwrap_or(0) as usize * 31 % c.vocab_size) as u32;
        let logits = session.forward(token, pos).map(|l| l.len());
        assert_eq!(logits, Ok(c.vocab_size));
    }
    let mut ids = [0u32; 64];
    let mut scratch = vec![0; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let t = model.tokenizer();
    if let Ok(n) = t.encode("Once upon a time, the café 🙂", true, true, &mut ids, &mut scratch)
    {
        for w in ids[..n].windows(2) {
            let _ = t.decode(Some(w[0]), w[1]);
        }
    }
}

/// Packs a Hugging Face folder as one fuzz input: `config.json` and `tokenizer.json`, each
/// behind a little-endian u32 length, then the safetensors bytes.
pub fn pack_hf(config: &[u8], tokenizer: &[u8], safetensors: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + config.len() + tokenizer.len() + safetensors.len());
    for part in [config, tokenizer] {
        out.extend((part.len() as u32).to_le_bytes());
        out.extend(part);
    }
    out.extend(safetensors);
    out
}

fn take_part(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else { return (&[], &[]) };
    rest.split_at((u32::from_le_bytes(*len) as usize).min(rest.len()))
}

/// The three files of [`pack_hf`]; short inputs give empty files.
pub fn unpack_hf(data: &[u8]) -> [&[u8]; 3] {
    let (config, rest) = take_part(data);
    let (tokenizer, safetensors) = take_part(rest);
    [config, tokenizer, safetensors]
}

/// Converts a model read by any converter front end and exercises the result: the writer
/// must either refuse it or produce a file the core accepts.
pub fn convert_and_exercise(model: &SourceModel) {
    if model.tensors.iter().map(|t| t.data.len()).sum::<usize>() > 1 << 20 {
        return; // valid but large: the writer's time, not a bug
    }
    if let Ok((image, _)) = build(model, &fixed(), |_, _| {}) {
        let parsed = Model::parse(image.as_slice()).map(|_| ());
        assert_eq!(parsed, Ok(()), "the writer verified this file by parsing it");
        parse_and_exercise(image.as_slice());
    }
}

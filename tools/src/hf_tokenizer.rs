//! Tokenizers from Hugging Face `tokenizer.json` (and `tokenizer_config.json`).
//!
//! Llama-2-style BPE (`▁` metaspace, byte fallback, `<s>` prepended) maps onto the core's
//! score-merge tokenizer (llama2.c's algorithm): pieces are stored with `▁` as a space, the
//! metaspace prefix is the dummy-prefix flag, and each token made by merge rank `r` gets the
//! score `−r`, so "merge the pair with the highest score" applies merges in rank order.
//! Tokens that no merge makes (characters, bytes, specials) get a score no merge can beat
//! (`NO_MERGE`), exactly as llama2.c treats scores at or below −1e10. The acceptance tests
//! check the result against the reference prompt ids and Hugging Face `tokenizers`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::regex_split;
use crate::source::Vocab;

/// Score of tokens no merge produces: llama2.c never merges at or below −1e10.
pub const NO_MERGE: f32 = -1e10;

const METASPACE: char = '▁';

fn read_json(path: &Path) -> Result<Value> {
    let text = crate::output::read_input_text(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// The merges of a BPE model, as pairs, in rank order (either `"a b"` or `["a", "b"]`).
pub fn merges(model: &Value) -> Result<Vec<(String, String)>> {
    let list = model
        .get("merges")
        .and_then(Value::as_array)
        .context("tokenizer.json: model has no \"merges\" list")?;
    list.iter()
        .enumerate()
        .map(|(i, m)| match (m, m.as_array().map(Vec::as_slice)) {
            (Value::String(s), _) => s
                .split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .with_context(|| format!("tokenizer.json: merge {i} {s:?} is not \"a b\"")),
            (_, Some([a, b])) => match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) => Ok((x.to_string(), y.to_string())),
                _ => bail!("tokenizer.json: merge {i} is not a pair of strings"),
            },
            _ => bail!("tokenizer.json: merge {i} is neither \"a b\" nor [a, b]"),
        })
        .collect()
}

/// Token strings by id: `model.vocab` plus `added_tokens`, over `vocab_size` ids.
fn id_table(tok: &Value, vocab_size: usize) -> Result<Vec<Option<String>>> {
    let vocab = tok
        .pointer("/model/vocab")
        .and_then(Value::as_object)
        .context("tokenizer.json: model has no \"vocab\" object")?;
    let mut table: Vec<Option<String>> = vec![None; vocab_size];
    let mut put = |s: &str, id: Option<u64>| -> Result<()> {
        let id = id.with_context(|| format!("tokenizer.json: token {s:?} has no integer id"))?;
        let slot = table.get_mut(id as usize).with_context(|| {
            format!("tokenizer.json: token {s:?} has id {id}, outside the model's vocabulary of {vocab_size}")
        })?;
        match slot {
            Some(prev) if prev != s => {
                bail!("tokenizer.json: id {id} is both {prev:?} and {s:?}")
            }
            _ => *slot = Some(s.to_string()),
        }
        Ok(())
    };
    for (s, id) in vocab {
        put(s, id.as_u64())?;
    }
    for t in tok.get("added_tokens").and_then(Value::as_array).into_iter().flatten() {
        let s = t
            .get("content")
            .and_then(Value::as_str)
            .context("tokenizer.json: added token without content")?;
        put(s, t.get("id").and_then(Value::as_u64))?;
    }
    Ok(table)
}

/// Whether the normalizer / pre-tokenizer is sentencepiece's metaspace with a prefix:
/// either `Prepend("▁") + Replace(" ", "▁")` (Llama 2's `legacy` form) or a `Metaspace`
/// pre-tokenizer that does not split. Returns true for the latter, which (unlike the former
/// and sentencepiece) adds no prefix to text that already starts with a space.
fn check_metaspace(tok: &Value) -> Result<bool> {
    let norm = tok.get("normalizer").filter(|v| !v.is_null());
    let pre = tok.get("pre_tokenizer").filter(|v| !v.is_null());
    let ty = |v: &Value| v.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(n) = norm {
        let parts: Vec<&Value> = match n.get("normalizers").and_then(Value::as_array) {
            Some(list) => list.iter().collect(),
            None => vec![n],
        };
        let mut prepend = false;
        let mut replace = false;
        for p in parts {
            match ty(p).as_str() {
                "Prepend" if p.get("prepend").and_then(Value::as_str) == Some("▁") => {
                    prepend = true
                }
                "Replace"
                    if p.pointer("/pattern/String").and_then(Value::as_str) == Some(" ")
                        && p.get("content").and_then(Value::as_str) == Some("▁") =>
                {
                    replace = true
                }
                other => bail!("tokenizer.json: normalizer {other:?} is not supported"),
            }
        }
        ensure!(
            prepend && replace && pre.is_none(),
            "tokenizer.json: normalizer is not Llama's Prepend(▁) + Replace(' ', ▁)"
        );
        return Ok(false);
    }
    let p = pre.context("tokenizer.json: neither a metaspace normalizer nor a pre_tokenizer")?;
    ensure!(
        ty(p) == "Metaspace",
        "tokenizer.json: pre_tokenizer {:?} is not supported for a byte-fallback BPE",
        ty(p)
    );
    ensure!(
        p.get("split").and_then(Value::as_bool) != Some(true),
        "tokenizer.json: Metaspace with \"split\": true is not supported"
    );
    let scheme = p.get("prepend_scheme").and_then(Value::as_str).unwrap_or("always");
    ensure!(
        scheme == "first" || scheme == "always",
        "tokenizer.json: Metaspace prepend_scheme {scheme:?} is not supported"
    );
    Ok(true)
}

/// Whether the post-processor prepends BOS (or `tokenizer_config.json` says `add_bos_token`).
fn adds_bos(tok: &Value, tok_config: Option<&Value>) -> bool {
    if let Some(b) = tok_config.and_then(|c| c.get("add_bos_token")).and_then(Value::as_bool) {
        return b;
    }
    let post = tok.get("post_processor");
    let mut parts: Vec<&Value> = post.into_iter().collect();
    if let Some(list) = post.and_then(|p| p.get("processors")).and_then(Value::as_array) {
        parts.extend(list);
    }
    parts.iter().any(|p| {
        let single = p.get("single").and_then(Value::as_array);
        single.and_then(|s| s.first()).is_some_and(|first| first.get("SpecialToken").is_some())
    })
}

pub(crate) fn token_id(table: &[Option<String>], s: &str) -> Option<u32> {
    table.iter().position(|t| t.as_deref() == Some(s)).map(|i| i as u32)
}

/// A special token's id: from `config.json` (`bos_token_id`), else from the token named in
/// `tokenizer_config.json` (`bos_token`).
fn special_id(
    config: &Value,
    tok_config: Option<&Value>,
    table: &[Option<String>],
    what: &str,
) -> Result<Option<u32>> {
    let id_key = format!("{what}_token_id");
    if let Some(v) = config.get(&id_key).filter(|v| !v.is_null()) {
        let id =
            v.as_u64().or_else(|| v.as_array().and_then(|a| a.first()).and_then(Value::as_u64));
        let id = id.with_context(|| format!("config.json: \"{id_key}\" is {v}"))?;
        ensure!(
            (id as usize) < table.len(),
            "config.json: \"{id_key}\" {id} is outside the vocabulary of {}",
            table.len()
        );
        return Ok(Some(id as u32));
    }
    let name = tok_config
        .and_then(|c| c.get(format!("{what}_token")))
        .and_then(|v| v.as_str().or_else(|| v.get("content").and_then(Value::as_str)));
    Ok(name.and_then(|n| token_id(table, n)))
}

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes stand for
/// themselves, the others for U+0100 onwards in byte order.
pub fn byte_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for (b, m) in (0..=255u8).zip(&mut map) {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            u32::from(b)
        } else {
            next += 1;
            next - 1
        };
        *m = char::from_u32(c).unwrap_or('\0');
    }
    map
}

fn type_of(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Whether the pre-tokenizer is `ByteLevel`, alone or in a `Sequence`.
fn is_byte_level(tok: &Value) -> bool {
    let Some(pre) = tok.get("pre_tokenizer") else { return false };
    match type_of(pre) {
        "ByteLevel" => true,
        "Sequence" => pre
            .get("pretokenizers")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|p| type_of(p) == "ByteLevel")),
        _ => false,
    }
}

/// The name of a known split pattern, or the pattern itself.
fn pattern_name(pattern: &str) -> String {
    match pattern {
        regex_split::GPT2_PATTERN => "GPT-2 split".to_string(),
        regex_split::LLAMA3_PATTERN => "Llama 3 split".to_string(),
        regex_split::QWEN2_PATTERN => "Qwen2 split".to_string(),
        other => format!("split {other:?}"),
    }
}

/// The byte-level pre-tokenizer as program stages, and what it is in words: `Split` (regex,
/// `Isolated`) and `Digits` stages, then `ByteLevel` (whose own GPT-2 split is one more
/// stage when `use_regex`).
fn byte_level_program(pre: &Value) -> Result<(Vec<u32>, String)> {
    let parts: Vec<&Value> = match type_of(pre) {
        "Sequence" => pre
            .get("pretokenizers")
            .and_then(Value::as_array)
            .context("tokenizer.json: pre_tokenizer Sequence without \"pretokenizers\"")?
            .iter()
            .collect(),
        _ => vec![pre],
    };
    let mut stages = Vec::new();
    let mut names = Vec::new();
    let mut byte_level = false;
    for p in parts {
        let ty = type_of(p);
        ensure!(
            !byte_level,
            "tokenizer.json: pre_tokenizer {ty:?} after ByteLevel is not supported"
        );
        match ty {
            "ByteLevel" => {
                byte_level = true;
                ensure!(
                    p.get("add_prefix_space").and_then(Value::as_bool) != Some(true),
                    "tokenizer.json: ByteLevel add_prefix_space true is not supported"
                );
                if p.get("use_regex").and_then(Value::as_bool) != Some(false) {
                    stages.push(regex_split::compile(regex_split::GPT2_PATTERN)?);
                    names.push("ByteLevel with the GPT-2 split".to_string());
                }
            }
            "Split" => {
                let pattern =
                    p.pointer("/pattern/Regex").and_then(Value::as_str).with_context(|| {
                        format!(
                            "tokenizer.json: Split pattern {} is not a Regex",
                            p.get("pattern").unwrap_or(&Value::Null)
                        )
                    })?;
                let behavior = p.get("behavior").and_then(Value::as_str).unwrap_or("");
                ensure!(
                    behavior == "Isolated",
                    "tokenizer.json: Split behavior {behavior:?} is not supported (Isolated only)"
                );
                ensure!(
                    p.get("invert").and_then(Value::as_bool) != Some(true),
                    "tokenizer.json: Split with \"invert\": true is not supported"
                );
                stages.push(regex_split::compile(pattern).context("tokenizer.json: Split")?);
                names.push(pattern_name(pattern));
            }
            "Digits" => {
                let single = p.get("individual_digits").and_then(Value::as_bool) == Some(true);
                stages.push(regex_split::compile(if single { r"\p{N}" } else { r"\p{N}+" })?);
                names.push(if single { "Digits (each)" } else { "Digits (runs)" }.to_string());
            }
            other => bail!(
                "tokenizer.json: pre_tokenizer {other:?} is not supported in a byte-level BPE"
            ),
        }
    }
    ensure!(byte_level, "tokenizer.json: pre_tokenizer has no ByteLevel");
    // No stage (ByteLevel without its regex): the whole text is one chunk.
    let words = regex_split::program(&stages);
    chispa_core::pretokenize::Program::parse(&words).map_err(|e| {
        anyhow::anyhow!("tokenizer.json: pre_tokenizer program: {} at word {}", e.what, e.word)
    })?;
    Ok((words, names.join(" + ")))
}

/// Byte-level BPE (GPT-2, Llama 3, SmolLM, Qwen2 style): pieces decoded from the
/// byte-to-unicode map to raw bytes (added tokens kept as their text), scores `−rank`, the
/// pre-tokenizer compiled to a program, per token the split of the merge that makes it, the
/// added tokens matched in text; no dummy prefix, no byte fallback.
fn read_byte_level(
    tok: &Value,
    tok_config: Option<&Value>,
    config: &Value,
    vocab_size: usize,
) -> Result<(Vocab, String)> {
    let pre = tok.get("pre_tokenizer").context("tokenizer.json: no pre_tokenizer")?;
    let (program, pre_name) = byte_level_program(pre)?;
    let mut notes = Vec::new();
    match tok.get("normalizer").filter(|v| !v.is_null()).map(type_of) {
        None => {}
        Some("NFC") => notes.push("NFC normalizer not applied: text is taken as NFC already"),
        Some(other) => {
            bail!("tokenizer.json: normalizer {other:?} is not supported for a byte-level BPE")
        }
    }
    match tok.get("decoder").filter(|v| !v.is_null()).map(type_of) {
        None | Some("ByteLevel") => {}
        Some(other) => bail!("tokenizer.json: decoder {other:?} is not supported for a byte-level BPE (ByteLevel only)"),
    }
    let model = tok.get("model").context("tokenizer.json: no \"model\"")?;
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
        let v = model.get(key).and_then(Value::as_str).unwrap_or("");
        ensure!(v.is_empty(), "tokenizer.json: model {key} {v:?} is not supported");
    }
    ensure!(
        model.get("dropout").is_none_or(|d| d.is_null() || d.as_f64() == Some(0.0)),
        "tokenizer.json: model dropout is not supported"
    );
    let ignore_merges = model.get("ignore_merges").and_then(Value::as_bool) == Some(true);
    let table = id_table(tok, vocab_size)?;
    let mut added = Vec::new();
    for t in tok.get("added_tokens").and_then(Value::as_array).into_iter().flatten() {
        let content = t.get("content").and_then(Value::as_str).unwrap_or("");
        for key in ["single_word", "lstrip", "rstrip"] {
            ensure!(
                t.get(key).and_then(Value::as_bool) != Some(true),
                "tokenizer.json: added token {content:?} with {key} true is not supported"
            );
        }
        ensure!(!content.is_empty(), "tokenizer.json: an added token has no content");
        added.push(content.to_string());
    }
    let bos = special_id(config, tok_config, &table, "bos")?;
    let eos = special_id(config, tok_config, &table, "eos")?;
    let chat = crate::chat::from_tokenizer_config(tok_config, &table, bos, eos)?;
    byte_level_vocab(ByteLevelSpec {
        source: "tokenizer.json",
        table,
        merges: merges(model)?,
        added,
        program,
        pre_name,
        ignore_merges,
        bos,
        eos,
        add_bos: adds_bos(tok, tok_config) && bos.is_some(),
        chat,
        notes: notes.into_iter().map(str::to_string).collect(),
    })
}

/// A byte-level BPE as any file states it.
#[derive(Clone, Debug)]
pub struct ByteLevelSpec {
    /// Where it comes from, for messages (`tokenizer.json`, `GGUF`).
    pub source: &'static str,
    /// Token strings by id: GPT-2 byte-mapped, added tokens as their text.
    pub table: Vec<Option<String>>,
    /// Merges in rank order.
    pub merges: Vec<(String, String)>,
    /// The text of each added token (matched in input text).
    pub added: Vec<String>,
    /// The pre-tokenizer program and what it is in words.
    pub program: Vec<u32>,
    /// Its description.
    pub pre_name: String,
    /// A chunk that is a token is that token.
    pub ignore_merges: bool,
    /// Beginning-of-sequence id.
    pub bos: Option<u32>,
    /// End-of-sequence id.
    pub eos: Option<u32>,
    /// Whether encoding prepends BOS.
    pub add_bos: bool,
    /// The chat template, if any.
    pub chat: Option<crate::source::Chat>,
    /// Notes for the recognition line.
    pub notes: Vec<String>,
}

/// The vocabulary of a byte-level BPE: pieces decoded from the byte-to-unicode map to raw
/// bytes (added tokens kept as their text), scores `−rank`, per token the split of the merge
/// that makes it; and one line saying what was recognised.
///
/// # Errors
/// A token outside GPT-2's byte map, a merge making no token or a token made twice, a byte
/// without a token.
pub fn byte_level_vocab(spec: ByteLevelSpec) -> Result<(Vocab, String)> {
    let ByteLevelSpec {
        source,
        table,
        merges,
        added,
        program,
        pre_name,
        ignore_merges,
        bos,
        eos,
        add_bos,
        chat,
        notes,
    } = spec;
    let vocab_size = table.len();
    let present = table.iter().filter(|t| t.is_some()).count();
    let special: std::collections::HashSet<&str> = added.iter().map(String::as_str).collect();
    let added_ids = added
        .iter()
        .map(|c| {
            token_id(&table, c).with_context(|| format!("{source}: added token {c:?} has no id"))
        })
        .collect::<Result<Vec<u32>>>()?;
    let map = byte_to_unicode();
    let inverse: HashMap<char, u8> = map.iter().enumerate().map(|(b, c)| (*c, b as u8)).collect();
    let to_bytes =
        |t: &str| -> Option<Vec<u8>> { t.chars().map(|c| inverse.get(&c).copied()).collect() };
    let id_of: HashMap<&str, usize> =
        table.iter().enumerate().filter_map(|(i, t)| t.as_deref().map(|t| (t, i))).collect();
    let mut rank: HashMap<usize, usize> = HashMap::new();
    let mut split = vec![0u8; vocab_size];
    for (r, (a, b)) in merges.iter().enumerate() {
        let made = format!("{a}{b}");
        let id = *id_of.get(made.as_str()).with_context(|| {
            format!(
                "{source}: merge {r} ({a:?} {b:?}) makes {made:?}, which is not in the vocabulary"
            )
        })?;
        if let Some(first) = rank.get(&id) {
            bail!("{source}: token {made:?} is made by two merges ({first} and {r}), which is not supported");
        }
        let left = to_bytes(a).with_context(|| {
            format!("{source}: merge {r} has a character outside GPT-2's byte map")
        })?;
        let slot = split.get_mut(id).context("merge result outside the vocabulary")?;
        *slot = u8::try_from(left.len()).ok().filter(|k| *k > 0).with_context(|| {
            format!(
                "{source}: merge {r} has a left part of {} bytes (1..=255 supported)",
                left.len()
            )
        })?;
        rank.insert(id, r);
    }
    let mut pieces = Vec::with_capacity(vocab_size);
    let mut scores = Vec::with_capacity(vocab_size);
    for (id, t) in table.iter().enumerate() {
        let Some(t) = t else {
            pieces.push(format!("<chispa_unused_{id}>").into_bytes());
            scores.push(NO_MERGE);
            continue;
        };
        scores.push(rank.get(&id).map_or(NO_MERGE, |r| -(*r as f32)));
        if special.contains(t.as_str()) {
            ensure!(!rank.contains_key(&id), "{source}: added token {t:?} is also made by a merge");
            pieces.push(t.clone().into_bytes());
            continue;
        }
        pieces.push(to_bytes(t).with_context(|| {
            format!("{source}: token {id} {t:?} has a character outside GPT-2's byte map")
        })?);
    }
    for b in 0..=255u8 {
        ensure!(
            pieces.iter().any(|p| p.as_slice() == [b]),
            "{source}: no token for the byte {b:#04x} (byte-level BPE needs all 256)"
        );
    }
    let name = |id: Option<u32>| {
        id.map_or("none".to_string(), |i| {
            let t = table.get(i as usize).and_then(Option::as_deref);
            format!("{} = {:?}", i, t.unwrap_or("?"))
        })
    };
    let line = format!(
        "tokenizer: byte-level BPE ({pre_name}), {present} tokens, {} merges{}, {} added tokens, BOS {}{}, EOS {}{}{}",
        merges.len(),
        if ignore_merges { " (whole-chunk tokens first)" } else { "" },
        added_ids.len(),
        name(bos),
        if add_bos { " prepended" } else { " not prepended" },
        name(eos),
        chat.as_ref().map_or(String::new(), |_| ", chat template".to_string()),
        notes.iter().map(|n| format!("; {n}")).collect::<String>(),
    );
    let vocab = Vocab {
        kind: chispa_core::format::TokenizerKind::ByteBpe,
        pieces,
        scores,
        bos: if add_bos { bos } else { None },
        eos,
        byte_fallback_base: None,
        dummy_prefix: false,
        no_prefix_before_space: false,
        stop_ids: eos.into_iter().collect(),
        ext: crate::source::TokenizerExt {
            pre_tokenizer: Some(program),
            merge_splits: Some(split),
            added_tokens: added_ids,
            ignore_merges,
            chat,
        },
    };
    Ok((vocab, line))
}

/// Reads `tokenizer.json` from `dir` for a model of `vocab_size` tokens; returns the vocabulary
/// and one line saying what was recognised.
///
/// # Errors
/// A missing file, an unsupported tokenizer (the message names the part), or one that does
/// not fit the vocabulary.
pub fn read(dir: &Path, config: &Value, vocab_size: usize) -> Result<(Vocab, String)> {
    let tok = read_json(&dir.join("tokenizer.json"))?;
    let cfg_path = dir.join("tokenizer_config.json");
    let tok_config = if cfg_path.is_file() { Some(read_json(&cfg_path)?) } else { None };
    let model = tok.get("model").context("tokenizer.json: no \"model\"")?;
    let kind = model.get("type").and_then(Value::as_str).unwrap_or("");
    ensure!(kind == "BPE", "tokenizer.json: model type {kind:?} is not supported (BPE only)");
    let byte_fallback = model.get("byte_fallback").and_then(Value::as_bool) == Some(true);
    if !byte_fallback && is_byte_level(&tok) {
        return read_byte_level(&tok, tok_config.as_ref(), config, vocab_size);
    }
    ensure!(
        byte_fallback,
        "tokenizer.json: a BPE with neither byte_fallback nor a ByteLevel pre_tokenizer is not supported"
    );
    let metaspace = check_metaspace(&tok)?;
    let table = id_table(&tok, vocab_size)?;
    let present = table.iter().filter(|t| t.is_some()).count();
    let rank_of: HashMap<String, usize> = merges(model)?
        .into_iter()
        .enumerate()
        .rev() // the lowest rank wins
        .map(|(r, (a, b))| (a + &b, r))
        .collect();
    let mut pieces = Vec::with_capacity(vocab_size);
    let mut scores = Vec::with_capacity(vocab_size);
    for (id, t) in table.iter().enumerate() {
        let s = t.clone().unwrap_or_else(|| format!("<chispa_unused_{id}>"));
        scores.push(rank_of.get(&s).map_or(NO_MERGE, |r| -(*r as f32)));
        pieces.push(s.replace(METASPACE, " ").into_bytes());
    }
    let base = token_id(&table, "<0x00>")
        .context("tokenizer.json: byte_fallback is set but there is no <0x00> token")?;
    for b in 0..=255u32 {
        let want = format!("<0x{b:02X}>");
        ensure!(
            token_id(&table, &want) == Some(base + b),
            "tokenizer.json: byte-fallback token {want} is not at id {} (<0x00> + {b})",
            base + b
        );
    }
    let bos = special_id(config, tok_config.as_ref(), &table, "bos")?;
    let eos = special_id(config, tok_config.as_ref(), &table, "eos")?;
    let add_bos = adds_bos(&tok, tok_config.as_ref());
    let vocab = Vocab {
        kind: chispa_core::format::TokenizerKind::ScoreBpe,
        pieces,
        scores,
        bos: if add_bos { bos } else { None },
        eos,
        byte_fallback_base: Some(base),
        dummy_prefix: true,
        no_prefix_before_space: metaspace,
        stop_ids: eos.into_iter().collect(),
        ext: crate::source::TokenizerExt::default(),
    };
    let name = |id: Option<u32>| {
        id.map_or("none".to_string(), |i| {
            let t = table.get(i as usize).and_then(Option::as_deref);
            format!("{} = {:?}", i, t.unwrap_or("?"))
        })
    };
    let line = format!(
        "tokenizer: Llama-style BPE ({}, byte fallback at {base}), {present} tokens{}, {} merges as scores, BOS {}{}, EOS {}",
        if metaspace { "Metaspace pre-tokenizer, ▁ prefix unless the text starts with a space" } else { "metaspace ▁ normalizer" },
        if present < vocab_size { format!(" (+{} unused ids)", vocab_size - present) } else { String::new() },
        rank_of.len(),
        name(bos),
        if add_bos { " prepended" } else { " not prepended" },
        name(eos)
    );
    Ok((vocab, line))
}

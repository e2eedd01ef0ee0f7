//! Writes the seed corpora (small files made here, from no shared data) into `corpus/`.

use std::fs;
use std::path::Path;

use chispa_tools::gguf_writer::GgufType;

fn llama2c_checkpoint(model: &chispa_tools::source::SourceModel) -> Vec<u8> {
    let p = &model.params;
    let mut out = Vec::new();
    for v in [p.dim, p.hidden_dim, p.n_layers, p.n_heads, p.n_kv_heads, p.vocab_size, p.max_seq_len]
    {
        out.extend((v as i32).to_le_bytes());
    }
    for name in [
        "tok_embeddings",
        "attention_norm",
        "wq",
        "wk",
        "wv",
        "wo",
        "ffn_norm",
        "w1",
        "w2",
        "w3",
        "norm",
    ] {
        let suffix = format!(".{name}");
        for t in model.tensors.iter().filter(|t| t.name == name || t.name.ends_with(&suffix)) {
            out.extend(t.data.iter().flat_map(|x| x.to_le_bytes()));
        }
    }
    let head = p.dim / p.n_heads;
    out.extend(std::iter::repeat_n(0u8, p.max_seq_len * head * 4));
    out
}

fn llama2c_tokenizer(v: &chispa_tools::source::Vocab) -> Vec<u8> {
    let mut out = (v.pieces.iter().map(Vec::len).max().unwrap_or(1) as i32).to_le_bytes().to_vec();
    for (p, s) in v.pieces.iter().zip(&v.scores) {
        out.extend(s.to_le_bytes());
        out.extend((p.len() as i32).to_le_bytes());
        out.extend(p);
    }
    out
}

/// A tiny Hugging Face folder (random weights, a byte-level BPE with a few merges) packed as
/// the `hf` target's input: `config.json` and `tokenizer.json` with u32 length prefixes, then
/// `model.safetensors`.
fn hf_seed(arch: &str) -> Vec<u8> {
    let (dim, hidden, vocab) = (8usize, 12usize, 262usize);
    let map = chispa_tools::hf_tokenizer::byte_to_unicode();
    let mut ids = serde_json::Map::new();
    for (b, c) in map.iter().enumerate() {
        ids.insert(c.to_string(), b.into());
    }
    let g = map[b' ' as usize];
    ids.insert(format!("{g}t"), 256.into());
    ids.insert("he".into(), 257.into());
    ids.insert(format!("{g}the"), 258.into());
    ids.insert("<|endoftext|>".into(), 259.into());
    let tokenizer = serde_json::json!({
        "normalizer": null,
        "pre_tokenizer": { "type": "ByteLevel", "add_prefix_space": false, "use_regex": true },
        "added_tokens": [{ "id": 259, "content": "<|endoftext|>", "special": true }],
        "model": { "type": "BPE", "vocab": ids, "merges": [format!("{g} t"), "h e", format!("{g}t he")] },
    });
    let config = if arch == "gpt2" {
        serde_json::json!({
            "architectures": ["GPT2LMHeadModel"], "n_embd": dim, "n_head": 2, "n_layer": 1,
            "n_inner": hidden, "vocab_size": vocab, "n_positions": 8, "bos_token_id": 259,
            "eos_token_id": 259, "activation_function": "gelu_new",
        })
    } else {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": dim, "num_attention_heads": 2,
            "num_key_value_heads": 1, "num_hidden_layers": 1, "intermediate_size": hidden,
            "vocab_size": vocab, "max_position_embeddings": 8, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "tie_word_embeddings": false, "eos_token_id": 259,
        })
    };
    let shapes: Vec<(String, Vec<usize>)> = if arch == "gpt2" {
        let h = |s: &str| format!("transformer.h.0.{s}");
        vec![
            ("transformer.wte.weight".into(), vec![vocab, dim]),
            ("transformer.wpe.weight".into(), vec![8, dim]),
            (h("ln_1.weight"), vec![dim]),
            (h("ln_1.bias"), vec![dim]),
            (h("attn.c_attn.weight"), vec![dim, 3 * dim]),
            (h("attn.c_attn.bias"), vec![3 * dim]),
            (h("attn.c_proj.weight"), vec![dim, dim]),
            (h("attn.c_proj.bias"), vec![dim]),
            (h("ln_2.weight"), vec![dim]),
            (h("ln_2.bias"), vec![dim]),
            (h("mlp.c_fc.weight"), vec![dim, hidden]),
            (h("mlp.c_fc.bias"), vec![hidden]),
            (h("mlp.c_proj.weight"), vec![hidden, dim]),
            (h("mlp.c_proj.bias"), vec![dim]),
            ("transformer.ln_f.weight".into(), vec![dim]),
            ("transformer.ln_f.bias".into(), vec![dim]),
        ]
    } else {
        let l = |s: &str| format!("model.layers.0.{s}.weight");
        vec![
            ("model.embed_tokens.weight".into(), vec![vocab, dim]),
            (l("input_layernorm"), vec![dim]),
            (l("self_attn.q_proj"), vec![dim, dim]),
            (l("self_attn.k_proj"), vec![dim / 2, dim]),
            (l("self_attn.v_proj"), vec![dim / 2, dim]),
            (l("self_attn.o_proj"), vec![dim, dim]),
            (l("post_attention_layernorm"), vec![dim]),
            (l("mlp.gate_proj"), vec![hidden, dim]),
            (l("mlp.down_proj"), vec![dim, hidden]),
            (l("mlp.up_proj"), vec![hidden, dim]),
            ("model.norm.weight".into(), vec![dim]),
            ("lm_head.weight".into(), vec![vocab, dim]),
        ]
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, shape)| {
            let n: usize = shape.iter().product();
            (0..n)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let x = if shape.len() == 1 {
                        1.0
                    } else {
                        (state >> 40) as f32 / 16_777_216.0 - 0.5
                    };
                    half::f16::from_f32(x).to_le_bytes()
                })
                .collect()
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = shapes
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F16, shape.clone(), bytes)
                    .unwrap_or_else(|e| panic!("seed tensor {name}: {e}"));
            (name.clone(), view)
        })
        .collect();
    let st =
        safetensors::serialize(views, None).unwrap_or_else(|e| panic!("seed safetensors: {e}"));
    chispa_fuzz::pack_hf(config.to_string().as_bytes(), tokenizer.to_string().as_bytes(), &st)
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for d in ["parse_resealed", "parse_raw", "tokenizer", "llama2c", "hf", "gguf"] {
        fs::create_dir_all(root.join(d))?;
    }
    let image = chispa_fuzz::tiny_image(1);
    fs::write(root.join("parse_resealed/tiny.chispa"), &image)?;
    fs::write(root.join("parse_raw/tiny.chispa"), &image)?;
    for (i, text) in ["Once upon a time", "", "  the café 🙂\n", "and and and"].iter().enumerate()
    {
        fs::write(root.join(format!("tokenizer/text{i}")), text)?;
    }
    let model = chispa_fuzz::tiny_model(1);
    let ckpt = llama2c_checkpoint(&model);
    let tok = llama2c_tokenizer(&model.vocab);
    // First four bytes: the checkpoint's length.
    let mut seed = (ckpt.len() as u32).to_le_bytes().to_vec();
    seed.extend(&ckpt);
    seed.extend(&tok);
    fs::write(root.join("llama2c/tiny"), &seed)?;
    // The seeds must convert, or the fuzzer starts outside the code worth reaching.
    let dir = std::env::temp_dir().join(format!("chispa-gen-corpus-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    for arch in ["gpt2", "llama"] {
        let seed = hf_seed(arch);
        let names = ["config.json", "tokenizer.json", "model.safetensors"];
        for (name, bytes) in names.iter().zip(chispa_fuzz::unpack_hf(&seed)) {
            fs::write(dir.join(name), bytes)?;
        }
        if let Err(e) = chispa_tools::hf::read_dir(&dir) {
            panic!("the {arch} seed must convert: {e:#}");
        }
        fs::write(root.join(format!("hf/{arch}")), seed)?;
    }
    fs::remove_dir_all(&dir)?;
    for (ty, name) in [(GgufType::F32, "f32"), (GgufType::Q8_0, "q8_0")] {
        let seed = match chispa_tools::gguf_writer::write(&model, ty) {
            Ok(seed) => seed,
            Err(e) => panic!("the {name} GGUF seed must be written: {e:#}"),
        };
        if let Err(e) = chispa_tools::gguf::read(&seed) {
            panic!("the {name} GGUF seed must convert: {e:#}");
        }
        fs::write(root.join(format!("gguf/{name}.gguf")), seed)?;
    }
    println!(
        "image {} bytes, checkpoint {} + tokenizer {} bytes",
        image.len(),
        ckpt.len(),
        tok.len()
    );
    Ok(())
}

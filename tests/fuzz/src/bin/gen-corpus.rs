//! Writes the seed corpora (small files made here, from no shared data) into `corpus/`.

use std::fs;
use std::path::Path;

fn llama2c_checkpoint(model: &chispa_tools::source::SourceModel) -> Vec<u8> {
    let p = &model.params;
    let mut out = Vec::new();
    for v in [p.dim, p.hidden_dim, p.n_layers, p.n_heads, p.n_kv_heads, p.vocab_size, p.max_seq_len] {
        out.extend((v as i32).to_le_bytes());
    }
    for name in ["tok_embeddings", "attention_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3", "norm"] {
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

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for d in ["parse_resealed", "parse_raw", "tokenizer", "llama2c"] {
        fs::create_dir_all(root.join(d))?;
    }
    let image = chispa_fuzz::tiny_image(1);
    fs::write(root.join("parse_resealed/tiny.chispa"), &image)?;
    fs::write(root.join("parse_raw/tiny.chispa"), &image)?;
    for (i, text) in ["Once upon a time", "", "  the café 🙂\n", "and and and"].iter().enumerate() {
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
    println!("image {} bytes, checkpoint {} + tokenizer {} bytes", image.len(), ckpt.len(), tok.len());
    Ok(())
}

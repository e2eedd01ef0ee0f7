//! A human-readable description of a `.chispa` file.

use std::fmt::Write;

use chispa_core::format::{groups_per_row, DType};
use chispa_core::model::Weights;
use chispa_core::{Model, SessionOptions};

/// Header, tensors, tokenizer summary and memory plans for a few context lengths.
pub fn describe(model: &Model<'_>) -> String {
    let c = model.config();
    let h = model.header();
    let t = model.tokenizer();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "format      .chispa v{}.{}, {} bytes, crc32 {:#010x}",
        h.version_major, h.version_minor, h.file_bytes, h.checksum
    );
    let _ = writeln!(
        s,
        "arch        {:?}: dim {}, hidden {}, layers {}, heads {} (kv {}), head size {}",
        c.arch,
        c.dim,
        c.hidden_dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        c.head_size()
    );
    let _ = writeln!(
        s,
        "context     {} tokens max; rope theta {}; norm eps {:e}",
        c.max_seq_len, c.rope_theta, c.norm_eps
    );
    let weights = match c.dtype {
        DType::F32 => "f32".to_string(),
        DType::I8 => {
            "int8, row scale and u8 multiplier per group of inputs (group per tensor below)"
                .to_string()
        }
        DType::I4 => "int4 or int8 per tensor, row scale and u8 multiplier per group of inputs \
                      (type and group per tensor below)"
            .to_string(),
    };
    let _ = writeln!(
        s,
        "weights     {weights}; classifier {}",
        if c.shared_classifier { "shared with embedding" } else { "separate" }
    );
    let _ = writeln!(
        s,
        "parameters  {} ({} matmul MACs per token)",
        c.parameter_count(),
        c.matmul_macs_per_token()
    );
    let _ = writeln!(s, "\ntensors");
    for i in 0..h.n_tensors as usize {
        let Some(e) = model.tensor_entry(i) else { break };
        let m = model.matrix(i);
        let name = chispa_core::format::TensorKind::from_code(e.kind).map_or("?", |k| k.name());
        let kind = match m.weights {
            Weights::F32(_) => "f32".to_string(),
            Weights::I8 { .. } => {
                format!("int8 g{} ×{}", m.group, m.rows * groups_per_row(m.cols, m.group))
            }
            Weights::I4 { .. } => {
                format!("int4 g{} ×{}", m.group, m.rows * groups_per_row(m.cols, m.group))
            }
        };
        let _ = writeln!(
            s,
            "  {:>3}  layer {:>2}  {:<15} [{:>5}, {:>5}]  {:<18} {:>8} bytes @ {}",
            i,
            e.layer,
            name,
            e.rows,
            e.cols,
            kind,
            e.data_len + e.scales_len,
            e.data_offset
        );
    }
    let bos = t.bos().map_or("none".into(), |b| b.to_string());
    let eos = t.eos().map_or("none".into(), |b| b.to_string());
    let _ = writeln!(s, "\ntokenizer   {} tokens, longest piece {} bytes, BOS {bos}, EOS {eos}, stop ids {:?}, byte fallback {}", t.vocab_size(), t.max_piece_len(), model.stop_ids(), if t.has_byte_fallback() { "yes" } else { "no" });
    let _ = writeln!(s, "\nmemory plan (f32 KV cache; weights stay in flash/mmap)");
    let mut ctxs = vec![64, 256, c.max_seq_len];
    ctxs.retain(|n| *n <= c.max_seq_len);
    ctxs.dedup();
    for ctx in ctxs {
        if let Ok(p) = model.plan(&SessionOptions { context: ctx, ..Default::default() }) {
            let _ = writeln!(
                s,
                "  context {:>6}: arena {:>10} bytes (KV cache {}, scratch {})",
                ctx, p.arena_bytes, p.kv_cache_bytes, p.scratch_bytes
            );
        }
    }
    s
}

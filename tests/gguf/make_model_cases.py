"""Writes whole-model GGUF files of the random-weight checkpoints tests/hf/make_tiny.py made
(tests/data/qwen2-tiny, tests/data/qwen3-tiny), the way llama.cpp lays them out: tensor names
from the `gguf` package's own Hugging Face name map, metadata under the architecture's
prefix, the Hugging Face (rotate_half) row order that llama.cpp keeps for these NEOX-RoPE
architectures, 1-D tensors in F32.

  tests/data/gguf/qwen2-tiny.f16.gguf   every matrix F16 (the checkpoint's own precision)
  tests/data/gguf/qwen2-tiny.q4_0.gguf  every matrix Q4_0 (gguf.quants.quantize)
  tests/data/gguf/qwen3-tiny.f16.gguf
  tests/data/gguf/qwen3-tiny.q8_0.gguf

The vocabulary is a made-up one of the model's size ("t0", "t1", ...; llama-style scores):
the tests feed token ids, the tokenizers are tested elsewhere. Requires
`pip install gguf numpy safetensors`. Run from the repository root:
python3 tests/gguf/make_model_cases.py
"""

import json
import pathlib

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize
from safetensors.numpy import load_file

ARCH = {"qwen2": gguf.MODEL_ARCH.QWEN2, "qwen3": gguf.MODEL_ARCH.QWEN3}


def write(name, kind, qtype, out):
    src = pathlib.Path("tests/data") / name
    cfg = json.loads((src / "config.json").read_text())
    tensors = load_file(str(src / "model.safetensors"))
    n_layers = cfg["num_hidden_layers"]
    names = gguf.get_tensor_name_map(ARCH[kind], n_layers)
    w = gguf.GGUFWriter(str(out), kind)
    w.add_name(name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    if "head_dim" in cfg:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    vocab = cfg["vocab_size"]
    w.add_tokenizer_model("llama")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([gguf.TokenType.NORMAL] * vocab)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_add_bos_token(True)
    for hf_name, t in tensors.items():
        gname = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert gname is not None, hf_name
        t = t.astype(np.float32)
        if t.ndim == 1:
            w.add_tensor(gname, t)
        elif qtype == T.F16:
            w.add_tensor(gname, t.astype(np.float16))
        else:
            q = quantize(t, qtype)
            w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(out, out.stat().st_size, "bytes")


def main():
    out = pathlib.Path("tests/data/gguf")
    out.mkdir(parents=True, exist_ok=True)
    for name, kind, qtype, suffix in [
        ("qwen2-tiny", "qwen2", T.F16, "f16"),
        ("qwen2-tiny", "qwen2", T.Q4_0, "q4_0"),
        ("qwen3-tiny", "qwen3", T.F16, "f16"),
        ("qwen3-tiny", "qwen3", T.Q8_0, "q8_0"),
    ]:
        write(name, kind, qtype, out / f"{name}.{suffix}.gguf")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Random-weight tiny checkpoints of the architectures chispa converts, and their reference
outputs from Hugging Face transformers.

For each architecture this writes `tests/data/<name>/`: `config.json`, `model.safetensors`
(f16 weights; the reference runs them widened to f32), `reference.json` (format
llm-reference/v1 as `reference/hf/*/reference.json`, prompt ids and greedy ids, without the
logits) and `reference.f32`: the f32 logits after every prefix, teacher-forced, with eager
attention, little-endian, case after case, `[len(input_ids), vocab]` each.

The tokenizer is llama-tiny's (`$CHISPA_DATA/reference/hf/llama-tiny/tokenizer.json`, a
sentencepiece-style BPE with 512 tokens); it is read here and at test time, never copied
into the repository.

    pip install torch transformers safetensors tokenizers
    python3 tests/hf/make_tiny.py [qwen2-tiny qwen3-tiny ...]

Everything is seeded: the same versions give the same bytes.
"""

import json
import os
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CHISPA_DATA", ROOT.parent / "shared"))
TOKENIZER = DATA / "reference/hf/llama-tiny/tokenizer.json"
OUT = ROOT / "tests/data"

VOCAB, BOS, EOS = 512, 1, 2
PROMPTS = [
    ("p0", "This License applies to any program or other work"),
    ("p1", "Hello world"),
    ("p2", "  two leading spaces and  double  spaces"),
    ("p3", "Version 2.0 (c) 1991-2007; see <https://fsf.org/>!\nNext line"),
    ("p4", "Unicode: café, naïve, 東京 🙂"),
]
GREEDY = 16
SEED = 1234
STD = 0.3  # large, as llama-tiny's: attention far from uniform, so errors show


def common(**extra):
    return dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=BOS,
        eos_token_id=EOS,
        **extra,
    )


def qwen2():
    rope = {"rope_type": "default", "rope_theta": 1000000.0}
    return transformers.Qwen2Config(**common(rope_parameters=rope, use_sliding_window=False))


def qwen3():
    rope = {"rope_type": "default", "rope_theta": 1000000.0}
    return transformers.Qwen3Config(
        **common(rope_parameters=rope, head_dim=16, attention_bias=False, use_sliding_window=False)
    )


def gpt_neo():
    # One global and one local layer; the window is longer than every reference sequence
    # (chispa limits the context to it) and shorter than the position table.
    return transformers.GPTNeoConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=8,
        attention_types=[[["global", "local"], 1]],
        window_size=96,
        max_position_embeddings=128,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )


MODELS = {"qwen2-tiny": qwen2, "qwen3-tiny": qwen3, "gpt-neo-tiny": gpt_neo}


def randomize(model, unscaled_attention):
    """Every weight random (biases and norms too, so a wrong mapping shows), f16-exact.

    With unscaled attention scores (GPT-Neo) q and k get `STD / head_size^(1/4)`, so the
    scores are distributed as the scaled ones of the other models."""
    g = torch.Generator().manual_seed(SEED)
    head = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * STD
            if unscaled_attention and ("q_proj" in name or "k_proj" in name):
                noise /= head**0.25
            if "norm" in name or (".ln_" in name and name.endswith(".weight")):
                p.copy_(1.0 + noise)
            else:
                p.copy_(noise)
            p.copy_(p.half().float())


def fmt(x):
    return float(f"{x:.7g}")


def make(name):
    config = MODELS[name]()
    config._attn_implementation = "eager"
    torch.manual_seed(SEED)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    randomize(model, unscaled_attention=config.model_type == "gpt_neo")
    config.architectures = [type(model).__name__]
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    state = {
        k: v.half().contiguous()
        for k, v in model.state_dict().items()
        if v.is_floating_point() and not (config.tie_word_embeddings and k == "lm_head.weight")
    }
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})

    # The reference runs what is on disk.
    model = transformers.AutoModelForCausalLM.from_pretrained(
        out, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    tok = Tokenizer.from_file(str(TOKENIZER))
    cases, rows = [], []
    with torch.no_grad():
        for case, prompt in PROMPTS:
            ids = [BOS] + tok.encode(prompt, add_special_tokens=False).ids
            seq = list(ids)
            for _ in range(GREEDY):
                logits = model(torch.tensor([seq])).logits[0, -1]
                seq.append(int(torch.argmax(logits)))
            logits = model(torch.tensor([seq])).logits[0]
            top2 = torch.topk(logits[len(ids) - 1 : -1], 2).values
            rows.append(logits.contiguous())
            cases.append(
                {
                    "name": case,
                    "prompt": prompt,
                    "add_bos": True,
                    "prompt_ids": ids,
                    "greedy_ids": seq[len(ids) :],
                    "input_ids": seq,
                    "greedy_margins": [fmt(float(a - b)) for a, b in top2],
                }
            )
    ref = {
        "format": "llm-reference/v1",
        "model": name,
        "source": f"HF transformers {transformers.__version__} {config.architectures[0]} "
        f"(eager attention, float32), torch {torch.__version__}",
        "hf_folder": f"tests/data/{name}",
        "vocab_size": VOCAB,
        "bos_id": BOS,
        "eos_id": EOS,
        "seed": SEED,
        "init_std": STD,
        "notes": "made by tests/hf/make_tiny.py with llama-tiny's tokenizer.json. "
        "prompt_ids = encode(prompt, add_special_tokens=False) with BOS prepended; "
        f"greedy_ids = {GREEDY} argmax tokens; input_ids = prompt_ids + greedy_ids; "
        "logits (in reference.f32) [t] = logits after input_ids[0..=t] (one teacher-forced pass).",
        "cases": cases,
    }
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    (out / "reference.f32").write_bytes(torch.cat(rows).numpy().astype("<f4").tobytes())
    print(f"{name}: {out} ({sum(p.numel() for p in model.parameters())} parameters)")


if __name__ == "__main__":
    for name in sys.argv[1:] or list(MODELS):
        make(name)

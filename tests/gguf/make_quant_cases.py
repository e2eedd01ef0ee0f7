"""Writes tests/data/gguf/quants.gguf, one [2, 256] tensor per ggml block type (Q4_0, Q4_1,
Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), and quants.json with the values numpy dequantizes
them to (the `gguf` package's reference `gguf.quants.dequantize`).

Q4_0 … Q8_0 are quantized by `gguf.quants.quantize` from seeded random weights; the package
cannot quantize k-quants, so their blocks are seeded random bytes with finite f16 scales
(every byte pattern is a valid block). Requires `pip install gguf numpy`. Run from the
repository root: python3 tests/gguf/make_quant_cases.py
"""

import json
import pathlib

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROWS, COLS = 2, 256
BLOCKS = {T.Q4_K: (256, 144, [0, 2]), T.Q5_K: (256, 176, [0, 2]), T.Q6_K: (256, 210, [208])}


def main():
    rng = np.random.default_rng(14)
    out = pathlib.Path("tests/data/gguf")
    out.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out / "quants.gguf"), "llama")
    expected = {}
    for t in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]:
        if t in BLOCKS:
            elems, size, halves = BLOCKS[t]
            raw = rng.integers(0, 256, size=(ROWS, COLS // elems * size), dtype=np.uint8)
            for r in range(ROWS):
                for b in range(COLS // elems):
                    for h in halves:
                        v = np.array([rng.uniform(-0.05, 0.05)], dtype=np.float16).view(np.uint8)
                        raw[r, b * size + h : b * size + h + 2] = v
        else:
            weights = rng.normal(0, 0.3, size=(ROWS, COLS)).astype(np.float32)
            raw = quantize(weights, t)
        values = dequantize(raw, t).astype(np.float32).reshape(ROWS, COLS)
        assert np.all(np.isfinite(values))
        name = f"{t.name.lower()}.weight"
        w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=t)
        expected[name] = {"type": t.name, "ggml_type": int(t), "rows": ROWS, "cols": COLS,
                          "values": [float(x) for x in values.reshape(-1)]}
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    meta = {"gguf_version": getattr(gguf, "__version__", "?"), "numpy_version": np.__version__}
    (out / "quants.json").write_text(json.dumps({**meta, "tensors": expected}) + "\n")
    print(f"{out}: {len(expected)} tensors")


if __name__ == "__main__":
    main()

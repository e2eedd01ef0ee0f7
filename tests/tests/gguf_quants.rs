//! ggml block types read from a GGUF file made by the `gguf` Python package
//! (`tests/gguf/make_quant_cases.py`): every element within 1e-4 of numpy's reference
//! dequantization of the same file (`tests/data/gguf/quants.json`).

use std::path::Path;

use chispa_tools::gguf::Gguf;
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    #[serde(rename = "type")]
    name: String,
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

#[derive(Deserialize)]
struct Cases {
    tensors: std::collections::BTreeMap<String, Expected>,
}

#[test]
fn block_types_dequantize_as_numpy_does() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gguf");
    let read = |f: &str| {
        std::fs::read(dir.join(f)).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (made by tests/gguf/make_quant_cases.py)",
                dir.join(f).display()
            )
        })
    };
    let file = read("quants.gguf")?;
    let cases: Cases = serde_json::from_slice(&read("quants.json")?)?;
    let g = Gguf::parse(&file)?;
    let mut names: Vec<&str> = cases.tensors.values().map(|e| e.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"]);
    for (tensor, e) in &cases.tensors {
        let got = g.tensor(tensor, e.rows, e.cols)?;
        assert_eq!(got.len(), e.values.len(), "{tensor}");
        let worst = got.iter().zip(&e.values).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{}: max |error| {worst}", e.name);
        assert!(e.values.iter().any(|v| *v != 0.0), "{tensor}: all zero");
    }
    Ok(())
}

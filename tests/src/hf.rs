//! Hugging Face reference checkpoints (`reference/hf/*`): conversion in memory, and
//! variants of a checkpoint written at test time (other config forms, dtypes, shards).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chispa_core::format::DType;
use chispa_runner::data::data_file;
use chispa_tools::aligned::AlignedBytes;
use chispa_tools::hf;
use chispa_tools::writer::{self, Groups, WriteOptions};
use safetensors::{Dtype, SafeTensors};

use crate::Reference;

/// The folder `reference/hf/NAME` in the data directory.
///
/// # Errors
/// The data directory is missing.
pub fn hf_dir(name: &str) -> Result<PathBuf> {
    let config = data_file(&format!("reference/hf/{name}/config.json"))?;
    Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// The `reference.json` of `reference/hf/NAME`.
///
/// # Errors
/// As [`crate::reference`].
pub fn hf_reference(name: &str) -> Result<Reference> {
    crate::reference(&format!("reference/hf/{name}/reference.json"))
}

/// Converts a folder in memory as `chispa-convert hf` does by default (int8: calibrated
/// groups).
///
/// # Errors
/// Whatever the converter refuses.
pub fn convert_dir(dir: &Path, dtype: DType) -> Result<AlignedBytes> {
    convert_dir_with(dir, &WriteOptions::new(dtype, None))
}

/// Converts a folder to int8 with the fixed groups: for tests where the groups do not
/// matter (tokenizers, malformed files), without the calibration passes.
///
/// # Errors
/// Whatever the converter refuses.
pub fn convert_dir_fixed(dir: &Path) -> Result<AlignedBytes> {
    convert_dir_with(
        dir,
        &WriteOptions { dtype: DType::I8, groups: Groups::Fixed, ..Default::default() },
    )
}

/// Converts a folder in memory with `opts`.
///
/// # Errors
/// Whatever the converter refuses.
pub fn convert_dir_with(dir: &Path, opts: &WriteOptions) -> Result<AlignedBytes> {
    let c = hf::read_dir(dir)?;
    Ok(writer::build(&c.model, opts, |_, _| {})?.0)
}

/// Tensors by name: shape and f32 elements.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// The f32 tensors of a safetensors file, by name, with shapes.
///
/// # Errors
/// An unreadable or malformed file, or a non-f32 tensor.
pub fn read_f32_tensors(path: &Path) -> Result<Tensors> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)?;
    let mut out = HashMap::new();
    for (name, view) in st.iter() {
        anyhow::ensure!(view.dtype() == Dtype::F32, "{name} is not f32");
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name.to_string(), (view.shape().to_vec(), data));
    }
    Ok(out)
}

/// How to store tensors in a written checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
}

/// Writes `tensors` as safetensors: one `model.safetensors`, or `shards` files with a
/// `model.safetensors.index.json`.
///
/// # Errors
/// The directory cannot be written.
pub fn write_checkpoint(dir: &Path, tensors: &Tensors, store: Store, shards: usize) -> Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let encode = |v: &[f32]| -> Vec<u8> {
        match store {
            Store::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Store::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
            Store::Bf16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
        }
    };
    let dtype = match store {
        Store::F32 => Dtype::F32,
        Store::F16 => Dtype::F16,
        Store::Bf16 => Dtype::BF16,
    };
    let per = names.len().div_ceil(shards.max(1));
    let mut weight_map = serde_json::Map::new();
    for (s, chunk) in names.chunks(per).enumerate() {
        let file = if shards <= 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{shards:05}.safetensors", s + 1)
        };
        let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = chunk
            .iter()
            .map(|n| (n.to_string(), tensors[*n].0.clone(), encode(&tensors[*n].1)))
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = encoded
            .iter()
            .map(|(n, shape, data)| {
                Ok((n.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), data)?))
            })
            .collect::<Result<_>>()?;
        safetensors::serialize_to_file(views, None, &dir.join(&file))?;
        for n in chunk {
            weight_map.insert(n.to_string(), serde_json::Value::String(file.clone()));
        }
    }
    if shards > 1 {
        let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())?;
    }
    Ok(())
}

/// A temporary directory, removed when dropped (also when a test fails); derefs to its path.
#[derive(Debug)]
pub struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh empty temporary directory for one test.
///
/// # Errors
/// The directory cannot be created.
pub fn temp_dir(name: &str) -> Result<TestDir> {
    let prefix = format!("chispa-tests-{name}-");
    Ok(TestDir(tempfile::Builder::new().prefix(&prefix).tempdir()?))
}

/// Copies the tokenizer files of `from` into `to`.
///
/// # Errors
/// Unreadable or unwritable files.
pub fn copy_tokenizer(from: &Path, to: &Path) -> Result<()> {
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        if from.join(f).is_file() {
            std::fs::copy(from.join(f), to.join(f))?;
        }
    }
    Ok(())
}

/// A random-weight checkpoint made by `tests/hf/make_tiny.py` and committed under
/// `tests/data/NAME`, in a temporary folder with llama-tiny's tokenizer (shared data, read
/// from the data directory, not committed).
///
/// # Errors
/// The committed folder or the data directory is missing.
pub fn tiny_dir(name: &str) -> Result<TestDir> {
    let src = tiny_data(name);
    let dir = temp_dir(name)?;
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f))
            .with_context(|| format!("copying {}", src.join(f).display()))?;
    }
    copy_tokenizer(&hf_dir("llama-tiny")?, &dir)?;
    Ok(dir)
}

/// The committed folder `tests/data/NAME`.
pub fn tiny_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

/// The reference of `tests/data/NAME` (transformers' output, by `tests/hf/make_tiny.py`):
/// `reference.json`, with the logits of every case read from `reference.f32` (little-endian,
/// case after case, `[input_ids.len(), vocab]` each).
///
/// # Errors
/// A missing or malformed file, or a logits file of another length.
pub fn tiny_reference(name: &str) -> Result<Reference> {
    let path = tiny_data(name).join("reference.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut r: Reference =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let path = tiny_data(name).join("reference.f32");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let rows: usize = r.cases.iter().map(|c| c.input_ids.len()).sum();
    anyhow::ensure!(
        bytes.len() == rows * r.vocab_size * 4,
        "{}: {} bytes, the cases need {rows} rows of {} f32",
        path.display(),
        bytes.len(),
        r.vocab_size
    );
    for c in &mut r.cases {
        c.logits =
            (0..c.input_ids.len()).map(|_| values.by_ref().take(r.vocab_size).collect()).collect();
    }
    Ok(r)
}

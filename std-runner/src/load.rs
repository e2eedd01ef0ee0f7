//! Loading a model: `.chispa` files are memory-mapped (never copied); llama2.c checkpoints are
//! converted in memory, so llama2.c users switch with no extra step.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chispa_core::format::MAGIC;
use chispa_core::Model;
use chispa_tools::aligned::AlignedBytes;
use chispa_tools::llama2c;
use chispa_tools::writer::{self, WriteOptions};

use crate::data;

/// The bytes of a model, wherever they live.
#[derive(Debug)]
pub enum ModelBytes {
    /// A memory-mapped `.chispa` file (page-aligned).
    Mapped(memmap2::Mmap),
    /// A model built in memory.
    Owned(AlignedBytes),
}

impl ModelBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Owned(a) => a.as_slice(),
        }
    }

    /// Validates the bytes.
    ///
    /// # Errors
    /// The core's [`chispa_core::FormatError`], with `what` as context.
    pub fn parse(&self, what: &str) -> Result<Model<'_>> {
        Model::parse(self.as_slice())
            .with_context(|| format!("{what} is not a valid .chispa model"))
    }
}

/// Where a model comes from.
#[derive(Clone, Debug, Default)]
pub struct ModelSource {
    /// A `.chispa` file or a llama2.c checkpoint; `None` for the default model.
    pub path: Option<PathBuf>,
    /// The tokenizer, for a llama2.c checkpoint.
    pub tokenizer: Option<PathBuf>,
    /// How to convert a llama2.c checkpoint in memory.
    pub convert: WriteOptions,
}

/// A loaded model's bytes and a name for messages.
#[derive(Debug)]
pub struct Loaded {
    /// The bytes.
    pub bytes: ModelBytes,
    /// What was loaded, for messages.
    pub name: String,
}

fn starts_with_magic(path: &Path) -> Result<bool> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(n == 4 && head == MAGIC)
}

fn map(path: &Path) -> Result<ModelBytes> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
    if len == 0 {
        return Ok(ModelBytes::Owned(AlignedBytes::zeroed(0)));
    }
    // SAFETY: the file is opened read-only and the map is only read; chispa does not guard
    // against another process truncating the file while it runs (as every mmap user).
    #[allow(unsafe_code)]
    let m = unsafe { memmap2::Mmap::map(&f) };
    Ok(ModelBytes::Mapped(m.with_context(|| format!("cannot map {}", path.display()))?))
}

/// Converts a llama2.c checkpoint in memory.
///
/// # Errors
/// Unreadable files or anything the converter refuses.
pub fn convert_llama2c(ckpt: &Path, tok: &Path, opts: &WriteOptions) -> Result<AlignedBytes> {
    let c = std::fs::read(ckpt).with_context(|| format!("cannot read {}", ckpt.display()))?;
    let t = std::fs::read(tok).with_context(|| format!("cannot read {}", tok.display()))?;
    let source =
        llama2c::read(&c, &t).with_context(|| format!("cannot convert {}", ckpt.display()))?;
    Ok(writer::build(&source, opts, |_, _| {})?.0)
}

/// A Hugging Face folder or a GGUF file converted in memory; `None` for anything else.
fn convert_foreign(path: &Path, opts: &WriteOptions) -> Result<Option<AlignedBytes>> {
    let source = if path.is_dir() {
        chispa_tools::hf::read_dir(path)
            .with_context(|| format!("cannot convert {}", path.display()))?
            .model
    } else if path.extension().is_some_and(|e| e == "gguf") {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        chispa_tools::gguf::read(&bytes)
            .with_context(|| format!("cannot convert {}", path.display()))?
            .0
    } else {
        return Ok(None);
    };
    Ok(Some(writer::build(&source, opts, |_, _| {})?.0))
}

/// Loads a model from `source`.
///
/// # Errors
/// Missing or unreadable files, a llama2.c checkpoint without `--tokenizer`, or a failed
/// conversion. The bytes are not validated here: call [`ModelBytes::parse`].
pub fn load(source: &ModelSource) -> Result<Loaded> {
    let Some(path) = &source.path else {
        let (ckpt, tok) = data::default_model()?;
        let bytes = ModelBytes::Owned(convert_llama2c(&ckpt, &tok, &source.convert)?);
        return Ok(Loaded {
            bytes,
            name: format!("{} ({})", ckpt.display(), source.convert.dtype.name()),
        });
    };
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    if let Some(bytes) = convert_foreign(path, &source.convert)? {
        return Ok(Loaded {
            bytes: ModelBytes::Owned(bytes),
            name: format!(
                "{} ({}, converted in memory)",
                path.display(),
                source.convert.dtype.name()
            ),
        });
    }
    let is_chispa = path.extension().is_some_and(|e| e == "chispa") || starts_with_magic(path)?;
    if is_chispa {
        if source.tokenizer.is_some() {
            bail!("--tokenizer is only for llama2.c checkpoints: {} holds its own", path.display());
        }
        return Ok(Loaded { bytes: map(path)?, name: path.display().to_string() });
    }
    let Some(tok) = &source.tokenizer else {
        bail!(
            "{} is not a .chispa file; if it is a llama2.c checkpoint, give its tokenizer with --tokenizer TOK.bin",
            path.display()
        );
    };
    let bytes = ModelBytes::Owned(convert_llama2c(path, tok, &source.convert)?);
    Ok(Loaded {
        bytes,
        name: format!("{} ({}, converted in memory)", path.display(), source.convert.dtype.name()),
    })
}

//! Loading a model: `.chispa` files are memory-mapped (never copied); llama2.c checkpoints are
//! converted in memory, so llama2.c users switch with no extra step.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chispa_core::format::MAGIC;
use chispa_core::Model;
use chispa_tools::aligned::AlignedBytes;
use chispa_tools::source::{self, Input};
use chispa_tools::writer::{self, WriteOptions};

use crate::usage::UsageError;
use crate::{cache, data};

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
    /// How to convert a checkpoint (llama2.c, Hugging Face, GGUF).
    pub convert: WriteOptions,
    /// Whether `convert` was asked for: an error for a `.chispa` file, which is not converted.
    pub convert_given: bool,
    /// Convert a Hugging Face folder or GGUF file again instead of using the cache (an error
    /// for anything else, which is not cached).
    pub no_cache: bool,
}

/// A loaded model's bytes and a name for messages.
#[derive(Debug)]
pub struct Loaded {
    /// The bytes.
    pub bytes: ModelBytes,
    /// What was loaded, for messages.
    pub name: String,
    /// The files it was read from (none for the default model), which no output may
    /// replace.
    pub inputs: Vec<PathBuf>,
}

/// The files a model at `path` is read from: the path itself and, for a Hugging Face
/// folder, the files in it a conversion reads.
fn input_files(path: &Path, tokenizer: Option<&Path>) -> Vec<PathBuf> {
    let mut v = vec![path.to_path_buf()];
    v.extend(tokenizer.map(Path::to_path_buf));
    if path.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            v.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "safetensors")),
            );
        }
    }
    v
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
    let source = source::read(&Input::Llama2c { checkpoint: ckpt, tokenizer: tok })?.model;
    Ok(writer::build(&source, opts, |_, _| {})?.0)
}

/// Whether `path` is a Hugging Face folder or a GGUF file (converted, and cached).
fn is_foreign(path: &Path) -> bool {
    path.is_dir() || path.extension().is_some_and(|e| e == "gguf")
}

/// Converts a Hugging Face folder or a GGUF file in memory.
fn convert_foreign(path: &Path, opts: &WriteOptions) -> Result<AlignedBytes> {
    let input = if path.is_dir() { Input::Hf(path) } else { Input::Gguf(path) };
    let source = source::read(&input)?.model;
    Ok(writer::build(&source, opts, |_, _| {})?.0)
}

/// A Hugging Face folder or GGUF file: from the cache ([`crate::cache`]) when it holds this
/// conversion, else converted (and cached). One line on stderr says which.
fn load_foreign(path: &Path, source: &ModelSource) -> Result<Loaded> {
    let dtype = source.convert.dtype.name();
    let in_memory = |bytes| Loaded {
        bytes: ModelBytes::Owned(bytes),
        name: format!("{} ({dtype}, converted in memory)", path.display()),
        inputs: input_files(path, None),
    };
    let dir = match cache::dir() {
        Some(dir) if !source.no_cache => dir,
        _ => return Ok(in_memory(convert_foreign(path, &source.convert)?)),
    };
    let file = dir.join(format!("{}.chispa", cache::key(path, &source.convert)?));
    if file.is_file() {
        let bytes = map(&file)?;
        if Model::parse(bytes.as_slice()).is_ok() {
            eprintln!(
                "chispa: using the cached conversion of {} ({})",
                path.display(),
                file.display()
            );
            let mut inputs = input_files(path, None);
            inputs.push(file);
            return Ok(Loaded {
                bytes,
                name: format!("{} ({dtype}, cached)", path.display()),
                inputs,
            });
        }
    }
    let image = convert_foreign(path, &source.convert)?;
    let stored = std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .and_then(|()| writer::write_atomic(&file, image.as_slice()));
    match stored {
        Ok(()) => {
            eprintln!("chispa: converted {} and cached it as {}", path.display(), file.display())
        }
        Err(e) => eprintln!("chispa: converted {} (not cached: {e:#})", path.display()),
    }
    Ok(in_memory(image))
}

fn not_applicable(what: &str) -> anyhow::Error {
    UsageError(what.to_string()).into()
}

/// Loads a model from `source`.
///
/// # Errors
/// Missing or unreadable files, a llama2.c checkpoint without `--tokenizer`, or a failed
/// conversion; a [`UsageError`] for a setting that does not apply to the model (a tokenizer
/// for anything but a llama2.c checkpoint, conversion options for a `.chispa` file,
/// `--no-cache` for what is not cached). The bytes are not validated here: call [`ModelBytes::parse`].
pub fn load(source: &ModelSource) -> Result<Loaded> {
    let tokenizer_for = |what: &str| -> Result<()> {
        if source.tokenizer.is_some() {
            return Err(not_applicable(&format!(
                "--tokenizer is only for a llama2.c checkpoint: {what} has its own tokenizer"
            )));
        }
        Ok(())
    };
    let not_cached = |what: &str| -> Result<()> {
        if source.no_cache {
            return Err(not_applicable(&format!(
                "--no-cache is only for a Hugging Face folder or GGUF file: {what} is not cached"
            )));
        }
        Ok(())
    };
    let Some(path) = &source.path else {
        tokenizer_for("the default model")?;
        not_cached("the default model")?;
        let (ckpt, tok) = data::default_model()?;
        let bytes = ModelBytes::Owned(convert_llama2c(&ckpt, &tok, &source.convert)?);
        return Ok(Loaded {
            bytes,
            name: format!("{} ({})", ckpt.display(), source.convert.dtype.name()),
            inputs: vec![ckpt, tok],
        });
    };
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    if is_foreign(path) {
        tokenizer_for(&path.display().to_string())?;
        return load_foreign(path, source);
    }
    let is_chispa = path.extension().is_some_and(|e| e == "chispa") || starts_with_magic(path)?;
    if is_chispa {
        let what = format!("{} is a .chispa file", path.display());
        tokenizer_for(&what)?;
        not_cached(&what)?;
        if source.convert_given {
            return Err(not_applicable(&format!(
                "--dtype is only for a checkpoint to convert: {what} (convert the original again with chispa-convert)"
            )));
        }
        return Ok(Loaded {
            bytes: map(path)?,
            name: path.display().to_string(),
            inputs: input_files(path, None),
        });
    }
    not_cached(&path.display().to_string())?;
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
        inputs: input_files(path, Some(tok)),
    })
}

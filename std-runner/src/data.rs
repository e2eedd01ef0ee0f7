//! Where the shared data (models, reference outputs) lives.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The environment variable that points at the data directory.
pub const DATA_ENV: &str = "CHISPA_DATA";

/// Where users get the default model.
pub const DOWNLOAD_HINT: &str = "download stories260K.bin and tok512.bin from \
https://huggingface.co/karpathy/tinyllamas/tree/main/stories260K into DIR/models/stories260K/ \
(see README.md for their sha256 sums) and set CHISPA_DATA=DIR";

/// The data directory: `$CHISPA_DATA`, else `../shared` from the working directory, else
/// `../shared` beside this source tree.
///
/// # Errors
/// None of them exists; the message says where to get the data.
pub fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_ENV) {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return Ok(dir);
        }
        bail!("{DATA_ENV}={} is not a directory; {DOWNLOAD_HINT}", dir.display());
    }
    let candidates =
        [PathBuf::from("../shared"), Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")];
    for dir in candidates {
        if dir.join("models").is_dir() {
            return Ok(dir);
        }
    }
    bail!("no data directory found (looked for ../shared and {DATA_ENV}); {DOWNLOAD_HINT}")
}

/// A file inside the data directory, which must exist.
///
/// # Errors
/// The data directory or the file is missing.
pub fn data_file(relative: &str) -> Result<PathBuf> {
    let path = data_dir()?.join(relative);
    if !path.is_file() {
        bail!("{} is missing; {DOWNLOAD_HINT}", path.display());
    }
    Ok(path)
}

/// The default model: stories260K's checkpoint and tokenizer.
///
/// # Errors
/// As [`data_file`].
pub fn default_model() -> Result<(PathBuf, PathBuf)> {
    Ok((
        data_file("models/stories260K/stories260K.bin")?,
        data_file("models/stories260K/tok512.bin")?,
    ))
}

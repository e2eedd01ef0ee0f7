//! The converted-model cache: a Hugging Face folder or a GGUF file given as MODEL is converted
//! (and calibrated) once, then memory-mapped from `DIR/<key>.chispa`.
//!
//! The key is a SHA-256 of: the format version, the conversion options, the identity of the
//! `chispa` executable (its size and modification time: a rebuilt converter converts again),
//! and the names, sizes and bytes of the input files (for a folder: its `*.json` and
//! `*.safetensors` files). `DIR` is `$CHISPA_CACHE`, else `$XDG_CACHE_HOME/chispa`, else
//! `~/.cache/chispa`. Files are written atomically (a temporary file renamed into place), so
//! a concurrent or interrupted run never sees half a model; a cached file that no longer
//! parses is converted again.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chispa_core::format::{VERSION_MAJOR, VERSION_MINOR};
use chispa_tools::writer::WriteOptions;
use sha2::{Digest, Sha256};

/// The environment variable that names the cache directory.
pub const CACHE_ENV: &str = "CHISPA_CACHE";

/// The cache directory (see the module documentation); `None` when no variable gives one.
pub fn dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var(CACHE_ENV) {
        return Some(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("chispa"));
    }
    var("HOME").map(|h| h.join(".cache").join("chispa"))
}

/// The files a conversion of `path` reads: the file itself, or a folder's `*.json` and
/// `*.safetensors` files (sorted by name).
///
/// # Errors
/// The folder cannot be listed.
pub fn inputs(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let p = entry.with_context(|| format!("cannot list {}", path.display()))?.path();
        let wanted = p.extension().is_some_and(|e| e == "json" || e == "safetensors");
        if wanted && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// The cache key of converting `path` with `opts` (64 hex digits).
///
/// # Errors
/// An input file cannot be read.
pub fn key(path: &Path, opts: &WriteOptions) -> Result<String> {
    let mut h = Sha256::new();
    h.update(b"chispa converted-model cache 1\0");
    h.update(format!("format {VERSION_MAJOR}.{VERSION_MINOR}\0options {opts:?}\0").as_bytes());
    if let Some(meta) = std::env::current_exe().ok().and_then(|e| e.metadata().ok()) {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(format!("converter {} {mtime}\0", meta.len()).as_bytes());
    }
    for file in inputs(path)? {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut f = File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = f.metadata().with_context(|| format!("cannot stat {}", file.display()))?.len();
        h.update(format!("file {name} {len}\0").as_bytes());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).with_context(|| format!("cannot read {}", file.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_bytes_and_the_options() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("m.gguf");
        std::fs::write(&file, b"one")?;
        let a = key(&file, &WriteOptions::default())?;
        assert_eq!(a.len(), 64);
        assert_eq!(a, key(&file, &WriteOptions::default())?);
        let f32 = WriteOptions::new(chispa_core::DType::F32, None);
        assert_ne!(a, key(&file, &f32)?);
        std::fs::write(&file, b"two")?;
        assert_ne!(a, key(&file, &WriteOptions::default())?);
        Ok(())
    }

    #[test]
    fn a_folder_hashes_its_json_and_safetensors_files() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("config.json"), b"{}")?;
        std::fs::write(dir.path().join("model.safetensors"), b"x")?;
        std::fs::write(dir.path().join("README.md"), b"ignored")?;
        let names: Vec<_> = inputs(dir.path())?
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_owned())
            .collect();
        assert_eq!(names, ["config.json", "model.safetensors"]);
        Ok(())
    }
}

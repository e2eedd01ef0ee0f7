//! Files the commands read and write: one policy for every input and output.
//!
//! Inputs ([`read_input`]) must be regular files (a FIFO or a device is refused before it is
//! opened, so nothing blocks or reads forever).
//!
//! An output ([`check`], [`write()`]):
//!
//! * is refused when it is one of the command's inputs (the same file: same device and
//!   inode, whatever the path says), or when it exists and is not a regular file (a device,
//!   a FIFO, a directory: it is never replaced);
//! * is written to a temporary file in its own directory (`.chispa-NAME.PID.N.tmp`), synced,
//!   then renamed over the path, so a failure leaves any previous file untouched;
//! * gets the mode the umask gives a new file (0644 under umask 022), like any file a shell
//!   command creates;
//! * never leaves its temporary file behind on an error, and on SIGINT, SIGTERM or SIGHUP
//!   once [`remove_temps_on_signals`] is installed (the process then exits with 128 + the
//!   signal). SIGXFSZ (a file size limit) makes the write fail with an error instead of
//!   killing the process. SIGKILL cannot be handled: a temporary file of a killed process is
//!   removed by the next write to the same path, once that process is gone.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};

/// Temporary files being written, removed by the signal thread.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// SIGINT is handled by the command itself (`chispa run`): without a temporary file to
/// remove, the signal thread leaves it alone.
static SIGINT_ELSEWHERE: AtomicBool = AtomicBool::new(false);
static COUNTER: AtomicU64 = AtomicU64::new(0);
static INSTALLED: OnceLock<()> = OnceLock::new();

fn temps() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Installs (once) a thread that removes the temporary files of [`write()`] on SIGINT,
/// SIGTERM and SIGHUP and then exits with 128 + the signal, and makes SIGXFSZ a write error.
///
/// # Errors
/// The signals cannot be handled.
pub fn remove_temps_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGXFSZ])
        .context("cannot handle signals")?;
    let _ = INSTALLED.set(());
    std::thread::Builder::new()
        .name("remove-temps".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGXFSZ {
                    // The write that exceeded the limit fails with EFBIG; its error path
                    // removes the temporary file.
                    continue;
                }
                // Held until exit, so no new temporary file appears meanwhile.
                let mut list = temps();
                if sig == SIGINT && list.is_empty() && SIGINT_ELSEWHERE.load(Ordering::SeqCst) {
                    continue;
                }
                for p in list.drain(..) {
                    let _ = fs::remove_file(p);
                }
                std::process::exit(128 + sig);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Tells the signal thread that the command handles SIGINT itself (it still removes any
/// temporary file first, then exits).
pub fn sigint_handled_elsewhere() {
    SIGINT_ELSEWHERE.store(true, Ordering::SeqCst);
}

/// Reads an input file, refusing anything but a regular file before opening it.
///
/// # Errors
/// A missing, unreadable or non-regular file.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

/// [`read_input`] as UTF-8 text.
///
/// # Errors
/// As `read_input`, or the bytes are not UTF-8.
pub fn read_input_text(path: &Path) -> Result<String> {
    String::from_utf8(read_input(path)?)
        .map_err(|e| anyhow::anyhow!("{} is not UTF-8 text: {}", path.display(), e.utf8_error()))
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    false
}

/// Checks that `path` may be written by a command that reads `inputs`.
///
/// # Errors
/// `path` is one of `inputs` (or inside none of them but the same file), or exists and is
/// not a regular file.
pub fn check(path: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(meta) = fs::metadata(path) else {
        // Nothing there (or a dangling link): nothing to overwrite.
        return Ok(());
    };
    if !meta.is_file() {
        bail!(
            "{} exists and is not a regular file: refusing to replace it (write to a file path)",
            path.display()
        );
    }
    for input in inputs {
        let same = match fs::metadata(input) {
            Ok(m) => same_file(&meta, &m),
            Err(_) => false,
        } || matches!((fs::canonicalize(path), fs::canonicalize(input)), (Ok(a), Ok(b)) if a == b);
        if same {
            bail!(
                "{} is also an input ({}): refusing to overwrite it (choose another output path)",
                path.display(),
                input.display()
            );
        }
    }
    Ok(())
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn temp_prefix(path: &Path) -> OsString {
    let mut s = OsString::from(".chispa-");
    s.push(path.file_name().unwrap_or_default());
    s.push(".");
    s
}

/// Removes temporary files of earlier writes to `path` whose process is gone (killed by
/// SIGKILL, or a crash). Only on Linux, where `/proc` tells which processes exist.
fn remove_stale_temps(path: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = temp_prefix(path);
    let prefix = prefix.to_string_lossy();
    let Ok(entries) = fs::read_dir(dir_of(path)) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix(&*prefix).and_then(|r| r.strip_suffix(".tmp")) else {
            continue;
        };
        let mut parts = rest.rsplit('.');
        let (Some(_n), Some(pid)) = (parts.next(), parts.next()) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// A temporary file registered for removal; removed on drop unless persisted.
struct Temp {
    path: PathBuf,
    file: Option<File>,
}

impl Temp {
    fn create(target: &Path) -> Result<Self> {
        let dir = dir_of(target);
        let mut list = temps();
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut name = temp_prefix(target);
            name.push(format!("{}.{n}.tmp", std::process::id()));
            let path = dir.join(name);
            // `create_new` and the default mode 0666 minus the umask.
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    list.push(path.clone());
                    return Ok(Self { path, file: Some(file) });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create a file in {}", dir.display()))
                }
            }
        }
        bail!("cannot create a temporary file in {}", dir.display())
    }

    fn unregister(&self) {
        temps().retain(|p| p != &self.path);
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        drop(self.file.take());
        if fs::remove_file(&self.path).is_ok() || !self.path.exists() {
            self.unregister();
        }
    }
}

/// Writes `bytes` to `path` for a command that read `inputs`, by the policy of the
/// [module](self): checked, through a synced temporary file, renamed into place.
///
/// # Errors
/// A refused path ([`check`]), a directory that cannot be written, a full disk, a failed
/// sync or rename.
pub fn write(path: &Path, inputs: &[&Path], bytes: &[u8]) -> Result<()> {
    check(path, inputs)?;
    remove_stale_temps(path);
    let mut tmp = Temp::create(path)?;
    let file = tmp.file.as_mut().context("temporary file already closed")?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot write {} (sync)", path.display()))?;
    // Checked again: the path may have changed while the file was written.
    check(path, inputs)?;
    fs::rename(&tmp.path, path)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    tmp.unregister();
    // Renamed: nothing to remove any more.
    tmp.file = None;
    tmp.path = PathBuf::new();
    if let Ok(d) = File::open(dir_of(path)) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn an_input_and_a_directory_are_refused_and_a_new_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        fs::write(&input, b"input").unwrap();
        let e = write(&input, &[&input], b"x").unwrap_err();
        assert!(e.to_string().contains("also an input"), "{e}");
        assert_eq!(fs::read(&input).unwrap(), b"input");
        let e = write(dir.path(), &[], b"x").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let out = dir.path().join("out.bin");
        write(&out, &[&input], b"out").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"out");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 2, "no temporary file left");
    }

    #[test]
    fn a_stale_temporary_file_of_a_gone_process_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.chispa");
        // No process has pid 4294967295 (above the kernel's pid limit).
        let stale = dir.path().join(".chispa-m.chispa.4294967295.0.tmp");
        fs::write(&stale, b"partial").unwrap();
        let other = dir.path().join(".chispa-other.chispa.4294967295.0.tmp");
        fs::write(&other, b"partial").unwrap();
        write(&out, &[], b"m").unwrap();
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists());
        }
        assert!(other.exists(), "another output's temporary file is left alone");
    }
}

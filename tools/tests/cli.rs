//! `chispa-convert` as a user runs it: success, and failures that leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("CHISPA_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    assert!(
        dir.join("models/stories260K/stories260K.bin").is_file(),
        "stories260K not found under {}: set CHISPA_DATA to a directory with models/stories260K/ \
         (stories260K.bin and tok512.bin from huggingface.co/karpathy/tinyllamas, see README.md)",
        dir.display()
    );
    dir
}

fn convert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chispa-convert")).args(args).output().expect("runs")
}

/// A temporary directory, removed when dropped (also when the test fails).
#[derive(Debug)]
struct TestDir(tempfile::TempDir);

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

fn tempdir(name: &str) -> TestDir {
    let prefix = format!("chispa-convert-{name}-");
    TestDir(tempfile::Builder::new().prefix(&prefix).tempdir().expect("temp dir"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn assert_failed_cleanly(o: &Output, needle: &str, dir: &Path) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert_eq!(err.lines().filter(|l| l.contains("error")).count(), 1, "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.iter().all(|n| !n.to_string_lossy().starts_with(".chispa-")),
        "temp files left: {leftovers:?}"
    );
}

#[test]
fn converts_stories260k_and_inspects_it() {
    let data = data_dir().join("models/stories260K");
    let dir = tempdir("ok");
    let out = dir.join("s.chispa");
    let o = convert(&[
        "llama2c",
        s(&data.join("stories260K.bin")),
        "-t",
        s(&data.join("tok512.bin")),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(report.contains("layers.4.w2") && report.contains("SNR"), "{report}");
    let size = std::fs::metadata(&out).expect("written").len();
    assert!(size <= 300_000, "{size} bytes");
    let o = convert(&["inspect", s(&out)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("dim 64, hidden 172, layers 5, heads 8 (kv 4)"), "{text}");
    assert!(text.contains("context    256"), "{text}");
}

#[test]
fn truncated_checkpoint_fails_and_leaves_the_previous_file() {
    let data = data_dir().join("models/stories260K");
    let dir = tempdir("trunc");
    let ckpt = std::fs::read(data.join("stories260K.bin")).expect("read");
    let tok = s(&data.join("tok512.bin")).to_string();
    let out = dir.join("out.chispa");
    std::fs::write(&out, b"previous").expect("write");
    for cut in [0, 10, 28, 1000, ckpt.len() / 2, ckpt.len() - 1] {
        let bad = dir.join("bad.bin");
        std::fs::write(&bad, &ckpt[..cut]).expect("write");
        let o = convert(&["llama2c", s(&bad), "-t", &tok, "-o", s(&out)]);
        assert_failed_cleanly(&o, "truncated", &dir);
        assert_eq!(std::fs::read(&out).expect("still there"), b"previous");
    }
}

#[test]
fn tokenizer_of_the_wrong_size_fails_with_no_output() {
    let data = data_dir().join("models/stories260K");
    let dir = tempdir("tok");
    let tok = std::fs::read(data.join("tok512.bin")).expect("read");
    let out = dir.join("out.chispa");
    let ckpt = s(&data.join("stories260K.bin")).to_string();
    // One token short, and one token too many.
    let short = dir.join("short.bin");
    std::fs::write(&short, &tok[..tok.len() - 9]).expect("write");
    assert_failed_cleanly(
        &convert(&["llama2c", &ckpt, "-t", s(&short), "-o", s(&out)]),
        "tokenizer",
        &dir,
    );
    let long = dir.join("long.bin");
    let mut extra = tok.clone();
    extra.extend(0f32.to_le_bytes());
    extra.extend(1i32.to_le_bytes());
    extra.push(b'x');
    std::fs::write(&long, &extra).expect("write");
    assert_failed_cleanly(
        &convert(&["llama2c", &ckpt, "-t", s(&long), "-o", s(&out)]),
        "more tokens",
        &dir,
    );
    assert!(!out.exists(), "no output file after failures");
}

#[test]
fn missing_input_and_unwritable_output_are_named() {
    let data = data_dir().join("models/stories260K");
    let dir = tempdir("missing");
    let o =
        convert(&["llama2c", s(&dir.join("nope.bin")), "-t", "x", "-o", s(&dir.join("o.chispa"))]);
    assert_failed_cleanly(&o, "nope.bin", &dir);
    let o = convert(&[
        "llama2c",
        s(&data.join("stories260K.bin")),
        "-t",
        s(&data.join("tok512.bin")),
        "-o",
        s(&dir.join("no/such/dir/o.chispa")),
    ]);
    assert_failed_cleanly(&o, "no/such/dir", &dir);
}

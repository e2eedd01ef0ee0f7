//! The converter on malformed inputs, table-driven: every case is a one-line error with exit
//! code 1; the output path holds nothing, or the previous file untouched; the inputs are
//! untouched; no temporary file is left behind. Inputs are small synthetic llama2.c files made
//! here (no shared data needed).

use std::path::Path;
use std::process::{Command, Output};

const DIM: usize = 8;
const HIDDEN: usize = 12;
const LAYERS: usize = 1;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const SEQ: usize = 4;
const EXTRA_PIECES: [&str; 3] = ["a", "b", "ab"];
const VOCAB: usize = 3 + 256 + EXTRA_PIECES.len();

fn header(v: [i32; 7]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A valid checkpoint: the header, then every tensor (values 0.01·i mod 1).
fn checkpoint() -> Vec<u8> {
    let kv = DIM * KV_HEADS / HEADS;
    let floats = VOCAB * DIM
        + LAYERS * (2 * DIM + 2 * DIM * DIM + 2 * kv * DIM + 3 * HIDDEN * DIM)
        + DIM
        + SEQ * (DIM / HEADS);
    let mut out = header([
        DIM as i32,
        HIDDEN as i32,
        LAYERS as i32,
        HEADS as i32,
        KV_HEADS as i32,
        VOCAB as i32,
        SEQ as i32,
    ]);
    out.extend((0..floats).flat_map(|i| ((i % 100) as f32 * 0.01).to_le_bytes()));
    out
}

fn token(score: f32, piece: &[u8]) -> Vec<u8> {
    let mut t = score.to_le_bytes().to_vec();
    t.extend((piece.len() as i32).to_le_bytes());
    t.extend(piece);
    t
}

/// A valid tokenizer of `VOCAB` pieces.
fn tokenizer() -> Vec<u8> {
    let mut out = 8i32.to_le_bytes().to_vec();
    for p in ["<unk>", "\n<s>\n", "\n</s>\n"] {
        out.extend(token(0.0, p.as_bytes()));
    }
    for b in 0..=255u8 {
        out.extend(token(0.0, format!("<0x{b:02X}>").as_bytes()));
    }
    for (i, p) in EXTRA_PIECES.iter().enumerate() {
        out.extend(token(-(i as f32), p.as_bytes()));
    }
    out
}

fn with_header_field(field: usize, value: i32) -> Vec<u8> {
    let mut c = checkpoint();
    c[4 * field..4 * field + 4].copy_from_slice(&value.to_le_bytes());
    c
}

fn with_weight(index: usize, value: f32) -> Vec<u8> {
    let mut c = checkpoint();
    let at = 28 + 4 * index;
    c[at..at + 4].copy_from_slice(&value.to_le_bytes());
    c
}

fn tokenizer_with(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut t = tokenizer();
    edit(&mut t);
    t
}

/// Where the output goes for a case.
enum Out {
    /// A fresh path in the case's folder.
    Fresh,
    /// A path in a folder that does not exist.
    MissingDir,
    /// A path that is a directory.
    IsDir,
    /// An existing file that must survive.
    Previous,
}

struct Case {
    name: &'static str,
    ckpt: Vec<u8>,
    tok: Vec<u8>,
    out: Out,
    /// Extra arguments.
    args: &'static [&'static str],
    /// A word the one-line message must contain.
    says: &'static str,
}

fn cases() -> Vec<Case> {
    let ck = checkpoint();
    let tk = tokenizer();
    let case = |name, ckpt: Vec<u8>, tok: Vec<u8>, says| Case {
        name,
        ckpt,
        tok,
        out: Out::Fresh,
        args: &[],
        says,
    };
    vec![
        case("empty checkpoint", vec![], tk.clone(), "truncated"),
        case("header cut", ck[..10].to_vec(), tk.clone(), "truncated"),
        case("cut after the header", ck[..28].to_vec(), tk.clone(), "truncated"),
        case("cut mid-weights", ck[..ck.len() / 2].to_vec(), tk.clone(), "truncated"),
        case("one byte short", ck[..ck.len() - 1].to_vec(), tk.clone(), "truncated"),
        case("one byte over", [ck.clone(), vec![0]].concat(), tk.clone(), "more than"),
        case("dim zero", with_header_field(0, 0), tk.clone(), "dim"),
        case("dim negative", with_header_field(0, -8), tk.clone(), "dim"),
        case("dim huge", with_header_field(0, i32::MAX), tk.clone(), "dim"),
        case("heads do not divide dim", with_header_field(3, 3), tk.clone(), "n_heads"),
        case("odd head size", with_header_field(3, 8), tk.clone(), "n_heads"),
        case("more kv heads than heads", with_header_field(4, 4), tk.clone(), "n_kv_heads"),
        case("vocab zero", with_header_field(5, 0), tk.clone(), "vocab_size"),
        case("layers huge", with_header_field(2, i32::MAX), tk.clone(), "n_layers"),
        case("seq_len zero", with_header_field(6, 0), tk.clone(), "seq_len"),
        case("NaN weight", with_weight(5, f32::NAN), tk.clone(), "not finite"),
        case(
            "infinite weight",
            with_weight(VOCAB * DIM + 3, f32::INFINITY),
            tk.clone(),
            "not finite",
        ),
        case("empty tokenizer", ck.clone(), vec![], "tokenizer"),
        case("tokenizer one token short", ck.clone(), tk[..tk.len() - 10].to_vec(), "tokenizer"),
        case(
            "tokenizer one token too many",
            ck.clone(),
            [tk.clone(), token(0.0, b"zz")].concat(),
            "more tokens",
        ),
        case(
            "tokenizer negative length",
            ck.clone(),
            tokenizer_with(|t| {
                let n = t.len();
                t[n - 6..n - 2].copy_from_slice(&(-5i32).to_le_bytes());
            }),
            "length",
        ),
        case(
            "tokenizer NaN score",
            ck.clone(),
            tokenizer_with(|t| t[4..8].copy_from_slice(&f32::NAN.to_le_bytes())),
            "score",
        ),
        case(
            "tokenizer duplicate piece",
            ck.clone(),
            [tk[..tk.len() - 10].to_vec(), token(-2.0, b"a")].concat(),
            "same piece",
        ),
        Case {
            out: Out::MissingDir,
            ..case("output folder missing", ck.clone(), tk.clone(), "cannot create")
        },
        Case {
            out: Out::IsDir,
            ..case("output is a directory", ck.clone(), tk.clone(), "not a regular file")
        },
        Case {
            out: Out::Previous,
            ..case(
                "failure keeps the previous file",
                with_weight(0, f32::NAN),
                tk.clone(),
                "not finite",
            )
        },
        Case {
            args: &["--group-size", "0"],
            ..case("group size zero", ck.clone(), tk.clone(), "group size")
        },
        Case {
            args: &["--group-size", "100000"],
            ..case("group size huge", ck.clone(), tk.clone(), "group size")
        },
    ]
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
    let prefix = format!("chispa-failures-{name}-");
    TestDir(tempfile::Builder::new().prefix(&prefix).tempdir().expect("temp dir"))
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chispa-convert")).args(args).output().expect("runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn the_valid_synthetic_inputs_convert() {
    let dir = tempdir("valid");
    let (c, t, o) = (dir.join("m.bin"), dir.join("t.bin"), dir.join("m.chispa"));
    std::fs::write(&c, checkpoint()).expect("write");
    std::fs::write(&t, tokenizer()).expect("write");
    let r = run(&["llama2c", s(&c), "-t", s(&t), "-o", s(&o), "-q"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(o.is_file());
}

#[test]
fn every_malformed_input_fails_cleanly() {
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = tempdir(&format!("case{i}"));
        let (c, t) = (dir.join("model.bin"), dir.join("tok.bin"));
        std::fs::write(&c, &case.ckpt).expect("write");
        std::fs::write(&t, &case.tok).expect("write");
        let out = match case.out {
            Out::Fresh => dir.join("out.chispa"),
            Out::MissingDir => dir.join("missing/sub/out.chispa"),
            Out::IsDir => {
                let d = dir.join("a-directory");
                std::fs::create_dir_all(d.join("inside")).expect("mkdir");
                d
            }
            Out::Previous => {
                let p = dir.join("out.chispa");
                std::fs::write(&p, b"previous model").expect("write");
                p
            }
        };
        let mut args = vec!["llama2c", s(&c), "-t", s(&t), "-o", s(&out)];
        args.extend(case.args);
        let r = run(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        let error_lines: Vec<_> = err.lines().filter(|l| l.contains("error")).collect();
        let mut problems = Vec::new();
        if r.status.code() != Some(1) {
            problems.push(format!("exit {:?}", r.status.code()));
        }
        if error_lines.len() != 1 || !error_lines[0].contains(case.says) {
            problems.push(format!("message {error_lines:?} lacks {:?}", case.says));
        }
        match case.out {
            Out::Previous => {
                if std::fs::read(&out).ok().as_deref() != Some(&b"previous model"[..]) {
                    problems.push("previous file changed".into());
                }
            }
            Out::IsDir => {
                if !out.join("inside").is_dir() {
                    problems.push("directory damaged".into());
                }
            }
            _ => {
                if out.exists() {
                    problems.push("an output file was left".into());
                }
            }
        }
        if std::fs::read(&c).ok().as_deref() != Some(&case.ckpt[..])
            || std::fs::read(&t).ok().as_deref() != Some(&case.tok[..])
        {
            problems.push("an input changed".into());
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".chispa-"))
            .collect();
        if !leftovers.is_empty() {
            problems.push(format!("temporary files left: {leftovers:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {} (stderr: {err})", case.name, problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_full_disk_fails_cleanly() {
    // RLIMIT_FSIZE makes every write past 4 KiB fail with EFBIG, as a full disk would: the
    // converter must say so and leave no partial file, whether SIGXFSZ is ignored or left at
    // its default (which the converter turns into a write error).
    for (name, trap) in [("full", "trap '' XFSZ; "), ("xfsz", "")] {
        let dir = tempdir(name);
        let (c, t) = inputs(&dir);
        let o = dir.join("out.chispa");
        let script = format!(
            "{trap}ulimit -f 4; exec '{}' llama2c '{}' -t '{}' -o '{}' -q",
            env!("CARGO_BIN_EXE_chispa-convert"),
            s(&c),
            s(&t),
            s(&o)
        );
        let r = Command::new("sh").arg("-c").arg(&script).output().expect("sh runs");
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains("cannot write"), "{name}: {err}");
        assert!(!o.exists(), "{name}: no output after a failed write");
        let left = std::fs::read_dir(&dir).expect("dir").count();
        assert_eq!(left, 2, "{name}: only the inputs remain, no temporary file");
    }
}

/// Writes the valid synthetic checkpoint and tokenizer into `dir`.
fn inputs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (c, t) = (dir.join("ck.bin"), dir.join("tok.bin"));
    std::fs::write(&c, checkpoint()).expect("write");
    std::fs::write(&t, tokenizer()).expect("write");
    (c, t)
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".chispa-"))
        .collect()
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = tempdir("onto-input");
    let (c, t) = inputs(&dir);
    let link = dir.join("same-as-ck.bin");
    std::fs::hard_link(&c, &link).expect("hard link");
    let dotted = dir.join(".").join("tok.bin");
    for out in [&c, &t, &link, &dotted] {
        let r = run(&["llama2c", s(&c), "--tokenizer", s(&t), "-o", s(out), "-q"]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert!(err.contains("also an input"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    assert_eq!(std::fs::read(&c).expect("read"), checkpoint(), "checkpoint untouched");
    assert_eq!(std::fs::read(&t).expect("read"), tokenizer(), "tokenizer untouched");
    assert!(temp_files(&dir).is_empty());
}

#[test]
fn an_output_that_is_a_device_or_fifo_is_refused() {
    let dir = tempdir("device");
    let (c, t) = inputs(&dir);
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    for out in [Path::new("/dev/full"), Path::new("/dev/null"), &fifo] {
        let r = run(&["llama2c", s(&c), "--tokenizer", s(&t), "-o", s(out), "-q"]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").expect("stat").file_type().is_char_device());
    assert!(std::fs::metadata(&fifo).expect("stat").file_type().is_fifo());
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn outputs_take_the_mode_of_the_umask() {
    let dir = tempdir("umask");
    let (c, t) = inputs(&dir);
    let out = dir.join("m.chispa");
    for (umask, want) in [("022", 0o644), ("077", 0o600), ("022", 0o644)] {
        let script = format!(
            "umask {umask}; exec '{}' llama2c '{}' -t '{}' -o '{}' -q",
            env!("CARGO_BIN_EXE_chispa-convert"),
            s(&c),
            s(&t),
            s(&out)
        );
        let r = Command::new("sh").arg("-c").arg(&script).output().expect("sh runs");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert_eq!(mode(&out), want, "umask {umask}");
    }
}

fn kill(sig: &str, pid: u32) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill runs");
    assert!(ok.success(), "kill {sig} {pid}");
}

/// Starts a conversion of a large model and stops it (SIGSTOP) while its temporary file
/// exists, then sends `sig`: the temporary file is gone, the process exits 128 + `sig`.
fn interrupted_while_writing(sig: &str, code: i32) {
    let dir = tempdir("signal");
    let out = dir.join("big.chispa");
    for _attempt in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chispa-convert"))
            .args(["synth", "--shape", "stories15M", "--dtype", "f32", "-o", s(&out)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let mut stopped = false;
        while child.try_wait().expect("wait").is_none() {
            if !temp_files(&dir).is_empty() {
                kill("-STOP", pid);
                stopped = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        if stopped && !temp_files(&dir).is_empty() {
            kill(sig, pid);
            kill("-CONT", pid);
            let status = child.wait().expect("wait");
            assert_eq!(status.code(), Some(code), "{status:?}");
            assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
            return;
        }
        if stopped {
            kill("-CONT", pid);
        }
        let _ = child.wait();
        let _ = std::fs::remove_file(&out);
    }
    panic!("never caught the converter while it was writing");
}

#[test]
fn sigterm_while_writing_removes_the_temporary_file() {
    interrupted_while_writing("-TERM", 143);
}

#[test]
fn sigint_while_writing_removes_the_temporary_file() {
    interrupted_while_writing("-INT", 130);
}

#[test]
fn a_full_stdout_is_an_error_and_a_closed_one_a_quiet_end() {
    let dir = tempdir("stdout");
    let (c, t) = inputs(&dir);
    let m = dir.join("m.chispa");
    let r = run(&["llama2c", s(&c), "-t", s(&t), "-o", s(&m), "-q"]);
    assert!(r.status.success());
    let bin = env!("CARGO_BIN_EXE_chispa-convert");
    let out2 = dir.join("m2.chispa");
    let cases: [&[&str]; 2] =
        [&["inspect", s(&m)], &["llama2c", s(&c), "-t", s(&t), "-o", s(&out2)]];
    for args in cases {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let o = Command::new(bin).args(args).stdout(full).output().expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("cannot write to standard output"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        let mut child = Command::new(bin)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let o = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("error") && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_target_snr_that_is_not_a_finite_number_is_a_usage_error() {
    let dir = tempdir("snr");
    let (c, t) = inputs(&dir);
    let o = dir.join("m.chispa");
    for v in ["--target-snr=nan", "--target-snr=inf", "--target-snr=-3"] {
        let r = run(&["llama2c", s(&c), "-t", s(&t), "-o", s(&o), v]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{v}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("--target-snr"), "{err}");
        assert!(!o.exists());
    }
}

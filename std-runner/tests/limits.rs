//! `chispa` on inputs that are valid but ask for too much, or hostile command lines and
//! outputs: every case ends with a one-line message and exit 1 (input) or 2 (usage), never
//! an abort, a panic, a hang or an overwritten input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chispa_core::format::{file_checksum, Header, CHECKSUM_OFFSET, HEADER_BYTES};
use chispa_runner::data::default_model;
use tempfile::TempDir;

fn chispa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chispa")).args(args).output().expect("chispa runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit `code` with a one-line message on stderr containing `needle`.
fn assert_fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn tempdir() -> TempDir {
    tempfile::Builder::new().prefix("chispa-limits-").tempdir().expect("temp dir")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// stories260K converted to int8.
fn stories() -> Vec<u8> {
    let (ckpt, tok) = default_model().expect("stories260K data");
    chispa_runner::load::convert_llama2c(&ckpt, &tok, &Default::default())
        .expect("convert")
        .as_slice()
        .to_vec()
}

/// `bytes` with its header changed by `edit` and the checksum computed again.
fn resealed(bytes: &[u8], edit: impl FnOnce(&mut Header)) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let head: &[u8; HEADER_BYTES] = out[..HEADER_BYTES].try_into().expect("header");
    let mut h = Header::read(head);
    edit(&mut h);
    out[..HEADER_BYTES].copy_from_slice(&h.write());
    out[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&[0; 4]);
    let crc = file_checksum(&out);
    out[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

fn write_model(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write model");
    path
}

/// A valid Llama of 64 layers, width 64, whose context of 2^20 positions (no tensor depends
/// on it) needs a 34 GB arena with an f32 KV cache.
fn million_position_model() -> Vec<u8> {
    use chispa_core::format::Arch;
    use chispa_tools::source::Params;
    use chispa_tools::writer::{build, Groups, WriteOptions};
    let params = Params {
        arch: Arch::Llama,
        dim: 64,
        hidden_dim: 16,
        n_layers: 64,
        n_heads: 4,
        n_kv_heads: 4,
        head_dim: 0,
        vocab_size: 300,
        max_seq_len: 1 << 20,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
        shared_classifier: true,
    };
    let source = chispa_tools::synth::random_model(params, 1, 0.05).expect("model");
    let opts = WriteOptions {
        dtype: chispa_core::format::DType::I8,
        groups: Groups::Uniform(32),
        ..Default::default()
    };
    build(&source, &opts, |_, _| {}).expect("build").0.as_slice().to_vec()
}

#[test]
fn a_context_of_a_million_positions_is_refused_before_allocating() {
    let tmp = tempdir();
    let m = write_model(tmp.path(), "long.chispa", &million_position_model());
    // `run` would need 34 GB for the default (full) context.
    let o = chispa(&["run", s(&m), "-n", "1", "-p", "Once"]);
    assert_fails(&o, 1, "memory limit");
    assert!(stderr(&o).contains("34363938160"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--context"), "{}", stderr(&o));
    // A shorter context runs.
    let o = chispa(&["run", s(&m), "-n", "2", "-p", "Once", "--context", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same header edit on stories260K, resealed, also passes validation.
    let edited = resealed(&stories(), |h| h.max_seq_len = 1 << 20);
    let e = write_model(tmp.path(), "edited.chispa", &edited);
    let o = Command::new(env!("CARGO_BIN_EXE_chispa"))
        .args(["run", s(&e), "-n", "1", "-p", "Once"])
        .env("CHISPA_MEMORY_LIMIT", "256M")
        .output()
        .expect("chispa runs");
    assert_fails(&o, 1, "256.0 MiB");
    // `plan` only computes: it reports and says the board's RAM is too small.
    let o = chispa(&["plan", s(&m), "--board", "qemu-m4"]);
    assert_fails(&o, 1, "does not fit");
    assert!(String::from_utf8_lossy(&o.stdout).contains("DOES NOT FIT"));
    let o = chispa(&["plan", s(&m), "--board", "qemu-m4", "--context", "256"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The limit is the stated one and can be lowered.
    let o = Command::new(env!("CARGO_BIN_EXE_chispa"))
        .args(["run", s(&m), "-n", "1", "-p", "Once", "--context", "64"])
        .env("CHISPA_MEMORY_LIMIT", "1K")
        .output()
        .expect("chispa runs");
    assert_fails(&o, 1, "1.0 KiB");
    // A nonsensical limit is named.
    let o = Command::new(env!("CARGO_BIN_EXE_chispa"))
        .args(["run", s(&m), "-n", "1"])
        .env("CHISPA_MEMORY_LIMIT", "lots")
        .stdout(Stdio::null())
        .output()
        .expect("chispa runs");
    assert_fails(&o, 1, "CHISPA_MEMORY_LIMIT");
}

#[test]
fn outputs_never_replace_the_model_they_read() {
    let tmp = tempdir();
    let bytes = stories();
    let m = write_model(tmp.path(), "m.chispa", &bytes);
    let o = chispa(&["eval", s(&m), "--tokens", "1,403,407", "--logits-out", s(&m)]);
    assert_fails(&o, 1, "also an input");
    let o = chispa(&["attention", s(&m), "-p", "Once", "-o", s(&m)]);
    assert_fails(&o, 1, "also an input");
    assert_eq!(std::fs::read(&m).expect("read"), bytes, "model untouched");
    let o = chispa(&["eval", s(&m), "--tokens", "1,403,407", "--logits-out", "/dev/full"]);
    assert_fails(&o, 1, "not a regular file");
}

/// `chispa ARGS` with stdout on `/dev/full`.
fn to_full(bin: &str, args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    Command::new(bin).args(args).stdout(full).output().expect("runs")
}

/// `chispa ARGS` with stdout a pipe whose reader is gone before anything is written.
fn to_closed_pipe(bin: &str, args: &[&str]) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait")
}

#[test]
fn a_full_stdout_is_an_error_and_a_closed_one_a_quiet_end() {
    let tmp = tempdir();
    let m = write_model(tmp.path(), "m.chispa", &stories());
    let chispa = env!("CARGO_BIN_EXE_chispa");
    let cases: [&[&str]; 5] = [
        &["plan", s(&m), "--board", "qemu-m4"],
        &["eval", s(&m), "--tokens", "1,403,407"],
        &["bench", s(&m), "--prompt-tokens", "4", "--gen-tokens", "4", "--repeats", "1"],
        &["tokenize", s(&m), "Once upon a time"],
        &["run", s(&m), "-n", "8", "-p", "Once"],
    ];
    for args in cases {
        let o = to_full(chispa, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("cannot write to standard output"), "{args:?}: {err}");
        assert_eq!(err.lines().filter(|l| l.contains("error")).count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let o = to_closed_pipe(chispa, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("error") && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn bad_flag_values_are_usage_errors() {
    for args in [
        &["run", "--temperature", "nan"][..],
        &["run", "--temperature", "inf"],
        &["run", "--temperature=-1"],
        &["run", "--temperature", "-1"],
        &["run", "--top-p", "nan"],
        &["run", "--top-p", "inf"],
    ] {
        let flag = args[1].split('=').next().expect("flag");
        assert_fails(&chispa(args), 2, flag);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_chispa"))
        .args(["run", "-n", "1"])
        .env("CHISPA_BACKEND", "nonsense")
        .output()
        .expect("chispa runs");
    assert_fails(&o, 2, "CHISPA_BACKEND");
}

#[test]
fn the_smallest_positive_temperature_is_greedy() {
    let tiny = chispa(&["run", "--temperature", "1e-45", "-n", "40", "-p", "Once", "-s", "5"]);
    assert!(tiny.status.success(), "{}", stderr(&tiny));
    let greedy = chispa(&["run", "--temperature", "0", "-n", "40", "-p", "Once"]);
    assert_eq!(tiny.stdout, greedy.stdout);
    assert!(!String::from_utf8_lossy(&tiny.stdout).contains("<unk>"));
}

#[test]
fn bench_token_counts_that_overflow_are_refused() {
    let o = chispa(&["bench", "--prompt-tokens", "18446744073709551615", "--gen-tokens", "2"]);
    assert_fails(&o, 1, "--prompt-tokens 18446744073709551615");
    let o = chispa(&["bench", "--prompt-tokens", "2", "--gen-tokens", "18446744073709551615"]);
    assert_fails(&o, 1, "the context");
}

#[test]
fn an_attention_svg_above_the_size_cap_is_refused_with_how_to_narrow_it() {
    let tmp = tempdir();
    let svg = tmp.path().join("att.svg");
    // 422 tokens with BOS: all 5 layers × 8 heads would be a 1 GB SVG.
    let prompt = "Once upon a time, there was a little girl named Lily. ".repeat(28);
    let prompt = prompt.as_str();
    let o = chispa(&["attention", "-p", prompt, "-o", s(&svg)]);
    assert_fails(&o, 1, "422 tokens");
    assert!(stderr(&o).contains("--layer") && stderr(&o).contains("262144"), "{}", stderr(&o));
    assert!(!svg.exists());
    // One map of the same prompt fits.
    let o = chispa(&["attention", "-p", prompt, "--layer", "1", "--head", "2", "-o", s(&svg)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let size = std::fs::metadata(&svg).expect("svg").len();
    assert!(size < 64 << 20, "{size} bytes");
}

fn story(chars: usize) -> String {
    let base = "Once upon a time, there was a little girl named Lily. She loved to play outside \
                in the sunshine with her dog Max. One day, they found a big red ball! ";
    base.repeat(chars / base.len() + 1)[..chars].to_string()
}

#[test]
fn long_texts_tokenize_in_n_log_n_and_are_refused_before_encoding_when_they_cannot_fit() {
    let tmp = tempdir();
    let m = write_model(tmp.path(), "m.chispa", &stories());
    // 40 K characters: the quadratic merge loop took over a minute.
    let text = story(40_000);
    let start = std::time::Instant::now();
    let o = chispa(&["tokenize", s(&m), &text]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    let n = String::from_utf8_lossy(&o.stdout).trim().split(',').count();
    assert!(n > 40_000 / 8, "{n} tokens");
    // From a file, 1 M characters.
    let file = tmp.path().join("story.txt");
    std::fs::write(&file, story(1_000_000)).expect("write");
    let start = std::time::Instant::now();
    let o = chispa(&["tokenize", s(&m), "-f", s(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
    // 120 KB cannot fit 512 positions: refused at once, by its length.
    let prompt = tmp.path().join("prompt.txt");
    std::fs::write(&prompt, story(120_000)).expect("write");
    let start = std::time::Instant::now();
    let o = chispa(&["run", s(&m), "-f", s(&prompt), "-n", "1"]);
    assert_fails(&o, 1, "the context holds 512");
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    let o = chispa(&["eval", s(&m), "--text", s(&prompt)]);
    assert_fails(&o, 1, "the context holds 512");
}

/// `plan`'s speed section: the breakdown, the three points of the context, a RAM budget that
/// turns a fit into a refusal, and a board without fitted costs.
#[test]
fn plan_breaks_the_speed_down_and_plans_for_a_given_ram() {
    let tmp = tempdir();
    let m = write_model(tmp.path(), "m.chispa", &stories());
    let o = chispa(&["plan", s(&m), "--board", "qemu-m4", "-c", "256", "--kv", "k10v7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "instructions/token with n cached positions = ",
        "matmul ",
        "attention ",
        "(KV k10v7)",
        "other ",
        "first token (n = 1)",
        "mean over 256 tokens from position 0 (mean n = 128.5)",
        "last token of the context (n = 256)",
        "tokens/s",
    ] {
        assert!(out.contains(needle), "{needle:?} not in\n{out}");
    }
    assert!(!out.contains("not in the estimate"), "{out}");
    let o = chispa(&["plan", s(&m), "--board", "qemu-m4", "-c", "256", "-n", "10"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("mean over 10 tokens"));
    // 102,384 bytes of arena and the 4 KiB stack: 100 KiB is not enough, 110 KiB is.
    let o = chispa(&["plan", s(&m), "--board", "qemu-m4", "-c", "256", "--ram-kib", "100"]);
    assert_fails(&o, 1, "does not fit");
    let o = chispa(&["plan", s(&m), "--board", "qemu-m4", "-c", "256", "--ram-kib", "110"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A board whose model has its own region: the model is checked there.
    let o = chispa(&["plan", s(&m), "--board", "qemu-m33-16m"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("model region (16384.0 KiB"));
    // No fitted costs for the Cortex-M7: no speed estimate, said so.
    let o = chispa(&["plan", s(&m), "--board", "stm32h743", "-c", "256"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("speed estimate: none"));
}

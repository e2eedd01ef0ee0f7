//! `chispa run` with the habits users bring from llama.cpp and llama2.c: its flag names,
//! Ctrl-C, closed pipes, exact bytes in JSON, and the cache of converted models.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use chispa_core::{Event, Generator, Model, Sampler, SamplerConfig, SamplerFilters, Session};
use chispa_runner::data::data_file;
use tempfile::TempDir;

fn chispa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chispa"))
}

fn run(args: &[&str]) -> Output {
    chispa().args(args).output().expect("chispa runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2 with one line on stderr that contains `needle`.
fn assert_usage_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn ids_of(lines: &[serde_json::Value]) -> Vec<u64> {
    lines.iter().filter_map(|l| l["id"].as_u64()).collect()
}

fn llama_tiny() -> PathBuf {
    let config = data_file("reference/hf/llama-tiny/config.json").expect("llama-tiny data");
    config.parent().expect("folder").to_path_buf()
}

fn tempdir() -> TempDir {
    tempfile::Builder::new().prefix("chispa-habits-").tempdir().expect("temp dir")
}

#[test]
fn llama2c_temperature_and_tokenizer_after_t_are_usage_errors() {
    // llama2.c's -t is the temperature, chispa's (llama.cpp's) the thread count.
    assert_usage_error(&run(&["run", "-t", "0.8", "-p", "0.9", "-n", "20"]), "--threads");
    assert_usage_error(
        &run(&["run", "-t", "/nonexistent/tok.bin", "-p", "Once", "-n", "5"]),
        "--temp",
    );
    assert_usage_error(&run(&["run", "--top-k", "x"]), "--top-k");
    assert_usage_error(&run(&["run", "--min-p", "2"]), "--min-p");
    assert_usage_error(&run(&["run", "--repeat-penalty", "0"]), "--repeat-penalty");
    assert_usage_error(&run(&["run", "--repeat-last-n", "-2"]), "--repeat-last-n");
    assert_usage_error(&run(&["run", "-r", ""]), "empty");
    assert_usage_error(&run(&["run", "-p", "a", "-f", "b.txt"]), "--file");
}

#[test]
fn flags_that_do_not_apply_to_the_model_are_usage_errors() {
    let tmp = tempdir();
    let model = tmp.path().join("m.chispa");
    let image = chispa_runner::load::convert_llama2c(
        &data_file("models/stories260K/stories260K.bin").expect("data"),
        &data_file("models/stories260K/tok512.bin").expect("data"),
        &Default::default(),
    )
    .expect("convert");
    std::fs::write(&model, image.as_slice()).expect("write");
    let m = model.to_str().expect("utf-8");
    let tok = data_file("models/stories260K/tok512.bin").expect("data");
    let tok = tok.to_str().expect("utf-8");
    assert_usage_error(&run(&["run", m, "--tokenizer", tok, "-n", "2"]), "--tokenizer");
    assert_usage_error(&run(&["run", "--tokenizer", tok, "-n", "2"]), "--tokenizer");
    assert_usage_error(&run(&["run", m, "--dtype", "f32", "-n", "2"]), "--dtype");
    assert_usage_error(&run(&["run", m, "--no-cache", "-n", "2"]), "--no-cache");
    let hf = llama_tiny();
    let hf = hf.to_str().expect("utf-8");
    assert_usage_error(&run(&["tokenize", hf, "--tokenizer", tok, "x"]), "--tokenizer");
    // The same model without the stray flag runs.
    assert!(run(&["run", m, "-n", "2"]).status.success());
}

#[test]
fn llama_cpp_names_are_aliases_of_the_existing_flags() {
    let long = run(&[
        "run",
        "-p",
        "Once",
        "-n",
        "12",
        "--temperature",
        "0.7",
        "--seed",
        "9",
        "--context",
        "64",
    ]);
    let short = run(&["run", "-p", "Once", "-n", "12", "--temp", "0.7", "-s", "9", "-c", "64"]);
    let ctx =
        run(&["run", "-p", "Once", "-n", "12", "--temp", "0.7", "-s", "9", "--ctx-size", "64"]);
    assert!(long.status.success(), "{}", stderr(&long));
    assert_eq!(long.stdout, short.stdout);
    assert_eq!(long.stdout, ctx.stdout);
    // -t is the thread count: the same bits on 2 threads.
    let threads =
        run(&["run", "-p", "Once", "-n", "12", "--temp", "0.7", "-s", "9", "-c", "64", "-t", "2"]);
    assert_eq!(long.stdout, threads.stdout, "{}", stderr(&threads));
}

#[test]
fn the_prompt_comes_from_a_file_or_stdin() {
    let tmp = tempdir();
    let file = tmp.path().join("prompt.txt");
    std::fs::write(&file, "Once upon a time\n").expect("write");
    let args = ["run", "-n", "8", "--temp", "0"];
    let direct = run(&[&args[..], &["-p", "Once upon a time"]].concat());
    let from_file = run(&[&args[..], &["-f", file.to_str().expect("utf-8")]].concat());
    assert!(direct.status.success() && from_file.status.success(), "{}", stderr(&from_file));
    assert_eq!(direct.stdout, from_file.stdout, "one final newline is dropped");
    let mut child = chispa()
        .args([&args[..], &["-f", "-"]].concat())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"Once upon a time\n").expect("write stdin");
    let from_stdin = child.wait_with_output().expect("wait");
    assert_eq!(direct.stdout, from_stdin.stdout, "{}", stderr(&from_stdin));
}

#[test]
fn top_k_min_p_and_repeat_penalty_are_seeded_and_change_the_text() {
    let base = ["run", "-p", "Once", "-n", "40", "-s", "21", "--json"];
    let with = |extra: &[&str]| {
        let o = run(&[&base[..], extra].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        ids_of(&json_lines(&o.stdout))
    };
    let filtered = ["--temp", "0.9", "--top-k", "8", "--min-p", "0.05", "--repeat-penalty", "1.3"];
    let a = with(&filtered);
    assert_eq!(a, with(&filtered), "same seed, same ids");
    assert_ne!(a, with(&["--temp", "0.9"]), "the filters change the sampling");
    // Top-k 1 is greedy, whatever the temperature.
    assert_eq!(with(&["--temp", "1.5", "--top-k", "1"]), with(&["--temp", "0"]));
    // A greedy run with a strong penalty never repeats a token within its window (the last
    // 16 tokens, the prompt's included)...
    let repeats =
        |ids: &[u64]| ids.windows(16).any(|w| (0..16).any(|i| w[i + 1..].contains(&w[i])));
    let greedy = with(&["--temp", "0", "--repeat-penalty", "1e6", "--repeat-last-n", "16"]);
    assert!(!repeats(&greedy), "{greedy:?}");
    // ...which plain greedy decoding of this story does.
    let plain = with(&["--temp", "0"]);
    assert!(repeats(&plain), "{plain:?}");
}

/// The CLI's sampled ids equal what the firmware's code path (fixed buffers, `Generator`)
/// gives for the same model, seed and filters.
#[test]
fn the_cli_and_the_firmware_generate_path_give_the_same_ids() {
    let tmp = tempdir();
    let path = tmp.path().join("m.chispa");
    let image = chispa_runner::load::convert_llama2c(
        &data_file("models/stories260K/stories260K.bin").expect("data"),
        &data_file("models/stories260K/tok512.bin").expect("data"),
        &Default::default(),
    )
    .expect("convert");
    std::fs::write(&path, image.as_slice()).expect("write");
    let o = run(&[
        "run",
        path.to_str().expect("utf-8"),
        "-p",
        "Once upon a time",
        "-n",
        "48",
        "-s",
        "1234",
        "--temp",
        "0.8",
        "--top-p",
        "0.9",
        "--top-k",
        "6",
        "--repeat-penalty",
        "1.25",
        "--repeat-last-n",
        "16",
        "-c",
        "128",
        "--kv",
        "int8",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cli = ids_of(&json_lines(&o.stdout));

    let model = Model::parse(image.as_slice()).expect("parses");
    let options = chispa_core::SessionOptions { context: 128, kv: chispa_core::KvType::I8 };
    let mut arena = chispa_runner::run::arena_for(&model, &options).expect("arena");
    let mut session = Session::new(&model, &options, arena.as_mut_slice()).expect("session");
    let ids: heapless::Vec<u32, 64> =
        model.tokenizer().encode_vec("Once upon a time", true, false).expect("encode");
    let mut window = [0u32; 16];
    let config = SamplerConfig { temperature: 0.8, top_p: 0.9, seed: 1234 };
    let filters = SamplerFilters { top_k: 6, min_p: 0.0, repeat_penalty: 1.25 };
    let sampler = Sampler::with_filters(config, filters, &mut window);
    let mut gen = Generator::new(&mut session, &ids, 48, sampler).expect("generator");
    let mut firmware = Vec::new();
    loop {
        match gen.step().expect("step") {
            Event::Prompt { .. } => {}
            Event::Token { id, .. } => firmware.push(u64::from(id)),
            Event::Stop(_) => break,
        }
    }
    assert!(!cli.is_empty());
    assert_eq!(cli, firmware);
}

#[test]
fn a_reverse_prompt_stops_generation_and_stays_in_the_output() {
    let o = run(&["run", "-p", "Once upon a time", "-n", "200", "--temp", "0", "-r", "."]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let body = text.strip_suffix('\n').expect("final newline");
    assert!(body.ends_with('.'), "{body:?}");
    assert_eq!(body.matches('.').count(), 1, "stopped at the first one: {body:?}");
    assert!(stderr(&o).contains("stop: stop string \".\""), "{}", stderr(&o));
    // Against the same run without it: a prefix of that text.
    let full = run(&["run", "-p", "Once upon a time", "-n", "200", "--temp", "0"]);
    assert!(String::from_utf8_lossy(&full.stdout).starts_with(body));
    // With --json the summary says so too.
    let o =
        run(&["run", "-p", "Once upon a time", "-n", "200", "--temp", "0", "-r", ".", "--json"]);
    let lines = json_lines(&o.stdout);
    let last = lines.last().expect("summary");
    assert_eq!(last["summary"]["stop_reason"], "stop string \".\"");
    assert!(lines
        .iter()
        .rev()
        .nth(1)
        .and_then(|l| l["text"].as_str())
        .is_some_and(|t| t.contains('.')));
}

/// Starts `chispa run` with stdout too large for the pipe (every token lists all 512
/// candidates), reads `first` lines, and sends SIGINT while it waits for the reader.
fn interrupt(json: bool) -> (Output, Vec<String>) {
    let mut args = vec!["run", "-p", "Once upon a time", "-n", "250", "--top-k-probs", "512"];
    if json {
        // Greedy: the story is long, so the output cannot fit the pipe before the signal.
        args.extend(["--json", "--temp", "0"]);
    }
    let mut child =
        chispa().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a first line");
    let kill =
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("the rest of stdout");
    let out = child.wait_with_output().expect("wait");
    let lines = std::iter::once(first).chain(rest.lines().map(String::from)).collect();
    (out, lines)
}

#[test]
fn ctrl_c_stops_at_a_token_and_prints_the_summary_with_the_seed() {
    let (o, lines) = interrupt(false);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("stop: interrupted"), "{err}");
    let seed: u64 = err
        .rsplit("seed ")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no seed in {err:?}"));
    assert!(lines.len() < 250, "stopped early: {} lines", lines.len());

    // The seed repeats the run: the same first token line.
    let again = run(&[
        "run",
        "-p",
        "Once upon a time",
        "-n",
        "1",
        "--top-k-probs",
        "512",
        "-s",
        &seed.to_string(),
    ]);
    let first_again = String::from_utf8_lossy(&again.stdout).lines().next().map(String::from);
    assert_eq!(first_again.as_deref(), lines.first().map(|l| l.trim_end()));

    let (o, lines) = interrupt(true);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let last: serde_json::Value =
        serde_json::from_str(lines.last().expect("a summary line")).expect("JSON");
    assert_eq!(last["summary"]["stop_reason"], "interrupted");
    assert!(last["summary"]["seed"].is_u64(), "{last}");
    let tokens = lines.len() - 1;
    assert_eq!(last["summary"]["generated_tokens"].as_u64(), Some(tokens as u64));
}

#[test]
fn a_closed_stdout_ends_generation_quietly() {
    let mut child = chispa()
        .args(["run", "-p", "Once upon a time", "-n", "250", "--top-k-probs", "512", "--temp", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut head = [0u8; 40];
    child.stdout.take().expect("stdout").read_exact(&mut head).expect("40 bytes");
    // The reader is gone (as `| head -c 40`).
    let o = child.wait_with_output().expect("wait");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("error") && !err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "only the statistics: {err}");
    assert!(err.contains("stop: output closed"), "{err}");
}

#[test]
fn json_tokens_carry_their_exact_bytes() {
    let cache = tempdir();
    let model = llama_tiny();
    let args = |json: bool| {
        let mut a = vec![
            "run",
            model.to_str().expect("utf-8"),
            "-p",
            "café 🙂",
            "-n",
            "120",
            "-s",
            "5",
            "--temp",
            "1.5",
            "--top-p",
            "1",
        ];
        if json {
            a.push("--json");
        }
        let o = chispa().env("CHISPA_CACHE", cache.path()).args(&a).output().expect("runs");
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let lines = json_lines(&args(true).stdout);
    let tokens = &lines[..lines.len() - 1];
    let bytes_of = |l: &serde_json::Value| -> Vec<u8> {
        l["bytes"]
            .as_array()
            .expect("bytes")
            .iter()
            .map(|b| u8::try_from(b.as_u64().expect("a byte")).expect("0..=255"))
            .collect()
    };
    // Byte-fallback tokens that are part of a character: text "�", bytes distinct per id.
    let partial: Vec<(u64, Vec<u8>)> = tokens
        .iter()
        .filter(|l| l["text"] == "\u{FFFD}")
        .map(|l| (l["id"].as_u64().expect("id"), bytes_of(l)))
        .collect();
    assert!(partial.len() >= 2, "the run has byte tokens: {tokens:?}");
    for (i, (id, b)) in partial.iter().enumerate() {
        assert_eq!(b.len(), 1, "one byte each");
        assert!(b[0] >= 0x80);
        for (id2, b2) in &partial[i + 1..] {
            assert_eq!(id == id2, b == b2, "ids {id} and {id2}");
        }
    }
    // The bytes rebuild the text output byte for byte (which drops lone control bytes).
    let mut rebuilt = "café 🙂".as_bytes().to_vec();
    for l in tokens {
        let b = bytes_of(l);
        if !(b.len() == 1
            && b[0] < 0x80
            && !(b[0].is_ascii_graphic() || b[0].is_ascii_whitespace()))
        {
            rebuilt.extend_from_slice(&b);
        }
    }
    rebuilt.push(b'\n');
    assert_eq!(args(false).stdout, rebuilt);
}

#[test]
fn a_converted_model_is_cached_and_the_cache_gives_the_same_output() {
    let cache = tempdir();
    let model = llama_tiny();
    let go = |extra: &[&str]| {
        let o = chispa()
            .env("CHISPA_CACHE", cache.path())
            .args(["run", model.to_str().expect("utf-8"), "-p", "Hello", "-n", "30", "-s", "4"])
            .args(extra)
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let first = go(&[]);
    assert!(stderr(&first).contains("converted") && stderr(&first).contains("cached it as"));
    let files: Vec<_> = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "one cached model, no temporary files: {files:?}");
    assert!(files[0].ends_with(".chispa"));

    let second = go(&[]);
    assert!(stderr(&second).contains("using the cached conversion"), "{}", stderr(&second));
    assert_eq!(first.stdout, second.stdout);

    // Other options, another entry; --no-cache converts and stores nothing.
    let f32 = go(&["--dtype", "f32"]);
    assert!(stderr(&f32).contains("cached it as"), "{}", stderr(&f32));
    let count = || std::fs::read_dir(cache.path()).expect("cache dir").count();
    assert_eq!(count(), 2);
    let fresh = go(&["--no-cache"]);
    assert!(!stderr(&fresh).contains("cache"), "{}", stderr(&fresh));
    assert_eq!(fresh.stdout, first.stdout);
    assert_eq!(count(), 2);
}

//! `cargo xtask measure`: runs the measurement commands and writes `docs/measurements.md`.
//!
//! Every table in that file comes from one command, printed above it, so anyone can repeat a
//! figure. The file also records the machine (CPU model, cores, load average at the start),
//! the commit (with a dirty flag) and the date. The default run takes a few minutes on a
//! 2-core machine; `--full` adds the heavier parts (larger shapes and two threads, the
//! criterion kernel benchmarks, the firmware with the k10v7 KV cache and the short context).
//!
//! A failing step stops the command and leaves the previous file in place; the firmware part
//! is skipped, with a line saying why, when `qemu-system-arm` or `defmt-print` is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use chispa_tools::writer::write_atomic;

use chispa_runner::data::default_model;

use crate::test::{desktop_kv, field, firmware_kv};
use crate::{default_chispa, root, run_qemu, Kv};

/// What `cargo xtask measure` was asked to do.
#[derive(Debug)]
pub(crate) struct Options {
    pub full: bool,
    pub repeats: usize,
    pub no_qemu: bool,
    pub out: PathBuf,
    /// A compiled llama2.c `run` binary, for the side-by-side comparison.
    pub llama2c: Option<PathBuf>,
    /// A compiled llama.cpp `llama-bench`, for the side-by-side comparison.
    pub llama_bench: Option<PathBuf>,
}

/// One section of the file: a title, the command that makes it, a note, the body.
struct Section {
    title: String,
    command: String,
    note: String,
    body: String,
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command; returns its stdout, or an error with its stderr.
fn output(mut c: Command, what: &str) -> Result<String> {
    let out = c.output().with_context(|| format!("cannot run {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`output`], but returns stdout and stderr together (tests print to stderr).
fn output_all(mut c: Command, what: &str) -> Result<String> {
    let out = c.output().with_context(|| format!("cannot run {what}"))?;
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "{what} failed ({}): {}", out.status, s.trim());
    Ok(s)
}

fn step(name: &str) -> Instant {
    eprintln!("measure: {name}");
    Instant::now()
}

fn done(t: Instant) {
    eprintln!("measure:   {:.1} s", t.elapsed().as_secs_f64());
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown (no model name in /proc/cpuinfo)".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into());
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // This file itself does not count: regenerating it must not mark the next run dirty.
    let dirty = git(&["status", "--porcelain", "--", ".", ":(exclude)docs/measurements.md"])
        .map(|s| if s.is_empty() { "clean" } else { "dirty (uncommitted changes)" })
        .unwrap_or("unknown");
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let rustc = Command::new("rustc")
        .current_dir(root())
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "| | |\n|---|---|\n| CPU | {cpu} |\n| cores | {cores} |\n| load average at start (1, 5, 15 min) | {load} |\n| commit | `{commit}`, {dirty} |\n| date | {date} |\n| rustc | {rustc} |\n"
    )
}

/// A binary of `chispa-tests` (the quality reports), its stdout as the body.
fn tests_bin(bin: &str, args: &[&str], title: &str, note: &str) -> Result<Section> {
    let t = step(title);
    let mut c = cargo();
    c.args(["run", "--quiet", "--release", "-p", "chispa-tests", "--bin", bin, "--"]).args(args);
    let body = output(c, bin)?;
    done(t);
    let tail = if args.is_empty() { String::new() } else { format!(" {}", args.join(" ")) };
    Ok(Section {
        title: title.into(),
        command: format!("cargo run --release -p chispa-tests --bin {bin}{tail}"),
        note: note.into(),
        body,
    })
}

fn kv_quality() -> Result<Section> {
    let t = step("KV-cache quality (test kv_cache)");
    let mut c = cargo();
    c.args(["test", "--quiet", "-p", "chispa-tests", "--test", "kv_cache", "--"]).args([
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    let all = output_all(c, "cargo test --test kv_cache")?;
    let lines: Vec<&str> =
        all.lines().filter(|l| l.contains(" KV: KL to run.c") || l.contains("KV bytes")).collect();
    ensure!(!lines.is_empty(), "the kv_cache test printed no measurements");
    done(t);
    Ok(Section {
        title: "KV-cache quality, stories260K".into(),
        command: "cargo test -p chispa-tests --test kv_cache -- --nocapture".into(),
        note: "Teacher-forced on run.c's reference ids (192 positions, KL to run.c's logits) and \
               on run.c's 257-token greedy story (against the f32-KV logits), for each KV type."
            .into(),
        body: format!("```text\n{}\n```\n", lines.join("\n")),
    })
}

/// The `arena:` figure of `chispa plan` for each KV type and context.
fn plans(model: &Path) -> Result<Section> {
    let t = step("memory plans (chispa plan)");
    let contexts = [64usize, 128, 256, 512];
    let mut body =
        String::from("| KV cache | context 64 | 128 | 256 | 512 |\n|---|---|---|---|---|\n");
    for kv in ["f32", "f16", "int8", "k10v7"] {
        let _ = write!(body, "| {kv} |");
        for ctx in contexts {
            let mut c = cargo();
            c.args(["run", "--quiet", "--release", "-p", "chispa-runner", "--", "plan"])
                .arg(model)
                .args(["--board", "qemu-m4", "--context", &ctx.to_string(), "--kv", kv]);
            let out = output(c, "chispa plan")?;
            let arena = field(&out, "arena: ")
                .and_then(|s| s.split_whitespace().next().map(str::to_string))
                .context("no arena line from chispa plan")?;
            let _ = write!(body, " {arena} |");
        }
        body.push('\n');
    }
    done(t);
    Ok(Section {
        title: "Memory plan, stories260K int8".into(),
        command: "chispa plan MODEL --board qemu-m4 --context N --kv T".into(),
        note: "Arena bytes (`Model::plan`: activations, logits, sampler scratch and KV cache); \
               the firmware allocates exactly this. MODEL is `cargo xtask model`'s file."
            .into(),
        body,
    })
}

/// One `chispa bench` line: prompt and generation tok/s and the backend name.
#[derive(Debug)]
struct Bench {
    prompt: f64,
    gen: f64,
    backend: String,
}

fn parse_bench(s: &str) -> Option<Bench> {
    let num = |key: &str| -> Option<f64> {
        let (_, rest) = s.split_once(key)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    let backend = s.rsplit_once(" kernels)")?.0.rsplit(' ').next()?.to_string();
    Some(Bench { prompt: num("prompt ")?, gen: num("generation ")?, backend })
}

fn bench(model: &Path, backend: Option<&str>, threads: usize, repeats: usize) -> Result<Bench> {
    let mut c = cargo();
    c.args(["run", "--quiet", "--release", "-p", "chispa-runner", "--", "bench"])
        .arg(model)
        .args(["--repeats", &repeats.to_string(), "--threads", &threads.to_string()]);
    if let Some(b) = backend {
        c.args(["--backend", b]);
    }
    let all = output_all(c, "chispa bench")?;
    all.lines().find_map(parse_bench).with_context(|| format!("unexpected bench output: {all}"))
}

fn synth(shape: &str) -> Result<PathBuf> {
    let out = root().join(format!("target/xtask/{shape}.chispa"));
    if !out.exists() {
        let mut c = cargo();
        c.args(["run", "--quiet", "--release", "-p", "chispa-tools", "--bin", "chispa-convert"])
            .args(["--", "synth", "--shape", shape, "-o"])
            .arg(&out);
        output(c, "chispa-convert synth")?;
    }
    Ok(out)
}

fn speed(o: &Options, model260k: &Path) -> Result<Section> {
    let t = step("desktop speed (chispa bench)");
    let mut models = vec![("stories260K int8".to_string(), model260k.to_path_buf())];
    let shapes: &[&str] =
        if o.full { &["stories15M", "stories42M", "stories110M"] } else { &["stories15M"] };
    for shape in shapes {
        models.push((format!("{shape} shape, random weights, int8 group 32"), synth(shape)?));
    }
    let mut body = String::from(
        "| model | backend | threads | prompt tok/s | generation tok/s | generation vs scalar |\n|---|---|---|---|---|---|\n",
    );
    for (name, path) in &models {
        let scalar = bench(path, Some("scalar"), 1, o.repeats)?;
        let best = bench(path, None, 1, o.repeats)?;
        let mut rows = vec![(&scalar, 1), (&best, 1)];
        let two;
        if o.full {
            two = bench(path, None, 2, o.repeats)?;
            rows.push((&two, 2));
        }
        for (b, threads) in rows {
            let _ = writeln!(
                body,
                "| {name} | {} | {threads} | {:.0} | {:.0} | {:.2}× |",
                b.backend,
                b.prompt,
                b.gen,
                b.gen / scalar.gen
            );
        }
    }
    done(t);
    Ok(Section {
        title: "Desktop speed".into(),
        command: format!(
            "chispa bench MODEL --repeats {} --threads T [--backend scalar]; \
             chispa-convert synth --shape S -o S.chispa",
            o.repeats
        ),
        note: "32 prompt + 224 generated tokens, greedy, median of the repeats; the scalar and \
               the default (best) backend run one after the other. Absolute figures depend on \
               the machine and its load (recorded above); the ratios are the comparable part."
            .into(),
        body,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// chispa against llama2.c's `run.c` on stories260K, alternated: 256 positions from BOS,
/// greedy, one thread.
fn llama2c(o: &Options, model260k: &Path) -> Result<Section> {
    let title = "Side by side with llama2.c".to_string();
    let command = "cargo xtask measure --llama2c PATH/run".to_string();
    let note = "stories260K, greedy from BOS, 256 positions (`run stories260K.bin -z tok512.bin \
                -t 0 -n 256 -i \"\"` against `chispa bench MODEL --prompt-tokens 1 --gen-tokens \
                255 --repeats 1`), one thread each, alternated round by round; the medians of the \
                rounds. llama2.c's figure is its own \"achieved tok/s\" (f32, millisecond timer). \
                llama2.c is not part of this repository: build it with `gcc -O3 -o run run.c -lm` \
                from github.com/karpathy/llama2.c."
        .to_string();
    let Some(run) = &o.llama2c else {
        let body = "Not run: pass `--llama2c PATH` (a compiled llama2.c `run`).\n".to_string();
        return Ok(Section { title, command, note, body });
    };
    let t = step("side by side with llama2.c");
    let (ckpt, tok) = default_model()?;
    let f32_model = root().join("target/xtask/stories260K-f32.chispa");
    let mut c = cargo();
    c.args(["run", "--quiet", "--release", "-p", "chispa-tools", "--bin", "chispa-convert"])
        .args(["--", "llama2c"])
        .arg(&ckpt)
        .arg("--tokenizer")
        .arg(&tok)
        .args(["--dtype", "f32", "-q", "-o"])
        .arg(&f32_model);
    output(c, "chispa-convert llama2c --dtype f32")?;
    let chispa = |model: &Path| -> Result<Bench> {
        let mut c = cargo();
        c.args(["run", "--quiet", "--release", "-p", "chispa-runner", "--", "bench"])
            .arg(model)
            .args(["--prompt-tokens", "1", "--gen-tokens", "255", "--repeats", "1"]);
        let all = output_all(c, "chispa bench")?;
        all.lines().find_map(parse_bench).with_context(|| format!("unexpected bench output: {all}"))
    };
    let (mut theirs, mut ours_f32, mut ours_i8) = (Vec::new(), Vec::new(), Vec::new());
    let mut backend = String::new();
    for _ in 0..o.repeats.max(3) {
        let mut c = Command::new(run);
        c.arg(&ckpt).arg("-z").arg(&tok).args(["-t", "0", "-n", "256", "-i", ""]);
        let all = output_all(c, "llama2.c run")?;
        let rate = all
            .lines()
            .find_map(|l| l.strip_prefix("achieved tok/s: "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .context("llama2.c printed no \"achieved tok/s\"")?;
        theirs.push(rate);
        let f = chispa(&f32_model)?;
        backend = f.backend.clone();
        ours_f32.push(f.gen);
        ours_i8.push(chispa(model260k)?.gen);
    }
    let rounds = theirs.len();
    let (theirs, f, i) = (median(theirs), median(ours_f32), median(ours_i8));
    let body = format!(
        "| engine | weights | generation tok/s | vs llama2.c |\n|---|---|---|---|\n\
         | llama2.c `run` | f32 | {theirs:.0} | 1.00× |\n\
         | chispa ({backend}) | f32 | {f:.0} | {:.2}× |\n\
         | chispa ({backend}) | int8 | {i:.0} | {:.2}× |\n\nMedians of {rounds} rounds.\n",
        f / theirs,
        i / theirs,
    );
    done(t);
    Ok(Section { title, command, note, body })
}

/// A `synth` shape written twice from one seed: as `.chispa` (int8, groups of 32) and as GGUF
/// with Q8_0 matrices, so chispa and llama.cpp read the same weights.
fn synth_pair(shape: &str) -> Result<(PathBuf, PathBuf)> {
    let out = root().join(format!("target/xtask/{shape}-pair.chispa"));
    let gguf = out.with_extension("gguf");
    if !(out.exists() && gguf.exists()) {
        let mut c = cargo();
        c.args(["run", "--quiet", "--release", "-p", "chispa-tools", "--bin", "chispa-convert"])
            .args(["--", "synth", "--shape", shape, "--group-size", "32", "-o"])
            .arg(&out)
            .arg("--gguf")
            .arg(&gguf);
        output(c, "chispa-convert synth --gguf")?;
    }
    Ok((out, gguf))
}

/// llama.cpp's `llama-bench -o json` generation rate (`avg_ts` of its one test).
fn llama_bench_rate(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.as_array()?.last()?.get("avg_ts")?.as_f64()
}

/// chispa against llama.cpp (Q8_0, CPU) on the same random weights, alternated round by round:
/// 128 generated tokens, one and two threads, medians.
fn llamacpp(o: &Options) -> Result<Section> {
    let title = "Side by side with llama.cpp".to_string();
    let command = "cargo xtask measure --llama-bench PATH/llama-bench".to_string();
    let note = "The same random weights twice (`chispa-convert synth --shape S --group-size \
                32 -o S.chispa --gguf S.gguf`: int8 groups of 32 for chispa, Q8_0 for \
                llama.cpp); `llama-bench -m S.gguf -p 0 -n 128 -t T -r 1 -o json` against \
                `chispa bench S.chispa --threads T --prompt-tokens 1 --gen-tokens 128 \
                --repeats 1`, alternated round by round; the medians of the rounds. llama.cpp \
                is not part of this repository: build its `llama-bench` (CPU, \
                `-DGGML_NATIVE=ON`)."
        .to_string();
    let Some(lb) = &o.llama_bench else {
        let body = "Not run: pass `--llama-bench PATH` (a compiled llama.cpp `llama-bench`).\n"
            .to_string();
        return Ok(Section { title, command, note, body });
    };
    let t = step("side by side with llama.cpp");
    let shapes: &[&str] = if o.full {
        &["stories15M", "stories42M", "stories110M"]
    } else {
        &["stories15M", "stories42M"]
    };
    let rounds = o.repeats.max(3);
    let mut body = String::from(
        "| model | threads | llama.cpp Q8_0 tok/s | chispa int8 tok/s | chispa / llama.cpp | rounds (llama.cpp; chispa) |\n|---|---|---|---|---|---|\n",
    );
    let mut by_threads: Vec<(String, usize, f64)> = Vec::new();
    for shape in shapes {
        let (ours, theirs) = synth_pair(shape)?;
        for threads in [1usize, 2] {
            let (mut l, mut c) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                let mut cmd = Command::new(lb);
                cmd.arg("-m").arg(&theirs).args(["-p", "0", "-n", "128", "-r", "1", "-o", "json"]);
                cmd.args(["-t", &threads.to_string()]);
                let out = output(cmd, "llama-bench")?;
                l.push(llama_bench_rate(&out).with_context(|| format!("no avg_ts in: {out}"))?);
                let mut cmd = cargo();
                cmd.args(["run", "--quiet", "--release", "-p", "chispa-runner", "--", "bench"])
                    .arg(&ours)
                    .args(["--prompt-tokens", "1", "--gen-tokens", "128", "--repeats", "1"])
                    .args(["--threads", &threads.to_string()]);
                let all = output_all(cmd, "chispa bench")?;
                let b = all
                    .lines()
                    .find_map(parse_bench)
                    .with_context(|| format!("unexpected bench output: {all}"))?;
                c.push(b.gen);
            }
            let list =
                |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(" ");
            let rounds_text = format!("{}; {}", list(&l), list(&c));
            let (lm, cm) = (median(l), median(c));
            by_threads.push((shape.to_string(), threads, cm));
            let _ = writeln!(
                body,
                "| {shape} shape | {threads} | {lm:.0} | {cm:.0} | {:.2}× | {rounds_text} |",
                cm / lm
            );
        }
    }
    body.push_str("\n| model | chispa, 2 threads / 1 thread |\n|---|---|\n");
    for pair in by_threads.chunks(2) {
        if let [(shape, 1, one), (_, 2, two)] = pair {
            let _ = writeln!(body, "| {shape} shape | {:.2}× |", two / one);
        }
    }
    done(t);
    Ok(Section { title, command, note, body })
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool).arg(arg).output().map(|o| o.status.success()).unwrap_or(false)
}

fn firmware(o: &Options) -> Result<Section> {
    let title = "Firmware under QEMU".to_string();
    let command = "cargo xtask qemu --board B --ram-kib 200 [--kv k10v7]".to_string();
    let note = "stories260K int8, \"Once upon a time\", greedy, 200 tokens, full 512-token \
                context, RAM shrunk to 200 KiB; instructions counted by SysTick under \
                `-icount shift=0` (deterministic). Instructions are not cycles. \"= desktop\": \
                the digest equals `chispa run MODEL -p \"Once upon a time\" -n 200 \
                --temperature 0 --kv KV --digest`."
        .to_string();
    if o.no_qemu {
        let body = "Skipped: `--no-qemu` was given.\n".to_string();
        return Ok(Section { title, command, note, body });
    }
    let missing: Vec<&str> = [("qemu-system-arm", "--version"), ("defmt-print", "--version")]
        .into_iter()
        .filter(|(t, a)| !have(t, a))
        .map(|(t, _)| t)
        .collect();
    if !missing.is_empty() {
        let body = format!(
            "Skipped: {} not found on this machine (`apt-get install qemu-system-arm`, \
             `cargo install defmt-print --locked`).\n",
            missing.join(" and ")
        );
        eprintln!("measure: firmware skipped ({} missing)", missing.join(", "));
        return Ok(Section { title, command, note, body });
    }
    let mut body = String::from(
        "| board | KV | instructions/token, mean | prompt instr./token | at tokens 1 / 64 / 128 / 199 | digest | = desktop | arena | stack high-water | RAM total | flash (model + code) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let kvs: &[(Kv, &str)] =
        if o.full { &[(Kv::Int8, "int8"), (Kv::K10v7, "k10v7")] } else { &[(Kv::Int8, "int8")] };
    for &(kv, kv_name) in kvs {
        let t = step(&format!("desktop digest, {kv_name} KV"));
        let desk = desktop_kv(200, 0, kv_name)?;
        done(t);
        for board in crate::measured_boards()? {
            let t = step(&format!("firmware on {}, {kv_name} KV", board.name()));
            let fw = firmware_kv(board, 200, 0, Some(200), kv);
            let (code, log) = run_qemu(&fw, true)?;
            ensure!(code == 0, "{}: the firmware exited with {code}:\n{log}", board.name());
            let get = |key: &str| field(&log, key).unwrap_or_else(|| "?".into());
            let first = |key: &str| get(key).split_whitespace().next().unwrap_or("?").to_string();
            let at: Vec<String> = [1, 64, 128, 199]
                .iter()
                .map(|n| {
                    log.lines()
                        .find(|l| l.starts_with(&format!("instructions at token {n} ")))
                        .and_then(|l| l.rsplit(' ').next())
                        .unwrap_or("?")
                        .to_string()
                })
                .collect();
            let digest = first("digest: ");
            let ram = get("RAM total: ");
            let flash = get("flash: ");
            let _ = writeln!(
                body,
                "| {} | {kv_name} | {} | {} | {} | `{digest}` | {} | {} | {} | {} | {} |",
                board.name(),
                mean_instructions(&log),
                first("prompt instructions/token: "),
                at.join(" / "),
                if digest == desk.digest { "yes" } else { "**no**" },
                first("arena: "),
                get("stack high-water: ").split(';').next().unwrap_or("?"),
                ram,
                flash,
            );
            done(t);
        }
    }
    if o.full {
        let t = step("firmware on qemu-m4, context 128 in 64 KiB");
        let desk = desktop_kv(120, 128, "int8")?;
        let (code, log) =
            run_qemu(&firmware_kv(crate::board("qemu-m4")?, 120, 128, Some(64), Kv::Int8), true)?;
        ensure!(code == 0, "qemu-m4, context 128: the firmware exited with {code}:\n{log}");
        let digest = field(&log, "digest: ").unwrap_or_default();
        let _ = writeln!(
            body,
            "\nqemu-m4, 120 tokens, context 128, RAM 64 KiB (`cargo xtask qemu -n 120 --context \
             128 --ram-kib 64`): instructions/token {}, arena {}, {}; digest `{digest}` {} the \
             desktop's.",
            mean_instructions(&log),
            field(&log, "arena: ").unwrap_or_default().split(';').next().unwrap_or("?"),
            field(&log, "stack high-water: ").unwrap_or_default().split(';').next().unwrap_or("?"),
            if digest == desk.digest { "equals" } else { "**differs from**" },
        );
        done(t);
    }
    Ok(Section { title, command, note, body })
}

/// The `instructions/token:` line (not the `prompt instructions/token:` one).
fn mean_instructions(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("instructions/token: "))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// Criterion's result lines, one benchmark name with its time and throughput each.
fn criterion_summary(out: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut name = String::new();
    for l in out.lines() {
        let trimmed = l.trim();
        if let Some(rest) = trimmed.strip_prefix("time:") {
            lines.push(format!("{name}: time {}", rest.trim()));
        } else if let Some((n, rest)) = trimmed.split_once(" time:") {
            name = n.trim().to_string();
            lines.push(format!("{name}: time {}", rest.trim()));
        } else if let Some(rest) = trimmed.strip_prefix("thrpt:") {
            lines.push(format!("{name}: thrpt {}", rest.trim()));
        } else if !trimmed.is_empty()
            && !l.starts_with(' ')
            && !trimmed.starts_with("Benchmarking")
            && !trimmed.starts_with("Found")
        {
            name = trimmed.to_string();
        }
    }
    lines
}

fn kernels_bench() -> Result<Section> {
    let t = step("kernel benchmarks (criterion)");
    let filter = "MAC/s|DRAM|attention";
    let mut c = cargo();
    c.args(["bench", "--quiet", "-p", "chispa-runner", "--bench", "kernels", "--"]).args([
        "--warm-up-time",
        "1",
        "--measurement-time",
        "2",
        filter,
    ]);
    let all = output_all(c, "cargo bench --bench kernels")?;
    let lines = criterion_summary(&all);
    done(t);
    Ok(Section {
        title: "Kernels alone".into(),
        command: format!(
            "cargo bench -p chispa-runner --bench kernels -- --warm-up-time 1 \
             --measurement-time 2 \"{filter}\""
        ),
        note: "Criterion medians (time and throughput per benchmark, as criterion prints them)."
            .into(),
        body: format!("```text\n{}\n```\n", lines.join("\n")),
    })
}

/// `cargo xtask measure --versus`: only the side-by-side sections, to stdout.
pub(crate) fn versus(o: &Options) -> Result<()> {
    let mut c = cargo();
    c.args(["build", "--quiet", "--release", "-p", "chispa-runner", "-p", "chispa-tools"]);
    output(c, "cargo build")?;
    print!("{}", machine());
    for s in [llama2c(o, &default_chispa()?)?, llamacpp(o)?] {
        println!("\n## {}\n\n`{}`\n\n{}\n\n{}", s.title, s.command, s.note, s.body);
    }
    Ok(())
}

pub(crate) fn measure(o: &Options) -> Result<()> {
    if o.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let start = Instant::now();
    let machine = machine();
    let t = step("build (release: chispa, chispa-convert, quality reports)");
    let mut c = cargo();
    c.args(["build", "--quiet", "--release", "-p", "chispa-runner", "-p", "chispa-tools"]).args([
        "-p",
        "chispa-tests",
        "--bins",
    ]);
    output(c, "cargo build")?;
    done(t);
    let model = default_chispa()?;

    let mut sections = vec![
        tests_bin(
            "quality-report",
            &[],
            "Quality, stories260K against llama2.c",
            "Logits teacher-forced on run.c's reference ids over all 192 stored positions \
             (3 prompts × 64); greedy prefix: tokens identical to run.c's greedy continuation; \
             held-out: KL against chispa's f32 path on 256 tokens sampled with seed 1234.",
        )?,
        tests_bin(
            "hf-quality",
            &[],
            "Quality, Hugging Face reference models",
            "Logits teacher-forced on the reference `input_ids`, every position of the 5 \
             cases, against the transformers logits; the calibration lines say which groups \
             the default conversion chose.",
        )?,
        tests_bin(
            "int8-ablation",
            &[],
            "int8 error budget",
            "The forward pass in f32 with fake quantization switched per matrix (weights) and \
             per matmul input (activations); mean KL to transformers, the rest exact.",
        )?,
        tests_bin(
            "int8-ablation",
            &["stories260K-hf"],
            "int8 error budget, stories260K",
            "The same for the trained stories260K (its Hugging Face export), against \
             transformers.",
        )?,
        kv_quality()?,
        plans(&model)?,
        speed(o, &model)?,
        llama2c(o, &model)?,
        llamacpp(o)?,
        firmware(o)?,
    ];
    if o.full {
        sections.push(kernels_bench()?);
    }

    let mut doc = String::from(
        "# Measurements\n\n\
         Generated by `cargo xtask measure` (`--full` for the heavier parts): do not edit by \
         hand, run it again. Each section names the command that makes its table.\n\n\
         ## Machine\n\n",
    );
    doc.push_str(&machine);
    let _ = writeln!(
        doc,
        "| run | `cargo xtask measure{}{}{}` |",
        if o.full { " --full" } else { "" },
        if o.repeats == 3 { String::new() } else { format!(" --repeats {}", o.repeats) },
        if o.llama2c.is_some() { " --llama2c PATH" } else { "" },
    );
    if o.llama_bench.is_some() {
        doc.push_str("| llama.cpp | `--llama-bench PATH` |\n");
    }
    for s in &sections {
        let _ = write!(doc, "\n## {}\n\n`{}`\n\n{}\n\n{}", s.title, s.command, s.note, s.body);
        if !doc.ends_with('\n') {
            doc.push('\n');
        }
    }
    let base = std::fs::canonicalize(root()).unwrap_or_else(|_| root());
    let out = if o.out.is_absolute() { o.out.clone() } else { base.join(&o.out) };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(&out, doc.as_bytes())?;
    eprintln!("measure: wrote {} in {:.0} s", out.display(), start.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criterion_lines_keep_name_time_and_throughput() {
        let out = "Benchmarking DRAM read bytes/s/1t/256MiB: Analyzing\n\
                   DRAM read bytes/s/1t/256MiB\n\
                   \x20                       time:   [46.167 ms 54.877 ms 63.476 ms]\n\
                   \x20                       thrpt:  [3.9385 GiB/s 4.5556 GiB/s 5.4151 GiB/s]\n\
                   Found 1 outliers among 10 measurements (10.00%)\n\
                   \x20 1 (10.00%) high mild\n\
                   short                   time:   [1.0 ms 1.1 ms 1.2 ms]\n";
        assert_eq!(
            criterion_summary(out),
            [
                "DRAM read bytes/s/1t/256MiB: time [46.167 ms 54.877 ms 63.476 ms]",
                "DRAM read bytes/s/1t/256MiB: thrpt [3.9385 GiB/s 4.5556 GiB/s 5.4151 GiB/s]",
                "short: time [1.0 ms 1.1 ms 1.2 ms]",
            ]
        );
    }

    #[test]
    fn bench_line_parses() {
        let b = parse_bench(
            "m (int8): 260032 params, int8 — prompt 14429 tok/s, generation 10569 tok/s ≈ 3.2 \
             GB/s of weights (median of 2, 32 + 64 tokens, 1 thread(s), avx512 kernels)",
        )
        .expect("parses");
        assert_eq!((b.prompt, b.gen, b.backend.as_str()), (14429.0, 10569.0, "avx512"));
    }
}

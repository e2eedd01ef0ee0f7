//! `cargo xtask`: multi-step jobs around the firmware.
//!
//! * `cargo xtask qemu [--board qemu-m4|qemu-m33|qemu-m55|qemu-rv32] [--model F.chispa]
//!   [-p TEXT]... [--steps N] ...`: builds the firmware for the board with that model (and KV
//!   type and context, which size its arena), runs it under QEMU (the program and flags of
//!   the board's `[qemu]` section; always under a timeout), types the
//!   settings (`/set steps=N ...`) and each prompt on its console (semihosting stdin; on an
//!   `io = "rtt"` board, the RTT down-channel through QEMU's gdb stub: `rtt.rs`), and
//!   prints the console (the text as it comes, on stderr) and the decoded defmt log (stdout).
//!   Without `-p` the firmware runs its default prompt once; with `-i` the terminal stays
//!   connected to the console after the prompts. The exit status is the firmware's. With
//!   `--selftest` the firmware runs the kernel self-test instead
//!   (`chispa_core::kernels::selftest`: the board's kernels against the scalar code).
//! * `cargo xtask build --board NAME ...`: builds only (any board, real ones too) and prints
//!   the ELF's path and its flash and RAM use.
//! * `cargo xtask figures`: runs every QEMU board and writes `firmware/boards/measured.toml`,
//!   the measured figures `chispa plan` reads (checked by `test-qemu`).
//! * `cargo xtask fit-costs`: runs the firmware on every QEMU core over models of different
//!   shapes and KV caches and writes `firmware/boards/costs.toml`, the per-operation
//!   instruction costs `chispa plan` estimates speed with (checked by `test-qemu` on other
//!   model × KV combinations).
//! * `cargo xtask model [-o FILE]`: converts the default stories260K to int8 `.chispa`.
//! * `cargo xtask measure [--full]`: runs the measurement commands and writes
//!   `docs/measurements.md` (machine, commit, date, and each table with its command).
//!
//! Exit codes: 0 success, 1 a failed step (the message says which), 2 bad command line;
//! `qemu` passes the firmware's own exit code through.

use std::io::{BufRead as _, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use chispa_runner::data::default_model;
use chispa_runner::load::convert_llama2c;
use chispa_tools::writer::{write_atomic, WriteOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};

mod costs;
mod figures;
mod measure;
mod rtt;
mod test;

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build the firmware for a QEMU board and run it, printing the defmt log.
    Qemu(Firmware),
    /// Build the firmware for any board; print the ELF path and its sizes.
    Build(Firmware),
    /// The firmware-vs-desktop test: every QEMU board, the RAM budgets, a corrupted model,
    /// and the real-board builds. Fails on any difference.
    TestQemu {
        /// Boards to compare with the desktop (default: every QEMU board in firmware/boards).
        #[arg(long, value_delimiter = ',', value_parser = parse_board)]
        boards: Vec<Board>,
        /// New tokens.
        #[arg(long, short = 'n', default_value_t = 200)]
        steps: usize,
        /// Skip the real-board builds.
        #[arg(long)]
        no_real_boards: bool,
    },
    /// Run the firmware on every QEMU board and write firmware/boards/measured.toml
    /// (instructions per token, code bytes and stack per core: what `chispa plan` uses and
    /// `cargo xtask test-qemu` checks).
    Figures,
    /// Run the firmware on every QEMU core over models of different shapes and KV caches
    /// and fit the per-operation instruction costs `chispa plan` uses: writes
    /// firmware/boards/costs.toml and prints the residuals (about 20 minutes).
    FitCosts {
        /// Fit to the logs the last run saved under target/xtask/costs/ where there are
        /// some (after a change to the counting, not to the firmware).
        #[arg(long)]
        reuse: bool,
    },
    /// Convert the default model (stories260K, int8) to a .chispa file.
    Model {
        /// Output file.
        #[arg(long, short, default_value = "target/xtask/stories260K.chispa")]
        out: PathBuf,
    },
    /// Run the measurement commands and write docs/measurements.md: the machine, the commit,
    /// the date, and each table with the command that makes it (a few minutes).
    Measure {
        /// Also the heavier parts: the larger shapes and two threads, the criterion kernel
        /// benchmarks, the firmware with the k10v7 KV cache and with a 128-token context.
        #[arg(long)]
        full: bool,
        /// Repeats of each `chispa bench` (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Skip the firmware runs under QEMU (the file says so).
        #[arg(long)]
        no_qemu: bool,
        /// Output file (relative paths: from the repository root).
        #[arg(long, short, default_value = "docs/measurements.md")]
        out: PathBuf,
        /// A compiled llama2.c `run` (`gcc -O3 -o run run.c -lm`): adds chispa and llama2.c
        /// side by side on stories260K.
        #[arg(long, value_name = "PATH")]
        llama2c: Option<PathBuf>,
        /// A compiled llama.cpp `llama-bench` (CPU, native): adds chispa and llama.cpp side
        /// by side on the same random weights (stories15M and 42M shapes; 110M with --full),
        /// one and two threads.
        #[arg(long, value_name = "PATH")]
        llama_bench: Option<PathBuf>,
        /// Only the side-by-side comparisons (llama2.c, llama.cpp), printed to stdout; no file
        /// is written.
        #[arg(long)]
        versus: bool,
    },
}

/// A board: a folder in `firmware/boards/` (`chispa_boards`), loaded once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Board(&'static chispa_boards::Board);

/// Every board folder, read once (a bad folder is an error for every command that needs one).
fn all_boards() -> Result<&'static [chispa_boards::Board]> {
    static BOARDS: std::sync::OnceLock<Result<Vec<chispa_boards::Board>, String>> =
        std::sync::OnceLock::new();
    BOARDS
        .get_or_init(|| chispa_boards::all(&chispa_boards::boards_dir()).map_err(|e| e.to_string()))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The board named `name`.
pub(crate) fn board(name: &str) -> Result<Board> {
    let all = all_boards()?;
    match all.iter().find(|b| b.name == name) {
        Some(b) => Ok(Board(b)),
        None => {
            let known: Vec<&str> = all.iter().map(|b| b.name.as_str()).collect();
            bail!(
                "unknown board {name:?}: known ({}): {}",
                chispa_boards::boards_dir().display(),
                known.join(", ")
            )
        }
    }
}

fn parse_board(name: &str) -> Result<Board, String> {
    board(name).map_err(|e| format!("{e:#}"))
}

impl Board {
    fn name(self) -> &'static str {
        &self.0.name
    }
    fn target(self) -> &'static str {
        &self.0.target
    }
    fn cpu(self) -> &'static str {
        &self.0.core
    }
    /// The QEMU program and its machine flags (`board.toml`'s `[qemu]`).
    fn qemu(self) -> Option<(&'static str, Vec<&'static str>)> {
        self.0.qemu.as_ref().map(|q| {
            let mut args = vec!["-M", q.machine.as_str(), "-cpu", q.cpu.as_str()];
            args.extend(q.args.iter().map(String::as_str));
            (q.binary.as_str(), args)
        })
    }
    /// The board's folder.
    pub(crate) fn info(self) -> &'static chispa_boards::Board {
        self.0
    }
}

/// The QEMU boards (every folder with a `[qemu]` section).
pub(crate) fn qemu_boards() -> Result<Vec<Board>> {
    Ok(all_boards()?.iter().filter(|b| b.qemu.is_some()).map(Board).collect())
}

/// The QEMU boards whose instruction counts are measurements: semihosting ones (an RTT
/// board's count would include its waits for the host).
pub(crate) fn measured_boards() -> Result<Vec<Board>> {
    Ok(qemu_boards()?
        .into_iter()
        .filter(|b| b.info().io == chispa_boards::Io::Semihosting)
        .collect())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kv {
    F32,
    F16,
    Int8,
    K10v7,
}

#[derive(Args, Debug)]
struct Firmware {
    /// Board: a folder in firmware/boards (qemu-m4, qemu-m33, qemu-m55, qemu-rv32, stm32f411,
    /// esp32c3, ...).
    #[arg(long, value_parser = parse_board, default_value = "qemu-m4")]
    board: Board,
    /// Model to embed; default: stories260K int8, converted from the data directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A prompt typed on the firmware's console at run time (BOS is added); repeat it for
    /// several prompts in one run. A TEXT that starts with `/` is a console command, e.g.
    /// `-p "/set temperature=0.8 seed=7"` for the prompts after it. Without any, the firmware
    /// runs its default prompt, "Once upon a time".
    #[arg(long = "prompt", short = 'p', value_name = "TEXT")]
    prompts: Vec<String>,
    /// After the prompts, keep the terminal connected to the firmware's console (type
    /// prompts at `Prompt>`; Ctrl-D ends).
    #[arg(long, short = 'i')]
    interactive: bool,
    /// New tokens (set at run time: `/set steps=N`).
    #[arg(long, short = 'n', default_value_t = 200)]
    steps: usize,
    /// Sampling temperature, 0 = greedy (set at run time).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-p (set at run time).
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// PRNG seed (set at run time).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Context length, 0 = the model's (built in: it sizes the arena).
    #[arg(long, default_value_t = 0)]
    context: usize,
    /// KV-cache element type.
    #[arg(long, value_enum, default_value_t = Kv::Int8)]
    kv: Kv,
    /// QEMU boards: shrink RAM to this many KiB (proves a RAM budget: the link fails, or the
    /// stack check reports an overflow, if it does not fit).
    #[arg(long)]
    ram_kib: Option<u32>,
    /// Flip one bit of the embedded model at this byte offset (tests the error path).
    #[arg(long)]
    corrupt_byte: Option<usize>,
    /// Execute an undefined instruction at start (tests the fault handler: exit 5).
    #[arg(long)]
    fault_test: bool,
    /// Run the kernel self-test instead of generating: the active backend against the scalar
    /// code, bit for bit (exit 6 on a difference).
    #[arg(long)]
    selftest: bool,
    /// Seconds before QEMU is stopped.
    #[arg(long, default_value_t = 600)]
    timeout: u32,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn default_chispa() -> Result<PathBuf> {
    let out = root().join("target/xtask/stories260K.chispa");
    let (ckpt, tok) = default_model()?;
    let bytes = convert_llama2c(&ckpt, &tok, &WriteOptions::default())?;
    if std::fs::read(&out).ok().as_deref() != Some(bytes.as_slice()) {
        std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
        write_atomic(&out, bytes.as_slice())?;
    }
    Ok(out)
}

/// stories260K as the default `chispa-convert --dtype int4` writes it (int4 and int8 matrices),
/// in `target/xtask/` (rewritten only when the conversion changes).
pub(crate) fn int4_chispa() -> Result<PathBuf> {
    let out = root().join("target/xtask/stories260K-int4.chispa");
    let (ckpt, tok) = default_model()?;
    let opts = WriteOptions { dtype: chispa_core::format::DType::I4, ..WriteOptions::default() };
    let bytes = convert_llama2c(&ckpt, &tok, &opts)?;
    if std::fs::read(&out).ok().as_deref() != Some(bytes.as_slice()) {
        std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
        write_atomic(&out, bytes.as_slice())?;
    }
    Ok(out)
}

/// Builds the firmware; returns the ELF.
fn build(f: &Firmware) -> Result<PathBuf> {
    let model = match &f.model {
        Some(m) => std::fs::canonicalize(m).with_context(|| format!("model {}", m.display()))?,
        None => default_chispa()?,
    };
    let fw = root().join("firmware");
    let target_dir = fw.join("target").join(f.board.name());
    let kv = match f.kv {
        Kv::F32 => "f32",
        Kv::F16 => "f16",
        Kv::Int8 => "int8",
        Kv::K10v7 => "k10v7",
    };
    // A model that does not fit is reported in the plan's words, not as a linker error (with
    // --ram-kib, for that RAM; the link checks it again, static data included).
    plan_fits(f.board, &model, kv, f.context, f.ram_kib)?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&fw).args(["build", "--release"]);
    // The board's own features (its runtime, on RISC-V) and the self-test.
    let mut features = f.board.info().features.clone();
    if f.selftest {
        features.push("selftest".into());
    }
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    cmd.args(["--target", f.board.target()])
        .env("CHISPA_BOARD", f.board.name())
        .env("CARGO_TARGET_DIR", &target_dir)
        // No compiler vectorisation: Helium's vector floating point flushes subnormal numbers
        // to zero, so the scalar specification must stay scalar (the kernels that use vectors
        // are written to notice a flush and redo the work).
        .env(
            "RUSTFLAGS",
            format!("-C target-cpu={} -C no-vectorize-loops -C no-vectorize-slp", f.board.cpu()),
        )
        .env("CHISPA_MODEL", &model)
        .env("CHISPA_CONTEXT", f.context.to_string())
        .env("CHISPA_KV", kv)
        .env("CHISPA_RAM_KIB", f.ram_kib.map(|k| k.to_string()).unwrap_or_default())
        .env("CHISPA_CORRUPT_BYTE", f.corrupt_byte.map(|k| k.to_string()).unwrap_or_default())
        .env("CHISPA_FAULT_TEST", if f.fault_test { "1" } else { "0" })
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    // Prompt and sampling settings come at run time, on every board's console (`qemu` types
    // them: `console_input`): the build keeps its defaults, so one binary serves every prompt.
    for v in ["CHISPA_PROMPT", "CHISPA_STEPS", "CHISPA_TEMPERATURE", "CHISPA_TOP_P", "CHISPA_SEED"]
    {
        cmd.env_remove(v);
    }
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("the firmware build for {} failed", f.board.name());
    }
    Ok(target_dir.join(f.board.target()).join("release/chispa-fw"))
}

/// `chispa plan` for the build: an error with the plan's report when it does not fit.
fn plan_fits(
    board: Board,
    model: &Path,
    kv: &str,
    context: usize,
    ram_kib: Option<u32>,
) -> Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root())
        .args(["run", "--quiet", "--release", "-p", "chispa-runner", "--", "plan"])
        .arg(model)
        .args(["--board", board.name(), "--kv", kv, "--context", &context.to_string()]);
    if let Some(k) = ram_kib {
        cmd.args(["--ram-kib", &k.to_string()]);
    }
    let out = cmd.output().context("cannot run chispa plan")?;
    if out.status.success() {
        return Ok(());
    }
    let report = String::from_utf8_lossy(&out.stdout);
    let why = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) && report.contains("DOES NOT FIT") {
        bail!(
            "not building: the plan does not fit {}:\n{report}(`chispa plan` says so before the linker would; try a shorter --context or a smaller --kv)",
            board.name()
        );
    }
    bail!("chispa plan failed: {why}")
}

fn qemu(f: &Firmware) -> Result<i32> {
    exec_qemu(f, false).map(|r| r.code)
}

/// What the firmware's console is typed: the settings, then each prompt, one per line.
fn console_input(f: &Firmware) -> String {
    let mut s = format!(
        "/set steps={} temperature={} top-p={} seed={}\n",
        f.steps, f.temperature, f.top_p, f.seed
    );
    for p in &f.prompts {
        s.push_str(p);
        s.push('\n');
    }
    s
}

/// A finished QEMU run.
#[derive(Debug)]
pub(crate) struct QemuRun {
    /// QEMU's exit status: the firmware's exit code.
    pub(crate) code: i32,
    /// The decoded defmt log (empty unless captured).
    pub(crate) log: String,
    /// What the firmware wrote on its console (empty unless captured).
    pub(crate) console: String,
}

/// Builds and runs; with `capture`, returns the decoded log instead of printing it.
fn run_qemu(f: &Firmware, capture: bool) -> Result<(i32, String)> {
    exec_qemu(f, capture).map(|r| (r.code, r.log))
}

/// Builds and runs, typing [`console_input`] on the console; with `capture`, returns the
/// decoded log and the console's output instead of printing them.
fn exec_qemu(f: &Firmware, capture: bool) -> Result<QemuRun> {
    let Some((binary, machine)) = f.board.qemu() else {
        bail!("{} is a real board: use `cargo xtask build` and probe-rs (README)", f.board.name());
    };
    let elf = build(f)?;
    if f.board.info().io == chispa_boards::Io::Rtt {
        return exec_qemu_rtt(f, &elf, binary, &machine, capture);
    }
    let piped = || if capture { Stdio::piped() } else { Stdio::inherit() };
    // The console: semihosting's (QEMU's stdin and stderr), or the board's UART (QEMU's first
    // serial port on a Unix socket, which QEMU waits for before it starts the machine).
    let uart = f.board.info().uart.is_some();
    let socket = std::env::temp_dir().join(format!("chispa-uart-{}.sock", std::process::id()));
    let serial = if uart {
        let _ = std::fs::remove_file(&socket);
        vec![
            "-chardev".to_string(),
            format!("socket,id=uart0,path={},server=on,wait=on", socket.display()),
            "-serial".into(),
            "chardev:uart0".into(),
        ]
    } else {
        vec!["-serial".into(), "none".into()]
    };
    let mut q = Command::new("timeout")
        .arg(f.timeout.to_string())
        .arg(binary)
        .args(machine)
        .args(["-nographic", "-monitor", "none"])
        .args(&serial)
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-icount", "shift=0,align=off,sleep=off", "-kernel"])
        .arg(&elf)
        .stdin(if uart { Stdio::null() } else { Stdio::piped() })
        .stdout(Stdio::piped())
        .stderr(if uart || capture { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .with_context(|| {
            format!("cannot start {binary} (Debian: apt-get install qemu-system-arm for Arm, qemu-system-misc for RISC-V)")
        })?;
    let (mut input_end, output_end): (Box<dyn Write + Send>, Option<Box<dyn Read + Send>>) = if uart
    {
        // QEMU's own messages, but not its note that it waits for the socket.
        if let Some(e) = q.stderr.take() {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(e).lines().map_while(Result::ok) {
                    if !line.contains("QEMU waiting for connection") {
                        eprintln!("{line}");
                    }
                }
            });
        }
        let stream = connect(&socket, &mut q)?;
        (Box::new(stream.try_clone()?), Some(Box::new(stream)))
    } else {
        let stdin = q.stdin.take().context("no QEMU input")?;
        (Box::new(stdin), q.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>))
    };
    let input = console_input(f);
    let interactive = f.interactive && !capture;
    // The console's input: written by a thread (QEMU reads it as the firmware asks), then
    // ended, which the firmware sees as the end of input (semihosting: the pipe closes; a
    // UART: Ctrl-D); or the terminal's, copied on first.
    let writer = std::thread::spawn(move || {
        if input_end.write_all(input.as_bytes()).is_ok() && interactive {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut input_end);
        }
        if uart {
            let _ = input_end.write_all(&[4]);
        }
    });
    // The console's output, kept for the caller (and shown as it comes on a UART; semihosting's
    // is QEMU's stderr, already the terminal's when not captured).
    let echo = uart && !capture;
    let console = output_end.map(|mut e| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 256];
            while let Ok(n) = e.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if echo {
                    let mut err = std::io::stderr();
                    let _ = err.write_all(&buf[..n]).and_then(|()| err.flush());
                }
                all.extend_from_slice(&buf[..n]);
            }
            // Pieces need not be whole UTF-8 (byte tokens): read lossily, as the desktop's.
            String::from_utf8_lossy(&all).into_owned()
        })
    });
    let stdout = q.stdout.take().context("no QEMU output")?;
    let p = Command::new("defmt-print")
        .arg("-e")
        .arg(&elf)
        .stdin(stdout)
        .stdout(piped())
        .spawn()
        .context("cannot start defmt-print (cargo install defmt-print --locked)")?;
    let out = p.wait_with_output()?;
    let qs = q.wait()?;
    if uart {
        let _ = std::fs::remove_file(&socket);
    }
    if !interactive {
        let _ = writer.join();
    }
    let console = console.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
    if !out.status.success() {
        bail!("defmt-print failed: {}", out.status);
    }
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    match qs.code() {
        Some(124) => bail!("QEMU timed out after {} s", f.timeout),
        Some(code) => Ok(QemuRun { code, log, console }),
        None => bail!("QEMU was killed: {qs}"),
    }
}

/// Stops QEMU, or `timeout` running it, with SIGTERM (which `timeout` passes on), and reaps it.
pub(crate) fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// Connects to QEMU's socket at `path` (retrying while QEMU starts; an error if it ends).
pub(crate) fn connect(
    path: &Path,
    qemu: &mut std::process::Child,
) -> Result<std::os::unix::net::UnixStream> {
    let started = std::time::Instant::now();
    loop {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(_) if started.elapsed() < std::time::Duration::from_secs(10) => {
                if let Some(status) = qemu.try_wait()? {
                    bail!(
                        "QEMU ended before its socket {} could be reached: {status}",
                        path.display()
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                stop(qemu);
                bail!("cannot reach QEMU's socket {}: {e}", path.display());
            }
        }
    }
}

/// [`exec_qemu`] for a board whose log and console are RTT: `rtt::run` is the probe.
fn exec_qemu_rtt(
    f: &Firmware,
    elf: &Path,
    binary: &str,
    machine: &[&str],
    capture: bool,
) -> Result<QemuRun> {
    let mut qemu = Command::new(binary);
    qemu.args(machine)
        .args(["-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-icount", "shift=0,align=off,sleep=off", "-kernel"])
        .arg(elf);
    let mut p = Command::new("defmt-print")
        .arg("-e")
        .arg(elf)
        .stdin(Stdio::piped())
        .stdout(if capture { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .context("cannot start defmt-print (cargo install defmt-print --locked)")?;
    let log = p.stdin.take().context("no defmt-print input")?;
    let mut stderr = std::io::stderr();
    let echo: Option<&mut dyn std::io::Write> = if capture { None } else { Some(&mut stderr) };
    let interactive = f.interactive && !capture;
    let timeout = std::time::Duration::from_secs(f.timeout.into());
    let run = rtt::run(qemu, elf, &console_input(f), interactive, timeout, log, echo);
    // The log's pipe is closed (moved into `run`): defmt-print ends.
    let out = p.wait_with_output()?;
    let run = run?;
    if !out.status.success() {
        bail!("defmt-print failed: {}", out.status);
    }
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    let console = String::from_utf8_lossy(&run.console).into_owned();
    match run.status.code() {
        Some(code) => Ok(QemuRun { code, log, console }),
        None => bail!("QEMU was killed: {}", run.status),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Cmd::Qemu(f) => qemu(&f),
        Cmd::Build(f) => build(&f).map(|elf| {
            println!("{}", elf.display());
            if let Some(chip) = &f.board.info().probe_chip {
                eprintln!("flash and run: probe-rs run --chip {chip} {}", elf.display());
                eprintln!("(the log and the console over RTT: type prompts at its prompt; /help lists the commands, /quit halts)");
            }
            if let Some(command) = &f.board.info().flash_command {
                eprintln!("flash and run: {command} {}", elf.display());
                eprintln!("(type prompts in the monitor, Enter ends a line; the text comes back in the log)");
            }
            0
        }),
        Cmd::TestQemu { boards, steps, no_real_boards } => (|| {
            let boards = if boards.is_empty() {
                qemu_boards()?.into_iter().filter(|b| b.info().ci_qemu_tests).collect()
            } else {
                boards
            };
            test::test_qemu(&boards, steps, !no_real_boards)
        })()
        .map(|()| 0),
        Cmd::Figures => figures::figures().map(|()| 0),
        Cmd::FitCosts { reuse } => costs::fit_costs(reuse).map(|()| 0),
        Cmd::Measure { full, repeats, no_qemu, out, llama2c, llama_bench, versus } => {
            let o = measure::Options { full, repeats, no_qemu, out, llama2c, llama_bench };
            if versus { measure::versus(&o) } else { measure::measure(&o) }.map(|()| 0)
        }
        Cmd::Model { out } => default_model()
            .and_then(|(c, t)| convert_llama2c(&c, &t, &WriteOptions::default()))
            .and_then(|b| {
                if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                write_atomic(&out, b.as_slice())
            })
            .map(|()| {
                println!("{}", out.display());
                0
            }),
    };
    match r {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

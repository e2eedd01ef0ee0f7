//! `cargo xtask`: multi-step jobs around the firmware.
//!
//! * `cargo xtask qemu [--board qemu-m4|qemu-m33|qemu-m55] [--model F.chispa] [--prompt T]
//!   [--steps N] ...`: builds the firmware for the board with that model and those settings,
//!   runs it under QEMU (always under `timeout`) and prints the decoded defmt log. The exit
//!   status is the firmware's. With `--selftest` the firmware runs the kernel self-test
//!   instead (`chispa_core::kernels::selftest`: the board's kernels against the scalar code).
//! * `cargo xtask build --board NAME ...`: builds only (any board, real ones too) and prints
//!   the ELF's path and its flash and RAM use.
//! * `cargo xtask model [-o FILE]`: converts the default stories260K to int8 `.chispa`.
//! * `cargo xtask measure [--full]`: runs the measurement commands and writes
//!   `docs/measurements.md` (machine, commit, date, and each table with its command).
//!
//! Exit codes: 0 success, 1 a failed step (the message says which), 2 bad command line;
//! `qemu` passes the firmware's own exit code through.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use chispa_runner::data::default_model;
use chispa_runner::load::convert_llama2c;
use chispa_tools::writer::{write_atomic, WriteOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};

mod measure;
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
        /// Boards to compare with the desktop.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Board::QemuM4, Board::QemuM33, Board::QemuM55])]
        boards: Vec<Board>,
        /// New tokens.
        #[arg(long, short = 'n', default_value_t = 200)]
        steps: usize,
        /// Skip the real-board builds.
        #[arg(long)]
        no_real_boards: bool,
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
    },
}

/// Boards the firmware knows (`firmware/memory/<board>.x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Board {
    /// QEMU mps2-an386, Cortex-M4F.
    QemuM4,
    /// QEMU mps2-an505, Cortex-M33.
    QemuM33,
    /// QEMU mps3-an547, Cortex-M55 (Helium).
    QemuM55,
    /// STM32F411CE (build only).
    Stm32f411,
    /// Raspberry Pi RP2350 / Pico 2 (build only).
    Rp2350,
    /// nRF52840 (build only).
    Nrf52840,
}

impl Board {
    fn name(self) -> &'static str {
        match self {
            Self::QemuM4 => "qemu-m4",
            Self::QemuM33 => "qemu-m33",
            Self::QemuM55 => "qemu-m55",
            Self::Stm32f411 => "stm32f411",
            Self::Rp2350 => "rp2350",
            Self::Nrf52840 => "nrf52840",
        }
    }
    fn target(self) -> &'static str {
        match self {
            Self::QemuM4 | Self::Stm32f411 | Self::Nrf52840 => "thumbv7em-none-eabihf",
            _ => "thumbv8m.main-none-eabihf",
        }
    }
    fn cpu(self) -> &'static str {
        match self {
            Self::QemuM4 | Self::Stm32f411 | Self::Nrf52840 => "cortex-m4",
            Self::QemuM33 | Self::Rp2350 => "cortex-m33",
            Self::QemuM55 => "cortex-m55",
        }
    }
    fn qemu(self) -> Option<[&'static str; 4]> {
        match self {
            Self::QemuM4 => Some(["-M", "mps2-an386", "-cpu", "cortex-m4"]),
            Self::QemuM33 => Some(["-M", "mps2-an505", "-cpu", "cortex-m33"]),
            Self::QemuM55 => Some(["-M", "mps3-an547", "-cpu", "cortex-m55"]),
            _ => None,
        }
    }
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
    /// Board.
    #[arg(long, value_enum, default_value_t = Board::QemuM4)]
    board: Board,
    /// Model to embed; default: stories260K int8, converted from the data directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompt text (BOS is added).
    #[arg(long, short = 'p', default_value = "Once upon a time")]
    prompt: String,
    /// New tokens.
    #[arg(long, short = 'n', default_value_t = 200)]
    steps: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-p.
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// PRNG seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Context length (0 = the model's).
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
    /// Execute an undefined instruction at start (tests the HardFault handler: exit 5).
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
    let features =
        if f.selftest { format!("{},selftest", f.board.name()) } else { f.board.name().into() };
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&fw)
        .args(["build", "--release", "--no-default-features", "--features", &features])
        .args(["--target", f.board.target()])
        .env("CARGO_TARGET_DIR", &target_dir)
        // No compiler vectorisation: Helium's vector floating point flushes subnormal numbers
        // to zero, so the scalar specification must stay scalar (the kernels that use vectors
        // are written to notice a flush and redo the work).
        .env(
            "RUSTFLAGS",
            format!("-C target-cpu={} -C no-vectorize-loops -C no-vectorize-slp", f.board.cpu()),
        )
        .env("CHISPA_MODEL", &model)
        .env("CHISPA_PROMPT", &f.prompt)
        .env("CHISPA_STEPS", f.steps.to_string())
        .env("CHISPA_TEMPERATURE", f.temperature.to_string())
        .env("CHISPA_TOP_P", f.top_p.to_string())
        .env("CHISPA_SEED", f.seed.to_string())
        .env("CHISPA_CONTEXT", f.context.to_string())
        .env("CHISPA_KV", kv)
        .env("CHISPA_RAM_KIB", f.ram_kib.map(|k| k.to_string()).unwrap_or_default())
        .env("CHISPA_CORRUPT_BYTE", f.corrupt_byte.map(|k| k.to_string()).unwrap_or_default())
        .env("CHISPA_FAULT_TEST", if f.fault_test { "1" } else { "0" })
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("the firmware build for {} failed", f.board.name());
    }
    Ok(target_dir.join(f.board.target()).join("release/chispa-fw"))
}

fn qemu(f: &Firmware) -> Result<i32> {
    run_qemu(f, false).map(|(code, _)| code)
}

/// Builds and runs; with `capture`, returns the decoded log instead of printing it.
fn run_qemu(f: &Firmware, capture: bool) -> Result<(i32, String)> {
    let Some(machine) = f.board.qemu() else {
        bail!("{} is a real board: use `cargo xtask build` and probe-rs (README)", f.board.name());
    };
    let elf = build(f)?;
    let mut q = Command::new("timeout")
        .arg(f.timeout.to_string())
        .arg("qemu-system-arm")
        .args(machine)
        .args(["-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-icount", "shift=0,align=off,sleep=off", "-kernel"])
        .arg(&elf)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start qemu-system-arm (apt-get install qemu-system-arm)")?;
    let stdout = q.stdout.take().context("no QEMU output")?;
    let p = Command::new("defmt-print")
        .arg("-e")
        .arg(&elf)
        .stdin(stdout)
        .stdout(if capture { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .context("cannot start defmt-print (cargo install defmt-print --locked)")?;
    let out = p.wait_with_output()?;
    let qs = q.wait()?;
    if !out.status.success() {
        bail!("defmt-print failed: {}", out.status);
    }
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    match qs.code() {
        Some(124) => bail!("QEMU timed out after {} s", f.timeout),
        Some(c) => Ok((c, log)),
        None => bail!("QEMU was killed: {qs}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Cmd::Qemu(f) => qemu(&f),
        Cmd::Build(f) => build(&f).map(|elf| {
            println!("{}", elf.display());
            0
        }),
        Cmd::TestQemu { boards, steps, no_real_boards } => {
            test::test_qemu(&boards, steps, !no_real_boards).map(|()| 0)
        }
        Cmd::Measure { full, repeats, no_qemu, out, llama2c } => {
            measure::measure(&measure::Options { full, repeats, no_qemu, out, llama2c }).map(|()| 0)
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

//! Reads the board's folder (`boards/<CHISPA_BOARD>/board.toml` and `memory.x`, through
//! `chispa-boards`), checks and embeds the model, and turns the build settings (environment
//! variables, normally set by `cargo xtask`) into constants for `src/main.rs`.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `CHISPA_BOARD` | a folder in `boards/` | `qemu-m4` |
//! | `CHISPA_MODEL` | the `.chispa` file to embed (`cargo xtask model` makes one) | required |
//! | `CHISPA_PROMPT` | the prompt run when the console gives none | `Once upon a time` |
//! | `CHISPA_STEPS` | new tokens (default; `/set steps=N` at run time) | 200 |
//! | `CHISPA_TEMPERATURE`, `CHISPA_TOP_P`, `CHISPA_SEED` | sampling defaults (`/set`) | 0 (greedy), 0.9, 42 |
//! | `CHISPA_LINE_BYTES` | longest prompt line read at run time | 256 |
//! | `CHISPA_CONTEXT` | context length (0 = the model's) | 0 |
//! | `CHISPA_KV` | KV cache: `f32`, `f16`, `int8` or `k10v7` | `int8` |
//! | `CHISPA_RAM_KIB` | QEMU boards only: shrink RAM to prove a budget | the board's |
//! | `CHISPA_CORRUPT_BYTE` | flip one bit at this offset after the check (tests the error path) | none |
//! | `CHISPA_FAULT_TEST` | `1`: execute an undefined instruction at start (tests the fault handler) | off |
//!
//! A model that does not parse, or a session that does not fit the board's RAM, is a build
//! error with the reason.

use std::env;
use std::fs;
use std::path::PathBuf;

use chispa_core::{KvType, Model, SessionOptions};

fn fail(msg: String) -> ! {
    eprintln!("chispa-firmware build: {msg}");
    std::process::exit(1);
}

fn var(name: &str) -> Option<String> {
    println!("cargo::rerun-if-env-changed={name}");
    env::var(name).ok().filter(|s| !s.is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> T {
    match var(name) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| fail(format!("{name}={s:?} is not valid"))),
    }
}

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("no OUT_DIR".into())));
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());

    // Board.
    let board_name = var("CHISPA_BOARD").unwrap_or_else(|| "qemu-m4".into());
    let boards = dir.join("boards");
    let board = chispa_boards::load(&boards, &board_name).unwrap_or_else(|e| fail(e.to_string()));
    let target = env::var("TARGET").unwrap_or_default();
    if target != board.target {
        fail(format!(
            "{} is a {} board, but the target is {target}: build with --target {} (cargo xtask does)",
            board.name, board.target, board.target
        ));
    }
    // The board's runtime (cargo features, RISC-V): cargo xtask passes them.
    for feature in &board.features {
        let var = format!("CARGO_FEATURE_{}", feature.to_uppercase().replace('-', "_"));
        if env::var_os(&var).is_none() {
            fail(format!(
                "{} needs the firmware's feature {feature:?}: build with --features {} (cargo xtask does)",
                board.name,
                board.features.join(",")
            ));
        }
    }
    println!("cargo::rerun-if-changed={}", board.memory_x.display());
    println!("cargo::rerun-if-changed={}", boards.join(&board.name).join("board.toml").display());
    println!(
        "cargo::rustc-check-cfg=cfg(chispa_io, values(\"semihosting\", \"rtt\", \"esp-println\"))"
    );
    println!("cargo::rustc-cfg=chispa_io=\"{}\"", board.io.name());
    // The console: a UART when the board names one, else the io's (none on esp-println).
    let console = match (&board.uart, board.io) {
        (Some(_), _) => "cmsdk-uart",
        (None, chispa_boards::Io::Semihosting) => "semihosting",
        (None, chispa_boards::Io::Rtt) => "rtt",
        (None, chispa_boards::Io::EspPrintln) => "usb-serial-jtag",
    };
    println!(
        "cargo::rustc-check-cfg=cfg(chispa_console, values(\"semihosting\", \"rtt\", \"cmsdk-uart\", \"usb-serial-jtag\"))"
    );
    println!("cargo::rustc-cfg=chispa_console=\"{console}\"");
    // A QEMU board ends through semihosting, whatever its console (its exit code is QEMU's).
    println!("cargo::rustc-check-cfg=cfg(chispa_qemu)");
    if board.qemu.is_some() {
        println!("cargo::rustc-cfg=chispa_qemu");
    }
    // A board with a MODEL region links the model there (its memory.x places `.model`).
    println!("cargo::rustc-check-cfg=cfg(chispa_model_region)");
    if board.model_region.is_some() {
        println!("cargo::rustc-cfg=chispa_model_region");
    }
    let mem_path = board.memory_x.clone();
    let mut memory = fs::read_to_string(&mem_path)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", mem_path.display())));
    let ram_limit: Option<u64> = var("CHISPA_RAM_KIB").map(|s| {
        s.parse().unwrap_or_else(|_| fail(format!("CHISPA_RAM_KIB={s:?} is not a number")))
    });
    if let Some(kib) = ram_limit {
        if board.qemu.is_none() {
            fail("CHISPA_RAM_KIB is for QEMU boards only".into());
        }
        let line = memory
            .lines()
            .find(|l| l.trim_start().starts_with("RAM"))
            .unwrap_or_else(|| fail("memory.x has no RAM line".into()))
            .to_string();
        let head = line.split("LENGTH").next().unwrap_or_default();
        memory = memory.replace(&line, &format!("{head}LENGTH = {kib}K"));
    }
    if board.link == "link.x" {
        // cortex-m-rt's and riscv-rt's link.x include memory.x, the board's. Keep room for the
        // stack (measured high-water mark 2.7 KiB on stories260K, see README): a model whose
        // arena leaves less fails to link instead of overflowing at run time.
        let reserve: u32 = parsed("CHISPA_STACK_RESERVE", 4096);
        memory.push_str(&format!(
            "\n/* Added by build.rs: the stack reserve. */\n\
             ASSERT(_stack_start - __sheap >= {reserve}, \"chispa: arena + static data leave less than {reserve} bytes of stack on this board (see `chispa plan`)\");\n"
        ));
        fs::write(out.join("memory.x"), &memory).unwrap_or_else(|e| fail(format!("memory.x: {e}")));
        println!("cargo::rustc-link-search={}", out.display());
    }
    // Otherwise the runtime brings its memory map (esp-hal's linkall.x, which also keeps a
    // minimum stack) and the board's memory.x only describes it for `chispa plan`.
    println!("cargo::rustc-link-arg=-T{}", board.link);
    println!("cargo::rustc-link-arg=-Tdefmt.x");
    println!("cargo::rustc-link-arg=--nmagic");

    // Model.
    let model_path = var("CHISPA_MODEL").unwrap_or_else(|| {
        fail("CHISPA_MODEL is not set: run `cargo xtask qemu` or `cargo xtask build` from the repository root, or set it to a .chispa file".into())
    });
    println!("cargo::rerun-if-changed={model_path}");
    let bytes = fs::read(&model_path).unwrap_or_else(|e| fail(format!("{model_path}: {e}")));
    // Parse from a 16-byte-aligned copy (the embedded copy is aligned alike).
    let mut buf = vec![0u8; bytes.len() + 16];
    let skip = buf.as_ptr().align_offset(16);
    buf[skip..skip + bytes.len()].copy_from_slice(&bytes);
    let model = Model::parse(&buf[skip..skip + bytes.len()])
        .unwrap_or_else(|e| fail(format!("{model_path} is not a valid .chispa model: {e}")));

    // Settings.
    let prompt = var("CHISPA_PROMPT").unwrap_or_else(|| "Once upon a time".into());
    let steps: usize = parsed("CHISPA_STEPS", 200);
    let temperature: f32 = parsed("CHISPA_TEMPERATURE", 0.0);
    let top_p: f32 = parsed("CHISPA_TOP_P", 0.9);
    let seed: u64 = parsed("CHISPA_SEED", 42);
    let context: usize = parsed("CHISPA_CONTEXT", 0);
    let kv_name = var("CHISPA_KV").unwrap_or_else(|| "int8".into());
    let kv = match kv_name.as_str() {
        "f32" => KvType::F32,
        "f16" => KvType::F16,
        "int8" => KvType::I8,
        "k10v7" => KvType::K10V7,
        other => fail(format!("CHISPA_KV={other:?}: use f32, f16, int8 or k10v7")),
    };
    let options = SessionOptions { context, kv };
    let plan = model.plan(&options).unwrap_or_else(|e| fail(format!("cannot plan: {e}")));
    let line_bytes: usize = parsed("CHISPA_LINE_BYTES", 256);
    if line_bytes == 0 {
        fail("CHISPA_LINE_BYTES must be at least 1".into());
    }
    // The encoder writes at most one id per byte, BOS and a dummy prefix before merging.
    let prompt_capacity = line_bytes.max(prompt.len()) + 3;
    // The tokenizer's merge scratch borrows the arena before each session starts.
    let scratch = prompt_capacity * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN * 4 + 4;
    if plan.arena_bytes < scratch {
        fail(format!(
            "the arena ({} bytes) is smaller than the tokenizer's scratch for {line_bytes}-byte prompt lines ({scratch} bytes): lower CHISPA_LINE_BYTES",
            plan.arena_bytes
        ));
    }

    let mut model_out = bytes.clone();
    if let Some(off) = var("CHISPA_CORRUPT_BYTE") {
        let off: usize =
            off.parse().unwrap_or_else(|_| fail("CHISPA_CORRUPT_BYTE: not a number".into()));
        let b = model_out
            .get_mut(off)
            .unwrap_or_else(|| fail("CHISPA_CORRUPT_BYTE beyond the file".into()));
        *b ^= 0x10;
    }
    fs::write(out.join("model.chispa"), &model_out).unwrap_or_else(|e| fail(format!("{e}")));

    let kv_variant = match kv {
        KvType::F32 => "F32",
        KvType::F16 => "F16",
        KvType::I8 => "I8",
        KvType::K10V7 => "K10V7",
    };
    let settings = format!(
        "/// Board name.\npub const BOARD: &str = {board:?};\n\
         /// The instruction counter's clock under QEMU `-icount shift=0` (Hz), 0 on real boards.\npub const COUNTER_HZ: u64 = {hz};\n\
         /// The prompt run when the console gives none.\npub const PROMPT: &str = {prompt:?};\n\
         /// Longest prompt line read at run time (bytes).\npub const LINE_BYTES: usize = {line_bytes};\n\
         /// Prompt token capacity (a line or the default prompt, BOS and a dummy prefix).\npub const PROMPT_CAPACITY: usize = {prompt_capacity};\n\
         /// New tokens (default).\npub const STEPS: usize = {steps};\n\
         /// Sampling temperature (default).\npub const TEMPERATURE: f32 = {temperature:?};\n\
         /// Top-p (default).\npub const TOP_P: f32 = {top_p:?};\n\
         /// Seed (default).\npub const SEED: u64 = {seed};\n\
         /// Context (0 = the model's).\npub const CONTEXT: usize = {context};\n\
         /// KV cache type.\npub const KV: chispa_core::KvType = chispa_core::KvType::{kv_variant};\n\
         /// Arena bytes (`Model::plan` at build time; checked again at run time).\npub const ARENA_BYTES: usize = {arena};\n\
         /// Model file bytes.\npub const MODEL_BYTES: usize = {model_len};\n\
         /// Execute an undefined instruction at start (tests the HardFault handler).\npub const FAULT_TEST: bool = {fault_test};\n\
         /// The console UART's registers (0: none).\n#[allow(dead_code)]\npub const UART_BASE: usize = {uart_base:#x};\n\
         /// The console UART's baud divider (core clock / baud).\n#[allow(dead_code)]\npub const UART_BAUDDIV: u32 = {uart_div};\n",
        board = board.name,
        hz = board.qemu.as_ref().map_or(0, |q| q.counter_hz),
        arena = plan.arena_bytes,
        model_len = bytes.len(),
        fault_test = var("CHISPA_FAULT_TEST").as_deref() == Some("1"),
        uart_base = board.uart.as_ref().map_or(0, |u| u.base),
        uart_div = board.uart.as_ref().map_or(0, |u| (board.clock_hz / u.baud.max(1)).max(16)),
    );
    let mut settings = settings;
    if !board.boot_block.is_empty() {
        let words: Vec<String> = board.boot_block.iter().map(|w| format!("{w:#010x}")).collect();
        settings.push_str(&format!(
            "/// The board's boot block (`board.toml`), placed by its `memory.x`.\n\
             #[link_section = \".start_block\"]\n#[used]\n\
             pub static BOOT_BLOCK: [u32; {}] = [{}];\n",
            words.len(),
            words.join(", ")
        ));
    }
    fs::write(out.join("settings.rs"), settings).unwrap_or_else(|e| fail(format!("{e}")));
    println!("cargo::rerun-if-changed=build.rs");
}

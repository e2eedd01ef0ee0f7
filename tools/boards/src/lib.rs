//! The boards chispa knows, one folder each: `firmware/boards/<name>/board.toml` (what the
//! board is, its target, core, clock, console, how it runs) and `memory.x` (its memory map,
//! the linker's `MEMORY`, read here for flash and RAM), and the figures measured under QEMU per
//! core, `firmware/boards/measured.toml` (written by `cargo xtask figures`), and the fitted
//! per-operation instruction costs per core, `firmware/boards/costs.toml` (written by
//! `cargo xtask fit-costs`).
//!
//! The firmware's `build.rs`, the xtask and `chispa plan` (through `chispa-runner`'s build
//! script) all read them with this crate, so adding a board is adding a folder.
//!
//! `board.toml` is a small subset of TOML: `[section]` headers, `key = "text"`,
//! `key = 123` (or `0x…`, `_` allowed), `key = [1, 0x2]`, and `#` comments.
//!
//! ```toml
//! description = "QEMU mps2-an386 (Arm MPS2 FPGA, AN386)"
//! core = "cortex-m4"                 # -C target-cpu=, and the figures' key
//! target = "thumbv7em-none-eabihf"
//! clock_hz = 25_000_000              # for chispa plan's tokens/s estimate
//! io = "semihosting"                 # or "rtt", "esp-println": the defmt logger, the console, exit
//! features = "riscv-rt"              # optional: the firmware's cargo features for this board
//! link = "link.x"                    # optional: the runtime's linker script (default link.x)
//!
//! [qemu]                             # only for boards that run under QEMU (and in CI)
//! binary = "qemu-system-arm"
//! machine = "mps2-an386"             # -M
//! cpu = "cortex-m4"                  # -cpu
//! args = "-bios none"                # optional: more flags, split at spaces
//! counter_hz = 25_000_000            # the instruction counter's clock under -icount shift=0:
//!                                    # instructions = ticks * 1e9 / this
//!
//! [uart]                             # optional: the console on a CMSDK APB UART (the Arm
//! base = 0x4000_4000                 # MPS2/MPS3 boards') instead of the io's; the log stays
//! baud = 115_200                     # the io's (default 115200)
//!
//! [probe]                            # real boards: probe-rs run --chip
//! chip = "STM32F411CEUx"
//!
//! [flash]                            # or, for real boards without probe-rs, the flashing
//! command = "espflash flash --monitor"  # command (the ELF's path goes after it)
//!
//! [ci]
//! context = 256                      # the context the CI build uses (0 = the model's)
//! qemu_tests = false                 # test-qemu skips its suite here (default true)
//! ```
//!
//! A `memory.x` may add a `MODEL` region beside `FLASH` and `RAM`: the firmware's build then
//! links the model there (section `.model`, placed by that `memory.x`) and the code in
//! `FLASH`.
//!
//! With `link = "link.x"` (cortex-m-rt, riscv-rt) the firmware links this folder's `memory.x`;
//! a runtime with its own memory map (esp-hal's `linkall.x`) links its own, and `memory.x`
//! only describes the flash and RAM the firmware may use.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// How a board logs, takes input and exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// Semihosting (QEMU): defmt on stdout, the console on stdin/stderr, exit codes.
    Semihosting,
    /// RTT through a debug probe (probe-rs; under QEMU, `cargo xtask qemu` over QEMU's gdb
    /// stub): defmt on up-channel 0, the console on up-channel 1 and down-channel 0.
    Rtt,
    /// esp-println: defmt frames on the USB-serial-JTAG for `espflash monitor --log-format
    /// defmt`; the console's input from the same port, its text in the log.
    EspPrintln,
}

impl Io {
    /// As `board.toml` and the firmware's `chispa_io` cfg spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Semihosting => "semihosting",
            Self::Rtt => "rtt",
            Self::EspPrintln => "esp-println",
        }
    }
}

/// A UART that carries the console instead of the `io`'s (`[uart]` in `board.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Its register block's address.
    pub base: u64,
    /// Bits per second.
    pub baud: u64,
}

/// How a QEMU board is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qemu {
    /// The QEMU program (`qemu-system-arm`, `qemu-system-riscv32`).
    pub binary: String,
    /// `-M`.
    pub machine: String,
    /// `-cpu`.
    pub cpu: String,
    /// More flags for this machine (e.g. `-bios none`).
    pub args: Vec<String>,
    /// The instruction counter's clock under `-icount shift=0` (Hz): SysTick's on Arm, 1 GHz
    /// for RISC-V's `minstret` (QEMU counts virtual nanoseconds there).
    pub counter_hz: u64,
}

/// One board folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    /// The folder's name (`--board`).
    pub name: String,
    /// What it is.
    pub description: String,
    /// CPU core (`-C target-cpu=`).
    pub core: String,
    /// Rust target triple.
    pub target: String,
    /// Core clock (Hz) for the tokens/s estimate.
    pub clock_hz: u64,
    /// Logger, console and exit.
    pub io: Io,
    /// A UART console (a CMSDK APB UART, the Arm MPS2/MPS3 boards'), replacing the `io`'s
    /// console; the log stays the `io`'s.
    pub uart: Option<Uart>,
    /// The firmware's cargo features for this board (its runtime, on RISC-V).
    pub features: Vec<String>,
    /// The runtime's linker script (`link.x`: cortex-m-rt's and riscv-rt's, which include
    /// this folder's `memory.x`).
    pub link: String,
    /// Present when the board runs under QEMU.
    pub qemu: Option<Qemu>,
    /// probe-rs chip name, for real boards.
    pub probe_chip: Option<String>,
    /// The flashing command for real boards without probe-rs (the ELF's path is appended).
    pub flash_command: Option<String>,
    /// Words the firmware places in a `.start_block` section (a boot ROM's image header,
    /// e.g. the RP2350's IMAGE_DEF; `memory.x` places the section).
    pub boot_block: Vec<u32>,
    /// The context length CI builds it with (0 = the model's).
    pub ci_context: usize,
    /// Whether `cargo xtask test-qemu` runs its QEMU suite on it (`[ci] qemu_tests`, default
    /// true; a board with its own check says false).
    pub ci_qemu_tests: bool,
    /// Flash (origin, length) from `memory.x`.
    pub flash: (u64, u64),
    /// RAM (origin, length) from `memory.x`.
    pub ram: (u64, u64),
    /// A separate region for the model (origin, length), `MODEL` in `memory.x`: the model
    /// goes there instead of `FLASH`, which keeps the code.
    pub model_region: Option<(u64, u64)>,
    /// The `memory.x` file.
    pub memory_x: PathBuf,
}

/// A board folder or figures file that cannot be read; the text says which and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err<T>(msg: String) -> Result<T, Error> {
    Err(Error(msg))
}

/// `firmware/boards` in this repository.
pub fn boards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware/boards")
}

/// A value in the TOML subset.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Text(String),
    Int(u64),
    Float(f64),
    Ints(Vec<u64>),
}

/// `section.key` (top-level keys have no section) to value.
type Table = BTreeMap<String, Value>;

fn int(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses the TOML subset described in the crate docs.
fn parse_toml(text: &str, file: &str) -> Result<Table, Error> {
    let mut table = Table::new();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let at = || format!("{file}:{}", i + 1);
        // The comment starts at the first `#` outside a string.
        let mut quoted = false;
        let end = raw
            .char_indices()
            .find(|&(_, c)| {
                quoted ^= c == '"';
                c == '#' && !quoted
            })
            .map_or(raw.len(), |(h, _)| h);
        let line = raw[..end].trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{}.", name.trim());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return err(format!("{}: expected `key = value`", at()));
        };
        let value = value.trim();
        let v = if let Some(s) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Value::Text(s.to_string())
        } else if let Some(list) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let items: Option<Vec<u64>> =
                list.split(',').filter(|s| !s.trim().is_empty()).map(int).collect();
            Value::Ints(items.ok_or_else(|| Error(format!("{}: a list of numbers", at())))?)
        } else if let Some(v) = int(value) {
            Value::Int(v)
        } else if value == "true" || value == "false" {
            Value::Int(u64::from(value == "true"))
        } else {
            let v: f64 = value
                .replace('_', "")
                .parse()
                .map_err(|_| Error(format!("{}: {value:?} is no value", at())))?;
            Value::Float(v)
        };
        if table.insert(format!("{section}{}", key.trim()), v).is_some() {
            return err(format!("{}: {} given twice", at(), key.trim()));
        }
    }
    Ok(table)
}

struct Fields<'a> {
    table: Table,
    file: &'a str,
}

impl Fields<'_> {
    fn text(&mut self, key: &str) -> Result<Option<String>, Error> {
        match self.table.remove(key) {
            None => Ok(None),
            Some(Value::Text(s)) => Ok(Some(s)),
            Some(_) => err(format!("{}: {key} must be a \"text\"", self.file)),
        }
    }
    fn need_text(&mut self, key: &str) -> Result<String, Error> {
        self.text(key)?.ok_or_else(|| Error(format!("{}: {key} is missing", self.file)))
    }
    fn int(&mut self, key: &str) -> Result<Option<u64>, Error> {
        match self.table.remove(key) {
            None => Ok(None),
            Some(Value::Int(v)) => Ok(Some(v)),
            Some(_) => err(format!("{}: {key} must be a number", self.file)),
        }
    }
    fn need_number(&mut self, key: &str) -> Result<f64, Error> {
        match self.table.remove(key) {
            Some(Value::Int(v)) => Ok(v as f64),
            Some(Value::Float(v)) => Ok(v),
            None => err(format!("{}: {key} is missing", self.file)),
            Some(_) => err(format!("{}: {key} must be a number", self.file)),
        }
    }
    fn need_int(&mut self, key: &str) -> Result<u64, Error> {
        self.int(key)?.ok_or_else(|| Error(format!("{}: {key} is missing", self.file)))
    }
    fn ints(&mut self, key: &str) -> Result<Vec<u64>, Error> {
        match self.table.remove(key) {
            None => Ok(Vec::new()),
            Some(Value::Ints(v)) => Ok(v),
            Some(_) => err(format!("{}: {key} must be a list of numbers", self.file)),
        }
    }
    fn done(self) -> Result<(), Error> {
        match self.table.keys().next() {
            None => Ok(()),
            Some(k) => err(format!("{}: unknown key {k}", self.file)),
        }
    }
}

/// A size in a linker script: `4M`, `512K`, `0x1000`, `4096`.
fn size(s: &str) -> Option<u64> {
    let s = s.trim().trim_end_matches(',').trim();
    if let Some(k) = s.strip_suffix('K') {
        return int(k).map(|v| v * 1024);
    }
    if let Some(m) = s.strip_suffix('M') {
        return int(m).map(|v| v * 1024 * 1024);
    }
    int(s)
}

/// `(ORIGIN, LENGTH)` of the region `name` in a `memory.x`.
pub fn region(memory_x: &str, name: &str) -> Option<(u64, u64)> {
    let line = memory_x.lines().find(|l| {
        let l = l.trim_start();
        l.strip_prefix(name).is_some_and(|r| r.trim_start().starts_with(':'))
            && l.contains("ORIGIN")
    })?;
    let origin = line.split("ORIGIN").nth(1)?.trim_start().strip_prefix('=')?;
    let origin = origin.split(',').next()?;
    let length = line.split("LENGTH").nth(1)?.trim_start().strip_prefix('=')?;
    Some((size(origin)?, size(length)?))
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Reads `dir/<name>/board.toml` and `memory.x`.
///
/// # Errors
/// A missing folder or file, a key that is missing, unknown or of the wrong kind, a
/// `memory.x` without `FLASH` and `RAM` regions.
pub fn load(dir: &Path, name: &str) -> Result<Board, Error> {
    let folder = dir.join(name);
    if !folder.join("board.toml").is_file() {
        let known = names(dir).unwrap_or_default().join(", ");
        return err(format!(
            "unknown board {name:?} (no {}); known: {known}",
            folder.join("board.toml").display()
        ));
    }
    let path = folder.join("board.toml");
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| Error(format!("{file}: {e}")))?;
    let mut f = Fields { table: parse_toml(&text, &file)?, file: &file };
    let io = match f.need_text("io")?.as_str() {
        "semihosting" => Io::Semihosting,
        "rtt" => Io::Rtt,
        "esp-println" => Io::EspPrintln,
        other => {
            return err(format!(
                "{file}: io = {other:?}: use \"semihosting\", \"rtt\" or \"esp-println\""
            ))
        }
    };
    let qemu = match f.text("qemu.machine")? {
        Some(machine) => Some(Qemu {
            binary: f.need_text("qemu.binary")?,
            machine,
            cpu: f.need_text("qemu.cpu")?,
            args: words(&f.text("qemu.args")?.unwrap_or_default()),
            counter_hz: f.need_int("qemu.counter_hz")?,
        }),
        None => None,
    };
    let boot_block = f
        .ints("boot_block")?
        .into_iter()
        .map(|w| {
            u32::try_from(w).map_err(|_| Error(format!("{file}: boot_block: {w:#x} is not 32-bit")))
        })
        .collect::<Result<Vec<u32>, Error>>()?;
    let memory_x = folder.join("memory.x");
    let mem = std::fs::read_to_string(&memory_x)
        .map_err(|e| Error(format!("{}: {e}", memory_x.display())))?;
    let reg = |n: &str| {
        region(&mem, n).ok_or_else(|| Error(format!("{}: no {n} region", memory_x.display())))
    };
    let board = Board {
        name: name.to_string(),
        description: f.need_text("description")?,
        core: f.need_text("core")?,
        target: f.need_text("target")?,
        clock_hz: f.need_int("clock_hz")?,
        io,
        uart: match f.int("uart.base")? {
            Some(base) => Some(Uart { base, baud: f.int("uart.baud")?.unwrap_or(115_200) }),
            None => None,
        },
        features: words(&f.text("features")?.unwrap_or_default().replace(',', " ")),
        link: f.text("link")?.unwrap_or_else(|| "link.x".into()),
        qemu,
        probe_chip: f.text("probe.chip")?,
        flash_command: f.text("flash.command")?,
        boot_block,
        ci_context: usize::try_from(f.int("ci.context")?.unwrap_or(0)).unwrap_or(0),
        ci_qemu_tests: f.int("ci.qemu_tests")?.unwrap_or(1) != 0,
        flash: reg("FLASH")?,
        ram: reg("RAM")?,
        model_region: region(&mem, "MODEL"),
        memory_x,
    };
    f.done()?;
    match (board.qemu.is_some(), board.io) {
        (true, Io::EspPrintln) => {
            return err(format!(
                "{file}: a QEMU board's io is \"semihosting\" or \"rtt\", not \"esp-println\""
            ))
        }
        (false, Io::Semihosting) => {
            return err(format!("{file}: io = \"semihosting\" needs QEMU: a [qemu] section"))
        }
        _ => {}
    }
    Ok(board)
}

/// The board folders' names, sorted.
///
/// # Errors
/// When `dir` cannot be read.
pub fn names(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("board.toml").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// Every board: QEMU boards first, then the real ones, each group by name.
///
/// # Errors
/// As [`load`], for the first folder that fails.
pub fn all(dir: &Path) -> Result<Vec<Board>, Error> {
    let mut boards = names(dir)?.iter().map(|n| load(dir, n)).collect::<Result<Vec<_>, _>>()?;
    boards.sort_by_key(|b| (b.qemu.is_none(), b.name.clone()));
    Ok(boards)
}

/// What the firmware measured under QEMU for a core (`cargo xtask figures`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figures {
    /// Core.
    pub core: String,
    /// The QEMU board it was measured on.
    pub board: String,
    /// Mean instructions per generated token.
    pub instructions_per_token: u64,
    /// Flash bytes besides the model (code, vector table, constants).
    pub code_bytes: u64,
    /// Stack high-water mark.
    pub stack_bytes: u64,
}

/// The figures file: `measured.toml` beside the board folders.
pub fn figures_path(dir: &Path) -> PathBuf {
    dir.join("measured.toml")
}

/// Reads the figures file: one `[core]` section per core.
///
/// # Errors
/// A missing file or a section without its numbers.
pub fn figures(dir: &Path) -> Result<Vec<Figures>, Error> {
    let path = figures_path(dir);
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error(format!("{file}: {e} (run `cargo xtask figures`)")))?;
    let table = parse_toml(&text, &file)?;
    let cores: std::collections::BTreeSet<String> =
        table.keys().filter_map(|k| k.split_once('.').map(|(c, _)| c.to_string())).collect();
    let mut f = Fields { table, file: &file };
    let mut out = Vec::new();
    for core in cores {
        let key = |k: &str| format!("{core}.{k}");
        out.push(Figures {
            board: f.need_text(&key("board"))?,
            instructions_per_token: f.need_int(&key("instructions_per_token"))?,
            code_bytes: f.need_int(&key("code_bytes"))?,
            stack_bytes: f.need_int(&key("stack_bytes"))?,
            core,
        });
    }
    f.done()?;
    Ok(out)
}

/// The figures file's text for `figs` (what `cargo xtask figures` writes).
pub fn figures_toml(figs: &[Figures], how: &str) -> String {
    let mut s = format!(
        "# Measured under QEMU by `cargo xtask figures` ({how}); do not edit by hand.\n\
         # Read by chispa plan (through chispa-runner's build script) and checked by\n\
         # `cargo xtask test-qemu`.\n"
    );
    for f in figs {
        s.push_str(&format!(
            "\n[{}]\nboard = \"{}\"\ninstructions_per_token = {}\ncode_bytes = {}\nstack_bytes = {}\n",
            f.core, f.board, f.instructions_per_token, f.code_bytes, f.stack_bytes
        ));
    }
    s
}

/// Fitted per-feature instruction costs of a core (`cargo xtask fit-costs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Costs {
    /// Core.
    pub core: String,
    /// The QEMU board the fit ran on.
    pub board: String,
    /// `(feature, instructions per unit)`, in the file's order.
    pub costs: Vec<(String, f64)>,
}

/// The costs file: `costs.toml` beside the board folders.
pub fn costs_path(dir: &Path) -> PathBuf {
    dir.join("costs.toml")
}

/// Reads the costs file: one `[core]` section per core, `board = "..."` and
/// `feature = instructions` lines.
///
/// # Errors
/// A missing file, a section without its board, a cost that is not a number or negative.
pub fn costs(dir: &Path) -> Result<Vec<Costs>, Error> {
    let path = costs_path(dir);
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error(format!("{file}: {e} (run `cargo xtask fit-costs`)")))?;
    let table = parse_toml(&text, &file)?;
    let mut order: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let l = line.split('#').next().unwrap_or_default().trim();
        if let Some(core) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            order.push((core.trim().to_string(), String::new()));
        } else if let (Some((k, _)), Some(last)) = (l.split_once('='), order.last()) {
            order.push((last.0.clone(), k.trim().to_string()));
        }
    }
    let mut f = Fields { table, file: &file };
    let mut out: Vec<Costs> = Vec::new();
    for (core, key) in order {
        if key.is_empty() {
            let board = f.need_text(&format!("{core}.board"))?;
            out.push(Costs { core, board, costs: Vec::new() });
        } else if key != "board" {
            let v = f.need_number(&format!("{core}.{key}"))?;
            if !(v >= 0.0 && v.is_finite()) {
                return err(format!("{file}: [{core}] {key} = {v}: a cost is a number ≥ 0"));
            }
            if let Some(c) = out.last_mut() {
                c.costs.push((key, v));
            }
        }
    }
    f.done()?;
    Ok(out)
}

/// The costs file's text (what `cargo xtask fit-costs` writes): `header` lines become
/// comments at the top, `notes[i]` comment lines after core `i`'s section.
pub fn costs_toml(costs: &[Costs], header: &str, notes: &[String]) -> String {
    let mut s = String::new();
    for l in header.lines() {
        s.push_str(&format!("# {l}\n").replace("# \n", "#\n"));
    }
    for (i, c) in costs.iter().enumerate() {
        s.push_str(&format!("\n[{}]\nboard = \"{}\"\n", c.core, c.board));
        for (k, v) in &c.costs {
            s.push_str(&format!("{k} = {v:.6}\n"));
        }
        if let Some(n) = notes.get(i) {
            for l in n.lines() {
                s.push_str(&format!("# {l}\n"));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_subset() {
        let t = parse_toml("a = \"x # y\" # c\n[s]\nb = 0x10_00\nc = [1, 0x2,]\n", "t")
            .unwrap_or_default();
        assert_eq!(t.get("a"), Some(&Value::Text("x # y".into())));
        assert_eq!(t.get("s.b"), Some(&Value::Int(4096)));
        assert_eq!(t.get("s.c"), Some(&Value::Ints(vec![1, 2])));
        assert!(parse_toml("a = 1\na = 2\n", "t").is_err());
        assert!(parse_toml("a 1\n", "t").is_err());
        assert!(parse_toml("a = nope\n", "t").is_err());
        assert_eq!(
            parse_toml("a = 1.5e-3\n", "t").unwrap_or_default().get("a"),
            Some(&Value::Float(1.5e-3))
        );
    }

    #[test]
    fn memory_regions() {
        let m = "MEMORY\n{\n  FLASH : ORIGIN = 0x10000000, LENGTH = 4096K\n  RAM   : ORIGIN = 0x20000000, LENGTH = 512K\n}\n";
        assert_eq!(region(m, "FLASH"), Some((0x1000_0000, 4096 * 1024)));
        assert_eq!(region(m, "RAM"), Some((0x2000_0000, 512 * 1024)));
        assert_eq!(region(m, "ROM"), None);
    }

    #[test]
    fn costs_round_trip() {
        let c = vec![Costs {
            core: "cortex-m4".into(),
            board: "qemu-m4".into(),
            costs: vec![("i8_mac".into(), 1.25), ("token".into(), 1000.0)],
        }];
        let dir = std::env::temp_dir().join(format!("chispa-boards-costs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        std::fs::write(
            costs_path(&dir),
            costs_toml(&c, "made by a test\n\nline", &["note".into()]),
        )
        .unwrap_or_default();
        assert_eq!(costs(&dir), Ok(c));
        std::fs::write(costs_path(&dir), "[m]\nboard = \"b\"\nx = -1\n").unwrap_or_default();
        assert!(costs(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_folder_loads_and_has_figures_for_its_qemu_cores() {
        let dir = boards_dir();
        let boards = all(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(boards.len(), names(&dir).unwrap_or_default().len());
        let figs = figures(&dir).unwrap_or_else(|e| panic!("{e}"));
        for b in &boards {
            assert!(b.clock_hz > 0 && b.flash.1 > 0 && b.ram.1 > 0, "{}", b.name);
            if b.qemu.is_some() {
                assert!(
                    figs.iter().any(|f| f.core == b.core),
                    "{}: no figures for {}",
                    b.name,
                    b.core
                );
            } else {
                assert!(
                    b.probe_chip.is_some() || b.flash_command.is_some(),
                    "{}: a real board needs [probe] chip or [flash] command",
                    b.name
                );
            }
        }
    }
}

//! `cargo xtask figures`: runs the firmware on every QEMU board and writes the measured
//! figures file, `firmware/boards/measured.toml` (instructions per token, code bytes, stack
//! high-water mark per core), which `chispa plan` reads and `cargo xtask test-qemu` checks.

use anyhow::{ensure, Context, Result};
use chispa_boards::Figures;

use crate::test::{field, firmware_kv};
use crate::{measured_boards, run_qemu, Kv};

/// The job the figures describe: stories260K int8, int8 KV, context 512 in 200 KiB, the
/// default prompt, greedy, 200 tokens.
pub(crate) const JOB: &str =
    "stories260K int8, int8 KV, context 512, \"Once upon a time\", greedy, 200 tokens";

/// The first number after `key` in a log.
pub(crate) fn number(log: &str, key: &str) -> Option<u64> {
    field(log, key)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The figures a firmware log reports for `core` on `board`.
pub(crate) fn from_log(core: &str, board: &str, log: &str) -> Result<Figures> {
    let code = field(log, "code and other data ")
        .and_then(|s| s.trim_end_matches(')').trim().parse().ok())
        .context("no code bytes in the log")?;
    Ok(Figures {
        core: core.into(),
        board: board.into(),
        instructions_per_token: log
            .lines()
            .find_map(|l| l.strip_prefix("instructions/token: ")?.trim().parse().ok())
            .context("no instructions/token in the log")?,
        code_bytes: code,
        stack_bytes: number(log, "stack high-water: ").context("no stack in the log")?,
    })
}

/// Measures every QEMU board (the first board of each core) and writes the file.
pub(crate) fn figures() -> Result<()> {
    let mut figs: Vec<Figures> = Vec::new();
    for board in measured_boards()? {
        let core = board.cpu();
        if figs.iter().any(|f| f.core == core) {
            continue;
        }
        eprintln!("figures: {} ({core})", board.name());
        let (code, log) = run_qemu(&firmware_kv(board, 200, 0, Some(200), Kv::Int8), true)?;
        ensure!(code == 0, "{}: the firmware exited with {code}:\n{log}", board.name());
        figs.push(from_log(core, board.name(), &log)?);
    }
    let dir = chispa_boards::boards_dir();
    let path = chispa_boards::figures_path(&dir);
    std::fs::write(&path, chispa_boards::figures_toml(&figs, JOB))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

//! Boards `chispa plan` knows: generated at build time from the board folders
//! (`firmware/boards/<name>/board.toml` and `memory.x`), and the figures the firmware
//! measured under QEMU for each core (`firmware/boards/measured.toml`, written by
//! `cargo xtask figures`).

/// A board.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Board {
    /// Its folder in `firmware/boards` (`cargo xtask --board`, `CHISPA_BOARD`).
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// CPU core.
    pub core: &'static str,
    /// Core clock (Hz) used for the tokens/s estimate.
    pub clock_hz: u64,
    /// Flash (code + model) start and size.
    pub flash: (u64, u64),
    /// RAM start and size.
    pub ram: (u64, u64),
    /// A separate region for the model (start, size), when `memory.x` has one.
    pub model_region: Option<(u64, u64)>,
    /// Whether it runs under QEMU in CI.
    pub qemu: bool,
}

include!(concat!(env!("OUT_DIR"), "/boards.rs"));

/// What the firmware measured under QEMU for a core (stories260K int8, int8 KV, context
/// 512, "Once upon a time", greedy, 200 tokens; `cargo xtask figures`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoreFigures {
    /// Core.
    pub core: &'static str,
    /// The QEMU board it was measured on.
    pub board: &'static str,
    /// Mean instructions per generated token.
    pub instructions_per_token: u64,
    /// Flash bytes besides the model (code, vector table, constants).
    pub code_bytes: u64,
    /// Stack high-water mark.
    pub stack_bytes: u64,
}

/// The stack the firmware keeps free (its link fails otherwise): `CHISPA_STACK_RESERVE`'s
/// default in `firmware/build.rs`.
pub const STACK_RESERVE: u64 = 4096;

/// A board by name.
pub fn board(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name == name)
}

/// The measured figures for a core.
pub fn core_figures(core: &str) -> Option<&'static CoreFigures> {
    CORES.iter().find(|c| c.core == core)
}

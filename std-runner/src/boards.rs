//! Boards `chispa plan` knows: memory maps (the same as `firmware/memory/<board>.x`; a test
//! checks that they agree), clocks, and the instructions per token the firmware measured
//! under QEMU for each core.

/// A board.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Board {
    /// Name as `cargo xtask --board` and the firmware feature spell it.
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
    /// Whether it runs under QEMU in CI.
    pub qemu: bool,
}

const K: u64 = 1024;

/// Every board, QEMU machines first.
pub const BOARDS: &[Board] = &[
    Board {
        name: "qemu-m4",
        description: "QEMU mps2-an386 (Arm MPS2 FPGA, AN386)",
        core: "cortex-m4",
        clock_hz: 25_000_000,
        flash: (0x0000_0000, 4096 * K),
        ram: (0x2000_0000, 4096 * K),
        qemu: true,
    },
    Board {
        name: "qemu-m33",
        description: "QEMU mps2-an505 (Arm MPS2+ FPGA, AN505)",
        core: "cortex-m33",
        clock_hz: 20_000_000,
        flash: (0x1000_0000, 4096 * K),
        ram: (0x3800_0000, 4096 * K),
        qemu: true,
    },
    Board {
        name: "qemu-m55",
        description: "QEMU mps3-an547 (Arm MPS3 FPGA, AN547; ITCM + DTCM)",
        core: "cortex-m55",
        clock_hz: 32_000_000,
        flash: (0x1000_0000, 512 * K),
        ram: (0x3000_0000, 512 * K),
        qemu: true,
    },
    Board {
        name: "stm32f411",
        description: "STM32F411CE (e.g. WeAct Black Pill)",
        core: "cortex-m4",
        clock_hz: 100_000_000,
        flash: (0x0800_0000, 512 * K),
        ram: (0x2000_0000, 128 * K),
        qemu: false,
    },
    Board {
        name: "rp2350",
        description: "Raspberry Pi RP2350 (Pico 2, 4 MiB flash)",
        core: "cortex-m33",
        clock_hz: 150_000_000,
        flash: (0x1000_0000, 4096 * K),
        ram: (0x2000_0000, 512 * K),
        qemu: false,
    },
    Board {
        name: "nrf52840",
        description: "Nordic nRF52840 (e.g. nRF52840-DK)",
        core: "cortex-m4",
        clock_hz: 64_000_000,
        flash: (0x0000_0000, 1024 * K),
        ram: (0x2000_0000, 256 * K),
        qemu: false,
    },
];

/// What the firmware measured under QEMU for a core (stories260K int8, int8 KV, context
/// 512, "Once upon a time", greedy, 200 tokens; `cargo xtask qemu --board ...`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoreFigures {
    /// Core.
    pub core: &'static str,
    /// Mean instructions per generated token.
    pub instructions_per_token: u64,
    /// Flash bytes besides the model (code, vector table, constants).
    pub code_bytes: u64,
    /// Stack high-water mark.
    pub stack_bytes: u64,
}

/// Measured per core (see README, "Firmware").
pub const CORES: &[CoreFigures] = &[
    CoreFigures {
        core: "cortex-m4",
        instructions_per_token: 987_347,
        code_bytes: 95_564,
        stack_bytes: 2_680,
    },
    CoreFigures {
        core: "cortex-m33",
        instructions_per_token: 981_159,
        code_bytes: 96_500,
        stack_bytes: 2_680,
    },
    CoreFigures {
        core: "cortex-m55",
        instructions_per_token: 468_691,
        code_bytes: 105_584,
        stack_bytes: 2_408,
    },
];

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

//! What differs between boards and what touches the hardware: the logger, the console (the
//! prompt loop's line reader and text output), exit, the instruction counter, stack painting
//! and the linker's memory symbols.
//!
//! What depends on the architecture and its runtime lives in one module each, `board/*.rs`:
//! `arm` (cortex-m-rt: SysTick, HardFault), `rv32` (riscv-rt: `minstret`, the exception
//! handler) and `esp` (esp-hal's runtime on the ESP32-C3), chosen by the target and the
//! board's features. Each gives the same few items: `entry`, `init`, `start_counter`,
//! `ticks`, `halt`, `undefined_instruction`, `stack_pointer` and the memory symbols in a
//! `Layout`.
//!
//! The console (the prompt loop's terminal) is `console.rs`'s, one per board `io`.

#[cfg(target_arch = "arm")]
mod arm;
#[cfg(target_arch = "arm")]
use arm as arch;
#[cfg(feature = "riscv-rt")]
mod rv32;
#[cfg(feature = "riscv-rt")]
use rv32 as arch;
#[cfg(feature = "esp32c3")]
mod esp;
#[cfg(feature = "esp32c3")]
use esp as arch;
#[cfg(all(target_arch = "riscv32", not(any(feature = "riscv-rt", feature = "esp32c3"))))]
compile_error!(
    "a RISC-V board names its runtime in board.toml: features = \"riscv-rt\" or \"esp32c3\""
);

pub use crate::console::{console, Console, LineTooLong};
pub use arch::entry;
#[cfg(feature = "esp32c3")]
pub use arch::read_byte as esp_read_byte;

#[cfg(chispa_io = "semihosting")]
use defmt_semihosting as _;

/// Sets up the architecture's runtime and the log (RTT's control block). Called first.
pub fn init() {
    arch::init();
    #[cfg(chispa_io = "rtt")]
    crate::rtt::init();
}

use crate::settings::COUNTER_HZ;

/// Ends the program with `code` (QEMU: through semihosting, so it becomes QEMU's exit
/// status; real boards: the architecture's halt, e.g. a breakpoint that probe-rs reports),
/// once the host has read the log (RTT).
pub fn exit(code: i32) -> ! {
    #[cfg(chispa_io = "rtt")]
    defmt::flush();
    #[cfg(chispa_qemu)]
    semihosting::process::exit(code);
    #[cfg(not(chispa_qemu))]
    {
        let _ = code;
        arch::halt()
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Some(loc) = info.location() {
        defmt::error!("panic at {=str}:{=u32}", loc.file(), loc.line());
    } else {
        defmt::error!("panic");
    }
    exit(3)
}

/// What every architecture's fault handler does (HardFault on Arm, an exception on RISC-V;
/// on the ESP32-C3 esp-hal's handler panics instead).
#[cfg_attr(feature = "esp32c3", allow(dead_code))]
fn fault(what: &str) -> ! {
    defmt::error!("hard fault ({=str})", what);
    exit(5)
}

/// Executes an undefined instruction (tests the fault handler: exit 5).
pub fn undefined_instruction() -> ! {
    arch::undefined_instruction()
}

/// The instruction counter: SysTick (Arm) or `minstret` (RISC-V), under QEMU `-icount
/// shift=0`; real boards report no count.
#[derive(Debug)]
pub struct Clock;

impl Clock {
    /// Starts the counter (QEMU boards).
    pub fn start() -> Self {
        if COUNTER_HZ != 0 {
            arch::start_counter();
        }
        Self
    }

    /// Whether ticks mean anything on this board.
    pub fn counting(&self) -> bool {
        COUNTER_HZ != 0
    }

    /// Ticks since `start`.
    pub fn ticks(&self) -> u64 {
        arch::ticks()
    }

    /// Instructions in `ticks`: under `-icount shift=0` one instruction takes 1 ns of
    /// virtual time, and the counter counts at `COUNTER_HZ`.
    pub fn instructions(&self, ticks: u64) -> u64 {
        if COUNTER_HZ == 0 {
            return 0;
        }
        ticks * 1_000_000_000 / COUNTER_HZ
    }
}

const PAINT: u32 = 0xC0DE_CAFE;
/// Bytes below the current stack pointer left unpainted (the painting function's own frame).
const MARGIN: usize = 256;

/// Fills the free RAM between the end of static data and the stack pointer with a pattern.
pub fn paint_stack() {
    let start = arch::Layout::free_start();
    let end = arch::stack_pointer() - MARGIN;
    let mut p = start;
    while p < end {
        // SAFETY: [free_start, sp - MARGIN) is RAM that nothing uses yet (no heap; the stack
        // is above); aligned to 4 by the linker script.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The stack's deepest use, found as the lowest overwritten painted word.
#[derive(Debug)]
pub struct StackUse {
    /// Bytes from the top of RAM down to the deepest overwritten word.
    pub used: usize,
    /// The painting was overwritten all the way down to the end of static RAM.
    pub overflowed: bool,
}

/// Measures the stack after a run.
pub fn stack_high_water() -> StackUse {
    let start = arch::Layout::free_start();
    let top = arch::Layout::stack_top();
    let mut p = start;
    // SAFETY: reads words in [free_start, top), all RAM, 4-aligned.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    StackUse { used: top - p, overflowed: p == start }
}

/// Bytes of RAM the board has.
pub fn ram_bytes() -> usize {
    arch::Layout::stack_top() - arch::Layout::ram_start()
}

/// Bytes of static RAM: `.data`, `.bss` (with the arena), `.uninit`.
pub fn static_ram_bytes() -> usize {
    arch::Layout::free_start() - arch::Layout::ram_start()
}

/// Bytes of flash used: code, constants (the model) and `.data`'s load image.
pub fn flash_bytes() -> usize {
    // A model in its own region (`cfg(chispa_model_region)`) is not in the flash image.
    let model = if cfg!(chispa_model_region) { crate::settings::MODEL_BYTES } else { 0 };
    arch::Layout::flash_bytes() + model
}

//! Cortex-M (cortex-m-rt): SysTick as the instruction counter, the HardFault handler, the
//! main stack pointer and cortex-m-rt's memory symbols.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;

pub use cortex_m_rt::entry;

#[exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    super::fault("HardFault")
}

/// Nothing to set up before `main` runs (cortex-m-rt did it).
pub fn init() {}

static WRAPS: AtomicU32 = AtomicU32::new(0);
const RELOAD: u32 = 0x00ff_ffff;

#[exception]
fn SysTick() {
    // Only this handler writes WRAPS (single core), so load + store is not a race.
    WRAPS.store(WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// Starts SysTick from the core clock, wrapping every 2^24 ticks into a counter.
pub fn start_counter() {
    if let Some(mut p) = cortex_m::Peripherals::take() {
        p.SYST.set_clock_source(SystClkSource::Core);
        p.SYST.set_reload(RELOAD);
        p.SYST.clear_current();
        p.SYST.enable_interrupt();
        p.SYST.enable_counter();
    }
}

/// SysTick ticks since [`start_counter`].
pub fn ticks() -> u64 {
    loop {
        let w1 = WRAPS.load(Ordering::Relaxed);
        let cur = SYST::get_current();
        let pending = SCB::is_pendst_pending();
        let w2 = WRAPS.load(Ordering::Relaxed);
        if w1 == w2 {
            // A wrap whose exception is not taken yet: the counter restarted near RELOAD.
            let extra = u32::from(pending && cur > RELOAD / 2);
            let wraps = u64::from(w1 + extra);
            return wraps * (u64::from(RELOAD) + 1) + u64::from(RELOAD - cur);
        }
    }
}

/// Real boards: a breakpoint that probe-rs reports, then a halt.
#[cfg_attr(chispa_qemu, allow(dead_code))]
pub fn halt() -> ! {
    loop {
        cortex_m::asm::bkpt();
    }
}

/// `UDF`: a HardFault.
pub fn undefined_instruction() -> ! {
    cortex_m::asm::udf()
}

/// The main stack pointer.
pub fn stack_pointer() -> usize {
    cortex_m::register::msp::read() as usize
}

extern "C" {
    static __sheap: u32;
    static _stack_start: u32;
    static _ram_start: u32;
    static __sidata: u32;
    static __sdata: u32;
    static __edata: u32;
    static __vector_table: u32;
}

/// cortex-m-rt's memory symbols (only their addresses are taken, never a reference).
pub struct Layout;

impl Layout {
    /// The first RAM byte after static data (`.data`, `.bss`, `.uninit`).
    pub fn free_start() -> usize {
        core::ptr::addr_of!(__sheap) as usize
    }
    /// The top of the stack (the end of RAM).
    pub fn stack_top() -> usize {
        core::ptr::addr_of!(_stack_start) as usize
    }
    /// The start of RAM.
    pub fn ram_start() -> usize {
        core::ptr::addr_of!(_ram_start) as usize
    }
    /// From the vector table to the end of `.data`'s load image.
    pub fn flash_bytes() -> usize {
        let data = core::ptr::addr_of!(__edata) as usize - core::ptr::addr_of!(__sdata) as usize;
        core::ptr::addr_of!(__sidata) as usize + data - core::ptr::addr_of!(__vector_table) as usize
    }
}

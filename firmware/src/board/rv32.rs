//! RISC-V with riscv-rt (QEMU virt): `minstret` as the instruction counter, the exception
//! handler, and riscv-rt's memory symbols (plus `_ram_start`, which the board's `memory.x`
//! defines).

use riscv::register::{mcause, mepc, minstret};

pub use riscv_rt::entry;

/// Every exception (riscv-rt calls it for the ones without their own handler).
#[export_name = "ExceptionHandler"]
fn exception_handler(_frame: &riscv_rt::TrapFrame) -> ! {
    defmt::error!(
        "exception: mcause {=usize}, mepc {=usize:#x}",
        mcause::read().code(),
        mepc::read()
    );
    super::fault("RISC-V exception")
}

/// Nothing to set up before `main` runs (riscv-rt did it).
pub fn init() {}

/// Nothing to start: `minstret` counts from reset (QEMU, under `-icount`, counts virtual
/// nanoseconds in it: one per instruction at `shift=0`).
pub fn start_counter() {}

/// `minstret` (and `minstreth`).
pub fn ticks() -> u64 {
    minstret::read64()
}

/// Real boards (none use riscv-rt yet): wait for interrupts, forever.
#[cfg_attr(chispa_qemu, allow(dead_code))]
pub fn halt() -> ! {
    loop {
        riscv::asm::wfi();
    }
}

/// `unimp`: an illegal-instruction exception.
pub fn undefined_instruction() -> ! {
    // SAFETY: `unimp` only traps; the exception handler above logs and exits, never returns.
    unsafe { core::arch::asm!("unimp", options(noreturn)) }
}

/// The stack pointer, near enough (the address of a local; the caller leaves a margin).
pub fn stack_pointer() -> usize {
    let here = 0u32;
    core::hint::black_box(core::ptr::addr_of!(here)) as usize
}

extern "C" {
    static __sheap: u32;
    static _stack_start: u32;
    static _ram_start: u32;
    static __sidata: u32;
    static __sdata: u32;
    static __edata: u32;
    static __stext: u32;
}

/// riscv-rt's memory symbols (only their addresses are taken, never a reference).
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
    /// From the start of `.text` to the end of `.data`'s load image.
    pub fn flash_bytes() -> usize {
        let data = core::ptr::addr_of!(__edata) as usize - core::ptr::addr_of!(__sdata) as usize;
        core::ptr::addr_of!(__sidata) as usize + data - core::ptr::addr_of!(__stext) as usize
    }
}

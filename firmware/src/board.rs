//! What differs between boards and what touches the hardware: the logger, the console (the
//! prompt loop's line reader and text output), exit, the SysTick instruction counter, stack
//! painting and the linker's memory symbols.
//!
//! A board with a way to type text (a UART, an RTT down-channel) implements [`Console`] for
//! it and returns it from [`console`]; everything else in the firmware stays the same.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;

#[cfg(chispa_io = "rtt")]
use defmt_rtt as _;
#[cfg(chispa_io = "semihosting")]
use defmt_semihosting as _;

use crate::settings::SYSTICK_HZ;

/// A line was longer than the buffer given to [`Console::read_line`] (the rest of the line,
/// up to its newline, was read and dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// The prompt loop's terminal: lines in (prompts and `/` commands), text out (the
/// `Prompt>` marker, the generated text as it comes, messages).
pub trait Console {
    /// Reads one line into `buf`, without its `\n` (or `\r\n`), and returns its length;
    /// `Ok(None)` at the end of input (a board without input returns it at once).
    ///
    /// # Errors
    /// [`LineTooLong`] when the line does not fit `buf`.
    fn read_line(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LineTooLong>;

    /// Writes text to the console's output, unbuffered (tokens appear as they come).
    fn write(&mut self, bytes: &[u8]);

    /// Whether [`write`](Self::write) reaches a terminal. If not, the firmware logs the
    /// generated text as defmt `text:` lines instead.
    fn has_output(&self) -> bool;
}

/// Semihosting's console (QEMU): lines from the host's standard input (`SYS_READ` on the
/// `:tt` handle opened for reading), text to the host's standard error (`:tt` opened for
/// appending) so that it does not mix with the defmt frames on standard output.
#[cfg(chispa_io = "semihosting")]
#[derive(Debug)]
pub struct SemihostingConsole {
    stdin: Option<semihosting::io::Stdin>,
    stderr: Option<semihosting::io::Stderr>,
    buf: [u8; 64],
    start: usize,
    end: usize,
}

#[cfg(chispa_io = "semihosting")]
impl SemihostingConsole {
    /// The next input byte; `None` at the end of input (or when the host has no stdin).
    fn byte(&mut self) -> Option<u8> {
        use semihosting::io::Read as _;
        if self.start == self.end {
            let n = self.stdin.as_mut()?.read(&mut self.buf).unwrap_or(0);
            if n == 0 {
                self.stdin = None;
                return None;
            }
            (self.start, self.end) = (0, n);
        }
        let b = self.buf[self.start];
        self.start += 1;
        Some(b)
    }
}

#[cfg(chispa_io = "semihosting")]
impl Console for SemihostingConsole {
    fn read_line(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LineTooLong> {
        let (mut n, mut any, mut overflow) = (0, false, false);
        while let Some(b) = self.byte() {
            any = true;
            if b == b'\n' {
                break;
            }
            match buf.get_mut(n) {
                Some(slot) => {
                    *slot = b;
                    n += 1;
                }
                None => overflow = true,
            }
        }
        if overflow {
            return Err(LineTooLong);
        }
        if !any {
            return Ok(None);
        }
        if n > 0 && buf[n - 1] == b'\r' {
            n -= 1;
        }
        Ok(Some(n))
    }

    fn write(&mut self, bytes: &[u8]) {
        use semihosting::io::Write as _;
        if let Some(e) = self.stderr.as_mut() {
            if e.write_all(bytes).is_err() {
                self.stderr = None;
            }
        }
    }

    fn has_output(&self) -> bool {
        self.stderr.is_some()
    }
}

/// No console (real boards until one is written for their UART or RTT down-channel): no
/// input, so the firmware runs its build-time prompt once; the text goes to the defmt log.
#[cfg(not(chispa_io = "semihosting"))]
#[derive(Debug)]
pub struct NoConsole;

#[cfg(not(chispa_io = "semihosting"))]
impl Console for NoConsole {
    fn read_line(&mut self, _buf: &mut [u8]) -> Result<Option<usize>, LineTooLong> {
        Ok(None)
    }
    fn write(&mut self, _bytes: &[u8]) {}
    fn has_output(&self) -> bool {
        false
    }
}

/// This board's console.
#[cfg(chispa_io = "semihosting")]
pub fn console() -> impl Console {
    SemihostingConsole {
        stdin: semihosting::io::stdin().ok(),
        stderr: semihosting::io::stderr().ok(),
        buf: [0; 64],
        start: 0,
        end: 0,
    }
}

/// This board's console.
#[cfg(not(chispa_io = "semihosting"))]
pub fn console() -> impl Console {
    NoConsole
}

/// Ends the program with `code` (QEMU: through semihosting, so it becomes QEMU's exit
/// status; real boards: a breakpoint that probe-rs reports, then a halt).
pub fn exit(code: i32) -> ! {
    #[cfg(chispa_io = "semihosting")]
    semihosting::process::exit(code);
    #[cfg(not(chispa_io = "semihosting"))]
    {
        let _ = code;
        loop {
            cortex_m::asm::bkpt();
        }
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

#[exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("hard fault");
    exit(5)
}

static WRAPS: AtomicU32 = AtomicU32::new(0);
const RELOAD: u32 = 0x00ff_ffff;

#[exception]
fn SysTick() {
    // Only this handler writes WRAPS (single core), so load + store is not a race.
    WRAPS.store(WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// SysTick from the core clock, wrapping every 2^24 ticks into a counter.
#[derive(Debug)]
pub struct Clock;

impl Clock {
    /// Starts SysTick (QEMU boards; real boards report no count).
    pub fn start() -> Self {
        if SYSTICK_HZ != 0 {
            if let Some(mut p) = cortex_m::Peripherals::take() {
                p.SYST.set_clock_source(SystClkSource::Core);
                p.SYST.set_reload(RELOAD);
                p.SYST.clear_current();
                p.SYST.enable_interrupt();
                p.SYST.enable_counter();
            }
        }
        Self
    }

    /// Whether ticks mean anything on this board.
    pub fn counting(&self) -> bool {
        SYSTICK_HZ != 0
    }

    /// Ticks since `start`.
    pub fn ticks(&self) -> u64 {
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

    /// Instructions in `ticks`: under `-icount shift=0` one instruction takes 1 ns of
    /// virtual time, and SysTick counts at `SYSTICK_HZ`.
    pub fn instructions(&self, ticks: u64) -> u64 {
        if SYSTICK_HZ == 0 {
            return 0;
        }
        ticks * 1_000_000_000 / SYSTICK_HZ
    }
}

extern "C" {
    static mut __sheap: u32;
    static _stack_start: u32;
    static _ram_start: u32;
    static __sidata: u32;
    static __sdata: u32;
    static __edata: u32;
    static __vector_table: u32;
}

const PAINT: u32 = 0xC0DE_CAFE;
/// Bytes below the current stack pointer left unpainted (the painting function's own frame).
const MARGIN: usize = 256;

fn addr_of_sheap() -> usize {
    // Only the address of the linker symbol is taken, never a reference.
    core::ptr::addr_of!(__sheap) as usize
}

/// Fills the free RAM between the end of static data and the stack pointer with a pattern.
pub fn paint_stack() {
    let start = addr_of_sheap();
    let end = cortex_m::register::msp::read() as usize - MARGIN;
    let mut p = start;
    while p < end {
        // SAFETY: [__sheap, sp - MARGIN) is RAM that nothing uses yet (no heap; the stack is
        // above); aligned to 4 by the linker script.
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
    let start = addr_of_sheap();
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = start;
    // SAFETY: reads words in [__sheap, top), all RAM, 4-aligned.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    StackUse { used: top - p, overflowed: p == start }
}

/// Bytes of RAM the board has.
pub fn ram_bytes() -> usize {
    core::ptr::addr_of!(_stack_start) as usize - core::ptr::addr_of!(_ram_start) as usize
}

/// Bytes of static RAM: `.data`, `.bss` (with the arena), `.uninit`.
pub fn static_ram_bytes() -> usize {
    addr_of_sheap() - core::ptr::addr_of!(_ram_start) as usize
}

/// Bytes of flash used: from the vector table to the end of `.data`'s load image.
pub fn flash_bytes() -> usize {
    let data = core::ptr::addr_of!(__edata) as usize - core::ptr::addr_of!(__sdata) as usize;
    let image = core::ptr::addr_of!(__sidata) as usize + data
        - core::ptr::addr_of!(__vector_table) as usize;
    // A model in its own region is not between the vector table and the data's image.
    if cfg!(chispa_model_region) {
        image + crate::settings::MODEL_BYTES
    } else {
        image
    }
}

//! The ESP32-C3 with esp-hal's runtime (esp-riscv-rt, its `linkall.x`): the app descriptor
//! the second-stage bootloader checks, esp-hal's init (clocks, watchdogs off), the defmt
//! logger on the USB-serial-JTAG (esp-println, for `espflash monitor --log-format defmt`), the
//! console's input from the same port (esp-hal's driver, receive side) and esp-hal's memory
//! symbols. No instruction counter (real board); exceptions go to esp-hal's
//! handler, which panics (exit 3).

use esp_println as _;

pub use esp_hal::main as entry;

esp_bootloader_esp_idf::esp_app_desc!();

use core::cell::RefCell;

use critical_section::Mutex;
use esp_hal::usb::usb_serial_jtag::{UsbSerialJtag, UsbSerialJtagRx};
use esp_hal::Blocking;

/// The USB-serial-JTAG's receive side, for the console (esp-println writes the other side).
static INPUT: Mutex<RefCell<Option<UsbSerialJtagRx<'static, Blocking>>>> =
    Mutex::new(RefCell::new(None));

/// esp-hal's start-up: the CPU at its highest clock, the watchdogs the boot ROM and the
/// bootloader left running disabled; the USB-serial-JTAG's receive side kept for the console.
pub fn init() {
    let config = esp_hal::Config::default().with_cpu_clock(esp_hal::clock::CpuClock::max());
    let peripherals = esp_hal::init(config);
    let (rx, _tx) = UsbSerialJtag::new(peripherals.USB_DEVICE).split();
    critical_section::with(|cs| INPUT.borrow_ref_mut(cs).replace(rx));
}

/// A byte typed on the USB-serial-JTAG, if one came (never blocks).
pub fn read_byte() -> Option<u8> {
    critical_section::with(|cs| {
        INPUT.borrow_ref_mut(cs).as_mut().and_then(|rx| rx.read_byte().ok())
    })
}

/// No counter on a real board.
pub fn start_counter() {}

/// No counter on a real board.
pub fn ticks() -> u64 {
    0
}

/// The end: spin (nothing reads an exit code on the board).
pub fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// `unimp`: an illegal-instruction exception (esp-hal's handler panics).
pub fn undefined_instruction() -> ! {
    // SAFETY: `unimp` only traps; esp-hal's exception handler panics, never returns.
    unsafe { core::arch::asm!("unimp", options(noreturn)) }
}

/// The stack pointer, near enough (the address of a local; the caller leaves a margin).
pub fn stack_pointer() -> usize {
    let here = 0u32;
    core::hint::black_box(core::ptr::addr_of!(here)) as usize
}

extern "C" {
    static _data_start: u32;
    static _data_end: u32;
    static _stack_end: u32;
    static _stack_start: u32;
    static _rodata_start: u32;
    static _rodata_end: u32;
    static _rwtext_start: u32;
    static _rwtext_end: u32;
}

fn addr(p: *const u32) -> usize {
    p as usize
}

/// esp-hal's memory symbols (only their addresses are taken, never a reference).
pub struct Layout;

impl Layout {
    /// The first free byte after static data: the bottom of esp-hal's `.stack` section.
    pub fn free_start() -> usize {
        addr(core::ptr::addr_of!(_stack_end))
    }
    /// The top of the stack (the end of DRAM).
    pub fn stack_top() -> usize {
        addr(core::ptr::addr_of!(_stack_start))
    }
    /// The start of `.data` (the code esp-hal copies to IRAM sits below it in the same SRAM).
    pub fn ram_start() -> usize {
        addr(core::ptr::addr_of!(_data_start))
    }
    /// `.rodata` (with the model), `.data` and the RAM code's load images; esp-hal's linker
    /// script names no symbol for the end of `.text` in flash, so that is not counted.
    pub fn flash_bytes() -> usize {
        let size = |a: *const u32, b: *const u32| addr(b) - addr(a);
        size(core::ptr::addr_of!(_rodata_start), core::ptr::addr_of!(_rodata_end))
            + size(core::ptr::addr_of!(_data_start), core::ptr::addr_of!(_data_end))
            + size(core::ptr::addr_of!(_rwtext_start), core::ptr::addr_of!(_rwtext_end))
    }
}

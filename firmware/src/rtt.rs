//! RTT (SEGGER's Real-Time Transfer): ring buffers in RAM that a debug probe reads and
//! writes while the core runs. One control block (`_SEGGER_RTT`, from rtt-target) holds
//!
//! | channel | name | what |
//! |---|---|---|
//! | up 0 | `defmt` | the defmt log (frames whole or not at all) |
//! | up 1 | `Terminal` | the console's text: `Prompt>`, the generated text, messages |
//! | down 0 | `Terminal` | the console's input: prompts and `/` commands, one a line |
//!
//! Without a host both up-channels drop what does not fit, so the firmware never waits for
//! a probe that is not there; a host that attaches sets them to block instead, so nothing is
//! lost (`probe-rs run` and `cargo xtask qemu` for an RTT board do).

use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, Ordering};

use critical_section::Mutex;
use rtt_target::{rtt_init, ChannelMode, DownChannel, UpChannel};

#[cfg(chispa_console = "rtt")]
use crate::console::RttConsole;

/// The defmt log's channel, set once by [`init`] (frames before it are dropped).
static LOG: Mutex<RefCell<Option<UpChannel>>> = Mutex::new(RefCell::new(None));
/// The console's channels, until [`console`] takes them.
static TERMINAL: Mutex<RefCell<Option<(DownChannel, UpChannel)>>> = Mutex::new(RefCell::new(None));

/// Sets up the control block and its channels. Called once, before anything is logged.
pub fn init() {
    let ch = rtt_init! {
        up: {
            0: { size: 1024, mode: ChannelMode::NoBlockSkip, name: "defmt" }
            1: { size: 512, mode: ChannelMode::NoBlockTrim, name: "Terminal" }
        }
        down: {
            0: { size: 256, name: "Terminal" }
        }
    };
    critical_section::with(|cs| {
        LOG.borrow_ref_mut(cs).replace(ch.up.0);
        TERMINAL.borrow_ref_mut(cs).replace((ch.down.0, ch.up.1));
    });
}

#[cfg(chispa_console = "rtt")]
/// This board's console: the RTT terminal (taken once; a later call gets none, which reads
/// as the end of input).
pub fn console() -> Option<RttConsole> {
    let (input, output) = critical_section::with(|cs| TERMINAL.borrow_ref_mut(cs).take())?;
    Some(RttConsole::new(input, output))
}

/// How long [`drain`] waits for the host, in polls: about a second on a 100 MHz core. Under
/// QEMU the host is always there and reads within milliseconds.
const DRAIN_POLLS: u32 = 1 << 24;

/// Waits until the host has read everything in `channel`, or gives up (no host).
pub fn drain(channel: &UpChannel) {
    for _ in 0..DRAIN_POLLS {
        if channel.is_empty() {
            return;
        }
        core::hint::spin_loop();
    }
}

#[defmt::global_logger]
struct Logger;

/// A frame is being written (defmt forbids nesting).
static TAKEN: AtomicBool = AtomicBool::new(false);
/// The interrupt state [`Logger::acquire`] found, restored by [`Logger::release`].
static RESTORE: Mutex<RefCell<Option<critical_section::RestoreState>>> =
    Mutex::new(RefCell::new(None));
/// The frame encoder; only used inside `acquire`..`release`, with interrupts off.
static ENCODER: Mutex<RefCell<defmt::Encoder>> = Mutex::new(RefCell::new(defmt::Encoder::new()));

/// Writes encoded bytes to the log's channel (inside the logger's critical section).
fn write_log(cs: critical_section::CriticalSection<'_>, bytes: &[u8]) {
    if let Some(c) = LOG.borrow_ref_mut(cs).as_mut() {
        c.write(bytes);
    }
}

// SAFETY: `acquire` enters a critical section that `release` leaves (defmt pairs the calls
// and never nests them: `TAKEN` panics on a nested frame), so the encoder and the channel are
// used by one frame at a time, with interrupts off.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // SAFETY: paired with the `release` in `Logger::release`, as defmt guarantees.
        let restore = unsafe { critical_section::acquire() };
        assert!(!TAKEN.load(Ordering::Relaxed), "defmt logger taken reentrantly");
        TAKEN.store(true, Ordering::Relaxed);
        // SAFETY: inside the critical section just acquired.
        let cs = unsafe { critical_section::CriticalSection::new() };
        RESTORE.borrow_ref_mut(cs).replace(restore);
        ENCODER.borrow_ref_mut(cs).start_frame(|b| write_log(cs, b));
    }

    unsafe fn flush() {
        // SAFETY: defmt calls `flush` between `acquire` and `release`.
        let cs = unsafe { critical_section::CriticalSection::new() };
        if let Some(c) = LOG.borrow_ref(cs).as_ref() {
            drain(c);
        }
    }

    unsafe fn release() {
        // SAFETY: defmt calls `release` after `acquire`, inside its critical section.
        let cs = unsafe { critical_section::CriticalSection::new() };
        ENCODER.borrow_ref_mut(cs).end_frame(|b| write_log(cs, b));
        TAKEN.store(false, Ordering::Relaxed);
        if let Some(restore) = RESTORE.borrow_ref_mut(cs).take() {
            // SAFETY: the state `acquire` saved, released once.
            unsafe { critical_section::release(restore) };
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: defmt calls `write` between `acquire` and `release`.
        let cs = unsafe { critical_section::CriticalSection::new() };
        ENCODER.borrow_ref_mut(cs).write(bytes, |b| write_log(cs, b));
    }
}

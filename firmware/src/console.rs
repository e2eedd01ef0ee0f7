//! The prompt loop's terminal: lines in (prompts and `/` commands), text out (the `Prompt>`
//! marker, the generated text as it comes, messages). One implementation per board `io`:
//!
//! | `io` | input | output |
//! |---|---|---|
//! | `semihosting` (QEMU) | the host's standard input | the host's standard error |
//! | `rtt` (probe-rs boards) | RTT down-channel 0, "Terminal" | RTT up-channel 1, "Terminal" |
//! | `esp-println` (ESP32-C3) | the USB-serial-JTAG (`espflash monitor`'s keys) | the defmt log (`text:` lines) |
//!
//! A board with a `[uart]` section has its console on that UART instead (a CMSDK APB UART,
//! the Arm MPS2/MPS3 boards'), whatever its `io`; the log stays the `io`'s. The build's cfg
//! `chispa_console` names the one linked. Every input is a stream of bytes; [`read_line`]
//! cuts it into lines the same way for all.

/// A line was longer than the buffer given to [`Console::read_line`] (the rest of the line,
/// up to its newline, was read and dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// The prompt loop's terminal.
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

/// One line from a byte stream (`next` gives `None` at its end) into `buf`: the bytes up to
/// `\n`, a final `\r` dropped. `Ok(None)` when the stream ended before any byte.
fn read_line(
    mut next: impl FnMut() -> Option<u8>,
    buf: &mut [u8],
) -> Result<Option<usize>, LineTooLong> {
    let (mut n, mut any, mut overflow) = (0, false, false);
    while let Some(b) = next() {
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

/// A console that may be missing (`None`: no input, no output).
impl<C: Console> Console for Option<C> {
    fn read_line(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LineTooLong> {
        match self {
            Some(c) => c.read_line(buf),
            None => Ok(None),
        }
    }
    fn write(&mut self, bytes: &[u8]) {
        if let Some(c) = self {
            c.write(bytes);
        }
    }
    fn has_output(&self) -> bool {
        self.as_ref().is_some_and(|c| c.has_output())
    }
}

/// Bytes read from a source in chunks, handed out one at a time.
#[derive(Debug)]
#[cfg_attr(chispa_console = "usb-serial-jtag", allow(dead_code))] // reads byte by byte
struct Chunks {
    buf: [u8; 64],
    start: usize,
    end: usize,
}

#[cfg_attr(chispa_console = "usb-serial-jtag", allow(dead_code))]
impl Chunks {
    const fn new() -> Self {
        Self { buf: [0; 64], start: 0, end: 0 }
    }

    /// The next byte, refilling with `fill` (bytes read into the buffer; 0 at the end).
    fn next(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> Option<u8> {
        if self.start == self.end {
            let n = fill(&mut self.buf);
            if n == 0 {
                return None;
            }
            (self.start, self.end) = (0, n.min(self.buf.len()));
        }
        let b = self.buf[self.start];
        self.start += 1;
        Some(b)
    }
}

#[cfg(chispa_console = "semihosting")]
pub use semihosting_console::console;
#[cfg(chispa_console = "semihosting")]
mod semihosting_console {
    use super::{Chunks, Console, LineTooLong};
    use semihosting::io::{Read as _, Write as _};

    /// Semihosting's console (QEMU): lines from the host's standard input (`SYS_READ` on the
    /// `:tt` handle opened for reading), text to the host's standard error (`:tt` opened for
    /// appending) so that it does not mix with the defmt frames on standard output.
    #[derive(Debug)]
    pub struct SemihostingConsole {
        stdin: Option<semihosting::io::Stdin>,
        stderr: Option<semihosting::io::Stderr>,
        chunks: Chunks,
    }

    impl SemihostingConsole {
        /// The next input byte; `None` at the end of input (or when the host has no stdin).
        fn byte(&mut self) -> Option<u8> {
            let stdin = &mut self.stdin;
            let b = self.chunks.next(|buf| match stdin.as_mut() {
                Some(s) => s.read(buf).unwrap_or(0),
                None => 0,
            });
            if b.is_none() {
                self.stdin = None;
            }
            b
        }
    }

    impl Console for SemihostingConsole {
        fn read_line(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LineTooLong> {
            super::read_line(|| self.byte(), buf)
        }

        fn write(&mut self, bytes: &[u8]) {
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

    /// This board's console.
    pub fn console() -> impl Console {
        SemihostingConsole {
            stdin: semihosting::io::stdin().ok(),
            stderr: semihosting::io::stderr().ok(),
            chunks: Chunks::new(),
        }
    }
}

#[cfg(chispa_console = "rtt")]
pub use crate::rtt::console;

/// An RTT terminal: input from a down-channel (waiting for the host as long as it takes;
/// Ctrl-D, byte 4, ends the input like the end of a file), output to an up-channel.
#[cfg(chispa_console = "rtt")]
#[allow(missing_debug_implementations)] // rtt-target's channels are not Debug
pub struct RttConsole {
    input: rtt_target::DownChannel,
    output: rtt_target::UpChannel,
    chunks: Chunks,
    ended: bool,
}

#[cfg(chispa_console = "rtt")]
impl RttConsole {
    /// End of input: Ctrl-D (EOT) as a terminal sends it.
    const EOT: u8 = 4;

    /// A console on these channels.
    pub(crate) fn new(input: rtt_target::DownChannel, output: rtt_target::UpChannel) -> Self {
        Self { input, output, chunks: Chunks::new(), ended: false }
    }

    fn byte(&mut self) -> Option<u8> {
        if self.ended {
            return None;
        }
        let input = &mut self.input;
        let b = self.chunks.next(|buf| loop {
            let n = input.read(buf);
            if n > 0 {
                return n;
            }
            core::hint::spin_loop();
        });
        if b == Some(Self::EOT) {
            self.ended = true;
            return None;
        }
        b
    }
}

#[cfg(chispa_console = "rtt")]
impl Console for RttConsole {
    fn read_line(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LineTooLong> {
        read_line(|| self.byte(), buf)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Blocks while the host reads (a host that attached sets the channel to block);
        // without a host, what does not fit is dropped.
        self.output.write(bytes);
    }

    fn has_output(&self) -> bool {
        true
    }
}

#[cfg(chispa_console = "rtt")]
impl Drop for RttConsole {
    /// Gives the host time to read the last text before the firmware ends.
    fn drop(&mut self) {
        crate::rtt::drain(&self.output);
    }
}

/// A CMSDK APB UART (Arm's, on the MPS2/MPS3 boards and their QEMU models) as the console:
/// bytes in and out through its data register, polled. Ctrl-D (byte 4) ends the input.
#[cfg(chispa_console = "cmsdk-uart")]
mod uart_console {
    use super::{Chunks, Console, LineTooLong};
    use crate::settings::{UART_BASE, UART_BAUDDIV};

    /// Register offsets and bits (CMSDK APB UART, Arm DDI 0479).
    const DATA: usize = 0x0;
    const STATE: usize = 0x4;
    const CTRL: usize = 0x8;
    const BAUDDIV: usize = 0x10;
    const STATE_TX_FULL: u32 = 1 << 0;
    const STATE_RX_FULL: u32 = 1 << 1;
    const CTRL_TX_RX: u32 = 0b11;
    const EOT: u8 = 4;

    fn reg(offset: usize) -> *mut u32 {
        (UART_BASE + offset) as *mut u32
    }

    fn read(offset: usize) -> u32 {
        // SAFETY: UART_BASE is the board's UART (board.toml `[uart] base`), whose registers
        // are 32-bit words at these offsets; volatile, as device memory needs.
        unsafe { core::ptr::read_volatile(reg(offset)) }
    }

    fn write(offset: usize, v: u32) {
        // SAFETY: as in `read`; the firmware owns the UART (nothing else drives it).
        unsafe { core::ptr::write_volatile(reg(offset), v) }
    }

    /// The UART console: enabled at the board's baud rate when made.
    #[derive(Debug)]
    pub struct UartConsole {
        chunks: Chunks,
        ended: bool,
    }

    impl UartConsole {
        fn byte(&mut self) -> Option<u8> {
            if self.ended {
                return None;
            }
            let b = self.chunks.next(|buf| {
                while read(STATE) & STATE_RX_FULL == 0 {
                    core::hint::spin_loop();
                }
                buf[0] = read(DATA) as u8;
                1
            });
            if b == Some(EOT) {
                self.ended = true;
                return None;
            }
            b
        }
    }

    impl Console for UartConsole {
        fn read_line(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LineTooLong> {
            super::read_line(|| self.byte(), buf)
        }

        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                while read(STATE) & STATE_TX_FULL != 0 {
                    core::hint::spin_loop();
                }
                write(DATA, u32::from(b));
            }
        }

        fn has_output(&self) -> bool {
            true
        }
    }

    /// This board's console.
    pub fn console() -> UartConsole {
        write(BAUDDIV, UART_BAUDDIV);
        write(CTRL, CTRL_TX_RX);
        UartConsole { chunks: Chunks::new(), ended: false }
    }
}

#[cfg(chispa_console = "cmsdk-uart")]
pub use uart_console::console;

/// The ESP32-C3's console: lines typed in `espflash monitor` (its USB-serial-JTAG, read
/// without blocking and polled); Enter sends `\r`, which ends a line like `\n`; Ctrl-D ends
/// the input. The same port carries the defmt log, which `espflash monitor --log-format
/// defmt` decodes, so the console's text goes into the log too (the prompt marker and
/// messages as log lines, the generated text as `text:` lines).
#[cfg(chispa_console = "usb-serial-jtag")]
#[derive(Debug)]
pub struct UsbSerialJtagConsole {
    after_cr: bool,
    ended: bool,
}

#[cfg(chispa_console = "usb-serial-jtag")]
impl UsbSerialJtagConsole {
    const EOT: u8 = 4;

    fn byte(&mut self) -> Option<u8> {
        loop {
            if self.ended {
                return None;
            }
            let Some(b) = crate::board::esp_read_byte() else {
                core::hint::spin_loop();
                continue;
            };
            let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                Self::EOT => self.ended = true,
                b'\n' if after_cr => {}
                b'\r' => return Some(b'\n'),
                _ => return Some(b),
            }
        }
    }
}

#[cfg(chispa_console = "usb-serial-jtag")]
impl Console for UsbSerialJtagConsole {
    fn read_line(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LineTooLong> {
        read_line(|| self.byte(), buf)
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Ok(s) = core::str::from_utf8(bytes) {
            let s = s.trim_end();
            if !s.is_empty() {
                defmt::println!("{=str}", s);
            }
        }
    }

    fn has_output(&self) -> bool {
        false
    }
}

/// This board's console.
#[cfg(chispa_console = "usb-serial-jtag")]
pub fn console() -> UsbSerialJtagConsole {
    UsbSerialJtagConsole { after_cr: false, ended: false }
}

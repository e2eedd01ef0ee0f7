//! The host side of RTT for a QEMU board with `io = "rtt"`: what a debug probe does on a real
//! board, done through QEMU's gdb stub. QEMU starts halted with its gdb stub on a Unix
//! socket; this module finds the firmware's control block (`_SEGGER_RTT`, from the ELF's
//! symbol table), sets its up-channels to block (as `probe-rs run` does, so nothing is lost),
//! and then, until the firmware exits, lets the machine run a moment, stops it, copies out
//! what the up-channels hold (the defmt log to `defmt-print`, the console's text to the
//! caller) and writes the console's pending input into the down-channel.
//!
//! Control block layout (SEGGER RTT, 32-bit target): a 16-byte id `"SEGGER RTT"`, the
//! number of up and down channels (u32 each), then 24 bytes per channel, up-channels first:
//! name, buffer, size, write offset, read offset, flags (mode in bits 0–1; 2 = block).

use std::io::{BufRead as _, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// The control block's symbol.
const SYMBOL: &str = "_SEGGER_RTT";
const ID: &[u8] = b"SEGGER RTT\0";
const HEADER: u64 = 24;
const CHANNEL: u64 = 24;
/// Flags' mode bits: block when full.
const BLOCK_IF_FULL: u32 = 2;
/// Ctrl-D: the end of input for the firmware's RTT console.
const EOT: u8 = 4;
/// How long the machine runs between two looks at the buffers.
const SLICE: Duration = Duration::from_millis(2);

/// The address of `name` in an ELF file's symbol table (ELF32 or ELF64, little-endian).
pub(crate) fn elf_symbol(elf: &[u8], name: &str) -> Result<u64> {
    let u16_at = |o: usize| -> Result<u64> {
        let b = elf.get(o..o + 2).context("ELF truncated")?;
        Ok(u64::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u32_at = |o: usize| -> Result<u64> {
        let b = elf.get(o..o + 4).context("ELF truncated")?;
        Ok(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let u64_at = |o: usize| -> Result<u64> {
        let b = elf.get(o..o + 8).context("ELF truncated")?;
        Ok(u64::from_le_bytes(b.try_into()?))
    };
    ensure!(elf.starts_with(b"\x7fELF") && elf.get(5) == Some(&1), "not a little-endian ELF");
    let wide = elf.get(4) == Some(&2);
    let word = |o: usize| if wide { u64_at(o) } else { u32_at(o) };
    let at = |v: u64| usize::try_from(v).context("ELF offset");
    let (shoff, shentsize, shnum) = if wide {
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?)
    } else {
        (u32_at(0x20)?, u16_at(0x2e)?, u16_at(0x30)?)
    };
    // Section header fields: type at 4; offset, size, link and entry size after the flags
    // and address words.
    let section = |i: u64| -> Result<(u64, u64, u64, u64, u64)> {
        let h = at(shoff + i * shentsize)?;
        let w = if wide { 8 } else { 4 };
        let kind = u32_at(h + 4)?;
        let offset = word(h + 8 + 2 * w)?;
        let size = word(h + 8 + 3 * w)?;
        let link = u32_at(h + 8 + 4 * w)?;
        let entsize = word(h + 16 + 5 * w)?;
        Ok((kind, offset, size, link, entsize))
    };
    for i in 0..shnum {
        let (kind, offset, size, link, entsize) = section(i)?;
        if kind != 2 || entsize == 0 {
            continue; // not SHT_SYMTAB
        }
        let (_, strings, strings_size, _, _) = section(link)?;
        for s in 0..size / entsize {
            let e = at(offset + s * entsize)?;
            let name_at = at(u32_at(e)?)?;
            let value = if wide { u64_at(e + 8)? } else { u32_at(e + 4)? };
            let table =
                elf.get(at(strings)?..at(strings + strings_size)?).context("ELF strings")?;
            let rest = table.get(name_at..).unwrap_or_default();
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            if &rest[..end] == name.as_bytes() {
                return Ok(value);
            }
        }
    }
    bail!("no symbol {name} in the ELF (is the board's io \"rtt\"?)")
}

/// A gdb remote-protocol client (acknowledged mode).
struct Gdb {
    stream: UnixStream,
}

/// Why a wait for the machine ended.
enum Stop {
    /// Halted (our interrupt).
    Halted,
    /// The program exited, or QEMU closed the connection.
    Gone,
}

impl Gdb {
    fn send(&mut self, body: &str) -> Result<()> {
        let sum = body.bytes().fold(0u8, u8::wrapping_add);
        write!(self.stream, "${body}#{sum:02x}")?;
        // The stub acknowledges each packet with '+' ('-' asks for it again).
        loop {
            let mut b = [0u8; 1];
            if self.stream.read(&mut b)? == 0 {
                bail!("QEMU's gdb stub closed the connection");
            }
            match b[0] {
                b'+' => return Ok(()),
                b'-' => write!(self.stream, "${body}#{sum:02x}")?,
                _ => {}
            }
        }
    }

    /// The next packet's body; `None` when the connection closed.
    fn recv(&mut self) -> Result<Option<String>> {
        let mut byte = [0u8; 1];
        loop {
            if self.stream.read(&mut byte)? == 0 {
                return Ok(None);
            }
            if byte[0] == b'$' {
                break;
            }
        }
        let mut body = Vec::new();
        loop {
            if self.stream.read(&mut byte)? == 0 {
                return Ok(None);
            }
            if byte[0] == b'#' {
                break;
            }
            body.push(byte[0]);
        }
        let mut sum = [0u8; 2];
        self.stream.read_exact(&mut sum)?;
        self.stream.write_all(b"+")?;
        Ok(Some(String::from_utf8_lossy(&body).into_owned()))
    }

    fn request(&mut self, body: &str) -> Result<String> {
        self.send(body)?;
        loop {
            let reply = self.recv()?.context("QEMU's gdb stub closed the connection")?;
            // 'O' packets are console output from the stub, not the reply.
            if !reply.starts_with('O') || reply == "OK" {
                return Ok(reply);
            }
        }
    }

    fn read(&mut self, addr: u64, len: u64) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(len)?);
        let mut at = addr;
        while at < addr + len {
            let n = (addr + len - at).min(1024);
            let reply = self.request(&format!("m{at:x},{n:x}"))?;
            ensure!(!reply.starts_with('E'), "cannot read memory at {at:#x}: {reply}");
            out.extend(unhex(&reply)?);
            at += n;
        }
        Ok(out)
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<()> {
        for (i, chunk) in bytes.chunks(1024).enumerate() {
            let at = addr + 1024 * i as u64;
            let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let reply = self.request(&format!("M{at:x},{:x}:{hex}", chunk.len()))?;
            ensure!(reply == "OK", "cannot write memory at {at:#x}: {reply}");
        }
        Ok(())
    }

    fn word(&mut self, addr: u64) -> Result<u32> {
        let b = self.read(addr, 4)?;
        Ok(u32::from_le_bytes(b.as_slice().try_into()?))
    }

    fn set_word(&mut self, addr: u64, v: u32) -> Result<()> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Lets the machine run for `slice`, then stops it.
    fn run_for(&mut self, slice: Duration) -> Result<Stop> {
        self.send("c")?;
        std::thread::sleep(slice);
        // Ctrl-C, unframed: the stub halts the machine and sends a stop reply.
        if self.stream.write_all(&[3]).is_err() {
            return Ok(Stop::Gone);
        }
        loop {
            match self.recv()? {
                None => return Ok(Stop::Gone),
                Some(p) if p.starts_with('T') || p.starts_with('S') => return Ok(Stop::Halted),
                Some(p) if p.starts_with('W') || p.starts_with('X') => return Ok(Stop::Gone),
                Some(_) => {}
            }
        }
    }
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    ensure!(s.len() % 2 == 0, "odd hex reply");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("bad hex reply"))
        .collect()
}

/// One channel's descriptor, read from the control block.
#[derive(Debug, Clone, Copy)]
struct Channel {
    /// The descriptor's address.
    at: u64,
    buffer: u64,
    size: u32,
    write: u32,
    read: u32,
}

impl Channel {
    fn parse(at: u64, d: &[u8]) -> Self {
        let w = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        Self { at, buffer: u64::from(w(4)), size: w(8), write: w(12), read: w(16) }
    }

    /// What an up-channel holds; marks it read.
    fn drain(&self, gdb: &mut Gdb) -> Result<Vec<u8>> {
        let (w, r, size) = (self.write, self.read, self.size);
        ensure!(w < size && r < size, "RTT channel offsets out of range");
        let mut out = Vec::new();
        if w == r {
            return Ok(out);
        }
        if w > r {
            out = gdb.read(self.buffer + u64::from(r), u64::from(w - r))?;
        } else {
            out = gdb.read(self.buffer + u64::from(r), u64::from(size - r))?;
            out.extend(gdb.read(self.buffer, u64::from(w))?);
        }
        gdb.set_word(self.at + 16, w)?;
        Ok(out)
    }

    /// Writes as much of `input` as the down-channel has room for; returns how much.
    fn fill(&self, gdb: &mut Gdb, input: &[u8]) -> Result<usize> {
        let (mut w, r, size) = (self.write, self.read, self.size);
        ensure!(w < size && r < size, "RTT channel offsets out of range");
        let free = if r > w { r - w - 1 } else { size - 1 - (w - r) };
        let n = input.len().min(free as usize);
        let mut done = 0;
        while done < n {
            let run = (n - done).min((size - w) as usize);
            gdb.write(self.buffer + u64::from(w), &input[done..done + run])?;
            done += run;
            w = (w + run as u32) % size;
        }
        if n > 0 {
            gdb.set_word(self.at + 12, w)?;
        }
        Ok(n)
    }
}

/// The control block's channels, once the firmware has set it up.
fn channels(gdb: &mut Gdb, cb: u64) -> Result<Option<(Vec<Channel>, Vec<Channel>)>> {
    let head = gdb.read(cb, HEADER)?;
    if !head.starts_with(ID) {
        return Ok(None);
    }
    let ups = u64::from(u32::from_le_bytes(head[16..20].try_into()?));
    let downs = u64::from(u32::from_le_bytes(head[20..24].try_into()?));
    ensure!(ups <= 16 && downs <= 16, "RTT control block with {ups} up and {downs} down channels");
    let d = gdb.read(cb + HEADER, (ups + downs) * CHANNEL)?;
    let all: Vec<Channel> = (0..ups + downs)
        .map(|i| {
            let o = usize::try_from(i * CHANNEL).unwrap_or(0);
            Channel::parse(cb + HEADER + i * CHANNEL, &d[o..o + 24])
        })
        .collect();
    let (up, down) = all.split_at(usize::try_from(ups)?);
    Ok(Some((up.to_vec(), down.to_vec())))
}

/// A finished run of an RTT board.
pub(crate) struct Run {
    /// QEMU's exit status.
    pub(crate) status: std::process::ExitStatus,
    /// What the console's up-channel carried.
    pub(crate) console: Vec<u8>,
}

/// Runs QEMU (`qemu`: its program and flags, without the gdb stub's) as the host of the
/// firmware `elf`'s RTT: `input` goes to the console, then Ctrl-D (or, with `interactive`,
/// the terminal's lines until it ends); the log goes to `log` (defmt-print's standard input);
/// the console's text to `echo` as it comes (the terminal, or nothing) and into the result.
/// QEMU is stopped after `timeout`.
pub(crate) fn run(
    mut qemu: Command,
    elf: &Path,
    input: &str,
    interactive: bool,
    timeout: Duration,
    mut log: impl std::io::Write,
    mut echo: Option<&mut dyn std::io::Write>,
) -> Result<Run> {
    let cb = elf_symbol(&std::fs::read(elf)?, SYMBOL)?;
    let dir = std::env::temp_dir().join(format!("chispa-rtt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("gdb.sock");
    let _ = std::fs::remove_file(&socket);
    let chardev = format!("socket,id=gdb0,path={},server=on,wait=off", socket.display());
    let mut child: Child = qemu
        .args(["-chardev", &chardev, "-gdb", "chardev:gdb0", "-S"])
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start QEMU (Debian: apt-get install qemu-system-arm)")?;
    let started = Instant::now();
    let stream = crate::connect(&socket, &mut child)?;
    let mut gdb = Gdb { stream };
    let mut pending: Vec<u8> = input.as_bytes().to_vec();
    let lines = if interactive {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().split(b'\n') {
                let Ok(mut line) = line else { break };
                line.push(b'\n');
                if tx.send(line).is_err() {
                    return;
                }
            }
            let _ = tx.send(vec![EOT]);
        });
        Some(rx)
    } else {
        pending.push(EOT);
        None
    };
    let mut console = Vec::new();
    let mut blocking = false;
    let result = (|| -> Result<()> {
        loop {
            if let Some(rx) = &lines {
                while let Ok(l) = rx.try_recv() {
                    pending.extend(l);
                }
            }
            if let Some((up, down)) = channels(&mut gdb, cb)? {
                if !blocking {
                    for c in &up {
                        let flags = gdb.word(c.at + 20)?;
                        gdb.set_word(c.at + 20, (flags & !3) | BLOCK_IF_FULL)?;
                    }
                    blocking = true;
                }
                if let Some(c) = up.first() {
                    log.write_all(&c.drain(&mut gdb)?)?;
                    log.flush()?;
                }
                if let Some(c) = up.get(1) {
                    let text = c.drain(&mut gdb)?;
                    if let Some(e) = echo.as_mut() {
                        e.write_all(&text)?;
                        e.flush()?;
                    }
                    console.extend(text);
                }
                if let Some(c) = down.first() {
                    let n = c.fill(&mut gdb, &pending)?;
                    pending.drain(..n);
                }
            }
            if let Stop::Gone = gdb.run_for(SLICE)? {
                return Ok(());
            }
            ensure!(started.elapsed() < timeout, "QEMU timed out after {} s", timeout.as_secs());
        }
    })();
    if result.is_err() {
        crate::stop(&mut child);
    }
    let status = child.wait()?;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    Ok(Run { status, console })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The symbol table of a small ELF32 written here: the symbol is found, others are not.
    #[test]
    fn finds_a_symbol_in_an_elf32() -> Result<()> {
        // Header (52 bytes), then .strtab, .symtab, and three section headers (null, symtab,
        // strtab).
        let strtab = b"\0other\0_SEGGER_RTT\0";
        let mut symtab = vec![0u8; 16]; // the null symbol
        for (name, value) in [(1u32, 0x1111u32), (7, 0x2000_0040)] {
            symtab.extend(name.to_le_bytes());
            symtab.extend(value.to_le_bytes());
            symtab.extend([0u8; 8]);
        }
        let str_off = 52u32;
        let sym_off = str_off + strtab.len() as u32;
        let sh_off = sym_off + symtab.len() as u32;
        let mut elf = vec![0u8; 52];
        elf[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
        elf[0x20..0x24].copy_from_slice(&sh_off.to_le_bytes());
        elf[0x2e..0x30].copy_from_slice(&40u16.to_le_bytes());
        elf[0x30..0x32].copy_from_slice(&3u16.to_le_bytes());
        elf.extend(strtab);
        elf.extend(&symtab);
        let section = |kind: u32, off: u32, size: u32, link: u32, entsize: u32| {
            let mut h = vec![0u8; 40];
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[16..20].copy_from_slice(&off.to_le_bytes());
            h[20..24].copy_from_slice(&size.to_le_bytes());
            h[24..28].copy_from_slice(&link.to_le_bytes());
            h[36..40].copy_from_slice(&entsize.to_le_bytes());
            h
        };
        elf.extend(section(0, 0, 0, 0, 0));
        elf.extend(section(2, sym_off, symtab.len() as u32, 2, 16));
        elf.extend(section(3, str_off, strtab.len() as u32, 0, 0));
        assert_eq!(elf_symbol(&elf, "_SEGGER_RTT")?, 0x2000_0040);
        assert_eq!(elf_symbol(&elf, "other")?, 0x1111);
        assert!(elf_symbol(&elf, "missing").is_err());
        assert!(elf_symbol(b"not an elf", "x").is_err());
        Ok(())
    }
}

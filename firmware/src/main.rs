//! chispa on a microcontroller (Cortex-M, RISC-V): the model embedded in flash and parsed in place, one static arena
//! sized by `Model::plan` at build time, and a prompt loop: `Prompt> `, a line from the
//! board's console (a prompt, or a `/set` command for steps, temperature, top-p and seed; see
//! `input.rs`), the text streamed to the console as it is generated, and for each prompt a
//! report: the ids, a digest of all token ids and logit bits (identical to `chispa run
//! --digest` on the desktop with the same settings), instructions per token (SysTick or
//! `minstret` under QEMU `-icount shift=0`). At the end of input, if no prompt came, the build's prompt runs
//! once with the settings typed so far (the build's when none were). Then arena bytes, stack
//! high-water mark (stack painting) and flash bytes.
#![no_std]
#![no_main]
// The self-test build runs no model: most of the file is unused there.
#![cfg_attr(feature = "selftest", allow(dead_code, unused))]

mod board;
mod console;
mod input;
#[cfg(chispa_io = "rtt")]
mod rtt;
mod settings {
    include!(concat!(env!("OUT_DIR"), "/settings.rs"));
}

use chispa_core::{Digest, Event, Generator, Model, Piece, Sampler, SamplerConfig, Session};
use chispa_core::{SessionOptions, StopReason};
use heapless::Vec;

use board::{entry, exit, Clock, Console, LineTooLong};
use input::{Line, LineError, Settings};
use settings::*;

/// The model, aligned for zero-copy parsing (`.chispa` sections are 64-byte aligned).
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

/// It sits in flash with the code, or in the board's MODEL region (`memory.x`).
#[cfg_attr(chispa_model_region, link_section = ".model")]
static MODEL_IMAGE: Aligned<[u8; MODEL_BYTES]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.chispa")));
static MODEL: &Aligned<[u8]> = &MODEL_IMAGE;

/// The session's arena, in `.bss`; its size is checked against the plan at run time.
#[repr(C, align(16))]
struct Arena([u8; ARENA_BYTES]);

/// Generated-token indices whose instruction counts are logged individually.
const REPORT_AT: [usize; 4] = [1, 64, 128, 199];

/// Exit codes: 0 success, 1 bad model or settings, 3 panic, 4 stack overflow, 5 hard fault
/// (the fault handler, `board::fault`), 6 a kernel differs from the scalar code (feature `selftest`).
const EXIT_BAD_INPUT: i32 = 1;
const EXIT_STACK: i32 = 4;
#[cfg(feature = "selftest")]
const EXIT_SELFTEST: i32 = 6;

#[entry]
fn main() -> ! {
    board::init();
    board::paint_stack();
    let clock = Clock::start();
    #[cfg(feature = "selftest")]
    let code = selftest();
    #[cfg(not(feature = "selftest"))]
    let code = run(&clock);
    let stack = board::stack_high_water();
    let ram = board::static_ram_bytes();
    defmt::println!(
        "arena: {=usize} bytes; static RAM (data + bss incl. arena): {=usize} bytes; stack high-water: {=usize} bytes; RAM total: {=usize} bytes of {=usize}",
        ARENA_BYTES,
        ram,
        stack.used,
        ram + stack.used,
        board::ram_bytes()
    );
    let flash = board::flash_bytes();
    defmt::println!(
        "flash: {=usize} bytes (model {=usize}, code and other data {=usize})",
        flash,
        MODEL_BYTES,
        flash.saturating_sub(MODEL_BYTES)
    );
    if stack.overflowed {
        defmt::error!("the stack reached the end of static RAM: results cannot be trusted");
        exit(EXIT_STACK);
    }
    exit(code)
}

/// Takes the arena. Called once.
fn arena() -> &'static mut [u8] {
    static mut ARENA: Arena = Arena([0; ARENA_BYTES]);
    // SAFETY: `run` calls this exactly once, before any other access to ARENA; no interrupt
    // handler touches it, so the returned reference is the only one.
    unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 }
}

/// The prompt buffers, in `.bss` (too big for the stack): the line and its token ids. The
/// tokenizer's merge scratch borrows the arena, which no session holds while encoding.
struct Buffers {
    line: [u8; LINE_BYTES],
    ids: [u32; PROMPT_CAPACITY],
}

/// Takes the prompt buffers. Called once.
fn buffers() -> &'static mut Buffers {
    static mut BUFFERS: Buffers = Buffers { line: [0; LINE_BYTES], ids: [0; PROMPT_CAPACITY] };
    // SAFETY: `run` calls this exactly once, before any other access to BUFFERS; no
    // interrupt handler touches it, so the returned reference is the only one.
    unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) }
}

/// The arena's words, for the tokenizer's scratch.
fn words(bytes: &mut [u8]) -> &mut [u32] {
    // SAFETY: every bit pattern is a valid u32, and `align_to_mut` returns only the
    // correctly aligned middle part as u32s.
    let (_, words, _) = unsafe { bytes.align_to_mut::<u32>() };
    words
}

/// The prompt loop: `Prompt> `, a line from the board's console, a run or a command, until
/// the end of input; if no prompt came, one run of the build's prompt with the settings.
/// Returns the exit code: 0, or 1 when the model, the session or a prompt was bad.
fn run(clock: &Clock) -> i32 {
    if FAULT_TEST {
        defmt::println!("fault test: executing an undefined instruction");
        board::undefined_instruction();
    }
    defmt::println!(
        "chispa firmware on {=str}: model {=usize} bytes, KV {=str}, context {=usize}; prompts up to {=usize} bytes; defaults: {=usize} steps, temperature {=f32}, top-p {=f32}, seed {=u64}",
        BOARD,
        MODEL_BYTES,
        KV.name(),
        CONTEXT,
        LINE_BYTES,
        STEPS,
        TEMPERATURE,
        TOP_P,
        SEED
    );
    let model = match Model::parse(&MODEL.0) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("the embedded model is not valid: {}", e);
            return EXIT_BAD_INPUT;
        }
    };
    let arena = arena();
    let Buffers { line, ids } = buffers();
    let mut console = board::console();
    let mut s = Settings::DEFAULT;
    let chat_wrap = chat_wrap(&model);
    s.chat = chat_wrap.is_some();
    let (mut runs, mut failed) = (0usize, false);
    let mut job = Job { model: &model, arena, ids, clock };
    loop {
        console.write(b"Prompt> ");
        let n = match console.read_line(line) {
            Ok(Some(n)) => n,
            Ok(None) => {
                console.write(b"\n");
                break;
            }
            Err(LineTooLong) => {
                say(
                    &mut console,
                    "the line is longer than the prompt buffer (CHISPA_LINE_BYTES): ignored",
                );
                continue;
            }
        };
        let Ok(text) = core::str::from_utf8(&line[..n]) else {
            say(&mut console, "the line is not UTF-8: ignored");
            continue;
        };
        match input::parse(text, &mut s) {
            Ok(Line::Prompt(p)) => {
                runs += 1;
                failed |= job.generate(p, &s, &mut console).is_err();
            }
            Ok(Line::Set) if s.chat && chat_wrap.is_none() => {
                s.chat = false;
                say(&mut console, "the model has no chat template: chat stays off");
                show(&mut console, &s);
            }
            Ok(Line::Set | Line::Show) => show(&mut console, &s),
            Ok(Line::Help) => console.write(input::HELP.as_bytes()),
            Ok(Line::Quit) => break,
            Ok(Line::Empty) => {}
            Err(e) => {
                defmt::error!("input: {}", e);
                let msg = match e {
                    LineError::UnknownCommand(_) => "unknown command; ",
                    LineError::UnknownSetting(_) => {
                        "unknown setting (steps, temperature, top-p, seed, chat); "
                    }
                    LineError::BadValue(_, _) => "bad value; ",
                };
                console.write(msg.as_bytes());
                console.write(input::HELP.as_bytes());
            }
        }
    }
    if runs == 0 {
        failed |= job.generate(PROMPT, &s, &mut console).is_err();
    }
    if failed {
        EXIT_BAD_INPUT
    } else {
        0
    }
}

/// The model's chat prefix and suffix (the text before and after one user message), if it
/// has both.
fn chat_wrap<'a>(model: &Model<'a>) -> Option<(&'a str, &'a str)> {
    let tok = model.tokenizer();
    tok.chat_prefix().zip(tok.chat_suffix())
}

/// Encodes `prompt` into `ids`: BOS first; or, with `chat`, between the chat prefix and
/// suffix and without an extra BOS (the prefix holds the template's own), as `chispa run
/// --chat` does. The wrapped text is put together at the front of `arena`; the rest of it
/// is the tokenizer's scratch.
fn encode(
    model: &Model<'_>,
    prompt: &str,
    chat: Option<(&str, &str)>,
    ids: &mut [u32],
    arena: &mut [u8],
) -> Result<usize, chispa_core::TokenizeError> {
    let tok = model.tokenizer();
    let Some((prefix, suffix)) = chat else {
        return tok.encode(prompt, true, false, ids, words(arena));
    };
    let parts = [prefix, prompt, suffix];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let (text, scratch) = arena.split_at_mut(len.next_multiple_of(4).min(arena.len()));
    let mut at = 0;
    for p in parts {
        let Some(dst) = text.get_mut(at..at + p.len()) else {
            return Err(chispa_core::TokenizeError::ScratchTooSmall { needed: len.div_ceil(4) });
        };
        dst.copy_from_slice(p.as_bytes());
        at += p.len();
    }
    // Whole strings one after the other: UTF-8 (checked anyway, nothing is assumed).
    let text = core::str::from_utf8(&text[..len])
        .map_err(|_| chispa_core::TokenizeError::NoPiece { offset: 0 })?;
    tok.encode(text, false, false, ids, words(scratch))
}

/// A message for the console user, also in the defmt log.
fn say(console: &mut impl Console, msg: &str) {
    defmt::println!("input: {=str}", msg);
    console.write(msg.as_bytes());
    console.write(b"\n");
}

/// Prints the settings on the console and in the log.
fn show(console: &mut impl Console, s: &Settings) {
    defmt::println!(
        "settings: {=usize} steps, temperature {=f32}, top-p {=f32}, seed {=u64}",
        s.steps,
        s.temperature,
        s.top_p,
        s.seed
    );
    let mut t: heapless::String<128> = heapless::String::new();
    let _ = t.push_str("settings: steps=");
    number(&mut t, s.steps as u64);
    let _ = t.push_str(" temperature=");
    decimal(&mut t, s.temperature);
    let _ = t.push_str(" top-p=");
    decimal(&mut t, s.top_p);
    let _ = t.push_str(" seed=");
    number(&mut t, s.seed);
    let _ = t.push_str(if s.chat { " chat=on" } else { " chat=off" });
    let _ = t.push('\n');
    console.write(t.as_bytes());
}

/// What every run shares: the model, the arena (a new session per prompt, as the desktop
/// starts one per run), the prompt's id buffer, the instruction counter.
struct Job<'a> {
    model: &'a Model<'a>,
    arena: &'a mut [u8],
    ids: &'a mut [u32],
    clock: &'a Clock,
}

impl Job<'_> {
    /// One prompt: encode, generate with `s`, stream the text to the console (or log it),
    /// then the report: ids, stop reason, instructions per token, digest.
    fn generate(
        &mut self,
        prompt: &str,
        s: &Settings,
        console: &mut impl Console,
    ) -> Result<(), ()> {
        let model = self.model;
        let clock = self.clock;
        defmt::println!("prompt: {=str}", prompt);
        defmt::println!(
            "settings: {=usize} steps, temperature {=f32}, top-p {=f32}, seed {=u64}",
            s.steps,
            s.temperature,
            s.top_p,
            s.seed
        );
        let tok = model.tokenizer();
        let chat = if s.chat { chat_wrap(model) } else { None };
        defmt::println!("chat: {=bool}", chat.is_some());
        let n = match encode(model, prompt, chat, self.ids, self.arena) {
            Ok(n) => n,
            Err(e) => {
                defmt::error!("cannot encode the prompt: {}", e);
                say(console, "cannot encode the prompt (see the log)");
                return Err(());
            }
        };
        let ids = &self.ids[..n];
        defmt::println!("prompt ids: {}", ids);
        let options = SessionOptions { context: CONTEXT, kv: KV };
        let mut session = match Session::new(model, &options, self.arena) {
            Ok(s) => s,
            Err(e) => {
                defmt::error!("cannot start a session: {}", e);
                say(console, "cannot start a session (see the log)");
                return Err(());
            }
        };
        let sampler = Sampler::new(SamplerConfig {
            temperature: s.temperature,
            top_p: s.top_p,
            seed: s.seed,
        });
        let mut gen = match Generator::new(&mut session, ids, s.steps, sampler) {
            Ok(g) => g,
            Err(e) => {
                defmt::error!("cannot start generation: {}", e);
                say(console, "cannot start generation (see the log)");
                return Err(());
            }
        };
        let mut digest = Digest::new();
        digest.tokens(ids);
        let mut out = Output { console, line: Vec::new() };
        // Prompt events print the token after each position; the first one is printed here
        // unless it is BOS, as the desktop does.
        if let Some(first) = ids.first().filter(|id| Some(**id) != tok.bos()) {
            out.piece(tok.decode(None, *first));
        }
        let mut chunk: Vec<u32, 16> = Vec::new();
        let (mut prompt_ticks, mut gen_ticks, mut n_gen) = (0u64, 0u64, 0usize);
        let reason = loop {
            let t0 = clock.ticks();
            let ev = gen.step();
            let dt = clock.ticks() - t0;
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    defmt::error!("generation failed: {}", e);
                    return Err(());
                }
            };
            digest.event(&ev, gen.logits());
            match ev {
                Event::Prompt { pos, next } => {
                    prompt_ticks += dt;
                    out.piece(tok.decode(Some(ids[pos]), next));
                }
                Event::Token { id, prev } => {
                    gen_ticks += dt;
                    n_gen += 1;
                    if REPORT_AT.contains(&n_gen) {
                        defmt::println!(
                            "instructions at token {=usize} (position {=usize}): {=u64}",
                            n_gen,
                            gen.position() - 1,
                            clock.instructions(dt)
                        );
                    }
                    out.piece(tok.decode(Some(prev), id));
                    ids_chunk(&mut chunk, id);
                }
                Event::Stop(r) => {
                    if let StopReason::EndOfSequence { id } = r {
                        gen_ticks += dt;
                        n_gen += 1;
                        ids_chunk(&mut chunk, id);
                    }
                    break r;
                }
            }
        };
        out.end();
        if !chunk.is_empty() {
            defmt::println!("ids: {}", &chunk[..]);
        }
        defmt::println!("stop: {}; prompt {=usize} tokens, generated {=usize}", reason, n, n_gen);
        let macs = model.config().matmul_macs_per_token();
        defmt::println!("matmul MACs/token: {=usize}", macs);
        if clock.counting() {
            let per = |ticks: u64, n: usize| clock.instructions(ticks) / (n.max(1) as u64);
            defmt::println!("prompt instructions/token: {=u64}", per(prompt_ticks, n));
            defmt::println!("instructions/token: {=u64}", per(gen_ticks, n_gen));
        } else {
            defmt::println!("instructions/token: not measured on this board");
        }
        defmt::println!("digest: {=str}", hex(digest.value()).as_str());
        Ok(())
    }
}

/// The active backend's kernels against the scalar code (`chispa_core::kernels::selftest`).
#[cfg(feature = "selftest")]
fn selftest() -> i32 {
    let b = chispa_core::kernels::Kernels::default().backend();
    let r = chispa_core::kernels::selftest::run(b);
    defmt::println!(
        "selftest on {=str}: backend {=str}, {=u32} checks, {=u32} failures (first: {})",
        BOARD,
        b.name(),
        r.checks,
        r.failures,
        r.first_failure
    );
    if r.failures == 0 {
        0
    } else {
        EXIT_SELFTEST
    }
}

/// Where the generated text goes: the console as it comes, or (a board without console
/// output) complete lines in the defmt log as `text: ...`.
struct Output<'c, C: Console> {
    console: &'c mut C,
    line: Vec<u8, 256>,
}

impl<C: Console> Output<'_, C> {
    /// A decoded piece, control bytes dropped (as the desktop's `printable` does).
    fn piece(&mut self, piece: Piece<'_>) {
        let bytes = match piece {
            Piece::Byte(b) if b < 0x80 && !(b.is_ascii_graphic() || b.is_ascii_whitespace()) => &[],
            _ => piece.bytes(),
        };
        if self.console.has_output() {
            self.console.write(bytes);
            return;
        }
        for b in bytes {
            if *b == b'\n' {
                self.flush_line();
                continue;
            }
            if self.line.push(*b).is_err() {
                // A very long line is cut where it is.
                self.flush_line();
                let _ = self.line.push(*b);
            }
        }
    }

    /// The end of a run: a newline on the console (as the desktop prints), or the last line.
    fn end(&mut self) {
        if self.console.has_output() {
            self.console.write(b"\n");
        } else {
            self.flush_line();
        }
    }

    fn flush_line(&mut self) {
        match core::str::from_utf8(&self.line) {
            Ok(s) => defmt::println!("text: {=str}", s),
            Err(_) => defmt::println!("text bytes: {=[u8]}", &self.line[..]),
        }
        self.line.clear();
    }
}

fn ids_chunk(chunk: &mut Vec<u32, 16>, id: u32) {
    if chunk.push(id).is_err() {
        defmt::println!("ids: {}", &chunk[..]);
        chunk.clear();
        let _ = chunk.push(id);
    }
}

/// Appends `v` in decimal.
fn number<const N: usize>(t: &mut heapless::String<N>, v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        let _ = t.push(char::from(*d));
    }
}

/// Appends `x` with three decimals (for display; the settings keep the exact value).
fn decimal<const N: usize>(t: &mut heapless::String<N>, x: f32) {
    if x < 0.0 {
        let _ = t.push('-');
    }
    let milli = (x.abs() * 1000.0 + 0.5) as u64;
    number(t, milli / 1000);
    let _ = t.push('.');
    let frac = milli % 1000;
    for d in [frac / 100, frac / 10 % 10, frac % 10] {
        let _ = t.push(char::from(b'0' + d as u8));
    }
}

fn hex(v: u64) -> heapless::String<16> {
    let mut s = heapless::String::new();
    for i in (0..16).rev() {
        let d = ((v >> (i * 4)) & 0xf) as u8;
        let _ = s.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
    }
    s
}

//! chispa on a Cortex-M: the model embedded in flash and parsed in place, one static arena
//! sized by `Model::plan` at build time, generation with the build's settings, and a report:
//! the text, a digest of all token ids and logit bits (identical to `chispa run --digest` on
//! the desktop), instructions per token (SysTick under QEMU `-icount shift=0`), arena bytes,
//! stack high-water mark (stack painting) and flash bytes.
#![no_std]
#![no_main]
// The self-test build runs no model: most of the file is unused there.
#![cfg_attr(feature = "selftest", allow(dead_code, unused))]

mod board;
mod settings {
    include!(concat!(env!("OUT_DIR"), "/settings.rs"));
}

use chispa_core::{Digest, Event, Generator, Model, Piece, Sampler, SamplerConfig, Session};
use chispa_core::{SessionOptions, StopReason};
use cortex_m_rt::entry;
use heapless::Vec;

use board::{exit, Clock};
use settings::*;

/// The model, aligned for zero-copy parsing (`.chispa` sections are 64-byte aligned).
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.chispa")));

/// The session's arena, in `.bss`; its size is checked against the plan at run time.
#[repr(C, align(16))]
struct Arena([u8; ARENA_BYTES]);

/// Generated-token indices whose instruction counts are logged individually.
const REPORT_AT: [usize; 4] = [1, 64, 128, 199];

/// Exit codes: 0 success, 1 bad model or settings, 3 panic, 4 stack overflow, 5 hard fault
/// (`board::HardFault`), 6 a kernel differs from the scalar code (feature `selftest`).
const EXIT_BAD_INPUT: i32 = 1;
const EXIT_STACK: i32 = 4;
#[cfg(feature = "selftest")]
const EXIT_SELFTEST: i32 = 6;

#[entry]
fn main() -> ! {
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

fn run(clock: &Clock) -> i32 {
    if FAULT_TEST {
        defmt::println!("fault test: executing an undefined instruction");
        cortex_m::asm::udf();
    }
    defmt::println!(
        "chispa firmware on {=str}: model {=usize} bytes, KV {=str}, context {=usize}, {=usize} steps, temperature {=f32}, top-p {=f32}, seed {=u64}",
        BOARD,
        MODEL_BYTES,
        KV.name(),
        CONTEXT,
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
    let options = SessionOptions { context: CONTEXT, kv: KV };
    let mut session = match Session::new(&model, &options, arena()) {
        Ok(s) => s,
        Err(e) => {
            defmt::error!("cannot start a session: {}", e);
            return EXIT_BAD_INPUT;
        }
    };
    let ids: Vec<u32, PROMPT_CAPACITY> = match model.tokenizer().encode_vec(PROMPT, true, false) {
        Ok(ids) => ids,
        Err(e) => {
            defmt::error!("cannot encode the prompt: {}", e);
            return EXIT_BAD_INPUT;
        }
    };
    defmt::println!("prompt: {=str}", PROMPT);
    defmt::println!("prompt ids: {}", &ids[..]);
    let sampler =
        Sampler::new(SamplerConfig { temperature: TEMPERATURE, top_p: TOP_P, seed: SEED });
    let mut gen = match Generator::new(&mut session, &ids, STEPS, sampler) {
        Ok(g) => g,
        Err(e) => {
            defmt::error!("cannot start generation: {}", e);
            return EXIT_BAD_INPUT;
        }
    };
    let tok = model.tokenizer();
    let mut digest = Digest::new();
    digest.tokens(&ids);
    let mut line: Vec<u8, 256> = Vec::new();
    let mut chunk: Vec<u32, 16> = Vec::new();
    let (mut prompt_ticks, mut gen_ticks, mut n_gen) = (0u64, 0u64, 0usize);
    // The first prompt token's piece is printed like the desktop does.
    let reason = loop {
        let t0 = clock.ticks();
        let ev = gen.step();
        let dt = clock.ticks() - t0;
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                defmt::error!("generation failed: {}", e);
                return EXIT_BAD_INPUT;
            }
        };
        digest.event(&ev, gen.logits());
        match ev {
            Event::Prompt { pos, next } => {
                prompt_ticks += dt;
                text(&mut line, tok.decode(Some(ids[pos]), next));
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
                text(&mut line, tok.decode(Some(prev), id));
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
    flush_line(&mut line);
    if !chunk.is_empty() {
        defmt::println!("ids: {}", &chunk[..]);
    }
    defmt::println!(
        "stop: {}; prompt {=usize} tokens, generated {=usize}",
        reason,
        ids.len(),
        n_gen
    );
    let macs = model.config().matmul_macs_per_token();
    defmt::println!("matmul MACs/token: {=usize}", macs);
    if clock.counting() {
        let per = |ticks: u64, n: usize| clock.instructions(ticks) / (n.max(1) as u64);
        defmt::println!("prompt instructions/token: {=u64}", per(prompt_ticks, ids.len()));
        defmt::println!("instructions/token: {=u64}", per(gen_ticks, n_gen));
    } else {
        defmt::println!("instructions/token: not measured on this board");
    }
    defmt::println!("digest: {=str}", hex(digest.value()).as_str());
    0
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

/// Appends a decoded piece (control bytes dropped, as the desktop's `printable` does) and
/// prints complete lines as `text: ...`.
fn text(line: &mut Vec<u8, 256>, piece: Piece<'_>) {
    let bytes = match piece {
        Piece::Byte(b) if b < 0x80 && !(b.is_ascii_graphic() || b.is_ascii_whitespace()) => &[],
        _ => piece.bytes(),
    };
    for b in bytes {
        if *b == b'\n' {
            flush_line(line);
            continue;
        }
        if line.push(*b).is_err() {
            // A very long line is cut where it is; `text+` marks the continuation.
            flush_line(line);
            let _ = line.push(*b);
        }
    }
}

fn flush_line(line: &mut Vec<u8, 256>) {
    match core::str::from_utf8(line) {
        Ok(s) => defmt::println!("text: {=str}", s),
        Err(_) => defmt::println!("text bytes: {=[u8]}", &line[..]),
    }
    line.clear();
}

fn ids_chunk(chunk: &mut Vec<u32, 16>, id: u32) {
    if chunk.push(id).is_err() {
        defmt::println!("ids: {}", &chunk[..]);
        chunk.clear();
        let _ = chunk.push(id);
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

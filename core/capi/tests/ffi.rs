//! The C API called as C calls it, on the 17 KB test model (random weights): generation gives
//! the ids, text and digest of the core's own `Generator` driven as `chispa run` drives it,
//! and every bad argument is a status, never a crash.

// Every `unsafe` block below is one call of the C API, with pointers to live locals or
// buffers of the lengths passed, or the NULL, misaligned and closed pointers the API must
// reject: the safety argument is the same for each, stated here once.
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ptr;

use chispa_capi::*;
use chispa_core::{
    Digest, Event, Generator, KvType, Model, Piece, Sampler, SamplerConfig, Session,
    SessionOptions, StopReason,
};

#[repr(C, align(64))]
struct Aligned<const N: usize>([u8; N]);

const TINY_LEN: usize = include_bytes!("../../../tests/fuzz/corpus/parse_raw/tiny.chispa").len();
static TINY: Aligned<TINY_LEN> =
    Aligned(*include_bytes!("../../../tests/fuzz/corpus/parse_raw/tiny.chispa"));

/// A 16-byte aligned zeroed buffer of `len` bytes (plus `extra` spare bytes at the end).
fn buffer(len: usize) -> Vec<u128> {
    vec![0u128; len.div_ceil(16) + 1]
}

fn bytes_of(v: &mut [u128]) -> *mut u8 {
    v.as_mut_ptr().cast()
}

fn config(context: u32, kv: ChispaKv, temperature: f32, top_p: f32, seed: u64) -> ChispaConfig {
    ChispaConfig { context, kv: kv as u32, temperature, top_p, seed }
}

/// What `chispa run` computes, with the core's API: generated ids, printed text, digest.
fn reference(
    prompt: &str,
    steps: usize,
    options: SessionOptions,
    sampling: SamplerConfig,
) -> (Vec<u32>, Vec<u8>, u64, StopReason) {
    let model = Model::parse(&TINY.0).unwrap();
    let tok = model.tokenizer();
    let mut ids = vec![0u32; prompt.len() + 3];
    let mut scratch = vec![0u32; ids.len() * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = tok.encode(prompt, true, false, &mut ids, &mut scratch).unwrap();
    ids.truncate(n);
    let plan = model.plan(&options).unwrap();
    let mut arena = buffer(plan.arena_bytes);
    let arena = bytemuck_bytes(&mut arena, plan.arena_bytes);
    let mut session = Session::new(&model, &options, arena).unwrap();
    let mut gen = Generator::new(&mut session, &ids, steps, Sampler::new(sampling)).unwrap();
    let mut digest = Digest::new();
    digest.tokens(&ids);
    let (mut out, mut text) = (Vec::new(), Vec::new());
    let reason = loop {
        let ev = gen.step().unwrap();
        digest.event(&ev, gen.logits());
        match ev {
            Event::Prompt { .. } => {}
            Event::Token { id, prev } => {
                out.push(id);
                let piece = tok.decode(Some(prev), id);
                match piece {
                    Piece::Byte(b)
                        if b < 0x80 && !(b.is_ascii_graphic() || b.is_ascii_whitespace()) => {}
                    _ => text.extend_from_slice(piece.bytes()),
                }
            }
            Event::Stop(r) => break r,
        }
    };
    (out, text, digest.value(), reason)
}

fn bytemuck_bytes(v: &mut [u128], len: usize) -> &mut [u8] {
    // SAFETY: u128 storage viewed as bytes, within its length.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

fn need(context: u32, kv: ChispaKv) -> usize {
    let mut n = 0usize;
    let r = unsafe { chispa_arena_bytes(TINY.0.as_ptr(), TINY_LEN, context, kv as u32, &mut n) };
    assert_eq!(r, ChispaStatus::Ok);
    n
}

/// Opens a session in `arena` (which must have `need` bytes).
fn open(arena: &mut [u128], c: &ChispaConfig) -> *mut ChispaSession {
    let mut s = ptr::null_mut();
    let len = arena.len() * 16;
    let r = unsafe { chispa_open(TINY.0.as_ptr(), TINY_LEN, bytes_of(arena), len, c, &mut s) };
    assert_eq!(r, ChispaStatus::Ok, "{}", message(r));
    assert!(!s.is_null());
    s
}

fn message(s: ChispaStatus) -> String {
    let p = chispa_status_message(s as i32);
    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Generates to the end through the C API: ids, text, digest, stop reason.
fn generate(
    s: *mut ChispaSession,
    prompt: &str,
    steps: usize,
) -> (Vec<u32>, Vec<u8>, u64, ChispaStop) {
    let r = unsafe { chispa_prompt(s, prompt.as_ptr(), prompt.len(), steps) };
    assert_eq!(r, ChispaStatus::Ok, "{}", message(r));
    let (mut ids, mut text) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 64];
    loop {
        let (mut len, mut id) = (0usize, 0u32);
        match unsafe { chispa_next(s, buf.as_mut_ptr(), buf.len(), &mut len, &mut id) } {
            ChispaStatus::Ok => {
                ids.push(id);
                text.extend_from_slice(&buf[..len]);
            }
            ChispaStatus::Done => {
                assert_eq!(len, 0);
                break;
            }
            e => panic!("chispa_next: {}", message(e)),
        }
    }
    let (mut digest, mut stop) = (0u64, ChispaStop::None);
    assert_eq!(unsafe { chispa_digest(s, &mut digest) }, ChispaStatus::Ok);
    assert_eq!(unsafe { chispa_stop_reason(s, &mut stop) }, ChispaStatus::Ok);
    (ids, text, digest, stop)
}

fn stop(r: StopReason) -> ChispaStop {
    match r {
        StopReason::MaxTokens => ChispaStop::MaxTokens,
        StopReason::EndOfSequence { .. } => ChispaStop::EndOfSequence,
        StopReason::ContextFull => ChispaStop::ContextFull,
    }
}

#[test]
fn generation_equals_the_core_greedy_and_sampled() {
    let cases = [
        ("Once the", 10, 0, ChispaKv::F32, KvType::F32, 0.0, 0.9, 1),
        ("Once the", 1000, 24, ChispaKv::Int8, KvType::I8, 0.8, 0.9, 7),
        ("", 5, 16, ChispaKv::F16, KvType::F16, 1.0, 0.5, 42),
        ("the the the", 12, 32, ChispaKv::K10v7, KvType::K10V7, 1.2, 1.0, 3),
    ];
    // Under Miri (which checks the unsafe code, the same for every case) one short run.
    let cases = if cfg!(miri) { &cases[1..2] } else { &cases[..] };
    for &(prompt, steps, context, kv, core_kv, t, p, seed) in cases {
        let steps = if cfg!(miri) { 3 } else { steps };
        let mut arena = buffer(need(context, kv));
        let s = open(&mut arena, &config(context, kv, t, p, seed));
        let got = generate(s, prompt, steps);
        let sampling = SamplerConfig { temperature: t, top_p: p, seed };
        let options = SessionOptions { context: context as usize, kv: core_kv };
        let (ids, text, digest, reason) = reference(prompt, steps, options, sampling);
        assert!(!ids.is_empty());
        assert_eq!(got, (ids.clone(), text, digest, stop(reason)), "{prompt:?} {kv:?}");
        let (mut np, mut ng) = (0, 0);
        assert_eq!(unsafe { chispa_token_counts(s, &mut np, &mut ng) }, ChispaStatus::Ok);
        assert!(np >= 1);
        assert_eq!(ng, ids.len() + usize::from(matches!(reason, StopReason::EndOfSequence { .. })));
        // Done again, and nothing more is folded into the digest.
        let (mut len, mut id, mut d) = (7usize, 0u32, 0u64);
        let r = unsafe { chispa_next(s, ptr::null_mut(), 0, &mut len, &mut id) };
        assert_eq!((r, len), (ChispaStatus::Done, 0));
        assert_eq!(unsafe { chispa_digest(s, &mut d) }, ChispaStatus::Ok);
        assert_eq!(d, digest);
        // A second prompt on the same session is a fresh run: the same result again.
        assert_eq!(generate(s, prompt, steps).2, digest);
    }
}

#[test]
fn a_small_buffer_keeps_the_token_for_the_next_call() {
    let mut arena = buffer(need(32, ChispaKv::F32));
    let s = open(&mut arena, &config(32, ChispaKv::F32, 0.0, 0.9, 1));
    let steps = if cfg!(miri) { 4 } else { 20 };
    let (want_ids, want_text, want_digest, _) = generate(s, "Once the", steps);
    assert_eq!(unsafe { chispa_prompt(s, b"Once the".as_ptr(), 8, steps) }, ChispaStatus::Ok);
    let (mut ids, mut text, mut too_small) = (Vec::new(), Vec::new(), 0);
    loop {
        let (mut len, mut id) = (0usize, 0u32);
        match unsafe { chispa_next(s, ptr::null_mut(), 0, &mut len, &mut id) } {
            ChispaStatus::BufferTooSmall => {
                too_small += 1;
                assert!(len > 0);
                let mut buf = vec![0u8; len];
                let mut len2 = 0;
                let r = unsafe { chispa_next(s, buf.as_mut_ptr(), len, &mut len2, &mut id) };
                assert_eq!((r, len2), (ChispaStatus::Ok, len));
                ids.push(id);
                text.extend_from_slice(&buf);
            }
            ChispaStatus::Ok => {
                assert_eq!(len, 0);
                ids.push(id);
            }
            ChispaStatus::Done => break,
            e => panic!("{}", message(e)),
        }
    }
    assert!(too_small > 0);
    let mut d = 0;
    assert_eq!(unsafe { chispa_digest(s, &mut d) }, ChispaStatus::Ok);
    assert_eq!((ids, text, d), (want_ids, want_text, want_digest));
    let mut info = ChispaInfo { context: 0, vocab_size: 0, max_piece_bytes: 0 };
    assert_eq!(unsafe { chispa_info(s, &mut info) }, ChispaStatus::Ok);
    assert_eq!((info.context, info.vocab_size), (32, 300));
    assert!(info.max_piece_bytes >= 1);
}

#[test]
fn bad_arguments_are_statuses() {
    use ChispaStatus as S;
    let m = TINY.0.as_ptr();
    let mut n = 0usize;
    // chispa_arena_bytes
    assert_eq!(unsafe { chispa_arena_bytes(ptr::null(), 10, 0, 0, &mut n) }, S::NullPointer);
    assert_eq!(unsafe { chispa_arena_bytes(m, TINY_LEN, 0, 0, ptr::null_mut()) }, S::NullPointer);
    assert_eq!(unsafe { chispa_arena_bytes(m, TINY_LEN, 0, 4, &mut n) }, S::BadKv);
    assert_eq!(unsafe { chispa_arena_bytes(m, TINY_LEN, 1 << 30, 0, &mut n) }, S::BadContext);
    assert_eq!(unsafe { chispa_arena_bytes(m, 1000, 0, 0, &mut n) }, S::BadModel);
    assert_eq!(unsafe { chispa_arena_bytes(m, usize::MAX, 0, 0, &mut n) }, S::TooLarge);
    let mut copy = buffer(TINY_LEN + 16);
    let shifted = unsafe { bytes_of(&mut copy).add(1) };
    unsafe { ptr::copy_nonoverlapping(m, shifted, TINY_LEN) };
    let r = unsafe { chispa_arena_bytes(shifted, TINY_LEN, 0, 0, &mut n) };
    assert_eq!(r, S::ModelMisaligned);
    let mut damaged = TINY.0;
    damaged[TINY_LEN / 2] ^= 1;
    let r = unsafe { chispa_arena_bytes(damaged.as_ptr(), TINY_LEN, 0, 0, &mut n) };
    assert_eq!(r, S::BadModel);

    // chispa_open
    let need = need(16, ChispaKv::F32);
    let mut arena = buffer(need + 16);
    let a = bytes_of(&mut arena);
    let c = config(16, ChispaKv::F32, 0.0, 0.9, 1);
    let mut s = ptr::null_mut();
    let open = |m: *const u8,
                a: *mut u8,
                len: usize,
                c: &ChispaConfig,
                s: &mut *mut ChispaSession| unsafe {
        chispa_open(m, TINY_LEN, a, len, c, s)
    };
    assert_eq!(open(m, a, need - 1, &c, &mut s), S::ArenaTooSmall);
    assert_eq!(open(m, unsafe { a.add(8) }, need, &c, &mut s), S::ArenaMisaligned);
    assert_eq!(open(m, ptr::null_mut(), need, &c, &mut s), S::NullPointer);
    let r = unsafe { chispa_open(m, TINY_LEN, a, need, ptr::null(), &mut s) };
    assert_eq!(r, S::NullPointer);
    let r = unsafe { chispa_open(m, TINY_LEN, a, need, &c, ptr::null_mut()) };
    assert_eq!(r, S::NullPointer);
    for bad in [f32::NAN, -1.0, f32::INFINITY] {
        assert_eq!(
            open(m, a, need, &ChispaConfig { temperature: bad, ..c }, &mut s),
            S::BadSampling
        );
    }
    assert_eq!(open(m, a, need, &ChispaConfig { top_p: f32::NAN, ..c }, &mut s), S::BadSampling);
    assert_eq!(open(m, a, need, &ChispaConfig { kv: 9, ..c }, &mut s), S::BadKv);
    assert!(s.is_null(), "no handle after a failed open");
    assert_eq!(open(m, a, need, &c, &mut s), S::Ok);

    // The session's calls.
    let (mut len, mut id, mut d) = (0usize, 0u32, 0u64);
    let next =
        |s, len: &mut usize, id: &mut u32| unsafe { chispa_next(s, ptr::null_mut(), 0, len, id) };
    assert_eq!(next(s, &mut len, &mut id), S::NoPrompt);
    assert_eq!(next(ptr::null_mut(), &mut len, &mut id), S::NullPointer);
    assert_eq!(unsafe { chispa_next(s, ptr::null_mut(), 1, &mut len, &mut id) }, S::NullPointer);
    assert_eq!(
        unsafe { chispa_next(s, ptr::null_mut(), 0, ptr::null_mut(), &mut id) },
        S::NullPointer
    );
    assert_eq!(unsafe { chispa_prompt(s, ptr::null(), 3, 5) }, S::NullPointer);
    assert_eq!(unsafe { chispa_prompt(s, b"\xff\xfe".as_ptr(), 2, 5) }, S::NotUtf8);
    let long = "the ".repeat(40);
    assert_eq!(unsafe { chispa_prompt(s, long.as_ptr(), long.len(), 5) }, S::PromptTooLong);
    assert_eq!(next(s, &mut len, &mut id), S::NoPrompt, "a failed prompt leaves no generation");
    assert_eq!(unsafe { chispa_set_sampling(s, f32::NAN, 0.9, 1) }, S::BadSampling);
    assert_eq!(unsafe { chispa_set_sampling(s, 0.5, 0.9, 1) }, S::Ok);
    assert_eq!(unsafe { chispa_prompt(s, b"Once".as_ptr(), 4, 3) }, S::Ok);
    assert_eq!(unsafe { chispa_digest(s, ptr::null_mut()) }, S::NullPointer);
    assert_eq!(unsafe { chispa_reset(s) }, S::Ok);
    assert_eq!(next(s, &mut len, &mut id), S::NoPrompt);
    assert_eq!(unsafe { chispa_digest(s, &mut d) }, S::Ok);
    assert_eq!(d, Digest::new().value());
    let misaligned = unsafe { s.cast::<u8>().add(1) }.cast::<ChispaSession>();
    assert_eq!(unsafe { chispa_reset(misaligned) }, S::BadHandle);
    assert_eq!(unsafe { chispa_close(s) }, S::Ok);
    assert_eq!(unsafe { chispa_close(s) }, S::BadHandle);
    assert_eq!(unsafe { chispa_prompt(s, b"Once".as_ptr(), 4, 3) }, S::BadHandle);
    assert_eq!(unsafe { chispa_digest(s, &mut d) }, S::BadHandle);
    // The arena can be opened again.
    assert_eq!(open(m, a, need, &c, &mut s), S::Ok);
}

#[test]
fn every_status_has_a_message() {
    for code in -20..=3 {
        let p = chispa_status_message(code);
        assert!(!p.is_null());
        let m = unsafe { std::ffi::CStr::from_ptr(p) }.to_str().unwrap();
        assert!(!m.is_empty());
        if (-17..=1).contains(&code) {
            assert_ne!(m, "unknown status code", "{code}");
        } else {
            assert_eq!(m, "unknown status code", "{code}");
        }
    }
    assert_eq!(
        message(ChispaStatus::ArenaTooSmall),
        "the arena is smaller than chispa_arena_bytes says"
    );
}

//! chispa-capi: chispa's core behind a C API, for firmware that already exists (ESP-IDF,
//! Zephyr, Arduino, bare-metal C) and for the host.
//!
//! No heap: the caller gives the model bytes (a `.chispa` file in flash or RAM) and one arena
//! (RAM) of the size [`chispa_arena_bytes`] says; the session handle, the model's view, the
//! prompt ids, the KV cache and every activation live in that arena. The header is
//! `core/capi/include/chispa.h`, generated from this file by cbindgen (a test checks that it
//! is current).
//!
//! ```c
//! size_t need;
//! chispa_arena_bytes(model, model_len, 0, CHISPA_KV_INT8, &need);  // 0: the model's context
//! ChispaConfig cfg = { .context = 0, .kv = CHISPA_KV_INT8, .temperature = 0.0f,
//!                      .top_p = 0.9f, .seed = 42 };
//! ChispaSession *s;
//! chispa_open(model, model_len, arena, need, &cfg, &s);
//! chispa_prompt(s, (const uint8_t *)"Once upon a time", 16, 200);
//! uint8_t piece[64]; size_t len; uint32_t id;
//! while (chispa_next(s, piece, sizeof piece, &len, &id) == CHISPA_STATUS_OK)
//!     fwrite(piece, 1, len, stdout);
//! ```
//!
//! Every function returns a [`ChispaStatus`]; every pointer is checked for NULL and every
//! length for overflow; nothing panics across the boundary (the core checks all input and
//! returns typed errors). What C must guarantee — pointers that point where they say, memory
//! that stays put while a session is open, one call at a time per session — is stated on
//! each function.
//!
//! # Building
//!
//! * Host: `cargo build -p chispa-capi --release` → `target/release/libchispa_capi.a`; link
//!   with the system libraries rustc lists (`-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc` on
//!   Linux). On an operating system the library uses `std`, whose run-time CPU detection
//!   picks the fastest kernels.
//! * Bare metal: `cargo build -p chispa-capi --release --target thumbv7em-none-eabihf
//!   --features panic-handler` (or `thumbv8m.main-none-eabihf`, `riscv32imac-unknown-none-elf`,
//!   ...). The library is `no_std` there; a static library must carry its own panic handler,
//!   which the feature **`panic-handler`** provides: it spins forever (nothing in chispa is
//!   expected to panic: it is there because the link needs one; a watchdog recovers). A Rust
//!   program that depends on this crate and has its own handler leaves the feature off.

#![cfg_attr(target_os = "none", no_std)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod handle;
mod status;

use core::ffi::c_char;
use core::marker::PhantomData;
use core::ptr::NonNull;

pub use handle::ChispaSession;
pub use status::{ChispaKv, ChispaStatus, ChispaStop};

/// Session settings for `chispa_open`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChispaConfig {
    /// Context length in tokens (prompt and generated); 0 means the model's maximum.
    pub context: u32,
    /// KV-cache element type: a `ChispaKv` value.
    pub kv: u32,
    /// Sampling temperature; 0 is greedy (argmax). Finite and ≥ 0.
    pub temperature: f32,
    /// Nucleus sampling threshold; ≤ 0 or ≥ 1 samples from all tokens. Finite.
    pub top_p: f32,
    /// PRNG seed: the same seed gives the same tokens on every target.
    pub seed: u64,
}

/// Facts about an open session, from `chispa_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChispaInfo {
    /// Context length in tokens.
    pub context: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// The most bytes one token's text can have: a `chispa_next` buffer of this size always
    /// suffices.
    pub max_piece_bytes: usize,
}

/// The status of a result.
fn status(r: Result<(), ChispaStatus>) -> ChispaStatus {
    match r {
        Ok(()) => ChispaStatus::Ok,
        Err(s) => s,
    }
}

/// Checks that `len` bytes from `ptr` stay inside the address space and `isize::MAX`.
fn range_ok(ptr: usize, len: usize) -> Result<(), ChispaStatus> {
    match ptr.checked_add(len) {
        Some(_) if len <= isize::MAX as usize => Ok(()),
        _ => Err(ChispaStatus::TooLarge),
    }
}

/// `len` bytes at `ptr`; NULL is accepted only with `len == 0` and gives an empty slice.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `len` bytes for `'a`, and the bytes must not
/// be written during `'a`.
#[allow(unsafe_code)]
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], ChispaStatus> {
    if ptr.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(ChispaStatus::NullPointer) };
    }
    range_ok(ptr as usize, len)?;
    // SAFETY: non-NULL, the range fits the address space and isize (checked); readable and
    // unchanging for 'a by this function's contract. u8 needs no alignment.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `len` writable bytes at `ptr`; NULL is accepted only with `len == 0`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads and writes of `len` bytes for `'a`, and nothing
/// else may access them during `'a`.
#[allow(unsafe_code)]
unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], ChispaStatus> {
    if ptr.is_null() {
        return if len == 0 { Ok(&mut []) } else { Err(ChispaStatus::NullPointer) };
    }
    range_ok(ptr as usize, len)?;
    // SAFETY: non-NULL, the range fits (checked); exclusively ours for 'a by this function's
    // contract. u8 needs no alignment.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// Where a result goes: a checked output pointer, only ever written (C's variable may be
/// uninitialized, so no reference to it is made).
struct Out<'a, T> {
    ptr: NonNull<T>,
    _life: PhantomData<&'a mut T>,
}

impl<T> Out<'_, T> {
    /// Stores `value`.
    #[allow(unsafe_code)]
    fn set(self, value: T) {
        // SAFETY: `out`, the only constructor, checked that the pointer is non-NULL and
        // aligned, and its caller promised that it is valid for writes of a `T` for the
        // lifetime; `write` neither reads nor drops the old contents.
        unsafe { self.ptr.as_ptr().write(value) }
    }
}

/// A checked output pointer.
///
/// # Safety
/// A non-NULL, aligned `ptr` must be valid for writes of a `T` for `'a`, and nothing else may
/// access it during `'a`.
#[allow(unsafe_code)]
unsafe fn out<'a, T>(ptr: *mut T) -> Result<Out<'a, T>, ChispaStatus> {
    match NonNull::new(ptr) {
        Some(ptr) if ptr.as_ptr().is_aligned() => Ok(Out { ptr, _life: PhantomData }),
        _ => Err(ChispaStatus::NullPointer),
    }
}

/// The session behind a handle, if it is open.
///
/// # Safety
/// A non-NULL `ptr` must be a handle from `chispa_open` whose arena is still valid and not
/// otherwise accessed, with no other call on it running.
#[allow(unsafe_code)]
unsafe fn session<'a>(ptr: *mut ChispaSession) -> Result<&'a mut ChispaSession, ChispaStatus> {
    if !ptr.is_aligned() {
        return Err(ChispaStatus::BadHandle);
    }
    // SAFETY: NULL is handled by `as_mut`; otherwise `ptr` came from `chispa_open` and its
    // arena is intact and unshared (this function's contract), so it points to a valid,
    // exclusively accessible `ChispaSession`.
    let s = unsafe { ptr.as_mut() }.ok_or(ChispaStatus::NullPointer)?;
    if s.is_open() {
        Ok(s)
    } else {
        Err(ChispaStatus::BadHandle)
    }
}

/// The arena bytes a session needs for `model` with this context length (0: the model's
/// maximum) and KV type (a `ChispaKv` value), into `*arena_bytes`. The model is fully
/// validated (checksum included) on the way.
///
/// # Safety
/// `model` points to `model_len` readable bytes (16-byte aligned); `arena_bytes` to a
/// writable `size_t`.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_arena_bytes(
    model: *const u8,
    model_len: usize,
    context: u32,
    kv: u32,
    arena_bytes: *mut usize,
) -> ChispaStatus {
    status((|| {
        if model.is_null() {
            return Err(ChispaStatus::NullPointer);
        }
        // SAFETY: the caller's contract above; both borrows end with this call.
        let (model, arena_bytes) = unsafe { (bytes(model, model_len)?, out(arena_bytes)?) };
        arena_bytes.set(handle::arena_bytes(model, context, kv)?);
        Ok(())
    })())
}

/// Opens a session on `model` (the bytes of a `.chispa` file, 16-byte aligned, e.g. in
/// flash) in `arena` (16-byte aligned, at least `chispa_arena_bytes` long), and writes its
/// handle to `*session`. The handle points into the arena; there is nothing to free.
///
/// # Safety
/// `model` points to `model_len` readable bytes that stay valid and unchanged until the
/// session is closed or its arena reused; `arena` points to `arena_len` writable bytes that
/// belong to the session from now until then (do not read, write or move them); `config`
/// points to a readable `ChispaConfig`; `session` to a writable `ChispaSession *`.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_open(
    model: *const u8,
    model_len: usize,
    arena: *mut u8,
    arena_len: usize,
    config: *const ChispaConfig,
    session: *mut *mut ChispaSession,
) -> ChispaStatus {
    status((|| {
        if model.is_null() || arena.is_null() || config.is_null() || !config.is_aligned() {
            return Err(ChispaStatus::NullPointer);
        }
        // SAFETY: `config` is non-NULL and aligned (checked) and readable by the contract;
        // `ChispaConfig` has no invalid bit patterns (integers and floats). It is copied.
        let c = unsafe { config.read() };
        let sampling = handle::sampling(c.temperature, c.top_p, c.seed)?;
        // SAFETY: the caller's contract above: the model bytes outlive the session, the arena
        // is the session's alone until it is closed, and `session` is writable now.
        let (model, arena, session) =
            unsafe { (bytes(model, model_len)?, bytes_mut(arena, arena_len)?, out(session)?) };
        session.set(handle::open(model, arena, c.context, c.kv, sampling)?);
        Ok(())
    })())
}

/// Sampling settings for the next `chispa_prompt` (the current generation keeps its own).
///
/// # Safety
/// `session` is an open handle (see `chispa_open`), not in use by another call.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_set_sampling(
    session: *mut ChispaSession,
    temperature: f32,
    top_p: f32,
    seed: u64,
) -> ChispaStatus {
    status((|| {
        // SAFETY: the caller's contract above.
        let s = unsafe { self::session(session)? };
        s.set_sampling(handle::sampling(temperature, top_p, seed)?);
        Ok(())
    })())
}

/// Starts generating after a prompt: `text` is `text_len` bytes of UTF-8 (NULL allowed when
/// `text_len` is 0), encoded with BOS as `chispa run` does; at most `max_tokens` new tokens
/// (`SIZE_MAX`: until the context is full or the model stops). Any earlier generation is
/// dropped and the digest starts again. The prompt's forward passes run in the first
/// `chispa_next`. On error the session is as after `chispa_reset`.
///
/// # Safety
/// `session` is an open handle, not in use by another call; `text` points to `text_len`
/// readable bytes (only read during this call).
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_prompt(
    session: *mut ChispaSession,
    text: *const u8,
    text_len: usize,
    max_tokens: usize,
) -> ChispaStatus {
    status((|| {
        // SAFETY: the caller's contract above; the text borrow ends with this call (the
        // session keeps only the token ids).
        let (s, text) = unsafe { (self::session(session)?, bytes(text, text_len)?) };
        s.reset();
        let text = core::str::from_utf8(text).map_err(|_| ChispaStatus::NotUtf8)?;
        s.prompt(text, max_tokens)
    })())
}

/// Generates the next token: its text into `buf` (`buf_len` bytes), its length into `*len`,
/// its id into `*token`. Returns `CHISPA_STATUS_OK` for a token, `CHISPA_STATUS_DONE` when
/// generation is over (`*len` = 0; `chispa_stop_reason` says why). The text is what `chispa run` prints for
/// the token: raw UTF-8 bytes, so a character may be split across tokens; lone control bytes
/// are dropped (`*len` can be 0 for a token). When the text does not fit, it returns
/// `CHISPA_STATUS_BUFFER_TOO_SMALL` with `*len` the size needed, and the next call returns the
/// same token (`ChispaInfo::max_piece_bytes` always suffices). The first call also runs the
/// prompt.
///
/// # Safety
/// `session` is an open handle, not in use by another call; `buf` points to `buf_len`
/// writable bytes (NULL allowed when `buf_len` is 0); `len` and `token` to writable
/// variables.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_next(
    session: *mut ChispaSession,
    buf: *mut u8,
    buf_len: usize,
    len: *mut usize,
    token: *mut u32,
) -> ChispaStatus {
    status((|| {
        // SAFETY: the caller's contract above; all borrows end with this call.
        let (s, buf, len, token) =
            unsafe { (self::session(session)?, bytes_mut(buf, buf_len)?, out(len)?, out(token)?) };
        let mut n = 0;
        let id = s.next(buf, &mut n);
        len.set(n);
        token.set(id?);
        Ok(())
    })())
}

/// Drops the current generation: `chispa_next` returns `CHISPA_STATUS_NO_PROMPT` until the
/// next `chispa_prompt`. The digest and counts start again.
///
/// # Safety
/// `session` is an open handle, not in use by another call.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_reset(session: *mut ChispaSession) -> ChispaStatus {
    // SAFETY: the caller's contract above.
    status(unsafe { self::session(session) }.map(|s| s.reset()))
}

/// Closes the session: later calls with this handle return `CHISPA_STATUS_BAD_HANDLE` (while
/// the arena is untouched), and the arena and model bytes are the caller's again.
///
/// # Safety
/// `session` is an open handle, not in use by another call.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_close(session: *mut ChispaSession) -> ChispaStatus {
    // SAFETY: the caller's contract above.
    status(unsafe { self::session(session) }.map(|s| s.close()))
}

/// The digest of the current generation into `*digest`: 64-bit FNV-1a over the prompt ids,
/// then every forward pass's logit bits and sampled id — the value `chispa run --digest` and
/// the firmware print (as 16 hex digits) for the same model, prompt and settings.
///
/// # Safety
/// `session` is an open handle, not in use by another call; `digest` points to a writable
/// `uint64_t`.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_digest(
    session: *mut ChispaSession,
    digest: *mut u64,
) -> ChispaStatus {
    status((|| {
        // SAFETY: the caller's contract above.
        let (s, digest) = unsafe { (self::session(session)?, out(digest)?) };
        digest.set(s.digest());
        Ok(())
    })())
}

/// Why generation ended (`CHISPA_STOP_NONE` while it goes on), into `*reason`.
///
/// # Safety
/// `session` is an open handle, not in use by another call; `reason` points to a writable
/// `ChispaStop`.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_stop_reason(
    session: *mut ChispaSession,
    reason: *mut ChispaStop,
) -> ChispaStatus {
    status((|| {
        // SAFETY: the caller's contract above.
        let (s, reason) = unsafe { (self::session(session)?, out(reason)?) };
        reason.set(s.stop_reason().into());
        Ok(())
    })())
}

/// The prompt's token count (BOS included) into `*prompt_tokens`, and the tokens generated
/// so far (a final stop token included) into `*generated_tokens`.
///
/// # Safety
/// `session` is an open handle, not in use by another call; both other pointers point to
/// writable `size_t`s.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_token_counts(
    session: *mut ChispaSession,
    prompt_tokens: *mut usize,
    generated_tokens: *mut usize,
) -> ChispaStatus {
    status((|| {
        // SAFETY: the caller's contract above.
        let (s, p, g) =
            unsafe { (self::session(session)?, out(prompt_tokens)?, out(generated_tokens)?) };
        let (prompt, generated) = s.counts();
        p.set(prompt);
        g.set(generated);
        Ok(())
    })())
}

/// Context length, vocabulary size and the largest token text, into `*info`.
///
/// # Safety
/// `session` is an open handle, not in use by another call; `info` points to a writable
/// `ChispaInfo`.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn chispa_info(
    session: *mut ChispaSession,
    info: *mut ChispaInfo,
) -> ChispaStatus {
    status((|| {
        // SAFETY: the caller's contract above.
        let (s, info) = unsafe { (self::session(session)?, out(info)?) };
        info.set(ChispaInfo {
            context: s.context(),
            vocab_size: s.vocab_size(),
            max_piece_bytes: s.max_piece_bytes(),
        });
        Ok(())
    })())
}

/// A static, NUL-terminated sentence describing a status code (any `int32_t`; unknown codes
/// get "unknown status code"). Never NULL.
#[no_mangle]
#[allow(unsafe_code)] // `no_mangle` only: the symbol C links to
pub extern "C" fn chispa_status_message(status: i32) -> *const c_char {
    ChispaStatus::from_code(status).map_or(c"unknown status code", ChispaStatus::message).as_ptr()
}

/// The panic handler of a bare-metal static library (feature `panic-handler`): spins. No
/// panic is expected (all input is checked and returned as a status); a watchdog recovers.
#[cfg(all(target_os = "none", feature = "panic-handler"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

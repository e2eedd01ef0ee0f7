//! The session handle and where everything lives: all of it in the caller's arena, carved in
//! this order, each part starting at a 16-byte boundary:
//!
//! ```text
//! [ ChispaSession | Model | prompt ids: context × u32 | Session | the core's plan ]
//! ```
//!
//! The first two are written once by [`open`]. The rest, the *run region*, is rebuilt by every
//! prompt: the tokenizer's buffers borrow the plan's bytes (no session holds them while
//! encoding, as in the firmware), then a new [`Session`] is carved from them and a
//! [`Generator`] borrows it and the ids.

use chispa_core::session::ARENA_ALIGN;
use chispa_core::{
    Digest, Event, Generator, Model, Piece, Sampler, SamplerConfig, Session, SessionOptions,
    StopReason,
};

use crate::status::{kv_type, ChispaStatus};

/// Marks a live handle (`chispa_close` clears it).
const MAGIC: u32 = 0x4348_5350; // "CHSP"

/// Every part of the arena starts at this alignment; no type placed there needs more.
const _: () = {
    assert!(core::mem::align_of::<ChispaSession>() <= ARENA_ALIGN);
    assert!(core::mem::align_of::<Model<'static>>() <= ARENA_ALIGN);
    assert!(core::mem::align_of::<Session<'static, 'static>>() <= ARENA_ALIGN);
};

/// An open session: the model, the settings, the generator of the current prompt and its
/// digest. Opaque to C; it lives at the start of the arena, and its address is the handle.
#[derive(Debug)]
pub struct ChispaSession {
    magic: u32,
    model: &'static Model<'static>,
    options: SessionOptions,
    context: usize,
    sampling: SamplerConfig,
    /// The run region: `ids_bytes` of prompt ids, `session_bytes` for the `Session`, then the
    /// core's arena. Only the current generator borrows it.
    run: *mut u8,
    run_len: usize,
    ids_bytes: usize,
    session_bytes: usize,
    gen: Option<Generator<'static, 'static, 'static>>,
    digest: Digest,
    prompt_tokens: usize,
    /// A token sampled but not yet handed out (its text did not fit the caller's buffer).
    pending: Option<(u32, u32)>,
    stop: Option<StopReason>,
}

/// `n` rounded up to the arena alignment.
fn padded(n: usize) -> Result<usize, ChispaStatus> {
    n.checked_next_multiple_of(ARENA_ALIGN).ok_or(ChispaStatus::TooLarge)
}

/// The sizes of the arena's parts: (handle, model, ids, session, the core's plan).
struct Layout {
    parts: [usize; 5],
    /// The context planned for (the model's maximum for 0).
    context: usize,
}

impl Layout {
    fn new(model: &Model<'_>, options: &SessionOptions) -> Result<Self, ChispaStatus> {
        let plan = model.plan(options)?;
        let ids = plan.context.checked_mul(4).ok_or(ChispaStatus::TooLarge)?;
        Ok(Self {
            parts: [
                padded(core::mem::size_of::<ChispaSession>())?,
                padded(core::mem::size_of::<Model<'static>>())?,
                padded(ids)?,
                padded(core::mem::size_of::<Session<'static, 'static>>())?,
                plan.arena_bytes,
            ],
            context: plan.context,
        })
    }

    fn total(&self) -> Result<usize, ChispaStatus> {
        self.parts.iter().try_fold(0usize, |t, p| t.checked_add(*p).ok_or(ChispaStatus::TooLarge))
    }
}

/// The session options for a context and a `ChispaKv` code.
fn options(context: u32, kv: u32) -> Result<SessionOptions, ChispaStatus> {
    let context = usize::try_from(context).map_err(|_| ChispaStatus::BadContext)?;
    Ok(SessionOptions { context, kv: kv_type(kv)? })
}

/// Checks sampling settings as `chispa run` does.
pub(crate) fn sampling(
    temperature: f32,
    top_p: f32,
    seed: u64,
) -> Result<SamplerConfig, ChispaStatus> {
    if !(temperature.is_finite() && temperature >= 0.0 && top_p.is_finite()) {
        return Err(ChispaStatus::BadSampling);
    }
    Ok(SamplerConfig { temperature, top_p, seed })
}

/// The arena bytes a session on `model` needs with this context and KV type.
pub(crate) fn arena_bytes(model: &[u8], context: u32, kv: u32) -> Result<usize, ChispaStatus> {
    let options = options(context, kv)?;
    Layout::new(&Model::parse(model)?, &options)?.total()
}

/// Writes `value` at the start of `slot` and lends it for the slot's lifetime (it is never
/// dropped: nothing placed here owns anything).
#[allow(unsafe_code)]
fn place<T>(slot: &mut [u8], value: T) -> Result<&mut T, ChispaStatus> {
    let ptr = slot.as_mut_ptr().cast::<T>();
    if slot.len() < core::mem::size_of::<T>() || !ptr.is_aligned() {
        return Err(ChispaStatus::Internal);
    }
    // SAFETY: `slot` is exclusively borrowed for the returned lifetime, large enough and
    // aligned for a `T` (checked above); after the write the bytes hold a valid `T`, reachable only through the
    // returned reference, which keeps the exclusive borrow.
    unsafe {
        ptr.write(value);
        Ok(&mut *ptr)
    }
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a mut [u8], n: usize) -> Result<&'a mut [u8], ChispaStatus> {
    let (head, tail) =
        core::mem::take(rest).split_at_mut_checked(n).ok_or(ChispaStatus::ArenaTooSmall)?;
    *rest = tail;
    Ok(head)
}

/// Parses `model`, carves `arena` and returns the handle placed at its start.
pub(crate) fn open(
    model: &'static [u8],
    arena: &'static mut [u8],
    context: u32,
    kv: u32,
    sampling: SamplerConfig,
) -> Result<&'static mut ChispaSession, ChispaStatus> {
    let options = options(context, kv)?;
    let parsed = Model::parse(model)?;
    let layout = Layout::new(&parsed, &options)?;
    if arena.len() < layout.total()? {
        return Err(ChispaStatus::ArenaTooSmall);
    }
    if !arena.as_ptr().cast::<u128>().is_aligned() {
        return Err(ChispaStatus::ArenaMisaligned);
    }
    let [handle_bytes, model_bytes, ids_bytes, session_bytes, _] = layout.parts;
    let mut rest = arena;
    let handle_slot = take(&mut rest, handle_bytes)?;
    let model: &'static Model<'static> = place(take(&mut rest, model_bytes)?, parsed)?;
    let session = ChispaSession {
        magic: MAGIC,
        model,
        options,
        context: layout.context,
        sampling,
        run: rest.as_mut_ptr(),
        run_len: rest.len(),
        ids_bytes,
        session_bytes,
        gen: None,
        digest: Digest::new(),
        prompt_tokens: 0,
        pending: None,
        stop: None,
    };
    place(handle_slot, session)
}

/// The bytes to show for a decoded piece, as `chispa run` prints them: a lone control byte
/// (other than whitespace) is dropped; bytes ≥ 0x80 pass so multi-byte characters survive.
fn printable(piece: Piece<'_>) -> &[u8] {
    match piece {
        Piece::Byte(b) if b < 0x80 && !(b.is_ascii_graphic() || b.is_ascii_whitespace()) => &[],
        _ => piece.bytes(),
    }
}

impl ChispaSession {
    /// Whether this is a live handle.
    pub(crate) fn is_open(&self) -> bool {
        self.magic == MAGIC
    }

    /// Marks the handle closed; later calls with it return `BadHandle`.
    pub(crate) fn close(&mut self) {
        self.reset();
        self.magic = 0;
    }

    /// Sampling settings for the next prompt.
    pub(crate) fn set_sampling(&mut self, sampling: SamplerConfig) {
        self.sampling = sampling;
    }

    /// Forgets the current prompt: no generation until the next `prompt`.
    pub(crate) fn reset(&mut self) {
        self.gen = None;
        self.digest = Digest::new();
        self.prompt_tokens = 0;
        self.pending = None;
        self.stop = None;
    }

    /// Starts a new generation: encodes `text` (with BOS, as `chispa run`), up to
    /// `max_tokens` new tokens. On error the session is reset.
    #[allow(unsafe_code)]
    pub(crate) fn prompt(&mut self, text: &str, max_tokens: usize) -> Result<(), ChispaStatus> {
        // Drops the generator: nothing borrows the run region any more.
        self.reset();
        // SAFETY: `run`/`run_len` are the tail of the arena `open` was given, which the caller
        // keeps valid and untouched while the handle is open (the API's contract); nothing
        // else refers to it since the generator (its only borrower) was just dropped, and the
        // new borrow goes only into the new generator stored in `self`.
        let region: &'static mut [u8] =
            unsafe { core::slice::from_raw_parts_mut(self.run, self.run_len) };
        let mut rest = region;
        let ids_region = take(&mut rest, self.ids_bytes)?;
        let session_slot = take(&mut rest, self.session_bytes)?;
        let arena = rest;
        let ids = words(ids_region)?;
        let n = {
            // The tokenizer's output (one id per character or byte at most, before merging,
            // and BOS) and its merge scratch, from the core's arena.
            let scratch = words(arena)?;
            let per = 1 + chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN;
            let cap = text.len().saturating_add(3).min(scratch.len() / per);
            let (out, scratch) =
                scratch.split_at_mut_checked(cap).ok_or(ChispaStatus::PromptTooLong)?;
            let n = self.model.tokenizer().encode(text, true, false, out, scratch)?;
            let got = out.get(..n).ok_or(ChispaStatus::Internal)?;
            ids.get_mut(..n).ok_or(ChispaStatus::PromptTooLong)?.copy_from_slice(got);
            n
        };
        let session = place(session_slot, Session::new(self.model, &self.options, arena)?)?;
        let ids: &'static [u32] = ids;
        let prompt = ids.get(..n).ok_or(ChispaStatus::Internal)?;
        let gen = Generator::new(session, prompt, max_tokens, Sampler::new(self.sampling))?;
        self.digest.tokens(prompt);
        self.prompt_tokens = n;
        self.gen = Some(gen);
        Ok(())
    }

    /// The next generated token: its printable text into `buf`, its byte count into `len`
    /// (also when it does not fit), its id returned. `Err(Done)` once generation is over.
    pub(crate) fn next(&mut self, buf: &mut [u8], len: &mut usize) -> Result<u32, ChispaStatus> {
        *len = 0;
        loop {
            if let Some((id, prev)) = self.pending {
                let text = printable(self.model.tokenizer().decode(Some(prev), id));
                *len = text.len();
                buf.get_mut(..text.len())
                    .ok_or(ChispaStatus::BufferTooSmall)?
                    .copy_from_slice(text);
                self.pending = None;
                return Ok(id);
            }
            if self.stop.is_some() {
                return Err(ChispaStatus::Done);
            }
            let gen = self.gen.as_mut().ok_or(ChispaStatus::NoPrompt)?;
            let event = gen.step()?;
            self.digest.event(&event, gen.logits());
            match event {
                Event::Prompt { .. } => {}
                Event::Token { id, prev } => self.pending = Some((id, prev)),
                Event::Stop(r) => self.stop = Some(r),
            }
        }
    }

    /// The digest of the current run (prompt ids, then every forward pass's logit bits and
    /// sampled id), as `chispa run --digest` and the firmware print it.
    pub(crate) fn digest(&self) -> u64 {
        self.digest.value()
    }

    /// Why generation ended, if it did.
    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Prompt tokens (BOS included) and tokens generated so far (a final stop token
    /// included).
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.prompt_tokens, self.gen.as_ref().map_or(0, |g| g.generated()))
    }

    /// The longest text one token can produce: a buffer this long always suffices.
    pub(crate) fn max_piece_bytes(&self) -> usize {
        self.model.tokenizer().max_piece_len().max(1)
    }

    /// The vocabulary size.
    pub(crate) fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    /// The context length in tokens.
    pub(crate) fn context(&self) -> usize {
        self.context
    }
}

/// The whole `u32` words of a 4-byte aligned byte region.
fn words(bytes: &mut [u8]) -> Result<&mut [u32], ChispaStatus> {
    let n = bytes.len() / 4 * 4;
    let bytes = bytes.get_mut(..n).ok_or(ChispaStatus::Internal)?;
    bytemuck::try_cast_slice_mut(bytes).map_err(|_| ChispaStatus::Internal)
}

//! The status codes every function returns, the enumerations C passes in (as plain integers,
//! so that no value C can write is undefined behaviour) and their conversions from the core's
//! errors.

use core::ffi::CStr;

use chispa_core::{FormatError, KvType, PlanError, RunError, StopReason, TokenizeError};

/// What a `chispa_*` function did: `CHISPA_STATUS_OK` (0), `CHISPA_STATUS_DONE` (1,
/// generation is over), or an error (negative). `chispa_status_message` describes each.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChispaStatus {
    /// Success.
    Ok = 0,
    /// `chispa_next`: generation is over, no token was produced (`chispa_stop_reason` says
    /// why). Not an error.
    Done = 1,
    /// A pointer argument is NULL.
    NullPointer = -1,
    /// The session handle is not one `chispa_open` returned, or it was closed.
    BadHandle = -2,
    /// The model bytes are not a valid `.chispa` file (damaged, truncated, wrong version).
    BadModel = -3,
    /// The model bytes do not start at a 16-byte boundary.
    ModelMisaligned = -4,
    /// The context length is above what the model supports.
    BadContext = -5,
    /// The KV-cache type is not one of `ChispaKv`.
    BadKv = -6,
    /// The arena is smaller than `chispa_arena_bytes` says.
    ArenaTooSmall = -7,
    /// The arena does not start at a 16-byte boundary.
    ArenaMisaligned = -8,
    /// The memory plan does not fit in the address space.
    TooLarge = -9,
    /// A temperature that is negative or not finite, or a top-p that is not finite.
    BadSampling = -10,
    /// The prompt is not valid UTF-8.
    NotUtf8 = -11,
    /// The prompt encodes to no tokens (a model without a BOS token and an empty prompt).
    EmptyPrompt = -12,
    /// The prompt has more tokens than the context holds, or is too long to encode in the
    /// session's arena.
    PromptTooLong = -13,
    /// The prompt has a character the vocabulary cannot express (no byte fallback).
    Untokenizable = -14,
    /// `chispa_next` before any `chispa_prompt` (or after `chispa_reset`).
    NoPrompt = -15,
    /// The token's text does not fit the buffer; `*len` is the size needed, and the next
    /// `chispa_next` returns the same token again.
    BufferTooSmall = -16,
    /// A check inside the core failed that should not fail after a successful open; please
    /// report it.
    Internal = -17,
}

impl ChispaStatus {
    /// Every status, in code order (0, 1, -1, -2, ...).
    const ALL: [ChispaStatus; 19] = [
        Self::Ok,
        Self::Done,
        Self::NullPointer,
        Self::BadHandle,
        Self::BadModel,
        Self::ModelMisaligned,
        Self::BadContext,
        Self::BadKv,
        Self::ArenaTooSmall,
        Self::ArenaMisaligned,
        Self::TooLarge,
        Self::BadSampling,
        Self::NotUtf8,
        Self::EmptyPrompt,
        Self::PromptTooLong,
        Self::Untokenizable,
        Self::NoPrompt,
        Self::BufferTooSmall,
        Self::Internal,
    ];

    /// The status with code `code`, if there is one.
    pub(crate) fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as i32 == code)
    }

    /// One line describing the status, NUL-terminated for C.
    pub(crate) fn message(self) -> &'static CStr {
        match self {
            Self::Ok => c"success",
            Self::Done => c"generation is over (see chispa_stop_reason)",
            Self::NullPointer => c"a pointer argument is NULL",
            Self::BadHandle => c"not a session handle from chispa_open, or a closed one",
            Self::BadModel => c"the model bytes are not a valid .chispa file",
            Self::ModelMisaligned => c"the model bytes must start at a 16-byte aligned address",
            Self::BadContext => c"the context length is above the model's maximum",
            Self::BadKv => c"unknown KV-cache type (see ChispaKv)",
            Self::ArenaTooSmall => c"the arena is smaller than chispa_arena_bytes says",
            Self::ArenaMisaligned => c"the arena must start at a 16-byte aligned address",
            Self::TooLarge => c"the memory plan overflows the address space",
            Self::BadSampling => c"temperature must be finite and >= 0 (0 is greedy), top-p finite",
            Self::NotUtf8 => c"the prompt is not valid UTF-8",
            Self::EmptyPrompt => c"the prompt encodes to no tokens",
            Self::PromptTooLong => c"the prompt does not fit the context (or the arena)",
            Self::Untokenizable => c"the prompt has a character the vocabulary cannot express",
            Self::NoPrompt => c"no prompt: call chispa_prompt first",
            Self::BufferTooSmall => {
                c"the token's text does not fit the buffer (*len is the size needed)"
            }
            Self::Internal => c"internal error in chispa (please report it)",
        }
    }
}

impl From<FormatError> for ChispaStatus {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::MisalignedBuffer { .. } => Self::ModelMisaligned,
            _ => Self::BadModel,
        }
    }
}

impl From<PlanError> for ChispaStatus {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::BadContext { .. } => Self::BadContext,
            PlanError::UnsupportedKv => Self::BadKv,
            PlanError::ArenaTooSmall { .. } => Self::ArenaTooSmall,
            PlanError::ArenaMisaligned => Self::ArenaMisaligned,
            _ => Self::TooLarge,
        }
    }
}

impl From<TokenizeError> for ChispaStatus {
    fn from(e: TokenizeError) -> Self {
        match e {
            TokenizeError::NoPiece { .. } => Self::Untokenizable,
            _ => Self::PromptTooLong,
        }
    }
}

impl From<RunError> for ChispaStatus {
    fn from(e: RunError) -> Self {
        match e {
            RunError::EmptyPrompt => Self::EmptyPrompt,
            RunError::PromptTooLong { .. } => Self::PromptTooLong,
            _ => Self::Internal,
        }
    }
}

/// KV-cache element types, for `ChispaConfig::kv` and `chispa_arena_bytes` (passed as
/// `uint32_t`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChispaKv {
    /// 32-bit float (exact; the most memory).
    F32 = 0,
    /// IEEE half precision.
    F16 = 1,
    /// int8 with one scale per cached row (a quarter of F32).
    Int8 = 2,
    /// The bytes of INT8, spent where the error is (rotated heads, 10-bit keys, 7-bit values).
    K10v7 = 3,
}

/// The core's KV type for a `ChispaKv` code.
pub(crate) fn kv_type(code: u32) -> Result<KvType, ChispaStatus> {
    Ok(match code {
        0 => KvType::F32,
        1 => KvType::F16,
        2 => KvType::I8,
        3 => KvType::K10V7,
        _ => return Err(ChispaStatus::BadKv),
    })
}

/// Why generation ended, from `chispa_stop_reason`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChispaStop {
    /// Not over (or no prompt yet).
    None = 0,
    /// The requested number of new tokens was generated.
    MaxTokens = 1,
    /// The model produced a stop token (not returned as text; counted as generated).
    EndOfSequence = 2,
    /// The context is full.
    ContextFull = 3,
}

impl From<Option<StopReason>> for ChispaStop {
    fn from(r: Option<StopReason>) -> Self {
        match r {
            None => Self::None,
            Some(StopReason::MaxTokens) => Self::MaxTokens,
            Some(StopReason::EndOfSequence { .. }) => Self::EndOfSequence,
            Some(StopReason::ContextFull) => Self::ContextFull,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for (i, s) in ChispaStatus::ALL.iter().enumerate() {
            assert_eq!(ChispaStatus::from_code(*s as i32), Some(*s));
            for t in ChispaStatus::ALL.iter().skip(i + 1) {
                assert_ne!(*s as i32, *t as i32);
                assert_ne!(s.message(), t.message());
            }
        }
        assert_eq!(ChispaStatus::from_code(2), None);
        assert_eq!(ChispaStatus::from_code(-18), None);
    }

    #[test]
    fn kv_codes() {
        for (code, kv) in [(0, KvType::F32), (1, KvType::F16), (2, KvType::I8), (3, KvType::K10V7)]
        {
            assert_eq!(kv_type(code), Ok(kv));
        }
        assert_eq!(kv_type(4), Err(ChispaStatus::BadKv));
        assert_eq!(ChispaKv::K10v7 as u32, 3);
    }
}

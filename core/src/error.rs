//! Typed errors. Each carries the numbers that explain it, and `Display` says what was wrong.

use core::fmt;

/// Why a byte string is not a usable `.chispa` model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FormatError {
    /// Shorter than the header, or than the header says.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// Longer than the header says.
    TrailingBytes {
        /// Bytes the header declares.
        declared: usize,
        /// Bytes present.
        found: usize,
    },
    /// Not a `.chispa` file.
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Written by an incompatible version of the format.
    UnsupportedVersion {
        /// Major version in the file.
        major: u16,
        /// Minor version in the file.
        minor: u16,
    },
    /// The header size field is not ours.
    BadHeaderSize {
        /// Value found.
        found: u32,
    },
    /// Reserved header bytes are not zero.
    ReservedNotZero {
        /// Offset of the first non-zero reserved byte.
        offset: usize,
    },
    /// The CRC-32 does not match: the file is corrupted.
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum computed over the bytes.
        computed: u32,
    },
    /// The bytes are not aligned in memory as the format requires.
    MisalignedBuffer {
        /// Alignment required.
        required: usize,
    },
    /// An enumerated field holds an unknown code.
    UnknownCode {
        /// Which field.
        field: &'static str,
        /// Value found.
        value: u32,
    },
    /// A hyper-parameter is zero, too large, or inconsistent with another.
    BadDimension {
        /// Which parameter.
        field: &'static str,
        /// Value found.
        value: u32,
    },
    /// A float parameter is not finite or out of range.
    BadFloat {
        /// Which parameter.
        field: &'static str,
    },
    /// The tensor directory does not hold what the shape requires.
    BadTensor {
        /// Directory index.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A section lies (partly) outside the file or is misaligned.
    BadSection {
        /// Which section.
        section: &'static str,
        /// Its offset.
        offset: usize,
        /// Its length.
        len: usize,
    },
    /// The tokenizer tables are inconsistent.
    BadTokenizer {
        /// Token id or table index where the problem was found.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, found } => {
                write!(f, "file is truncated: needs {needed} bytes, has {found}")
            }
            Self::TrailingBytes { declared, found } => {
                write!(f, "file has {found} bytes but its header declares {declared}")
            }
            Self::BadMagic { found } => write!(
                f,
                "not a .chispa file (magic {found:02x?}, expected \"CHSP\"); convert it with chispa-convert"
            ),
            Self::UnsupportedVersion { major, minor }
                if major < crate::format::VERSION_MAJOR =>
            {
                write!(
                    f,
                    "format version {major}.{minor} is older than this build's {}.x (its int8 \
                     scales are laid out differently): convert the model again with \
                     chispa-convert",
                    crate::format::VERSION_MAJOR
                )
            }
            Self::UnsupportedVersion { major, minor }
                if major == crate::format::VERSION_MAJOR =>
            {
                write!(
                    f,
                    "format version {major}.{minor} is newer than this build's {major}.{} and \
                     uses what this build does not know: update chispa, or convert the model \
                     with this build's chispa-convert",
                    crate::format::VERSION_MINOR
                )
            }
            Self::UnsupportedVersion { major, minor } => write!(
                f,
                "format version {major}.{minor} is not supported (this build reads {}.x)",
                crate::format::VERSION_MAJOR
            ),
            Self::BadHeaderSize { found } => write!(f, "header size {found} is not supported"),
            Self::ReservedNotZero { offset } => {
                write!(f, "reserved header byte at offset {offset} is not zero")
            }
            Self::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupted"
            ),
            Self::MisalignedBuffer { required } => {
                write!(f, "model bytes must start at a {required}-byte aligned address")
            }
            Self::UnknownCode { field, value } => write!(f, "unknown {field} code {value}"),
            Self::BadDimension { field, value } => write!(f, "invalid {field}: {value}"),
            Self::BadFloat { field } => write!(f, "invalid {field}: not a finite positive number"),
            Self::BadTensor { index, what } => write!(f, "tensor #{index}: {what}"),
            Self::BadSection { section, offset, len } => {
                write!(f, "{section} section (offset {offset}, {len} bytes) is out of bounds or misaligned")
            }
            Self::BadTokenizer { index, what } => write!(f, "tokenizer entry {index}: {what}"),
        }
    }
}

impl core::error::Error for FormatError {}

/// Why a session cannot be planned or started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PlanError {
    /// Context length 0 or above what the model supports.
    BadContext {
        /// Requested.
        requested: usize,
        /// Model maximum.
        max: usize,
    },
    /// The KV-cache type is not available in this build.
    UnsupportedKv,
    /// The arena is smaller than the plan.
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The arena does not start at a 16-byte boundary.
    ArenaMisaligned,
    /// The plan does not fit in the address space.
    TooLarge,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadContext { requested, max } => {
                write!(f, "context length {requested} is not in 1..={max}")
            }
            Self::UnsupportedKv => write!(f, "this KV-cache type is not supported yet"),
            Self::ArenaTooSmall { needed, given } => {
                write!(f, "arena too small: needs {needed} bytes, given {given}")
            }
            Self::ArenaMisaligned => write!(f, "arena must start at a 16-byte aligned address"),
            Self::TooLarge => write!(f, "memory plan overflows the address space"),
        }
    }
}

impl core::error::Error for PlanError {}

/// Why text could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TokenizeError {
    /// The output buffer cannot hold the tokens.
    OutputFull {
        /// Capacity of the buffer.
        capacity: usize,
    },
    /// The scratch buffer cannot hold the merge state.
    ScratchTooSmall {
        /// Words it needs.
        needed: usize,
    },
    /// A character has no piece and the vocabulary has no byte fallback.
    NoPiece {
        /// Byte offset of the character in the text.
        offset: usize,
    },
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutputFull { capacity } => {
                write!(f, "text needs more than {capacity} tokens")
            }
            Self::ScratchTooSmall { needed } => {
                write!(f, "the tokenizer's scratch buffer needs {needed} words")
            }
            Self::NoPiece { offset } => {
                write!(f, "character at byte {offset} is not in the vocabulary (no byte fallback)")
            }
        }
    }
}

impl core::error::Error for TokenizeError {}

/// Why a forward pass or a generation cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RunError {
    /// A token id outside the vocabulary.
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A position at or past the session's context length.
    PositionOutOfRange {
        /// The position.
        pos: usize,
        /// Context length.
        context: usize,
    },
    /// A prompt with no tokens.
    EmptyPrompt,
    /// The prompt does not fit the context.
    PromptTooLong {
        /// Prompt tokens.
        len: usize,
        /// Context length.
        context: usize,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TokenOutOfRange { id, vocab } => {
                write!(f, "token id {id} is outside the vocabulary of {vocab}")
            }
            Self::PositionOutOfRange { pos, context } => {
                write!(f, "position {pos} is outside the context of {context}")
            }
            Self::EmptyPrompt => write!(f, "the prompt has no tokens"),
            Self::PromptTooLong { len, context } => write!(
                f,
                "the prompt has {len} tokens but the context holds {context}; shorten it or raise --context"
            ),
        }
    }
}

impl core::error::Error for RunError {}

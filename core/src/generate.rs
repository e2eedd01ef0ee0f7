//! Streaming generation: one forward pass per `step`, ending with a typed reason.

use crate::error::RunError;
use crate::sampler::Sampler;
use crate::session::Session;

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StopReason {
    /// The requested number of new tokens was generated.
    MaxTokens,
    /// The model produced one of its stop ids (llama2.c stops on BOS).
    EndOfSequence {
        /// The id produced (not printed).
        id: u32,
    },
    /// The context is full.
    ContextFull,
}

/// What one `step` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// A prompt token was run; `next` is the prompt token that follows it.
    Prompt {
        /// Position that was run.
        pos: usize,
        /// The next prompt token.
        next: u32,
    },
    /// A new token was sampled.
    Token {
        /// The new token.
        id: u32,
        /// The token before it (for decoding).
        prev: u32,
    },
    /// Generation is over (repeated on every later call).
    Stop(StopReason),
}

/// Runs a prompt, then samples up to `max_new` tokens, one per `step`.
#[derive(Debug)]
pub struct Generator<'g, 'm, 'a> {
    session: &'g mut Session<'m, 'a>,
    sampler: Sampler<'g>,
    prompt: &'g [u32],
    token: u32,
    pos: usize,
    generated: usize,
    max_new: usize,
    stopped: Option<StopReason>,
}

impl<'g, 'm, 'a> Generator<'g, 'm, 'a> {
    /// Starts generation after `prompt` (which includes BOS if the model wants one). The
    /// prompt's tokens and every sampled one are [accepted](Sampler::accept) by the sampler,
    /// so its repeat penalty (if any) sees them.
    ///
    /// # Errors
    /// [`RunError::EmptyPrompt`], [`RunError::PromptTooLong`] (the prompt must fit the
    /// context), [`RunError::TokenOutOfRange`].
    pub fn new(
        session: &'g mut Session<'m, 'a>,
        prompt: &'g [u32],
        max_new: usize,
        mut sampler: Sampler<'g>,
    ) -> Result<Self, RunError> {
        let first = *prompt.first().ok_or(RunError::EmptyPrompt)?;
        if prompt.len() > session.context() {
            return Err(RunError::PromptTooLong { len: prompt.len(), context: session.context() });
        }
        let vocab = session.model().config().vocab_size;
        if let Some(id) = prompt.iter().find(|id| **id as usize >= vocab) {
            return Err(RunError::TokenOutOfRange { id: *id, vocab });
        }
        for id in prompt {
            sampler.accept(*id);
        }
        Ok(Self {
            session,
            sampler,
            prompt,
            token: first,
            pos: 0,
            generated: 0,
            max_new,
            stopped: None,
        })
    }

    /// Runs one forward pass and says what happened.
    ///
    /// # Errors
    /// None after a successful `new`; the `Result` guards the session's own checks.
    pub fn step(&mut self) -> Result<Event, RunError> {
        if let Some(r) = self.stopped {
            return Ok(Event::Stop(r));
        }
        let stop = |s: &mut Self, r| {
            s.stopped = Some(r);
            Ok(Event::Stop(r))
        };
        if self.generated >= self.max_new {
            return stop(self, StopReason::MaxTokens);
        }
        if self.pos >= self.session.context() {
            return stop(self, StopReason::ContextFull);
        }
        self.session.forward(self.token, self.pos)?;
        let pos = self.pos;
        self.pos += 1;
        if let Some(next) = self.prompt.get(self.pos).copied() {
            self.token = next;
            return Ok(Event::Prompt { pos, next });
        }
        let sampler = &mut self.sampler;
        let id = self.session.with_probs(|probs, scratch| sampler.sample(probs, scratch));
        sampler.accept(id);
        self.generated += 1;
        let prev = core::mem::replace(&mut self.token, id);
        if self.session.model().is_stop(id) {
            return stop(self, StopReason::EndOfSequence { id });
        }
        Ok(Event::Token { id, prev })
    }

    /// Logits of the last forward pass.
    pub fn logits(&self) -> &[f32] {
        self.session.logits()
    }

    /// Positions run so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Tokens sampled so far (including a final stop token).
    pub fn generated(&self) -> usize {
        self.generated
    }
}

/// The longest stop string [`StopStrings`] matches, in bytes.
pub const STOP_STRING_MAX: usize = 64;

/// Why [`StopStrings::new`] refused a stop string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StopStringError {
    /// An empty stop string (it would match before anything is generated).
    Empty {
        /// Its index in the list.
        index: usize,
    },
    /// Longer than [`STOP_STRING_MAX`] bytes.
    TooLong {
        /// Its index in the list.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
}

impl core::fmt::Display for StopStringError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty { index } => write!(f, "stop string {index} is empty"),
            Self::TooLong { index, len } => write!(
                f,
                "stop string {index} has {len} bytes, more than the {STOP_STRING_MAX} allowed"
            ),
        }
    }
}

/// Watches generated text for stop strings (llama.cpp's reverse prompts), with no heap: it
/// keeps the last [`STOP_STRING_MAX`] bytes.
///
/// [`push`](Self::push) the bytes of each generated piece; it reports the first stop string
/// the text ends with at any byte of that piece (so a piece that carries a stop string and
/// more still stops). What is done with the piece (llama.cpp's `-r` prints it, stop string
/// included) is the caller's choice.
///
/// ```
/// use chispa_core::generate::StopStrings;
///
/// let stops: [&[u8]; 2] = [b"\n\n", b"The end"];
/// let mut watch = StopStrings::new(&stops).expect("short, non-empty stop strings");
/// assert_eq!(watch.push(b"Once upon a time. The"), None);
/// assert_eq!(watch.push(b" end."), Some(1));
/// ```
#[derive(Clone, Debug)]
pub struct StopStrings<'s> {
    stops: &'s [&'s [u8]],
    tail: [u8; STOP_STRING_MAX],
    len: usize,
}

impl<'s> StopStrings<'s> {
    /// Watches for `stops`.
    ///
    /// # Errors
    /// An empty stop string, or one longer than [`STOP_STRING_MAX`] bytes.
    pub fn new(stops: &'s [&'s [u8]]) -> Result<Self, StopStringError> {
        for (index, s) in stops.iter().enumerate() {
            if s.is_empty() {
                return Err(StopStringError::Empty { index });
            }
            if s.len() > STOP_STRING_MAX {
                return Err(StopStringError::TooLong { index, len: s.len() });
            }
        }
        Ok(Self { stops, tail: [0; STOP_STRING_MAX], len: 0 })
    }

    /// Appends the bytes of a generated piece; the index of the first stop string (in the
    /// order given) that the text ends with after one of these bytes, if any.
    pub fn push(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut found = None;
        for b in bytes {
            if self.len == STOP_STRING_MAX {
                self.tail.copy_within(1.., 0);
                self.len -= 1;
            }
            if let Some(slot) = self.tail.get_mut(self.len) {
                *slot = *b;
                self.len += 1;
            }
            let text = self.tail.get(..self.len).unwrap_or(&[]);
            if found.is_none() {
                found = self.stops.iter().position(|s| text.ends_with(s));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_match_across_pieces_and_inside_one() {
        let stops: [&[u8]; 2] = [b"User:", b"\n"];
        let mut w = StopStrings::new(&stops).expect("valid");
        assert_eq!(w.push(b"Hello Us"), None);
        assert_eq!(w.push(b"er"), None);
        assert_eq!(w.push(b": more"), Some(0));
        let mut w = StopStrings::new(&stops).expect("valid");
        assert_eq!(w.push(b"a\nb"), Some(1));
        // Long text keeps the tail only, and still matches at its end.
        let mut w = StopStrings::new(&stops).expect("valid");
        for _ in 0..100 {
            assert_eq!(w.push(b"abcdefg "), None);
        }
        assert_eq!(w.push(b"User"), None);
        assert_eq!(w.push(b":"), Some(0));
    }

    #[test]
    fn bad_stop_strings_are_refused() {
        let long = [b'x'; STOP_STRING_MAX + 1];
        let stops: [&[u8]; 2] = [b"ok", &long];
        assert_eq!(
            StopStrings::new(&stops).map(|_| ()),
            Err(StopStringError::TooLong { index: 1, len: STOP_STRING_MAX + 1 })
        );
        let stops: [&[u8]; 1] = [b""];
        assert_eq!(StopStrings::new(&stops).map(|_| ()), Err(StopStringError::Empty { index: 0 }));
    }
}

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
    sampler: Sampler,
    prompt: &'g [u32],
    token: u32,
    pos: usize,
    generated: usize,
    max_new: usize,
    stopped: Option<StopReason>,
}

impl<'g, 'm, 'a> Generator<'g, 'm, 'a> {
    /// Starts generation after `prompt` (which includes BOS if the model wants one).
    ///
    /// # Errors
    /// [`RunError::EmptyPrompt`], [`RunError::PromptTooLong`] (the prompt must fit the
    /// context), [`RunError::TokenOutOfRange`].
    pub fn new(
        session: &'g mut Session<'m, 'a>,
        prompt: &'g [u32],
        max_new: usize,
        sampler: Sampler,
    ) -> Result<Self, RunError> {
        let first = *prompt.first().ok_or(RunError::EmptyPrompt)?;
        if prompt.len() > session.context() {
            return Err(RunError::PromptTooLong { len: prompt.len(), context: session.context() });
        }
        let vocab = session.model().config().vocab_size;
        if let Some(id) = prompt.iter().find(|id| **id as usize >= vocab) {
            return Err(RunError::TokenOutOfRange { id: *id, vocab });
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

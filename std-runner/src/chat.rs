//! Chat on the desktop: the model file's chat template rendered over the conversation (as
//! Hugging Face's `apply_chat_template` does), encoded without an extra BOS (the template
//! writes it), and fed to one session that keeps the keys and values of the part of the
//! conversation that did not change since the last turn.

use anyhow::{bail, Context, Result};
use chispa_core::{Model, Sampler, Session, StopReason};
use chispa_tools::chat::{render, Message, Specials};

/// A conversation and the model's chat template.
#[derive(Clone, Debug)]
pub struct Conversation {
    template: String,
    specials: Specials,
    messages: Vec<Message>,
}

impl Conversation {
    /// An empty conversation (with `system` as its first message, if given) for `model`.
    ///
    /// # Errors
    /// The model file has no chat template.
    pub fn new(model: &Model<'_>, system: Option<&str>) -> Result<Self> {
        let tok = model.tokenizer();
        let template = tok.chat_template().context(
            "the model has no chat template (convert it from a folder whose tokenizer_config.json has \"chat_template\")",
        )?;
        let (bos, eos) = tok.chat_specials();
        let mut c = Self {
            template: template.to_string(),
            specials: Specials { bos: bos.to_string(), eos: eos.to_string() },
            messages: Vec::new(),
        };
        if let Some(s) = system {
            c.push("system", s);
        }
        Ok(c)
    }

    /// Adds a message.
    pub fn push(&mut self, role: &str, content: &str) {
        self.messages.push(Message::new(role, content));
    }

    /// The messages so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The conversation rendered by the template, ending with the assistant's header.
    ///
    /// # Errors
    /// The template fails to render.
    pub fn prompt(&self) -> Result<String> {
        render(&self.template, &self.messages, true, &self.specials)
    }
}

/// Encodes `text` as a chat template's output: added tokens named in it become their ids,
/// and no BOS is prepended (the template writes its own), as `apply_chat_template` does.
///
/// # Errors
/// The text cannot be encoded.
pub fn encode_chat(model: &Model<'_>, text: &str) -> Result<Vec<u32>> {
    let cap = text.len().checked_add(3).context("the text is too long")?;
    let mut ids = vec![0u32; cap];
    let mut scratch = vec![0u32; cap * chispa_core::tokenizer::ENCODE_SCRATCH_PER_TOKEN];
    let n = model
        .tokenizer()
        .encode(text, false, false, &mut ids, &mut scratch)
        .context("cannot encode the chat prompt")?;
    ids.truncate(n);
    Ok(ids)
}

/// A session and the tokens whose keys and values it holds, at positions `0..fed.len()`.
#[derive(Debug)]
pub struct ChatSession<'s, 'm, 'a> {
    session: &'s mut Session<'m, 'a>,
    fed: Vec<u32>,
    scratch: Vec<u32>,
}

impl<'s, 'm, 'a> ChatSession<'s, 'm, 'a> {
    /// Starts with nothing fed.
    pub fn new(session: &'s mut Session<'m, 'a>) -> Self {
        let vocab = session.model().config().vocab_size;
        Self { session, fed: Vec::new(), scratch: vec![0; vocab] }
    }

    /// The tokens fed so far (the conversation as the model has read it).
    pub fn fed(&self) -> &[u32] {
        &self.fed
    }

    /// Feeds `ids` (the whole conversation so far): the positions where it agrees with what
    /// was fed are kept, the rest is run. Returns how many tokens were run.
    ///
    /// # Errors
    /// Empty `ids`, a conversation longer than the context, or a forward-pass error.
    pub fn feed(&mut self, ids: &[u32]) -> Result<usize> {
        if ids.is_empty() {
            bail!("the chat prompt encodes to no tokens");
        }
        if ids.len() > self.session.context() {
            bail!(
                "the conversation has {} tokens but the context holds {}; start a new one or raise --context",
                ids.len(),
                self.session.context()
            );
        }
        let same = self.fed.iter().zip(ids).take_while(|(a, b)| a == b).count();
        // The last prompt token is always run, for the logits that follow it.
        let keep = same.min(ids.len() - 1);
        self.fed.truncate(keep);
        for (pos, id) in ids.iter().enumerate().skip(keep) {
            self.session.forward(*id, pos)?;
            self.fed.push(*id);
        }
        Ok(ids.len() - keep)
    }

    /// Samples the reply after what was fed: up to `max_new` tokens, calling `on_token(id,
    /// prev)` for each (not for the stop token); `on_token` returning false ends the reply.
    /// Returns the reply's ids and why it ended.
    ///
    /// # Errors
    /// A forward-pass error, or one from `on_token`.
    pub fn reply(
        &mut self,
        sampler: &mut Sampler<'_>,
        max_new: usize,
        mut on_token: impl FnMut(u32, u32) -> Result<bool>,
    ) -> Result<(Vec<u32>, Option<StopReason>)> {
        let mut out = Vec::new();
        loop {
            if out.len() >= max_new {
                return Ok((out, Some(StopReason::MaxTokens)));
            }
            let mut probs = self.session.logits().to_vec();
            let id = sampler.sample(&mut probs, &mut self.scratch);
            sampler.accept(id);
            if self.session.model().is_stop(id) {
                return Ok((out, Some(StopReason::EndOfSequence { id })));
            }
            let prev = self.fed.last().copied().unwrap_or(id);
            out.push(id);
            if !on_token(id, prev)? {
                return Ok((out, None));
            }
            let pos = self.fed.len();
            if pos >= self.session.context() {
                return Ok((out, Some(StopReason::ContextFull)));
            }
            self.session.forward(id, pos)?;
            self.fed.push(id);
        }
    }
}

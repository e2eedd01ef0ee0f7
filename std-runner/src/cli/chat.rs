//! `chispa chat`: a multi-turn conversation on standard input, replies streamed to stdout.
//!
//! Each line read is one user message. The whole conversation is rendered by the model's
//! chat template and fed to one session that keeps what did not change, so each turn runs
//! only the new tokens. A reply ends at the model's end-of-turn token (a stop id), at
//! `--steps` tokens, or when the context is full; end of input (Ctrl-D) ends the chat.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::{Context, Result};
use chispa_core::{Sampler, SamplerConfig, Session, SessionOptions};
use chispa_runner::chat::{encode_chat, ChatSession, Conversation};
use chispa_runner::load::Loaded;
use chispa_runner::run::{arena_for, printable};
use clap::Args;
use serde_json::json;

use super::common::{out_ok, reason_text, Kv};

/// Options of `chispa chat`.
#[derive(Args, Debug)]
pub(crate) struct ChatArgs {
    /// A system message that opens the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens per reply.
    #[arg(long, short = 'n', visible_alias = "n-predict", default_value_t = 256)]
    steps: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, visible_alias = "temp", default_value_t = 0.8)]
    temperature: f32,
    /// Nucleus sampling threshold; ≤ 0 or ≥ 1 samples from all tokens.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    top_p: f32,
    /// PRNG seed; default: from the clock.
    #[arg(long, short = 's')]
    seed: Option<u64>,
    /// Context length in tokens (the whole conversation must fit); default: the model's
    /// maximum.
    #[arg(long, short = 'c', visible_alias = "ctx-size", default_value_t = 0)]
    context: usize,
    /// One JSON object per turn instead of text: {"user", "prompt_ids" (the whole
    /// conversation as fed), "reply_ids", "reply", "stop_reason"}.
    #[arg(long)]
    json: bool,
    /// KV-cache element type.
    #[arg(long, value_enum, default_value_t = Kv::F32)]
    kv: Kv,
}

pub(crate) fn cmd_chat(loaded: &Loaded, a: &ChatArgs) -> Result<()> {
    let model = loaded.bytes.parse(&loaded.name)?;
    let mut convo = Conversation::new(&model, a.system.as_deref())?;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let options = SessionOptions { context: a.context, kv: a.kv.into() };
    let mut arena = arena_for(&model, &options)?;
    let mut session = Session::new(&model, &options, arena.as_mut_slice())?;
    session.set_kernels(chispa_runner::threads::kernels());
    let mut chat = ChatSession::new(&mut session);
    let mut sampler =
        Sampler::new(SamplerConfig { temperature: a.temperature, top_p: a.top_p, seed });
    let tok = model.tokenizer();
    let interactive = io::stdin().is_terminal();
    let stdout = io::stdout();
    let mut lines = io::stdin().lock().lines();
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let user = line.context("cannot read standard input as UTF-8 text")?;
        convo.push("user", &user);
        let prompt_ids = encode_chat(&model, &convo.prompt()?)?;
        chat.feed(&prompt_ids)?;
        let mut out = stdout.lock();
        let json = a.json;
        let (reply_ids, reason) = chat.reply(&mut sampler, a.steps, |id, prev| {
            if json {
                return Ok(true);
            }
            out_ok(out.write_all(printable(tok.decode(Some(prev), id))).and_then(|_| out.flush()))
        })?;
        let mut reply = Vec::new();
        let mut prev = prompt_ids.last().copied();
        for id in &reply_ids {
            reply.extend_from_slice(tok.decode(prev, *id).bytes());
            prev = Some(*id);
        }
        let reply = String::from_utf8_lossy(&reply).into_owned();
        let reason = reason.map_or_else(|| "output closed".to_string(), reason_text);
        let open = if json {
            let line = json!({
                "user": user,
                "prompt_ids": prompt_ids,
                "reply_ids": reply_ids,
                "reply": reply,
                "stop_reason": reason,
            });
            out_ok(writeln!(out, "{line}"))?
        } else {
            out_ok(writeln!(out))?
        };
        if !open {
            break;
        }
        convo.push("assistant", &reply);
    }
    eprintln!("model {} | {} messages | seed {seed}", loaded.name, convo.messages().len());
    Ok(())
}

//! Chat templates: rendered on the desktop with minijinja as Hugging Face's
//! `apply_chat_template` renders them (Jinja with `trim_blocks` and `lstrip_blocks`, Python
//! string methods, `raise_exception`), and reduced at conversion to the fixed text a board
//! puts around one user message.

use anyhow::{bail, Context, Result};
use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;
use serde_json::Value;

use crate::source::Chat;

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message of `role` with `content`.
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.to_string(), content: content.to_string() }
    }
}

/// The special-token strings a template may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Specials {
    /// `bos_token`.
    pub bos: String,
    /// `eos_token`.
    pub eos: String,
}

fn raise_exception(msg: String) -> Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

/// Renders `template` over `messages`; with `add_generation_prompt` it ends with the
/// assistant's header, ready for the reply.
///
/// # Errors
/// A template that does not compile or fails to render (the message says where).
pub fn render(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    specials: &Specials,
) -> Result<String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_template("chat", template).context("the chat template does not compile")?;
    let t = env.get_template("chat").context("the chat template does not compile")?;
    t.render(context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => specials.bos,
        eos_token => specials.eos,
    })
    .context("the chat template does not render")
}

/// A text no message contains, to find where the user's message lands.
const MARK: &str = "\u{E000}chispa-user-message\u{E001}";

/// The text before and after one user message (with the generation prompt) that `template`
/// renders.
///
/// # Errors
/// The template fails to render, or does not put the message in exactly once.
pub fn wrap(template: &str, specials: &Specials) -> Result<(String, String)> {
    let text = render(template, &[Message::new("user", MARK)], true, specials)?;
    let mut parts = text.split(MARK);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(prefix), Some(suffix), None) => Ok((prefix.to_string(), suffix.to_string())),
        _ => bail!("the chat template does not put a user message in exactly once"),
    }
}

/// The chat template of `tokenizer_config.json` (`chat_template`: a string, or a list of
/// named templates of which `default` is taken), with its prefix and suffix.
///
/// # Errors
/// A `chat_template` of another form, or one that does not render.
pub fn from_tokenizer_config(
    tok_config: Option<&Value>,
    table: &[Option<String>],
    bos: Option<u32>,
    eos: Option<u32>,
) -> Result<Option<Chat>> {
    let Some(v) = tok_config.and_then(|c| c.get("chat_template")).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let template = match v {
        Value::String(s) => s.clone(),
        Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .context("tokenizer_config.json: chat_template list has no \"default\" template")?
            .to_string(),
        _ => bail!("tokenizer_config.json: chat_template is neither a string nor a list"),
    };
    let name = |id: Option<u32>| {
        id.and_then(|i| table.get(i as usize)).and_then(Option::clone).unwrap_or_default()
    };
    let specials = Specials { bos: name(bos), eos: name(eos) };
    from_template(template, &specials).map(Some).context("tokenizer_config.json: chat_template")
}

/// A chat template with the prefix and suffix it implies.
///
/// # Errors
/// As [`wrap`].
pub fn from_template(template: String, specials: &Specials) -> Result<Chat> {
    let (prefix, suffix) = wrap(&template, specials)?;
    Ok(Chat { template, prefix, suffix, specials: specials.clone() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn chatml_wraps_a_message() {
        let (p, s) = wrap(CHATML, &Specials::default()).unwrap();
        assert_eq!(p, "<|im_start|>user\n");
        assert_eq!(s, "<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let t = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}{{ messages[0]['content'].strip().upper() }}";
        let m = [Message::new("user", "  hi ")];
        assert_eq!(render(t, &m, false, &Specials::default()).unwrap(), "HI");
        let e = render(t, &[Message::new("assistant", "x")], false, &Specials::default());
        assert!(format!("{:#}", e.unwrap_err()).contains("user first"));
    }
}

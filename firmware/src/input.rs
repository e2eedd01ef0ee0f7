//! The prompt loop's input: a line is a prompt, or a command that starts with `/`.
//!
//! | line | effect |
//! |---|---|
//! | `/set steps=N temperature=T top-p=P seed=S chat=on\\|off` | changes the settings named (any subset, any order) for the prompts that follow; `chat=on` wraps each prompt in the model's chat prefix and suffix (the default when the model has them) |
//! | `/show` | prints the settings |
//! | `/help` | prints this list |
//! | `/quit` | ends the loop (as the end of input does) |
//! | empty | nothing |
//! | anything else | a prompt: encoded (BOS first) and generated from with the settings |
//!
//! The settings start as the build's (`CHISPA_STEPS`, `CHISPA_TEMPERATURE`, `CHISPA_TOP_P`,
//! `CHISPA_SEED`) and take the values `chispa run` accepts for `-n`, `--temperature`,
//! `--top-p` and `--seed`, so that a prompt gives the desktop's digest with the same flags.

use crate::settings;

/// What one run samples with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// New tokens at most.
    pub steps: usize,
    /// 0 is greedy.
    pub temperature: f32,
    /// Nucleus sampling (≤ 0 or ≥ 1: all tokens).
    pub top_p: f32,
    /// PRNG seed.
    pub seed: u64,
    /// Wrap each prompt in the model's chat prefix and suffix (one user turn, as `chispa run
    /// --chat` does); on by default when the model has them.
    pub chat: bool,
}

impl Settings {
    /// The build's settings.
    pub const DEFAULT: Self = Self {
        steps: settings::STEPS,
        temperature: settings::TEMPERATURE,
        top_p: settings::TOP_P,
        seed: settings::SEED,
        chat: false,
    };
}

/// What a line asks for.
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    /// Generate from this text.
    Prompt(&'a str),
    /// The settings changed (print them).
    Set,
    /// Print the settings.
    Show,
    /// Print the commands.
    Help,
    /// End the loop.
    Quit,
    /// Nothing to do.
    Empty,
}

/// A line that is no valid command.
#[derive(Debug, PartialEq, defmt::Format)]
pub enum LineError<'a> {
    /// `/something` that is not a command.
    UnknownCommand(&'a str),
    /// `/set` with a `name=value` whose name is not a setting.
    UnknownSetting(&'a str),
    /// `/set` with a value that the setting does not take; the text says what it takes.
    BadValue(&'a str, &'static str),
}

/// The commands, for `/help` and after an unknown one.
pub const HELP: &str = "commands: /set steps=N temperature=T top-p=P seed=S chat=on|off (any of them), /show, /help, /quit; any other line is a prompt\n";

/// Interprets `line`, updating `s` for `/set` (all or nothing: a bad pair changes none).
///
/// # Errors
/// [`LineError`] for a line that starts with `/` but is not a valid command.
pub fn parse<'a>(line: &'a str, s: &mut Settings) -> Result<Line<'a>, LineError<'a>> {
    let trimmed = line.trim();
    let Some(cmd) = trimmed.strip_prefix('/') else {
        return Ok(if trimmed.is_empty() { Line::Empty } else { Line::Prompt(line) });
    };
    let mut words = cmd.split_ascii_whitespace();
    match words.next().unwrap_or("") {
        "set" => {
            let mut new = *s;
            for pair in words {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                match name {
                    "steps" | "n" => {
                        new.steps = value
                            .parse()
                            .map_err(|_| LineError::BadValue(pair, "a whole number ≥ 0"))?;
                    }
                    "temperature" | "temp" => {
                        new.temperature = match value.parse::<f32>() {
                            Ok(t) if t.is_finite() && t >= 0.0 => t,
                            _ => return Err(LineError::BadValue(pair, "a finite number ≥ 0")),
                        };
                    }
                    "top-p" | "top_p" => {
                        new.top_p = match value.parse::<f32>() {
                            Ok(p) if p.is_finite() => p,
                            _ => return Err(LineError::BadValue(pair, "a finite number")),
                        };
                    }
                    "chat" => {
                        new.chat = match value {
                            "on" | "1" | "true" => true,
                            "off" | "0" | "false" => false,
                            _ => return Err(LineError::BadValue(pair, "on or off")),
                        };
                    }
                    "seed" => {
                        new.seed = value
                            .parse()
                            .map_err(|_| LineError::BadValue(pair, "a number 0 to 2^64 - 1"))?;
                    }
                    _ => return Err(LineError::UnknownSetting(pair)),
                }
            }
            *s = new;
            Ok(Line::Set)
        }
        "show" => Ok(Line::Show),
        "help" => Ok(Line::Help),
        "quit" | "exit" => Ok(Line::Quit),
        _ => Err(LineError::UnknownCommand(trimmed)),
    }
}

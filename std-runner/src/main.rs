//! `chispa`: run `.chispa` models (or llama2.c checkpoints) on the desktop.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use chispa_core::SessionOptions;
use chispa_runner::usage::is_usage_error;
use cli::attention::cmd_attention;
use cli::bench::cmd_bench;
use cli::chat::{cmd_chat, ChatArgs};
use cli::common::{load_model, Kv, ModelArgs};
use cli::eval::cmd_eval;
use cli::plan::cmd_plan;
use cli::run::{cmd_run, Outcome, RunArgs};
use cli::tokenize::cmd_tokenize;

/// chispa runs small transformer language models — the same code as on a microcontroller.
///
/// MODEL is a .chispa file (from chispa-convert; memory-mapped), or a llama2.c checkpoint with
/// --tokenizer (converted in memory). Without MODEL, the default model stories260K is taken from
/// the data directory ($CHISPA_DATA, else ../shared).
///
/// Exit codes: 0 success, 1 bad model or input (the message says which), 2 bad command line
/// (including a flag that does not apply to MODEL), 130 `run` interrupted by Ctrl-C.
#[derive(Parser, Debug)]
#[command(name = "chispa", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate text: streams it to stdout, statistics to stderr.
    Run {
        /// Model: .chispa, llama2.c .bin with --tokenizer, Hugging Face folder or .gguf (both
        /// converted once, then cached); default stories260K.
        model: Option<PathBuf>,
        #[command(flatten)]
        m: ModelArgs,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Chat with an instruct model: one user message per line of standard input, each reply
    /// streamed to stdout; the model's chat template (from its tokenizer_config.json or
    /// GGUF, stored at conversion) wraps the conversation.
    Chat {
        /// Model with a chat template: .chispa, Hugging Face folder or .gguf.
        model: PathBuf,
        #[command(flatten)]
        m: ModelArgs,
        #[command(flatten)]
        args: ChatArgs,
    },
    /// Print the token ids of TEXT (comma-separated; --verbose: one per line with its piece).
    Tokenize {
        /// Model.
        model: PathBuf,
        /// Text to encode.
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Read the text from FILE instead (`-`: standard input), as it is (a final newline
        /// included); for texts longer than a command line holds.
        #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "text")]
        file: Option<PathBuf>,
        #[command(flatten)]
        m: ModelArgs,
        /// Show each piece.
        #[arg(long, short)]
        verbose: bool,
        /// Do not prepend BOS.
        #[arg(long)]
        no_bos: bool,
    },
    /// Teacher-forced pass over given tokens: perplexity, optionally all logits as JSON.
    Eval {
        /// Model.
        model: PathBuf,
        #[command(flatten)]
        m: ModelArgs,
        /// Comma-separated token ids.
        #[arg(long, conflicts_with = "text", required_unless_present = "text")]
        tokens: Option<String>,
        /// A text file to encode (BOS is added).
        #[arg(long)]
        text: Option<PathBuf>,
        /// Write {"input_ids": [...], "logits": [[...], ...]} here (row t after input_ids[0..=t]).
        #[arg(long)]
        logits_out: Option<PathBuf>,
    },
    /// Draw the attention maps of a prompt as an SVG (tokens on both axes).
    Attention {
        /// Model; default stories260K.
        model: Option<PathBuf>,
        #[command(flatten)]
        m: ModelArgs,
        /// Prompt text (BOS is added).
        #[arg(long, short = 'p')]
        prompt: String,
        /// Layer index, or `all`.
        #[arg(long, default_value = "all")]
        layer: String,
        /// Head index, or `all` (all × all draws a grid of small maps).
        #[arg(long, default_value = "all")]
        head: String,
        /// Output SVG file.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Will MODEL run on a board? Flash and RAM breakdown, margins, tokens/s estimate.
    /// Exits 1 when it does not fit.
    Plan {
        /// Model; default stories260K.
        model: Option<PathBuf>,
        #[command(flatten)]
        m: ModelArgs,
        /// Board: a folder in firmware/boards (qemu-m4, qemu-m33, qemu-m55, stm32f411, rp2350, ...).
        #[arg(long)]
        board: String,
        /// Context length in tokens; default: the model's maximum.
        #[arg(long, short = 'c', visible_alias = "ctx-size", default_value_t = 0)]
        context: usize,
        /// KV-cache element type.
        #[arg(long, value_enum, default_value_t = Kv::Int8)]
        kv: Kv,
        /// The generation the mean speed is given for: N tokens from position 0 (default:
        /// as many as the context holds).
        #[arg(long, short = 'n', value_name = "N")]
        steps: Option<usize>,
        /// Plan for this much RAM (KiB) instead of the board's (as `cargo xtask qemu
        /// --ram-kib`, which shrinks a QEMU board's RAM to prove a budget).
        #[arg(long, value_name = "KIB")]
        ram_kib: Option<u64>,
    },
    /// Measure prompt and generation speed (greedy), median of repeats.
    Bench {
        /// Model; default stories260K.
        model: Option<PathBuf>,
        #[command(flatten)]
        m: ModelArgs,
        /// Prompt length in tokens.
        #[arg(long, default_value_t = 32)]
        prompt_tokens: usize,
        /// Tokens to generate.
        #[arg(long, default_value_t = 224)]
        gen_tokens: usize,
        /// Repeats (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
}

fn run(cli: Cli) -> Result<ExitCode> {
    let done = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Run { model, m, args } => match cmd_run(&load_model(model, &m)?, &args)? {
            Outcome::Done => Ok(ExitCode::SUCCESS),
            Outcome::Interrupted => Ok(ExitCode::from(130)),
        },
        Command::Chat { model, m, args } => done(cmd_chat(&load_model(Some(model), &m)?, &args)),
        Command::Tokenize { model, text, file, m, verbose, no_bos } => {
            let text = match (text, file) {
                (Some(t), _) => t,
                (None, Some(f)) if f.as_os_str() == "-" => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
                        anyhow::anyhow!("cannot read standard input as UTF-8 text: {e}")
                    })?;
                    s
                }
                (None, Some(f)) => chispa_tools::output::read_input_text(&f)?,
                (None, None) => anyhow::bail!("give TEXT or --file"),
            };
            done(cmd_tokenize(&load_model(Some(model), &m)?, &text, verbose, no_bos))
        }
        Command::Eval { model, m, tokens, text, logits_out } => {
            done(cmd_eval(&load_model(Some(model), &m)?, tokens, text, logits_out))
        }
        Command::Attention { model, m, prompt, layer, head, output } => {
            done(cmd_attention(&load_model(model, &m)?, &prompt, &layer, &head, &output))
        }
        Command::Plan { model, m, board, context, kv, steps, ram_kib } => {
            let options = SessionOptions { context, kv: kv.into() };
            if !cmd_plan(&load_model(model, &m)?, &board, options, steps, ram_kib)? {
                anyhow::bail!("the model does not fit {board} with these settings (see above)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { model, m, prompt_tokens, gen_tokens, repeats } => {
            done(cmd_bench(&load_model(model, &m)?, prompt_tokens, gen_tokens, repeats))
        }
    }
}

fn main() -> ExitCode {
    let cli = match chispa_tools::usage::parse::<Cli>("chispa") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Err(e) = chispa_tools::output::remove_temps_on_signals() {
        eprintln!("chispa: error: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(cli).and_then(|code| chispa_tools::stdout::flush().map(|()| code)) {
        Ok(code) => code,
        Err(e) if chispa_tools::stdout::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chispa: error: {e:#}");
            if is_usage_error(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

//! Standard output for every command: a reader that goes away (`chispa plan | head -1`)
//! ends the command quietly, a failed or full stdout (`> /dev/full`) is a one-line error.
//!
//! Print with [`outln!`](crate::outln) / [`out!`](crate::out) and end with [`flush`]; in
//! `main`, an error for which [`is_closed`] holds means exit 0 without a message.

use std::fmt;
use std::io::{self, Write};

/// The reader of standard output went away (EPIPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Whether `e` is a closed pipe.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// A write error of stdout as a command error: [`StdoutClosed`] for a closed pipe, else
/// "cannot write to standard output: …".
pub fn error(e: io::Error) -> anyhow::Error {
    if is_broken_pipe(&e) {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Whether `e` (or an error it wraps) is [`StdoutClosed`].
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

/// Writes `args` to stdout.
///
/// # Errors
/// See [`error`].
pub fn print(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    io::stdout().lock().write_fmt(args).map_err(error)
}

/// Flushes stdout (at the end of a command, so a full disk is reported).
///
/// # Errors
/// See [`error`].
pub fn flush() -> anyhow::Result<()> {
    io::stdout().lock().flush().map_err(error)
}

/// `print!` through [`print()`]: returns `anyhow::Result<()>`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::print(format_args!($($arg)*))
    };
}

/// `println!` through [`print()`]: returns `anyhow::Result<()>`.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

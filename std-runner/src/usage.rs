//! Command-line mistakes found after parsing (a flag that does not apply to the given model):
//! `chispa` exits 2 for them, as for flags clap rejects.

use std::fmt;

/// A flag or value that does not fit the rest of the command line; exit status 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Whether `e` (or an error it wraps) is a [`UsageError`].
pub fn is_usage_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<UsageError>())
}

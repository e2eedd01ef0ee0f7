//! Command-line errors as one line, for both commands.

/// A clap error as one line, `PROG: error: MESSAGE (see --help)`: its message and the
/// arguments it lists, without the usage block (`--help` shows that).
pub fn one_line(prog: &str, e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let msg = parts.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    format!("{prog}: error: {msg} (see --help)")
}

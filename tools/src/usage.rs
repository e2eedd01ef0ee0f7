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

/// The command line of `prog` parsed as `C`, or the exit code to leave with: 0 after
/// `--help`/`--version` (printed), 2 after a usage error (printed as [`one_line`]).
pub fn parse<C: clap::Parser>(prog: &str) -> Result<C, std::process::ExitCode> {
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}", one_line(prog, &e));
            Err(std::process::ExitCode::from(2))
        }
    }
}

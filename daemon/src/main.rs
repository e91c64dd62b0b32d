//! The `ballast` binary: logging, then the command line. Everything else is in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use ballast::cli::LogFormat;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ballast::cli::Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("BALLAST_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Each line an object with the current span (tick, plugin) and the spans above it.
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
        // Colour only for a person at a terminal; log collectors get plain text.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match ballast::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

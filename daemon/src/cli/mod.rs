//! The `ballast` command line. `main` parses and calls [`run`]; each subcommand lives in its
//! own module.

mod fixture;
mod plugin;
mod render;

use clap::{Parser, Subcommand, ValueEnum};

/// Ballast: a Kubernetes autoscaler for AWS whose policies are WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "ballast", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with policy plugins offline: inspect, run, test against fixtures, benchmark.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Runs a parsed command line; the process exit code is what it returns.
///
/// # Errors
/// Anything the user should see, with its context.
pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Plugin(command) => plugin::run(command),
    }
}

//! The `ballast` command line. `main` parses and calls [`run`]; each subcommand lives in its
//! own module.

/// `println!` for command output: a reader that stops early (`| head`) ends the program
/// quietly with success instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

mod chart;
mod ctl;
mod decisions;
mod expander;
mod fixture;
mod plugin;
mod proposals;
mod render;
mod run;
mod serve;
mod simulate;
mod sweep;

use clap::{Parser, Subcommand, ValueEnum};

/// Writes one line of command output. A closed pipe ends the process with success: the
/// reader has what it wanted. Other write errors are reported once on stderr.
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => eprintln!("cannot write to standard output: {e}"),
    }
}

/// Ballast: a Kubernetes autoscaler for AWS whose policies are WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "ballast", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines on standard error look: `text` for people, `json` (one object per
    /// line, with the tick and plugin spans) for log collectors. The level is `BALLAST_LOG`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BALLAST_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with policy plugins offline: inspect, run, test against fixtures, benchmark.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run policies on a simulated cluster and cloud: cost, pending time, a chart. With no
    /// arguments, the built-in mixed EC2/Fargate scenario with the default policies.
    Simulate(simulate::SimulateArgs),
    /// Run the autoscaler: watch the cluster, evaluate the policies, act through the
    /// guardrails (one replica at a time, by Lease).
    Run(run::RunArgs),
    /// Show decision records from a journal: what each plugin proposed, what the guardrails
    /// made of it and what happened.
    Decisions(decisions::DecisionsArgs),
    /// Talk to a running daemon over its control API: status, groups, decisions (--follow),
    /// plugins, mode, simulate, explain.
    Ctl(ctl::CtlArgs),
    /// Serve Cluster Autoscaler's gRPC expander (`--expander=grpc`): Ballast's policies pick
    /// among CA's scale-up options, and every answer is recorded.
    Expander(expander::ExpanderArgs),
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
        Command::Simulate(args) => simulate::run(args),
        Command::Decisions(args) => decisions::run(args),
        Command::Run(args) => run::run(args),
        Command::Ctl(args) => ctl::run(args),
        Command::Expander(args) => expander::run(args),
    }
}

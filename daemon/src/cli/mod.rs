//! The `ballast` command line. `main` parses and calls [`run`]; each subcommand lives in its
//! own module.

mod chart;
mod decisions;
mod fixture;
mod plugin;
mod render;
mod run;
mod simulate;

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
    /// Run policies on a simulated cluster and cloud: cost, pending time, a chart. With no
    /// arguments, the built-in mixed EC2/Fargate scenario with the default policies.
    Simulate(simulate::SimulateArgs),
    /// Run the autoscaler: watch the cluster, evaluate the policies, act through the
    /// guardrails (one replica at a time, by Lease).
    Run(run::RunArgs),
    /// Show decision records from a journal: what each plugin proposed, what the guardrails
    /// made of it and what happened.
    Decisions(decisions::DecisionsArgs),
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
    }
}

//! `ballast ctl`: the control API from the command line, kubectl-style. Every subcommand
//! prints a table, or the server's answer as JSON or YAML (`-o`); a failed call prints the
//! server's status code and message and exits non-zero.

mod client;
mod show;

use std::process::ExitCode;

use anyhow::Context;
use ballast_proto::v1 as pb;
use clap::{Args, Subcommand, ValueEnum};
use client::Connection;
use client::failed;

#[derive(Debug, Args)]
pub struct CtlArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(short, long, global = true, value_enum, default_value_t)]
    output: Format,
    #[command(subcommand)]
    command: CtlCommand,
}

/// How answers are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Mode, leadership, the last tick, adapters and plugins.
    Status,
    /// Node groups as the last tick saw them.
    Groups {
        /// Only this group.
        group: Option<String>,
        /// List each group's nodes too.
        #[arg(long)]
        nodes: bool,
    },
    /// Decision records, newest first; with --follow, new ones as they are made.
    Decisions(DecisionsArgs),
    /// One record, with what its tick saw.
    Decision { id: u64 },
    /// The policy chain; load, unload, reload, mode.
    Plugins {
        #[command(subcommand)]
        command: Option<PluginsCommand>,
    },
    /// The engine's mode; `mode set MODE --reason ...` changes it.
    Mode {
        #[command(subcommand)]
        command: Option<ModeCommand>,
    },
    /// Run a scenario or the live snapshot through a policy set, with no side effects.
    Simulate(SimulateArgs),
    /// Replace a node, or every node of a group (after a new AMI): each replacement is
    /// launched first, then the old node's pods are evicted (PDBs honoured) and it is
    /// terminated, as an instance retirement is handled.
    Replace {
        #[arg(value_enum)]
        what: Replaceable,
        /// The node's name, or the group's id.
        name: String,
        /// Why: it goes in the records.
        #[arg(long)]
        reason: String,
        /// For a group: how many of its nodes may be leaving at once (1 when not given).
        #[arg(long)]
        at_once: Option<u32>,
        /// For a group: stop replacing it (drains under way go on).
        #[arg(long)]
        cancel: bool,
        /// Only say what would be done (recorded as a dry run for a node; nothing kept for
        /// a group).
        #[arg(long, conflicts_with = "cancel")]
        dry_run: bool,
    },
    /// Why a pod is pending, a node not removed, a workload not on Fargate.
    Explain {
        #[arg(value_enum)]
        what: Subject,
        /// `NAMESPACE/NAME` for pods and workloads, the node's name for nodes.
        name: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Replaceable {
    Node,
    Group,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Subject {
    Pod,
    Node,
    Workload,
}

#[derive(Debug, Args)]
struct DecisionsArgs {
    #[arg(long)]
    plugin: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    node: Option<String>,
    /// `NAMESPACE/NAME` or `KIND/NAMESPACE/NAME`.
    #[arg(long)]
    workload: Option<String>,
    /// accepted, changed, refused, done, started, dry-run, shadow, unchanged, not-applied, failed.
    #[arg(long)]
    outcome: Option<String>,
    /// Only records from this long before the daemon's last tick (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<std::time::Duration>,
    /// Include tick records.
    #[arg(long)]
    ticks: bool,
    /// At most this many records (newest).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Keep printing new records as they are made.
    #[arg(short, long)]
    follow: bool,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Add a plugin at the end of the chain (or replace the one of that name).
    Load {
        name: String,
        /// The component, uploaded from here.
        #[arg(long, conflicts_with = "path", required_unless_present = "path")]
        wasm: Option<std::path::PathBuf>,
        /// A path on the daemon's side, or `bundled:NAME`.
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        sha256: Option<String>,
        /// Settings as JSON.
        #[arg(long)]
        settings: Option<String>,
        #[arg(long, value_enum, default_value_t = PluginModeArg::Enforce)]
        mode: PluginModeArg,
        #[arg(long)]
        reason: String,
    },
    Unload {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Read a plugin's component again from where it was loaded.
    Reload {
        name: String,
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Enforce a plugin's decisions, or only record them (shadow).
    Mode {
        name: String,
        #[arg(value_enum)]
        mode: PluginModeArg,
        #[arg(long)]
        reason: String,
    },
    /// Ask a component whether it accepts settings.
    Validate {
        /// A loaded plugin's name.
        plugin: String,
        #[arg(long)]
        settings: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PluginModeArg {
    Enforce,
    Shadow,
}

#[derive(Debug, Subcommand)]
enum ModeCommand {
    Set {
        #[arg(value_enum)]
        mode: ModeArg,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Enforce,
    DryRun,
    Paused,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// A built-in scenario.
    #[arg(conflicts_with_all = ["file", "live"], required_unless_present_any = ["file", "live"])]
    scenario: Option<String>,
    /// A scenario file, sent inline.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// The daemon's last snapshot, evaluated once.
    #[arg(long)]
    live: bool,
    /// Policies in order: a bundled name, or NAME=FILE.wasm to upload your own (default: the
    /// daemon's chain).
    #[arg(long = "policy")]
    policies: Vec<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the decisions, not only the summary.
    #[arg(long)]
    decisions: bool,
}

/// The clients of every service, on one connection.
struct Clients {
    channel: tonic::transport::Channel,
    bearer: client::Bearer,
}

macro_rules! client {
    ($self:ident, $module:ident :: $client:ident) => {
        pb::$module::$client::with_interceptor($self.channel.clone(), $self.bearer.clone())
    };
}

pub fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (channel, bearer) = args.connection.channel()?;
        let clients = Clients { channel, bearer };
        dispatch(&clients, args.command, args.output).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn dispatch(c: &Clients, command: CtlCommand, format: Format) -> anyhow::Result<()> {
    match command {
        CtlCommand::Status => {
            let answer = client!(c, status_client::StatusClient).get(pb::GetStatusRequest {}).await.map_err(failed)?;
            show::print(format, &answer.into_inner(), show::status)
        }
        CtlCommand::Groups { group, nodes } => {
            let request = pb::ListNodeGroupsRequest { group: group.unwrap_or_default(), nodes };
            let answer = client!(c, node_groups_client::NodeGroupsClient).list(request).await.map_err(failed)?;
            show::print(format, &answer.into_inner(), show::groups)
        }
        CtlCommand::Decisions(args) => decisions(c, args, format).await,
        CtlCommand::Decision { id } => {
            let answer = client!(c, decisions_client::DecisionsClient)
                .get(pb::GetDecisionRequest { id })
                .await
                .map_err(failed)?;
            show::print(format, &answer.into_inner(), show::decision)
        }
        CtlCommand::Plugins { command } => plugins(c, command, format).await,
        CtlCommand::Mode { command } => {
            let mut mode = client!(c, mode_client::ModeClient);
            let answer = match command {
                None => mode.get(pb::GetModeRequest {}).await,
                Some(ModeCommand::Set { mode: m, reason }) => {
                    let m = match m {
                        ModeArg::Enforce => pb::EngineMode::Enforce,
                        ModeArg::DryRun => pb::EngineMode::DryRun,
                        ModeArg::Paused => pb::EngineMode::Paused,
                    };
                    mode.set(pb::SetModeRequest { mode: m as i32, reason }).await
                }
            };
            show::print(format, &answer.map_err(failed)?.into_inner(), show::mode)
        }
        CtlCommand::Simulate(args) => simulate(c, args, format).await,
        CtlCommand::Replace { what: Replaceable::Group, name: group, reason, at_once, cancel, dry_run } => {
            let mut groups = client!(c, node_groups_client::NodeGroupsClient);
            let answer = match cancel {
                true => groups.cancel_replace(pb::CancelNodeGroupReplacementRequest { group, reason }).await,
                false => {
                    let at_once = at_once.unwrap_or(1);
                    groups.replace(pb::ReplaceNodeGroupRequest { group, at_once, reason, dry_run }).await
                }
            };
            outln!("{}", answer.map_err(failed)?.into_inner().change);
            Ok(())
        }
        CtlCommand::Replace { what: Replaceable::Node, name, reason, dry_run, at_once, cancel } => {
            if cancel || at_once.is_some() {
                anyhow::bail!("--cancel and --at-once are for a group (`ctl replace group NAME`), not a node");
            }
            let request = pb::ReplaceNodeRequest { name: name.clone(), reason, dry_run };
            let answer = client!(c, nodes_client::NodesClient).replace(request).await.map_err(failed)?.into_inner();
            match answer.decision {
                Some(record) => {
                    let page = pb::ListDecisionsResponse { records: vec![record], next_page_token: String::new() };
                    show::print(format, &page, show::record_lines)
                }
                None => {
                    outln!("asked; not decided within the wait: see `ballast ctl decisions --node {name}`");
                    Ok(())
                }
            }
        }
        CtlCommand::Explain { what, name } => {
            let mut explain = client!(c, explain_client::ExplainClient);
            let request = pb::ExplainRequest { name };
            let answer = match what {
                Subject::Pod => explain.pod(request).await,
                Subject::Node => explain.node(request).await,
                Subject::Workload => explain.workload(request).await,
            };
            show::print(format, &answer.map_err(failed)?.into_inner(), show::explanation)
        }
    }
}

async fn decisions(c: &Clients, args: DecisionsArgs, format: Format) -> anyhow::Result<()> {
    let since = match args.since {
        // Relative to the daemon's clock (the simulator's, under `run --simulate`).
        Some(window) => {
            let status = client!(c, status_client::StatusClient).get(pb::GetStatusRequest {}).await.map_err(failed)?;
            let now = status.into_inner().last_tick.map(|t| t.at_unix_millis).unwrap_or(0);
            (now - window.as_millis() as i64).max(1)
        }
        None => 0,
    };
    let filter = pb::DecisionFilter {
        plugin: args.plugin.unwrap_or_default(),
        group: args.group.unwrap_or_default(),
        node: args.node.unwrap_or_default(),
        workload: args.workload.unwrap_or_default(),
        outcome: args.outcome.unwrap_or_default(),
        since_unix_millis: since,
        until_unix_millis: 0,
        ticks: args.ticks,
    };
    let mut client = client!(c, decisions_client::DecisionsClient);
    let request =
        pb::ListDecisionsRequest { filter: Some(filter.clone()), page_size: args.limit, page_token: String::new() };
    let mut page = client.list(request).await.map_err(failed)?.into_inner();
    page.records.reverse();
    let newest = page.records.last().map(|r| r.id);
    show::print(format, &page, show::records)?;
    if !args.follow {
        return Ok(());
    }
    let watch =
        pb::WatchDecisionsRequest { filter: Some(filter), after_id: newest.unwrap_or(0), from_now: newest.is_none() };
    let mut stream = client.watch(watch).await.map_err(failed)?.into_inner();
    while let Some(record) = stream.message().await.map_err(failed)? {
        show::print(
            format,
            &pb::ListDecisionsResponse { records: vec![record], next_page_token: String::new() },
            show::record_lines,
        )?;
    }
    Ok(())
}

fn plugin_mode(mode: PluginModeArg) -> i32 {
    match mode {
        PluginModeArg::Enforce => pb::PluginMode::Enforce as i32,
        PluginModeArg::Shadow => pb::PluginMode::Shadow as i32,
    }
}

async fn plugins(c: &Clients, command: Option<PluginsCommand>, format: Format) -> anyhow::Result<()> {
    let mut client = client!(c, plugins_client::PluginsClient);
    let one = match command {
        None => {
            let answer = client.list(pb::ListPluginsRequest {}).await.map_err(failed)?;
            return show::print(format, &answer.into_inner(), show::plugins);
        }
        Some(PluginsCommand::Load { name, wasm, path, sha256, settings, mode, reason }) => {
            let component = match (wasm, path) {
                (Some(file), _) => pb::load_plugin_request::Component::Wasm(
                    std::fs::read(&file).with_context(|| format!("--wasm {}", file.display()))?,
                ),
                (None, Some(path)) => pb::load_plugin_request::Component::Path(path),
                (None, None) => anyhow::bail!("give --wasm FILE or --path PATH"),
            };
            let request = pb::LoadPluginRequest {
                name,
                component: Some(component),
                expected_sha256: sha256.unwrap_or_default(),
                settings_json: settings.unwrap_or_default(),
                mode: plugin_mode(mode),
                reason,
            };
            client.load(request).await
        }
        Some(PluginsCommand::Unload { name, reason }) => {
            client.unload(pb::UnloadPluginRequest { name: name.clone(), reason }).await.map_err(failed)?;
            outln!("unloaded {name}");
            return Ok(());
        }
        Some(PluginsCommand::Reload { name, sha256, reason }) => {
            client.reload(pb::ReloadPluginRequest { name, expected_sha256: sha256.unwrap_or_default(), reason }).await
        }
        Some(PluginsCommand::Mode { name, mode, reason }) => {
            client.set_mode(pb::SetPluginModeRequest { name, mode: plugin_mode(mode), reason }).await
        }
        Some(PluginsCommand::Validate { plugin, settings }) => {
            let request = pb::ValidateSettingsRequest {
                component: Some(pb::validate_settings_request::Component::Plugin(plugin)),
                settings_json: settings,
            };
            let answer = client.validate_settings(request).await.map_err(failed)?.into_inner();
            show::print(format, &answer, show::validation)?;
            return match answer.valid {
                true => Ok(()),
                false => Err(anyhow::anyhow!("settings refused: {}", answer.error)),
            };
        }
    };
    let status = one.map_err(failed)?.into_inner();
    show::print(format, &pb::ListPluginsResponse { plugins: vec![status] }, show::plugins)
}

async fn simulate(c: &Clients, args: SimulateArgs, format: Format) -> anyhow::Result<()> {
    use pb::simulate_request::Input;
    let input = match (args.scenario, args.file, args.live) {
        (Some(name), _, _) => Input::Scenario(name),
        (None, Some(file), _) => {
            Input::ScenarioYaml(std::fs::read_to_string(&file).with_context(|| format!("--file {}", file.display()))?)
        }
        (None, None, _) => Input::LiveSnapshot(true),
    };
    let mut policies = Vec::new();
    for policy in args.policies {
        let (name, wasm) = match policy.split_once('=') {
            Some((name, file)) => {
                (name.to_string(), std::fs::read(file).with_context(|| format!("--policy {policy}: {file}"))?)
            }
            None => (policy, Vec::new()),
        };
        policies.push(pb::SimulatedPolicy { name, wasm, settings_json: String::new() });
    }
    let request = pb::SimulateRequest { input: Some(input), policies, seed: args.seed, decisions: args.decisions };
    let answer = client!(c, simulate_client::SimulateClient).run(request).await.map_err(failed)?;
    show::print(format, &answer.into_inner(), show::simulation)
}

//! `ballast plugin ...`: what a policy author runs before anything touches a cluster.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ballast_sdk::SnapshotData;
use clap::{Args, Subcommand};

use super::{Output, fixture, render};
use crate::bundled;
use crate::input_file;
use crate::policy::{
    CallReport, ComponentInfo, EvaluationInput, HOST_INTERFACE_VERSION, HostConfig, LoadError, Plugin, PluginLimits,
    PluginSpec, PolicyHost, SharedSnapshot,
};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a component's interface version, imports, exports, size and digest.
    Inspect {
        /// A .wasm component, or the name of a bundled policy.
        wasm: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Evaluate a policy on a snapshot and show its decisions with reasons, time and fuel.
    Run {
        /// A .wasm component, or the name of a bundled policy (binpack, fargate-placement).
        wasm: String,
        /// Snapshot file (YAML or JSON). Without it, a bundled example: two empty groups and
        /// twelve pending pods.
        #[arg(long)]
        snapshot: Option<PathBuf>,
        #[command(flatten)]
        plugin: PluginArgs,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run fixture cases (snapshot, settings, expected decisions) and report pass or fail.
    Test {
        wasm: String,
        /// A folder of case files (*.yaml, *.yml, *.json), or one case file.
        cases: PathBuf,
        #[command(flatten)]
        plugin: PluginArgs,
    },
    /// Measure instantiate-plus-evaluate time on a snapshot.
    Bench {
        wasm: String,
        #[arg(long)]
        snapshot: Option<PathBuf>,
        #[command(flatten)]
        plugin: PluginArgs,
        /// How long to measure for, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Settings and limits for the plugin under test.
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// Plugin settings as JSON, or @FILE to read them from a file.
    #[arg(long)]
    settings: Option<String>,
    /// Per-call deadline in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory cap in MiB.
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Fuel per call.
    #[arg(long)]
    fuel: Option<u64>,
}

pub fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Inspect { wasm, output } => inspect(&wasm, output),
        PluginCommand::Run { wasm, snapshot, plugin, output } => run_once(&wasm, snapshot.as_deref(), &plugin, output),
        PluginCommand::Test { wasm, cases, plugin } => test(&wasm, &cases, &plugin),
        PluginCommand::Bench { wasm, snapshot, plugin, seconds, output } => {
            bench(&wasm, snapshot.as_deref(), &plugin, seconds, output)
        }
    }
}

/// Reads a component from a path, or takes a bundled one by name.
pub(super) fn read_component(arg: &str) -> anyhow::Result<(String, Arc<[u8]>)> {
    let (name, bytes, _) = crate::reload::read(arg).map_err(anyhow::Error::msg)?;
    Ok((name, bytes))
}

fn load(wasm: &str, args: &PluginArgs, deterministic: bool) -> anyhow::Result<Plugin> {
    let host = PolicyHost::new(HostConfig { deterministic, ..HostConfig::default() })?;
    Ok(host.load(spec(wasm, args)?)?)
}

/// The plugin to load, from the command line's component and flags.
fn spec(wasm: &str, args: &PluginArgs) -> anyhow::Result<PluginSpec> {
    let (name, bytes) = read_component(wasm)?;
    let settings = match &args.settings {
        None => serde_json::Value::Null,
        Some(text) => parse_settings("--settings", text)?,
    };
    let defaults = PluginLimits::default();
    let limits = PluginLimits {
        deadline_ms: args.deadline_ms.unwrap_or(defaults.deadline_ms),
        memory_mib: args.memory_mib.unwrap_or(defaults.memory_mib),
        fuel: args.fuel.unwrap_or(defaults.fuel),
        ..defaults
    };
    Ok(PluginSpec { name, bytes, settings, limits })
}

/// Settings given inline as JSON, or as `@FILE`.
pub(super) fn parse_settings(flag: &str, text: &str) -> anyhow::Result<serde_json::Value> {
    let (origin, text) = match text.strip_prefix('@') {
        Some(file) => {
            (file.to_string(), std::fs::read_to_string(file).with_context(|| format!("{flag}: cannot read {file}"))?)
        }
        None => (flag.to_string(), text.to_string()),
    };
    serde_json::from_str(&text).with_context(|| format!("{origin}: not valid JSON"))
}

fn read_snapshot(path: Option<&Path>) -> anyhow::Result<SnapshotData> {
    let (origin, snapshot): (&Path, SnapshotData) = match path {
        Some(path) => (path, input_file::load(path)?),
        None => {
            let origin = Path::new("<bundled example snapshot>");
            (origin, input_file::parse(origin, bundled::EXAMPLE_SNAPSHOT)?)
        }
    };
    match snapshot.fargate_pricing.check() {
        Ok(()) => Ok(snapshot),
        Err(e) => anyhow::bail!("{}: {e}", origin.display()),
    }
}

fn inspect(wasm: &str, output: Output) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_component(wasm)?;
    let info = ComponentInfo::read(&bytes).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    // The same checks as loading, short of calling it: version, compilation, imports and
    // the signatures of its exports.
    let host = PolicyHost::new(HostConfig::default())?;
    let verdict = match host.check(&name, &bytes) {
        Ok(_) => format!("loadable by this host (serves ballast:policy@{HOST_INTERFACE_VERSION})"),
        Err(e) => e.to_string(),
    };
    if output == Output::Json {
        let mut value = serde_json::to_value(&info)?;
        value["name"] = name.into();
        value["world"] = "ballast:policy/plugin".into();
        value["host-interface-version"] = HOST_INTERFACE_VERSION.into();
        value["compatibility"] = verdict.into();
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = render::table(&["", ""]);
    t.add_row(vec!["plugin".to_string(), name]);
    t.add_row(vec![
        "world".to_string(),
        format!("ballast:policy/plugin@{}", info.policy_version.as_deref().unwrap_or("(none)")),
    ]);
    t.add_row(vec!["compatibility".to_string(), verdict]);
    t.add_row(vec!["size".to_string(), format!("{} bytes", info.size)]);
    t.add_row(vec!["sha256".to_string(), info.digest.clone()]);
    t.add_row(vec!["exports".to_string(), info.exports.join("\n")]);
    t.add_row(vec!["imports".to_string(), info.imports.join("\n")]);
    outln!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn run_once(wasm: &str, snapshot: Option<&Path>, args: &PluginArgs, output: Output) -> anyhow::Result<ExitCode> {
    let snapshot = read_snapshot(snapshot)?;
    let started = Instant::now();
    let plugin = load(wasm, args, true)?;
    let load_time = started.elapsed();
    let shared = Arc::new(SharedSnapshot::new(Arc::new(snapshot)));
    let report = plugin.evaluate(EvaluationInput::new(shared, Arc::from(plugin.settings())));
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        print_report(&plugin, &report, load_time);
    }
    Ok(if report.result.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn report_json(report: &CallReport) -> serde_json::Value {
    let (decisions, error) = match &report.result {
        Ok(evaluated) => (serde_json::to_value(&evaluated.decisions).unwrap_or_default(), serde_json::Value::Null),
        Err(e) => (serde_json::Value::Array(vec![]), serde_json::json!({"kind": e.kind(), "message": e.to_string()})),
    };
    serde_json::json!({
        "plugin": &*report.plugin,
        "decisions": decisions,
        "error": error,
        "elapsed-us": report.elapsed.as_micros() as u64,
        "fuel-used": report.fuel_used,
        "logs": report.logs,
        "dropped-logs": report.dropped_logs,
    })
}

fn print_report(plugin: &Plugin, report: &CallReport, load_time: Duration) {
    match &report.result {
        Ok(evaluated) if evaluated.decisions.is_empty() => outln!("{}: no decisions", plugin.name()),
        Ok(evaluated) => outln!("{}", render::decisions(&evaluated.decisions)),
        Err(e) => outln!("{}: {} error: {e}", plugin.name(), e.kind()),
    }
    for line in &report.logs {
        outln!("  log [{}] {}", line.level, line.message);
    }
    if report.dropped_logs > 0 {
        outln!("  ({} more log lines dropped)", report.dropped_logs);
    }
    outln!(
        "evaluated in {} (fresh instance + call), fuel used {}; loaded in {} ({:?})",
        render::duration(report.elapsed),
        report.fuel_used.map_or("n/a".to_string(), |f| f.to_string()),
        render::duration(load_time),
        plugin.cache_outcome(),
    );
}

fn test(wasm: &str, cases: &Path, args: &PluginArgs) -> anyhow::Result<ExitCode> {
    let host = PolicyHost::new(HostConfig { deterministic: true, ..HostConfig::default() })?;
    let base = spec(wasm, args)?;
    // Compile once up front so a broken component fails here, not once per case.
    // Default settings may legitimately be refused; cases bring their own.
    if let Err(e) = host.load(PluginSpec { settings: serde_json::Value::Null, ..base.clone() })
        && !matches!(e, LoadError::SettingsRejected { .. } | LoadError::SettingsCheck { .. })
    {
        return Err(e.into());
    }
    let load = |settings: Option<&serde_json::Value>| -> anyhow::Result<Plugin> {
        let settings = settings.cloned().unwrap_or_else(|| base.settings.clone());
        Ok(host.load(PluginSpec { settings, ..base.clone() })?)
    };
    let cases = fixture::discover(cases)?;
    if cases.is_empty() {
        bail!("no case files (*.yaml, *.yml, *.json) found");
    }
    let (mut passed, mut failed) = (0, 0);
    for path in &cases {
        let outcome = fixture::run_case(path, &load);
        match outcome {
            Ok(()) => {
                passed += 1;
                outln!("ok      {}", path.display());
            }
            Err(problem) => {
                failed += 1;
                outln!("FAILED  {}\n        {}", path.display(), problem.replace('\n', "\n        "));
            }
        }
    }
    outln!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn bench(
    wasm: &str,
    snapshot: Option<&Path>,
    args: &PluginArgs,
    seconds: f64,
    output: Output,
) -> anyhow::Result<ExitCode> {
    if !(seconds > 0.0 && seconds <= 3600.0) {
        bail!("--seconds must be between 0 and 3600, got {seconds}");
    }
    let snapshot = Arc::new(read_snapshot(snapshot)?);
    let started = Instant::now();
    let plugin = load(wasm, args, false)?;
    let load_time = started.elapsed();
    let budget = Duration::from_secs_f64(seconds);
    let mut samples = Vec::new();
    let began = Instant::now();
    while began.elapsed() < budget || samples.len() < 10 {
        // A new shared snapshot each time: every call pays the conversion, as a tick would.
        let shared = Arc::new(SharedSnapshot::new(snapshot.clone()));
        let report = plugin.evaluate(EvaluationInput::new(shared, Arc::from(plugin.settings())));
        if let Err(e) = &report.result {
            bail!("{}: {} error: {e}", plugin.name(), e.kind());
        }
        samples.push(report.elapsed);
        if samples.len() >= 1_000_000 {
            break;
        }
    }
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    if output == Output::Json {
        outln!(
            "{}",
            serde_json::json!({
                "plugin": plugin.name(), "calls": samples.len(), "load-us": load_time.as_micros() as u64,
                "min-us": pick(0.0).as_micros() as u64, "median-us": pick(0.5).as_micros() as u64,
                "p99-us": pick(0.99).as_micros() as u64, "mean-us": mean.as_micros() as u64,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = render::table(&["plugin", "calls", "min", "median", "p99", "mean", "load"]);
    t.add_row(vec![
        plugin.name().to_string(),
        samples.len().to_string(),
        render::duration(pick(0.0)),
        render::duration(pick(0.5)),
        render::duration(pick(0.99)),
        render::duration(mean),
        format!("{} ({:?})", render::duration(load_time), plugin.cache_outcome()),
    ]);
    outln!("{t}");
    outln!("each call: fresh instance from the pool + evaluate + output validation");
    Ok(ExitCode::SUCCESS)
}

//! `ballast simulate`: run policies against a scenario on the simulator and show what they
//! cost and how long pods waited.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::plugin::{parse_settings, read_component};
use super::{Output, chart, render, sweep};
use crate::bundled::DEFAULT_CHAIN;
use crate::engine::Mode;
use crate::policy::{HostConfig, PluginLimits, PluginSpec, PolicyHost};
use crate::sim::scenario::{self, Scenario};
use crate::sim::{SimReport, Simulation};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A scenario file, or a built-in one: steady-web, morning-ramp, spiky-batch,
    /// mixed-fargate (the default), nightly-batch, flash-sale, zone-outage, spot-storm.
    #[arg(long)]
    scenario: Option<String>,
    /// A policy (.wasm file or bundled name), in chain order; repeat for several. Default:
    /// binpack, headroom, consolidation, then fargate-placement (the `default` set).
    #[arg(long = "policy", value_name = "WASM")]
    policies: Vec<String>,
    /// Settings for one policy of the chain: NAME=JSON or NAME=@FILE.
    #[arg(long = "settings", value_name = "NAME=JSON")]
    settings: Vec<String>,
    /// Seed for the scenario's randomness (boot times, spike times). Default: the scenario's.
    #[arg(long)]
    seed: Option<u64>,
    /// Run several policy sets on the same scenario and seed, one row each. A set is a
    /// built-in name (default, ca-like, karpenter-like, escalator-like, static-min,
    /// static-peak) or
    /// policies joined by `+` (e.g. `binpack+./my.wasm`).
    #[arg(long = "compare", value_name = "SET", num_args = 1.., conflicts_with = "policies")]
    compare: Vec<String>,
    /// Run on each of these seeds (`1-5`, `1,4,9`) and show each set's mean and range, and on
    /// how many seeds it did no worse than the first set. The sets are `--compare`'s, else
    /// the `--policy` chain, else the default set.
    #[arg(long, value_name = "SEEDS", conflicts_with_all = ["seed", "journal", "chart", "report"])]
    seeds: Option<String>,
    /// Write the full report (summary and time series) as JSON.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Draw demand, capacity and pending pods over time (.svg or .png).
    #[arg(long, value_name = "FILE.svg|png")]
    chart: Option<PathBuf>,
    /// Append every decision record to this JSON-lines journal.
    #[arg(long, value_name = "FILE.jsonl")]
    journal: Option<PathBuf>,
    /// Evaluate and record, but act on nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

/// The built-in policy sets `--compare` knows.
const SETS: &[(&str, &str)] = &[
    ("default", "binpack, headroom, consolidation, fargate-placement: the bundled default policies"),
    (
        "ca-like",
        "binpack alone: Cluster Autoscaler-like bin-packing, no Fargate (and headroom for a scenario's CapacityBuffers)",
    ),
    (
        "karpenter-like",
        "binpack up, consolidation down (WhenEmptyOrUnderutilized, consolidateAfter 0 s, 10% budget; and headroom for a scenario's CapacityBuffers)",
    ),
    ("escalator-like", "thresholds: Escalator-like utilisation thresholds"),
    ("static-min", "static-size at each group's min-size"),
    ("static-peak", "static-size at the largest size the default set reached, all the time"),
];

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let scenario = match &args.scenario {
        Some(arg) => scenario::resolve(arg)?,
        None => Scenario::parse(std::path::Path::new("<built-in mixed-fargate>"), scenario::DEFAULT_SCENARIO)?,
    };
    let host = PolicyHost::new(HostConfig { deterministic: true, ..HostConfig::default() })?;
    let mode = if args.dry_run { Mode::DryRun } else { Mode::Enforce };
    if let Some(seeds) = &args.seeds {
        return run_sweep(&args, &scenario, &sweep::parse_seeds(seeds)?, &host, mode);
    }
    let seed = args.seed.unwrap_or(scenario.seed);

    let runs = if args.compare.is_empty() {
        let (names, policies) = if args.policies.is_empty() {
            (chain_names(DEFAULT_CHAIN), set_specs("default", &args.settings)?)
        } else {
            (args.policies.clone(), specs(&args.policies, &args.settings)?)
        };
        let sim = Simulation { scenario: scenario.clone(), seed, policies, mode, journal: args.journal.clone() };
        vec![("policies".to_string(), simulate(&sim, &host, &names.join(" + "), args.output)?)]
    } else {
        if args.journal.is_some() && args.compare.len() > 1 {
            bail!("--journal records one run; use it without --compare, or with a single set");
        }
        let sets: Vec<PolicySet> = args.compare.iter().map(|set| PolicySet::Named(set)).collect();
        run_sets(&args, &sets, &scenario, seed, &host, mode, "")?
    };

    if let Some(path) = &args.report {
        write_report(path, &runs)?;
    }
    if let Some(path) = &args.chart {
        let lines: Vec<chart::Run> = runs.iter().map(|(set, r)| chart::Run { label: set, series: &r.series }).collect();
        let title = format!("{}: {}, seed {seed}", scenario.name, scenario.description);
        chart::draw(path, &title, &lines)?;
    }
    match args.output {
        Output::Json => {
            let reports: Vec<&SimReport> = runs.iter().map(|(_, r)| r).collect();
            outln!("{}", serde_json::to_string_pretty(&reports)?);
        }
        Output::Table => print_tables(&args, &scenario, seed, mode, &runs),
    }
    Ok(ExitCode::SUCCESS)
}

/// The report file: one run's report, or each set's with its name.
fn write_report(path: &std::path::Path, runs: &[(String, SimReport)]) -> anyhow::Result<()> {
    let value = if let [(_, report)] = runs {
        serde_json::to_value(report)?
    } else {
        let mut reports = Vec::with_capacity(runs.len());
        for (set, report) in runs {
            let mut value = serde_json::to_value(report)?;
            value["set"] = set.clone().into();
            reports.push(value);
        }
        serde_json::Value::Array(reports)
    };
    std::fs::write(path, serde_json::to_string_pretty(&value)? + "\n")
        .with_context(|| format!("cannot write the report to {}", path.display()))
}

/// The summary table of one run, or the comparison of several, under the scenario's line.
fn print_tables(args: &SimulateArgs, scenario: &Scenario, seed: u64, mode: Mode, runs: &[(String, SimReport)]) {
    outln!(
        "{} ({}), {} simulated, seed {seed}{}",
        scenario.name,
        scenario.description,
        crate::duration::display(scenario.duration),
        if mode == Mode::DryRun { ", dry-run: nothing acted on" } else { "" }
    );
    if let [(_, report)] = runs {
        outln!("policies: {}", report.policies.join(" -> "));
        outln!("{}", summary_table(report));
    } else {
        outln!("{}", compare_table(runs));
    }
    if let Some(path) = &args.chart {
        outln!("chart: {}", path.display());
    }
    if let Some(path) = &args.report {
        outln!("report: {}", path.display());
    }
}

/// A set of policies to run: a `--compare` name (built-in, or policies joined by `+`), or
/// the `--policy` chain as given.
enum PolicySet<'a> {
    Named(&'a str),
    Chain(&'a [String]),
}

impl PolicySet<'_> {
    fn label(&self) -> String {
        match self {
            PolicySet::Named(name) => name.to_string(),
            PolicySet::Chain(names) => names.join(" + "),
        }
    }
}

/// Every set on one seed, in order; `tag` marks the progress bars.
fn run_sets(
    args: &SimulateArgs,
    sets: &[PolicySet<'_>],
    scenario: &Scenario,
    seed: u64,
    host: &PolicyHost,
    mode: Mode,
    tag: &str,
) -> anyhow::Result<Vec<(String, SimReport)>> {
    let mut runs: Vec<(String, SimReport)> = Vec::new();
    for set in sets {
        let name = set.label();
        let policies = match *set {
            PolicySet::Chain(names) => specs(names, &args.settings)?,
            PolicySet::Named("static-peak") => {
                let reference = match runs.iter().find(|(name, _)| name == "default") {
                    Some((_, report)) => report.clone(),
                    None => {
                        let policies = crate::bundled::default_specs();
                        let sim = Simulation { scenario: scenario.clone(), seed, policies, mode, journal: None };
                        simulate(&sim, host, "static-peak: finding the peak", args.output)?
                    }
                };
                let settings = serde_json::json!({ "sizes": reference.peak_group_sizes, "otherwise": "min" });
                vec![bundled_spec("static-size", settings)?]
            }
            PolicySet::Named(other) => keeping_buffers(set_specs(other, &args.settings)?, other, scenario)?,
        };
        let sim = Simulation { scenario: scenario.clone(), seed, policies, mode, journal: args.journal.clone() };
        let report = simulate(&sim, host, &format!("{name}{tag}"), args.output)?;
        runs.push((name, report));
    }
    Ok(runs)
}

/// `--seeds`: every set on every seed, then one row per set across them.
fn run_sweep(
    args: &SimulateArgs,
    scenario: &Scenario,
    seeds: &[u64],
    host: &PolicyHost,
    mode: Mode,
) -> anyhow::Result<ExitCode> {
    let chosen: Vec<PolicySet> = match (args.compare.is_empty(), args.policies.is_empty()) {
        (false, _) => args.compare.iter().map(|set| PolicySet::Named(set)).collect(),
        (true, false) => vec![PolicySet::Chain(&args.policies)],
        (true, true) => vec![PolicySet::Named("default")],
    };
    let mut sets: Vec<sweep::SetRuns> =
        chosen.iter().map(|set| sweep::SetRuns { set: set.label(), runs: Vec::new() }).collect();
    for &seed in seeds {
        let runs = run_sets(args, &chosen, scenario, seed, host, mode, &format!(" s{seed}"))?;
        for (set, (_, report)) in sets.iter_mut().zip(runs) {
            set.runs.push((seed, report));
        }
    }
    match args.output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&sweep::json(&sets))?),
        Output::Table => {
            let listed: Vec<String> = seeds.iter().map(u64::to_string).collect();
            outln!(
                "{} ({}), {} simulated, seeds {}{}",
                scenario.name,
                scenario.description,
                crate::duration::display(scenario.duration),
                listed.join(", "),
                if mode == Mode::DryRun { ", dry-run: nothing acted on" } else { "" }
            );
            outln!("{}", sweep::table(&sets));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn simulate(sim: &Simulation, host: &PolicyHost, label: &str, output: Output) -> anyhow::Result<SimReport> {
    let total_minutes = sim.scenario.duration.as_secs() / 60;
    let bar = if output == Output::Table { ProgressBar::new(total_minutes) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:40}] {msg} simulated ({elapsed} real)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.chars().take(14).collect::<String>());
    let report = sim.run(host, &mut |done, total| {
        bar.set_position(done / 60_000);
        bar.set_message(format!(
            "{} of {}",
            crate::sim::run::display_duration(done),
            crate::sim::run::display_duration(total)
        ));
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// Plugin specs for names or paths, with `NAME=JSON` settings applied.
fn specs(names: &[String], settings: &[String]) -> anyhow::Result<Vec<PluginSpec>> {
    let mut specs = Vec::new();
    for name in names {
        let (plugin, bytes) = read_component(name)?;
        specs.push(PluginSpec {
            name: plugin,
            bytes,
            settings: serde_json::Value::Null,
            limits: PluginLimits::default(),
        });
    }
    for entry in settings {
        let Some((name, value)) = entry.split_once('=') else {
            bail!("--settings {entry}: write it as NAME=JSON or NAME=@FILE");
        };
        let Some(spec) = specs.iter_mut().find(|s| s.name == name) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            bail!("--settings {entry}: no policy named `{name}` in the chain ({})", known.join(", "));
        };
        spec.settings = parse_settings(&format!("--settings {name}"), value)?;
    }
    Ok(specs)
}

fn bundled_spec(name: &str, settings: serde_json::Value) -> anyhow::Result<PluginSpec> {
    crate::bundled::spec(name, settings).with_context(|| format!("`{name}` is not bundled in this build"))
}

fn chain_names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Specs for bundled policies with the set's own settings, which `--settings` replaces.
fn bundled_set(
    names: &[&str],
    own: impl Fn(&str) -> serde_json::Value,
    settings: &[String],
) -> anyhow::Result<Vec<PluginSpec>> {
    let mut specs = specs(&chain_names(names), settings)?;
    for spec in &mut specs {
        if spec.settings.is_null() {
            spec.settings = own(&spec.name);
        }
    }
    Ok(specs)
}

fn set_specs(set: &str, settings: &[String]) -> anyhow::Result<Vec<PluginSpec>> {
    Ok(match set {
        "default" => bundled_set(DEFAULT_CHAIN, crate::bundled::default_settings, settings)?,
        "ca-like" => specs(&["binpack".into()], settings)?,
        "karpenter-like" => bundled_set(
            &["binpack", "consolidation"],
            |name| match name {
                "binpack" => serde_json::json!({ "scale-down": false, "expander": "price" }),
                // Karpenter's default budget (10% of nodes) counts empty nodes too; an
                // offering it could not launch stays out of its choices for 3 minutes.
                "consolidation" => serde_json::json!({ "count-empty-nodes": true, "failed-group-wait-seconds": 180 }),
                _ => serde_json::Value::Null,
            },
            settings,
        )?,
        "escalator-like" => specs(&["thresholds".into()], settings)?,
        "static-min" => vec![bundled_spec("static-size", serde_json::json!({ "otherwise": "min" }))?],
        custom => {
            let names: Vec<String> = custom.split('+').map(str::to_string).collect();
            specs(&names, settings).with_context(|| {
                let known: Vec<String> = SETS.iter().map(|(n, d)| format!("{n} ({d})")).collect();
                format!("--compare {custom}: not a built-in set ({})", known.join("; "))
            })?
        }
    })
}

/// The peers keep CapacityBuffers too: on a scenario with any, `ca-like` and `karpenter-like`
/// keep them with `headroom` (buffers alone, at its default settings) after `binpack`, so
/// that a comparison prices the same room in every set.
fn keeping_buffers(mut specs: Vec<PluginSpec>, set: &str, scenario: &Scenario) -> anyhow::Result<Vec<PluginSpec>> {
    let buffered = scenario.workloads.iter().any(|w| w.capacity_buffer.is_some());
    if buffered && matches!(set, "ca-like" | "karpenter-like") {
        specs.insert(1.min(specs.len()), bundled_spec("headroom", serde_json::Value::Null)?);
    }
    Ok(specs)
}

fn money(x: f64) -> String {
    format!("${x:.2}")
}

fn ratio(x: f64) -> String {
    format!("{x:.2}x")
}

fn summary_table(report: &SimReport) -> comfy_table::Table {
    let s = &report.summary;
    let mut t = render::table(&["measure", "value"]);
    let rows: Vec<(&str, String)> = vec![
        ("total cost", money(s.total_cost)),
        ("cost per hour", money(s.cost_per_hour)),
        ("lower bound (no policy can cost less)", money(s.lower_bound_cost)),
        ("cost / lower bound", ratio(s.cost_to_bound)),
        ("pending pod-minutes", format!("{:.1}", s.pending_pod_minutes)),
        ("worst pending time", format!("{:.0} s", s.worst_pending_seconds)),
        ("scale-ups (ticks that grew a group)", s.scale_ups.to_string()),
        ("scale-downs (ticks that shrank a group)", s.scale_downs.to_string()),
        ("nodes removed", s.nodes_removed.to_string()),
        ("pods evicted (by drains)", s.pods_evicted.to_string()),
        (
            "spot interruptions (reclaimed before drained)",
            format!("{} ({})", s.spot_interruptions, s.reclaimed_undrained),
        ),
        ("pods started on Fargate", s.pods_on_fargate.to_string()),
        ("pods started on EC2", s.pods_on_ec2.to_string()),
        ("mean utilisation (requests / allocatable)", format!("{:.1}%", s.mean_utilisation * 100.0)),
        ("peak EC2 nodes", s.peak_nodes.to_string()),
        (
            "decisions (accepted / changed / refused)",
            format!(
                "{} ({} / {} / {})",
                s.decisions.proposed, s.decisions.accepted, s.decisions.changed, s.decisions.refused
            ),
        ),
        ("plugin failures", s.decisions.plugin_errors.to_string()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    t
}

fn compare_table(runs: &[(String, SimReport)]) -> comfy_table::Table {
    let mut t = render::table(&[
        "set",
        "total cost",
        "x bound",
        "cost/h",
        "pending pod-min",
        "worst pending",
        "scale-ups",
        "scale-downs",
        "nodes removed",
        "pods evicted",
        "pods Fargate",
        "pods EC2",
        "mean util",
    ]);
    for (set, r) in runs {
        let s = &r.summary;
        t.add_row(vec![
            set.clone(),
            money(s.total_cost),
            ratio(s.cost_to_bound),
            money(s.cost_per_hour),
            format!("{:.1}", s.pending_pod_minutes),
            format!("{:.0} s", s.worst_pending_seconds),
            s.scale_ups.to_string(),
            s.scale_downs.to_string(),
            s.nodes_removed.to_string(),
            s.pods_evicted.to_string(),
            s.pods_on_fargate.to_string(),
            s.pods_on_ec2.to_string(),
            format!("{:.1}%", s.mean_utilisation * 100.0),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(set: &str, buffer: &str) -> Vec<String> {
        let text = format!(
            "name: t\nduration: 1h\nnode-groups:\n  - {{id: general, instance-types: [m5.large], min-size: 1, max-size: 5}}\nworkloads:\n  - {{name: web, requests: {{cpu: 500m}}, replicas: {{constant: 3}}{buffer}}}\n"
        );
        let scenario = Scenario::parse(std::path::Path::new("t.yaml"), &text).expect("a scenario");
        let specs = keeping_buffers(set_specs(set, &[]).expect("a set"), set, &scenario).expect("bundled");
        specs.into_iter().map(|s| s.name).collect()
    }

    #[test]
    fn the_peer_baselines_keep_a_scenarios_capacity_buffers_as_the_peers_do() {
        let buffered = ", capacity-buffer: {replicas: 2}";
        assert_eq!(chain("ca-like", ""), ["binpack"]);
        assert_eq!(chain("ca-like", buffered), ["binpack", "headroom"]);
        assert_eq!(chain("karpenter-like", buffered), ["binpack", "headroom", "consolidation"]);
        assert_eq!(chain("escalator-like", buffered), ["thresholds"], "Escalator has no buffers");
    }
}

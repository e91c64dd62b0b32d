//! The simulation driver: the world steps a second at a time, the engine ticks when its
//! schedule says so (periodically, or when a batch of new pending pods closes), and the meter
//! becomes a report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::adapters::SimHandle;
use super::meter::Sample;
use super::scenario::Scenario;
use super::world::World;
use crate::engine::journal::Journal;
use crate::engine::record::Recorder;
use crate::engine::{EngineConfig, Mode, TickOutcome};
use crate::policy::Engine;
use crate::policy::{LoadError, PluginSpec, PolicyChain, PolicyHost};

/// How finely the world moves.
const STEP_MS: u64 = 1_000;

/// One simulation to run.
pub struct Simulation {
    pub scenario: Scenario,
    pub seed: u64,
    pub policies: Vec<PluginSpec>,
    pub mode: Mode,
    pub journal: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot open the journal {path}: {source}")]
    Journal { path: PathBuf, source: std::io::Error },
    #[error("invalid engine settings in the scenario: {0}")]
    Config(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("stopped at {0} of simulated time")]
    Stopped(String),
}

/// What a run produced. Contains nothing from the wall clock, so the same scenario, seed and
/// policies give the same report byte for byte.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SimReport {
    pub scenario: String,
    pub seed: u64,
    pub policies: Vec<String>,
    pub mode: Mode,
    pub summary: Summary,
    /// The largest desired size each node group reached.
    pub peak_group_sizes: BTreeMap<String, u32>,
    pub series: Vec<Sample>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    pub hours: f64,
    pub total_cost: f64,
    pub cost_per_hour: f64,
    /// What no policy can beat (see [`super::bound`]): perfect foresight, no boot delay,
    /// fractional packing at the cheapest admitting capacity.
    pub lower_bound_cost: f64,
    /// `total-cost` over `lower-bound-cost` (1 is unbeatable; 0 when the bound is 0).
    pub cost_to_bound: f64,
    pub pending_pod_minutes: f64,
    pub worst_pending_seconds: f64,
    pub scale_ups: u64,
    pub scale_downs: u64,
    pub nodes_removed: u64,
    /// Pods evicted by drains: the disruption behind `nodes-removed`, as the workloads feel it.
    #[serde(default)]
    pub pods_evicted: u64,
    /// Spot interruption warnings, and interrupted nodes reclaimed before a drain removed
    /// them (their pods were killed, not evicted).
    #[serde(default)]
    pub spot_interruptions: u64,
    #[serde(default)]
    pub reclaimed_undrained: u64,
    pub pods_on_fargate: u64,
    pub pods_on_ec2: u64,
    pub mean_utilisation: f64,
    pub peak_nodes: u32,
    pub ticks: u64,
    pub decisions: DecisionCounts,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DecisionCounts {
    pub proposed: u64,
    pub accepted: u64,
    pub changed: u64,
    pub refused: u64,
    pub plugin_errors: u64,
}

impl Simulation {
    /// Engine settings from the scenario, in this simulation's mode.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            mode: self.mode,
            tick_interval: self.scenario.tick,
            batching: self.scenario.batching.clone(),
            guardrails: self.scenario.guardrails.clone(),
            ring_size: 1_000,
        }
    }

    /// Loads the policies and builds an engine over a fresh world.
    pub fn prepare(&self, host: &PolicyHost) -> Result<(SimHandle, Engine<SimHandle, SimHandle>), SimError> {
        self.prepare_recorded(host, None)
    }

    /// As [`Simulation::prepare`], recording into `recorder` when given (a reader keeps a
    /// handle on the records).
    pub fn prepare_recorded(
        &self,
        host: &PolicyHost,
        recorder: Option<Recorder>,
    ) -> Result<(SimHandle, Engine<SimHandle, SimHandle>), SimError> {
        let config = self.engine_config();
        config.validate().map_err(SimError::Config)?;
        let plugins = self.policies.iter().map(|spec| host.load(spec.clone())).collect::<Result<Vec<_>, _>>()?;
        let journal = match &self.journal {
            Some(path) => {
                Some(Journal::open(path, false).map_err(|source| SimError::Journal { path: path.clone(), source })?)
            }
            None => None,
        };
        let world = SimHandle::new(World::new(&self.scenario, self.seed));
        let engine = Engine::new(
            world.clone(),
            world.clone(),
            PolicyChain::new(plugins),
            config.clone(),
            recorder.unwrap_or_else(|| Recorder::new(config.ring_size, journal)),
        )
        .with_fargate(self.scenario.fargate.is_some());
        Ok((world, engine))
    }

    /// Runs to the end of the scenario. `progress` is called with simulated milliseconds
    /// done and in total.
    pub fn run(&self, host: &PolicyHost, progress: &mut dyn FnMut(u64, u64)) -> Result<SimReport, SimError> {
        self.run_until(host, progress, None, &std::sync::atomic::AtomicBool::new(false))
    }

    /// As [`Simulation::run`], recording into `recorder` when given, and ending early with
    /// [`SimError::Stopped`] once `stop` is set (checked every simulated second).
    pub fn run_until(
        &self,
        host: &PolicyHost,
        progress: &mut dyn FnMut(u64, u64),
        recorder: Option<Recorder>,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<SimReport, SimError> {
        let (world, mut engine) = self.prepare_recorded(host, recorder)?;
        let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(SimError::Runtime)?;
        let total = self.scenario.duration.as_millis() as u64;
        let sample_every = (total / 720).max(60_000);
        let mut counts = DecisionCounts::default();
        let mut ticks = 0;
        let mut peaks = Peaks::default();
        let mut next_sample = 0;
        let mut operator = super::operator::Operator::new(&self.scenario);
        loop {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(SimError::Stopped(display_duration(world.lock().elapsed_ms())));
            }
            let (now, elapsed, done) = {
                let mut w = world.lock();
                if w.take_new_pending() > 0 {
                    let now = w.now();
                    drop(w);
                    engine.pods_arrived(now);
                    w = world.lock();
                }
                (w.now(), w.elapsed_ms(), w.now() >= w.end())
            };
            operator.act(&mut engine, elapsed, now);
            if let Some(trigger) = engine.due(now) {
                counts.add(&runtime.block_on(engine.tick(now, trigger)));
                ticks += 1;
            }
            {
                let mut w = world.lock();
                let nodes = peaks.see(&w);
                if elapsed >= next_sample || done {
                    next_sample += sample_every;
                    let sample = sample(&w, elapsed, nodes);
                    w.meter.samples.push(sample);
                }
                if done {
                    break;
                }
                w.step(STEP_MS);
            }
            if elapsed % 60_000 == 0 {
                progress(elapsed, total);
            }
        }
        progress(total, total);
        engine.recorder().close_runs(world.lock().now());
        let report = self.report(&world.lock(), peaks, ticks, counts);
        Ok(report)
    }

    /// The report of a run that has ended in `w`.
    fn report(&self, w: &World, peaks: Peaks, ticks: u64, decisions: DecisionCounts) -> SimReport {
        let m = w.meter();
        let still_waiting = w.pending.iter().filter_map(|&p| w.pods[p].as_ref()).map(|p| w.now() - p.created_at).max();
        let hours = self.scenario.duration.as_millis() as f64 / 3_600_000.0;
        SimReport {
            scenario: self.scenario.name.clone(),
            seed: self.seed,
            policies: self.policies.iter().map(|p| p.name.clone()).collect(),
            mode: self.mode,
            summary: Summary {
                hours,
                total_cost: round(m.cost, 4),
                cost_per_hour: round(m.cost / hours, 4),
                lower_bound_cost: round(m.bound_cost, 4),
                cost_to_bound: if m.bound_cost > 0.0 { round(m.cost / m.bound_cost, 3) } else { 0.0 },
                pending_pod_minutes: round(m.pending_pod_ms as f64 / 60_000.0, 2),
                worst_pending_seconds: m.worst_wait_ms.max(still_waiting.unwrap_or(0)) as f64 / 1000.0,
                scale_ups: m.scale_ups,
                scale_downs: m.scale_downs,
                nodes_removed: m.nodes_removed,
                pods_evicted: m.pods_evicted,
                spot_interruptions: m.interruptions,
                reclaimed_undrained: m.reclaimed_undrained,
                pods_on_fargate: m.pods_started_on_fargate,
                pods_on_ec2: m.pods_started_on_ec2,
                mean_utilisation: round(m.mean_utilisation(), 4),
                peak_nodes: peaks.nodes,
                ticks,
                decisions,
            },
            peak_group_sizes: peaks.group_sizes,
            series: m.samples.clone(),
        }
    }
}

impl DecisionCounts {
    fn add(&mut self, outcome: &TickOutcome) {
        self.proposed += outcome.proposed as u64;
        self.accepted += outcome.accepted as u64;
        self.changed += outcome.changed as u64;
        self.refused += outcome.refused as u64;
        self.plugin_errors += outcome.plugin_errors as u64;
    }
}

/// The most a run reached: EC2 nodes, and each group's desired size.
#[derive(Default)]
struct Peaks {
    nodes: u32,
    group_sizes: BTreeMap<String, u32>,
}

impl Peaks {
    /// Takes in the world as it is now; its EC2 nodes.
    fn see(&mut self, w: &World) -> u32 {
        let nodes = w.nodes.iter().flatten().filter(|n| !n.fargate).count() as u32;
        self.nodes = self.nodes.max(nodes);
        for g in &w.groups {
            let peak = self.group_sizes.entry(g.id.clone()).or_default();
            *peak = (*peak).max(g.desired);
        }
        nodes
    }
}

/// The chart's point at `elapsed` millis into the run.
fn sample(w: &World, elapsed: u64, nodes: u32) -> Sample {
    Sample {
        minute: elapsed as f64 / 60_000.0,
        demand_vcpu: w.meter.demand_cpu as f64 / 1000.0,
        capacity_vcpu: w.meter.capacity_cpu as f64 / 1000.0,
        pending_pods: w.pending.len() as u32,
        nodes,
        cost_per_hour: w.meter.cost_rate,
        lower_bound_per_hour: w.meter.bound_rate.per_hour(),
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The simulated duration as people read it.
pub fn display_duration(ms: u64) -> String {
    crate::duration::display(Duration::from_millis(ms))
}

//! `Simulate`: a scenario, or the live snapshot, through a policy set, with no side effect on
//! the daemon. Runs on a blocking thread, one slot per simulation, under a deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ballast_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::super::ControlState;
use super::super::convert;
use super::super::settings::Access;
use crate::engine::guard::Guard;
use crate::engine::live::Observed;
use crate::engine::record::{ActionResult, Record, Recorder, Stamped};
use crate::policy::{HostConfig, PluginLimits, PluginSpec, PolicyChain, PolicyHost};
use crate::sim::run::{SimError, Simulation};
use crate::sim::scenario::{BUILT_IN, Scenario};

pub struct SimulateService(pub Arc<ControlState>);

/// Decision records a scenario's answer holds at most (the newest).
const MAX_DECISIONS: usize = 10_000;

enum Input {
    Scenario(Box<Scenario>),
    Live(Arc<Observed>),
}

fn input(state: &ControlState, request: &pb::SimulateRequest) -> Result<Input, Status> {
    use pb::simulate_request::Input as I;
    match &request.input {
        Some(I::Scenario(name)) => match BUILT_IN.iter().find(|(n, _)| n == name) {
            Some((n, text)) => Scenario::parse(std::path::Path::new(&format!("<built-in {n}>")), text)
                .map(|s| Input::Scenario(Box::new(s)))
                .map_err(|e| Status::internal(e.to_string())),
            None => {
                let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                Err(Status::invalid_argument(format!(
                    "scenario: '{name}' is not a built-in scenario ({}); send scenario_yaml for your own",
                    known.join(", ")
                )))
            }
        },
        Some(I::ScenarioYaml(text)) => Scenario::parse(std::path::Path::new("scenario_yaml"), text)
            .map(|s| Input::Scenario(Box::new(s)))
            .map_err(|e| Status::invalid_argument(e.to_string())),
        Some(I::LiveSnapshot(true)) => super::observed(state).map(Input::Live),
        Some(I::LiveSnapshot(false)) | None => {
            Err(Status::invalid_argument("input: name a scenario, send scenario_yaml, or set live_snapshot"))
        }
    }
}

fn policies(state: &ControlState, asked: &[pb::SimulatedPolicy]) -> Result<Vec<PluginSpec>, Status> {
    if asked.is_empty() {
        return Ok(state.live.plugins().iter().map(|e| e.plugin.spec()).collect());
    }
    asked
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let settings = match p.settings_json.trim() {
                "" => serde_json::Value::Null,
                json => serde_json::from_str(json).map_err(|e| {
                    Status::invalid_argument(format!("policies[{i}].settings_json: '{json}' is not JSON: {e}"))
                })?,
            };
            if !p.wasm.is_empty() {
                let bytes = Arc::from(p.wasm.as_slice());
                return Ok(PluginSpec { name: p.name.clone(), bytes, settings, limits: PluginLimits::default() });
            }
            crate::bundled::spec(&p.name, settings).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "policies[{i}].name: '{}' is not bundled; send its wasm to simulate your own",
                    p.name
                ))
            })
        })
        .collect()
}

#[tonic::async_trait]
impl pb::simulate_server::Simulate for SimulateService {
    async fn run(&self, request: Request<pb::SimulateRequest>) -> Result<Response<pb::SimulateResponse>, Status> {
        let state = &self.0;
        state.credentials.authorize(&request, Access::Read)?;
        let body = request.into_inner();
        let input = input(state, &body)?;
        let specs = policies(state, &body.policies)?;
        let slot = state.simulations.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "all {} simulation slots are busy; try again when one ends",
                state.settings.max_concurrent_simulations
            ))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let job = {
            let (stop, seed, decisions) = (stop.clone(), body.seed, body.decisions);
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                match input {
                    Input::Scenario(scenario) => scenario_run(*scenario, seed, specs, decisions, &stop),
                    Input::Live(observed) => live_run(&observed, specs),
                }
            })
        };
        let limit = state.settings.simulation_timeout;
        match tokio::time::timeout(limit, job).await {
            Ok(Ok(answer)) => answer.map(Response::new),
            Ok(Err(e)) => Err(Status::internal(format!("the simulation failed on its thread: {e}"))),
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                Err(Status::deadline_exceeded(format!(
                    "the simulation ran past control.simulation-timeout ({}) and was stopped",
                    crate::duration::display(limit)
                )))
            }
        }
    }
}

fn load_error(error: SimError) -> Status {
    match error {
        SimError::Load(e) => Status::invalid_argument(e.to_string()),
        SimError::Config(e) => Status::invalid_argument(format!("scenario: {e}")),
        other => Status::internal(other.to_string()),
    }
}

fn scenario_run(
    scenario: Scenario,
    seed: u64,
    specs: Vec<PluginSpec>,
    decisions: bool,
    stop: &AtomicBool,
) -> Result<pb::SimulateResponse, Status> {
    // Fuel, not wall time, ends a plugin call: the same request gives the same answer.
    let host = PolicyHost::new(HostConfig { deterministic: true, ..HostConfig::default() })
        .map_err(|e| Status::internal(e.to_string()))?;
    let sim = Simulation { scenario, seed, policies: specs, mode: crate::engine::Mode::Enforce, journal: None };
    let recorder = Recorder::new(MAX_DECISIONS, None);
    let report = sim.run_until(&host, &mut |_, _| {}, Some(recorder.clone()), stop).map_err(load_error)?;
    let summary_json = serde_json::to_string(&report.summary).map_err(|e| Status::internal(e.to_string()))?;
    let decisions = match decisions {
        true => recorder
            .after(0, MAX_DECISIONS)
            .unwrap_or_default()
            .iter()
            .filter(|s| matches!(s.record, Record::Decision(_)))
            .map(|s| convert::record(s))
            .collect(),
        false => Vec::new(),
    };
    Ok(pb::SimulateResponse { summary_json, decisions })
}

/// The policies on the live snapshot, guarded with the engine's state of that moment.
fn live_run(observed: &Observed, specs: Vec<PluginSpec>) -> Result<pb::SimulateResponse, Status> {
    let host = PolicyHost::new(HostConfig { deterministic: true, ..HostConfig::default() })
        .map_err(|e| Status::internal(e.to_string()))?;
    let plugins = specs
        .into_iter()
        .map(|spec| host.load(spec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let outcome = PolicyChain::new(plugins).evaluate_blocking(observed.obs.snapshot.clone());
    let guard =
        Guard { obs: &observed.obs, config: &observed.guardrails, state: &observed.state, now: observed.at_millis };
    let (_, outcomes) = guard.run(&outcome.proposals);
    let decisions = outcome
        .proposals
        .iter()
        .zip(outcomes)
        .map(|(p, guard)| {
            let result = match guard {
                crate::engine::record::GuardOutcome::Refused { .. } => ActionResult::NotApplied,
                _ => ActionResult::DryRun,
            };
            convert::record(&Stamped::new(0, crate::engine::decision_record(p, 0, observed.at_millis, guard, result)))
        })
        .collect();
    let errors: Vec<String> =
        outcome.reports.iter().filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {e}", r.plugin))).collect();
    let summary = serde_json::json!({ "proposed": outcome.proposals.len(), "plugin-errors": errors });
    Ok(pb::SimulateResponse { summary_json: summary.to_string(), decisions })
}

//! Running the simulator from tests: the repository's root, a deterministic policy host,
//! bundled policies by name, a scenario under a set of policies, and under the default set
//! with every record kept.

use std::path::{Path, PathBuf};

use ballast::bundled;
use ballast::engine::Mode;
use ballast::engine::record::Recorder;
use ballast::policy::{HostConfig, PluginSpec, PolicyHost};
use ballast::sim::scenario::{self, Scenario};
use ballast::sim::{SimReport, Simulation};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn host() -> PolicyHost {
    PolicyHost::new(HostConfig { deterministic: true, cache_dir: None, ..HostConfig::default() }).unwrap()
}

pub fn policy(name: &str, settings: serde_json::Value) -> PluginSpec {
    bundled::spec(name, settings).unwrap()
}

pub fn simulate(scenario: &str, seed: u64, policies: Vec<PluginSpec>) -> SimReport {
    let scenario = scenario::resolve(scenario).unwrap();
    let sim = Simulation { scenario, seed, policies, mode: Mode::Enforce, journal: None };
    sim.run(&host(), &mut |_, _| {}).unwrap()
}

pub fn defaults() -> Vec<PluginSpec> {
    bundled::default_specs()
}

/// A shipped scenario under the default set, with every record kept.
pub fn recorded(name: &str) -> (SimReport, Recorder) {
    let scenario = scenario::resolve(name).unwrap();
    recorded_with(scenario.seed, scenario, defaults())
}

/// A scenario on `seed` under `policies`, with every record kept.
pub fn recorded_with(seed: u64, scenario: Scenario, policies: Vec<PluginSpec>) -> (SimReport, Recorder) {
    let sim = Simulation { seed, scenario, policies, mode: Mode::Enforce, journal: None };
    let recorder = Recorder::new(1 << 20, None);
    let report = sim.run_until(&host(), &mut |_, _| {}, Some(recorder.clone()), &Default::default()).unwrap();
    (report, recorder)
}

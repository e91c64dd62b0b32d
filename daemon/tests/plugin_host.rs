//! The plugin host against real components built from source by `build.rs`: hostile plugins
//! are contained and reported, the chain goes on, and incompatible plugins are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast::policy::saved::StateFile;
use ballast::policy::{
    CallError, ChainEntry, HostConfig, LoadError, PluginLimits, PluginMode, PluginSpec, PolicyChain, PolicyHost,
};
use ballast_sdk::testing::{GroupBuilder, NodeBuilder, SnapshotBuilder};
use ballast_sdk::{Action, SnapshotData};

fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join(format!("{name}.wasm"))
}

fn host(deterministic: bool) -> PolicyHost {
    PolicyHost::new(HostConfig { deterministic, cache_dir: None, ..HostConfig::default() }).expect("host starts")
}

fn spec(name: &str, file: &str, settings: serde_json::Value) -> PluginSpec {
    let mut spec = PluginSpec::from_file(&wasm(file)).expect("plugin built");
    spec.name = name.to_string();
    spec.settings = settings;
    spec
}

/// A hostile mode under a deadline a loaded 2-core CI machine cannot reach first, so a test of
/// another limit never fails on the deadline; the tests of the deadline shorten it themselves
/// ([`short_deadline`]).
fn hostile(mode: &str) -> PluginSpec {
    let mut spec = spec(mode, "hostile_policy", serde_json::json!({ "mode": mode }));
    spec.limits = PluginLimits { deadline_ms: 10_000, memory_mib: 64, ..PluginLimits::default() };
    spec
}

fn short_deadline(mut spec: PluginSpec) -> PluginSpec {
    spec.limits.deadline_ms = 200;
    spec
}

fn snapshot() -> Arc<SnapshotData> {
    Arc::new(
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 20))
            .group(GroupBuilder::asg("c5").instance_type("c5.large", "2", "4Gi", 0.085).sizes(0, 0, 20))
            .pending_pods("default", "web", 12, "500m", "1Gi")
            .build(),
    )
}

/// Runs `[plugin, binpack]` and returns the hostile plugin's error after checking that binpack,
/// next in the chain, still ran and proposed its scale-up.
fn contained(host: &PolicyHost, plugin: PluginSpec) -> (CallError, Duration) {
    let plugins = vec![host.load(plugin).expect("hostile plugin loads"), host.load(binpack()).unwrap()];
    let mut chain = PolicyChain::new(plugins);
    let outcome = chain.evaluate_blocking(snapshot());
    assert_eq!(outcome.reports.len(), 2);
    let binpack = &outcome.reports[1];
    let decisions = &binpack.result.as_ref().expect("binpack still runs").decisions;
    assert_eq!(decisions[0].action, Action::ScaleTo { group: "c5".into(), size: 3 });
    assert!(outcome.proposals.iter().all(|p| &*p.plugin == "binpack"), "nothing from the failed plugin is kept");
    let report = &outcome.reports[0];
    (report.result.clone().expect_err("hostile plugin fails"), report.elapsed)
}

#[test]
fn endless_loop_is_stopped_at_the_deadline() {
    let (error, elapsed) = contained(&host(false), short_deadline(hostile("endless-loop")));
    assert_eq!(error, CallError::DeadlineExceeded { deadline_ms: 200 });
    // Loose on purpose: the loop alone never ends, so any bound proves the deadline stopped it,
    // and a loaded CI machine must not fail the test for scheduling noise.
    assert!(elapsed < Duration::from_secs(3), "stopped after {elapsed:?}, far past the 200 ms deadline");
}

#[test]
fn endless_loop_runs_out_of_fuel_in_deterministic_mode() {
    let host = host(true);
    let mut spec = hostile("endless-loop");
    spec.limits.fuel = 10_000_000;
    spec.limits.deadline_ms = 10_000;
    let plugin = host.load(spec).unwrap();
    let mut chain = PolicyChain::new(vec![plugin]);
    let report = chain.evaluate_blocking(snapshot()).reports.remove(0);
    assert_eq!(report.result.unwrap_err(), CallError::FuelExhausted { fuel: 10_000_000 });
    assert!(report.fuel_used.unwrap() >= 10_000_000);
}

#[test]
fn memory_bomb_hits_the_cap() {
    let (error, _) = contained(&host(false), hostile("memory-bomb"));
    match error {
        CallError::MemoryExhausted { cap_mib: 64, requested_mib } => assert!(requested_mib > 64),
        other => panic!("expected a memory error, got {other:?}"),
    }
}

#[test]
fn deep_recursion_traps() {
    let (error, _) = contained(&host(false), hostile("deep-recursion"));
    assert!(matches!(&error, CallError::Trap { message } if message.contains("stack")), "{error:?}");
}

#[test]
fn a_panic_traps_and_is_reported_with_the_guests_own_message() {
    let (error, _) = contained(&host(false), hostile("panic"));
    assert_eq!(error.kind(), "trap");
    let text = error.to_string();
    assert!(text.contains("hostile plugin panics on purpose") && text.contains("unreachable"), "{text}");
}

#[test]
fn what_a_plugin_prints_becomes_its_log_and_harms_nothing() {
    let host = host(false);
    let mut chain = PolicyChain::new(vec![host.load(hostile("print")).unwrap()]);
    let report = chain.evaluate_blocking(snapshot()).reports.remove(0);
    assert!(report.result.is_ok(), "{:?}", report.result);
    let lines: Vec<(&str, &str)> = report.logs.iter().map(|l| (l.level, l.message.as_str())).collect();
    assert!(lines.contains(&("info", "hostile plugin prints to stdout")), "{lines:?}");
    assert!(lines.contains(&("warn", "hostile plugin prints to stderr")), "{lines:?}");
}

#[test]
fn sockets_and_host_files_are_refused_to_the_guest() {
    for (mode, says) in [("socket", "refused a UDP socket"), ("file-read", "refused reading /etc/hostname")] {
        let (error, _) = contained(&host(false), hostile(mode));
        assert_eq!(error.kind(), "policy-error", "{mode}: {error}");
        assert!(error.to_string().contains(says), "{mode}: {error}");
    }
}

#[test]
fn a_state_that_keeps_growing_is_stopped_at_the_output_cap() {
    let host = host(false);
    let mut chain = PolicyChain::new(vec![host.load(hostile("state-growth")).unwrap()]);
    let mut results = Vec::new();
    for _ in 0..12 {
        results.push(chain.evaluate_blocking(snapshot()).reports.remove(0).result);
    }
    assert!(results[0].is_ok());
    let failed = results.iter().position(Result::is_err).expect("the state outgrows the cap");
    let error = results[failed].clone().unwrap_err();
    assert!(matches!(&error, CallError::OutputTooLarge { what } if what.contains("limit is 2048 KiB")), "{error:?}");
    assert!(results[failed..].iter().all(Result::is_err), "the state is not kept past the cap, so it stays refused");
}

#[test]
fn huge_output_is_refused() {
    let (error, _) = contained(&host(false), hostile("huge-output"));
    assert!(
        matches!(&error, CallError::OutputTooLarge { what } if what.contains("20000 decisions, the limit is 10000")),
        "{error:?}"
    );
}

#[test]
fn unknown_node_group_is_a_validation_error() {
    let (error, _) = contained(&host(false), hostile("unknown-group"));
    let text = error.to_string();
    assert!(text.contains("unknown node group \"no-such-group\"") && text.contains("c5, m5"), "{text}");
}

#[test]
fn a_well_behaved_plugin_sees_earlier_proposals_and_keeps_state() {
    let host = host(true);
    let mut chain = PolicyChain::new(vec![host.load(binpack()).unwrap(), host.load(hostile("well-behaved")).unwrap()]);
    let outcome = chain.evaluate_blocking(snapshot());
    assert!(outcome.reports.iter().all(|r| r.result.is_ok()), "{:?}", outcome.reports);
    assert_eq!(outcome.proposals.len(), 2);
    assert!(outcome.reports[0].fuel_used.unwrap() > 0);
}

/// Three m5.large, one at 10% since the cluster started: binpack with its own defaults
/// removes it once its state has timed it idle for 10 minutes.
fn one_idle_node_at(minutes: u64) -> Arc<SnapshotData> {
    Arc::new(
        SnapshotBuilder::new()
            .at_millis(minutes * 60_000)
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 3, 10))
            .node(NodeBuilder::new("busy-1", "m5").allocatable("2", "8Gi").requested("1500m", "4Gi", 10))
            .node(NodeBuilder::new("busy-2", "m5").allocatable("2", "8Gi").requested("1200m", "3Gi", 8))
            .node(NodeBuilder::new("idle", "m5").allocatable("2", "8Gi").requested("200m", "512Mi", 2))
            .build(),
    )
}

fn removes_the_idle_node(chain: &mut PolicyChain, minutes: u64) -> bool {
    let outcome = chain.evaluate_blocking(one_idle_node_at(minutes));
    assert!(outcome.reports.iter().all(|r| r.result.is_ok()), "{:?}", outcome.reports);
    outcome.proposals.iter().any(|p| p.decision.action == Action::RemoveNodes { nodes: vec!["idle".into()] })
}

/// A component that differs from `spec`'s only by a custom section appended (a rebuild, a
/// new version): the same policy, another digest.
fn rebuilt(mut spec: PluginSpec) -> PluginSpec {
    let name = b"ballast-test";
    let payload = b"another build";
    let mut bytes = spec.bytes.to_vec();
    bytes.push(0); // custom section
    bytes.push(u8::try_from(1 + name.len() + payload.len()).unwrap());
    bytes.push(u8::try_from(name.len()).unwrap());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    spec.bytes = Arc::from(bytes);
    spec
}

#[test]
fn a_policy_keeps_its_state_across_a_reload_only_while_its_component_is_unchanged() {
    let host = host(true);
    let entry = |spec: PluginSpec| ChainEntry::new(host.load(spec).unwrap(), PluginMode::Enforce, "test");
    let mut chain = PolicyChain::new(vec![host.load(binpack()).unwrap()]);
    assert!(!removes_the_idle_node(&mut chain, 0), "idle for no time yet");
    // Reloaded with the same component: the timer started at minute 0 runs on.
    chain.replace_all(vec![entry(binpack())]);
    assert!(removes_the_idle_node(&mut chain, 10), "the state was kept across the reload");
    // Another build under the same name never reads the old one's state: the timer restarts.
    let other = rebuilt(binpack());
    assert_ne!(host.load(other.clone()).unwrap().info().digest, chain.entries()[0].plugin.info().digest);
    chain.replace_all(vec![entry(other)]);
    assert!(!removes_the_idle_node(&mut chain, 20), "a new component starts afresh");
    assert!(removes_the_idle_node(&mut chain, 30));
}

/// binpack with its own defaults: removes a node idle for 10 minutes.
fn binpack() -> PluginSpec {
    spec("binpack", "binpack", serde_json::Value::Null)
}

/// A directory for the state file, and the file's path in it.
fn state_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy-state.json");
    (dir, file)
}

/// A chain of binpack saving its state to `file`, with what the file held taken back, as
/// `ballast run` starts.
fn restarted(
    host: &PolicyHost,
    spec: PluginSpec,
    file: &std::path::Path,
    max_age: Duration,
) -> (PolicyChain, Vec<String>) {
    let mut chain = PolicyChain::new(vec![host.load(spec).unwrap()]).with_state_max_age(max_age);
    let file = StateFile::new(file);
    let restored = file.load().unwrap().map(|saved| chain.restore(saved)).unwrap_or_default();
    (chain.with_state_file(file), restored)
}

#[test]
fn after_a_restart_a_policy_takes_back_its_saved_state_if_the_same_component_wrote_it() {
    let host = host(true);
    let (_dir, file) = state_file();
    let hour = Duration::from_secs(3600);
    let (mut before, restored) = restarted(&host, binpack(), &file, hour);
    assert!(restored.is_empty(), "nothing saved yet");
    assert!(!removes_the_idle_node(&mut before, 0));
    drop(before);
    // Restarted: the idle timer started at minute 0 runs on.
    let (mut after, restored) = restarted(&host, binpack(), &file, hour);
    assert_eq!(restored, ["binpack"]);
    assert!(removes_the_idle_node(&mut after, 10), "the restart forgot the idle timer");
    // Another build of it reads nothing the first wrote: its timer starts now.
    let (mut other, restored) = restarted(&host, rebuilt(binpack()), &file, hour);
    assert!(restored.is_empty(), "{restored:?}");
    assert!(!removes_the_idle_node(&mut other, 10));
    assert!(removes_the_idle_node(&mut other, 20));
}

#[test]
fn a_policy_state_older_than_the_limit_is_not_handed_back() {
    let host = host(true);
    let (_dir, file) = state_file();
    let five_minutes = Duration::from_secs(300);
    let (mut chain, _) = restarted(&host, binpack(), &file, five_minutes);
    assert!(!removes_the_idle_node(&mut chain, 0));
    // Restarted ten minutes later: the saved timer missed those minutes and is dropped.
    let (mut chain, restored) = restarted(&host, binpack(), &file, five_minutes);
    assert_eq!(restored, ["binpack"], "taken back, judged at the next evaluation");
    assert!(!removes_the_idle_node(&mut chain, 10), "a ten-minute-old timer fired");
    // In memory the same: evaluations every four minutes keep it, a gap of ten drops it.
    for minute in [14, 18] {
        assert!(!removes_the_idle_node(&mut chain, minute));
    }
    assert!(removes_the_idle_node(&mut chain, 20), "idle since minute 10");
    assert!(!removes_the_idle_node(&mut chain, 30), "a standby that leads again starts afresh");
}

/// A leader's chain hands its policies' states to the next leader's (the engine's handover,
/// through `Policies`), which takes them only if they are newer than its own.
#[test]
fn a_new_leader_takes_the_policies_states_the_last_one_handed_over_if_newer_than_its_own() {
    use ballast::engine::policies::Policies;
    let host = host(true);
    let hour = Duration::from_secs(3600);
    let chain = || PolicyChain::new(vec![host.load(binpack()).unwrap()]).with_state_max_age(hour);
    let (mut a, mut b) = (chain(), chain());
    assert_eq!(a.hand_over(), None, "nothing evaluated yet");
    // b led first and saw the node idle from minute 0; a led from minute 2 to minute 8.
    assert!(!removes_the_idle_node(&mut b, 0));
    assert!(!removes_the_idle_node(&mut a, 2));
    assert!(!removes_the_idle_node(&mut a, 8));
    let left = a.hand_over().expect("states to hand over");
    assert_eq!(b.take_over(left.clone()), Ok(vec!["binpack".to_string()]));
    assert!(!removes_the_idle_node(&mut b, 10), "b took a's timer, idle since minute 2, not its own");
    assert!(removes_the_idle_node(&mut b, 12));
    // States older than those held are not taken.
    assert_eq!(b.take_over(left), Ok(vec![]));
    let error = b.take_over(serde_json::json!({"at-millis": "noon"})).unwrap_err();
    assert!(error.starts_with("policies: invalid type: string \"noon\""), "{error}");
}

#[test]
fn a_newer_interface_version_is_refused_naming_both() {
    let error = host(false).load(spec("future", "future_version_policy", serde_json::Value::Null)).err().unwrap();
    assert!(matches!(error, LoadError::IncompatibleVersion { .. }), "{error:?}");
    let text = error.to_string();
    let host_version = format!("ballast:policy@{}", ballast_sdk::INTERFACE_VERSION);
    assert!(text.contains("ballast:policy@0.2.0") && text.contains(&host_version), "{text}");
}

#[test]
fn a_plugin_built_against_0_1_0_loads_and_runs_on_this_0_1_x_host() {
    let host = host(false);
    let old = host.load(spec("old", "old_contract_policy", serde_json::Value::Null)).unwrap();
    assert_eq!(old.info().policy_version.as_deref(), Some("0.1.0"));
    assert_ne!(ballast_sdk::INTERFACE_VERSION, "0.1.0", "this host serves a newer 0.1.x");
    let mut chain = PolicyChain::new(vec![old]);
    let outcome = chain.evaluate_blocking(snapshot());
    assert!(outcome.reports[0].result.is_ok(), "{:?}", outcome.reports);
    let pending = snapshot().pending_pods.len() as u32;
    let group = snapshot().node_groups[0].id.clone();
    assert_eq!(outcome.proposals[0].decision.action, Action::ScaleTo { group, size: pending });
}

#[test]
fn bad_settings_are_refused_at_load_with_the_plugins_message() {
    let host = host(false);
    let error = host.load(spec("binpack", "binpack", serde_json::json!({"utilisation-threshold": 2}))).err().unwrap();
    let text = error.to_string();
    assert!(
        text.contains("settings rejected") && text.contains("utilisation-threshold must be in (0, 1], got 2"),
        "{text}"
    );
    let error = host.load(spec("binpack", "binpack", serde_json::json!({"treshold": 0.3}))).err().unwrap();
    assert!(error.to_string().contains("unknown field `treshold`"), "{error}");
}

/// What `ballast run` loads: the wasm build of binpack, settings checked by the component.
/// A value of the wrong kind deep in the settings is refused naming its path and the value,
/// and so is a nested setting the policy itself refuses.
#[test]
fn a_nested_bad_setting_is_refused_at_load_naming_its_path_and_value() {
    let host = host(false);
    let wrong_kind = serde_json::json!({"growth": {"horizon-seconds": -1}});
    let error = host.load(spec("binpack", "binpack", wrong_kind)).err().unwrap().to_string();
    assert!(error.contains("growth.horizon-seconds") && error.contains("-1"), "{error}");
    let refused = serde_json::json!({"growth": {"horizon-seconds": 600, "window-seconds": 0}});
    let error = host.load(spec("binpack", "binpack", refused)).err().unwrap().to_string();
    assert!(error.contains("growth.window-seconds: 0"), "{error}");
}

#[test]
fn settings_checks_are_bounded_too() {
    let started = Instant::now();
    let error = host(false).load(short_deadline(hostile("slow-settings"))).err().unwrap();
    assert!(matches!(error, LoadError::SettingsCheck { source: CallError::DeadlineExceeded { .. }, .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_core_module_is_not_a_component() {
    let mut spec = spec("core", "binpack", serde_json::Value::Null);
    spec.bytes = Arc::from(&b"\0asm\x01\0\0\0"[..]);
    let error = host(false).load(spec).err().unwrap().to_string();
    assert!(error.contains("core wasm module, not a component"), "{error}");
}

#[test]
fn the_compile_cache_survives_a_new_host() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig { cache_dir: Some(dir.path().to_path_buf()), ..HostConfig::default() };
    let first = PolicyHost::new(config.clone()).unwrap().load(binpack()).unwrap();
    assert_eq!(first.cache_outcome(), ballast::policy::cache::CacheOutcome::Compiled);
    let second = PolicyHost::new(config).unwrap().load(binpack()).unwrap();
    assert_eq!(second.cache_outcome(), ballast::policy::cache::CacheOutcome::Disk);
}

#[test]
fn a_component_with_the_wrong_signature_is_refused_at_load_naming_the_function() {
    let error = host(false).load(spec("wrong", "wrong_signature_policy", serde_json::Value::Null)).err().unwrap();
    match &error {
        LoadError::Signature { function, .. } => assert_eq!(function, "evaluate"),
        other => panic!("expected a signature error, got {other:?}"),
    }
    assert!(error.to_string().contains("export `evaluate` does not have the signature of ballast:policy"), "{error}");

    // `plugin inspect` runs the same checks, so it does not call it loadable.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["plugin", "inspect", "-o", "json"])
        .arg(wasm("wrong_signature_policy"))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let verdict = report["compatibility"].as_str().unwrap();
    assert!(verdict.contains("export `evaluate` does not have the signature"), "{verdict}");
}

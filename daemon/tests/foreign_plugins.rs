//! Policies written in Python, TypeScript and C, and the SDK's starter templates, built by
//! `tests/build-plugins.sh` and run by the host like any other plugin. Missing components fail
//! these tests: the toolchains are part of the suite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ballast::policy::{CallError, HostConfig, PluginLimits, PluginSpec, PolicyChain, PolicyHost};
use ballast_sdk::testing::{GroupBuilder, NodeBuilder, SnapshotBuilder};
use ballast_sdk::{Action, SnapshotData};
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn component(name: &str) -> PluginSpec {
    let path = root().join("target/plugins/foreign").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run tests/setup.sh and tests/build-plugins.sh (tests/run does both)",
        path.display()
    );
    PluginSpec::from_file(&path).unwrap()
}

/// One host for the file, caching compiled components on disk: a Python component takes
/// seconds to compile.
fn host() -> &'static PolicyHost {
    static HOST: OnceLock<PolicyHost> = OnceLock::new();
    HOST.get_or_init(|| {
        PolicyHost::new(HostConfig {
            cache_dir: Some(root().join("target/test-component-cache")),
            ..HostConfig::default()
        })
        .unwrap()
    })
}

fn load(name: &str, settings: serde_json::Value) -> Result<ballast::policy::Plugin, ballast::policy::LoadError> {
    host().load(PluginSpec { settings, ..component(name) })
}

fn run(
    name: &str,
    settings: serde_json::Value,
    snapshot: SnapshotData,
) -> Result<Vec<ballast_sdk::Decision>, CallError> {
    let mut chain = PolicyChain::new(vec![load(name, settings).expect("loads")]);
    chain.evaluate_blocking(Arc::new(snapshot)).reports.remove(0).result.map(|e| e.decisions)
}

/// Wednesday 2026-11-18 at `hh:mm` UTC.
fn wednesday(hh: u64, mm: u64) -> u64 {
    // 2026-11-16 was a Monday.
    1_795_392_000_000 + 2 * 86_400_000 + (hh * 60 + mm) * 60_000
}

fn web_group(at: u64) -> SnapshotData {
    SnapshotBuilder::new()
        .at_millis(at)
        .group(GroupBuilder::asg("web").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 2, 10))
        .build()
}

fn floor_settings() -> serde_json::Value {
    json!({"floors": [{"group": "web", "min-nodes": 6, "from": "08:00", "to": "19:00",
                        "days": ["mon", "tue", "wed", "thu", "fri"], "lead-minutes": 15}]})
}

#[test]
fn python_capacity_floor_raises_the_group_in_business_hours_only() {
    let decisions = run("capacity_floor", floor_settings(), web_group(wednesday(7, 50))).unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].action, Action::ScaleTo { group: "web".into(), size: 6 });
    assert!(
        decisions[0].reason.contains("08:00-19:00") && decisions[0].reason.contains("has 2"),
        "{}",
        decisions[0].reason
    );

    assert!(
        run("capacity_floor", floor_settings(), web_group(wednesday(7, 30))).unwrap().is_empty(),
        "before the lead time"
    );
    assert!(run("capacity_floor", floor_settings(), web_group(wednesday(19, 30))).unwrap().is_empty(), "after hours");
    let saturday = wednesday(12, 0) + 3 * 86_400_000;
    assert!(run("capacity_floor", floor_settings(), web_group(saturday)).unwrap().is_empty(), "weekend");
}

#[test]
fn python_settings_errors_name_the_field() {
    let err =
        load("capacity_floor", json!({"floors": [{"group": "web", "min-nodes": 2, "from": "8am", "to": "19:00"}]}))
            .err()
            .unwrap();
    assert!(err.to_string().contains("floors[0].from: expected HH:MM, got '8am'"), "{err}");
}

#[test]
fn typescript_thresholds_scale_one_group_for_pending_pods() {
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 20))
        .group(GroupBuilder::asg("c5").instance_type("c5.large", "2", "4Gi", 0.085).sizes(0, 0, 20))
        .pending_pods("default", "web", 12, "500m", "1Gi")
        .build();
    let decisions = run("utilisation_threshold", serde_json::Value::Null, snapshot).unwrap();
    // 6 CPUs of requests over 2-CPU nodes at a 70% target: 5 nodes, in the first group only.
    assert_eq!(
        decisions.iter().map(|d| d.action.clone()).collect::<Vec<_>>(),
        vec![Action::ScaleTo { group: "m5".into(), size: 5 }]
    );
}

#[test]
fn typescript_thresholds_remove_the_emptiest_node_when_idle() {
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 3, 20))
        .node(NodeBuilder::new("a", "m5").allocatable("2", "8Gi").requested("500m", "1Gi", 3))
        .node(NodeBuilder::new("b", "m5").allocatable("2", "8Gi").requested("100m", "1Gi", 1))
        .node(NodeBuilder::new("c", "m5").allocatable("2", "8Gi").requested("300m", "1Gi", 2))
        .build();
    let decisions = run("utilisation_threshold", json!({"scale-down-threshold": 0.2}), snapshot).unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].action, Action::RemoveNodes { nodes: vec!["b".into()] });
    let err =
        load("utilisation_threshold", json!({"scale-up-threshold": 0.2, "scale-down-threshold": 0.5})).err().unwrap();
    assert!(err.to_string().contains("scale-down-threshold (0.5) must be below scale-up-threshold (0.2)"), "{err}");
}

#[test]
fn the_starter_templates_build_and_run() {
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 20))
        .pending_pods("default", "web", 3, "500m", "1Gi")
        .pending_pods("default", "api", 2, "1", "2Gi")
        .build();
    for template in ["template_python", "template_typescript", "template_c"] {
        let decisions = run(template, json!({"warm-nodes": 2}), snapshot.clone()).unwrap();
        assert_eq!(decisions.len(), 1, "{template}: {decisions:?}");
        assert_eq!(decisions[0].action, Action::ScaleTo { group: "m5".into(), size: 2 }, "{template}");
        // Two pending shapes (3 + 2 pods) read through pending-shapes and summed.
        assert!(decisions[0].reason.starts_with("5 pods pending"), "{template}: {}", decisions[0].reason);
        let err = load(template, json!({"warm-nodes": -1})).err().unwrap();
        assert!(err.to_string().contains("warm-nodes must be a whole number >= 0, got -1"), "{template}: {err}");
    }
}

#[test]
fn a_mixed_language_chain_with_c_survives_a_hostile_member() {
    let mut looping =
        PluginSpec::from_file(&PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("hostile_policy.wasm")).unwrap();
    looping.settings = json!({"mode": "endless-loop"});
    looping.limits = PluginLimits { deadline_ms: 100, ..PluginLimits::default() };
    let plugins = vec![
        load("capacity_floor", floor_settings()).unwrap(),
        host().load(looping).unwrap(),
        load("template_c", json!({"warm-nodes": 12})).unwrap(),
        load("utilisation_threshold", json!({"groups": ["web"]})).unwrap(),
    ];
    let mut chain = PolicyChain::new(plugins);
    let mut snapshot = web_group(wednesday(9, 0));
    snapshot.pending_pods =
        SnapshotBuilder::new().pending_pods("default", "web", 40, "500m", "1Gi").build().pending_pods;
    let outcome = chain.evaluate_blocking(Arc::new(snapshot));
    let kinds: Vec<&str> =
        outcome.reports.iter().map(|r| r.result.as_ref().map_or_else(|e| e.kind(), |_| "ok")).collect();
    assert_eq!(kinds, vec!["ok", "deadline", "ok", "ok"]);
    let plugins: Vec<&str> = outcome.proposals.iter().map(|p| &*p.plugin).collect();
    assert_eq!(plugins, vec!["capacity_floor", "template_c", "utilisation_threshold"]);
    let warm = &outcome.proposals[1].decision;
    assert_eq!(warm.action, Action::ScaleTo { group: "web".into(), size: 10 }, "capped at max: {warm:?}");
}

//! Plugins built before a contract change keep loading and deciding as before.
//!
//! `tests/fixtures/plugins/binpack-0.1.1.wasm` is the bundled `binpack` as built before pending
//! shapes existed (interface 0.1.1, reading `pending-pods` one record per pod), kept as a
//! binary so that no rebuild against today's SDK can hide a change. Today's `binpack` reads
//! `pending-shapes`; on the same input both must propose the same, and a simulation with either
//! must report the same.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballast::bundled;
use ballast::engine::Mode;
use ballast::policy::{HostConfig, PluginSpec, PolicyChain, PolicyHost};
use ballast::sim::{Simulation, scenario};
use ballast_sdk::testing::{GroupBuilder, SnapshotBuilder};
use ballast_sdk::{Decision, PendingPod, SnapshotData, Taint, TaintEffect, Toleration};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn host() -> PolicyHost {
    PolicyHost::new(HostConfig { deterministic: true, cache_dir: None, ..HostConfig::default() }).unwrap()
}

/// The binpack built before shapes, under the bundled one's name so records compare equal.
fn binpack_before_shapes() -> PluginSpec {
    let mut spec = PluginSpec::from_file(&root().join("tests/fixtures/plugins/binpack-0.1.1.wasm")).unwrap();
    spec.name = "binpack".into();
    spec
}

fn binpack_now() -> PluginSpec {
    bundled::spec("binpack", serde_json::Value::Null).unwrap()
}

fn decisions(host: &PolicyHost, spec: PluginSpec, snapshot: &SnapshotData) -> Vec<Decision> {
    let mut chain = PolicyChain::new(vec![host.load(spec).unwrap()]);
    let outcome = chain.evaluate_blocking(Arc::new(snapshot.clone()));
    let report = &outcome.reports[0];
    report.result.as_ref().unwrap_or_else(|e| panic!("{e}")).decisions.clone()
}

/// Three groups (one labelled, one tainted, one plain) and pending pods of many shapes in an
/// interleaved order, some of equal size but different constraints, one that fits nowhere.
/// `room` is how many nodes each group may add.
fn mixed_pending(room: u32) -> SnapshotData {
    let mut snapshot = SnapshotBuilder::new()
        .group(
            GroupBuilder::asg("web")
                .instance_type("m5.large", "2", "8Gi", 0.096)
                .sizes(0, 1, 1 + room)
                .label("team", "web")
                .taint("team", "web", TaintEffect::NoSchedule),
        )
        .group(GroupBuilder::asg("batch").instance_type("c5.xlarge", "4", "8Gi", 0.17).sizes(0, 0, room).taint(
            "dedicated",
            "batch",
            TaintEffect::NoSchedule,
        ))
        .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, 2, 2 + room))
        .build();
    let sizes = [("500m", "1Gi"), ("250m", "512Mi"), ("1", "2Gi"), ("500m", "1Gi"), ("2", "6Gi")];
    for i in 0..60 {
        let (cpu, memory) = sizes[i % sizes.len()];
        let app = format!("app-{}", i % 7);
        let mut pod = SnapshotBuilder::new().pending_pods("shop", &app, 1, cpu, memory).build().pending_pods.remove(0);
        pod.name = format!("{app}-{i}");
        pod.age_seconds = i as u64;
        let tolerate = |key: &str, value: &str| Toleration {
            key: key.into(),
            operator_exists: false,
            value: value.into(),
            effect: Some(TaintEffect::NoSchedule),
        };
        match i % 3 {
            0 => {
                pod.node_selector.insert("team".into(), "web".into());
                pod.tolerations.push(tolerate("team", "web"));
            }
            1 => pod.tolerations.push(tolerate("dedicated", "batch")),
            _ => {}
        }
        snapshot.pending_pods.push(pod);
    }
    let huge = PendingPod { name: "huge".into(), ..snapshot.pending_pods[0].clone() };
    let huge = PendingPod { requests: ballast_sdk::Resources::pod(64_000, 1 << 30), ..huge };
    snapshot.pending_pods.push(huge);
    snapshot
}

#[test]
fn binpack_built_before_shapes_is_served_and_decides_what_the_current_one_does() {
    let host = host();
    let old = host.load(binpack_before_shapes()).unwrap();
    assert_eq!(old.info().policy_version.as_deref(), Some("0.1.1"), "the fixture predates pending-shapes");
    assert_eq!(ballast_sdk::INTERFACE_VERSION, "0.1.16");

    let snapshot = mixed_pending(100);
    let taint = Taint { key: "dedicated".into(), value: "batch".into(), effect: TaintEffect::NoSchedule };
    assert!(snapshot.node_groups[1].taints.contains(&taint), "the tainted group is in play");
    let before = decisions(&host, binpack_before_shapes(), &snapshot);
    assert!(before.len() >= 2, "a scale-up per group that takes pods: {before:#?}");
    let now = decisions(&host, binpack_now(), &snapshot);
    let actions = |d: &[Decision]| d.iter().map(|d| d.action.clone()).collect::<Vec<_>>();
    assert_eq!(actions(&before), actions(&now), "same proposals");
    // Today's reasons also name whose pods a scale-up is for; the rest reads the same.
    let reasons = |d: &[Decision]| d.iter().map(|d| without_owners(&d.reason)).collect::<Vec<_>>();
    assert_eq!(reasons(&before), reasons(&now), "same reasons, owners aside");
    assert!(now.iter().all(|d| d.reason.contains("pending pods of deployment/")), "{now:#?}");
}

/// A scale-up's reason without the owners today's binpack names: "12 pending pods of
/// deployment/default/web (500m ...) fit on ..." reads "12 pending pods (500m ...) fit on ...".
fn without_owners(reason: &str) -> String {
    let Some(at) = reason.find("pending pods of ") else { return reason.to_string() };
    let start = at + "pending pods".len();
    let rest = &reason[start..];
    let end = [rest.find(" ("), rest.find(" fit on")].into_iter().flatten().min().unwrap_or(0);
    format!("{}{}", &reason[..start], &rest[end..])
}

/// Where a group's max-size cuts a run of equal-sized pods of different shapes, the pod-by-pod
/// binpack took them in pod order and today's takes them shape by shape; which pods the next
/// group gets can then differ. The groups and sizes asked for are the same here.
#[test]
fn where_max_size_cuts_equal_pods_the_same_sizes_are_asked_for() {
    let host = host();
    let snapshot = mixed_pending(4);
    let before = decisions(&host, binpack_before_shapes(), &snapshot);
    let now = decisions(&host, binpack_now(), &snapshot);
    let actions = |d: &[Decision]| d.iter().map(|d| d.action.clone()).collect::<Vec<_>>();
    assert!(before.len() >= 2, "{before:#?}");
    assert_eq!(actions(&before), actions(&now));
}

/// Each scenario without its DaemonSets: since session 46 today's binpack leaves a removed
/// node's DaemonSet pods out of the room it asks elsewhere (a change of rule, as Cluster
/// Autoscaler simulates a scale-down, not of contract), and with agents on every node the
/// two scale down differently where the spare room is tight.
#[test]
fn every_shipped_scenario_reports_the_same_with_binpack_built_before_shapes() {
    let host = host();
    for (name, _) in scenario::BUILT_IN {
        let mut without_agents = scenario::resolve(name).unwrap();
        without_agents.workloads.retain(|w| w.kind != ballast_sdk::WorkloadKind::DaemonSet);
        let run = |binpack: PluginSpec| {
            let policies = vec![binpack, bundled::spec("fargate-placement", serde_json::Value::Null).unwrap()];
            let sim =
                Simulation { scenario: without_agents.clone(), seed: 7, policies, mode: Mode::Enforce, journal: None };
            sim.run(&host, &mut |_, _| {}).unwrap()
        };
        let (before, now) = (run(binpack_before_shapes()), run(binpack_now()));
        assert!(before.summary.ticks > 0);
        assert_eq!(before.summary, now.summary, "{name}");
        assert_eq!(
            serde_json::to_value(&before).unwrap(),
            serde_json::to_value(&now).unwrap(),
            "{name}: the whole report"
        );
    }
}

//! The host's guardrails, end to end: a scripted plugin asks for unsafe things verbatim, the
//! engine runs on the sim adapters, and the tests look at the world and the records.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::path::Path;
use std::sync::Arc;

use ballast::engine::Mode;
use ballast::engine::ports::{Capacity, Cluster, ClusterView};
use ballast::engine::record::{ActionResult, DecisionRecord, GuardOutcome, Record, Trigger};
use ballast::policy::Engine;
use ballast::policy::{PluginLimits, PluginSpec};
use ballast::sim::{Scenario, SimHandle, Simulation};
use serde_json::json;
use support::{host, scripted};

const SCENARIO: &str = r#"
name: guardrails
duration: 2h
tick: 10s
node-groups:
  - id: general
    instance-types: [m5.large]
    min-size: 1
    max-size: 20
    desired-size: 3
fargate: {}
guardrails:
  min-node-age: 0s
  cooldown: {scale-down-after-scale-up: 0s, after-scale-down: 0s}
workloads:
  - name: db
    namespace: shop
    kind: stateful-set
    requests: {cpu: "1", memory: 2Gi}
    replicas: {constant: 2}
    volume: ebs
    disruption-budget: {min-available: 2}
  - name: agent
    namespace: kube-system
    kind: daemon-set
    requests: {cpu: 100m, memory: 100Mi}
  - name: web
    namespace: shop
    requests: {cpu: 250m, memory: 256Mi}
    replicas: {constant: 2}
"#;

fn engine(decisions: serde_json::Value, mode: Mode) -> (SimHandle, Engine<SimHandle, SimHandle>) {
    let scenario = Scenario::parse(Path::new("guardrails.yaml"), SCENARIO).unwrap();
    let sim = Simulation { scenario, seed: 1, policies: vec![scripted(decisions)], mode, journal: None };
    sim.prepare(&host()).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

/// Ticks the engine `ticks` times, with `seconds` of simulated time between ticks.
fn run(world: &SimHandle, engine: &mut Engine<SimHandle, SimHandle>, ticks: usize, seconds: u64) {
    for _ in 0..ticks {
        let now = world.lock().now();
        block_on(engine.tick(now, Trigger::Manual));
        for _ in 0..seconds {
            world.lock().step(1_000);
        }
    }
}

fn decisions(engine: &Engine<SimHandle, SimHandle>) -> Vec<DecisionRecord> {
    engine
        .recorder()
        .records()
        .filter_map(|r| match r {
            Record::Decision(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn view(world: &SimHandle) -> ClusterView {
    block_on(world.observe()).unwrap()
}

fn desired(world: &SimHandle) -> u32 {
    block_on(world.node_groups()).unwrap()[0].desired_size
}

fn why(outcome: &GuardOutcome) -> String {
    match outcome {
        GuardOutcome::Accepted => String::new(),
        GuardOutcome::Changed { why, .. } | GuardOutcome::Refused { why } => ballast::engine::rule::join(why),
    }
}

#[test]
fn a_thousand_nodes_on_a_group_of_max_twenty_gets_twenty_and_says_why() {
    let (world, mut engine) =
        engine(json!([{"action": {"scale-to": {"group": "general", "size": 1000}}, "reason": "more!"}]), Mode::Enforce);
    run(&world, &mut engine, 1, 1);
    assert_eq!(desired(&world), 20);
    let records = decisions(&engine);
    let record = &records[0];
    assert_eq!(record.plugin, "scripted");
    assert_eq!(record.reason, "more!");
    match &record.guard {
        GuardOutcome::Changed { applied, why } => {
            assert_eq!(applied[0].to_string(), "scale general to 20");
            assert!(why[0].message.contains("max-size of 20 (asked 1000)"), "{why:?}");
        }
        other => panic!("expected a change, got {other:?}"),
    }
    assert_eq!(record.result, ActionResult::Done);

    // The next tick finds the group at its max: refused, and still 20.
    run(&world, &mut engine, 1, 1);
    let records = decisions(&engine);
    assert!(why(&records[1].guard).contains("already at its max-size of 20"), "{:?}", records[1].guard);
    assert_eq!(desired(&world), 20);
}

#[test]
fn removing_a_node_whose_pods_a_pdb_protects_is_refused_with_the_reason() {
    // Find where the database pods run (the world is the same for the same scenario and seed).
    let (world, _) = engine(json!([]), Mode::Enforce);
    let cluster = view(&world);
    let db_node = cluster.pods().find(|p| &**p.name == "db-00001").and_then(|p| p.node.cloned()).unwrap();
    let free_node = cluster
        .nodes
        .iter()
        .find(|n| !n.pods.shapes.iter().any(|s| s.shape.disruption_budget.is_some()))
        .map(|n| n.name.clone())
        .expect("a node without budgeted pods");

    let (world, mut engine) = engine(
        json!([{"action": {"remove-nodes": {"nodes": [&*db_node, &*free_node]}}, "reason": "idle"}]),
        Mode::Enforce,
    );
    run(&world, &mut engine, 1, 1);
    let record = &decisions(&engine)[0];
    match &record.guard {
        GuardOutcome::Changed { applied, why } => {
            assert_eq!(applied[0].to_string(), format!("remove {free_node}"));
            let why = ballast::engine::rule::join(why);
            assert!(why.contains(&format!("node {db_node}")), "{why}");
            assert!(why.contains("PodDisruptionBudget shop/db, which allows no disruption"), "{why}");
        }
        other => panic!("expected the PDB node to be dropped, got {other:?}"),
    }
    assert_eq!(record.result, ActionResult::Started);
    let cluster = view(&world);
    let node = |name: &str| cluster.nodes.iter().find(|n| &*n.name == name).cloned();
    assert!(!node(&db_node).unwrap().cordoned, "the protected node is untouched");

    // The free node drains and goes; its group shrinks by one.
    run(&world, &mut engine, 3, 10);
    assert!(view(&world).nodes.iter().all(|n| *n.name != *free_node), "the free node is gone");
    assert_eq!(desired(&world), 2);
    let completed = engine.recorder().records().any(|r| matches!(r, Record::Removal(r) if *r.node == *free_node));
    assert!(completed, "a removal record for {free_node}");
}

#[test]
fn daemonset_and_ebs_workloads_never_go_to_fargate() {
    let place = |kind: &str, ns: &str, name: &str| json!({"action": {"place": {"workload": {"kind": kind, "namespace": ns, "name": name}, "target": "fargate"}}, "reason": "cheaper"});
    let (world, mut engine) = engine(
        json!([
            place("daemon-set", "kube-system", "agent"),
            place("stateful-set", "shop", "db"),
            place("deployment", "shop", "web")
        ]),
        Mode::Enforce,
    );
    run(&world, &mut engine, 12, 10);
    let records = decisions(&engine);
    assert!(why(&records[0].guard).contains("cannot run on Fargate: a DaemonSet"), "{:?}", records[0].guard);
    assert!(
        why(&records[1].guard).contains("cannot run on Fargate: mounts an EBS-backed volume"),
        "{:?}",
        records[1].guard
    );
    assert_eq!(records[2].guard, GuardOutcome::Accepted, "web may go");

    let cluster = view(&world);
    let on_fargate = |workload: &str| {
        cluster
            .pods()
            .filter(|p| p.shape.owner.as_ref().is_some_and(|o| o.name == workload))
            .filter(|p| p.node.is_some_and(|n| n.starts_with("fargate-")))
            .count()
    };
    assert_eq!(on_fargate("agent"), 0);
    assert_eq!(on_fargate("db"), 0);
    assert_eq!(on_fargate("web"), 2, "the eligible workload moved, so the check above can see Fargate pods");
}

#[test]
fn dry_run_changes_nothing_and_records_everything() {
    let (world, mut engine) = engine(
        json!([
            {"action": {"scale-to": {"group": "general", "size": 10}}, "reason": "grow"},
            {"action": {"remove-nodes": {"nodes": ["general-0003"]}}, "reason": "shrink"},
            {"action": {"place": {"workload": {"kind": "deployment", "namespace": "shop", "name": "web"}, "target": "fargate"}}, "reason": "move"}
        ]),
        Mode::DryRun,
    );
    let before = view(&world);
    run(&world, &mut engine, 6, 10);
    let after = view(&world);
    assert_eq!(desired(&world), 3);
    assert_eq!(before.nodes.len(), after.nodes.len());
    assert!(after.nodes.iter().all(|n| !n.cordoned && !n.fargate));

    // Each decision's first time is a record; the five times after are folded into one
    // closing record per decision when its run ends (here, when the recorder is closed).
    engine.recorder().close_runs(0);
    let records = decisions(&engine);
    assert_eq!(records.len(), 6, "three decisions, each a first record and a closing one");
    let made: u64 = records.iter().map(|r| r.repeated.as_ref().map_or(1, |x| x.count - 1)).sum();
    assert_eq!(made, 18, "three decisions on each of six ticks");
    assert!(records.iter().all(|r| r.result == ActionResult::DryRun || r.result == ActionResult::NotApplied));
    assert!(records.iter().any(|r| r.reason == "grow" && r.guard == GuardOutcome::Accepted));
    let ticks = engine.recorder().records().filter(|r| matches!(r, Record::Tick(t) if t.mode == Mode::DryRun)).count();
    assert_eq!(ticks, 6);
}

#[test]
fn a_scale_down_below_running_instances_becomes_drained_removals() {
    let (world, mut engine) =
        engine(json!([{"action": {"scale-to": {"group": "general", "size": 1}}, "reason": "too big"}]), Mode::Enforce);
    run(&world, &mut engine, 1, 1);
    let record = &decisions(&engine)[0];
    match &record.guard {
        GuardOutcome::Changed { applied, why } => {
            assert!(applied.iter().any(|a| a.to_string().starts_with("remove general-")), "{applied:?}");
            assert!(ballast::engine::rule::join(why).contains("without draining"), "{why:?}");
        }
        other => panic!("expected removals instead, got {other:?}"),
    }
    // Desired capacity goes down only as drained nodes are terminated (a node holding nothing
    // but DaemonSet pods goes at once), never by a bare decrement.
    run(&world, &mut engine, 3, 10);
    let removed = engine.recorder().records().filter(|r| matches!(r, Record::Removal(_))).count() as u32;
    assert!(removed >= 1);
    assert_eq!(desired(&world), 3 - removed);
    assert_eq!(view(&world).nodes.len() as u32, 3 - removed);
}

#[test]
fn paused_runs_no_plugin_and_acts_on_nothing() {
    let (world, mut engine) =
        engine(json!([{"action": {"scale-to": {"group": "general", "size": 10}}, "reason": "grow"}]), Mode::Paused);
    run(&world, &mut engine, 3, 10);
    assert_eq!(desired(&world), 3);
    assert!(decisions(&engine).is_empty());
    engine.set_mode(Mode::Enforce);
    run(&world, &mut engine, 1, 1);
    assert_eq!(desired(&world), 10);
}

#[test]
fn a_group_that_cannot_launch_is_backed_off_and_policies_fall_back() {
    let scenario = r#"
name: backoff
duration: 1h
node-groups:
  - {id: cheap, instance-types: [c5.large], min-size: 0, max-size: 10, launch-failures: [{from: 0s, to: 1h}]}
  - {id: dear, instance-types: [m5.large], min-size: 0, max-size: 10}
workloads:
  - {name: web, requests: {cpu: 500m, memory: 512Mi}, replicas: {constant: 10}}
"#;
    let scenario = Scenario::parse(Path::new("backoff.yaml"), scenario).unwrap();
    let binpack = ballast::bundled::plugin("binpack").unwrap();
    let policy = PluginSpec {
        name: "binpack".into(),
        bytes: Arc::from(binpack.wasm),
        settings: serde_json::Value::Null,
        limits: PluginLimits::default(),
    };
    let sim = Simulation { scenario, seed: 1, policies: vec![policy], mode: Mode::Enforce, journal: None };
    let (world, mut engine) = sim.prepare(&host()).unwrap();
    run(&world, &mut engine, 60, 10);

    let records = decisions(&engine);
    assert!(records[0].proposed.to_string().starts_with("scale cheap to"), "c5 is cheaper: {:?}", records[0].proposed);
    let backoff = engine.recorder().records().find_map(|r| match r {
        Record::Tick(t) => t.saw.groups.iter().find(|g| g.id == "cheap" && g.backoff_until_millis.is_some()).cloned(),
        _ => None,
    });
    assert!(backoff.is_some(), "the failing group was backed off");
    assert!(records.iter().any(|r| r.proposed.to_string().starts_with("scale dear to")), "binpack fell back");
    let cluster = view(&world);
    let running: u32 = cluster.nodes.iter().filter(|n| n.name.starts_with("dear-")).map(|n| n.pods.count).sum();
    assert_eq!(running, 10, "every pod runs on the fallback group");
}

//! Property tests: random clusters, random engine state and random proposal lists (known and
//! unknown names, extreme sizes), and the promises that hold whatever a plugin says.
//!
//! `cargo test` runs 10,000 cases; `BALLAST_SOAK=1 cargo test -- --ignored guard_soak` runs
//! 200,000.

use std::collections::BTreeMap;

use ballast_sdk::{Action, PlacementTarget, WorkloadKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::fixture::{NOW, World, drain_since_now, group, node, pod, workload};
use crate::observe::FARGATE_GROUP;
use crate::ports::{FargateTraits, InstanceLifecycle, InstanceView};
use crate::state::GroupState;

/// What a generated group looks like.
#[derive(Clone, Debug)]
struct GroupSpec {
    min: u32,
    max: u32,
    desired: u32,
    /// Nodes running, each with its pod's CPU (none: an empty node) and whether something
    /// pins it.
    nodes: Vec<(Option<u64>, bool)>,
    last_scale_up_ago: Option<u64>,
    last_scale_down_ago: Option<u64>,
}

fn group_spec() -> impl Strategy<Value = GroupSpec> {
    (
        0u32..4,
        0u32..8,
        prop::collection::vec((prop::option::weighted(0.8, 0u64..2000), any::<bool>()), 0..8),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
    )
        .prop_flat_map(|(min, extra, nodes, up, down)| {
            let max = min + extra;
            (min..=max.max(min), Just((min, max, nodes, up, down)))
        })
        .prop_map(|(desired, (min, max, nodes, up, down))| GroupSpec {
            min,
            max,
            desired,
            nodes,
            last_scale_up_ago: up.map(|a| a % 1_200_000),
            last_scale_down_ago: down.map(|a| a % 60_000),
        })
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![(0usize..3).prop_map(|g| format!("g{g}")), Just(FARGATE_GROUP.to_string()), Just("ghost".to_string()),]
}

fn node_name() -> impl Strategy<Value = String> {
    prop_oneof![(0usize..3, 0usize..8).prop_map(|(g, n)| format!("g{g}-n{n}")), Just("ghost".to_string())]
}

fn action() -> impl Strategy<Value = Action> {
    let size = prop_oneof![0u32..12, Just(u32::MAX)];
    let delta = prop_oneof![-6i32..6, Just(i32::MIN), Just(i32::MAX)];
    let target = prop_oneof![
        Just(PlacementTarget::Fargate),
        Just(PlacementTarget::Ec2(None)),
        name().prop_map(|g| PlacementTarget::Ec2(Some(g))),
    ];
    let name_of = prop_oneof![Just("web"), Just("db"), Just("agent"), Just("ghost")];
    prop_oneof![
        (name(), size).prop_map(|(group, size)| Action::ScaleTo { group, size }),
        (name(), delta).prop_map(|(group, delta)| Action::ScaleBy { group, delta }),
        prop::collection::vec(node_name(), 0..5).prop_map(|nodes| Action::RemoveNodes { nodes }),
        (name_of, target).prop_map(|(w, target)| {
            let kind = if w == "agent" { WorkloadKind::DaemonSet } else { WorkloadKind::Deployment };
            Action::Place { workload: workload(kind, "shop", w), target }
        }),
    ]
}

/// A generated case: the cluster, the engine state, the guardrails, and the proposals.
#[derive(Clone, Debug)]
struct Scenario {
    groups: Vec<GroupSpec>,
    draining: Vec<(usize, usize)>,
    max_step_up: u32,
    max_step_down: u32,
    budget_percent: f64,
    /// A disruption window: open at `NOW` or not, and how many nodes it lets leave.
    window: Option<(bool, u32)>,
    fargate: bool,
    /// A cluster-wide limit on the managed groups' nodes.
    limit_nodes: Option<u32>,
    proposals: Vec<Action>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(group_spec(), 1..=3),
        prop::collection::vec((0usize..3, 0usize..8), 0..3),
        1u32..5,
        1u32..4,
        0.0f64..60.0,
        prop::option::of((any::<bool>(), 0u32..4)),
        any::<bool>(),
        prop::option::of(0u32..12),
        prop::collection::vec(action(), 0..10),
    )
        .prop_map(
            |(
                groups,
                draining,
                max_step_up,
                max_step_down,
                budget_percent,
                window,
                fargate,
                limit_nodes,
                proposals,
            )| {
                Scenario {
                    groups,
                    draining,
                    max_step_up,
                    max_step_down,
                    budget_percent,
                    window,
                    fargate,
                    limit_nodes,
                    proposals,
                }
            },
        )
}

fn world(s: &Scenario) -> World {
    let mut w = World { groups: Vec::new(), fargate: s.fargate, ..World::default() };
    w.cluster.nodes.clear();
    w.pods.clear();
    w.cluster.workloads[0].id = workload(WorkloadKind::Deployment, "shop", "web");
    w.cluster.workloads[1].id = workload(WorkloadKind::Deployment, "shop", "db");
    w.cluster.workloads[1].fargate_traits = FargateTraits { privileged: true, ..FargateTraits::default() };
    w.cluster.workloads[2].id = workload(WorkloadKind::DaemonSet, "shop", "agent");
    w.config.max_step_up = s.max_step_up;
    w.config.max_step_down = s.max_step_down;
    w.config.disruption_budget.percent = s.budget_percent;
    w.config.limits.nodes = s.limit_nodes;
    if let Some((open, nodes)) = s.window {
        // `NOW` is 04:00 UTC.
        let schedule = if open { "0 4 * * *" } else { "0 5 * * *" };
        let yaml = format!("{{schedule: '{schedule}', duration: 1h, nodes: {nodes}}}");
        w.config.disruption_budget.windows = vec![serde_yaml::from_str(&yaml).expect("a window")];
    }
    for (g, spec) in s.groups.iter().enumerate() {
        let id = format!("g{g}");
        let mut view = group(&id, spec.min, spec.max, spec.desired);
        for (n, (cpu, pinned)) in spec.nodes.iter().enumerate() {
            let (name, instance) = (format!("{id}-n{n}"), format!("i-{id}-{n}"));
            view.instances.push(InstanceView {
                id: instance.clone(),
                zone: "us-east-1a".into(),
                instance_type: "m5.large".into(),
                lifecycle: InstanceLifecycle::InService,
                image: None,
                template: None,
            });
            w.cluster.nodes.push(node(&name, Some(&instance), Some(&id)));
            if let Some(cpu) = cpu {
                let owner = (!pinned).then(|| workload(WorkloadKind::Deployment, "shop", "web"));
                w.pods.push(pod(&format!("{name}-pod"), Some(&name), owner, *cpu));
            }
        }
        w.groups.push(view);
        let state = GroupState {
            last_scale_up: spec.last_scale_up_ago.map(|a| NOW - a),
            last_scale_down: spec.last_scale_down_ago.map(|a| NOW - a),
            ..GroupState::default()
        };
        w.state.groups.insert(id, state);
    }
    for &(g, n) in &s.draining {
        let name = format!("g{g}-n{n}");
        if g < s.groups.len() && n < s.groups[g].nodes.len() {
            w.state.drains.insert(name, drain_since_now(&format!("g{g}"), &format!("i-g{g}-{n}")));
        }
    }
    w
}

/// The promises, checked on one generated case.
fn check(s: &Scenario) -> Result<(), TestCaseError> {
    let w = world(s);
    let obs = w.observe();
    let (plan, outcomes) = w.judge_observed(&obs, &s.proposals);
    prop_assert_eq!(outcomes.len(), s.proposals.len());

    for (group, &size) in &plan.scales {
        let facts = &obs.groups[group];
        prop_assert!(
            facts.min <= size && size <= facts.max,
            "{group} set to {size} outside [{}, {}]",
            facts.min,
            facts.max
        );
        prop_assert!(size <= facts.desired + w.config.max_step_up, "{group} grew past max-step-up");
        prop_assert!(size >= facts.instances.min(facts.desired), "{group} lowered below its running instances");
        prop_assert!(group != FARGATE_GROUP);
    }
    // No growth takes the managed groups past a cluster-wide node limit.
    let grown = plan.scales.iter().any(|(g, &size)| size > obs.groups[g].desired);
    let managed = obs.groups.iter().filter(|(_, f)| f.kind == ballast_sdk::NodeGroupKind::Asg);
    let total: u32 = managed.map(|(g, f)| plan.scales.get(g).copied().unwrap_or(0).max(f.desired)).sum();
    if let Some(limit) = w.config.limits.nodes.filter(|_| grown) {
        prop_assert!(total <= limit, "the groups grew to {total} nodes past the limit of {limit}");
    }
    let mut leaving: BTreeMap<&str, u32> = BTreeMap::new();
    for (node, group) in &plan.removals {
        *leaving.entry(group.as_str()).or_default() += 1;
        let (snapshot_node, facts) = obs.node(node).ok_or_else(|| TestCaseError::fail(format!("{node} unknown")))?;
        prop_assert!(
            snapshot_node.removal_blocker.is_none(),
            "{node} has a blocker: {:?}",
            snapshot_node.removal_blocker
        );
        prop_assert!(!w.state.drains.contains_key(node), "{node} already draining");
        prop_assert!(facts.instance_id.is_some() && facts.listed, "{node}'s instance is not in its group");
        prop_assert!(
            plan.scales.get(group).is_none_or(|&s| s <= obs.groups[group].desired),
            "{group} grows and shrinks"
        );
    }
    for (group, count) in &leaving {
        let facts = &obs.groups[*group];
        prop_assert!(*count <= w.config.max_step_down, "{group} loses {count} > max-step-down");
        let in_flight = w.state.draining_in(group) + count;
        prop_assert!(facts.desired.saturating_sub(in_flight) >= facts.min, "{group} would go below min-size");
    }
    let ec2_nodes = obs.snapshot.nodes.iter().filter(|n| n.group.as_deref() != Some(FARGATE_GROUP)).count();
    let allowed = w.config.disruption_budget.allowed(ec2_nodes);
    // Empty nodes disrupt nothing and are not held to the budget (`count-empty-nodes` off).
    let disrupting =
        plan.removals.iter().filter(|(n, _)| obs.node(n).is_some_and(|(_, f)| f.pods.must_move_count() > 0));
    let disrupting = disrupting.count();
    let in_flight = w.state.drains.len() + disrupting;
    prop_assert!(disrupting == 0 || in_flight <= allowed, "{in_flight} removals in flight, {allowed} allowed");
    if let Some((true, nodes)) = s.window {
        let leaving = w.state.drains.len() + plan.removals.len();
        prop_assert!(
            plan.removals.is_empty() || leaving <= nodes as usize,
            "{leaving} nodes leaving in a window that allows {nodes}"
        );
    }
    let mut removed = plan.removals.iter().map(|(n, _)| n).collect::<Vec<_>>();
    removed.sort();
    let before = removed.len();
    removed.dedup();
    prop_assert_eq!(before, removed.len(), "a node planned twice");

    for (workload, target) in &plan.placements {
        let found = obs.workload(workload).ok_or_else(|| TestCaseError::fail(format!("{workload} unknown")))?;
        if *target == PlacementTarget::Fargate {
            prop_assert!(w.fargate, "Fargate placement without a profile");
            prop_assert!(found.fargate_blocker.is_none(), "{workload} is Fargate-ineligible");
        }
    }
    Ok(())
}

fn run(cases: u32) {
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    if let Err(e) = runner.run(&scenario(), |s| check(&s)) {
        panic!("{e}");
    }
}

#[test]
fn no_proposal_breaks_a_guardrail_in_10_000_random_clusters() {
    run(10_000);
}

#[test]
#[ignore = "soak: 200,000 cases, about a minute"]
fn guard_soak() {
    run(200_000);
}

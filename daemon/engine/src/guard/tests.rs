//! The guardrails as a specification: one case per outcome of [`Guard::run`] and per removal
//! and Fargate blocker of the observation, each with the outcome kind, the rules that spoke
//! and the words a user reads. The fixture is described in [`super::fixture`].

use ballast_sdk::{Action, PlacementTarget};

use super::Plan;
use super::fixture::{NOW, World, db, node, web};
use crate::observe::FARGATE_GROUP;
use crate::record::GuardOutcome;
use crate::rule::{Rule, Why};
use crate::state::BackoffState;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Accepted,
    Changed,
    Refused,
}

/// What one proposal must come to.
pub(super) struct Expect {
    kind: Kind,
    /// Rules that must all be among those that spoke.
    rules: &'static [Rule],
    /// Words the reasons must contain.
    says: &'static str,
}

const fn accepted() -> Expect {
    Expect { kind: Kind::Accepted, rules: &[], says: "" }
}
const fn changed(rules: &'static [Rule], says: &'static str) -> Expect {
    Expect { kind: Kind::Changed, rules, says }
}
pub(super) const fn refused(rules: &'static [Rule], says: &'static str) -> Expect {
    Expect { kind: Kind::Refused, rules, says }
}

struct Case {
    name: &'static str,
    setup: fn(&mut World),
    proposals: fn() -> Vec<Action>,
    expect: Vec<Expect>,
}

pub(super) fn scale_to(group: &str, size: u32) -> Action {
    Action::ScaleTo { group: group.into(), size }
}
pub(super) fn remove(nodes: &[&str]) -> Action {
    Action::RemoveNodes { nodes: nodes.iter().map(|n| n.to_string()).collect() }
}
pub(super) fn place(workload: ballast_sdk::WorkloadRef, target: PlacementTarget) -> Action {
    Action::Place { workload, target }
}
fn nothing(_: &mut World) {}
/// A disruption window as a configuration file writes it.
pub(super) fn window(schedule: &str, duration: &str, nodes: &str) -> crate::window::DisruptionWindow {
    let yaml = format!("{{schedule: '{schedule}', duration: {duration}, nodes: '{nodes}'}}");
    serde_yaml::from_str(&yaml).expect("a window that reads")
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a scale-up within bounds",
            setup: nothing,
            proposals: || vec![scale_to("web", 6)],
            expect: vec![accepted()],
        },
        Case {
            name: "the size it has",
            setup: nothing,
            proposals: || vec![scale_to("web", 4)],
            expect: vec![accepted()],
        },
        Case {
            name: "an unknown group",
            setup: nothing,
            proposals: || vec![scale_to("nope", 3)],
            expect: vec![refused(&[Rule::UnknownGroup], "no node group `nope`; known: batch, fargate, web")],
        },
        Case {
            name: "a size for Fargate",
            setup: nothing,
            proposals: || vec![scale_to(FARGATE_GROUP, 3)],
            expect: vec![refused(&[Rule::FargateHasNoSize], "capacity follows pods")],
        },
        Case {
            name: "two targets for one group",
            setup: nothing,
            proposals: || vec![scale_to("web", 6), scale_to("web", 8)],
            expect: vec![refused(&[Rule::Superseded], "superseded by p1's larger target of 8"), accepted()],
        },
        Case {
            name: "a group backing off",
            setup: |w| {
                w.state.group("web").backoff =
                    Some(BackoffState { until: NOW + 60_000, reason: "launch failed: no capacity".into() })
            },
            proposals: || vec![scale_to("web", 6)],
            expect: vec![refused(
                &[Rule::BackingOff],
                "backing off for another 1m after a provisioning failure: launch failed",
            )],
        },
        Case {
            name: "a scale-up inside the scale-up cooldown",
            setup: |w| {
                w.config.cooldown.after_scale_up = std::time::Duration::from_secs(300);
                w.state.group("web").last_scale_up = Some(NOW - 60_000);
            },
            proposals: || vec![scale_to("web", 6)],
            expect: vec![refused(&[Rule::ScaleUpCooldown], "grew 1m ago; the scale-up cooldown is 5m")],
        },
        Case {
            name: "a group at its max-size",
            setup: |w| w.group_mut("web").desired_size = 10,
            proposals: || vec![scale_to("web", 12)],
            expect: vec![refused(&[Rule::AtMaxSize], "already at its max-size of 10")],
        },
        Case {
            name: "a target past max-size",
            setup: nothing,
            proposals: || vec![scale_to("web", 1000)],
            expect: vec![changed(&[Rule::ClampedToMaxSize], "clamped to the group's max-size of 10 (asked 1000)")],
        },
        Case {
            name: "a growth past max-step-up",
            setup: |w| w.config.max_step_up = 2,
            proposals: || vec![scale_to("web", 9)],
            expect: vec![changed(&[Rule::MaxStepUp], "limited to +2 nodes per tick")],
        },
        Case {
            name: "a growth past the cluster's node limit",
            setup: |w| w.config.limits.nodes = Some(6),
            proposals: || vec![scale_to("web", 9)],
            expect: vec![changed(
                &[Rule::ClusterLimit],
                "limited to +2 nodes by guardrails.limits.nodes = 6 nodes: the managed groups come to 4 nodes",
            )],
        },
        Case {
            name: "a cluster at its CPU limit",
            setup: |w| w.config.limits.cpu_millis = Some(9000),
            proposals: || vec![scale_to("web", 5)],
            expect: vec![refused(
                &[Rule::ClusterLimit],
                "at the cluster's limit, guardrails.limits.cpu = 9 CPU: the managed groups come to 8 CPU at their \
                 desired sizes, a node of group web adds 2 CPU",
            )],
        },
        Case {
            name: "two groups growing in one tick share a memory limit",
            setup: |w| w.config.limits.memory_bytes = Some(48 << 30),
            proposals: || vec![scale_to("batch", 2), scale_to("web", 6)],
            expect: vec![
                accepted(),
                refused(
                    &[Rule::ClusterLimit],
                    "guardrails.limits.memory = 48.0 GiB: the managed groups come to 48.0 GiB",
                ),
            ],
        },
        Case {
            name: "a group at its min-size",
            setup: |w| w.group_mut("web").min_size = 4,
            proposals: || vec![scale_to("web", 0)],
            expect: vec![refused(&[Rule::AtMinSize], "already at its min-size of 4")],
        },
        Case {
            name: "scale-by i32::MIN",
            setup: nothing,
            proposals: || vec![Action::ScaleBy { group: "web".into(), delta: i32::MIN }],
            expect: vec![changed(
                &[Rule::ClampedToMinSize, Rule::ConvertedToRemovals, Rule::PartialRemoval, Rule::DisruptionBudget],
                "clamped to the group's min-size of 1 (asked -2147483644)",
            )],
        },
        Case {
            name: "a scale-down while too many nodes are unready",
            setup: |w| {
                for i in 0..4 {
                    let mut sick = node(&format!("sick-{i}"), None, None);
                    sick.ready = false;
                    w.cluster.nodes.push(sick);
                }
            },
            proposals: || vec![scale_to("web", 3)],
            expect: vec![refused(&[Rule::UnreadyBrake], "4 of 8 nodes are unready (over 45%)")],
        },
        Case {
            name: "a scale-down soon after a scale-up",
            setup: |w| w.state.group("web").last_scale_up = Some(NOW - 60_000),
            proposals: || vec![scale_to("web", 3)],
            expect: vec![refused(&[Rule::ScaleDownAfterScaleUp], "grew 1m ago; scale-down waits 10m after a scale-up")],
        },
        Case {
            name: "a scale-down soon after a scale-down",
            setup: |w| w.state.group("web").last_scale_down = Some(NOW - 5_000),
            proposals: || vec![scale_to("web", 3)],
            expect: vec![refused(&[Rule::ScaleDownCooldown], "shrank 5s ago; the scale-down cooldown is 10s")],
        },
        Case {
            name: "a scale-down below the running instances",
            setup: nothing,
            proposals: || vec![scale_to("web", 3)],
            expect: vec![changed(
                &[Rule::ConvertedToRemovals],
                "draining the 1 least utilised removable node(s) instead",
            )],
        },
        Case {
            name: "a scale-down of capacity not yet launched",
            setup: |w| w.group_mut("web").desired_size = 6,
            proposals: || vec![scale_to("web", 5)],
            expect: vec![accepted()],
        },
        Case {
            name: "a scale-down with no removable node",
            setup: |w| {
                for i in 1..=4 {
                    w.template_mut(&format!("web-{i}")).safe_to_evict = Some(false);
                }
            },
            proposals: || vec![scale_to("web", 3)],
            expect: vec![refused(
                &[Rule::NoRemovableNode, Rule::RemovalBlocked],
                "no node of group web can be removed now",
            )],
        },
        Case {
            name: "a node the cluster does not have",
            setup: nothing,
            proposals: || vec![remove(&["ghost"])],
            expect: vec![refused(&[Rule::UnknownNode], "node ghost: not a node of the cluster")],
        },
        Case {
            name: "a node already draining",
            setup: |w| {
                w.draining("w1");
            },
            proposals: || vec![remove(&["w1"])],
            expect: vec![refused(&[Rule::AlreadyBeingRemoved], "node w1: already being removed")],
        },
        Case {
            name: "the same node twice in one tick",
            setup: |w| w.config.disruption_budget.min = 4,
            proposals: || vec![remove(&["w1", "w1"])],
            expect: vec![changed(&[Rule::AlreadyBeingRemoved], "node w1: already being removed")],
        },
        Case {
            name: "a node held by a PodDisruptionBudget",
            setup: |w| w.budget("web-2", 0),
            proposals: || vec![remove(&["w2"])],
            expect: vec![refused(
                &[Rule::RemovalBlocked],
                "PodDisruptionBudget shop/web-2-pdb, which allows no disruption",
            )],
        },
        Case {
            name: "a node without an instance",
            setup: |w| w.node_mut("w1").instance_id = None,
            proposals: || vec![remove(&["w1"])],
            expect: vec![refused(&[Rule::NoInstance], "no Auto Scaling group instance behind it")],
        },
        Case {
            name: "a node whose instance its group no longer lists",
            setup: |w| w.group_mut("web").instances.retain(|i| i.id != "i-w1"),
            proposals: || vec![remove(&["w1"])],
            expect: vec![refused(&[Rule::NoInstance], "its instance i-w1 is not listed by group web")],
        },
        Case {
            name: "a node of a group that grows this tick",
            setup: nothing,
            proposals: || vec![scale_to("web", 6), remove(&["w1"])],
            expect: vec![accepted(), refused(&[Rule::GroupGrowing], "group web is growing this tick")],
        },
        Case {
            name: "a removal that would go below min-size",
            setup: |w| w.group_mut("web").min_size = 4,
            proposals: || vec![remove(&["w1"])],
            expect: vec![refused(
                &[Rule::BelowMinSize],
                "would go below its min-size of 4 (4 desired, 0 already leaving)",
            )],
        },
        Case {
            name: "removals past max-step-down",
            setup: |w| {
                w.config.max_step_down = 1;
                w.config.disruption_budget.min = 4;
            },
            proposals: || vec![remove(&["w1", "w2"])],
            expect: vec![changed(&[Rule::MaxStepDown], "already loses 1 node(s) this tick (max-step-down)")],
        },
        Case {
            name: "removals past the disruption budget",
            setup: nothing,
            proposals: || vec![remove(&["w1", "w2"])],
            expect: vec![changed(
                &[Rule::DisruptionBudget],
                "disruption budget spent: 1 node(s) already being removed, 1 allowed",
            )],
        },
        Case {
            name: "a removal while a disruption window that allows none is open",
            setup: |w| w.config.disruption_budget.windows = vec![window("0 4 * * *", "1h", "0")],
            proposals: || vec![remove(&["w1"])],
            expect: vec![refused(
                &[Rule::DisruptionWindow],
                "node w1: disruption window `0 4 * * *` (1h, UTC) open since 1970-01-05T04:00:00Z allows 0 node(s) \
                 leaving, 0 already are",
            )],
        },
        Case {
            name: "removals past an open window's limit",
            setup: |w| {
                w.config.disruption_budget.min = 4;
                w.config.disruption_budget.windows =
                    vec![window("@daily", "8h", "1"), window("0 4 * * *", "1h", "50%")];
            },
            proposals: || vec![remove(&["w1", "w2"])],
            expect: vec![changed(&[Rule::DisruptionWindow], "node w2: disruption window `@daily` (8h, UTC)")],
        },
        Case {
            name: "a removal while an open window holds only drift replacement",
            setup: |w| {
                let mut drift_only = window("0 4 * * *", "1h", "0");
                drift_only.reasons = vec![crate::window::DisruptionReason::Drift];
                w.config.disruption_budget.windows = vec![drift_only];
            },
            proposals: || vec![remove(&["w1"])],
            expect: vec![accepted()],
        },
        Case {
            name: "a removal while the window is shut",
            setup: |w| w.config.disruption_budget.windows = vec![window("0 5 * * *", "1h", "0")],
            proposals: || vec![remove(&["w1"])],
            expect: vec![accepted()],
        },
        Case {
            name: "an unknown workload",
            setup: nothing,
            proposals: || {
                vec![place(
                    super::fixture::workload(ballast_sdk::WorkloadKind::Deployment, "shop", "nope"),
                    PlacementTarget::Fargate,
                )]
            },
            expect: vec![refused(&[Rule::UnknownWorkload], "no workload")],
        },
        Case {
            name: "a workload placed twice",
            setup: nothing,
            proposals: || {
                vec![place(web(), PlacementTarget::Fargate), place(web(), PlacementTarget::Ec2(Some("batch".into())))]
            },
            expect: vec![accepted(), refused(&[Rule::AlreadyPlaced], "was already placed this tick")],
        },
        Case {
            name: "Fargate without a profile",
            setup: |w| w.fargate = false,
            proposals: || vec![place(web(), PlacementTarget::Fargate)],
            expect: vec![refused(&[Rule::NoFargateProfile], "no Fargate profile configured")],
        },
        Case {
            name: "a Fargate-ineligible workload",
            setup: nothing,
            proposals: || vec![place(db(), PlacementTarget::Fargate)],
            expect: vec![refused(&[Rule::FargateIneligible], "cannot run on Fargate: mounts an EBS-backed volume")],
        },
        Case {
            name: "an EC2 group that does not exist",
            setup: nothing,
            proposals: || vec![place(web(), PlacementTarget::Ec2(Some("nope".into())))],
            expect: vec![refused(&[Rule::UnknownGroup], "no node group `nope`")],
        },
        Case {
            name: "the Fargate group as an EC2 target",
            setup: nothing,
            proposals: || vec![place(web(), PlacementTarget::Ec2(Some(FARGATE_GROUP.into())))],
            expect: vec![refused(&[Rule::NotEc2], "is Fargate, not EC2")],
        },
        Case {
            name: "a move inside the placement cooldown",
            setup: |w| {
                w.state.placed_at.insert(web(), NOW - 60_000);
            },
            proposals: || vec![place(web(), PlacementTarget::Fargate)],
            expect: vec![refused(&[Rule::PlacementCooldown], "was moved 1m ago; placements hold for 30m")],
        },
        Case {
            name: "a placement it already has, even in cooldown",
            setup: |w| {
                w.state.placed_at.insert(web(), NOW - 60_000);
            },
            proposals: || vec![place(web(), PlacementTarget::Ec2(None))],
            expect: vec![accepted()],
        },
    ]
}

pub(super) fn check(outcome: &GuardOutcome, expect: &Expect) -> Result<(), String> {
    let (kind, why): (Kind, &[Why]) = match outcome {
        GuardOutcome::Accepted => (Kind::Accepted, &[]),
        GuardOutcome::Changed { why, .. } => (Kind::Changed, why),
        GuardOutcome::Refused { why } => (Kind::Refused, why),
    };
    if kind != expect.kind {
        return Err(format!("expected {:?}, got {outcome:?}", expect.kind));
    }
    let rules = outcome.rules();
    if let Some(missing) = expect.rules.iter().find(|r| !rules.contains(r)) {
        return Err(format!("rule {missing:?} did not speak; rules {rules:?}"));
    }
    let text = crate::rule::join(why);
    if !text.contains(expect.says) {
        return Err(format!("reasons do not say {:?}: {text}", expect.says));
    }
    Ok(())
}

#[test]
fn every_guard_outcome_has_its_kind_rule_and_reason() {
    let mut failures = Vec::new();
    for case in cases() {
        let mut world = World::default();
        (case.setup)(&mut world);
        let (_, outcomes) = world.judge(&(case.proposals)());
        assert_eq!(outcomes.len(), case.expect.len(), "{}", case.name);
        for (i, (outcome, expect)) in outcomes.iter().zip(&case.expect).enumerate() {
            if let Err(e) = check(outcome, expect) {
                failures.push(format!("{} (proposal {i}): {e}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_rule_of_the_guard_is_covered_by_a_case() {
    let mut spoken = std::collections::BTreeSet::new();
    for case in cases() {
        for expect in &case.expect {
            spoken.extend(expect.rules.iter().copied());
        }
    }
    spoken.insert(Rule::GroupNotManaged); // below: needs an observation no adapter produces
    spoken.insert(Rule::Unrecorded); // old journals only
    let all = [
        Rule::UnknownGroup,
        Rule::FargateHasNoSize,
        Rule::Superseded,
        Rule::BackingOff,
        Rule::ScaleUpCooldown,
        Rule::AtMaxSize,
        Rule::ClampedToMaxSize,
        Rule::MaxStepUp,
        Rule::ClusterLimit,
        Rule::AtMinSize,
        Rule::ClampedToMinSize,
        Rule::UnreadyBrake,
        Rule::ScaleDownAfterScaleUp,
        Rule::ScaleDownCooldown,
        Rule::ConvertedToRemovals,
        Rule::PartialRemoval,
        Rule::NoRemovableNode,
        Rule::UnknownNode,
        Rule::AlreadyBeingRemoved,
        Rule::RemovalBlocked,
        Rule::NoInstance,
        Rule::GroupNotManaged,
        Rule::GroupGrowing,
        Rule::BelowMinSize,
        Rule::MaxStepDown,
        Rule::DisruptionBudget,
        Rule::DisruptionWindow,
        Rule::UnknownWorkload,
        Rule::AlreadyPlaced,
        Rule::NoFargateProfile,
        Rule::FargateIneligible,
        Rule::NotEc2,
        Rule::PlacementCooldown,
        Rule::Unrecorded,
    ];
    let missing: Vec<_> = all.iter().filter(|r| !spoken.contains(r)).collect();
    assert!(missing.is_empty(), "rules without a case: {missing:?}");
}

#[test]
fn a_node_whose_group_is_not_managed_is_refused() {
    let world = World::default();
    let mut obs = world.observe();
    obs.groups.remove("web");
    let (plan, outcomes) = world.judge_observed(&obs, &[remove(&["w1"])]);
    check(&outcomes[0], &refused(&[Rule::GroupNotManaged], "node w1: group web is not managed")).unwrap();
    assert!(plan.removals.is_empty());
}

#[test]
fn empty_nodes_go_together_past_the_disruption_budget_unless_it_counts_them() {
    let mut world = World::default();
    world.group_mut("web").min_size = 0;
    world.pods.retain(|p| !["web-1", "web-2"].contains(&&*p.name));
    let removed = |plan: &Plan| plan.removals.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();

    let (plan, outcomes) = world.judge(&[remove(&["w1", "w2", "w3", "w4"])]);
    assert_eq!(removed(&plan), ["w1", "w2", "w3"], "w1 and w2 run nothing to evict; w3 spends the budget of 1");
    check(&outcomes[0], &changed(&[Rule::DisruptionBudget], "node w4: disruption budget spent: 1 node(s)")).unwrap();

    world.draining("w4");
    let (plan, outcomes) = world.judge(&[remove(&["w3", "w1", "w2"])]);
    assert_eq!(removed(&plan), ["w1", "w2"], "w4's drain spends the budget; the empty nodes still go");
    check(&outcomes[0], &changed(&[Rule::DisruptionBudget], "node w3: disruption budget spent")).unwrap();

    world.config.disruption_budget.count_empty_nodes = true;
    let (plan, outcomes) = world.judge(&[remove(&["w1", "w2"])]);
    assert!(removed(&plan).is_empty(), "counted, the empty nodes wait for w4's drain");
    check(&outcomes[0], &refused(&[Rule::DisruptionBudget], "node w1: disruption budget spent")).unwrap();
}

#[test]
fn an_open_disruption_window_holds_empty_nodes_and_counts_drains_under_way() {
    let mut world = World::default();
    world.group_mut("web").min_size = 0;
    world.config.disruption_budget.min = 4;
    world.pods.retain(|p| !["web-1", "web-2"].contains(&&*p.name));
    world.config.disruption_budget.windows = vec![window("0 4 * * mon", "2h", "2")];
    let removed = |plan: &Plan| plan.removals.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();

    let (plan, outcomes) = world.judge(&[remove(&["w1", "w2", "w3"])]);
    assert_eq!(removed(&plan), ["w1", "w2"], "w1 and w2 are empty, yet the window counts them");
    check(&outcomes[0], &changed(&[Rule::DisruptionWindow], "node w3: disruption window `0 4 * * mon`")).unwrap();

    world.draining("w4");
    let (plan, outcomes) = world.judge(&[remove(&["w1", "w2"])]);
    assert_eq!(removed(&plan), ["w1"], "w4's drain is one of the two");
    check(&outcomes[0], &changed(&[Rule::DisruptionWindow], "allows 2 node(s) leaving, 2 already are")).unwrap();

    world.config.disruption_budget.windows = vec![window("0 4 * * tue", "2h", "0")];
    let (plan, _) = world.judge(&[remove(&["w1", "w2"])]);
    assert_eq!(removed(&plan), ["w1", "w2"], "Monday: Tuesday's window is shut");
}

#[test]
fn accepted_and_changed_proposals_form_the_plan() {
    let world = World::default();
    let (plan, _) = world.judge(&[scale_to("web", 1000), remove(&["w1"]), place(web(), PlacementTarget::Fargate)]);
    assert_eq!(plan.scales.get("web"), Some(&10));
    assert!(plan.removals.is_empty(), "web grows this tick: no removal");
    assert_eq!(plan.placements, vec![(web(), PlacementTarget::Fargate)]);

    let (plan, outcomes) = world.judge(&[scale_to("web", 3)]);
    assert_eq!(plan.removals, vec![("w1".to_string(), "web".to_string())], "the least used node goes");
    assert_eq!(outcomes[0].applied(&scale_to("web", 3)), vec![remove(&["w1"])]);
}

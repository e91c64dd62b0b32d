//! What the observation tells plugins, checked against what the guard then does: each removal
//! and Fargate blocker named on its node or workload, and the cooldowns the snapshot gives
//! are those the guard applies. The fixture is described in [`super::fixture`].

use ballast_sdk::{PlacementTarget, Resources, Snapshot as _};

use super::fixture::{NOW, World, web};
use super::tests::{check, place, refused, remove, scale_to, window};
use crate::ports::PassOver;
use crate::record::GuardOutcome;
use crate::rule::Rule;

/// One case per removal blocker the observation works out, with the words a plugin sees.
#[test]
fn every_removal_blocker_is_named_on_its_node() {
    type Setup = fn(&mut World);
    let cases: Vec<(&str, Setup, &str, &str)> = vec![
        ("Fargate node", |w| w.node_mut("w1").fargate = true, "w1", "a Fargate node: it goes when its pod does"),
        (
            "being removed",
            |w| {
                w.draining("w1");
            },
            "w1",
            "already being removed",
        ),
        (
            "scale-down disabled",
            |w| w.node_mut("w1").kept_by = Some("cluster-autoscaler.kubernetes.io/scale-down-disabled"),
            "w1",
            "annotated cluster-autoscaler.kubernetes.io/scale-down-disabled=true",
        ),
        (
            "do-not-disrupt node",
            |w| w.node_mut("w1").kept_by = Some("karpenter.sh/do-not-disrupt"),
            "w1",
            "annotated karpenter.sh/do-not-disrupt=true",
        ),
        (
            "no managed group",
            |w| {
                let n = w.node_mut("w1");
                n.instance_id = Some("i-elsewhere".into());
                n.group_label = None;
            },
            "w1",
            "not in a managed node group",
        ),
        (
            "an open disruption window with no room left",
            |w| {
                w.config.disruption_budget.windows = vec![window("0 4 * * *", "1h", "1")];
                w.draining("w4");
            },
            "w1",
            "disruption window `0 4 * * *` (1h, UTC) open since 1970-01-05T04:00:00Z allows 1 node(s) leaving, 1 already are",
        ),
        (
            "too young",
            |w| w.node_mut("w1").created_at_millis = NOW - 60_000,
            "w1",
            "only 1m old; nodes are kept at least 10m",
        ),
        ("safe-to-evict=false", |w| w.template_mut("web-1").safe_to_evict = Some(false), "w1", "safe-to-evict=false"),
        (
            "do-not-disrupt pod, though safe to evict",
            |w| {
                let template = w.template_mut("web-1");
                template.do_not_disrupt = true;
                template.safe_to_evict = Some(true);
            },
            "w1",
            "pod shop/web-1 is annotated karpenter.sh/do-not-disrupt=true",
        ),
        ("PDB allows none", |w| w.budget("web-1", 0), "w1", "which allows no disruption now"),
        (
            "PDB unknown",
            |w| w.pod_mut("web-1").disruption_budget = Some("ghost".into()),
            "w1",
            "its PodDisruptionBudget ghost is not known",
        ),
        ("no controller", |w| w.pod_mut("web-1").owner = None, "w1", "has no controller"),
        ("local storage", |w| w.template_mut("web-1").local_storage = true, "w1", "uses local storage"),
        (
            "a custom controller",
            |w| w.template_mut("web-1").custom_controller = Some("VirtualMachineInstance vm-1".into()),
            "w1",
            "pod shop/web-1 is controlled by VirtualMachineInstance vm-1, a custom controller",
        ),
        (
            "a pod nominated to run here",
            |w| {
                use crate::ports::{PassedOver, PassedOverPod};
                w.cluster.passed_over.push(PassedOverPod {
                    namespace: "shop".into(),
                    name: "urgent-1".into(),
                    passed_over: PassedOver { reason: PassOver::Nominated, why: "".into(), node: Some("w1".into()) },
                });
            },
            "w1",
            "pod shop/urgent-1 is nominated to run here once the lower-priority pods it preempts leave",
        ),
        (
            "a pod kept beside another workload's pods",
            |w| w.cluster.workloads[0].kept_beside = vec![super::fixture::db()],
            "w1",
            "pod shop/web-1 is kept on a node running pods of stateful-set/shop/db (a required pod affinity",
        ),
        (
            "kube-system without PDB",
            |w| w.pod_mut("web-1").namespace = "kube-system".into(),
            "w1",
            "kube-system pod without a PodDisruptionBudget",
        ),
        (
            "unreadable requests",
            |w| w.pod_mut("web-1").unreadable = Some("spec.containers[c].resources.requests.cpu = \"12x\"".into()),
            "w1",
            "\"12x\"; its needs are unknown",
        ),
    ];
    let mut failures = Vec::new();
    for (name, setup, node, says) in cases {
        let mut world = World::default();
        setup(&mut world);
        let obs = world.observe();
        let blocker = obs.snapshot.nodes.iter().find(|n| n.name == node).and_then(|n| n.removal_blocker.clone());
        match &blocker {
            Some(b) if b.contains(says) => {}
            other => failures.push(format!("{name}: expected {says:?}, got {other:?}")),
        }
        let (plan, _) = world.judge_observed(&obs, &[remove(&[node])]);
        if !plan.removals.is_empty() {
            failures.push(format!("{name}: the blocked node was planned for removal"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // safe-to-evict=true lets a pod without a controller go, and a DaemonSet or mirror pod
    // never blocks.
    let mut world = World::default();
    world.pod_mut("web-1").owner = None;
    world.template_mut("web-1").safe_to_evict = Some(true);
    assert_eq!(world.observe().snapshot.nodes[0].removal_blocker, None);
}

/// With Cluster Autoscaler's `--skip-nodes-with-local-storage=false`,
/// `--skip-nodes-with-system-pods=false` and `--skip-nodes-with-custom-controller-pods=false`
/// (Karpenter's behaviour), none keeps a node; the other blockers still do.
#[test]
fn local_storage_system_and_custom_controller_pods_keep_no_node_when_the_guardrails_say_so() {
    let blocked = |local: bool, system: bool, custom: bool| {
        let mut world = World::default();
        world.config.skip_nodes_with_local_storage = local;
        world.config.skip_nodes_with_system_pods = system;
        world.config.skip_nodes_with_custom_controller_pods = custom;
        world.template_mut("web-1").local_storage = true;
        world.pod_mut("web-2").namespace = "kube-system".into();
        world.template_mut("web-3").custom_controller = Some("VirtualMachineInstance vm-1".into());
        let obs = world.observe();
        let blocker =
            |node: &str| obs.snapshot.nodes.iter().find(|n| n.name == node).and_then(|n| n.removal_blocker.clone());
        [blocker("w1").is_some(), blocker("w2").is_some(), blocker("w3").is_some()]
    };
    assert_eq!(blocked(true, true, true), [true, true, true]);
    assert_eq!(blocked(false, true, true), [false, true, true]);
    assert_eq!(blocked(true, false, true), [true, false, true]);
    assert_eq!(blocked(true, true, false), [true, true, false]);
    let mut world = World::default();
    world.template_mut("web-3").custom_controller = Some("VirtualMachineInstance vm-1".into());
    world.template_mut("web-3").safe_to_evict = Some(true);
    assert_eq!(world.observe().snapshot.nodes[2].removal_blocker, None, "safe-to-evict=true lets it go");
    let mut world = World::default();
    world.config.skip_nodes_with_local_storage = false;
    world.template_mut("web-1").local_storage = true;
    world.template_mut("web-1").safe_to_evict = Some(false);
    let (plan, _) = world.judge(&[remove(&["w1"])]);
    assert!(plan.removals.is_empty(), "safe-to-evict=false still keeps it");
}

/// An expendable pod (priority below the cutoff) keeps no node, whatever would block
/// another pod: a budget allowing no disruption, no controller, local storage. The node
/// counts as empty, and plugins see neither its requests nor its shape.
#[test]
fn an_expendable_pod_keeps_no_node_and_holds_no_room() {
    let mut world = World::default();
    world.budget("web-1", 0);
    let pod = world.pod_mut("web-1");
    pod.expendable = true;
    pod.owner = None;
    world.template_mut("web-1").local_storage = true;
    let obs = world.observe();
    let w1 = obs.snapshot.nodes.iter().find(|n| n.name == "w1").expect("w1");
    assert_eq!((w1.removal_blocker.as_deref(), w1.requested.cpu_millis, w1.pod_count), (None, 0, 0));
    let shapes = obs.snapshot.pods_on_node("w1");
    assert!(shapes.is_empty(), "the expendable pod is not offered to be moved: {shapes:?}");
    let (plan, _) = world.judge_observed(&obs, &[remove(&["w1"])]);
    assert_eq!(plan.removals, [("w1".to_string(), "web".to_string())]);
}

#[test]
fn every_fargate_blocker_is_named_on_its_workload() {
    use crate::ports::FargateTraits;
    let traits = |f: &dyn Fn(&mut FargateTraits)| {
        let mut t = FargateTraits::default();
        f(&mut t);
        t
    };
    let cases = [
        ("EBS", traits(&|t| t.ebs_volume = true), "mounts an EBS-backed volume"),
        ("privileged", traits(&|t| t.privileged = true), "runs a privileged container"),
        ("hostNetwork", traits(&|t| t.host_network = true), "uses hostNetwork or hostPort"),
        ("GPU", traits(&|t| t.gpu = true), "requests GPUs"),
        ("platform", traits(&|t| t.unsupported_platform = true), "selects Arm or Windows nodes"),
        (
            "owner's pin",
            traits(&|t| t.pinned_by_owner = Some("payments".into())),
            "pinned to node group `payments` by its own nodeSelector",
        ),
    ];
    for (name, traits, says) in cases {
        let mut world = World::default();
        world.cluster.workloads[0].fargate_traits = traits;
        let obs = world.observe();
        let blocker = obs.workload(&web()).and_then(|w| w.fargate_blocker.clone());
        assert!(blocker.as_deref().is_some_and(|b| b.contains(says)), "{name}: {blocker:?}");
        let (plan, outcomes) = world.judge_observed(&obs, &[place(web(), PlacementTarget::Fargate)]);
        assert!(plan.placements.is_empty(), "{name}");
        check(&outcomes[0], &refused(&[Rule::FargateIneligible], says)).unwrap();
    }
    let world = World::default();
    let agent = super::fixture::workload(ballast_sdk::WorkloadKind::DaemonSet, "kube-system", "agent");
    let (_, outcomes) = world.judge(&[place(agent, PlacementTarget::Fargate)]);
    check(&outcomes[0], &refused(&[Rule::FargateIneligible], "a DaemonSet")).unwrap();
}

/// A workload whose pods Fargate would not start (more disk than it gives a pod, more CPU or
/// memory than its largest size) is not placed there: its pods would wait for ever.
#[test]
fn a_workload_larger_than_fargate_runs_is_not_placed_there() {
    const GIB: u64 = 1 << 30;
    let disk = |gib: u64| Resources { ephemeral_storage_bytes: gib * GIB, ..Resources::pod(500, GIB) };
    let cases = [
        ("175Gi of disk", disk(175), None),
        ("176Gi of disk", disk(176), Some("asks 176Gi of ephemeral storage a pod, more than Fargate's 175Gi")),
        ("32 CPUs", Resources::pod(32_000, GIB), Some("more than Fargate's largest size (16 cpu / 120Gi memory)")),
        ("120Gi of memory", Resources::pod(1000, 120 * GIB), Some("less its overhead")),
    ];
    for (name, requests, says) in cases {
        let mut world = World::default();
        world.cluster.workloads[0].requests_per_replica = requests;
        let obs = world.observe();
        let blocker = obs.workload(&web()).and_then(|w| w.fargate_blocker.clone());
        let (plan, outcomes) = world.judge_observed(&obs, &[place(web(), PlacementTarget::Fargate)]);
        match says {
            None => assert_eq!((blocker, plan.placements.len()), (None, 1), "{name}"),
            Some(says) => {
                assert!(blocker.as_deref().is_some_and(|b| b.contains(says)), "{name}: {blocker:?}");
                assert!(plan.placements.is_empty(), "{name}");
                check(&outcomes[0], &refused(&[Rule::FargateIneligible], says)).unwrap();
            }
        }
    }
}

/// What the snapshot tells plugins of a group's cooldowns (contract 0.1.6) is what the guard
/// then judges: a shrink is refused for a cooldown exactly while the snapshot says it is not
/// allowed yet, and likewise a growth.
#[test]
fn the_cooldowns_plugins_read_are_those_the_guard_applies() {
    let cooldown_rules = [Rule::ScaleDownAfterScaleUp, Rule::ScaleDownCooldown, Rule::ScaleUpCooldown];
    let minutes = [None, Some(0), Some(1), Some(9), Some(10), Some(11), Some(30)];
    let mut checked = 0;
    for up in minutes {
        for down in minutes {
            let mut world = World::default();
            world.config.cooldown.after_scale_up = std::time::Duration::from_secs(300);
            let state = world.state.group("web");
            state.last_scale_up = ago(up);
            state.last_scale_down = ago(down);
            let obs = world.observe();
            let told = ballast_sdk::Snapshot::cooldown_of(&*obs.snapshot, "web").cloned().unwrap();
            assert_eq!((told.last_scale_up_millis, told.last_scale_down_millis), (ago(up), ago(down)));
            let (_, shrink) = world.judge_observed(&obs, &[scale_to("web", 3)]);
            let (_, grow) = world.judge_observed(&obs, &[scale_to("web", 6)]);
            let outcomes = [&shrink[0], &grow[0]];
            let by_cooldown = |o: &GuardOutcome| {
                matches!(o, GuardOutcome::Refused { .. }) && o.rules().iter().any(|r| cooldown_rules.contains(r))
            };
            assert_eq!(by_cooldown(outcomes[0]), !told.may_shrink(NOW), "up {up:?} down {down:?}: {outcomes:?}");
            assert_eq!(by_cooldown(outcomes[1]), NOW < told.scale_up_allowed_at_millis, "up {up:?}: {outcomes:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 49);
}

/// What the snapshot tells plugins of a workload's placement cooldown (contract 0.1.8) is
/// what the guard then judges: a move is refused for it exactly while the snapshot says the
/// workload may not move.
#[test]
fn the_placement_cooldown_plugins_read_is_the_one_the_guard_applies() {
    for minutes in [None, Some(0), Some(1), Some(29), Some(30), Some(31), Some(120)] {
        let mut world = World::default();
        if let Some(at) = ago(minutes) {
            world.state.placed_at.insert(web(), at);
        }
        let obs = world.observe();
        let may = ballast_sdk::Snapshot::may_place(&*obs.snapshot, &web());
        let listed = obs.snapshot.placement_cooldowns.iter().any(|c| c.workload == web());
        assert_eq!(listed, !may, "{minutes:?}: listed only while it holds");
        let (_, outcomes) = world.judge_observed(&obs, &[place(web(), PlacementTarget::Fargate)]);
        let refused = outcomes[0].rules().contains(&Rule::PlacementCooldown);
        assert_eq!(refused, !may, "{minutes:?} minutes ago: {outcomes:?}");
    }
}

fn ago(minutes: Option<u64>) -> Option<u64> {
    minutes.map(|m| NOW - m * 60_000)
}

/// A workload kept spread over zones is listed with its skew and its pods on the nodes of
/// each zone (a Fargate node's aside); a workload without the rule is not listed.
#[test]
fn a_workload_kept_spread_over_zones_is_told_with_its_pods_by_zone() {
    let mut world = World::default();
    world.cluster.workloads[0].max_zone_skew = Some(2);
    world.node_mut("w3").zone = "us-east-1b".into();
    world.node_mut("w4").zone = "us-east-1b".into();
    world.node_mut("w4").fargate = true;
    let obs = world.observe();
    let spreads = obs.snapshot.zone_spreads();
    assert_eq!(spreads.len(), 1, "{spreads:?}");
    assert_eq!((&spreads[0].workload, spreads[0].max_skew), (&web(), 2));
    let by_zone: Vec<(&str, u32)> = spreads[0].pods_by_zone.iter().map(|z| (z.zone.as_str(), z.pods)).collect();
    assert_eq!(by_zone, [("us-east-1a", 2), ("us-east-1b", 1)]);
}

/// A workload kept spread over nodes is told as the cap per node it sets now: the fewest of
/// its pods on a node that counts, plus its skew. Nodes being removed do not count, nor those
/// whose group's labels refuse its pods; a tainted one does, as the scheduler counts it.
#[test]
fn a_workload_kept_spread_over_nodes_is_told_the_cap_its_fewest_node_sets() {
    let cap = web_cap;
    let mut world = World::default();
    assert_eq!(cap(&world), None, "no spread, no cap");
    world.cluster.workloads[0].max_node_skew = Some(1);
    assert_eq!(cap(&world), Some(2), "one web pod on each of w1..w4");
    for (i, node) in ["w1", "w2", "w3"].into_iter().enumerate() {
        world.pods.push(super::fixture::pod(&format!("web-{}", i + 5), Some(node), Some(web()), 100));
    }
    assert_eq!(cap(&world), Some(2), "w4 still runs one");
    world.draining("w4");
    assert_eq!(cap(&world), Some(3), "w4 is being removed: the others run two");
    world.cluster.nodes.push(super::fixture::node("b1", None, Some("batch")));
    assert_eq!(cap(&world), Some(1), "b1 runs none of them");
    world.group_mut("batch").taints.push(ballast_sdk::Taint {
        key: "dedicated".into(),
        value: "batch".into(),
        effect: ballast_sdk::TaintEffect::NoSchedule,
    });
    assert_eq!(cap(&world), Some(1), "a taint does not keep b1 from counting");
    world.group_mut("web").labels.insert("pool".into(), "web".into());
    for pod in world.pods.iter_mut().filter(|p| p.owner.as_deref() == Some(&web())) {
        std::sync::Arc::make_mut(&mut pod.template).node_selector.insert("pool".into(), "web".into());
    }
    assert_eq!(cap(&world), Some(3), "batch's labels refuse web's pods: b1 does not count");
    world.cluster.nodes.push(super::fixture::node("x1", None, None));
    assert_eq!(cap(&world), Some(1), "a node of no known group counts");
    world.cluster.workloads[0].max_per_node = Some(1);
    world.cluster.nodes.pop();
    assert_eq!(cap(&world), Some(1), "kept apart as well: the tighter holds");
}

/// Pods of a spread workload waiting for a node fill the nodes with the fewest first, as the
/// scheduler does, and the cap told is the one after; a node they may not go to keeps the
/// fewest where it is.
#[test]
fn a_spread_workload_s_waiting_pods_raise_its_cap_as_they_fill_the_nodes_with_the_fewest() {
    let mut world = World::default();
    world.cluster.workloads[0].max_node_skew = Some(1);
    world.cluster.nodes.push(super::fixture::node("w5", None, Some("web")));
    assert_eq!(web_cap(&world), Some(1), "w5 runs none of them");
    for i in 0..3 {
        world.pods.push(super::fixture::pod(&format!("web-new-{i}"), None, Some(web()), 100));
    }
    assert_eq!(web_cap(&world), Some(2), "the first goes to w5, and then every node runs one");
    world.node_mut("w5").ready = false;
    assert_eq!(web_cap(&world), Some(2), "w5 still boots: it takes the first once Ready");
    world.node_mut("w5").unready_since_millis = Some(NOW);
    assert_eq!(web_cap(&world), Some(1), "w5 was lost: it takes none, and still counts");
    world.node_mut("w5").ready = true;
    world.node_mut("w5").cordoned = true;
    assert_eq!(web_cap(&world), Some(1), "none goes to a cordoned w5, which still counts");
}

/// A spread's `minDomains`: while fewer nodes count, the scheduler takes the fewest as none.
/// The waiting pods are planned over the nodes still missing, not `maxSkew` a node; with none
/// waiting the cap is the skew alone, and so it is with just as many counting, since a node
/// that went would leave too few for its pods to go anywhere but where fewer than the skew
/// run. Once more count, the fewest is read again.
#[test]
fn a_spread_s_min_domains_holds_the_cap_to_its_skew_while_too_few_nodes_count() {
    let mut world = World::default();
    world.cluster.workloads[0].max_node_skew = Some(1);
    world.cluster.workloads[0].min_node_domains = Some(5);
    for i in 0..3 {
        world.pods.push(super::fixture::pod(&format!("web-new-{i}"), None, Some(web()), 100));
    }
    assert_eq!(web_cap(&world), Some(3), "four nodes count, five must: the three go to the one missing");
    world.cluster.workloads[0].min_node_domains = Some(7);
    assert_eq!(web_cap(&world), Some(1), "three missing: one each");
    world.pods.retain(|p| p.node.is_some());
    assert_eq!(web_cap(&world), Some(1), "none waits: the skew alone");
    for i in 0..3 {
        world.pods.push(super::fixture::pod(&format!("web-new-{i}"), None, Some(web()), 100));
    }
    world.cluster.workloads[0].min_node_domains = Some(5);
    world.cluster.nodes.push(super::fixture::node("w5", None, Some("web")));
    assert_eq!(web_cap(&world), Some(2), "five count: the first goes to w5, then each runs one");
    world.pods.retain(|p| p.node.is_some());
    world.pods.push(super::fixture::pod("web-5", Some("w5"), Some(web()), 100));
    assert_eq!(web_cap(&world), Some(1), "each runs one and none waits: one node going would leave four");
    world.cluster.nodes.push(super::fixture::node("w6", None, Some("web")));
    world.pods.push(super::fixture::pod("web-6", Some("w6"), Some(web()), 100));
    assert_eq!(web_cap(&world), Some(2), "six count, each runs one");
}

/// A pod of a spread workload evicted by a drain waits while the drained node stands: the
/// scheduler counts it as the node with the fewest, none, until it is gone. One that will
/// then fit on another node's room is told as passed over, not pending, so no policy buys a
/// node for it; one that will not fit stays pending.
#[test]
fn a_spread_pod_that_waits_only_for_a_drained_node_to_go_is_not_waiting_for_capacity() {
    let mut world = World::default();
    world.cluster.workloads[0].max_node_skew = Some(1);
    world.pods.retain(|p| p.node.as_deref() != Some("w4"));
    world.pods.push(super::fixture::pod("web-new", None, Some(web()), 100));
    let pending = |world: &World| {
        let obs = world.observe();
        let passed: Vec<_> = obs.passed_over.iter().map(|p| (p.name.to_string(), p.passed_over.reason)).collect();
        (obs.snapshot.pending_pods.iter().map(|p| p.name.clone()).collect::<Vec<_>>(), passed)
    };
    assert_eq!(pending(&world), (vec!["web-new".to_string()], vec![]), "no node is being removed");
    world.draining("w4");
    assert_eq!(pending(&world), (vec![], vec![("web-new".to_string(), PassOver::AwaitsRemoval)]));
    world.cluster.workloads[0].node_inclusion.honors_taints = true;
    assert_eq!(pending(&world).1, vec![], "w4, cordoned, does not count when taints are honoured");
    world.cluster.workloads[0].node_inclusion.honors_taints = false;
    for node in ["w1", "w2", "w3"] {
        world.node_mut(node).allocatable.cpu_millis = 100;
    }
    assert_eq!(pending(&world).0, vec!["web-new".to_string()], "no room for it on the others");
}

/// A workload kept spread over more zones (its `minDomains`) than its pods may run in: the
/// zones hold at most `maxSkew` each, and the waiting pods past that are passed over as
/// unplaceable, named with the zones there are. Room a zone still has keeps the first of
/// them pending; a group in another zone takes them all back, and so does a placement on
/// Fargate (Fargate's mere eligibility does not: on EC2 they wait).
#[test]
fn pods_kept_spread_over_more_zones_than_there_are_are_passed_over() {
    let mut world = World::default();
    world.cluster.workloads[0].max_zone_skew = Some(1);
    world.cluster.workloads[0].min_zone_domains = Some(2);
    world.cluster.workloads[0].fargate_traits.privileged = true;
    for i in 0..2 {
        world.pods.push(super::fixture::pod(&format!("web-new-{i}"), None, Some(web()), 100));
    }
    let split = |world: &World| {
        let obs = world.observe();
        let pending: Vec<String> = obs.snapshot.pending_pods.iter().map(|p| p.name.clone()).collect();
        let passed: Vec<(String, PassOver, String)> = obs
            .passed_over
            .iter()
            .map(|p| (p.name.to_string(), p.passed_over.reason, p.passed_over.why.to_string()))
            .collect();
        (pending, passed)
    };
    let (pending, passed) = split(&world);
    assert!(pending.is_empty(), "{pending:?}");
    assert_eq!(passed.len(), 2, "{passed:?}");
    assert_eq!(passed[0].1, PassOver::TooFewZones);
    let why = "kept spread over at least 2 zones (minDomains), but the nodes and groups its pods may run on are in 1 \
               (us-east-1a): until 2 count the scheduler puts at most 1 in a zone, so at most 1 run";
    assert!(passed[0].2.starts_with(why), "{}", passed[0].2);
    world.cluster.workloads[0].max_zone_skew = Some(5);
    let (pending, passed) = split(&world);
    assert_eq!((pending, passed.len()), (vec!["web-new-0".to_string()], 1), "four run, five may");
    world.group_mut("web").zones.push("us-east-1b".into());
    let both = vec!["web-new-0".to_string(), "web-new-1".to_string()];
    assert_eq!(split(&world), (both.clone(), vec![]), "two zones count");
    world.group_mut("web").zones.pop();
    world.cluster.workloads[0].fargate_traits.privileged = false;
    assert_eq!(split(&world).1.len(), 1, "Fargate may run them, but they are placed on EC2");
    world.cluster.workloads[0].placement = ballast_sdk::Placement::Fargate;
    assert_eq!(split(&world), (both, vec![]), "placed on Fargate, they go there");
}

/// The most web pods the snapshot says one node may run, if it says.
fn web_cap(world: &World) -> Option<u32> {
    let obs = world.observe();
    let limits = obs.snapshot.per_node_limits();
    assert!(limits.iter().all(|l| l.workload == web()), "{limits:?}");
    limits.first().map(|l| l.max_pods)
}

/// A spread that honours taints (`nodeTaintsPolicy: Honor`) does not count a node whose
/// taints its pods do not tolerate, nor a cordoned one; one that ignores node affinity
/// (`nodeAffinityPolicy: Ignore`) counts a node whatever its labels.
#[test]
fn a_spread_s_node_policies_decide_which_nodes_count() {
    let mut world = World::default();
    world.cluster.workloads[0].max_node_skew = Some(1);
    world.cluster.nodes.push(super::fixture::node("b1", None, Some("batch")));
    world.group_mut("batch").taints.push(ballast_sdk::Taint {
        key: "dedicated".into(),
        value: "batch".into(),
        effect: ballast_sdk::TaintEffect::NoSchedule,
    });
    assert_eq!(web_cap(&world), Some(1), "by default b1 counts, tainted and running none");
    world.cluster.workloads[0].node_inclusion.honors_taints = true;
    assert_eq!(web_cap(&world), Some(2), "honouring taints, b1 does not count");
    world.cluster.nodes.push(super::fixture::node("w5", None, Some("web")));
    world.node_mut("w5").cordoned = true;
    assert_eq!(web_cap(&world), Some(2), "nor a cordoned w5");
    world.cluster.workloads[0].node_inclusion.honors_taints = false;
    assert_eq!(web_cap(&world), Some(1), "taints ignored, w5 and b1 count");
    world.cluster.nodes.retain(|n| &*n.name != "w5");
    world.group_mut("web").labels.insert("pool".into(), "web".into());
    for pod in world.pods.iter_mut().filter(|p| p.owner.as_deref() == Some(&web())) {
        std::sync::Arc::make_mut(&mut pod.template).node_selector.insert("pool".into(), "web".into());
    }
    assert_eq!(web_cap(&world), Some(2), "batch's labels refuse web's pods: b1 does not count");
    world.cluster.workloads[0].node_inclusion.ignores_affinity = true;
    assert_eq!(web_cap(&world), Some(1), "ignoring node affinity, b1 counts");
}

/// A rule one workload's template holds against another's pods reaches policies under both
/// workloads, as the scheduler checks it from both sides; a rule against a workload no one
/// observes, or against the workload's own pods (a per-node limit), pairs nothing.
#[test]
fn a_workload_kept_off_anothers_nodes_is_told_under_both() {
    let mut world = World::default();
    let (web, db) = (world.cluster.workloads[0].id.clone(), world.cluster.workloads[1].id.clone());
    let gone = ballast_sdk::WorkloadRef { name: "gone".into(), ..web.clone() };
    world.cluster.workloads[0].kept_away = vec![db.clone(), gone, web.clone()];
    let obs = world.observe();
    let told: Vec<(String, Vec<String>)> = (obs.snapshot.kept_away().iter())
        .map(|k| (k.workload.name.clone(), k.apart_from.iter().map(|o| o.name.clone()).collect()))
        .collect();
    assert_eq!(told, [("web".to_string(), vec!["db".to_string()]), ("db".to_string(), vec!["web".to_string()])]);
    assert_eq!(obs.snapshot.kept_away_from(&db), std::slice::from_ref(&web));
    world.cluster.workloads[1].kept_away = vec![web.clone()];
    assert_eq!(world.observe().snapshot.kept_away().len(), 2, "a rule on each side is one pair");
    world.cluster.workloads[0].kept_away.clear();
    world.cluster.workloads[1].kept_away.clear();
    assert!(world.observe().snapshot.kept_away().is_empty());
}

/// A workload kept in the zones of db's pods (a required pod affinity on the zone): while
/// db's pods all run in one zone, its waiting pods and its pods on nodes select that zone,
/// so no group of another zone is grown for them and no move takes them out of it; where
/// db runs in two zones, or nowhere, nothing is pinned, and a zone the pod selects itself
/// is kept.
#[test]
fn pods_kept_in_the_zone_of_anothers_pods_select_that_zone() {
    let mut world = World::default();
    world.cluster.workloads[0].zone_affinity = vec![super::fixture::db()];
    world.pods.push(super::fixture::pod("web-new", None, Some(web()), 100));
    world.pods.push(super::fixture::pod("db-0", Some("w2"), Some(super::fixture::db()), 100));
    world.node_mut("w2").zone = "us-east-1b".into();
    let zones = |world: &World| {
        let obs = world.observe();
        let pending = obs.snapshot.pending_pods.iter().find(|p| &*p.name == "web-new").map(|p| p.node_selector.clone());
        let on_w1 = obs.snapshot.pods_on_node("w1").into_iter().find(|s| s.owner == Some(web()));
        let zone = |selector: Option<std::collections::BTreeMap<String, String>>| {
            selector.and_then(|s| s.get("topology.kubernetes.io/zone").cloned())
        };
        (zone(pending), zone(on_w1.map(|s| s.node_selector)))
    };
    let b = Some("us-east-1b".to_string());
    assert_eq!(zones(&world), (b.clone(), b.clone()));
    world.pods.push(super::fixture::pod("db-1", Some("w3"), Some(super::fixture::db()), 100));
    assert_eq!(zones(&world), (None, None), "db runs in two zones");
    world.pods.retain(|p| p.owner.as_deref() != Some(&super::fixture::db()));
    assert_eq!(zones(&world), (None, None), "db runs nowhere");
    world.pods.push(super::fixture::pod("db-0", Some("w2"), Some(super::fixture::db()), 100));
    world.template_mut("web-new").node_selector.insert("topology.kubernetes.io/zone".into(), "us-east-1c".into());
    assert_eq!(zones(&world).0, Some("us-east-1c".to_string()), "its own zone selector stands");
}

/// The snapshot's waiting pods, and the pods the host passed over with their reasons.
fn pending_and_passed(world: &World) -> (Vec<String>, Vec<(PassOver, String)>) {
    let obs = world.observe();
    let pending: Vec<String> = obs.snapshot.pending_pods.iter().map(|p| p.name.clone()).collect();
    let passed: Vec<(PassOver, String)> =
        obs.passed_over.iter().map(|p| (p.passed_over.reason, p.passed_over.why.to_string())).collect();
    (pending, passed)
}

/// A workload kept to one pod a zone (a required pod anti-affinity on the zone against its
/// own pods) whose pods already run in every zone its group launches in: a waiting pod is
/// passed over as unplaceable, named with the zones, for no node helps it; a group in
/// another zone gives it room, and it waits as before, selecting that zone.
#[test]
fn a_pod_kept_one_a_zone_with_every_zone_taken_is_passed_over() {
    let mut world = World::default();
    world.cluster.workloads[0].max_per_zone = Some(1);
    world.cluster.workloads[0].fargate_traits.privileged = true;
    world.pods.push(super::fixture::pod("web-new", None, Some(web()), 100));
    let split = pending_and_passed;
    let (pending, passed) = split(&world);
    assert!(pending.is_empty(), "{pending:?}");
    let why = "kept to at most 1 a zone (required pod anti-affinity on topology.kubernetes.io/zone against its own \
               pods), and each zone its pods may run in (us-east-1a) holds that many already: it waits for one of \
               them to go, not for a node; add a group in another zone or run fewer replicas";
    assert_eq!(passed, [(PassOver::TooFewZones, why.to_string())]);
    world.group_mut("batch").zones = vec!["us-east-1b".into()];
    assert_eq!(split(&world), (vec!["web-new".to_string()], vec![]), "us-east-1b has room for one");
    let obs = world.observe();
    let zone = obs.snapshot.pending_pods[0].node_selector.get("topology.kubernetes.io/zone").cloned();
    assert_eq!(zone.as_deref(), Some("us-east-1b"), "it selects the one zone with room");
    world.group_mut("batch").zones = vec!["us-east-1a".into()];
    world.cluster.workloads[0].fargate_traits.privileged = false;
    assert!(split(&world).0.is_empty(), "Fargate may run it, but it is placed on EC2, where it waits for a zone");
    world.cluster.workloads[0].placement = ballast_sdk::Placement::Fargate;
    assert_eq!(split(&world).0, vec!["web-new".to_string()], "placed on Fargate, it goes there");
}

/// A workload kept on the nodes of another's pods (a required pod affinity on the hostname):
/// its waiting pod is passed over as unplaceable while the other's pods run on nodes full for
/// it, for a new node runs none of them; it waits for a node as before while one of the
/// other's pods waits too, or while its own term takes in its own pods and none runs yet.
#[test]
fn a_pod_kept_beside_anothers_pods_waits_for_room_beside_them_not_for_a_node() {
    let mut world = World::default();
    let db = super::fixture::db();
    world.cluster.workloads[1].kept_beside = vec![web()];
    world.pods.push(super::fixture::pod("db-new", None, Some(db.clone()), 100));
    let split = pending_and_passed;
    let why = |now: &str| {
        format!(
            "kept on a node running pods of deployment/shop/web (a required pod affinity on kubernetes.io/hostname): \
             {now}, and a new node would run none of them"
        )
    };
    let (pending, passed) = split(&world);
    assert!(pending.is_empty(), "{pending:?}");
    assert_eq!(passed, [(PassOver::PodAffinity, why("every node running them is full for it"))]);
    world.pods.push(super::fixture::pod("web-new", None, Some(web()), 100));
    assert_eq!(split(&world).0, ["db-new", "web-new"], "a new node may take both");
    world.pods.retain(|p| p.owner.as_ref().is_none_or(|o| **o != web()));
    assert_eq!(split(&world).1, [(PassOver::PodAffinity, why("none of them runs or waits"))]);
    world.cluster.workloads[1].kept_beside = vec![db.clone()];
    assert_eq!(split(&world), (vec!["db-new".to_string()], vec![]), "the first of its own pods goes anywhere");
    world.pods.push(super::fixture::pod("db-0", Some("w1"), Some(db), 100));
    assert_eq!(split(&world).0, Vec::<String>::new(), "the rest go beside the first");
}

/// A workload kept in the zones of another's pods (a required pod affinity on the zone)
/// while none of them runs: its waiting pod is passed over as unplaceable, for a new node
/// runs none of them; it waits for a node as before once one of them runs (in any zone) or
/// waits.
#[test]
fn a_pod_kept_in_the_zone_of_pods_that_run_nowhere_is_passed_over() {
    let mut world = World::default();
    let db = super::fixture::db();
    world.cluster.workloads[0].zone_affinity = vec![db.clone()];
    world.pods.push(super::fixture::pod("web-new", None, Some(web()), 100));
    let split = pending_and_passed;
    let why = "kept in a zone running pods of stateful-set/shop/db (a required pod affinity on \
               topology.kubernetes.io/zone): none of them runs or waits, and a new node would run none of them";
    assert_eq!(split(&world), (vec![], vec![(PassOver::PodAffinity, why.to_string())]));
    world.pods.push(super::fixture::pod("db-0", None, Some(db.clone()), 100));
    assert_eq!(split(&world).0, ["web-new", "db-0"], "a new node may take both");
    world.pod_mut("db-0").node = Some("w2".into());
    assert_eq!(split(&world), (vec!["web-new".to_string()], vec![]), "db runs: a node in its zone helps");
}

//! binpack's logic, tested natively through the SDK harness.

use ballast_sdk::prelude::*;
use ballast_sdk::testing::{GroupBuilder, Harness, NodeBuilder, SnapshotBuilder, labels, removed, running, scaled_to};
use binpack::Binpack;

fn two_empty_groups() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 20))
        .group(GroupBuilder::asg("c5").instance_type("c5.large", "2", "4Gi", 0.085).sizes(0, 0, 20))
}

#[test]
fn scales_the_cheapest_group_that_fits() {
    let snapshot = two_empty_groups().pending_pods("default", "web", 12, "500m", "1Gi").build();
    let decisions = Harness::<Binpack>::new().evaluate(&snapshot).unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].action, Action::ScaleTo { group: "c5".into(), size: 3 });
    let reason = &decisions[0].reason;
    for needle in [
        "12 pending pods of deployment/default/web",
        "500m",
        "3 new c5.large",
        "$0.0850/h",
        "$0.2550/h",
        "m5: 12 pods on 3 nodes, $0.2880/h",
    ] {
        assert!(reason.contains(needle), "reason lacks {needle:?}: {reason}");
    }
}

#[test]
fn pods_kept_apart_get_a_node_each_and_share_it_with_others() {
    // Four 500m web pods fill one c5.large; anti-affinity keeps them one to a node. The
    // worker's pods may share those nodes.
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "default".into(), name: "web".into() };
    let pending = || {
        two_empty_groups()
            .pending_pods("default", "web", 4, "500m", "1Gi")
            .pending_pods("default", "worker", 3, "500m", "1Gi")
    };
    let scaled = |snapshot: &SnapshotData| Harness::<Binpack>::new().evaluate(snapshot).unwrap()[0].action.clone();
    assert_eq!(scaled(&pending().build()), Action::ScaleTo { group: "c5".into(), size: 2 }, "7 pods packed");
    let apart = pending().per_node_limit(web.clone(), 1).build();
    assert_eq!(scaled(&apart), Action::ScaleTo { group: "c5".into(), size: 4 }, "one web pod a node, workers beside");
    let two_a_node = pending().per_node_limit(web, 2).build();
    assert_eq!(scaled(&two_a_node), Action::ScaleTo { group: "c5".into(), size: 2 });
}

/// Two web and two indexer pods fill one c5.large by their requests; the indexer kept off the
/// web tier's nodes (anti-affinity against its pods), they need two, one for each.
#[test]
fn pods_kept_away_from_anothers_share_no_new_node_with_them() {
    let of =
        |name: &str| WorkloadRef { kind: WorkloadKind::Deployment, namespace: "default".into(), name: name.into() };
    let pending = || {
        two_empty_groups()
            .pending_pods("default", "web", 2, "500m", "1Gi")
            .pending_pods("default", "indexer", 2, "500m", "1Gi")
    };
    let scaled = |snapshot: &SnapshotData| Harness::<Binpack>::new().evaluate(snapshot).unwrap()[0].action.clone();
    assert_eq!(scaled(&pending().build()), Action::ScaleTo { group: "c5".into(), size: 1 }, "4 pods packed");
    let away = pending().kept_away(of("indexer"), of("web")).build();
    assert_eq!(scaled(&away), Action::ScaleTo { group: "c5".into(), size: 2 }, "a node each");
}

#[test]
fn memory_bound_pods_go_where_memory_is_cheaper() {
    // 3 GiB pods: one per c5.large (4 GiB), two per m5.large (8 GiB).
    let snapshot = two_empty_groups().pending_pods("default", "cache", 6, "250m", "3Gi").build();
    let decisions = Harness::<Binpack>::new().evaluate(&snapshot).unwrap();
    assert_eq!(decisions[0].action, Action::ScaleTo { group: "m5".into(), size: 3 });
}

#[test]
fn nodes_still_booting_are_counted() {
    // desired 3 but no node Ready yet: 12 of the 14 pods already have room coming.
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("c5").instance_type("c5.large", "2", "4Gi", 0.085).sizes(0, 3, 20).ready_nodes(0))
        .pending_pods("default", "web", 14, "500m", "1Gi")
        .build();
    let decisions = Harness::<Binpack>::new().evaluate(&snapshot).unwrap();
    assert_eq!(decisions, vec![decisions[0].clone()]);
    assert_eq!(decisions[0].action, Action::ScaleTo { group: "c5".into(), size: 4 });
}

#[test]
fn a_node_not_ready_long_after_it_registered_is_not_counted_as_booting() {
    // desired 3, 2 Ready, and the third registered: booting when a minute old, lost (its
    // kubelet died; the host will replace it) when an hour old. 4 pods fill one c5.large.
    let with_third = |age: u64| {
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("c5").instance_type("c5.large", "2", "4Gi", 0.085).sizes(0, 3, 20).ready_nodes(2))
            .node(NodeBuilder::new("c5-a", "c5").allocatable("2", "4Gi").requested("2", "4Gi", 4))
            .node(NodeBuilder::new("c5-b", "c5").allocatable("2", "4Gi").requested("2", "4Gi", 4))
            .node(NodeBuilder::new("c5-c", "c5").allocatable("2", "4Gi").not_ready().age_seconds(age))
            .pending_pods("default", "web", 4, "500m", "1Gi")
            .build()
    };
    assert!(Harness::<Binpack>::new().evaluate(&with_third(60)).unwrap().is_empty(), "room is coming");
    let decisions = Harness::<Binpack>::new().evaluate(&with_third(3600)).unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].action, Action::ScaleTo { group: "c5".into(), size: 4 });
}

#[test]
fn max_size_caps_a_group_and_the_rest_spill_over() {
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("c5").instance_type("c5.large", "2", "4Gi", 0.085).sizes(0, 0, 2))
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 20))
        .pending_pods("default", "web", 12, "500m", "1Gi")
        .build();
    let decisions = Harness::<Binpack>::new().evaluate(&snapshot).unwrap();
    let actions: Vec<_> = decisions.iter().map(|d| d.action.clone()).collect();
    // m5 places all 12 (c5 only 8), so it wins; nothing is left for c5.
    assert_eq!(actions, vec![Action::ScaleTo { group: "m5".into(), size: 3 }]);
}

#[test]
fn selectors_and_taints_restrict_groups() {
    let gpu_pod = PendingPod {
        name: "train-0".into(),
        namespace: "ml".into(),
        requests: Resources { gpus: 1, ..Resources::pod(1000, 4 << 30) },
        node_selector: labels(&[("accelerator", "nvidia")]),
        tolerations: vec![Toleration { key: "nvidia.com/gpu".into(), operator_exists: true, ..Toleration::default() }],
        ..PendingPod::default()
    };
    let mut gpu = GroupBuilder::asg("gpu")
        .instance_type("g5.xlarge", "4", "16Gi", 1.006)
        .sizes(0, 0, 4)
        .label("accelerator", "nvidia")
        .taint("nvidia.com/gpu", "", TaintEffect::NoSchedule)
        .build();
    gpu.instance_types[0].allocatable.gpus = 1;
    let mut snapshot = two_empty_groups().pending_pods("default", "web", 4, "500m", "1Gi").pending_pod(gpu_pod).build();
    snapshot.node_groups.push(gpu);
    let decisions = Harness::<Binpack>::new().evaluate(&snapshot).unwrap();
    let actions: Vec<_> = decisions.iter().map(|d| d.action.clone()).collect();
    assert_eq!(
        actions,
        vec![Action::ScaleTo { group: "c5".into(), size: 1 }, Action::ScaleTo { group: "gpu".into(), size: 1 }]
    );
}

fn idle_cluster(at_millis: u64) -> SnapshotData {
    SnapshotBuilder::new()
        .at_millis(at_millis)
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 3, 10))
        .node(NodeBuilder::new("busy-1", "m5").allocatable("2", "8Gi").requested("1500m", "4Gi", 10))
        .node(NodeBuilder::new("busy-2", "m5").allocatable("2", "8Gi").requested("1200m", "3Gi", 8))
        .node(NodeBuilder::new("idle", "m5").allocatable("2", "8Gi").requested("200m", "512Mi", 2))
        .build()
}

#[test]
fn removes_a_node_idle_for_ten_minutes() {
    let mut harness = Harness::<Binpack>::new();
    assert!(harness.evaluate(&idle_cluster(0)).unwrap().is_empty(), "not idle long enough yet");
    assert!(harness.evaluate(&idle_cluster(9 * 60_000)).unwrap().is_empty());
    let decisions = harness.evaluate(&idle_cluster(10 * 60_000)).unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].action, Action::RemoveNodes { nodes: vec!["idle".into()] });
    assert!(decisions[0].reason.contains("idle at 10% for 10 min"), "{}", decisions[0].reason);
}

/// A group of `m5` nodes at rest, each running only a DaemonSet's agent (as every node of a
/// cluster does): the agent goes with its node and needs no room elsewhere, so the last
/// node is as removable as the others, as Cluster Autoscaler's scale-down finds it.
#[test]
fn daemonset_pods_need_no_room_elsewhere_so_the_last_idle_node_goes_too() {
    let agent = |count| PodShape {
        owner: Some(WorkloadRef {
            kind: WorkloadKind::DaemonSet,
            namespace: "kube-system".into(),
            name: "agent".into(),
        }),
        moves_on_drain: false,
        ..running("kube-system", "agent", count, "300m", "512Mi")
    };
    let idle = |at| {
        (SnapshotBuilder::new().at_millis(at))
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 2, 10))
            .node(NodeBuilder::new("a", "m5").allocatable("2", "8Gi"))
            .node(NodeBuilder::new("b", "m5").allocatable("2", "8Gi"))
            .pods_on("a", agent(1))
            .pods_on("b", agent(1))
    };
    let mut harness = Harness::<Binpack>::new();
    assert!(harness.evaluate(&idle(0).build()).unwrap().is_empty());
    let decisions = harness.evaluate(&idle(10 * 60_000).build()).unwrap();
    assert_eq!(removed(&decisions), ["a", "b"], "{decisions:?}");
    // A workload's pod on `b` has to move: it fits on `a` only if `a` stays.
    let busy = idle(10 * 60_000).pods_on("b", running("shop", "web", 1, "250m", "1Gi")).build();
    assert_eq!(removed(&harness.evaluate(&busy).unwrap()), ["a"]);
}

/// Three idle nodes, one web pod each: by room two could go. Kept one to a node
/// (anti-affinity) none can, as Cluster Autoscaler's simulation finds; two to a node, one.
#[test]
fn a_pod_kept_apart_needs_a_node_below_its_limit_to_go_to() {
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
    let idle = |at, limit: Option<u32>| {
        let mut snapshot = (SnapshotBuilder::new().at_millis(at))
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 3, 10));
        for node in ["a", "b", "c"] {
            snapshot = snapshot
                .node(NodeBuilder::new(node, "m5").allocatable("2", "8Gi"))
                .pods_on(node, running("shop", "web", 1, "250m", "1Gi"));
        }
        match limit {
            Some(max) => snapshot.per_node_limit(web.clone(), max).build(),
            None => snapshot.build(),
        }
    };
    let removed_after_ten_minutes = |limit| {
        let mut harness = Harness::<Binpack>::new();
        harness.evaluate(&idle(0, limit)).unwrap();
        removed(&harness.evaluate(&idle(10 * 60_000, limit)).unwrap()).len()
    };
    assert_eq!(removed_after_ten_minutes(None), 2);
    assert_eq!(removed_after_ten_minutes(Some(1)), 0);
    assert_eq!(removed_after_ten_minutes(Some(2)), 1);
}

/// Three idle nodes, an indexer pod on `a` and a web pod on `b` and on `c`: by room two could
/// go. The indexer kept off the web tier's nodes, `a` cannot (its pod has nowhere to go), and
/// of `b` and `c` one, its web pod going beside the other's.
#[test]
fn a_pod_kept_away_from_anothers_needs_a_node_free_of_theirs_to_go_to() {
    let of = |name: &str| WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: name.into() };
    let idle = |at, away: bool| {
        let mut snapshot = (SnapshotBuilder::new().at_millis(at))
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 3, 10));
        for (node, workload) in [("a", "indexer"), ("b", "web"), ("c", "web")] {
            snapshot = snapshot
                .node(NodeBuilder::new(node, "m5").allocatable("2", "8Gi"))
                .pods_on(node, running("shop", workload, 1, "250m", "1Gi"));
        }
        match away {
            true => snapshot.kept_away(of("indexer"), of("web")).build(),
            false => snapshot.build(),
        }
    };
    let removed_after_ten_minutes = |away| {
        let mut harness = Harness::<Binpack>::new();
        harness.evaluate(&idle(0, away)).unwrap();
        removed(&harness.evaluate(&idle(10 * 60_000, away)).unwrap())
    };
    assert_eq!(removed_after_ten_minutes(false).len(), 2);
    let kept = removed_after_ten_minutes(true);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_ne!(kept[0], "a", "the indexer's pod has no node free of the web tier's to go to");
}

/// A node whose own pods use 15% of it but whose agent brings it to 55% is no candidate,
/// unless DaemonSet pods are left out of utilisation: by the setting (Cluster Autoscaler's
/// `--ignore-daemonsets-utilization`) or by the group's `ignoredaemonsetsutilization` tag.
#[test]
fn daemonset_pods_are_left_out_of_utilisation_by_the_setting_or_the_groups_tag() {
    let agent = PodShape {
        owner: Some(WorkloadRef {
            kind: WorkloadKind::DaemonSet,
            namespace: "kube-system".into(),
            name: "agent".into(),
        }),
        moves_on_drain: false,
        ..running("kube-system", "agent", 1, "800m", "512Mi")
    };
    let cluster = |at, tagged: Option<bool>| {
        let mut snapshot = (SnapshotBuilder::new().at_millis(at))
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 2, 10))
            .node(NodeBuilder::new("a", "m5").allocatable("2", "8Gi"))
            .node(NodeBuilder::new("b", "m5").allocatable("2", "8Gi"))
            .pods_on("a", running("shop", "web", 1, "300m", "1Gi"))
            .pods_on("a", agent.clone())
            .pods_on("b", running("shop", "web", 3, "400m", "1Gi"))
            .build();
        if let Some(ignore) = tagged {
            let options =
                GroupOptions { group: "m5".into(), ignore_daemonsets_utilization: Some(ignore), ..Default::default() };
            snapshot.group_options.push(options);
        }
        snapshot
    };
    let removed_after_ten_minutes = |mut harness: Harness<Binpack>, tagged| {
        harness.evaluate(&cluster(0, tagged)).unwrap();
        removed(&harness.evaluate(&cluster(10 * 60_000, tagged)).unwrap())
    };
    assert!(removed_after_ten_minutes(Harness::new(), None).is_empty(), "55% used, agent counted");
    let ignoring = || Harness::<Binpack>::with_settings(serde_json::json!({"ignore-daemonsets-utilization": true}));
    assert_eq!(removed_after_ten_minutes(ignoring().unwrap(), None), ["a"]);
    assert_eq!(removed_after_ten_minutes(Harness::new(), Some(true)), ["a"], "the group's tag");
    assert!(removed_after_ten_minutes(ignoring().unwrap(), Some(false)).is_empty(), "the tag over the setting");
}

#[test]
fn keeps_blocked_nodes_min_size_and_waits_for_pending_pods() {
    let mut harness = Harness::<Binpack>::new();
    let mut blocked = idle_cluster(0);
    blocked.nodes[2].removal_blocker = Some("pod default/db-0 has local storage".into());
    harness.evaluate(&blocked).unwrap();
    blocked.taken_at_millis = 20 * 60_000;
    assert!(harness.evaluate(&blocked).unwrap().is_empty());

    let mut at_min = idle_cluster(0);
    at_min.node_groups[0].min_size = 3;
    let mut harness = Harness::<Binpack>::new();
    harness.evaluate(&at_min).unwrap();
    at_min.taken_at_millis = 20 * 60_000;
    assert!(harness.evaluate(&at_min).unwrap().is_empty());

    // A pod a new m5.large would hold waits for capacity: nothing is spare.
    let removes = |cpu: &str| {
        let mut harness = Harness::<Binpack>::new();
        harness.evaluate(&idle_cluster(0)).unwrap();
        let mut pending = idle_cluster(20 * 60_000);
        pending.pending_pods =
            SnapshotBuilder::new().pending_pods("default", "big", 1, cpu, "1Gi").build().pending_pods;
        let decisions = harness.evaluate(&pending).unwrap();
        decisions.iter().any(|d| matches!(d.action, Action::RemoveNodes { .. }))
    };
    assert!(!removes("1900m"));
    // A 4-CPU pod no group's nodes can hold waits whatever runs: the idle node still goes.
    assert!(removes("4"));
}

#[test]
fn refuses_bad_settings_with_the_value() {
    let err = Harness::<Binpack>::with_settings(serde_json::json!({"utilisation-threshold": 1.5})).err().unwrap();
    assert!(err.contains("utilisation-threshold") && err.contains("1.5"), "{err}");
    let err = Harness::<Binpack>::with_settings(serde_json::json!({"treshold": 0.3})).err().unwrap();
    assert!(err.contains("treshold"), "{err}");
}

#[test]
fn the_price_expander_sends_pods_that_tolerate_spot_there_and_the_rest_on_demand() {
    // 8 web pods tolerate the spot group's taint; 4 api pods do not. On-demand places all 12,
    // spot only 8 but at a third of the price per pod.
    let mut snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("on-demand").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 20))
        .group(
            GroupBuilder::asg("spot")
                .instance_type("m5.large", "2", "8Gi", 0.0336)
                .sizes(0, 0, 20)
                .label(CAPACITY_TYPE_LABEL, "SPOT")
                .taint("capacity", "spot", TaintEffect::NoSchedule),
        )
        .pending_pods("shop", "api", 4, "500m", "1Gi")
        .pending_pods("shop", "web", 8, "500m", "1Gi")
        .build();
    let spot = Toleration { key: "capacity".into(), value: "spot".into(), operator_exists: false, effect: None };
    for pod in snapshot.pending_pods.iter_mut().filter(|p| p.name.starts_with("web")) {
        pod.tolerations.push(spot.clone());
    }
    assert_eq!(snapshot.node_groups[1].capacity_type(), CapacityType::Spot);
    let actions = |settings: serde_json::Value| -> Vec<Action> {
        let mut harness = Harness::<Binpack>::with_settings(settings).unwrap();
        harness.evaluate(&snapshot).unwrap().into_iter().map(|d| d.action).collect()
    };
    assert_eq!(actions(serde_json::json!(null)), [Action::ScaleTo { group: "on-demand".into(), size: 3 }]);
    assert_eq!(
        actions(serde_json::json!({"expander": "price"})),
        [Action::ScaleTo { group: "spot".into(), size: 2 }, Action::ScaleTo { group: "on-demand".into(), size: 1 }]
    );
}

/// Priorities, as Cluster Autoscaler's priority expander and in its ConfigMap's form: the
/// on-demand group listed highest gets the pods though spot is cheaper per pod; what it cannot
/// take at its max-size goes to the next priority, not to the unlisted group cheaper than
/// it; without priorities the price expander takes spot; a pattern that does not compile is
/// refused naming it.
#[test]
fn priorities_choose_the_highest_listed_group_that_fits_then_the_next() {
    let snapshot = |on_demand_max: u32| {
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("general-on-demand").instance_type("m5.large", "2", "8Gi", 0.096).sizes(
                0,
                0,
                on_demand_max,
            ))
            .group(
                GroupBuilder::asg("general-spot")
                    .instance_type("m5.large", "2", "8Gi", 0.0336)
                    .sizes(0, 0, 20)
                    .label(CAPACITY_TYPE_LABEL, "SPOT"),
            )
            .group(GroupBuilder::asg("c5").instance_type("c5.large", "2", "4Gi", 0.085).sizes(0, 0, 20))
            .pending_pods("shop", "web", 12, "500m", "1Gi")
            .build()
    };
    let decide = |settings: serde_json::Value, on_demand_max: u32| -> Vec<Decision> {
        Harness::<Binpack>::with_settings(settings).unwrap().evaluate(&snapshot(on_demand_max)).unwrap()
    };
    let actions = |decisions: &[Decision]| -> Vec<Action> { decisions.iter().map(|d| d.action.clone()).collect() };
    let prioritised = serde_json::json!({"expander": "price", "priorities": {"50": ["-on-demand$"], "10": ["spot"]}});

    let decisions = decide(prioritised.clone(), 20);
    assert_eq!(actions(&decisions), [Action::ScaleTo { group: "general-on-demand".into(), size: 3 }]);
    assert!(decisions[0].reason.contains("; priority 50"), "{}", decisions[0].reason);
    assert_eq!(
        actions(&decide(prioritised, 1)),
        [
            Action::ScaleTo { group: "general-on-demand".into(), size: 1 },
            Action::ScaleTo { group: "general-spot".into(), size: 2 }
        ]
    );
    assert_eq!(
        actions(&decide(serde_json::json!({"expander": "price"}), 20)),
        [Action::ScaleTo { group: "general-spot".into(), size: 3 }]
    );
    let err = Harness::<Binpack>::with_settings(serde_json::json!({"priorities": {"10": ["spot-(a"]}})).err().unwrap();
    assert!(err.contains("priorities.10[0]: `spot-(a` is not a regular expression"), "{err}");
}

#[test]
fn a_mixed_instances_spot_group_is_priced_at_the_type_it_launches_not_its_dearest() {
    // The spot group lists m5.xlarge first and the cheaper m5a.large after it; EC2 launches
    // the cheapest spot type, so a node is an m5a.large at $0.0301/h (one 1-CPU pod in its
    // 1930m), not an m5a.large-sized node at the m5.xlarge's $0.0672/h, which priced each
    // pod above on-demand's $0.064 (three to an m5.xlarge at $0.192/h).
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("on-demand").instance_type("m5.xlarge", "3920m", "15Gi", 0.192).sizes(0, 0, 20))
        .group(
            GroupBuilder::asg("spot")
                .instance_type("m5.xlarge", "3920m", "15Gi", 0.0672)
                .instance_type("m5a.large", "1930m", "7Gi", 0.0301)
                .sizes(0, 0, 20)
                .label(CAPACITY_TYPE_LABEL, "SPOT"),
        )
        .pending_pods("data", "etl", 6, "1", "2Gi")
        .build();
    assert_eq!(snapshot.node_groups[1].launch_type().map(|t| t.name.as_str()), Some("m5a.large"));
    let mut harness = Harness::<Binpack>::with_settings(serde_json::json!({"expander": "price"})).unwrap();
    let decisions = harness.evaluate(&snapshot).unwrap();
    let actions: Vec<&Action> = decisions.iter().map(|d| &d.action).collect();
    assert_eq!(actions, [&Action::ScaleTo { group: "spot".into(), size: 6 }], "{decisions:?}");
    assert!(decisions[0].reason.contains("$0.0301/h each"), "{}", decisions[0].reason);
}

#[test]
fn an_on_demand_group_whose_types_differ_in_size_is_sized_by_the_type_it_launches() {
    // EC2 launches an on-demand group's first type, an m5.2xlarge: eight 1-CPU pods fill
    // one. Sized by the smaller c5.xlarge it also lists, the plan bought two, the second
    // left empty for consolidation to remove.
    let snapshot = SnapshotBuilder::new()
        .group(
            GroupBuilder::asg("big")
                .instance_type("m5.2xlarge", "8", "32Gi", 0.384)
                .instance_type("c5.xlarge", "4", "8Gi", 0.17)
                .sizes(0, 0, 20),
        )
        .pending_pods("batch", "crunch", 8, "1", "1Gi")
        .build();
    let decisions = Harness::<Binpack>::new().evaluate(&snapshot).unwrap();
    let actions: Vec<&Action> = decisions.iter().map(|d| &d.action).collect();
    assert_eq!(actions, [&Action::ScaleTo { group: "big".into(), size: 1 }], "{decisions:?}");
    assert!(decisions[0].reason.contains("1 new m5.2xlarge"), "{}", decisions[0].reason);
}

#[test]
fn a_scale_up_names_whose_pods_it_is_for() {
    let mut builder = two_empty_groups();
    for name in ["api", "cart", "search", "web", "worker"] {
        builder = builder.pending_pods("shop", name, 2, "500m", "1Gi");
    }
    let decisions = Harness::<Binpack>::new().evaluate(&builder.build()).unwrap();
    let reason = &decisions[0].reason;
    assert!(
        reason.starts_with(
            "10 pending pods of deployment/shop/api, deployment/shop/cart, deployment/shop/search and 2 more (500m"
        ),
        "{reason}"
    );
}

/// A general group of m5.large (three 500m pods each beside nothing else, $0.096/h) and a
/// compute group of c5.xlarge (seven, $0.17/h), with `web` at `replicas`, one pod waiting.
fn climbing_web(at_seconds: u64, replicas: u32) -> SnapshotData {
    SnapshotBuilder::new()
        .at_millis(at_seconds * 1000)
        .group(GroupBuilder::asg("general").instance_type("m5.large", "1900m", "7Gi", 0.096).sizes(1, 2, 40))
        .group(GroupBuilder::asg("compute").instance_type("c5.xlarge", "3900m", "7Gi", 0.17).sizes(0, 1, 20))
        .workload(ballast_sdk::testing::deployment("shop", "web", replicas, "500m", "1Gi"))
        .pending_pods("shop", "web", 1, "500m", "1Gi")
        .build()
}

fn grown_group(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .filter_map(|d| match &d.action {
            Action::ScaleTo { group, .. } => Some(group.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn with_growth_a_workload_climbing_a_pod_at_a_time_gets_nodes_that_fill_not_the_cheapest_for_one_pod() {
    let settings = serde_json::json!({"expander": "price", "growth": {"horizon-seconds": 600}});
    let mut growth = Harness::<Binpack>::with_settings(settings).unwrap();
    let mut plain = Harness::<Binpack>::with_settings(serde_json::json!({"expander": "price"})).unwrap();
    // A pod waits every five minutes as web climbs 3 replicas at a time.
    let climb = [(0, 10), (300, 13), (600, 16)];
    let mut chosen = Vec::new();
    for &(at, replicas) in &climb {
        let snapshot = climbing_web(at, replicas);
        chosen.push(grown_group(&growth.evaluate(&snapshot).unwrap()));
        // Priced for the one pod alone, an m5.large is always cheapest.
        assert_eq!(grown_group(&plain.evaluate(&snapshot).unwrap()), ["general"]);
    }
    // First wait: no rate yet. Second: 3 over the 15-minute window, 2 more expected in 10
    // minutes, which one m5.large still holds. Third: 6 over the window, 4 more expected: 5
    // pods take two m5.large ($0.192/h) or one c5.xlarge ($0.17/h).
    assert_eq!(chosen, [vec!["general"], vec!["general"], vec!["compute"]]);
    let third = growth.evaluate(&climbing_web(610, 16)).unwrap();
    let reason = &third[0].reason;
    assert!(reason.contains("1 pending pods of deployment/shop/web"), "{reason}");
    assert!(reason.contains("1 new c5.xlarge"), "sized for the pod waiting now: {reason}");
    assert!(reason.contains("priced with the 4 more pods their growth brings soon: 5 pods on 1 nodes"), "{reason}");
}

#[test]
fn growth_expects_no_more_than_the_workloads_autoscaler_lets_it_reach() {
    let settings = serde_json::json!({"expander": "price", "growth": {"horizon-seconds": 600}});
    let mut harness = Harness::<Binpack>::with_settings(settings).unwrap();
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
    let mut last = Vec::new();
    for &(at, replicas) in &[(0, 10), (300, 13), (600, 16)] {
        // Its HorizontalPodAutoscaler stops it at 17: one more pod, which one m5.large holds.
        let mut snapshot = climbing_web(at, replicas);
        snapshot.horizontal_autoscalers =
            vec![HorizontalAutoscaler { target: web.clone(), min_replicas: 2, max_replicas: 17 }];
        last = grown_group(&harness.evaluate(&snapshot).unwrap());
    }
    assert_eq!(last, ["general"]);
}

#[test]
fn a_growth_window_of_zero_is_refused_naming_the_field() {
    let err =
        Harness::<Binpack>::with_settings(serde_json::json!({"growth": {"horizon-seconds": 600, "window-seconds": 0}}))
            .err()
            .unwrap();
    assert!(err.contains("growth.window-seconds") && err.contains('0'), "{err}");
    let err = Harness::<Binpack>::with_settings(serde_json::json!({"growth": {"horizon-seconds": -1}})).err().unwrap();
    assert!(err.contains("growth.horizon-seconds") && err.contains("-1"), "{err}");
}

#[test]
fn an_enormous_growth_horizon_saturates_instead_of_overflowing() {
    let settings = serde_json::json!({"expander": "price", "growth": {"horizon-seconds": u64::MAX}});
    let mut harness = Harness::<Binpack>::with_settings(settings).unwrap();
    let mut last = Vec::new();
    for &(at, replicas) in &[(0, 10), (300, 13), (600, 16)] {
        last = harness.evaluate(&climbing_web(at, replicas)).unwrap();
    }
    // Expected pods past every group's max: still one node for the one pod waiting, of the
    // group cheapest per pod for all it can hold.
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!(last[0].action, Action::ScaleTo { group: "compute".into(), size: 2 });
}

/// One group per zone, alike but for the zone: 2, 1 and 1 nodes, all Ready.
fn per_zone_groups(desired: [u32; 3], ready: [u32; 3]) -> SnapshotBuilder {
    let mut builder = SnapshotBuilder::new();
    for (i, zone) in ["a", "b", "c"].iter().enumerate() {
        builder = builder.group(
            GroupBuilder::asg(&format!("general-1{zone}"))
                .instance_type("m5.large", "2", "8Gi", 0.096)
                .sizes(0, desired[i], 20)
                .ready_nodes(ready[i])
                .label("topology.kubernetes.io/zone", &format!("us-east-1{zone}"))
                .label("eks.amazonaws.com/nodegroup", &format!("general-1{zone}"))
                .label("team", "shop"),
        );
    }
    builder
}

fn balanced() -> Harness<Binpack> {
    Harness::<Binpack>::with_settings(serde_json::json!({"balance-similar-groups": {"enabled": true}})).unwrap()
}

#[test]
fn a_scale_up_is_spread_over_groups_alike_but_for_their_zone_smallest_first() {
    // 16 pods of 900m: two a node, 8 nodes, over groups at 2, 1 and 1.
    let snapshot = per_zone_groups([2, 1, 1], [2, 1, 1]).pending_pods("shop", "web", 16, "900m", "1Gi").build();
    let decisions = balanced().evaluate(&snapshot).unwrap();
    let grown = scaled_to(&decisions);
    assert_eq!(grown, [("general-1a".into(), 4), ("general-1b".into(), 4), ("general-1c".into(), 4)], "{decisions:?}");
    assert!(
        decisions[0].reason.contains("spread over similar groups: general-1a +2, general-1b +3, general-1c +3"),
        "{}",
        decisions[0].reason
    );
    // Off (the default), Cluster Autoscaler's default too: all in one.
    let alone = Harness::<Binpack>::new().evaluate(&snapshot).unwrap();
    assert_eq!(scaled_to(&alone).len(), 1, "{alone:?}");
}

#[test]
fn the_nodes_a_spread_scale_up_has_booting_are_room_in_any_of_the_groups() {
    let snapshot = per_zone_groups([4, 4, 4], [2, 1, 1]).pending_pods("shop", "web", 16, "900m", "1Gi").build();
    assert!(balanced().evaluate(&snapshot).unwrap().is_empty(), "8 nodes booting hold the 16 pods");
    let more = per_zone_groups([4, 4, 4], [2, 1, 1]).pending_pods("shop", "web", 20, "900m", "1Gi").build();
    let grown = scaled_to(&balanced().evaluate(&more).unwrap());
    assert_eq!(grown, [("general-1a".into(), 5), ("general-1b".into(), 5)], "two more nodes, the first two of equals");
}

#[test]
fn pods_one_zone_admits_and_groups_of_another_type_are_not_spread() {
    let zonal = PendingPod {
        namespace: "shop".into(),
        name: "db-0".into(),
        requests: ballast_sdk::Resources::pod(900, 1 << 30),
        node_selector: labels(&[("topology.kubernetes.io/zone", "us-east-1b")]),
        ..PendingPod::default()
    };
    let snapshot = per_zone_groups([1, 1, 1], [1, 1, 1]).pending_pod(zonal).build();
    assert_eq!(scaled_to(&balanced().evaluate(&snapshot).unwrap()), [("general-1b".into(), 2)]);

    let mut snapshot = per_zone_groups([1, 1, 1], [1, 1, 1]).pending_pods("shop", "web", 4, "900m", "1Gi").build();
    snapshot.node_groups[2].instance_types[0].name = "m5a.large".into();
    snapshot.node_groups[2].instance_types[0].price_per_hour = 0.2;
    let grown = scaled_to(&balanced().evaluate(&snapshot).unwrap());
    assert_eq!(grown, [("general-1a".into(), 2), ("general-1b".into(), 2)], "general-1c launches another type");
}

/// One m5.large group per zone, the one in us-east-1a cheapest.
fn a_group_per_zone() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .group(
            GroupBuilder::asg("1a").instance_type("m5.large", "2", "8Gi", 0.090).sizes(0, 0, 20).zones(&["us-east-1a"]),
        )
        .group(
            GroupBuilder::asg("1b").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 20).zones(&["us-east-1b"]),
        )
        .group(
            GroupBuilder::asg("1c").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 20).zones(&["us-east-1c"]),
        )
}

/// Six web pods wait; two of its pods run in us-east-1a, two in us-east-1b, none in
/// us-east-1c. Kept within one pod of each other over zones, the scheduler puts two in
/// us-east-1c first, then one in each zone in turn (3 in 1c, 2 in 1a, 1 in 1b): that is where
/// the nodes go, not all to the cheapest zone, where most pods would find their room refused.
#[test]
fn pods_kept_spread_over_zones_get_nodes_in_the_zones_short_of_them() {
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "default".into(), name: "web".into() };
    let pending = || a_group_per_zone().pending_pods("default", "web", 6, "500m", "1Gi");
    let grown = |snapshot: &SnapshotData| {
        let decisions = Harness::<Binpack>::new().evaluate(snapshot).unwrap();
        let mut sizes = scaled_to(&decisions);
        sizes.sort();
        sizes
    };
    assert_eq!(grown(&pending().build()), vec![("1a".into(), 2)], "spread nowhere: packed in the cheapest zone");
    let spread = pending().zone_spread(web.clone(), 1, &[("us-east-1a", 2), ("us-east-1b", 2)]).build();
    assert_eq!(grown(&spread), vec![("1a".into(), 1), ("1b".into(), 1), ("1c".into(), 1)], "3 to 1c, 2 to 1a, 1 to 1b");
    let lopsided = pending().zone_spread(web, 1, &[("us-east-1a", 4), ("us-east-1b", 0)]).build();
    assert_eq!(grown(&lopsided), vec![("1b".into(), 1), ("1c".into(), 1)], "3 to 1b, 3 to 1c, none to 1a");
}

/// Two idle nodes in us-east-1a and one in us-east-1b, a web pod each. By room either
/// us-east-1a node could go; with web kept spread over zones, its pod must find room in its
/// own zone, so one us-east-1a node goes and the us-east-1b one stays.
#[test]
fn a_pod_kept_spread_over_zones_needs_room_in_its_own_zone_to_move() {
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
    let idle = |at, spread: bool| {
        let mut snapshot = (SnapshotBuilder::new().at_millis(at))
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 3, 10));
        for (node, zone) in [("a1", "us-east-1a"), ("a2", "us-east-1a"), ("b1", "us-east-1b")] {
            snapshot = snapshot
                .node(NodeBuilder::new(node, "m5").allocatable("2", "8Gi").zone(zone))
                .pods_on(node, running("shop", "web", 1, "250m", "1Gi"));
        }
        match spread {
            true => snapshot.zone_spread(web.clone(), 1, &[("us-east-1a", 2), ("us-east-1b", 1)]).build(),
            false => snapshot.build(),
        }
    };
    let removed_after_ten_minutes = |spread| {
        let mut harness = Harness::<Binpack>::new();
        harness.evaluate(&idle(0, spread)).unwrap();
        let mut gone = removed(&harness.evaluate(&idle(10 * 60_000, spread)).unwrap());
        gone.sort();
        gone
    };
    assert_eq!(removed_after_ten_minutes(false), vec!["a1".to_string(), "a2".to_string()]);
    assert_eq!(removed_after_ten_minutes(true), vec!["a1".to_string()]);
}

//! consolidation's logic, tested natively.

use ballast_sdk::prelude::*;
use ballast_sdk::testing::{
    GroupBuilder, Harness, NodeBuilder, SnapshotBuilder, deployment, removed, running, scaled_to,
};
use consolidation::{Consolidation, Settings};

/// Four m5.xlarge nodes (4 CPU, 16 GiB) running 1-CPU pods: `a` is full, `b` half full,
/// `c` has one pod, `d` is empty.
fn cluster() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, 4, 10))
        .node(NodeBuilder::new("a", "general").allocatable("4", "16Gi").requested("4", "8Gi", 4))
        .node(NodeBuilder::new("b", "general").allocatable("4", "16Gi").requested("2", "4Gi", 2))
        .node(NodeBuilder::new("c", "general").allocatable("4", "16Gi").requested("1", "2Gi", 1))
        .node(NodeBuilder::new("d", "general").allocatable("4", "16Gi").requested("0", "0", 0))
        .workload(deployment("shop", "web", 7, "1", "2Gi"))
}

fn harness(settings: Settings) -> Harness<Consolidation> {
    Harness::with_settings(serde_json::to_value(settings).unwrap()).unwrap()
}

fn evaluate(snapshot: &SnapshotData, settings: Settings) -> Vec<Decision> {
    harness(settings).evaluate(snapshot).unwrap()
}

#[test]
fn empty_then_lightest_nodes_go_when_their_pods_fit_on_the_others() {
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    let decisions = evaluate(&cluster().build(), all);
    // d is empty; c's pod fits on b; then b's two pods need two 1-CPU slots, and only a
    // (full) is left: b stays.
    assert_eq!(removed(&decisions), ["d", "c"]);
    assert!(decisions[0].reason.contains("d is empty"), "{}", decisions[0].reason);
    assert!(decisions[0].reason.contains("c's 1 pods fit on 1 other node(s)"), "{}", decisions[0].reason);
}

/// A pod's ephemeral storage is held against a node's disk as its CPU is (interface 0.1.14):
/// `c`'s runner asks 30Gi; with 17Gi left on every other node's disk it stays, with 59Gi left
/// on `b`'s it goes there. `b`'s two pods, known only by their total, may each ask as much as
/// the largest disk a workload asks (0.1.15), 36Gi, which `c`'s 59Gi free holds once.
#[test]
fn a_node_whose_pods_disk_no_other_node_has_free_stays() {
    let with_b_using = |b_used: &str| {
        let mut runner = running("ci", "runner", 1, "1", "2Gi");
        runner.requests.ephemeral_storage_bytes = 30 << 30;
        let with_disk = |mut w: Workload, gib: u64| {
            w.requests_per_replica.ephemeral_storage_bytes = gib << 30;
            w
        };
        let node = |name| NodeBuilder::new(name, "general").allocatable("4", "16Gi");
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, 3, 10))
            .node(node("a").requested("4", "8Gi", 4).disk("89Gi", "72Gi"))
            .node(node("b").requested("2", "4Gi", 2).disk("89Gi", b_used))
            .node(node("c").requested("1", "2Gi", 1).disk("89Gi", "30Gi"))
            .pods_on("c", runner)
            .workload(with_disk(deployment("ci", "runner", 1, "1", "2Gi"), 30))
            .workload(with_disk(deployment("ci", "cache", 2, "1", "2Gi"), 36))
            .build()
    };
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    assert_eq!(removed(&evaluate(&with_b_using("72Gi"), all.clone())), Vec::<String>::new(), "17Gi free on b");
    assert_eq!(removed(&evaluate(&with_b_using("30Gi"), all)), ["c"], "59Gi free on b");
}

#[test]
fn a_load_that_fits_only_if_its_pods_were_small_stays() {
    // c runs 1 CPU in two pods, but a 1-CPU pod exists in the cluster: each could be 1 CPU,
    // and b has 0.5 CPU free. Utilisation alone (25%) would remove it. b's four pods (3.5
    // CPU) would need four 1-CPU slots where c has three.
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, 2, 10))
        .node(NodeBuilder::new("b", "general").allocatable("4", "16Gi").requested("3500m", "4Gi", 4))
        .node(NodeBuilder::new("c", "general").allocatable("4", "16Gi").requested("1", "1Gi", 2))
        .workload(deployment("shop", "web", 3, "1", "1Gi"))
        .workload(deployment("shop", "api", 2, "500m", "512Mi"))
        .build();
    assert!(removed(&evaluate(&snapshot, Settings::default())).is_empty());
}

#[test]
fn the_budget_min_size_pending_pods_and_waiting_times_hold_removals_back() {
    // 10% of 4 nodes is less than one: one at a time, empty nodes included when counted
    // (Karpenter's budget)...
    let counted = Settings { count_empty_nodes: true, ..Settings::default() };
    assert_eq!(removed(&evaluate(&cluster().build(), counted.clone())), ["d"]);
    // ... and by default an empty node disrupts nothing: d goes, and c uses the budget.
    assert_eq!(removed(&evaluate(&cluster().build(), Settings::default())), ["d", "c"]);
    // A removal in progress uses the budget up, but for empty nodes when they are not counted.
    let busy = cluster().node(NodeBuilder::new("e", "general").cordoned()).build();
    assert!(removed(&evaluate(&busy, counted)).is_empty());
    assert_eq!(removed(&evaluate(&busy, Settings::default())), ["d"]);
    // min-size 3 of desired 4: one node may go.
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    let at_min = SnapshotBuilder::new()
        .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(3, 4, 10))
        .node(NodeBuilder::new("c", "general").allocatable("4", "16Gi").requested("1", "2Gi", 1))
        .node(NodeBuilder::new("d", "general").allocatable("4", "16Gi").requested("0", "0", 0))
        .build();
    assert_eq!(removed(&evaluate(&at_min, all.clone())), ["d"]);
    // Pods waiting for capacity: nothing is spare.
    let pending = cluster().pending_pods("shop", "web", 1, "1", "2Gi").build();
    assert!(removed(&evaluate(&pending, all.clone())).is_empty());
    // A pod no group's nodes can hold (8 CPU on m5.xlarge) waits whatever runs: it holds
    // nothing back.
    let unrunnable = cluster().pending_pods("shop", "giant", 1, "8", "2Gi").build();
    assert_eq!(removed(&evaluate(&unrunnable, all.clone())), ["d", "c"]);
    // An earlier policy (headroom) holds the group at its size: its room is wanted.
    let hold = Decision::new(Action::ScaleTo { group: "general".into(), size: 4 }, "keeps spare room");
    assert!(removed(&evaluate(&cluster().proposal("headroom", hold).build(), all)).is_empty());
}

#[test]
fn a_node_must_stay_removable_for_consolidate_after_and_a_group_that_grew_settles_first() {
    let wait = Settings { consolidate_after_seconds: 60, ..Settings::default() };
    let mut waiting = harness(wait);
    let at = |ms: u64| cluster().at_millis(ms).build();
    assert!(removed(&waiting.evaluate(&at(1_000)).unwrap()).is_empty(), "removable for 0 s");
    assert!(removed(&waiting.evaluate(&at(31_000)).unwrap()).is_empty(), "for 30 s");
    assert_eq!(removed(&waiting.evaluate(&at(61_000)).unwrap()), ["d", "c"], "for 60 s");

    let settle = Settings { stabilise_seconds: 300, ..Settings::default() };
    let mut settling = harness(settle);
    let sized = |desired: u32, ms: u64| {
        let mut s = cluster().at_millis(ms).build();
        s.node_groups[0].desired_size = desired;
        s
    };
    assert_eq!(removed(&settling.evaluate(&sized(4, 1_000_000)).unwrap()), ["d", "c"], "never grew");
    assert!(removed(&settling.evaluate(&sized(5, 1_010_000)).unwrap()).is_empty(), "grew just now");
    assert!(removed(&settling.evaluate(&sized(5, 1_200_000)).unwrap()).is_empty(), "190 s ago");
    assert_eq!(removed(&settling.evaluate(&sized(5, 1_320_000)).unwrap()), ["d", "c"], "310 s ago");
}

#[test]
fn nothing_is_proposed_in_a_group_the_host_would_not_let_shrink_yet() {
    // The host grew `general` at 1,000 s and refuses to shrink it for 600 s after, as its
    // configuration says: no removal to be refused, whatever this policy's own settings.
    let grown =
        |now_ms: u64, cooldown: u64| cluster().at_millis(now_ms).grown_at("general", 1_000_000, cooldown).build();
    let mut policy = harness(Settings::default());
    assert!(removed(&policy.evaluate(&grown(1_010_000, 600)).unwrap()).is_empty(), "10 s after");
    assert!(removed(&policy.evaluate(&grown(1_599_000, 600)).unwrap()).is_empty(), "599 s after");
    assert_eq!(removed(&policy.evaluate(&grown(1_600_000, 600)).unwrap()), ["d", "c"], "600 s after");
    // A host configured with a 2-minute cooldown is read, not assumed.
    assert_eq!(removed(&harness(Settings::default()).evaluate(&grown(1_120_000, 120)).unwrap()), ["d", "c"]);
}

#[test]
fn a_group_that_grows_back_soon_after_a_removal_for_waiting_pods_waits_longer_next_time() {
    let learn = Settings { churn_window_seconds: 600, ..Settings::default() };
    let mut policy = harness(learn);
    // The group at `desired`, with one empty node named `empty` (a new one each time), and
    // pods waiting or not: `etl` (which the group takes) or `gpu` (which want a GPU node).
    let at = |desired: u32, ms: u64, empty: &str, waiting: &str| {
        let mut b = SnapshotBuilder::new()
            .at_millis(ms)
            .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, desired, 10))
            .node(NodeBuilder::new("a", "general").allocatable("4", "16Gi").requested("1", "2Gi", 1))
            .node(NodeBuilder::new(empty, "general").allocatable("4", "16Gi"));
        if waiting == "etl" {
            b = b.pending_pods("data", "etl", 4, "1", "2Gi");
        } else if waiting == "gpu" {
            b = b.pending_pod(PendingPod {
                namespace: "ml".into(),
                name: "train-0".into(),
                requests: Resources::pod(1000, 1 << 30),
                node_selector: [("accelerator".to_string(), "gpu".to_string())].into(),
                ..PendingPod::default()
            });
        }
        let mut s = b.build();
        s.node_groups[0].desired_size = desired;
        s
    };
    let mut run = |desired, ms, empty, waiting| removed(&policy.evaluate(&at(desired, ms, empty, waiting)).unwrap());
    let minute = 60_000;
    assert_eq!(run(4, minute, "d", ""), ["d"], "no wait learnt yet");
    // The group grows back 5 minutes later while pods wait: regret, so the next empty node
    // waits a minute (nothing goes while they wait).
    assert!(run(5, 6 * minute, "e", "etl").is_empty());
    assert!(run(5, 6 * minute + 10_000, "e", "").is_empty());
    assert_eq!(run(5, 7 * minute + 10_000, "e", ""), ["e"]);
    // Growing back again soon for waiting pods doubles the wait; growing much later halves it.
    assert!(run(6, 8 * minute, "f", "etl").is_empty());
    assert!(run(6, 8 * minute + 10_000, "f", "").is_empty());
    assert!(run(6, 10 * minute + 9_000, "f", "").is_empty(), "2 min now");
    assert_eq!(run(6, 10 * minute + 10_000, "f", ""), ["f"]);
    assert!(run(7, 40 * minute, "g", "").is_empty());
    assert_eq!(run(7, 41 * minute, "g", ""), ["g"], "halved to 1 min");
    // Growth soon after that removal with no pod waiting was asked ahead of demand (headroom
    // making room for a scheduled run): nothing was regretted, and the wait halves again.
    assert!(run(8, 42 * minute, "h", "").is_empty(), "h has waited none of its 30 s");
    assert_eq!(run(8, 42 * minute + 30_000, "h", ""), ["h"], "halved to 30 s");
    // Pods waiting that the group could not take (they want a GPU node) are not its regret.
    assert!(run(9, 43 * minute, "i", "gpu").is_empty(), "nothing goes while pods wait");
    assert!(run(9, 43 * minute + 10_000, "i", "").is_empty());
    assert_eq!(run(9, 43 * minute + 25_000, "i", ""), ["i"], "halved to 15 s, not doubled");
}

#[test]
fn a_group_tagged_with_cluster_autoscalers_options_keeps_its_threshold_and_unneeded_time() {
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    // Only nodes under 20% are candidates: c (25%) stays although its pod would fit.
    let mut tagged = cluster().build();
    tagged.group_options = vec![GroupOptions {
        group: "general".into(),
        scale_down_utilization_threshold: Some(0.2),
        ..GroupOptions::default()
    }];
    assert_eq!(removed(&evaluate(&tagged, all.clone())), ["d"]);

    // A tagged unneeded time replaces consolidate-after-seconds (0 here): nothing goes at
    // once, d goes after two minutes.
    tagged.group_options[0].scale_down_unneeded_seconds = Some(120);
    let mut h = harness(all);
    assert!(removed(&h.evaluate(&tagged).unwrap()).is_empty());
    tagged.taken_at_millis = 120_000;
    assert_eq!(removed(&h.evaluate(&tagged).unwrap()), ["d"]);
}

/// An on-demand group and a spot group (tainted) of m5.large, each node 2 CPU / 8 GiB.
fn two_groups(spot_desired: u32) -> SnapshotBuilder {
    SnapshotBuilder::new()
        .group(GroupBuilder::asg("on-demand").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 2, 10))
        .group(
            GroupBuilder::asg("spot")
                .instance_type("m5.large", "2", "8Gi", 0.035)
                .taint("capacity", "spot", TaintEffect::NoSchedule)
                .sizes(0, spot_desired, 10),
        )
        .node(NodeBuilder::new("od-1", "on-demand").instance_type("m5.large").allocatable("2", "8Gi"))
        .node(NodeBuilder::new("od-2", "on-demand").instance_type("m5.large").allocatable("2", "8Gi"))
}

fn tolerating_spot(shape: PodShape) -> PodShape {
    let toleration = Toleration { key: "capacity".into(), operator_exists: false, value: "spot".into(), effect: None };
    PodShape { tolerations: vec![toleration], ..shape }
}

#[test]
fn pods_known_by_shape_move_to_any_group_that_admits_them_and_no_further() {
    // od-2's one pod tolerates spot and fits beside the one on the spot node; the on-demand
    // node beside it is full. Told its pods, consolidation moves them across groups.
    let spot_node = NodeBuilder::new("spot-1", "spot").allocatable("2", "8Gi");
    let snapshot = two_groups(1)
        .node(spot_node)
        .pods_on("spot-1", tolerating_spot(running("media", "render", 1, "1", "2Gi")))
        .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
        .pods_on("od-2", tolerating_spot(running("shop", "web", 1, "1", "2Gi")))
        .workload(deployment("shop", "web", 1, "1", "2Gi"))
        .workload(deployment("shop", "api", 2, "1", "2Gi"))
        .build();
    let decisions = evaluate(&snapshot, Settings::default());
    assert_eq!(removed(&decisions), ["od-2"]);
    assert!(decisions[0].reason.contains("od-2's 1 pods fit on 1 other node(s)"), "{}", decisions[0].reason);
    assert!(scaled_to(&decisions).is_empty());

    // The same pod without the toleration has nowhere to go: the spot node's taint refuses it
    // (the spot node itself is held by a PDB here, so only od-2 is weighed).
    let snapshot = two_groups(1)
        .node(NodeBuilder::new("spot-1", "spot").allocatable("2", "8Gi").blocked("a PDB"))
        .pods_on("spot-1", tolerating_spot(running("media", "render", 1, "1", "2Gi")))
        .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
        .pods_on("od-2", running("shop", "web", 1, "1", "2Gi"))
        .build();
    let decisions = evaluate(&snapshot, Settings { replace: false, ..Settings::default() });
    assert!(decisions.is_empty(), "{decisions:?}");
}

#[test]
fn a_node_whose_pods_fit_on_a_cheaper_group_is_replaced_launch_first_then_drained() {
    let mut harness = harness(Settings::default());
    // No room anywhere: od-2's pods tolerate spot, and spot is 64% cheaper.
    let before = two_groups(0)
        .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
        .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "750m", "2Gi")))
        .build();
    let decisions = harness.evaluate(&before).unwrap();
    assert_eq!(scaled_to(&decisions), [("spot".to_string(), 1)], "{decisions:?}");
    assert!(removed(&decisions).is_empty(), "launch first: nothing is drained before the new node is up");
    let reason = &decisions[0].reason;
    assert!(reason.contains("replace od-2 (m5.large in on-demand at $0.0960/h) by a new m5.large in spot"), "{reason}");
    assert!(reason.contains("64% less") && reason.contains("its 2 pods fit"), "{reason}");

    // The spot node is asked for, not yet Ready: one replacement at a time, none repeated.
    let booting = two_groups(1)
        .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
        .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "750m", "2Gi")))
        .build();
    assert!(harness.evaluate(&booting).unwrap().is_empty());

    // It is Ready and empty: it is the replacement, not spare; od-2 goes.
    let ready = two_groups(1)
        .node(NodeBuilder::new("spot-1", "spot").allocatable("2", "8Gi"))
        .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
        .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "750m", "2Gi")))
        .build();
    let decisions = harness.evaluate(&ready).unwrap();
    assert_eq!(removed(&decisions), ["od-2"], "{decisions:?}");
    assert!(scaled_to(&decisions).is_empty());
}

#[test]
fn with_replace_after_cooldown_no_node_is_launched_for_a_group_that_may_not_shrink_yet() {
    // od-2 would be replaced by a spot node (64% less), but on-demand grew 2 minutes ago and
    // the host lets it shrink only 10 minutes after: the new node would be Ready 5 minutes
    // before od-2 may go, and wait as spare room.
    let cluster = |now_ms: u64| {
        two_groups(0)
            .at_millis(now_ms)
            .grown_at("on-demand", 1_000_000, 600)
            .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
            .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "750m", "2Gi")))
            .build()
    };
    let after_cooldown = Settings { replace_after_cooldown: true, ..Settings::default() };
    let in_cooldown = cluster(1_120_000);
    assert!(evaluate(&in_cooldown, after_cooldown.clone()).is_empty(), "refused: on-demand may not shrink yet");
    // Karpenter's way (the plugin's default): launch now, drain once the cooldown allows.
    assert_eq!(scaled_to(&evaluate(&in_cooldown, Settings::default())), [("spot".to_string(), 1)]);
    // When the cooldown ends before the new node can be Ready (3 minutes), it starts.
    assert_eq!(scaled_to(&evaluate(&cluster(1_450_000), after_cooldown.clone())), [("spot".to_string(), 1)]);
    // Unless the groups boot faster than that: Ready in a minute, it would wait 90 s.
    let quick_boot = Settings { replace_ready_within_seconds: 60, ..after_cooldown };
    assert!(evaluate(&cluster(1_450_000), quick_boot).is_empty(), "refused: Ready 90 s before od-2 may go");
}

/// A spot pool that could not launch lately is no cheaper home for od-2's pods: a launch
/// there fails again (doubling the group's back-off for pods that need it) unless the
/// capacity came back. No replacement or merge launches in a group whose launch failed
/// within `failed-group-wait-seconds` and that has not delivered since.
#[test]
fn no_replacement_or_merge_launches_in_a_group_whose_launch_failed_lately() {
    const NOW: u64 = 10_000_000;
    let replacing = |failed_ago_seconds: Option<u64>, settings: Settings| {
        let cluster = two_groups(0)
            .at_millis(NOW)
            .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
            .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "750m", "2Gi")));
        let cluster = match failed_ago_seconds {
            Some(s) => cluster.launch_failed("spot", NOW - s * 1000, 2, "InsufficientInstanceCapacity"),
            None => cluster,
        };
        scaled_to(&evaluate(&cluster.build(), settings))
    };
    let spot = vec![("spot".to_string(), 1)];
    assert_eq!(replacing(None, Settings::default()), spot);
    assert_eq!(replacing(Some(60), Settings::default()), [], "failed a minute ago");
    assert_eq!(replacing(Some(899), Settings::default()), [], "failed just under 15 minutes ago");
    assert_eq!(replacing(Some(900), Settings::default()), spot, "15 minutes on, the capacity may be back");
    let karpenter = Settings { failed_group_wait_seconds: 180, ..Settings::default() };
    assert_eq!(replacing(Some(180), karpenter), spot, "Karpenter's 3 minutes");
    let off = Settings { failed_group_wait_seconds: 0, ..Settings::default() };
    assert_eq!(replacing(Some(60), off), spot, "off");

    let merging = |cluster: SnapshotBuilder| scaled_to(&evaluate(&cluster.at_millis(NOW).build(), Settings::default()));
    assert_eq!(merging(two_small_nodes((0, 2), 0)), [("compute".to_string(), 1)]);
    let failed = two_small_nodes((0, 2), 0).launch_failed("compute", NOW - 60_000, 1, "InsufficientInstanceCapacity");
    assert_eq!(merging(failed), [], "no merge into it either");
    let bad = Harness::<Consolidation>::with_settings(serde_json::json!({"failed-group-wait-seconds": 90_000}));
    assert!(bad.is_err_and(|e| e.contains("failed-group-wait-seconds must be at most 86400 (a day), got 90000")));
}

#[test]
fn no_replacement_without_enough_saving_without_admitting_groups_or_above_min_size() {
    let with = |snapshot: SnapshotBuilder, settings: Settings| evaluate(&snapshot.build(), settings);
    let spot_pods = || {
        two_groups(0)
            .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
            .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "750m", "2Gi")))
    };
    // 64% saved is under a 70% floor.
    assert!(with(spot_pods(), Settings { replace_min_saving: 0.7, ..Settings::default() }).is_empty());
    assert!(with(spot_pods(), Settings { replace: false, ..Settings::default() }).is_empty());
    // Pods that do not tolerate spot.
    let plain = two_groups(0)
        .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
        .pods_on("od-2", running("shop", "web", 2, "750m", "2Gi"));
    assert!(with(plain, Settings::default()).is_empty());
    // Pods too big for one new spot node together (2 x 1.5 CPU on 2 CPU).
    let too_big = two_groups(0)
        .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
        .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "1500m", "2Gi")));
    assert!(with(too_big, Settings::default()).is_empty());
    // The on-demand group at its min-size: the node is not going anywhere.
    let at_min = SnapshotBuilder::new()
        .group(GroupBuilder::asg("on-demand").instance_type("m5.large", "2", "8Gi", 0.096).sizes(2, 2, 10))
        .group(
            GroupBuilder::asg("spot")
                .instance_type("m5.large", "2", "8Gi", 0.035)
                .taint("capacity", "spot", TaintEffect::NoSchedule)
                .sizes(0, 0, 10),
        )
        .node(NodeBuilder::new("od-1", "on-demand").allocatable("2", "8Gi"))
        .node(NodeBuilder::new("od-2", "on-demand").allocatable("2", "8Gi"))
        .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
        .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "750m", "2Gi")));
    assert!(with(at_min, Settings::default()).is_empty());
}

#[test]
fn one_evaluation_weighs_at_most_max_candidates_nodes_lightest_first() {
    let mut snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 150, 200));
    for i in 0..150 {
        snapshot = snapshot.node(NodeBuilder::new(&format!("n{i:03}"), "general").allocatable("2", "8Gi"));
    }
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    let gone = removed(&evaluate(&snapshot.build(), all));
    assert_eq!(gone.len(), consolidation::MAX_CANDIDATES, "the rest wait for the next evaluation");
    assert_eq!(gone.first().map(String::as_str), Some("n000"));
}

/// Two m5.large running three 500m web pods each (general) and a c5.xlarge group
/// (compute) that holds six: 4 CPU / 8 GiB for $0.17/h against $0.192/h for the two.
fn two_small_nodes(general: (u32, u32), compute_desired: u32) -> SnapshotBuilder {
    two_small_nodes_of_web(general, compute_desired, 6)
}

/// [`two_small_nodes`] with `web` at `replicas` replicas.
fn two_small_nodes_of_web(general: (u32, u32), compute_desired: u32, replicas: u32) -> SnapshotBuilder {
    SnapshotBuilder::new()
        .group(
            GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(general.0, general.1, 10),
        )
        .group(GroupBuilder::asg("compute").instance_type("c5.xlarge", "4", "8Gi", 0.17).sizes(0, compute_desired, 10))
        .node(NodeBuilder::new("a", "general").instance_type("m5.large").allocatable("2", "8Gi"))
        .node(NodeBuilder::new("b", "general").instance_type("m5.large").allocatable("2", "8Gi"))
        .pods_on("a", running("shop", "web", 3, "500m", "1Gi"))
        .pods_on("b", running("shop", "web", 3, "500m", "1Gi"))
        .workload(deployment("shop", "web", replicas, "500m", "1Gi"))
}

#[test]
fn two_nodes_whose_pods_fit_on_one_cheaper_node_are_merged_launch_first() {
    let mut harness = harness(Settings::default());
    // Neither node's pods fit on the other, and one c5.xlarge alone costs more than one
    // m5.large: no removal, no single replacement. Together they fit on one c5.xlarge.
    let decisions = harness.evaluate(&two_small_nodes((0, 2), 0).build()).unwrap();
    assert_eq!(scaled_to(&decisions), [("compute".to_string(), 1)], "{decisions:?}");
    assert!(removed(&decisions).is_empty(), "launch first: nothing is drained before the new node is up");
    let reason = &decisions[0].reason;
    assert!(
        reason.contains("merge a, b ($0.1920/h together) into a new c5.xlarge in compute at $0.1700/h"),
        "{reason}"
    );
    assert!(reason.contains("11% less: their 6 pods fit"), "{reason}");

    // The new node boots: nothing more is asked.
    assert!(harness.evaluate(&two_small_nodes((0, 2), 1).build()).unwrap().is_empty());

    // It is Ready and empty: it is the merge's, not spare; the merged nodes go.
    let ready = two_small_nodes((0, 2), 1).node(NodeBuilder::new("c", "compute").allocatable("4", "8Gi"));
    let decisions = harness.evaluate(&ready.build()).unwrap();
    assert_eq!(removed(&decisions), ["a"], "one at a time within the disruption budget: {decisions:?}");
    assert!(scaled_to(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn no_merge_without_enough_saving_below_min_size_or_when_turned_off() {
    let with = |snapshot: SnapshotBuilder, settings: Settings| evaluate(&snapshot.build(), settings);
    // 11% saved is under a 15% floor.
    assert!(with(two_small_nodes((0, 2), 0), Settings { merge_min_saving: 0.15, ..Settings::default() }).is_empty());
    assert!(with(two_small_nodes((0, 2), 0), Settings { merge_max_nodes: 1, ..Settings::default() }).is_empty());
    assert!(with(two_small_nodes((0, 2), 0), Settings { replace: false, ..Settings::default() }).is_empty());
    // general at min-size 1 may not lose both.
    assert!(with(two_small_nodes((1, 2), 0), Settings::default()).is_empty());
    // web keeps at most 3 pods a node: the new node would take 6.
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
    assert!(with(two_small_nodes((0, 2), 0).per_node_limit(web, 3), Settings::default()).is_empty());
    // compute at its max-size cannot grow for them.
    let full = SnapshotBuilder::new()
        .group(GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 2, 10))
        .group(GroupBuilder::asg("compute").instance_type("c5.xlarge", "4", "8Gi", 0.17).sizes(0, 0, 0))
        .node(NodeBuilder::new("a", "general").instance_type("m5.large").allocatable("2", "8Gi"))
        .node(NodeBuilder::new("b", "general").instance_type("m5.large").allocatable("2", "8Gi"))
        .pods_on("a", running("shop", "web", 3, "500m", "1Gi"))
        .pods_on("b", running("shop", "web", 3, "500m", "1Gi"));
    assert!(with(full, Settings::default()).is_empty());
    let bad = Harness::<Consolidation>::with_settings(serde_json::json!({"merge-min-saving": 1.5}));
    assert!(bad.is_err_and(|e| e.contains("merge-min-saving must be in (0, 1), got 1.5")));
}

/// Three m5.xlarge nodes: `a` runs two web pods, `b` one, `c` none. `web` has
/// `replicas` replicas; the snapshot is taken at `at_millis`.
fn web_scaling_in(replicas: u32, at_millis: u64) -> SnapshotData {
    SnapshotBuilder::new()
        .at_millis(at_millis)
        .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, 3, 10))
        .node(NodeBuilder::new("a", "general").allocatable("4", "16Gi"))
        .node(NodeBuilder::new("b", "general").allocatable("4", "16Gi"))
        .node(NodeBuilder::new("c", "general").allocatable("4", "16Gi"))
        .pods_on("a", running("shop", "web", 2, "1", "2Gi"))
        .pods_on("b", running("shop", "web", 1, "1", "2Gi"))
        .workload(deployment("shop", "web", replicas, "1", "2Gi"))
        .build()
}

#[test]
fn with_shrink_wait_a_node_running_a_workload_that_is_scaling_in_is_not_drained_but_empty_ones_go() {
    let settings = Settings { disruption_budget: 1.0, shrink_wait_seconds: 300, ..Settings::default() };
    let mut policy = harness(settings);
    // First sight of web: no fall known yet, so b is drained as without the setting.
    assert_eq!(removed(&policy.evaluate(&web_scaling_in(5, 1_000_000)).unwrap()), ["c", "b"]);
    // web fell from 5 to 4 replicas between two evaluations: its scale-in is emptying nodes
    // itself, so b waits; c, empty, still goes.
    let decisions = policy.evaluate(&web_scaling_in(4, 1_010_000)).unwrap();
    assert_eq!(removed(&decisions), ["c"], "{decisions:?}");
    // Still within 300 s of the fall: b waits.
    assert_eq!(removed(&policy.evaluate(&web_scaling_in(4, 1_300_000)).unwrap()), ["c"]);
    // 300 s after the last fall, with web steady, b is drained again.
    assert_eq!(removed(&policy.evaluate(&web_scaling_in(4, 1_311_000)).unwrap()), ["c", "b"]);

    // Off (the default), the fall changes nothing.
    let mut off = harness(Settings { disruption_budget: 1.0, ..Settings::default() });
    off.evaluate(&web_scaling_in(5, 1_000_000)).unwrap();
    assert_eq!(removed(&off.evaluate(&web_scaling_in(4, 1_010_000)).unwrap()), ["c", "b"]);
}

#[test]
fn with_shrink_replace_wait_a_scale_in_launches_no_merge_or_replacement_but_its_nodes_still_go() {
    let settings = Settings { shrink_replace_wait_seconds: 300, ..Settings::default() };
    let mut policy = harness(settings.clone());
    let web = |general_min, replicas, at| two_small_nodes_of_web((general_min, 2), 0, replicas).at_millis(at).build();
    // First sight of web at 7 replicas (general at its min-size: nothing to merge yet).
    assert!(policy.evaluate(&web(2, 7, 1_000_000)).unwrap().is_empty());
    // web fell to 6: a and b would merge into one c5.xlarge, but the scale-in may empty
    // them itself, and the new node would be bought for pods on their way out.
    let decisions = policy.evaluate(&web(0, 6, 1_010_000)).unwrap();
    assert!(decisions.is_empty(), "{decisions:?}");
    assert!(policy.evaluate(&web(0, 6, 1_300_000)).unwrap().is_empty(), "still within 300 s of the fall");
    // 300 s after the fall, with web steady, the merge goes ahead.
    assert_eq!(scaled_to(&policy.evaluate(&web(0, 6, 1_311_000)).unwrap()), [("compute".to_string(), 1)]);
    // Off (the default), the fall changes nothing.
    let mut off = harness(Settings::default());
    off.evaluate(&web(2, 7, 1_000_000)).unwrap();
    assert_eq!(scaled_to(&off.evaluate(&web(0, 6, 1_010_000)).unwrap()), [("compute".to_string(), 1)]);

    // A single replacement waits the same way. od-3, cordoned, uses the disruption budget
    // at first sight, so nothing starts while web is first followed.
    let spot = |replicas, at, draining: bool| {
        let snapshot = two_groups(0)
            .at_millis(at)
            .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
            .pods_on("od-2", tolerating_spot(running("shop", "web", 2, "750m", "2Gi")))
            .workload(deployment("shop", "web", replicas, "750m", "2Gi"));
        let od_3 = NodeBuilder::new("od-3", "on-demand").instance_type("m5.large").allocatable("2", "8Gi").cordoned();
        if draining { snapshot.node(od_3) } else { snapshot }.build()
    };
    let mut policy = harness(settings.clone());
    assert!(policy.evaluate(&spot(3, 1_000_000, true)).unwrap().is_empty());
    assert!(policy.evaluate(&spot(2, 1_010_000, false)).unwrap().is_empty(), "web fell: no replacement");
    assert_eq!(scaled_to(&policy.evaluate(&spot(2, 1_311_000, false)).unwrap()), [("spot".to_string(), 1)]);

    // Removals launch nothing and still go: b's pod fits on a while web scales in.
    let mut policy = harness(Settings { disruption_budget: 1.0, ..settings });
    assert_eq!(removed(&policy.evaluate(&web_scaling_in(5, 1_000_000)).unwrap()), ["c", "b"]);
    assert_eq!(removed(&policy.evaluate(&web_scaling_in(4, 1_010_000)).unwrap()), ["c", "b"]);
}

#[test]
fn a_setting_of_the_wrong_kind_is_refused_naming_its_field_and_value() {
    let bad = Harness::<Consolidation>::with_settings(serde_json::json!({"shrink-replace-wait-seconds": -1}));
    let error = bad.err().unwrap();
    assert!(error.contains("shrink-replace-wait-seconds: invalid value: integer `-1`, expected u64"), "{error}");
}

/// m5.xlarge nodes `(name, zone)` of `general`, one 500m web pod each.
fn a_web_pod_on_each(nodes: &[(&str, &str)]) -> SnapshotBuilder {
    let mut snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, 3, 10))
        .workload(deployment("shop", "web", 3, "500m", "1Gi"));
    for &(node, zone) in nodes {
        snapshot = snapshot
            .node(NodeBuilder::new(node, "general").allocatable("4", "16Gi").zone(zone))
            .pods_on(node, running("shop", "web", 1, "500m", "1Gi"));
    }
    snapshot
}

#[test]
fn pods_kept_apart_move_only_to_nodes_under_their_limit() {
    // Three nodes, one 500m web pod each: packed, two would go. Kept one to a node
    // (anti-affinity), none can; two to a node, one can.
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
    let spread = || a_web_pod_on_each(&[("a", "us-east-1a"), ("b", "us-east-1a"), ("c", "us-east-1a")]);
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    assert_eq!(removed(&evaluate(&spread().build(), all.clone())).len(), 2, "packed onto one node");
    let apart = spread().per_node_limit(web.clone(), 1).build();
    assert_eq!(removed(&evaluate(&apart, all.clone())), Vec::<String>::new(), "no node may take a second");
    let two = spread().per_node_limit(web, 2).build();
    assert_eq!(removed(&evaluate(&two, all)).len(), 1, "one node takes a second, none a third");
}

/// Three nodes: an indexer pod on `a`, a web pod on `b` and on `c`. Packed, two would go.
/// The indexer kept off the web tier's nodes (anti-affinity against its pods), `a` cannot,
/// and of `b` and `c` one, its web pod going beside the other's.
#[test]
fn pods_kept_away_from_anothers_move_only_to_nodes_free_of_theirs() {
    let of = |name: &str| WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: name.into() };
    let three = || {
        let mut three = SnapshotBuilder::new()
            .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, 3, 10))
            .workload(deployment("shop", "web", 2, "500m", "1Gi"))
            .workload(deployment("shop", "indexer", 1, "500m", "1Gi"));
        for (node, workload) in [("a", "indexer"), ("b", "web"), ("c", "web")] {
            three = three
                .node(NodeBuilder::new(node, "general").allocatable("4", "16Gi"))
                .pods_on(node, running("shop", workload, 1, "500m", "1Gi"));
        }
        three
    };
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    assert_eq!(removed(&evaluate(&three().build(), all.clone())).len(), 2, "packed onto one node");
    let kept = removed(&evaluate(&three().kept_away(of("indexer"), of("web")).build(), all));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_ne!(kept[0], "a", "the indexer's pod has no node free of the web tier's to go to");
}

/// Two m5.large nodes, web's pods on one and the indexer's on the other, fit on one cheaper
/// c5.xlarge; kept off each other's nodes, they are not merged onto it.
#[test]
fn pods_kept_away_from_anothers_are_not_merged_onto_one_node_with_them() {
    let of = |name: &str| WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: name.into() };
    let two = || {
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 2, 10))
            .group(GroupBuilder::asg("compute").instance_type("c5.xlarge", "4", "8Gi", 0.17).sizes(0, 0, 10))
            .node(NodeBuilder::new("a", "general").instance_type("m5.large").allocatable("2", "8Gi"))
            .node(NodeBuilder::new("b", "general").instance_type("m5.large").allocatable("2", "8Gi"))
            .pods_on("a", running("shop", "web", 3, "500m", "1Gi"))
            .pods_on("b", running("shop", "indexer", 3, "500m", "1Gi"))
            .workload(deployment("shop", "web", 3, "500m", "1Gi"))
            .workload(deployment("shop", "indexer", 3, "500m", "1Gi"))
    };
    let merged = evaluate(&two().build(), Settings::default());
    assert_eq!(scaled_to(&merged), [("compute".to_string(), 1)], "{merged:?}");
    let apart = evaluate(&two().kept_away(of("indexer"), of("web")).build(), Settings::default());
    assert!(scaled_to(&apart).is_empty(), "{apart:?}");
}

#[test]
fn a_node_that_takes_a_removed_nodes_pods_goes_too_only_if_they_fit_elsewhere_as_well() {
    // a runs one 1-CPU pod, b two, c `on_c` (4 CPU each). a's pod fits on b; b's two would
    // fit on c, but b then has a's pod to move as well: it goes only if c holds all three.
    let cluster = |on_c: u32| {
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("general").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(1, 3, 10))
            .workload(deployment("shop", "web", 3 + on_c, "1", "2Gi"))
            .node(NodeBuilder::new("a", "general").allocatable("4", "16Gi"))
            .node(NodeBuilder::new("b", "general").allocatable("4", "16Gi"))
            .node(NodeBuilder::new("c", "general").allocatable("4", "16Gi"))
            .pods_on("a", running("shop", "web", 1, "1", "2Gi"))
            .pods_on("b", running("shop", "web", 2, "1", "2Gi"))
            .pods_on("c", running("shop", "web", on_c, "1", "2Gi"))
            .build()
    };
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    assert_eq!(removed(&evaluate(&cluster(2), all.clone())), ["a"], "c has room for two of b's three");
    assert_eq!(removed(&evaluate(&cluster(1), all)).len(), 2, "with one pod on c, two nodes' pods fit on the third");
}

/// Three nodes with a 500m web pod each, `a` and `b` in us-east-1a, `c` in us-east-1b. Packed,
/// two would go; web kept spread over zones, `c`'s pod has no other node in its zone, so only
/// one of `a` and `b` goes.
#[test]
fn pods_kept_spread_over_zones_move_only_within_their_zone() {
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
    let cluster = || a_web_pod_on_each(&[("a", "us-east-1a"), ("b", "us-east-1a"), ("c", "us-east-1b")]);
    let all = Settings { disruption_budget: 1.0, ..Settings::default() };
    assert_eq!(removed(&evaluate(&cluster().build(), all.clone())).len(), 2, "packed onto one node");
    let spread = cluster().zone_spread(web, 1, &[("us-east-1a", 2), ("us-east-1b", 1)]).build();
    assert_eq!(removed(&evaluate(&spread, all)), ["a"], "c's pod has no room in us-east-1b but its own");
}

/// od-2's web pods, kept spread over zones, fit on no other node (od-1, full, is held by a
/// PDB): a node of a cheaper group replaces od-2 only if that group launches in its zone alone.
#[test]
fn pods_kept_spread_over_zones_are_replaced_only_by_a_node_in_their_zone() {
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
    let replacing = |spot_zones: &[&str]| {
        let spot = GroupBuilder::asg("spot").instance_type("m5.large", "2", "8Gi", 0.035).sizes(0, 0, 10);
        let snapshot = SnapshotBuilder::new()
            .group(GroupBuilder::asg("on-demand").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 2, 10))
            .group(spot.zones(spot_zones))
            .node(
                NodeBuilder::new("od-1", "on-demand")
                    .instance_type("m5.large")
                    .allocatable("2", "8Gi")
                    .blocked("a PDB"),
            )
            .node(NodeBuilder::new("od-2", "on-demand").instance_type("m5.large").allocatable("2", "8Gi"))
            .pods_on("od-1", running("shop", "api", 2, "1", "2Gi"))
            .pods_on("od-2", running("shop", "web", 2, "750m", "2Gi"))
            .zone_spread(web.clone(), 1, &[("us-east-1a", 2)])
            .build();
        scaled_to(&evaluate(&snapshot, Settings::default()))
    };
    assert_eq!(replacing(&["us-east-1a"]), [("spot".to_string(), 1)]);
    assert_eq!(replacing(&["us-east-1b"]), []);
    assert_eq!(replacing(&["us-east-1a", "us-east-1b"]), [], "EC2 may launch it in either zone");
}

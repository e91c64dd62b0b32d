//! fargate-placement's logic, tested natively.

use ballast_sdk::prelude::*;
use ballast_sdk::testing::{GroupBuilder, Harness, NodeBuilder, SnapshotBuilder, deployment, running};
use fargate_placement::FargatePlacement;
use support::{assert_first_reason, place};

mod support;

fn cluster() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 1, 10))
        .node(NodeBuilder::new("full", "m5").allocatable("2", "8Gi").requested("1900m", "7Gi", 12))
        .group(GroupBuilder::fargate())
}

/// `count` Ready nodes of `group` named `<prefix><n>`, each of `allocatable` (CPU, memory)
/// with `requested` (CPU, memory, pods) taken.
fn with_nodes(
    mut snapshot: SnapshotBuilder,
    (prefix, group, count): (&str, &str, u32),
    allocatable: (&str, &str),
    requested: (&str, &str, u32),
) -> SnapshotBuilder {
    for n in 0..count {
        let node = NodeBuilder::new(&format!("{prefix}{n}"), group).allocatable(allocatable.0, allocatable.1);
        snapshot = snapshot.node(node.requested(requested.0, requested.1, requested.2));
    }
    snapshot
}

#[test]
fn small_pods_go_to_fargate_when_ec2_is_full() {
    // 250m / 512Mi: Fargate bills 0.25 vCPU / 1 GB = $0.0146/h; EC2 share is 12.5% of a node
    // at 80% packing = $0.015/h.
    let snapshot = cluster().workload(deployment("web", "api", 3, "250m", "512Mi")).build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot).unwrap();
    assert_eq!(place(&decisions), vec![("api".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "Fargate 0.25 vCPU / 1 GiB");
}

/// Fargate bills a pod's disk beyond the 20 GiB included (interface 0.1.15). The api's pods
/// asking 20Gi are given 27 GiB and billed for 7: $0.0153/h a pod against $0.0146/h without,
/// still under a new m5.large's $0.0320/h a pod. Asking 160Gi, 161 GiB are billed ($0.0179/h
/// more, $0.0324/h a pod): EC2 costs less.
#[test]
fn a_pods_disk_beyond_what_fargate_includes_counts_in_its_price() {
    let with_disk = |gib: u64| {
        let mut api = deployment("web", "api", 3, "250m", "512Mi");
        api.requests_per_replica.ephemeral_storage_bytes = gib << 30;
        Harness::<FargatePlacement>::new().evaluate(&cluster().workload(api).build()).unwrap()
    };
    let decisions = with_disk(20);
    assert_eq!(place(&decisions), vec![("api".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "Fargate 0.25 vCPU / 1 GiB / 7 GiB of disk beyond the 20 included at $0.0153/h");
    let decisions = with_disk(160);
    assert_eq!(place(&decisions), vec![("api".into(), PlacementTarget::Ec2(None))]);
    assert_first_reason(&decisions, "at $0.0324/h per replica vs EC2 $0.0320/h");
}

#[test]
fn rounding_makes_awkward_sizes_cheaper_on_ec2() {
    // 250m / 1800Mi plus 256 MiB overhead passes 2 GB, so Fargate bills 0.5 vCPU / 3 GB
    // ($0.0336/h); 13 replicas fill four m5.large at 80% packing ($0.0295/h each).
    let snapshot = cluster().workload(deployment("batch", "etl", 13, "250m", "1800Mi")).build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot).unwrap();
    assert_eq!(place(&decisions), vec![("etl".into(), PlacementTarget::Ec2(None))]);
    assert_first_reason(&decisions, "in group m5");
}

#[test]
fn a_few_replicas_stay_on_fargate_and_the_peak_moves_to_ec2() {
    // 1050m / 1Gi: Fargate bills 2 vCPU / 4 GB, $0.0988/h a replica. An m5.xlarge at 80%
    // packing holds three ($0.064/h each), but one replica alone costs the whole node.
    let cluster = |replicas: u32| {
        let mut report = deployment("internal", "report", replicas, "1050m", "1Gi");
        report.placement = Placement::Fargate;
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("m5x").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(0, 1, 10))
            .group(GroupBuilder::fargate())
            .workload(report)
            .build()
    };
    // Night: one replica would need a node of its own ($0.192/h). It stays.
    let decisions = Harness::<FargatePlacement>::new().evaluate(&cluster(1)).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    // The peak: twelve replicas fill four nodes, 35% cheaper than Fargate. It moves.
    let decisions = Harness::<FargatePlacement>::new().evaluate(&cluster(12)).unwrap();
    assert_eq!(place(&decisions), vec![("report".into(), PlacementTarget::Ec2(None))]);
    assert_first_reason(&decisions, "in group m5x (4 new nodes at $0.1920/h");
}

#[test]
fn spare_room_on_running_nodes_is_free() {
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 1, 10))
        .node(NodeBuilder::new("empty", "m5").allocatable("2", "8Gi"))
        .group(GroupBuilder::fargate())
        .workload(deployment("web", "api", 3, "250m", "512Mi"))
        .build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot).unwrap();
    assert_eq!(place(&decisions), vec![("api".into(), PlacementTarget::Ec2(None))]);
    assert_first_reason(&decisions, "spare room");
}

#[test]
fn ineligible_workloads_are_never_sent_to_fargate() {
    let mut agent = deployment("kube-system", "node-agent", 1, "100m", "128Mi");
    agent.id.kind = WorkloadKind::DaemonSet;
    agent.fargate_blocker = Some("DaemonSet".into());
    let mut db = deployment("data", "db", 1, "250m", "512Mi");
    db.fargate_blocker = Some("mounts an EBS volume (PVC data-db-0)".into());
    let snapshot = cluster().workload(agent).workload(db).build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn placed_workloads_stay_unless_the_saving_beats_hysteresis() {
    // On EC2, on a node short of CPU: its leaving frees 750m of 1600m (an m5.large at 80%
    // packing), 0.47 of a node, $0.0150/h a replica against Fargate's $0.0146/h, 3% less.
    let on_ec2 = || {
        let mut api = deployment("web", "api", 3, "250m", "512Mi");
        api.placement = Placement::Ec2(Some("m5".into()));
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 1, 10))
            .node(NodeBuilder::new("full", "m5").allocatable("2", "8Gi").requested("1900m", "2Gi", 12))
            .group(GroupBuilder::fargate())
            .workload(api)
            .build()
    };
    let decisions = Harness::<FargatePlacement>::new().evaluate(&on_ec2()).unwrap();
    assert!(place(&decisions).is_empty(), "under the 10% hysteresis nothing moves: {decisions:?}");
    let mut eager = Harness::<FargatePlacement>::with_settings(serde_json::json!({"hysteresis": 0.01})).unwrap();
    let decisions = eager.evaluate(&on_ec2()).unwrap();
    assert_eq!(place(&decisions), vec![("api".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "0.47 of its nodes at 80% packing freed if it left");
}

#[test]
fn leaving_a_group_held_at_its_min_size_frees_nothing() {
    // Three m5.large the group's min-size keeps, 1 CPU requested on each, 750m of it the
    // api's, and every pod slot taken (so the api would not fit in spare room again).
    // Leaving would free 0.47 of a node at 80% packing ($0.0150/h a replica, 3% over
    // Fargate's $0.0146/h: it moves at a 1% hysteresis), but the group cannot shrink below
    // three nodes, so it frees nothing and the api stays, at any hysteresis.
    let cluster = |min: u32| {
        let mut api = deployment("web", "api", 3, "250m", "512Mi");
        api.placement = Placement::Ec2(Some("m5".into()));
        let snapshot = SnapshotBuilder::new()
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(min, 3, 10))
            .group(GroupBuilder::fargate())
            .workload(api);
        with_nodes(snapshot, ("n", "m5", 3), ("2", "8Gi"), ("1", "1Gi", 110)).build()
    };
    let mut eager = Harness::<FargatePlacement>::with_settings(serde_json::json!({"hysteresis": 0.01})).unwrap();
    assert!(place(&eager.evaluate(&cluster(3)).unwrap()).is_empty());
    let decisions = eager.evaluate(&cluster(0)).unwrap();
    assert_eq!(place(&decisions), vec![("api".into(), PlacementTarget::Fargate)]);
}

#[test]
fn a_workload_that_fills_what_a_group_short_of_memory_leaves_stays_on_ec2() {
    // 22 replicas of 1 CPU / 1Gi (Fargate bills 1 vCPU / 2 GB, $0.0494/h) on nine m5.xlarge
    // whose memory is all requested, by them and memory-heavy pods, and their CPU 27 of 36.
    // By its share of nodes at 80% packing (22 of 3.2 CPUs a node: $0.060/h a replica)
    // Fargate would be 18% cheaper. But memory binds the group: leaving frees 22Gi of
    // 144Gi, 1.7 nodes of 12.8Gi, $0.015/h a replica. It stays.
    let workload = || {
        let mut compute = deployment("batch", "compute", 22, "1", "1Gi");
        compute.placement = Placement::Ec2(Some("m5x".into()));
        compute
    };
    let group = |nodes| GroupBuilder::asg("m5x").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(0, nodes, 30);
    let beside = SnapshotBuilder::new().group(group(9)).group(GroupBuilder::fargate()).workload(workload());
    let beside = with_nodes(beside, ("n", "m5x", 9), ("4", "16Gi"), ("3", "16Gi", 8));
    let decisions = Harness::<FargatePlacement>::new().evaluate(&beside.build()).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    // The same when the cluster starts: every pod waits, and the group's load is theirs.
    let cold = SnapshotBuilder::new()
        .group(group(0))
        .group(GroupBuilder::fargate())
        .workload(workload())
        .pending_pods("batch", "compute", 22, "1", "1Gi")
        .pending_pods("data", "cache", 25, "200m", "4900Mi")
        .build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&cold).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    // Alone on its nodes, leaving frees its whole share, and it goes to Fargate.
    let alone = SnapshotBuilder::new().group(group(8)).group(GroupBuilder::fargate()).workload(workload());
    let alone = with_nodes(alone, ("n", "m5x", 6), ("4", "16Gi"), ("3", "3Gi", 3));
    let alone = with_nodes(alone, ("m", "m5x", 2), ("4", "16Gi"), ("2", "2Gi", 2));
    let decisions = Harness::<FargatePlacement>::new().evaluate(&alone.build()).unwrap();
    assert_eq!(place(&decisions), vec![("compute".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "6.88 of its nodes at 80% packing freed if it left");
}

#[test]
fn a_workload_in_a_dear_group_is_not_sent_to_fargate_when_a_cheaper_group_would_take_it() {
    // 2 vCPU / 256Mi pods: Fargate bills 2 vCPU / 4 GB, $0.0987/h. On the on-demand
    // m5.xlarge group they run in, each costs half a node at 80% packing: $0.12/h, so
    // Fargate looks 18% cheaper. On spot m5.2xlarge at $0.1344/h each costs a quarter of a
    // node at 80% packing: $0.042. Sent to Fargate, the next tick would have brought it back
    // to EC2.
    let mut api = deployment("shop", "api", 4, "2", "256Mi");
    api.placement = Placement::Ec2(Some("on-demand".into()));
    let group = |id: &str, name, cpu, memory, price| GroupBuilder::asg(id).instance_type(name, cpu, memory, price);
    let snapshot = SnapshotBuilder::new()
        .group(group("on-demand", "m5.xlarge", "4", "16Gi", 0.192).sizes(0, 2, 20))
        .group(group("spot", "m5.2xlarge", "8", "32Gi", 0.1344).sizes(0, 0, 20).label(CAPACITY_TYPE_LABEL, "SPOT"))
        .group(GroupBuilder::fargate())
        .node(NodeBuilder::new("a", "on-demand").allocatable("4", "16Gi").requested("4", "512Mi", 2))
        .node(NodeBuilder::new("b", "on-demand").allocatable("4", "16Gi").requested("4", "512Mi", 2))
        .workload(api)
        .build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn a_group_short_of_memory_elsewhere_takes_a_cpu_heavy_workload_for_little() {
    // 22 replicas of 1 CPU / 1Gi alone on on-demand m5.xlarge: leaving frees 6.9 nodes at
    // 80% packing, $0.060/h a replica, and Fargate ($0.0494/h) is 18% cheaper. But an r5
    // group beside it is bound by memory (28Gi of 32Gi requested on each of ten nodes, 1 CPU):
    // its nodes keep 30 CPUs it hardly uses, and the workload's coming adds 0.86 of a node
    // there ($0.010/h a replica). EC2 at its best wins; it stays. (Every pod slot is taken,
    // so that spare room does not hold it and decide alone.)
    let mut compute = deployment("batch", "compute", 22, "1", "1Gi");
    compute.placement = Placement::Ec2(Some("od".into()));
    let snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("od").instance_type("m5.xlarge", "4", "16Gi", 0.192).sizes(0, 8, 30))
        .group(GroupBuilder::asg("mem").instance_type("r5.xlarge", "4", "32Gi", 0.252).sizes(0, 10, 30))
        .group(GroupBuilder::fargate())
        .workload(compute);
    let snapshot = with_nodes(snapshot, ("od", "od", 6), ("4", "16Gi"), ("3", "3Gi", 110));
    let snapshot = with_nodes(snapshot, ("odx", "od", 2), ("4", "16Gi"), ("2", "2Gi", 110));
    let snapshot = with_nodes(snapshot, ("mem", "mem", 10), ("4", "32Gi"), ("1", "28Gi", 110));
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot.build()).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn nothing_the_host_would_refuse_for_a_standing_reason_is_proposed() {
    // No Fargate profile: the same small pods that go to Fargate above stay put.
    let no_profile = SnapshotBuilder::new()
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 1, 10))
        .node(NodeBuilder::new("full", "m5").allocatable("2", "8Gi").requested("1900m", "7Gi", 12))
        .workload(deployment("web", "api", 3, "250m", "512Mi"))
        .build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&no_profile).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    // A workload with no replicas has nothing to place yet.
    let idle = cluster().workload(deployment("data", "crunch", 0, "250m", "512Mi")).build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&idle).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    // A workload the host moved a minute ago is held by its placement cooldown (30 minutes
    // here); once that has passed, the same snapshot sends it to Fargate.
    let api = || deployment("web", "api", 3, "250m", "512Mi");
    let moved = |now: u64| cluster().at_millis(now).workload(api()).placed_at(api().id, 0, 1800).build();
    let decisions = Harness::<FargatePlacement>::new().evaluate(&moved(60_000)).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    let decisions = Harness::<FargatePlacement>::new().evaluate(&moved(1_800_000)).unwrap();
    assert_eq!(place(&decisions), vec![("api".into(), PlacementTarget::Fargate)]);
}

#[test]
fn a_tainted_spot_group_the_pods_tolerate_is_weighed_before_fargate() {
    // 14 cache replicas (250m / 3Gi) on seven on-demand m5.large: leaving frees 6.56 nodes
    // at 80% packing, $0.0450/h a replica, 16% over Fargate's $0.0380/h. A spot group of
    // r5.large at $0.03/h, tainted, would hold them for $0.0070/h a replica: pods that
    // tolerate its taint stay on EC2; pods that do not go to Fargate.
    let cluster = |tolerate: bool| {
        let mut cache = deployment("data", "cache", 14, "250m", "3Gi");
        cache.placement = Placement::Ec2(Some("od".into()));
        let mut snapshot = SnapshotBuilder::new()
            .group(GroupBuilder::asg("od").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 7, 20))
            .group(
                GroupBuilder::asg("spot")
                    .instance_type("r5.large", "2", "16Gi", 0.03)
                    .sizes(0, 0, 20)
                    .label(CAPACITY_TYPE_LABEL, "SPOT")
                    .taint("capacity", "spot", TaintEffect::NoSchedule),
            )
            .group(GroupBuilder::fargate())
            .workload(cache);
        let spot = Toleration { key: "capacity".into(), value: "spot".into(), operator_exists: false, effect: None };
        for n in 0..7 {
            let mut pods = running("data", "cache", 2, "250m", "3Gi");
            if tolerate {
                pods.tolerations.push(spot.clone());
            }
            let node = NodeBuilder::new(&format!("od{n}"), "od").allocatable("2", "8Gi");
            snapshot = snapshot.node(node).pods_on(&format!("od{n}"), pods);
        }
        snapshot.build()
    };
    let decisions = Harness::<FargatePlacement>::new().evaluate(&cluster(false)).unwrap();
    assert_eq!(place(&decisions), vec![("cache".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "in group od (6.56 of its nodes");
    let decisions = Harness::<FargatePlacement>::new().evaluate(&cluster(true)).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn a_workload_spread_over_two_groups_is_counted_once_in_each() {
    // 24 api replicas (240m / 200Mi: Fargate bills 0.25 vCPU / 0.5 GiB, $0.0123/h), six on
    // each of four nodes, two in each of two groups held at min-size 2 ($0.11/h a node,
    // 1,600m at 80% packing). All of it in one group takes 3.6 nodes, 1.6 over the two the
    // group keeps anyway: $0.0073/h a replica, and it stays on EC2. Counted on top of the
    // half a group already runs, it would add 3.4 nodes ($0.0156/h): Fargate by 21%.
    let mut api = deployment("web", "api", 24, "240m", "200Mi");
    api.placement = Placement::Ec2(None);
    let mut snapshot = SnapshotBuilder::new().group(GroupBuilder::fargate()).workload(api);
    for group in ["a", "b"] {
        snapshot = snapshot.group(GroupBuilder::asg(group).instance_type("m5.large", "2", "8Gi", 0.11).sizes(2, 2, 10));
        for n in 0..2 {
            let node = format!("{group}{n}");
            snapshot = snapshot
                .node(NodeBuilder::new(&node, group).allocatable("2", "8Gi"))
                .pods_on(&node, running("web", "api", 6, "240m", "200Mi"));
        }
    }
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot.build()).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn a_group_at_its_max_is_no_ec2_option() {
    // Four api replicas (500m / 1Gi, Fargate $0.0291/h each) take two m5.large. In the spot
    // group at $0.03/h a node that is $0.015/h a replica, but it is at its max of two nodes,
    // both full: the pods would go on-demand at $0.096/h a node, $0.048/h a replica, dearer
    // than Fargate.
    let snapshot = with_nodes(
        SnapshotBuilder::new()
            .group(GroupBuilder::asg("spot").instance_type("m5.large", "2", "8Gi", 0.03).sizes(0, 2, 2))
            .group(GroupBuilder::asg("od").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 10))
            .group(GroupBuilder::fargate())
            .workload(deployment("web", "api", 4, "500m", "1Gi")),
        ("s", "spot", 2),
        ("2", "8Gi"),
        ("1900m", "7Gi", 12),
    );
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot.build()).unwrap();
    assert_eq!(place(&decisions), vec![("api".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "in group od");
}

/// At `at`, a 2 CPU / 1Gi workload of `replicas` on Fargate beside an r5.xlarge group
/// ($0.252/h, 4 CPU / 32Gi) whose `(count, cpu, memory, pods)` Ready nodes each request
/// what the tuple says.
fn burst_beside_r5(at: u64, replicas: u32, (count, cpu, memory, pods): (u32, &str, &str, u32)) -> SnapshotData {
    let mut burst = deployment("batch", "burst", replicas, "2", "1Gi");
    burst.placement = Placement::Fargate;
    let snapshot = SnapshotBuilder::new()
        .at_millis(at)
        .group(GroupBuilder::asg("r5x").instance_type("r5.xlarge", "4", "32Gi", 0.252).sizes(0, 4, 50))
        .group(GroupBuilder::fargate())
        .workload(burst);
    with_nodes(snapshot, ("n", "r5x", count), ("4", "32Gi"), (cpu, memory, pods)).build()
}

#[test]
fn a_workload_on_fargate_comes_back_to_room_its_group_keeps_but_not_between_bursts() {
    // Four r5.xlarge kept for memory (30 of 32Gi requested on each: 4.69 nodes of 25.6Gi at
    // 80% packing), their CPU nearly idle (500m of 4). A 2 CPU / 1Gi workload on Fargate
    // bills 2 vCPU / 4 GB, $0.0987/h a replica. Three replicas fit in the CPU those nodes
    // keep: their memory adds 0.12 of a node, and it comes back, to EC2, not pinned to the
    // group. Thirty would need 15 more nodes ($0.126/h a replica), so while thirty ran
    // within the last 30 minutes it stays.
    let minute = 60_000;
    let cluster = |replicas: u32, at: u64| burst_beside_r5(at, replicas, (4, "500m", "30Gi", 4));
    let back = vec![("burst".into(), PlacementTarget::Ec2(None))];
    let decisions = Harness::<FargatePlacement>::new().evaluate(&cluster(3, 0)).unwrap();
    assert_eq!(place(&decisions), back);
    assert_first_reason(&decisions, "in group r5x (0.12 new nodes at $0.2520/h for 3 replicas");

    let mut harness = Harness::<FargatePlacement>::new();
    assert!(place(&harness.evaluate(&cluster(30, 0)).unwrap()).is_empty(), "at its peak it stays");
    let decisions = harness.evaluate(&cluster(3, 29 * minute)).unwrap();
    assert!(place(&decisions).is_empty(), "thirty ran 29 minutes ago: {decisions:?}");
    let decisions = harness.evaluate(&cluster(3, 31 * minute)).unwrap();
    assert_eq!(place(&decisions), back, "the peak is past the window");
    assert_first_reason(&decisions, "for 3 replicas, the most it ran within 1800s, beside the group's least load then");
}

#[test]
fn settings_errors_name_the_field_and_the_value() {
    let err = Harness::<FargatePlacement>::with_settings(serde_json::json!({"peak-window-seconds": 700_000})).err();
    let err = err.expect("a window over a week is refused");
    assert!(err.contains("peak-window-seconds must be at most 604800 (a week), got 700000"), "{err}");
    let err = Harness::<FargatePlacement>::with_settings(serde_json::json!({"full-group-wait-seconds": 90_000})).err();
    let err = err.expect("a wait over a day is refused");
    assert!(err.contains("full-group-wait-seconds must be at most 86400 (a day), got 90000"), "{err}");
}

#[test]
fn a_workload_on_fargate_does_not_come_back_to_room_a_batch_run_keeps_for_minutes() {
    // The r5.xlarge group of the test above, its four memory-bound nodes kept only while a
    // batch runs: before it, one node holds 500m / 2Gi. Three replicas of 2 CPU would need
    // two more nodes beside that load ($0.168/h a replica against Fargate's $0.0987/h), so
    // the room the run keeps is no reason to come back until it has been kept for the window.
    let minute = 60_000;
    let cluster = |at: u64, batch: bool| {
        let nodes = if batch { (4, "500m", "30Gi", 4) } else { (1, "500m", "2Gi", 2) };
        burst_beside_r5(at, 3, nodes)
    };
    let mut harness = Harness::<FargatePlacement>::new();
    assert!(place(&harness.evaluate(&cluster(0, false)).unwrap()).is_empty());
    let decisions = harness.evaluate(&cluster(5 * minute, true)).unwrap();
    assert!(place(&decisions).is_empty(), "the run's room is minutes old: {decisions:?}");
    let decisions = harness.evaluate(&cluster(31 * minute, true)).unwrap();
    assert_eq!(place(&decisions), vec![("burst".into(), PlacementTarget::Ec2(None))]);
    assert_first_reason(&decisions, "in group r5x");
}

#[test]
fn the_state_follows_only_workloads_on_fargate() {
    // A cluster's many workloads on EC2 cost the state nothing: it crosses the plugin
    // boundary on every call.
    let mut api = deployment("web", "api", 3, "250m", "512Mi");
    api.placement = Placement::Ec2(Some("r5x".into()));
    let mut snapshot = burst_beside_r5(0, 30, (4, "500m", "30Gi", 4));
    snapshot.workloads.push(api);
    let mut harness = Harness::<FargatePlacement>::new();
    assert!(place(&harness.evaluate(&snapshot).unwrap()).is_empty());
    let state = String::from_utf8_lossy(harness.state().unwrap()).into_owned();
    assert!(state.contains("batch/burst") && !state.contains("web/api"), "{state}");
}

/// At `at`, the 2 CPU / 1Gi workload of three replicas on Fargate ($0.0987/h a replica)
/// beside a spot group of 4 CPU / 16Gi nodes at $0.06/h ($0.0375/h a replica packed at 80%),
/// `desired` of its `max` nodes Ready, each requesting `(cpu, memory, pods)`.
fn burst_beside_spot(at: u64, (desired, max): (u32, u32), requested: (&str, &str, u32)) -> SnapshotData {
    let mut burst = deployment("batch", "burst", 3, "2", "1Gi");
    burst.placement = Placement::Fargate;
    let snapshot = SnapshotBuilder::new()
        .at_millis(at)
        .group(GroupBuilder::asg("spot").instance_type("m5.xlarge", "4", "16Gi", 0.06).sizes(0, desired, max))
        .group(GroupBuilder::fargate())
        .workload(burst);
    with_nodes(snapshot, ("s", "spot", desired), ("4", "16Gi"), requested).build()
}

#[test]
fn a_workload_on_fargate_does_not_come_back_to_a_group_at_its_max() {
    // Two quiet spot nodes: three replicas need two more ($0.04/h a replica), and they come
    // back (the host has not moved them yet). Ten minutes later a neighbour's spike has
    // taken the group to its max of ten, every node busy. Beside the least load of the last
    // 30 minutes (the quiet two) they would still need only two more, but the group cannot
    // grow: the pods would wait.
    let minute = 60_000;
    let back = vec![("burst".into(), PlacementTarget::Ec2(None))];
    let mut harness = Harness::<FargatePlacement>::new();
    let decisions = harness.evaluate(&burst_beside_spot(0, (2, 10), ("500m", "2Gi", 2))).unwrap();
    assert_eq!(place(&decisions), back);
    assert_first_reason(&decisions, "in group spot (2 new nodes at $0.0600/h for 3 replicas");
    let spike = burst_beside_spot(10 * minute, (10, 10), ("3500m", "8Gi", 6));
    let decisions = harness.evaluate(&spike).unwrap();
    assert!(place(&decisions).is_empty(), "the group is at its max: {decisions:?}");
}

/// At `at`, nine 1 CPU / 256Mi replicas placed at `placement` beside an m5.2xlarge group
/// ($0.384/h, 6.4 CPU at 80% packing) whose first node runs 3 CPU of another workload. On
/// EC2 the nine fill that node and run four on a second.
fn nine_beside_m5_2xlarge(at: u64, placement: Placement) -> SnapshotData {
    let on_ec2 = placement != Placement::Fargate;
    let mut crunch = deployment("batch", "crunch", 9, "1", "256Mi");
    crunch.placement = placement;
    let mut snapshot = SnapshotBuilder::new()
        .at_millis(at)
        .group(GroupBuilder::asg("m5x2").instance_type("m5.2xlarge", "8", "32Gi", 0.384).sizes(0, 1, 20))
        .group(GroupBuilder::fargate())
        .workload(crunch)
        .node(NodeBuilder::new("a", "m5x2").allocatable("8", "32Gi"))
        .pods_on("a", running("web", "api", 3, "1", "1Gi"));
    if on_ec2 {
        snapshot = snapshot
            .pods_on("a", running("batch", "crunch", 5, "1", "256Mi"))
            .node(NodeBuilder::new("b", "m5x2").allocatable("8", "32Gi"))
            .pods_on("b", running("batch", "crunch", 4, "1", "256Mi"));
    }
    snapshot.build()
}

#[test]
fn a_workload_sent_to_fargate_is_not_called_back_by_the_slack_of_the_last_node() {
    // On EC2 the nine free 1.41 nodes if they leave ($0.0600/h a replica): Fargate bills
    // 1 vCPU / 2 GB, $0.0494/h, 18% less, and they go. On Fargate the tick after, beside the
    // 3 CPU left (0.47 of a node), whole nodes would say one more node ($0.0427/h a
    // replica, 13% under Fargate): the last node's slack would call them back, to leave
    // again. Their return is priced at no less than the share their leaving freed.
    let mut harness = Harness::<FargatePlacement>::new();
    let decisions = harness.evaluate(&nine_beside_m5_2xlarge(0, Placement::Ec2(Some("m5x2".into())))).unwrap();
    assert_eq!(place(&decisions), vec![("crunch".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "1.41 of its nodes at 80% packing freed if it left");
    let decisions = harness.evaluate(&nine_beside_m5_2xlarge(10_000, Placement::Fargate)).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn workloads_that_share_a_group_are_weighed_one_after_another_not_each_against_all() {
    // Five r5.xlarge (3.2 CPU / 25.6Gi at 80% packing) run a cache kept for its memory
    // (8 x 100m / 9Gi, Fargate cannot run it) and two CPU-bound workloads of 8 x 1 CPU /
    // 256Mi (Fargate: 1 vCPU / 2 GB, $0.0494/h). The group needs 5.25 nodes for its CPU,
    // 2.97 for its memory. Either one leaving frees 2.36 nodes ($0.0743/h a replica), but
    // once one has left the other frees 0.08: memory binds. Weighed each against the other
    // staying, both went, and each was then cheap to bring back.
    let mut cache = deployment("data", "cache", 8, "100m", "9Gi");
    cache.fargate_blocker = Some("mounts an EBS-backed volume".into());
    let mut snapshot = SnapshotBuilder::new()
        .group(GroupBuilder::asg("r5x").instance_type("r5.xlarge", "4", "32Gi", 0.252).sizes(0, 5, 20))
        .group(GroupBuilder::fargate())
        .workload(cache);
    for name in ["a", "b"] {
        let mut crunch = deployment("batch", name, 8, "1", "256Mi");
        crunch.placement = Placement::Ec2(Some("r5x".into()));
        snapshot = snapshot.workload(crunch);
    }
    let pods = |name: &str, count| match name {
        "cache" => running("data", "cache", count, "100m", "9Gi"),
        _ => running("batch", name, count, "1", "256Mi"),
    };
    let layout = [
        ("n0", vec![pods("cache", 3), pods("a", 3)]),
        ("n1", vec![pods("cache", 3), pods("b", 3)]),
        ("n2", vec![pods("cache", 2), pods("a", 3)]),
        ("n3", vec![pods("a", 2), pods("b", 2)]),
        ("n4", vec![pods("b", 3)]),
    ];
    for (node, shapes) in layout {
        snapshot = snapshot.node(NodeBuilder::new(node, "r5x").allocatable("4", "32Gi"));
        for shape in shapes {
            snapshot = snapshot.pods_on(node, shape);
        }
    }
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot.build()).unwrap();
    assert_eq!(place(&decisions), vec![("a".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "2.36 of its nodes at 80% packing freed if it left");
}

#[test]
fn workloads_brought_back_are_weighed_one_after_another_not_each_against_the_least_load() {
    // Four c5.xlarge (3.2 CPU / 6.4Gi at 80% packing) kept for their CPU: 12 CPU / 4Gi
    // requested, 3.75 nodes. Two workloads on Fargate, each 8 x 250m / 3Gi (Fargate: 0.5
    // vCPU / 4 GB, $0.0380/h a replica). Either one alone fits beside that load in one more
    // node ($0.0213/h a replica), but the first back makes memory bind, and the second
    // would then need four ($0.0850/h). Each weighed against the least load alone, both
    // came back, and once both were back, each freed 3.75 nodes if it left. The tick after,
    // the first one's pods wait for the group, not yet in its least load: the second stays.
    let cluster = |at: u64, a: Placement| {
        let mut snapshot = SnapshotBuilder::new()
            .at_millis(at)
            .group(GroupBuilder::asg("c5x").instance_type("c5.xlarge", "4", "8Gi", 0.17).sizes(0, 4, 20))
            .group(GroupBuilder::fargate());
        for (name, placement) in [("a", a.clone()), ("b", Placement::Fargate)] {
            let mut cache = deployment("data", name, 8, "250m", "3Gi");
            cache.placement = placement;
            snapshot = snapshot.workload(cache);
        }
        if a != Placement::Fargate {
            snapshot = snapshot.pending_pods("data", "a", 8, "250m", "3Gi");
        }
        with_nodes(snapshot, ("n", "c5x", 4), ("4", "8Gi"), ("3", "1Gi", 4)).build()
    };
    let mut harness = Harness::<FargatePlacement>::new();
    let decisions = harness.evaluate(&cluster(0, Placement::Fargate)).unwrap();
    assert_eq!(place(&decisions), vec![("a".into(), PlacementTarget::Ec2(None))]);
    assert_first_reason(&decisions, "in group c5x (1 new node at $0.1700/h for 8 replicas");
    let decisions = harness.evaluate(&cluster(10_000, Placement::Ec2(None))).unwrap();
    assert!(place(&decisions).is_empty(), "{decisions:?}");
}

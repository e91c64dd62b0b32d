//! fargate-placement and pods that wait for a group at its max-size with no room for them,
//! tested natively.

use ballast_sdk::prelude::*;
use ballast_sdk::testing::{GroupBuilder, Harness, NodeBuilder, SnapshotBuilder, deployment, running};
use fargate_placement::FargatePlacement;
use support::{assert_first_reason, place};

mod support;

/// Two m5.large (2 CPU / 8Gi) at `(desired, max)` with `ready` of them Ready, running
/// `running` (workload, pods) each, and `waiting` (workload, pods) pending for `waited`
/// seconds; every pod 250m / 1800Mi (Fargate bills 0.5 vCPU / 3 GB, $0.0336/h; on EC2
/// memory binds at about a quarter of a node, $0.026/h).
fn full_group(
    (desired, max, ready): (u32, u32, u32),
    running: [(&str, u32); 2],
    waiting: &[(&str, usize)],
    waited: u64,
) -> SnapshotData {
    let group = GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096);
    let mut snapshot =
        SnapshotBuilder::new().group(group.sizes(0, desired, max).ready_nodes(ready)).group(GroupBuilder::fargate());
    for (n, (name, pods)) in running.iter().enumerate() {
        let node = format!("n{n}");
        snapshot = snapshot.node(NodeBuilder::new(&node, "m5").allocatable("2", "8Gi"));
        snapshot = snapshot.pods_on(&node, self::running("web", name, *pods, "250m", "1800Mi"));
    }
    let mut names: Vec<&str> = running.iter().map(|(name, _)| *name).collect();
    names.dedup();
    for name in names {
        let pods = running.iter().filter(|(n, _)| *n == name).map(|(_, p)| p).sum::<u32>();
        let waits = waiting.iter().filter(|(n, _)| *n == name).map(|(_, p)| *p).sum::<usize>();
        let mut workload = deployment("web", name, pods + waits as u32, "250m", "1800Mi");
        workload.placement = Placement::Ec2(None);
        snapshot = snapshot.workload(workload);
        for i in 0..waits {
            snapshot = snapshot.pending_pod(PendingPod {
                namespace: "web".into(),
                name: format!("{name}-{i}"),
                requests: Resources::pod(250, 1800 << 20),
                owner: Some(WorkloadRef { kind: WorkloadKind::Deployment, namespace: "web".into(), name: name.into() }),
                age_seconds: waited,
                ..PendingPod::default()
            });
        }
    }
    snapshot.build()
}

#[test]
fn pods_waiting_for_a_full_group_at_its_max_go_to_fargate_though_ec2_is_cheaper() {
    let evaluate = |snapshot: &SnapshotData| Harness::<FargatePlacement>::new().evaluate(snapshot).unwrap();
    // Six replicas run on the group's two nodes at its max-size; four more have waited five
    // minutes, and the load (10 x 1800Mi) needs 2.75 nodes at 80% packing. A replica costs
    // less on EC2 than on Fargate, but the four would wait as long as the load stays; the
    // move costs $0.07/h over EC2, less than the four on Fargate ($0.13/h).
    let decisions = evaluate(&full_group((2, 2, 2), [("front", 3), ("front", 3)], &[("front", 4)], 300));
    assert_eq!(place(&decisions), vec![("front".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "4 of its pods wait for group m5 at its max-size of 2, every node Ready");
    // Below its max, the group grows for them (the scale-up policy's call): EC2 is cheaper.
    let decisions = evaluate(&full_group((2, 5, 2), [("front", 3), ("front", 3)], &[("front", 4)], 300));
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    // At its max with a node still booting, they may land on it.
    let decisions = evaluate(&full_group((2, 2, 1), [("front", 3), ("front", 3)], &[("front", 4)], 300));
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    // Waiting a minute, they may be a spike's peak or wait for a repacking.
    let decisions = evaluate(&full_group((2, 2, 2), [("front", 3), ("front", 3)], &[("front", 4)], 60));
    assert!(place(&decisions).is_empty(), "{decisions:?}");
    // One of nine waiting: moving the nine costs $0.07/h over EC2, more than the one would
    // on Fargate ($0.03/h). It stays.
    let decisions = evaluate(&full_group((2, 2, 2), [("front", 4), ("front", 4)], &[("front", 1)], 300));
    assert!(place(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn of_workloads_waiting_for_one_full_group_only_as_many_go_as_make_room() {
    // "a" and "b" run three replicas each, one of each has waited five minutes: 8 x 1800Mi,
    // 2.2 nodes at 80% packing, past the max of 2. Once "a" is sent to Fargate, "b"'s four
    // fit in 1.1 nodes: it stays on EC2, where it is cheaper.
    let snapshot = full_group((2, 2, 2), [("a", 3), ("b", 3)], &[("a", 1), ("b", 1)], 300);
    let decisions = Harness::<FargatePlacement>::new().evaluate(&snapshot).unwrap();
    assert_eq!(place(&decisions), vec![("a".into(), PlacementTarget::Fargate)]);
    assert_first_reason(&decisions, "1 of its pods waits for group m5");
}

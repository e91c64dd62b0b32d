//! Ephemeral storage: what disk a group's new node offers pods, and the waiting pods that
//! ask more than any group's does.
//!
//! A pod's `ephemeral-storage` request is held against a node's allocatable as CPU and memory
//! are: a node bought for a pod its disk cannot hold leaves it waiting, and a policy that
//! reads CPU and memory alone buys another. Policies see disks since contract 0.1.14, but
//! one built before, or with an SDK that does not read the `*-storage` getters, does not, so
//! the host takes the pods no group's disk holds out of what policies see and says why, as
//! Cluster Autoscaler posts `NotTriggerScaleUp` for them.

use std::collections::HashMap;
use std::sync::Arc;

use ballast_sdk::{NodeGroup, NodeGroupKind, PendingPod, Resources, Workload};

use super::ports::{PassOver, PassedOverPod};
use super::unplaceable::FargateFallback;

/// Gives each Auto Scaling group whose disk no one has said (no node-template tag, no volume
/// in its launch template) the disk its nodes report: the least allocatable ephemeral
/// storage among them, as Cluster Autoscaler takes a running node for its group's template.
///
/// # Caveats
/// A group at zero whose disk nothing says stays not known, and a new node of it is taken to
/// hold any request. A node launched from an older launch template with another volume size
/// counts as any other.
pub fn learn_group_disks(groups: &mut [NodeGroup], nodes: &[ballast_sdk::Node]) {
    let mut reported: HashMap<&str, u64> = HashMap::new();
    for n in nodes.iter().filter(|n| n.allocatable.ephemeral_storage_bytes != Resources::STORAGE_NOT_KNOWN) {
        let Some(group) = n.group.as_deref() else { continue };
        let least = reported.entry(group).or_insert(u64::MAX);
        *least = (*least).min(n.allocatable.ephemeral_storage_bytes);
    }
    for group in groups.iter_mut().filter(|g| g.kind == NodeGroupKind::Asg) {
        let Some(&bytes) = reported.get(group.id.as_str()) else { continue };
        for t in group.instance_types.iter_mut() {
            if t.allocatable.ephemeral_storage_bytes == Resources::STORAGE_NOT_KNOWN {
                t.allocatable.ephemeral_storage_bytes = bytes;
            }
        }
    }
}

/// The waiting pods split into those a new node of some group could hold, and those only
/// its disk refuses: every group that admits the pod and has room for its CPU, memory, GPUs
/// and a pod slot offers less ephemeral storage than it asks, and Fargate may not run it.
///
/// # Guarantees
/// A pod that asks no ephemeral storage is never refused here (the usual case costs one
/// comparison a pod). A pod no group could hold for another reason stays waiting, where
/// [`crate::unplaceable`] names that reason; only the pods a disk-blind policy would scale
/// for in vain are taken out.
pub fn refused_for_disk(
    pending: Vec<PendingPod>,
    groups: &[NodeGroup],
    workloads: &[Workload],
) -> (Vec<PendingPod>, Vec<PassedOverPod>) {
    let growable = ballast_sdk::growable(groups);
    let fargate = FargateFallback::new(groups, workloads);
    let mut refused = Vec::new();
    let waiting = pending
        .into_iter()
        .filter(|pod| match disk_refusal(pod, &growable, &fargate) {
            Some(why) => {
                refused.push(PassedOverPod::taken_out(pod, PassOver::Disk, Arc::from(why)));
                false
            }
            None => true,
        })
        .collect();
    (waiting, refused)
}

/// Why only the disk of every group refuses `pod`, if it does.
fn disk_refusal(
    pod: &PendingPod,
    growable: &[(&NodeGroup, Resources)],
    fargate: &FargateFallback<'_>,
) -> Option<String> {
    let asked = pod.requests.ephemeral_storage_bytes;
    if asked == 0 {
        return None;
    }
    let one = Resources { pods: pod.requests.pods.max(1), ..pod.requests };
    let blind = Resources { ephemeral_storage_bytes: 0, ..one };
    let otherwise: Vec<(&str, u64)> = growable
        .iter()
        .filter(|(g, template)| g.admits(pod) && template.fits(&blind))
        .map(|(g, template)| (g.id.as_str(), template.ephemeral_storage_bytes))
        .collect();
    if otherwise.is_empty() || otherwise.iter().any(|&(_, offered)| offered >= asked) {
        return None;
    }
    if fargate.takes(pod.owner.as_ref()) {
        return None;
    }
    Some(why(asked, &otherwise))
}

fn why(asked: u64, offered: &[(&str, u64)]) -> String {
    let gib = |bytes: u64| ballast_sdk::quantity::display_memory(bytes);
    let groups: Vec<String> = offered.iter().map(|(id, bytes)| format!("{id} {}", gib(*bytes))).collect();
    format!(
        "it asks {} of ephemeral storage and no group's new node offers that much ({}); give a group a larger \
         root volume (and its node-template tag resources/ephemeral-storage while it is at zero)",
        gib(asked),
        crate::unplaceable::named(&groups.iter().map(String::as_str).collect::<Vec<_>>())
    )
}

#[cfg(test)]
mod tests {
    use ballast_sdk::{InstanceType, Node, WorkloadRef};

    use super::*;

    const GIB: u64 = 1 << 30;

    fn group(id: &str, kind: NodeGroupKind, disk: u64) -> NodeGroup {
        let allocatable = Resources { ephemeral_storage_bytes: disk, pods: 29, ..Resources::new(1930, 7 * GIB) };
        let t = InstanceType { name: "m5.large".into(), capacity: allocatable, allocatable, price_per_hour: 0.096 };
        NodeGroup { id: id.into(), kind, max_size: 10, instance_types: vec![t], ..NodeGroup::default() }
    }

    fn pod(name: &str, cpu_millis: u64, disk: u64) -> PendingPod {
        PendingPod {
            namespace: "ci".into(),
            name: name.into(),
            requests: Resources { ephemeral_storage_bytes: disk, ..Resources::pod(cpu_millis, GIB) },
            owner: Some(WorkloadRef { name: "runner".into(), ..WorkloadRef::default() }),
            ..PendingPod::default()
        }
    }

    fn names(pods: &[PendingPod]) -> Vec<&str> {
        pods.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn a_pod_whose_disk_no_group_offers_is_passed_over_and_told_which_groups_offer_what() {
        let groups = [group("general", NodeGroupKind::Asg, 17 * GIB), group("batch", NodeGroupKind::Asg, 8 * GIB)];
        let pending = vec![pod("small", 500, 10 * GIB), pod("large", 500, 50 * GIB), pod("none", 500, 0)];
        let (waiting, refused) = refused_for_disk(pending, &groups, &[]);
        assert_eq!(names(&waiting), ["small", "none"], "general's 17Gi holds 10Gi");
        assert_eq!(refused.len(), 1);
        assert_eq!((&*refused[0].name, refused[0].passed_over.reason), ("large", PassOver::Disk));
        let why = &refused[0].passed_over.why;
        assert!(why.starts_with("it asks 50Gi of ephemeral storage and no group's new node offers that much"), "{why}");
        assert!(why.contains("(general 17Gi, batch 8Gi)"), "{why}");
    }

    /// Only the pods a disk-blind policy would scale for in vain are taken out: a pod no group
    /// holds for its CPU as well waits, to be told why by `unplaceable`, and one that Fargate
    /// may run waits for fargate-placement.
    #[test]
    fn a_pod_refused_for_more_than_its_disk_or_that_fargate_may_run_still_waits() {
        let groups = [group("general", NodeGroupKind::Asg, 17 * GIB), group("fargate", NodeGroupKind::Fargate, 0)];
        let pending = vec![pod("huge", 8000, 50 * GIB)];
        let (waiting, refused) = refused_for_disk(pending, &groups[..1], &[]);
        assert_eq!((names(&waiting), refused.len()), (vec!["huge"], 0), "its CPU fits no group either");
        let runner =
            Workload { id: WorkloadRef { name: "runner".into(), ..WorkloadRef::default() }, ..Workload::default() };
        let (waiting, _) = refused_for_disk(vec![pod("large", 500, 50 * GIB)], &groups, std::slice::from_ref(&runner));
        assert_eq!(names(&waiting), ["large"], "Fargate may run it");
        let blocked = Workload { fargate_blocker: Some("a hostPath volume".into()), ..runner };
        let (waiting, refused) = refused_for_disk(vec![pod("large", 500, 50 * GIB)], &groups, &[blocked]);
        assert_eq!((waiting.len(), refused.len()), (0, 1), "Fargate may not run it");
    }

    #[test]
    fn a_group_whose_disk_is_not_said_takes_the_least_its_nodes_report() {
        let mut groups = [
            group("general", NodeGroupKind::Asg, Resources::STORAGE_NOT_KNOWN),
            group("tagged", NodeGroupKind::Asg, 90 * GIB),
            group("empty", NodeGroupKind::Asg, Resources::STORAGE_NOT_KNOWN),
        ];
        let node = |name: &str, group: &str, disk: u64| Node {
            name: name.into(),
            group: Some(group.into()),
            allocatable: Resources { ephemeral_storage_bytes: disk, ..Resources::ZERO },
            ..Node::default()
        };
        let nodes = [
            node("a", "general", 17 * GIB),
            node("b", "general", 40 * GIB),
            node("c", "general", Resources::STORAGE_NOT_KNOWN),
            node("d", "tagged", 17 * GIB),
        ];
        learn_group_disks(&mut groups, &nodes);
        let disk = |g: &NodeGroup| g.instance_types[0].allocatable.ephemeral_storage_bytes;
        assert_eq!(disk(&groups[0]), 17 * GIB, "the least its nodes report");
        assert_eq!(disk(&groups[1]), 90 * GIB, "a tag says it: its nodes do not override it");
        assert_eq!(disk(&groups[2]), Resources::STORAGE_NOT_KNOWN, "no node, no tag: not known");
        let (waiting, _) = refused_for_disk(vec![pod("large", 500, 500 * GIB)], &groups[2..], &[]);
        assert_eq!(names(&waiting), ["large"], "a disk not known holds any request");
    }
}

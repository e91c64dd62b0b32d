//! Pods that wait and that no capacity can be added for: no new node of any Auto Scaling
//! group would take them (a label no group's nodes carry, a taint they do not tolerate, a
//! request larger than the type a group launches) and Fargate may not run them. No policy can
//! help them, and they wait until someone changes the pod or the groups. Cluster Autoscaler
//! says so with a `NotTriggerScaleUp` event on the pod; Ballast posts the same, once per pod
//! and reason, counts them in each tick record (`unplaceable-pods`) and on `/metrics`
//! (`ballast_unplaceable_pods`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ballast_sdk::{
    NodeGroup, NodeGroupKind, PendingPod, PendingShape, Refusal, Resources, Snapshot, SnapshotData, Workload,
    WorkloadRef,
};

use super::node_labels::ZONE_KEYS;
use super::ports::{Announcement, PassedOverPod, Subject};

/// Events posted on unplaceable pods per tick at most; the others follow on later ticks.
pub const ANNOUNCED_PER_TICK: usize = 20;
/// Groups a reason names before it says how many more.
const NAMED: usize = 3;

/// A pending pod no node group can hold, and why not, group by group.
pub struct Unplaceable<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub why: Arc<str>,
}

/// The waiting pods no new node of any Auto Scaling group with a max-size above 0 would take
/// and Fargate may not run, in pending order.
///
/// # Guarantees
/// A pod is here exactly when [`Snapshot::pods_wait_for_nodes`] would not count it (no group
/// admits it with room on a new node), unless its workload may run on Fargate and a profile
/// exists. The work is one pass over the pending shapes and the groups; pods are named only
/// for the shapes found unplaceable.
pub fn find(snapshot: &SnapshotData) -> Vec<Unplaceable<'_>> {
    let groups = ballast_sdk::growable(&snapshot.node_groups);
    let fargate = FargateFallback::new(&snapshot.node_groups, &snapshot.workloads);
    // Most shapes fit some group: that is asked first, with nothing written; Fargate and the
    // reasons only for the rest.
    let unplaceable: Vec<(&PendingShape, Arc<str>)> = snapshot
        .pending_shapes()
        .iter()
        .filter(|shape| !ballast_sdk::new_node_takes(&groups, shape))
        .filter(|shape| !fargate.takes(shape.owner.as_ref()))
        .map(|shape| (shape, Arc::from(why_not(&groups, shape))))
        .collect();
    if unplaceable.is_empty() {
        return Vec::new();
    }
    snapshot
        .pending_pods
        .iter()
        .filter_map(|pod| {
            let (_, why) = unplaceable.iter().find(|(shape, _)| of_shape(pod, shape))?;
            Some(Unplaceable { namespace: &pod.namespace, name: &pod.name, why: why.clone() })
        })
        .collect()
}

/// The pods the host took out of the snapshot because no capacity added could run them (no
/// group's disk holds them, [`crate::disk`], or too few zones, [`crate::zone_domains`]):
/// unplaceable too, told as the others are.
pub fn passed_over_for_good(passed_over: &[PassedOverPod]) -> impl Iterator<Item = Unplaceable<'_>> {
    passed_over.iter().filter(|p| p.passed_over.reason.unplaceable()).map(|p| Unplaceable {
        namespace: &p.namespace,
        name: &p.name,
        why: p.passed_over.why.clone(),
    })
}

/// Whether Fargate may take a waiting pod that no node will: the cluster has a Fargate
/// profile and the pod's owner is a workload with no Fargate blocker (a pod without one may
/// not go there). What the disk refusal, the zone count and "unplaceable" all ask first.
pub struct FargateFallback<'a> {
    profile: bool,
    workloads: &'a [Workload],
}

impl<'a> FargateFallback<'a> {
    pub fn new(groups: &[NodeGroup], workloads: &'a [Workload]) -> Self {
        FargateFallback { profile: groups.iter().any(|g| g.kind == NodeGroupKind::Fargate), workloads }
    }

    /// True if the pods of `owner` may run on Fargate.
    pub fn takes(&self, owner: Option<&WorkloadRef>) -> bool {
        self.profile
            && owner.is_some_and(|owner| self.workloads.iter().any(|w| &w.id == owner && w.fargate_blocker.is_none()))
    }

    /// True if `owner` is placed on Fargate, so its pods go there.
    pub fn placed_there(&self, owner: &WorkloadRef) -> bool {
        self.profile && self.workloads.iter().any(|w| &w.id == owner && w.placement == ballast_sdk::Placement::Fargate)
    }
}

fn of_shape(pod: &PendingPod, shape: &PendingShape) -> bool {
    pod.namespace == shape.namespace
        && pod.owner == shape.owner
        && pod.requests == shape.requests
        && pod.node_selector == shape.node_selector
        && pod.affinity_keys == shape.affinity_keys
        && pod.tolerations == shape.tolerations
}

/// Why no group takes a shape none does, the groups gathered by reason.
fn why_not(groups: &[(&NodeGroup, Resources)], shape: &PendingShape) -> String {
    if groups.is_empty() {
        return "no Auto Scaling group may grow (none, or every max-size is 0)".to_string();
    }
    let mut by_reason: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut zonal = false;
    for (group, template) in groups {
        let reason = match group.refusal(shape) {
            Some(refusal) => {
                zonal |= matches!(refusal, Refusal::Label { key, .. } if ZONE_KEYS.contains(&key));
                refusal.to_string()
            }
            None => format!("a new node offers {} mCPU, {} MiB", template.cpu_millis, template.memory_bytes >> 20),
        };
        by_reason.entry(reason).or_default().push(&group.id);
    }
    let mut why = format!(
        "no node group can hold it ({} mCPU, {} MiB): {}",
        shape.requests.cpu_millis,
        shape.requests.memory_bytes >> 20,
        by_reason.iter().map(|(reason, ids)| format!("{}: {reason}", named(ids))).collect::<Vec<_>>().join("; ")
    );
    if zonal && groups.iter().any(|(g, _)| g.zones.len() > 1) {
        why.push_str(" (a group in several zones promises no zone: give the zone a group of its own)");
    }
    why
}

/// The first few of `ids`, and how many more.
pub(crate) fn named(ids: &[&str]) -> String {
    match ids.len() {
        n if n <= NAMED => ids.join(", "),
        n => format!("{} and {} more", ids[..NAMED].join(", "), n - NAMED),
    }
}

/// The events to post this tick: each unplaceable pod not yet told, or told another reason,
/// at most [`ANNOUNCED_PER_TICK`]. `told` keeps what each pod was told and forgets the pods
/// that no longer wait unplaceable, so one that comes back is told again.
pub fn announcements(found: &[Unplaceable<'_>], told: &mut HashMap<(String, String), Arc<str>>) -> Vec<Announcement> {
    let waiting: HashSet<(&str, &str)> = found.iter().map(|u| (u.namespace, u.name)).collect();
    told.retain(|(namespace, name), _| waiting.contains(&(namespace.as_str(), name.as_str())));
    let mut out = Vec::new();
    for u in found {
        if out.len() == ANNOUNCED_PER_TICK {
            break;
        }
        let key = (u.namespace.to_string(), u.name.to_string());
        if told.get(&key).is_some_and(|why| *why == u.why) {
            continue;
        }
        told.insert(key, u.why.clone());
        out.push(Announcement {
            subject: Subject::Pod { namespace: u.namespace.to_string(), name: u.name.to_string() },
            reason: "NotTriggerScaleUp",
            note: format!("pod didn't trigger scale-up: {}", u.why),
            warning: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use ballast_sdk::{InstanceType, Taint, TaintEffect, Workload, WorkloadRef};

    use super::*;

    fn group(id: &str, zones: &[&str], cpu_millis: u64) -> NodeGroup {
        let allocatable = Resources { cpu_millis, memory_bytes: 7 << 30, pods: 29, gpus: 0, ..Resources::ZERO };
        let mut labels = BTreeMap::new();
        if let [zone] = zones {
            labels.insert("topology.kubernetes.io/zone".to_string(), zone.to_string());
        }
        NodeGroup {
            id: id.into(),
            max_size: 10,
            instance_types: vec![InstanceType {
                name: "m5.large".into(),
                capacity: allocatable,
                allocatable,
                price_per_hour: 0.096,
            }],
            labels,
            zones: zones.iter().map(|z| z.to_string()).collect(),
            ..NodeGroup::default()
        }
    }

    fn pod(name: &str, cpu_millis: u64, selector: &[(&str, &str)]) -> PendingPod {
        PendingPod {
            namespace: "shop".into(),
            name: name.into(),
            requests: Resources::pod(cpu_millis, 1 << 30),
            owner: Some(WorkloadRef { name: name.trim_end_matches(char::is_numeric).into(), ..WorkloadRef::default() }),
            node_selector: selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..PendingPod::default()
        }
    }

    fn snapshot(groups: Vec<NodeGroup>, pods: Vec<PendingPod>) -> SnapshotData {
        SnapshotData { node_groups: groups, pending_pods: pods, ..SnapshotData::default() }
    }

    #[test]
    fn a_pod_pinned_to_a_zone_no_group_promises_is_unplaceable_and_told_why_group_by_group() {
        let zone_c = [("topology.kubernetes.io/zone", "us-east-1c")];
        let groups = vec![group("east-a", &["us-east-1a"], 1930), group("spread", &["us-east-1a", "us-east-1b"], 1930)];
        let s = snapshot(groups, vec![pod("db0", 500, &zone_c), pod("db1", 500, &zone_c), pod("web0", 500, &[])]);
        let found = find(&s);
        let names: Vec<&str> = found.iter().map(|u| u.name).collect();
        assert_eq!(names, ["db0", "db1"], "web0 fits a new node of either group");
        let why = &found[0].why;
        assert!(why.starts_with("no node group can hold it (500 mCPU, 1024 MiB): "), "{why}");
        assert!(why.contains("east-a, spread: its nodes do not carry topology.kubernetes.io/zone=us-east-1c"), "{why}");
        assert!(
            why.ends_with("(a group in several zones promises no zone: give the zone a group of its own)"),
            "{why}"
        );
    }

    #[test]
    fn a_pod_larger_than_every_launch_type_or_kept_out_by_a_taint_is_told_so() {
        let mut tainted = group("gpu", &["us-east-1a"], 16_000);
        tainted.taints.push(Taint {
            key: "nvidia.com/gpu".into(),
            value: "true".into(),
            effect: TaintEffect::NoSchedule,
        });
        let s = snapshot(vec![group("general", &["us-east-1a"], 1930), tainted], vec![pod("giant0", 4000, &[])]);
        let found = find(&s);
        assert_eq!(found.len(), 1);
        let why = &found[0].why;
        assert!(why.contains("general: a new node offers 1930 mCPU, 7168 MiB"), "{why}");
        assert!(
            why.contains("gpu: its nodes carry taint nvidia.com/gpu=true:NoSchedule, which the pod does not tolerate"),
            "{why}"
        );
        assert!(!why.contains("zone"), "{why}");
    }

    #[test]
    fn a_pod_fargate_may_run_is_not_unplaceable_where_a_profile_exists() {
        let profile = NodeGroup { id: "fargate".into(), kind: NodeGroupKind::Fargate, ..NodeGroup::default() };
        let giant = pod("giant0", 4000, &[]);
        let workload = Workload { id: giant.owner.clone().unwrap_or_default(), ..Workload::default() };
        let mut s = snapshot(vec![group("general", &["us-east-1a"], 1930), profile], vec![giant]);
        s.workloads.push(workload.clone());
        assert!(find(&s).is_empty(), "Fargate may run it");
        s.workloads[0].fargate_blocker = Some("uses an EBS volume".into());
        assert_eq!(find(&s).len(), 1);
    }

    #[test]
    fn each_pod_is_told_once_per_reason_and_again_when_it_comes_back() {
        let zone_c = [("topology.kubernetes.io/zone", "us-east-1c")];
        let pods: Vec<PendingPod> = (0..25).map(|i| pod(&format!("db{i}"), 500, &zone_c)).collect();
        let s = snapshot(vec![group("east-a", &["us-east-1a"], 1930)], pods);
        let mut told = HashMap::new();
        let first = announcements(&find(&s), &mut told);
        assert_eq!(first.len(), ANNOUNCED_PER_TICK);
        assert_eq!(first[0].reason, "NotTriggerScaleUp");
        assert!(
            first[0].note.starts_with("pod didn't trigger scale-up: no node group can hold it"),
            "{}",
            first[0].note
        );
        assert_eq!(announcements(&find(&s), &mut told).len(), 5, "the rest on the next tick");
        assert!(announcements(&find(&s), &mut told).is_empty(), "each told once");

        let mut bigger = s.clone();
        bigger.pending_pods[0].requests.cpu_millis = 4000;
        bigger.pending_pods.truncate(1);
        bigger.shapes = Default::default();
        let told_again = announcements(&find(&bigger), &mut told);
        assert_eq!(told_again.len(), 1, "another reason is told");
        assert!(told_again[0].note.contains("4000 mCPU"), "{}", told_again[0].note);
        assert_eq!(told.len(), 1, "the pods no longer waiting are forgotten");
        assert_eq!(announcements(&find(&s), &mut told).len(), ANNOUNCED_PER_TICK, "back: told again");
    }
}

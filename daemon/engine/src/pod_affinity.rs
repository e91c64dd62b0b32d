//! Workloads whose pods the scheduler keeps near other workloads' pods: a required pod
//! affinity in the pod template taking in their pods, on `kubernetes.io/hostname`
//! ([`WorkloadView::kept_beside`], as charts set to keep a cache or an agent beside the pods
//! it serves) or on the zone ([`WorkloadView::zone_affinity`], an API kept in its database's
//! zone; [`crate::zone_affinity`] pins the zone). A new node runs none of those pods, so:
//!
//! - A waiting pod kept beside them is passed over as unplaceable ([`waits_for_ever`]), and
//!   so is one kept in their zones while none of them runs; unless a pod it is kept near
//!   waits too (a new node may take both), or its own term takes in its own pods and none
//!   of those it is kept near runs yet (the scheduler then lets the first go anywhere).
//! - A node running a pod kept beside them is held from removal ([`holds`]): the host cannot
//!   know that a policy's move would take the pod to a node running those pods, so it is not
//!   moved.
//!
//! [`waits_for_ever`]: PodAffinity::waits_for_ever
//! [`holds`]: PodAffinity::holds
//!
//! # Caveats
//! - A node held for such a pod stays even where another node running the pods it is kept
//!   beside has room for it (Cluster Autoscaler's simulation would move it there).
//! - Of several such terms, the workloads of all of them are read as one set: a pod of any
//!   of them is taken as enough (the scheduler asks one of each term's).
//! - Where a pod kept near waits too, the policies are not told to put the two on one new
//!   node; the scheduler may put them on two, and the pod kept beside wait for room there.
//! - Fargate is not read as a way out: it runs one pod a node, so a rule on the hostname
//!   cannot hold there, and pods there are not counted as running in a zone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ballast_sdk::{PendingPod, WorkloadRef};

use crate::ports::{NodePods, NodeView, PassOver, PassedOverPod, WorkloadView};

/// How near a workload's pods are kept to the pods of the workloads it names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Near {
    /// On a node running one of theirs.
    Node,
    /// In a zone with a node running one of theirs.
    Zone,
}

/// The workloads each workload's pods are kept near, for those kept near any.
pub struct PodAffinity<'a> {
    near: HashMap<&'a WorkloadRef, (Near, &'a [WorkloadRef])>,
}

impl<'a> PodAffinity<'a> {
    pub fn new(workloads: &'a [WorkloadView]) -> Self {
        let near = (workloads.iter())
            .filter_map(|w| match (w.kept_beside.as_slice(), w.zone_affinity.as_slice()) {
                ([], []) => None,
                ([], zone) => Some((&w.id, (Near::Zone, zone))),
                (node, _) => Some((&w.id, (Near::Node, node))),
            })
            .collect();
        PodAffinity { near }
    }

    /// Why `pods` keep their node from removal, if one of them is kept beside other pods: the
    /// first such pod, and the workloads it is kept beside.
    pub fn holds(&self, pods: &NodePods) -> Option<String> {
        if self.near.is_empty() {
            return None;
        }
        pods.shapes.iter().filter(|on| on.shape.must_move()).find_map(|on| {
            let (Near::Node, beside) = self.near.get(on.shape.owner.as_deref()?)? else { return None };
            let name = on.pods.first()?;
            Some(format!(
                "pod {}/{name} is kept on a node running pods of {} (a required pod affinity on \
                 kubernetes.io/hostname): a move could leave it waiting, so it is not moved",
                on.shape.namespace,
                names(beside)
            ))
        })
    }

    /// Takes out of `pending` the pods no new node could ever run, as the module says;
    /// `nodes`: the nodes, for the pods they run.
    ///
    /// # Guarantees
    /// A pod is taken out only when none of the pods it is kept near waits, and either its
    /// own term does not take in its own pods or one of those runs; and, kept in their zones
    /// only, none of them runs.
    pub fn waits_for_ever(
        &self,
        pending: Vec<PendingPod>,
        nodes: &[NodeView],
    ) -> (Vec<PendingPod>, Vec<PassedOverPod>) {
        if !pending.iter().any(|p| p.owner.as_ref().is_some_and(|o| self.near.contains_key(o))) {
            return (pending, Vec::new());
        }
        let wanted: HashSet<&WorkloadRef> = self.near.values().flat_map(|(_, of)| of.iter()).collect();
        let waiting: HashSet<WorkloadRef> =
            pending.iter().filter_map(|p| p.owner.as_ref()).filter(|o| wanted.contains(o)).cloned().collect();
        let running = crate::zone_affinity::zones_running(&wanted, nodes);
        let mut why: HashMap<WorkloadRef, Option<Arc<str>>> = HashMap::new();
        let mut passed = Vec::new();
        let mut left = Vec::with_capacity(pending.len());
        for pod in pending {
            let Some((owner, &(near, of))) = pod.owner.as_ref().and_then(|o| self.near.get_key_value(o)) else {
                left.push(pod);
                continue;
            };
            let why = why.entry((*owner).clone()).or_insert_with(|| {
                let other_waits = of.iter().any(|o| o != *owner && waiting.contains(o));
                let any_runs = of.iter().any(|o| running.contains_key(o));
                let first_anywhere = !any_runs && of.contains(owner);
                let forever = !other_waits && !first_anywhere && (near == Near::Node || !any_runs);
                forever.then(|| Arc::from(why_waiting(near, of, any_runs)))
            });
            match why {
                Some(why) => passed.push(PassedOverPod::taken_out(&pod, PassOver::PodAffinity, why.clone())),
                None => left.push(pod),
            }
        }
        (left, passed)
    }
}

fn why_waiting(near: Near, of: &[WorkloadRef], any_runs: bool) -> String {
    let (kept, key) = match near {
        Near::Node => ("on a node running", "kubernetes.io/hostname"),
        Near::Zone => ("in a zone running", "topology.kubernetes.io/zone"),
    };
    let now = if any_runs { "every node running them is full for it" } else { "none of them runs or waits" };
    format!(
        "kept {kept} pods of {} (a required pod affinity on {key}): {now}, and a new node would run none of them",
        names(of)
    )
}

fn names(workloads: &[WorkloadRef]) -> String {
    workloads.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

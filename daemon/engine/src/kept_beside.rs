//! Workloads whose pods the scheduler keeps on the nodes of other workloads' pods: a required
//! pod affinity on `kubernetes.io/hostname` in the pod template taking in their pods
//! ([`WorkloadView::kept_beside`]), as charts set to keep a cache or an agent beside the
//! pods it serves. A new node runs none of those pods, so no node bought helps such a pod
//! that waits, and a pod moved to a node without them waits for ever.
//!
//! - A waiting pod of such a workload is passed over as unplaceable ([`waits_for_ever`]),
//!   unless a pod it is kept beside waits too (a new node may take both) or its own term
//!   takes in its own pods and none of those it is kept beside runs yet (the scheduler then
//!   lets the first go anywhere).
//! - A node running such a pod is held from removal ([`holds`]): the host cannot know that a
//!   policy's move would take the pod to a node running those pods, so it is not moved.
//!
//! # Caveats
//! - A node held for such a pod stays even where another node running the pods it is kept
//!   beside has room for it (Cluster Autoscaler's simulation would move it there).
//! - Of several such terms, the workloads of all of them are read as one set: a pod of any
//!   of them on a node is taken as enough (the scheduler asks one of each term's).
//! - Where a pod kept beside waits too, the policies are not told to put the two on one new
//!   node; the scheduler may put them on two, and the pod kept beside wait for room there.
//! - Fargate is not read as a way out: it runs one pod a node, so the rule cannot hold there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ballast_sdk::{PendingPod, WorkloadRef};

use crate::ports::{NodePods, NodeView, PassOver, PassedOverPod, WorkloadView};

/// The workloads each workload's pods are kept beside, for those kept beside any.
pub struct KeptBeside<'a> {
    beside: HashMap<&'a WorkloadRef, &'a [WorkloadRef]>,
}

impl<'a> KeptBeside<'a> {
    pub fn new(workloads: &'a [WorkloadView]) -> Self {
        let beside = (workloads.iter())
            .filter(|w| !w.kept_beside.is_empty())
            .map(|w| (&w.id, w.kept_beside.as_slice()))
            .collect();
        KeptBeside { beside }
    }

    pub fn is_empty(&self) -> bool {
        self.beside.is_empty()
    }

    /// Why `pods` keep their node from removal, if one of them is kept beside other pods: the
    /// first such pod, and the workloads it is kept beside.
    pub fn holds(&self, pods: &NodePods) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        pods.shapes.iter().filter(|on| on.shape.must_move()).find_map(|on| {
            let owner = on.shape.owner.as_deref()?;
            let beside = self.beside.get(owner)?;
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
    /// A pod is taken out only when none of the pods it is kept beside waits, and either one
    /// of them runs (on a node full for it, or it would not wait) or its own term does not
    /// take in its own pods.
    pub fn waits_for_ever(
        &self,
        pending: Vec<PendingPod>,
        nodes: &[NodeView],
    ) -> (Vec<PendingPod>, Vec<PassedOverPod>) {
        if !pending.iter().any(|p| p.owner.as_ref().is_some_and(|o| self.beside.contains_key(o))) {
            return (pending, Vec::new());
        }
        let wanted = self.wanted();
        let waiting: HashSet<WorkloadRef> =
            pending.iter().filter_map(|p| p.owner.as_ref()).filter(|o| wanted.contains(o)).cloned().collect();
        let running = self.running(&wanted, nodes);
        let mut why: HashMap<WorkloadRef, Option<Arc<str>>> = HashMap::new();
        let mut passed = Vec::new();
        let mut left = Vec::with_capacity(pending.len());
        for pod in pending {
            let Some((owner, beside)) = pod.owner.as_ref().and_then(|o| self.beside.get_key_value(o)) else {
                left.push(pod);
                continue;
            };
            let why = why.entry((*owner).clone()).or_insert_with(|| {
                let other_waits = beside.iter().any(|b| b != *owner && waiting.contains(b));
                let any_runs = beside.iter().any(|b| running.contains(b));
                let first_anywhere = !any_runs && beside.contains(owner);
                (!other_waits && !first_anywhere).then(|| Arc::from(why_waiting(beside, any_runs)))
            });
            match why {
                Some(why) => passed.push(PassedOverPod::taken_out(&pod, PassOver::KeptBeside, why.clone())),
                None => left.push(pod),
            }
        }
        (left, passed)
    }

    /// The workloads some workload is kept beside.
    fn wanted(&self) -> HashSet<&'a WorkloadRef> {
        self.beside.values().flat_map(|b| b.iter()).collect()
    }

    /// Of `wanted`, those that have a pod on a node (Fargate's aside).
    fn running(&self, wanted: &HashSet<&WorkloadRef>, nodes: &[NodeView]) -> HashSet<WorkloadRef> {
        let mut running = HashSet::new();
        for node in nodes.iter().filter(|n| !n.fargate) {
            for on in node.pods.shapes.iter().filter(|on| !on.pods.is_empty()) {
                if let Some(owner) = on.shape.owner.as_deref().filter(|o| wanted.contains(o)) {
                    running.insert(owner.clone());
                }
            }
        }
        running
    }
}

fn why_waiting(beside: &[WorkloadRef], any_runs: bool) -> String {
    let now = if any_runs { "every node running them is full for it" } else { "none of them runs or waits" };
    format!(
        "kept on a node running pods of {} (a required pod affinity on kubernetes.io/hostname): {now}, \
         and a new node would run none of them",
        names(beside)
    )
}

fn names(workloads: &[WorkloadRef]) -> String {
    workloads.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

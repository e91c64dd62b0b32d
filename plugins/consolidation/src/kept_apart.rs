//! Pods kept apart: a workload that limits its pods per node (a required pod anti-affinity;
//! contract 0.1.12 `per-node-limits`) has a pod placed on a node only while the node holds
//! fewer of its pods than the limit, as the scheduler will place it. Without this a node
//! whose pod could only go where its workload already runs would be removed, its pod left
//! waiting and a node bought for it: churn.
//!
//! The other nodes' pods of such workloads are counted once per evaluation, and only when a
//! candidate runs one (a host call per node then; none in a cluster without such rules).

use std::collections::HashMap;
use std::rc::Rc;

use ballast_sdk::prelude::*;

use super::fit::Target;

/// The limited workloads, read once an evaluation and shared by every placement.
#[derive(Debug, Default)]
struct Limits {
    /// Each limited workload's index.
    index: HashMap<WorkloadRef, usize>,
    /// Its limit, by that index.
    max: Vec<u32>,
}

/// The limited workloads and their pods on each target.
#[derive(Clone, Debug, Default)]
pub struct KeptApart {
    limits: Rc<Limits>,
    /// Pods of a limited workload (its index) on a target (its index in the plan's targets).
    on_target: HashMap<(usize, usize), u32>,
}

impl KeptApart {
    /// The limits the snapshot serves, nothing counted yet.
    pub fn new(snapshot: &dyn Snapshot) -> Self {
        let mut limits = Limits::default();
        for l in snapshot.per_node_limits() {
            limits.index.insert(l.workload.clone(), limits.max.len());
            limits.max.push(l.max_pods);
        }
        KeptApart { limits: Rc::new(limits), on_target: HashMap::new() }
    }

    /// The same limits, for nodes that run none of their pods (a new node).
    pub fn empty_nodes(&self) -> Self {
        KeptApart { limits: self.limits.clone(), on_target: HashMap::new() }
    }

    /// The index of the workload `shape` belongs to, if it limits its pods per node.
    pub fn limited(&self, shape: &PodShape) -> Option<usize> {
        self.limits.index.get(shape.owner.as_ref()?).copied()
    }

    /// Counts the limited workloads' pods on `targets` (one host call a target), when any of
    /// `shapes` is of one; otherwise does nothing.
    pub fn count_if_needed<'s>(
        &mut self,
        snapshot: &dyn Snapshot,
        targets: &[Target],
        mut shapes: impl Iterator<Item = &'s PodShape>,
    ) {
        if self.limits.max.is_empty() || !shapes.any(|s| self.limited(s).is_some()) {
            return;
        }
        for (t, target) in targets.iter().enumerate() {
            for shape in snapshot.pods_on_node(&target.node) {
                if let Some(w) = self.limited(&shape) {
                    *self.on_target.entry((w, t)).or_default() += shape.count;
                }
            }
        }
    }

    /// How many more pods of workload `w` target `t` takes.
    pub fn room(&self, w: usize, t: usize) -> u32 {
        let here = self.on_target.get(&(w, t)).copied().unwrap_or(0);
        self.limits.max[w].saturating_sub(here)
    }

    /// Counts `pods` more of workload `w` on target `t`.
    pub fn add(&mut self, w: usize, t: usize, pods: u32) {
        *self.on_target.entry((w, t)).or_default() += pods;
    }

    /// Takes back what [`KeptApart::add`] counted.
    pub fn remove(&mut self, w: usize, t: usize, pods: u32) {
        if let Some(here) = self.on_target.get_mut(&(w, t)) {
            *here = here.saturating_sub(pods);
        }
    }
}

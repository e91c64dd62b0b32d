//! Pods kept apart: a workload that limits its pods per node (a required pod anti-affinity;
//! contract 0.1.12 `per-node-limits`) has a pod placed on a node only while the node holds
//! fewer of its pods than the limit, as the scheduler will place it. Without this a node
//! whose pod could only go where its workload already runs would be removed, its pod left
//! waiting and a node bought for it: churn. A workload kept away from others' nodes (a
//! required pod anti-affinity against their pods, contract 0.1.16 `kept-away`) has a pod
//! placed on a node only while the node holds none of theirs, counted the same way.
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
    /// Its limit, by that index (`u32::MAX` for one only kept away from others).
    max: Vec<u32>,
    /// The workloads, by index, whose pods its pods may not share a node with.
    away: Vec<Vec<usize>>,
}

impl Limits {
    /// The index of `workload`, given one with no limit if it has none yet.
    fn of(&mut self, workload: &WorkloadRef) -> usize {
        let next = self.max.len();
        let i = *self.index.entry(workload.clone()).or_insert(next);
        if i == next {
            self.max.push(u32::MAX);
            self.away.push(Vec::new());
        }
        i
    }
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
            let i = limits.of(&l.workload);
            limits.max[i] = l.max_pods;
        }
        for k in snapshot.kept_away() {
            let i = limits.of(&k.workload);
            let away: Vec<usize> = k.apart_from.iter().map(|o| limits.of(o)).collect();
            limits.away[i] = away;
        }
        KeptApart { limits: Rc::new(limits), on_target: HashMap::new() }
    }

    /// The same limits, for nodes that run none of their pods (a new node).
    pub fn empty_nodes(&self) -> Self {
        KeptApart { limits: self.limits.clone(), on_target: HashMap::new() }
    }

    /// The index of the workload `shape` belongs to, if it limits its pods per node or is kept
    /// away from others.
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

    /// How many more pods of workload `w` target `t` takes: none where it runs a pod of a
    /// workload `w` is kept away from.
    pub fn room(&self, w: usize, t: usize) -> u32 {
        let on = |w: usize| self.on_target.get(&(w, t)).copied().unwrap_or(0);
        if self.limits.away[w].iter().any(|&other| on(other) > 0) {
            return 0;
        }
        self.limits.max[w].saturating_sub(on(w))
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

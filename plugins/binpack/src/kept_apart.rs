//! Pods kept apart on a node scale-down would remove: a workload that limits its pods per
//! node (a required pod anti-affinity on the hostname; contract 0.1.12
//! `per-node-limits`) needs, for each such pod, a node that stays and holds fewer of its
//! pods than the limit, as Cluster Autoscaler's scale-down simulation checks. Spare room
//! alone would let such a node go and leave its pod waiting for a node bought for it.
//!
//! The other nodes' pods are counted once, and only when a node to remove runs such a pod
//! (a host call per node then; none in a cluster without such rules).

use std::collections::{BTreeSet, HashMap};

use ballast_sdk::prelude::*;

/// Pods of one limited workload on one node.
struct Apart {
    workload: WorkloadRef,
    pods: u32,
    max: u32,
}

pub struct KeptApart<'s> {
    snapshot: &'s dyn Snapshot,
    /// Pods of each limited workload by node, counted on first need.
    counts: Option<HashMap<WorkloadRef, HashMap<String, u32>>>,
    /// Pods of each limited workload on the nodes chosen to go.
    moving: HashMap<WorkloadRef, u32>,
    gone: BTreeSet<String>,
    /// The last node checked and its pods kept apart, for its going.
    checked: Option<(String, Vec<Apart>)>,
}

impl<'s> KeptApart<'s> {
    pub fn new(snapshot: &'s dyn Snapshot) -> Self {
        KeptApart { snapshot, counts: None, moving: HashMap::new(), gone: BTreeSet::new(), checked: None }
    }

    /// Of a node's pods (`shapes`), those of workloads kept apart that a drain moves.
    fn of(&self, shapes: &[PodShape]) -> Vec<Apart> {
        if self.snapshot.per_node_limits().is_empty() {
            return Vec::new();
        }
        (shapes.iter().filter(|s| s.moves_on_drain))
            .filter_map(|s| {
                let workload = s.owner.clone()?;
                let max = self.snapshot.max_per_node(&workload)?;
                Some(Apart { workload, pods: s.count, max })
            })
            .collect()
    }

    /// True if the pods kept apart among `node`'s (`shapes`) each have a place on the
    /// `schedulable` nodes that stay, after those of the nodes already chosen to go.
    pub fn fit_elsewhere(&mut self, node: &Node, shapes: &[PodShape], schedulable: &[&Node]) -> bool {
        let mine = self.of(shapes);
        let empty = mine.is_empty();
        self.checked = Some((node.name.clone(), mine));
        if empty {
            return true;
        }
        self.count(schedulable);
        let (Some(counts), Some((_, mine))) = (&self.counts, &self.checked) else { return true };
        let staying = || schedulable.iter().filter(|n| n.name != node.name && !self.gone.contains(&n.name));
        mine.iter().all(|a| {
            let here = |n: &Node| counts.get(&a.workload).and_then(|c| c.get(&n.name)).copied().unwrap_or(0);
            let places: u32 = staying().map(|n| a.max.saturating_sub(here(n))).sum();
            places >= a.pods + self.moving.get(&a.workload).copied().unwrap_or(0)
        })
    }

    /// Counts `node`, the last checked, as going: its pods kept apart take places elsewhere.
    pub fn going(&mut self, node: &Node) {
        let mine = match self.checked.take() {
            Some((checked, mine)) if checked == node.name => mine,
            _ => self.of(&self.snapshot.pods_on_node(&node.name)),
        };
        for a in mine {
            *self.moving.entry(a.workload).or_default() += a.pods;
        }
        self.gone.insert(node.name.clone());
    }

    /// Counts the limited workloads' pods on `schedulable`, the first time only.
    fn count(&mut self, schedulable: &[&Node]) {
        let snapshot = self.snapshot;
        self.counts.get_or_insert_with(|| {
            let mut counts: HashMap<WorkloadRef, HashMap<String, u32>> = HashMap::new();
            for node in schedulable {
                for shape in snapshot.pods_on_node(&node.name) {
                    if let Some(owner) = shape.owner.filter(|o| snapshot.max_per_node(o).is_some()) {
                        *counts.entry(owner).or_default().entry(node.name.clone()).or_default() += shape.count;
                    }
                }
            }
            counts
        });
    }
}

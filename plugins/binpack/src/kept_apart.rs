//! Pods kept apart on a node scale-down would remove: a workload that limits its pods per
//! node (a required pod anti-affinity on the hostname; contract 0.1.12
//! `per-node-limits`) needs, for each such pod, a node that stays and holds fewer of its
//! pods than the limit, as Cluster Autoscaler's scale-down simulation checks. Spare room
//! alone would let such a node go and leave its pod waiting for a node bought for it. A
//! workload kept away from others' nodes (contract 0.1.16 `kept-away`) has a place only on a
//! node that runs none of their pods.
//!
//! The other nodes' pods are counted once, and only when a node to remove runs such a pod
//! (a host call per node then; none in a cluster without such rules); from then on, the
//! places left on the nodes that stay are kept as a total per workload, so a node is judged
//! without walking the others.
//!
//! # Caveats
//! Places are counted per workload: a staying node that runs none of either of two workloads
//! kept away from each other counts a place for each, though the first pod to land there
//! closes it to the other.

use std::collections::HashMap;

use ballast_sdk::prelude::*;

/// Pods of one limited workload on one node.
struct Apart {
    workload: WorkloadRef,
    pods: u32,
}

/// Where the limited workloads' pods may still go.
struct Places {
    /// Pods of the limited workloads on each node that runs some.
    here: HashMap<String, HashMap<WorkloadRef, u32>>,
    /// Places left for each limited workload on the schedulable nodes not chosen to go.
    staying: HashMap<WorkloadRef, u32>,
}

pub struct KeptApart<'s> {
    snapshot: &'s dyn Snapshot,
    /// Each limited workload's limit (`u32::MAX` for one only kept away from others).
    limits: HashMap<WorkloadRef, u32>,
    /// The workloads whose pods each workload's may not share a node with.
    away: HashMap<WorkloadRef, Vec<WorkloadRef>>,
    /// Counted on first need.
    places: Option<Places>,
    /// Pods of each limited workload on the nodes chosen to go.
    moving: HashMap<WorkloadRef, u32>,
    /// The last node checked and its pods kept apart, for its going.
    checked: Option<(String, Vec<Apart>)>,
}

impl<'s> KeptApart<'s> {
    pub fn new(snapshot: &'s dyn Snapshot) -> Self {
        let mut limits: HashMap<WorkloadRef, u32> =
            snapshot.per_node_limits().iter().map(|l| (l.workload.clone(), l.max_pods)).collect();
        let away: HashMap<WorkloadRef, Vec<WorkloadRef>> =
            snapshot.kept_away().iter().map(|k| (k.workload.clone(), k.apart_from.clone())).collect();
        for workload in away.keys() {
            limits.entry(workload.clone()).or_insert(u32::MAX);
        }
        KeptApart { snapshot, limits, away, places: None, moving: HashMap::new(), checked: None }
    }

    /// Of a node's pods (`shapes`), those of workloads kept apart that a drain moves.
    fn of(&self, shapes: &[PodShape]) -> Vec<Apart> {
        if self.limits.is_empty() {
            return Vec::new();
        }
        (shapes.iter().filter(|s| s.moves_on_drain))
            .filter_map(|s| {
                let workload = s.owner.clone().filter(|o| self.limits.contains_key(o))?;
                Some(Apart { workload, pods: s.count })
            })
            .collect()
    }

    /// True if the pods kept apart among `node`'s (`shapes`) each have a place on the
    /// `schedulable` nodes that stay, after those of the nodes already chosen to go.
    pub fn fit_elsewhere(&mut self, node: &Node, shapes: &[PodShape], schedulable: &[&Node]) -> bool {
        let mine = self.of(shapes);
        if !mine.is_empty() {
            self.count(schedulable);
        }
        let fit = match &self.places {
            Some(places) => mine.iter().all(|a| {
                let staying = places.staying.get(&a.workload).copied().unwrap_or(0);
                let elsewhere = staying.saturating_sub(self.place(&places.here, &a.workload, &node.name));
                elsewhere >= a.pods + self.moving.get(&a.workload).copied().unwrap_or(0)
            }),
            None => true,
        };
        self.checked = Some((node.name.clone(), mine));
        fit
    }

    /// Counts `node`, the last checked, as going: its pods kept apart take places elsewhere,
    /// and its own places are no longer there.
    pub fn going(&mut self, node: &Node) {
        let mine = match self.checked.take() {
            Some((checked, mine)) if checked == node.name => mine,
            _ => self.of(&self.snapshot.pods_on_node(&node.name)),
        };
        for a in mine {
            *self.moving.entry(a.workload).or_default() += a.pods;
        }
        let Some(places) = self.places.take() else { return };
        let Places { here, mut staying } = places;
        for (workload, left) in staying.iter_mut() {
            *left = left.saturating_sub(self.place(&here, workload, &node.name));
        }
        self.places = Some(Places { here, staying });
    }

    /// Counts the limited workloads' places on `schedulable`, the first time only.
    fn count(&mut self, schedulable: &[&Node]) {
        if self.places.is_some() {
            return;
        }
        let mut here: HashMap<String, HashMap<WorkloadRef, u32>> = HashMap::new();
        for node in schedulable {
            for shape in self.snapshot.pods_on_node(&node.name) {
                if let Some(owner) = shape.owner.filter(|o| self.limits.contains_key(o)) {
                    *here.entry(node.name.clone()).or_default().entry(owner).or_default() += shape.count;
                }
            }
        }
        let nodes = schedulable.len() as u32;
        // Nodes that run none of these workloads' pods: each has all of every limit free.
        let bare = nodes.saturating_sub(here.len() as u32);
        let mut staying: HashMap<WorkloadRef, u32> = HashMap::new();
        for (w, &max) in &self.limits {
            // A workload kept away from others: each node with such pods judged alone, as
            // it may run theirs.
            let places = match self.away.contains_key(w) {
                true => {
                    here.keys().fold(max.saturating_mul(bare), |sum, n| sum.saturating_add(self.place(&here, w, n)))
                }
                false => max.saturating_mul(nodes),
            };
            staying.insert(w.clone(), places);
        }
        for (workload, &pods) in here.values().flatten() {
            if self.away.contains_key(workload) {
                continue;
            }
            let used = pods.min(self.limits.get(workload).copied().unwrap_or(0));
            staying.entry(workload.clone()).and_modify(|p| *p = p.saturating_sub(used));
        }
        self.places = Some(Places { here, staying });
    }

    /// How many more pods of `workload` node `name` takes, given the pods `here`: none where
    /// it runs a pod of a workload `workload` is kept away from.
    fn place(&self, here: &HashMap<String, HashMap<WorkloadRef, u32>>, workload: &WorkloadRef, name: &str) -> u32 {
        let on_node = here.get(name);
        let pods_of = |w: &WorkloadRef| on_node.and_then(|h| h.get(w)).copied().unwrap_or(0);
        if self.away.get(workload).is_some_and(|away| away.iter().any(|o| pods_of(o) > 0)) {
            return 0;
        }
        self.limits.get(workload).copied().unwrap_or(0).saturating_sub(pods_of(workload))
    }
}

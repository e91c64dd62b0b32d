//! The simulated kube-scheduler: binds pending EC2 pods to Ready, uncordoned nodes where
//! their requests fit, honouring node selectors, NoSchedule / NoExecute taints and a
//! workload's pods per node (its `max-per-node`, as a required pod anti-affinity keeps them).
//!
//! First fit in node order. Pods of one workload are alike, so a sweep remembers where the
//! last one of each workload landed (or that none fitted) and the next starts there: a sweep
//! costs about pods + workloads x nodes, not pods x nodes.

use std::collections::HashMap;

use super::world::World;

impl World {
    pub(super) fn schedule(&mut self) {
        self.clear_schedule_dirty();
        let nodes: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].as_ref().is_some_and(|n| n.ready && !n.cordoned && !n.fargate))
            .collect();
        let waiting: Vec<usize> =
            self.pending.iter().copied().filter(|&p| self.pods[p].as_ref().is_some_and(|p| !p.fargate)).collect();
        let mut cursor: HashMap<usize, usize> = HashMap::new();
        let mut admits: HashMap<(usize, usize), bool> = HashMap::new();
        for pod in waiting {
            let Some(w) = self.pods[pod].as_ref().map(|p| p.workload) else { continue };
            let requests = self.workloads[w].requests;
            // A group's answer holds for all its nodes unless the pods select a zone.
            let by_node = self.selects_zone(w);
            let start = cursor.get(&w).copied().unwrap_or(0);
            let mut found = None;
            for (pos, &n) in nodes.iter().enumerate().skip(start) {
                let Some(node) = self.nodes[n].as_ref() else { continue };
                if !node.allocatable.saturating_sub(&node.requested).fits(&requests) || self.at_per_node_limit(n, w) {
                    continue;
                }
                let group = node.group.unwrap_or(usize::MAX);
                let ok = if by_node {
                    self.node_admits(n, w)
                } else {
                    *admits.entry((w, group)).or_insert_with(|| self.node_admits(n, w))
                };
                if ok {
                    found = Some((pos, n));
                    break;
                }
            }
            match found {
                Some((pos, n)) => {
                    cursor.insert(w, pos);
                    self.bind(pod, n);
                }
                None => {
                    cursor.insert(w, nodes.len());
                    if let Some(p) = self.pods[pod].as_mut() {
                        p.unschedulable = true;
                    }
                }
            }
        }
    }

    /// Node `n` already runs as many pods of workload `w` as one node may.
    fn at_per_node_limit(&self, n: usize, w: usize) -> bool {
        let Some(max) = self.workloads[w].spec.max_per_node else { return false };
        let Some(node) = self.nodes[n].as_ref() else { return false };
        let here = node.pods.iter().filter(|&&p| self.pods[p].as_ref().is_some_and(|p| p.workload == w)).count();
        here >= max as usize
    }
}

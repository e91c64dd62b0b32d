//! The simulated kube-scheduler: binds pending EC2 pods to Ready, uncordoned nodes where
//! their requests fit, honouring node selectors, NoSchedule / NoExecute taints, a
//! workload's pods per node (its `max-per-node`, as a required pod anti-affinity keeps them)
//! and its skew over zones (its `max-zone-skew`, as a topology spread on
//! `topology.kubernetes.io/zone` with `whenUnsatisfiable: DoNotSchedule` keeps it).
//!
//! First fit in node order. Pods of one workload are alike, so a sweep remembers where the
//! last one of each workload landed (or that none fitted) and the next starts there: a sweep
//! costs about pods + workloads x nodes, not pods x nodes. A workload spread over zones starts
//! each pod from the first node: a zone it was kept out of opens as the others fill.

use std::collections::{BTreeMap, HashMap};

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
        let mut spreads: HashMap<usize, ZoneCounts> = HashMap::new();
        for pod in waiting {
            let Some(w) = self.pods[pod].as_ref().map(|p| p.workload) else { continue };
            let requests = self.workloads[w].requests;
            // A group's answer holds for all its nodes unless the pods select a zone.
            let by_node = self.selects_zone(w);
            let skew = self.workloads[w].spec.max_zone_skew;
            if skew.is_some() && !spreads.contains_key(&w) {
                spreads.insert(w, self.zone_counts(w));
            }
            let start = if skew.is_some() { 0 } else { cursor.get(&w).copied().unwrap_or(0) };
            let mut found = None;
            for (pos, &n) in nodes.iter().enumerate().skip(start) {
                let Some(node) = self.nodes[n].as_ref() else { continue };
                if !node.allocatable.saturating_sub(&node.requested).fits(&requests) || self.at_per_node_limit(n, w) {
                    continue;
                }
                if let (Some(skew), Some(counts)) = (skew, spreads.get(&w))
                    && !counts.may_take(&node.zone, skew)
                {
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
                    if let (Some(counts), Some(node)) = (spreads.get_mut(&w), self.nodes[n].as_ref()) {
                        *counts.0.entry(node.zone.clone()).or_default() += 1;
                    }
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

    /// Workload `w`'s pods in each zone that has a Ready node that admits them (cordoned or
    /// not: the scheduler's domains are the nodes its affinity allows, whatever their taints).
    fn zone_counts(&self, w: usize) -> ZoneCounts {
        let mut counts = ZoneCounts(BTreeMap::new());
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(node) = node.as_ref().filter(|n| n.ready && !n.fargate) else { continue };
            if !self.node_admits(i, w) {
                continue;
            }
            let here = node.pods.iter().filter(|&&p| self.pods[p].as_ref().is_some_and(|p| p.workload == w)).count();
            *counts.0.entry(node.zone.clone()).or_default() += here as u32;
        }
        counts
    }
}

/// A workload's pods by zone, over the zones its pods may run in.
struct ZoneCounts(BTreeMap<String, u32>);

impl ZoneCounts {
    /// One more pod in `zone` leaves it at most `skew` above the zone with the fewest.
    fn may_take(&self, zone: &str, skew: u32) -> bool {
        let fewest = self.0.values().copied().min().unwrap_or(0);
        self.0.get(zone).copied().unwrap_or(0) < fewest + skew
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::super::scenario::Scenario;
    use super::World;

    /// Five web pods bound at the start, by zone: two nodes in us-east-1a (three pods each by
    /// room), one in us-east-1b; `rule` added to web.
    fn bound_by_zone(rule: &str) -> BTreeMap<String, usize> {
        let text = format!(
            "name: t\nduration: 1h\nnode-groups:\n\
             \x20 - {{id: a, instance-types: [m5.large], min-size: 2, max-size: 5, zones: [us-east-1a]}}\n\
             \x20 - {{id: b, instance-types: [m5.large], min-size: 1, max-size: 5, zones: [us-east-1b]}}\n\
             workloads:\n  - {{name: web, requests: {{cpu: 600m}}, replicas: {{constant: 5}}{rule}}}\n"
        );
        let world = World::new(&Scenario::parse(Path::new("t.yaml"), &text).unwrap(), 1);
        let mut by_zone = BTreeMap::new();
        for node in world.nodes.iter().flatten() {
            *by_zone.entry(node.zone.clone()).or_default() += node.pods.len();
        }
        by_zone
    }

    #[test]
    fn pods_kept_spread_over_zones_are_bound_within_the_skew() {
        let zones = |a: usize, b: usize| BTreeMap::from([("us-east-1a".to_string(), a), ("us-east-1b".to_string(), b)]);
        assert_eq!(bound_by_zone(""), zones(5, 0), "first fit: the us-east-1a nodes come first");
        assert_eq!(bound_by_zone(", max-zone-skew: 1"), zones(3, 2));
        assert_eq!(
            bound_by_zone(", max-zone-skew: 3"),
            zones(4, 1),
            "the fourth in us-east-1a waits for one in us-east-1b"
        );
    }
}

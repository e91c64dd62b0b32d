//! The simulated kube-scheduler: binds pending EC2 pods to Ready, uncordoned nodes where
//! their requests fit, honouring node selectors, NoSchedule / NoExecute taints, a
//! workload's pods per node (its `max-per-node`, as a required pod anti-affinity keeps them),
//! the workloads it is kept away from (its `kept-away`, either side's, as such a rule
//! against another workload's pods keeps them off each other's nodes), the zones of the
//! workloads it is kept near (its `zone-affinity`: only a zone with a Ready node running one
//! of their pods), the workloads it is kept beside (its `kept-beside`: only a node running
//! one of their pods), its pods a zone (its `max-per-zone`, as a required pod anti-affinity on
//! the zone against its own pods keeps them) and its skew over zones and nodes (its `max-zone-skew` and `max-node-skew`, as topology
//! spreads on `topology.kubernetes.io/zone` and `kubernetes.io/hostname` with
//! `whenUnsatisfiable: DoNotSchedule` keep them).
//!
//! First fit in node order. Pods of one workload are alike, so a sweep remembers where the
//! last one of each workload landed (or that none fitted) and the next starts there: a sweep
//! costs about pods + workloads x nodes, not pods x nodes. A spread workload starts each pod
//! from the first node: a zone or node it was kept out of opens as the others fill.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::world::{SimNode, World};

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
        let mut spreads: HashMap<usize, Spread> = HashMap::new();
        let mut away: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut near: HashMap<usize, Option<BTreeSet<String>>> = HashMap::new();
        let mut beside: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut per_zone: HashMap<usize, BTreeMap<String, u32>> = HashMap::new();
        let (mut bound_any, mut waits_near) = (false, false);
        for pod in waiting {
            let Some(w) = self.pods[pod].as_ref().map(|p| p.workload) else { continue };
            let requests = self.workloads[w].requests;
            // A group's answer holds for all its nodes unless the pods select a zone.
            let by_node = self.selects_zone(w);
            let spread =
                self.workloads[w].spec.max_zone_skew.is_some() || self.workloads[w].spec.max_node_skew.is_some();
            if spread && !spreads.contains_key(&w) {
                spreads.insert(w, self.spread(w));
            }
            let away = away.entry(w).or_insert_with(|| self.kept_away(w));
            let near = near.entry(w).or_insert_with(|| self.zones_near(w));
            let beside = beside.entry(w).or_insert_with(|| self.indices(&self.workloads[w].spec.kept_beside));
            let max_per_zone = self.workloads[w].spec.max_per_zone;
            if max_per_zone.is_some() && !per_zone.contains_key(&w) {
                per_zone.insert(w, self.pods_by_zone(w));
            }
            let start = if spread { 0 } else { cursor.get(&w).copied().unwrap_or(0) };
            let mut found = None;
            for (pos, &n) in nodes.iter().enumerate().skip(start) {
                let Some(node) = self.nodes[n].as_ref() else { continue };
                if !node.allocatable.saturating_sub(&node.requested).fits(&requests)
                    || self.at_per_node_limit(n, w)
                    || self.runs_any(n, away)
                    || (!beside.is_empty() && !self.runs_any(n, beside))
                    || near.as_ref().is_some_and(|zones| !zones.contains(&node.zone))
                    || max_per_zone.is_some_and(|max| {
                        per_zone.get(&w).and_then(|z| z.get(&node.zone)).is_some_and(|&here| here >= max)
                    })
                {
                    continue;
                }
                if spreads.get(&w).is_some_and(|s| !s.may_take(n, &node.zone)) {
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
                    if let (Some(spread), Some(node)) = (spreads.get_mut(&w), self.nodes[n].as_ref()) {
                        spread.took(n, &node.zone);
                    }
                    if let (Some(zones), Some(node)) = (per_zone.get_mut(&w), self.nodes[n].as_ref()) {
                        *zones.entry(node.zone.clone()).or_default() += 1;
                    }
                    self.bind(pod, n);
                    bound_any = true;
                }
                None => {
                    waits_near |= near.is_some() || !beside.is_empty();
                    cursor.insert(w, nodes.len());
                    if let Some(p) = self.pods[pod].as_mut() {
                        p.unschedulable = true;
                    }
                }
            }
        }
        // A pod kept near others' pods that found none may find one a pod bound in this sweep
        // brought (kube-scheduler moves such pods back to its queue when a pod is assigned).
        if bound_any && waits_near {
            self.mark_schedule_dirty();
        }
    }

    /// Node `n` already runs as many pods of workload `w` as one node may.
    fn at_per_node_limit(&self, n: usize, w: usize) -> bool {
        let Some(max) = self.workloads[w].spec.max_per_node else { return false };
        let Some(node) = self.nodes[n].as_ref() else { return false };
        let here = self.pods_on(node, w);
        here >= max as usize
    }

    /// The workloads whose pods workload `w`'s may not share a node with: those it names, and
    /// those that name it.
    fn kept_away(&self, w: usize) -> Vec<usize> {
        let name = &self.workloads[w].spec.name;
        (0..self.workloads.len())
            .filter(|&o| o != w)
            .filter(|&o| {
                let other = &self.workloads[o].spec;
                self.workloads[w].spec.kept_away.contains(&other.name) || other.kept_away.contains(name)
            })
            .collect()
    }

    /// The zones workload `w`'s pods may go to, if it is kept near other workloads: those
    /// with a Ready node that runs one of their pods.
    fn zones_near(&self, w: usize) -> Option<BTreeSet<String>> {
        let names = &self.workloads[w].spec.zone_affinity;
        if names.is_empty() {
            return None;
        }
        let targets = self.indices(names);
        let zones = (self.nodes.iter().flatten())
            .filter(|n| n.ready && !n.fargate && self.runs_pods_of(n, &targets))
            .map(|n| n.zone.clone())
            .collect();
        Some(zones)
    }

    /// The workloads `names` names.
    fn indices(&self, names: &[String]) -> Vec<usize> {
        if names.is_empty() {
            return Vec::new();
        }
        (0..self.workloads.len()).filter(|&o| names.contains(&self.workloads[o].spec.name)).collect()
    }

    /// Workload `w`'s pods on Ready nodes, by zone.
    fn pods_by_zone(&self, w: usize) -> BTreeMap<String, u32> {
        let mut by_zone = BTreeMap::new();
        for node in self.nodes.iter().flatten().filter(|n| n.ready && !n.fargate) {
            let here = self.pods_on(node, w);
            *by_zone.entry(node.zone.clone()).or_default() += here as u32;
        }
        by_zone
    }

    /// Node `n` runs a pod of one of `workloads`.
    fn runs_any(&self, n: usize, workloads: &[usize]) -> bool {
        let Some(node) = self.nodes[n].as_ref().filter(|_| !workloads.is_empty()) else { return false };
        self.runs_pods_of(node, workloads)
    }

    /// How many of workload `w`'s pods `node` runs.
    fn pods_on(&self, node: &SimNode, w: usize) -> usize {
        node.pods.iter().filter(|&&p| self.pods[p].as_ref().is_some_and(|p| p.workload == w)).count()
    }

    fn runs_pods_of(&self, node: &SimNode, workloads: &[usize]) -> bool {
        node.pods.iter().any(|&p| self.pods[p].as_ref().is_some_and(|p| workloads.contains(&p.workload)))
    }

    /// Workload `w`'s pods in each zone and on each node that is Ready and admits them
    /// (cordoned or not: the scheduler's domains are the nodes its affinity allows, whatever
    /// their taints).
    fn spread(&self, w: usize) -> Spread {
        let spec = &self.workloads[w].spec;
        let mut spread = Spread {
            zone_skew: spec.max_zone_skew,
            node_skew: spec.max_node_skew,
            min_zone_domains: spec.min_zone_domains.unwrap_or(0),
            min_node_domains: spec.min_node_domains.unwrap_or(0),
            ..Spread::default()
        };
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(node) = node.as_ref().filter(|n| n.ready && !n.fargate) else { continue };
            if !self.node_admits(i, w) {
                continue;
            }
            let here = self.pods_on(node, w);
            *spread.zones.entry(node.zone.clone()).or_default() += here as u32;
            if spread.node_skew.is_some() {
                spread.nodes.insert(i, here as u32);
            }
        }
        spread.count_fewest();
        spread
    }
}

/// A workload's pods by zone and by node (nodes counted only when it is spread over nodes),
/// over the zones and nodes its pods may run on, and how far it may lean to one.
#[derive(Default)]
struct Spread {
    zone_skew: Option<u32>,
    node_skew: Option<u32>,
    /// While fewer zones count, the fewest in a zone is none.
    min_zone_domains: u32,
    /// While fewer nodes count, the fewest on a node is none.
    min_node_domains: u32,
    zones: BTreeMap<String, u32>,
    nodes: HashMap<usize, u32>,
    /// As last counted.
    fewest: Fewest,
}

/// The fewest of a workload's pods in a zone and on a node.
#[derive(Default)]
struct Fewest {
    in_zone: u32,
    on_node: u32,
}

impl Spread {
    /// One more pod on node `n` in `zone` leaves each within its skew of the fewest.
    fn may_take(&self, n: usize, zone: &str) -> bool {
        let within = |here: Option<&u32>, fewest: u32, skew: u32| here.copied().unwrap_or(0) < fewest + skew;
        self.zone_skew.is_none_or(|skew| within(self.zones.get(zone), self.fewest.in_zone, skew))
            && self.node_skew.is_none_or(|skew| within(self.nodes.get(&n), self.fewest.on_node, skew))
    }

    fn took(&mut self, n: usize, zone: &str) {
        *self.zones.entry(zone.to_string()).or_default() += 1;
        if self.node_skew.is_some() {
            *self.nodes.entry(n).or_default() += 1;
        }
        self.count_fewest();
    }

    fn count_fewest(&mut self) {
        let fewest = |counts: &mut dyn Iterator<Item = &u32>| counts.min().copied().unwrap_or(0);
        let counted = |domains: usize, min: u32, counts: &mut dyn Iterator<Item = &u32>| match domains < min as usize {
            true => 0,
            false => fewest(counts),
        };
        self.fewest = Fewest {
            in_zone: counted(self.zones.len(), self.min_zone_domains, &mut self.zones.values()),
            on_node: counted(self.nodes.len(), self.min_node_domains, &mut self.nodes.values()),
        };
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

    /// Five web pods bound at the start on three nodes of one group (three each by room),
    /// `rule` added to web: the pods on each node, in node order.
    fn bound_by_node(rule: &str) -> Vec<usize> {
        let text = format!(
            "name: t\nduration: 1h\nnode-groups:\n\
             \x20 - {{id: a, instance-types: [m5.large], min-size: 3, max-size: 5}}\n\
             workloads:\n  - {{name: web, requests: {{cpu: 600m}}, replicas: {{constant: 5}}{rule}}}\n"
        );
        let world = World::new(&Scenario::parse(Path::new("t.yaml"), &text).unwrap(), 1);
        world.nodes.iter().flatten().map(|n| n.pods.len()).collect()
    }

    #[test]
    fn pods_kept_spread_over_nodes_are_bound_within_the_skew() {
        assert_eq!(bound_by_node(""), [3, 2, 0], "first fit");
        assert_eq!(bound_by_node(", max-node-skew: 1"), [2, 2, 1]);
        assert_eq!(bound_by_node(", max-node-skew: 2"), [2, 2, 1], "the third waits for one on the empty node");
        assert_eq!(bound_by_node(", max-node-skew: 3"), [3, 2, 0]);
        let min_domains = |m| bound_by_node(&format!(", max-node-skew: 1, min-node-domains: {m}"));
        assert_eq!(min_domains(4), [1, 1, 1], "three nodes, four must count: two wait for a fourth");
        assert_eq!(min_domains(3), [2, 2, 1]);
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
        assert_eq!(
            bound_by_zone(", max-zone-skew: 1, min-zone-domains: 3"),
            zones(1, 1),
            "two zones, three must count"
        );
        assert_eq!(bound_by_zone(", max-zone-skew: 2, min-zone-domains: 2"), zones(3, 2));
    }

    /// Two web and two indexer pods bound at the start on three nodes of one group (three
    /// each by room), `web_rule` added to web and `indexer_rule` to the indexer: which
    /// workloads each node runs, in node order.
    fn bound_beside_web(web_rule: &str, indexer_rule: &str) -> Vec<String> {
        let text = format!(
            "name: t\nduration: 1h\nnode-groups:\n\
             \x20 - {{id: a, instance-types: [m5.large], min-size: 3, max-size: 5}}\n\
             workloads:\n  - {{name: web, requests: {{cpu: 600m}}, replicas: {{constant: 2}}{web_rule}}}\n\
             \x20 - {{name: indexer, requests: {{cpu: 600m}}, replicas: {{constant: 2}}{indexer_rule}}}\n"
        );
        let world = World::new(&Scenario::parse(Path::new("t.yaml"), &text).unwrap(), 1);
        (world.nodes.iter().flatten())
            .map(|n| {
                let mut names: Vec<&str> = (n.pods.iter())
                    .filter_map(|&p| world.pods[p].as_ref())
                    .map(|p| world.workloads[p.workload].spec.name.as_str())
                    .collect();
                names.dedup();
                names.join("+")
            })
            .collect()
    }

    #[test]
    fn pods_kept_away_from_anothers_are_bound_only_to_nodes_free_of_theirs() {
        assert_eq!(bound_beside_web("", ""), ["web+indexer", "indexer", ""], "first fit");
        let apart = ["web", "indexer", ""];
        assert_eq!(bound_beside_web("", ", kept-away: [web]"), apart);
        assert_eq!(bound_beside_web(", kept-away: [indexer]", ""), apart, "the web tier's rule holds both ways");
    }

    #[test]
    fn pods_kept_beside_anothers_are_bound_only_to_nodes_running_theirs() {
        let beside = ["web+indexer", "", ""];
        assert_eq!(bound_beside_web("", ", kept-beside: [web]"), beside, "the second waits for room beside web");
        let first = bound_beside_web(", kept-beside: [indexer]", "");
        assert_eq!(first, ["indexer", "", ""], "web, swept first, finds no indexer pod yet");
    }

    /// A db pod pinned to group `a` (us-east-1a) and four api pods bound at the start, one
    /// node in each of us-east-1a and us-east-1b (three api pods each by room), `rule` added
    /// to the api: the api pods bound in each zone.
    fn api_by_zone(rule: &str) -> BTreeMap<String, usize> {
        let text = format!(
            "name: t\nduration: 1h\nnode-groups:\n\
             \x20 - {{id: a, instance-types: [m5.large], min-size: 1, max-size: 5, zones: [us-east-1a]}}\n\
             \x20 - {{id: b, instance-types: [m5.large], min-size: 1, max-size: 5, zones: [us-east-1b]}}\n\
             workloads:\n  - {{name: db, requests: {{cpu: 100m}}, replicas: {{constant: 1}}, node-group: a}}\n\
             \x20 - {{name: api, requests: {{cpu: 600m}}, replicas: {{constant: 4}}{rule}}}\n"
        );
        let world = World::new(&Scenario::parse(Path::new("t.yaml"), &text).unwrap(), 1);
        let mut by_zone = BTreeMap::new();
        for node in world.nodes.iter().flatten() {
            let api = node.pods.iter().filter_map(|&p| world.pods[p].as_ref()).filter(|p| p.workload == 1).count();
            *by_zone.entry(node.zone.clone()).or_default() += api;
        }
        by_zone
    }

    #[test]
    fn pods_kept_to_so_many_a_zone_are_bound_within_it() {
        let zones = |a: usize, b: usize| BTreeMap::from([("us-east-1a".to_string(), a), ("us-east-1b".to_string(), b)]);
        assert_eq!(bound_by_zone(", max-per-zone: 1"), zones(1, 1), "three wait for a third zone");
        assert_eq!(bound_by_zone(", max-per-zone: 2"), zones(2, 2));
    }

    /// The api listed before the db: its pods are swept before the db's pod binds, find no
    /// zone, and are retried once it has.
    #[test]
    fn pods_kept_near_a_pod_bound_after_them_are_retried() {
        let text = "name: t\nduration: 1h\nnode-groups:\n\
                    \x20 - {id: a, instance-types: [m5.large], min-size: 1, max-size: 5, zones: [us-east-1a]}\n\
                    workloads:\n\
                    \x20 - {name: api, requests: {cpu: 100m}, replicas: {constant: 2}, zone-affinity: [db]}\n\
                    \x20 - {name: db, requests: {cpu: 100m}, replicas: {constant: 1}}\n";
        let mut world = World::new(&Scenario::parse(Path::new("t.yaml"), text).unwrap(), 1);
        let bound = |world: &World| world.nodes.iter().flatten().map(|n| n.pods.len()).sum::<usize>();
        assert_eq!(bound(&world), 1, "the db alone in the first sweep");
        world.step(1_000);
        assert_eq!(bound(&world), 3);
    }

    #[test]
    fn pods_kept_near_anothers_are_bound_only_in_their_zones() {
        let zones = |a: usize, b: usize| BTreeMap::from([("us-east-1a".to_string(), a), ("us-east-1b".to_string(), b)]);
        assert_eq!(api_by_zone(""), zones(3, 1), "first fit");
        assert_eq!(api_by_zone(", zone-affinity: [db]"), zones(3, 0), "the fourth waits for a node in db's zone");
    }
}

//! Scale-down: nodes under the utilisation threshold for long enough, whose load fits
//! elsewhere. A group tagged with Cluster Autoscaler's `autoscaling-options` has its own
//! threshold (GPU nodes: the GPU threshold) and unneeded time, over the settings.

use std::collections::{BTreeMap, HashMap};

use ballast_sdk::prelude::*;

use crate::Settings;
use crate::kept_apart::KeptApart;
use crate::zones::ZoneRoom;

/// Since when (snapshot millis) each node has been under the threshold.
pub type Under = BTreeMap<String, u64>;

/// The threshold and unneeded time that apply to one group's nodes.
#[derive(Clone, Copy)]
struct GroupRule {
    threshold: f64,
    gpu_threshold: f64,
    unneeded_seconds: u64,
    ignore_daemonsets: bool,
}

impl GroupRule {
    fn of(options: Option<&GroupOptions>, settings: &Settings) -> Self {
        let threshold =
            options.and_then(|o| o.scale_down_utilization_threshold).unwrap_or(settings.utilisation_threshold);
        GroupRule {
            threshold,
            gpu_threshold: options.and_then(|o| o.scale_down_gpu_utilization_threshold).unwrap_or(threshold),
            unneeded_seconds: options.and_then(|o| o.scale_down_unneeded_seconds).unwrap_or(settings.unneeded_seconds),
            ignore_daemonsets: (options.and_then(|o| o.ignore_daemonsets_utilization))
                .unwrap_or(settings.ignore_daemonsets_utilization),
        }
    }

    fn threshold_for(&self, node: &Node) -> f64 {
        if node.allocatable.gpus > 0 { self.gpu_threshold } else { self.threshold }
    }
}

/// What the pods of `which` of `shapes` request in all, each pod counted as one pod slot.
fn requests_of(shapes: &[PodShape], which: impl Fn(&PodShape) -> bool) -> Resources {
    (shapes.iter().filter(|s| which(s)))
        .fold(Resources::ZERO, |sum, s| sum.saturating_add(&Resources { pods: 1, ..s.requests }.times(s.count)))
}

/// A node's utilisation as `rule` measures it: its DaemonSet pods left out when the rule
/// ignores them.
fn utilisation_by_rule(snapshot: &dyn Snapshot, node: &Node, rule: &GroupRule) -> f64 {
    if !rule.ignore_daemonsets {
        return node.utilisation();
    }
    let shapes = snapshot.pods_on_node(&node.name);
    let daemons = requests_of(&shapes, |s| s.owner.as_ref().is_some_and(|o| o.kind == WorkloadKind::DaemonSet));
    node.requested.saturating_sub(&daemons).utilisation_of(&node.allocatable)
}

/// What a node's removal needs room for elsewhere: what its pods request, less the DaemonSet
/// and static pods a drain leaves to go with the node, as Cluster Autoscaler's scale-down
/// simulation leaves them out (they still count towards utilisation, as there).
fn moving_load(node: &Node, shapes: &[PodShape]) -> Resources {
    let staying = requests_of(shapes, |s| !s.moves_on_drain);
    Resources { pods: node.pod_count, ..node.requested }.saturating_sub(&staying)
}

pub fn plan(snapshot: &dyn Snapshot, settings: &Settings, state: &mut Under) -> Vec<Decision> {
    let now = snapshot.taken_at_millis();
    let options: HashMap<&str, &GroupOptions> =
        snapshot.group_options().iter().map(|o| (o.group.as_str(), o)).collect();
    let rule = |group: &str| GroupRule::of(options.get(group).copied(), settings);
    let groups: HashMap<&str, &NodeGroup> =
        snapshot.node_groups().iter().filter(|g| g.kind == NodeGroupKind::Asg).map(|g| (g.id.as_str(), g)).collect();
    let nodes = snapshot.nodes();
    let managed = |n: &Node| n.group.as_deref().is_some_and(|g| groups.contains_key(g)) && n.ready && !n.cordoned;

    // Who is under the threshold now, and since when.
    let utilised: HashMap<&str, f64> = (nodes.iter().filter(|n| managed(n)))
        .map(|n| (n.name.as_str(), utilisation_by_rule(snapshot, n, &rule(n.group.as_deref().unwrap_or_default()))))
        .collect();
    let utilisation = |n: &Node| utilised.get(n.name.as_str()).copied().unwrap_or_else(|| n.utilisation());
    let mut since = BTreeMap::new();
    for node in nodes.iter().filter(|n| managed(n)) {
        if utilisation(node) < rule(node.group.as_deref().unwrap_or_default()).threshold_for(node) {
            let first = state.get(&node.name).copied().unwrap_or(now);
            since.insert(node.name.clone(), first);
        }
    }
    *state = since;

    let unneeded = |n: &Node| rule(n.group.as_deref().unwrap_or_default()).unneeded_seconds.saturating_mul(1000);
    let mut candidates: Vec<&Node> = nodes
        .iter()
        .filter(|n| managed(n) && n.removal_blocker.is_none())
        .filter(|n| state.get(&n.name).is_some_and(|&s| now.saturating_sub(s) >= unneeded(n)))
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    candidates.sort_by(|a, b| utilisation(a).total_cmp(&utilisation(b)).then(a.name.cmp(&b.name)));

    // Spare room on every schedulable node, less headroom. Removing a node takes away its own
    // room and needs room elsewhere for its load; candidates are taken one at a time, so the
    // others still count as places to move to until they are chosen themselves.
    let keep = 1.0 - settings.headroom;
    let room = |n: &Node| {
        Resources {
            cpu_millis: (n.allocatable.cpu_millis as f64 * keep) as u64,
            memory_bytes: (n.allocatable.memory_bytes as f64 * keep) as u64,
            ..n.allocatable
        }
        .saturating_sub(&n.requested)
    };
    let schedulable: Vec<&Node> = nodes.iter().filter(|n| n.ready && !n.cordoned).collect();
    let mut spare = schedulable.iter().fold(Resources::ZERO, |acc, n| acc.saturating_add(&room(n)));
    let mut kept_apart = KeptApart::new(snapshot);
    let mut zones = ZoneRoom::new(snapshot, &schedulable, room);

    let mut removable_per_group: HashMap<&str, u32> =
        groups.iter().map(|(id, g)| (*id, g.desired_size.saturating_sub(g.min_size))).collect();
    let mut chosen: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
    for node in candidates {
        let group = node.group.as_deref().unwrap_or_default();
        let Some(budget) = removable_per_group.get_mut(group) else { continue };
        let shapes = snapshot.pods_on_node(&node.name);
        let load = moving_load(node, &shapes);
        let (own, zoned) = (room(node), zones.load(&shapes));
        let elsewhere = spare.saturating_sub(&own);
        if *budget == 0
            || !elsewhere.fits(&load)
            || !zones.fits(node, &own, &zoned)
            || !kept_apart.fit_elsewhere(node, &shapes, &schedulable)
        {
            continue;
        }
        kept_apart.going(node);
        zones.going(node, &own, &zoned);
        *budget -= 1;
        spare = elsewhere.saturating_sub(&load);
        chosen.entry(group).or_default().push(node);
    }

    chosen
        .into_iter()
        .map(|(group, nodes)| {
            let rule = rule(group);
            let details: Vec<String> = nodes
                .iter()
                .map(|n| {
                    let idle_min = now.saturating_sub(state[&n.name]) / 60_000;
                    format!("{} at {:.0}% for {idle_min} min", n.name, utilisation(n) * 100.0)
                })
                .collect();
            Decision::new(
                Action::RemoveNodes { nodes: nodes.iter().map(|n| n.name.clone()).collect() },
                format!(
                    "group {group}: {} under {:.0}% utilisation for at least {} min, and their pods fit on the remaining nodes",
                    details.join(", "),
                    rule.threshold * 100.0,
                    rule.unneeded_seconds / 60
                ),
            )
        })
        .collect()
}

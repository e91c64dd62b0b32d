//! `headroom`: keeps spare room for N pods of a given shape, optionally on a schedule, so
//! that a burst starts at once instead of waiting a node's boot time. The feature users of
//! Cluster Autoscaler (over-provisioning with pause pods) and Karpenter keep asking for,
//! without the pause pods.
//!
//! Each reserve counts the slots its shape has in the free room of Ready schedulable nodes
//! and in nodes on their way, of the groups that admit it (one named group, or every
//! untainted one). Nodes earlier policies of the chain asked for this tick are for pending
//! pods, not spare: the reserve is added on top of them. When short, it grows the group
//! with the cheapest slot; when removing any one node would make it short, it proposes to
//! hold the group at its size, which `consolidation` honours.

mod schedule;

use std::collections::BTreeMap;

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

pub use schedule::Window;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    pub reserves: Vec<Reserve>,
}

/// Spare room for `count` pods of `cpu` / `memory`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Reserve {
    pub count: u32,
    /// Per pod, e.g. `500m`.
    #[serde(with = "ballast_sdk::quantity::cpu")]
    pub cpu: u64,
    /// Per pod, e.g. `1Gi`.
    #[serde(with = "ballast_sdk::quantity::memory")]
    pub memory: u64,
    /// Only this group; default: every untainted Auto Scaling group.
    #[serde(default)]
    pub group: Option<String>,
    /// Only within these windows (UTC); default: always.
    #[serde(default)]
    pub schedule: Vec<Window>,
}

impl Reserve {
    fn shape(&self) -> Resources {
        Resources { cpu_millis: self.cpu, memory_bytes: self.memory, pods: 1, gpus: 0 }
    }

    fn describe(&self) -> String {
        format!("{} pods of {}", self.count, self.shape())
    }
}

pub struct Headroom;

impl Policy for Headroom {
    type Settings = Settings;
    type State = ();

    fn validate(settings: &Settings) -> Result<(), String> {
        for (i, r) in settings.reserves.iter().enumerate() {
            if r.cpu == 0 && r.memory == 0 {
                return Err(format!("reserves[{i}]: a pod of 0 CPU and 0 memory needs no room"));
            }
            for (j, w) in r.schedule.iter().enumerate() {
                w.validate().map_err(|e| format!("reserves[{i}].schedule[{j}].{e}"))?;
            }
        }
        Ok(())
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, _: &mut ()) -> Result<Vec<Decision>, String> {
        let now = snapshot.taken_at_millis();
        let mut targets: BTreeMap<String, (u32, String)> = BTreeMap::new();
        for reserve in &settings.reserves {
            if !reserve.schedule.is_empty() && !reserve.schedule.iter().any(|w| w.contains(now)) {
                continue;
            }
            if let Some((group, size, why)) = plan(snapshot, reserve, &targets) {
                targets.insert(group, (size, why));
            }
        }
        Ok(targets
            .into_iter()
            .map(|(group, (size, why))| Decision::new(Action::ScaleTo { group, size }, why))
            .collect())
    }
}

/// A group's slots for one shape: spare now, and per new node.
struct Slots<'a> {
    group: &'a NodeGroup,
    /// The size the group is headed for this tick (earlier proposals, this plugin's own).
    base: u32,
    spare: u64,
    per_node: u64,
    /// The most slots any one of its Ready nodes holds: what a removal could take.
    largest_node: u64,
}

fn plan(
    snapshot: &dyn Snapshot,
    reserve: &Reserve,
    planned: &BTreeMap<String, (u32, String)>,
) -> Option<(String, u32, String)> {
    let shape = reserve.shape();
    let groups: Vec<Slots> = snapshot
        .node_groups()
        .iter()
        .filter(|g| g.kind == NodeGroupKind::Asg && !g.instance_types.is_empty())
        .filter(|g| match &reserve.group {
            Some(id) => &g.id == id,
            None => g.taints.is_empty(),
        })
        .map(|g| slots(snapshot, g, &shape, planned.get(&g.id).map(|p| p.0)))
        .collect();
    let spare: u64 = groups.iter().map(|s| s.spare).sum();
    let want = reserve.count as u64;
    let what = reserve.describe();
    if spare >= want {
        // Enough; hold the group whose loss of one node would leave too little.
        let g = groups.iter().find(|s| s.spare > 0 && spare - s.largest_node.min(spare) < want)?;
        let why =
            format!("keeps spare room for {what}: {spare} slots now, fewer without any one node of {}", g.group.id);
        return Some((g.group.id.clone(), g.base, why));
    }
    let short = want - spare;
    let per_slot = |s: &Slots| s.group.max_price_per_hour() / s.per_node as f64;
    let g = groups
        .iter()
        .filter(|s| s.per_node > 0 && s.base < s.group.max_size)
        .min_by(|a, b| per_slot(a).total_cmp(&per_slot(b)))?;
    let nodes = short.div_ceil(g.per_node).min((g.group.max_size - g.base) as u64) as u32;
    let why = format!(
        "spare room for {what}: {spare} slots free, {nodes} new node(s) of {} add {} (the cheapest slot, ${:.4}/h per node)",
        g.group.id,
        nodes as u64 * g.per_node,
        g.group.max_price_per_hour()
    );
    Some((g.group.id.clone(), g.base + nodes, why))
}

fn slots<'a>(snapshot: &dyn Snapshot, group: &'a NodeGroup, shape: &Resources, planned: Option<u32>) -> Slots<'a> {
    let count = |free: &Resources| {
        let per = |f: u64, n: u64| if n == 0 { u64::MAX } else { f / n };
        per(free.cpu_millis, shape.cpu_millis).min(per(free.memory_bytes, shape.memory_bytes)).min(free.pods as u64)
    };
    let per_node = count(&group.guaranteed_allocatable());
    let on_nodes: Vec<u64> = snapshot
        .nodes()
        .iter()
        .filter(|n| n.group.as_deref() == Some(&group.id) && n.ready && !n.cordoned)
        .map(|n| count(&n.allocatable.saturating_sub(&n.requested)))
        .collect();
    let booting = group.desired_size.saturating_sub(group.ready_nodes) as u64;
    let earlier = snapshot
        .proposals()
        .iter()
        .filter_map(|p| match &p.decision.action {
            Action::ScaleTo { group: g, size } if g == &group.id => Some(*size),
            _ => None,
        })
        .max();
    // Nodes earlier policies asked for are for pending pods; those this plugin added for an
    // earlier reserve are spare.
    let headed = earlier.unwrap_or(group.desired_size).max(group.desired_size);
    let base = planned.unwrap_or(headed).max(headed);
    Slots {
        group,
        base,
        spare: on_nodes.iter().sum::<u64>() + (booting + (base - headed) as u64) * per_node,
        per_node,
        largest_node: on_nodes.iter().copied().max().unwrap_or(0),
    }
}

ballast_sdk::export_policy!(Headroom);

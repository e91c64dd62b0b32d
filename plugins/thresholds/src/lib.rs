//! `thresholds`: an Escalator-like policy, the baseline for utilisation-driven scaling.
//!
//! Per EC2 group, utilisation is the larger of CPU and memory of what its pods request
//! (running, plus pending pods the group admits) over the allocatable of its Ready,
//! uncordoned nodes. Above `scale-up-threshold` it adds
//! `ceil((utilisation - threshold) / threshold x nodes)` nodes (Escalator's formula, at least
//! one); below `scale-down-threshold` it removes `remove-per-tick` of the emptiest removable
//! nodes. It knows nothing of bin-packing or prices, which is the point of comparing with it.

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    pub scale_up_threshold: f64,
    pub scale_down_threshold: f64,
    pub remove_per_tick: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { scale_up_threshold: 0.7, scale_down_threshold: 0.4, remove_per_tick: 1 }
    }
}

pub struct Thresholds;

impl Policy for Thresholds {
    type Settings = Settings;
    type State = ();

    fn validate(s: &Settings) -> Result<(), String> {
        if !(s.scale_up_threshold > 0.0 && s.scale_up_threshold <= 1.0) {
            return Err(format!("scale-up-threshold must be in (0, 1], got {}", s.scale_up_threshold));
        }
        if !(0.0..s.scale_up_threshold).contains(&s.scale_down_threshold) {
            return Err(format!(
                "scale-down-threshold must be in [0, scale-up-threshold), got {}",
                s.scale_down_threshold
            ));
        }
        Ok(())
    }

    fn evaluate(snapshot: &dyn Snapshot, s: &Settings, _: &mut ()) -> Result<Vec<Decision>, String> {
        let mut decisions = Vec::new();
        let groups: Vec<&NodeGroup> = snapshot
            .node_groups()
            .iter()
            .filter(|g| g.kind == NodeGroupKind::Asg && !g.instance_types.is_empty())
            .collect();
        let pending = snapshot.pending_shapes();
        let mut claimed = vec![false; pending.len()];
        for group in groups {
            let nodes = snapshot.nodes_in_group(&group.id);
            let live: Vec<&Node> = nodes.iter().filter(|n| n.ready && !n.cordoned).collect();
            let mut requested = live.iter().fold(Resources::ZERO, |acc, n| acc.saturating_add(&n.requested));
            for (i, shape) in pending.iter().enumerate() {
                if !claimed[i] && group.admits(shape) {
                    claimed[i] = true;
                    requested = requested.saturating_add(&shape.requests.times(shape.count));
                }
            }
            let template = group.launch_allocatable();
            // Nodes on their way count as capacity, as Escalator counts them once registered.
            let booting = snapshot.booting(group);
            let count = live.len() as u32 + booting;
            let allocatable = live.iter().fold(Resources::ZERO, |acc, n| acc.saturating_add(&n.allocatable));
            let allocatable = (0..booting).fold(allocatable, |acc, _| acc.saturating_add(&template));
            let utilisation = if count == 0 {
                if requested.cpu_millis > 0 || requested.memory_bytes > 0 { f64::INFINITY } else { 0.0 }
            } else {
                requested.utilisation_of(&allocatable)
            };
            if utilisation > s.scale_up_threshold {
                let add = if count == 0 {
                    let per_node = template.cpu_millis as f64 * s.scale_up_threshold;
                    let by_mem = template.memory_bytes as f64 * s.scale_up_threshold;
                    ((requested.cpu_millis as f64 / per_node).max(requested.memory_bytes as f64 / by_mem)).ceil() as u32
                } else {
                    ((utilisation - s.scale_up_threshold) / s.scale_up_threshold * count as f64).ceil() as u32
                };
                let add = add.max(1);
                decisions.push(Decision::new(
                    Action::ScaleBy { group: group.id.clone(), delta: add as i32 },
                    format!(
                        "group {}: utilisation {} is above {:.0}%; adding {add} node(s) to {count}",
                        group.id,
                        percent(utilisation),
                        s.scale_up_threshold * 100.0
                    ),
                ));
            } else if utilisation < s.scale_down_threshold && group.desired_size > group.min_size {
                let mut candidates: Vec<&&Node> = live.iter().filter(|n| n.removal_blocker.is_none()).collect();
                candidates.sort_by(|a, b| a.utilisation().total_cmp(&b.utilisation()).then(a.name.cmp(&b.name)));
                let take = s.remove_per_tick.min(group.desired_size - group.min_size) as usize;
                let chosen: Vec<String> = candidates.iter().take(take).map(|n| n.name.clone()).collect();
                if !chosen.is_empty() {
                    decisions.push(Decision::new(
                        Action::RemoveNodes { nodes: chosen.clone() },
                        format!(
                            "group {}: utilisation {} is below {:.0}%; removing the emptiest: {}",
                            group.id,
                            percent(utilisation),
                            s.scale_down_threshold * 100.0,
                            chosen.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(decisions)
    }
}

fn percent(x: f64) -> String {
    if x.is_finite() { format!("{:.0}%", x * 100.0) } else { "unbounded (no nodes)".into() }
}

ballast_sdk::export_policy!(Thresholds);

#[cfg(test)]
mod tests {
    use ballast_sdk::testing::*;

    use super::*;

    fn group(desired: u32) -> GroupBuilder {
        GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, desired, 20).ready_nodes(desired)
    }

    #[test]
    fn adds_nodes_by_escalators_formula() {
        // Four nodes at 90% CPU: (0.9 - 0.7) / 0.7 x 4 = 1.14, so 2 nodes.
        let mut snapshot = SnapshotBuilder::new().group(group(4));
        for i in 0..4 {
            snapshot = snapshot
                .node(NodeBuilder::new(&format!("n{i}"), "m5").allocatable("2", "8Gi").requested("1800m", "1Gi", 3));
        }
        let decisions = Harness::<Thresholds>::new().evaluate(&snapshot.build()).unwrap();
        assert_eq!(decisions[0].action, Action::ScaleBy { group: "m5".into(), delta: 2 }, "{decisions:?}");
        assert!(decisions[0].reason.contains("90%"), "{}", decisions[0].reason);
    }

    #[test]
    fn removes_the_emptiest_removable_node_when_idle() {
        let snapshot = SnapshotBuilder::new()
            .group(group(3))
            .node(NodeBuilder::new("busy", "m5").allocatable("2", "8Gi").requested("900m", "1Gi", 3))
            .node(NodeBuilder::new("idle", "m5").allocatable("2", "8Gi").requested("100m", "1Gi", 1))
            .node(NodeBuilder::new("pinned", "m5").allocatable("2", "8Gi").blocked("pod has local storage"))
            .build();
        let decisions = Harness::<Thresholds>::new().evaluate(&snapshot).unwrap();
        assert_eq!(decisions[0].action, Action::RemoveNodes { nodes: vec!["idle".into()] }, "{decisions:?}");
    }
}

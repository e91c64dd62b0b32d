//! Reads every getter of the snapshot and returns what it read as its state, so the host can
//! compare it, field by field, with what it sent: the contract's round trip through the WIT
//! conversions of host and guest.

use std::collections::BTreeMap;

use ballast_sdk::prelude::*;
use ballast_sdk::{Node, SnapshotData};
use serde::{Deserialize, Serialize};

/// Everything read, in the shape the host sends it.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Read {
    pub snapshot: SnapshotData,
    /// `nodes-in-group` for every group.
    pub by_group: BTreeMap<String, Vec<Node>>,
    /// `pending-shapes` (0.1.2).
    pub pending_shapes: Vec<PendingShape>,
    /// `pods-on-node` (0.1.4) for a node the snapshot does not hold.
    pub pods_on_unknown_node: Vec<PodShape>,
}

pub struct Echo;

impl Policy for Echo {
    type Settings = ();
    type State = Read;

    fn evaluate(snapshot: &dyn Snapshot, _: &(), state: &mut Read) -> Result<Vec<Decision>, String> {
        let by_group = snapshot.node_groups().iter().map(|g| (g.id.clone(), snapshot.nodes_in_group(&g.id))).collect();
        *state = Read {
            snapshot: SnapshotData {
                taken_at_millis: snapshot.taken_at_millis(),
                node_groups: snapshot.node_groups().to_vec(),
                nodes: snapshot.nodes().to_vec(),
                pending_pods: snapshot.pending_pods().to_vec(),
                workloads: snapshot.workloads().to_vec(),
                fargate_pricing: snapshot.fargate_pricing().clone(),
                proposals: snapshot.proposals().to_vec(),
                metrics: snapshot.metrics().to_vec(),
                group_options: snapshot.group_options().to_vec(),
                // `pods-on-node` (0.1.4) for every node, kept where it holds any.
                pods_on_nodes: snapshot
                    .nodes()
                    .iter()
                    .map(|n| (n.name.clone(), snapshot.pods_on_node(&n.name)))
                    .filter(|(_, pods)| !pods.is_empty())
                    .collect(),
                // `scheduled-runs` (0.1.5).
                scheduled_runs: snapshot.scheduled_runs().to_vec(),
                // `group-cooldowns` (0.1.6).
                group_cooldowns: snapshot.group_cooldowns().to_vec(),
                // `horizontal-autoscalers` (0.1.7).
                horizontal_autoscalers: snapshot.horizontal_autoscalers().to_vec(),
                // `placement-cooldowns` (0.1.8).
                placement_cooldowns: snapshot.placement_cooldowns().to_vec(),
                // `launch-failures` (0.1.9).
                launch_failures: snapshot.launch_failures().to_vec(),
                // `provisioning-times` (0.1.10).
                provisioning_times: snapshot.provisioning_times().to_vec(),
                // `capacity-buffers` (0.1.11).
                capacity_buffers: snapshot.capacity_buffers().to_vec(),
                // `per-node-limits` (0.1.12).
                per_node_limits: snapshot.per_node_limits().to_vec(),
                // `zone-spreads` (0.1.13).
                zone_spreads: snapshot.zone_spreads().to_vec(),
                // `kept-away` (0.1.16).
                kept_away: snapshot.kept_away().to_vec(),
                pods_source: Default::default(),
                shapes: Default::default(),
            },
            by_group,
            pending_shapes: snapshot.pending_shapes().to_vec(),
            pods_on_unknown_node: snapshot.pods_on_node("no-such-node"),
        };
        Ok(Vec::new())
    }
}

ballast_sdk::export_policy!(Echo);

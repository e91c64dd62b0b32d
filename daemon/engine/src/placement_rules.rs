//! The rules workloads' pod templates set on where their pods may run, as policies get them
//! in the snapshot: the limits per node (`per-node-limits`), the spreads over zones with their
//! pods by zone (`zone-spreads`), and the pods by zone the host's zone checks count.

use std::collections::{BTreeMap, HashMap, HashSet};

use ballast_sdk::WorkloadRef;

use crate::ports::{NodeView, WorkloadView};

/// The workloads that limit their pods per node, by workload: kept apart, or spread over
/// nodes (`spread_caps`, the cap each spread sets now), the tighter where both.
pub fn per_node_limits(
    workloads: &[WorkloadView],
    spread_caps: &HashMap<WorkloadRef, u32>,
) -> Vec<ballast_sdk::PerNodeLimit> {
    let mut limits: Vec<_> = workloads
        .iter()
        .filter_map(|w| {
            let max_pods = match (w.max_per_node, spread_caps.get(&w.id)) {
                (Some(a), Some(&b)) => a.min(b),
                (a, b) => a.or(b.copied())?,
            };
            Some(ballast_sdk::PerNodeLimit { workload: w.id.clone(), max_pods })
        })
        .collect();
    limits.sort_by(|a, b| a.workload.cmp(&b.workload));
    limits
}

/// The workloads kept spread over zones, by workload, with their pods on the nodes of each
/// zone (`by_zone`, from [`pods_by_zone`]).
pub fn zone_spreads(workloads: &[WorkloadView], by_zone: &PodsByZone) -> Vec<ballast_sdk::ZoneSpread> {
    let mut spreads: Vec<ballast_sdk::ZoneSpread> = (workloads.iter())
        .filter_map(|w| {
            let pods_by_zone = by_zone.get(&w.id).into_iter().flatten();
            Some(ballast_sdk::ZoneSpread {
                workload: w.id.clone(),
                max_skew: w.max_zone_skew?,
                pods_by_zone: pods_by_zone
                    .map(|(zone, &pods)| ballast_sdk::ZonePods { zone: zone.clone(), pods })
                    .collect(),
            })
        })
        .collect();
    spreads.sort_by(|a, b| a.workload.cmp(&b.workload));
    spreads
}

/// Each workload's pods on the nodes of each zone that has any, by workload.
pub type PodsByZone = HashMap<WorkloadRef, BTreeMap<String, u32>>;

/// The pods by zone of the workloads that ask something of zones (a zone spread, or at most
/// so many a zone), Fargate's aside: each pod there is a node of its own, outside any group's
/// zones. Walks the nodes' shapes only when some workload asks.
pub fn pods_by_zone(workloads: &[WorkloadView], nodes: &[NodeView]) -> PodsByZone {
    let wanted: HashSet<&WorkloadRef> =
        (workloads.iter()).filter(|w| w.max_zone_skew.is_some() || w.max_per_zone.is_some()).map(|w| &w.id).collect();
    let mut by_zone = PodsByZone::new();
    if wanted.is_empty() {
        return by_zone;
    }
    for node in nodes.iter().filter(|n| !n.fargate) {
        for on in node.pods.shapes.iter().filter(|on| !on.pods.is_empty()) {
            let Some(owner) = on.shape.owner.as_deref().filter(|o| wanted.contains(o)) else { continue };
            let zones = by_zone.entry(owner.clone()).or_default();
            *zones.entry(node.zone.clone()).or_default() += on.pods.len() as u32;
        }
    }
    by_zone
}

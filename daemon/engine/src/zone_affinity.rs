//! Workloads whose pods the scheduler keeps in the zones of other workloads' pods: a
//! required pod affinity on `topology.kubernetes.io/zone` in the pod template taking in their
//! pods ([`WorkloadView::zone_affinity`]), as charts set to keep an API beside its database
//! and off cross-zone traffic. Where those pods all run in one zone, the workload's pods are
//! handed to policies as selecting that zone, so no group of another zone is grown for
//! them and no move takes them out of it (a node in another zone stands empty while they
//! wait).
//!
//! # Caveats
//! - Where the pods taken in run in several zones, nothing is pinned: a group in a zone
//!   that runs none of them may still be grown.
//! - Of several such terms, the zones of all their workloads are read as one set (the
//!   scheduler asks a zone that holds a pod of each term's).
//! - Where none of those pods runs yet, nothing is pinned: the scheduler runs the pods
//!   nowhere, unless their own term takes them in, and [`crate::pod_affinity`] passes them
//!   over while none of those pods waits either.
//! - Pods on Fargate are not counted: a zone where those pods run only on Fargate does not
//!   pin.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ballast_sdk::WorkloadRef;

use crate::node_labels::{ZONE, ZONE_KEYS};
use crate::ports::{NodeView, WorkloadView};

/// The zone each workload kept in another's zones must run in, where that is one zone.
pub fn pins(workloads: &[WorkloadView], nodes: &[NodeView]) -> HashMap<WorkloadRef, String> {
    let asking: Vec<&WorkloadView> = workloads.iter().filter(|w| !w.zone_affinity.is_empty()).collect();
    if asking.is_empty() {
        return HashMap::new();
    }
    let wanted: HashSet<&WorkloadRef> = asking.iter().flat_map(|w| &w.zone_affinity).collect();
    let zones = zones_running(&wanted, nodes);
    (asking.into_iter())
        .filter_map(|w| {
            let all: BTreeSet<&str> = w.zone_affinity.iter().filter_map(|t| zones.get(t)).flatten().copied().collect();
            match all.len() {
                1 => all.first().map(|zone| (w.id.clone(), zone.to_string())),
                _ => None,
            }
        })
        .collect()
}

/// The zones where each of `wanted` has a pod on a node (Fargate's aside), for those that have.
pub fn zones_running<'a>(
    wanted: &HashSet<&WorkloadRef>,
    nodes: &'a [NodeView],
) -> HashMap<&'a WorkloadRef, BTreeSet<&'a str>> {
    let mut zones: HashMap<&WorkloadRef, BTreeSet<&str>> = HashMap::new();
    for node in nodes.iter().filter(|n| !n.fargate) {
        for on in node.pods.shapes.iter().filter(|on| !on.pods.is_empty()) {
            if let Some(owner) = on.shape.owner.as_deref().filter(|o| wanted.contains(o)) {
                zones.entry(owner).or_default().insert(node.zone.as_str());
            }
        }
    }
    zones
}

/// Adds the zone of `owner`'s pin to a pod's `node_selector`, unless it selects a zone
/// already (its own rule, or its volume's).
pub fn pin(
    node_selector: &mut BTreeMap<String, String>,
    owner: Option<&WorkloadRef>,
    pins: &HashMap<WorkloadRef, String>,
) {
    if let Some(zone) = owner.and_then(|o| pins.get(o)) {
        select_zone(node_selector, zone);
    }
}

/// Adds `zone` to a pod's `node_selector`, unless it selects a zone already.
pub fn select_zone(node_selector: &mut BTreeMap<String, String>, zone: &str) {
    if !ZONE_KEYS.iter().any(|k| node_selector.contains_key(*k)) {
        node_selector.insert(ZONE.to_string(), zone.to_string());
    }
}

//! What a workload's pods ask of a node besides room: the groups it may run in.
//!
//! A workload record carries no selectors or tolerations; its pods do. Weighing only
//! untainted groups sent a workload that tolerates a cheap tainted spot group to Fargate
//! against the price of an on-demand group (scenario 383 of the hunt).

use std::collections::{HashMap, HashSet};

use ballast_sdk::prelude::*;

/// A workload's pods' node selector, affinity keys and tolerations, read from one of them
/// and kept in the SDK's running shape (its other fields unset), which `NodeGroup::admits`
/// reads.
pub type Asks = PodShape;

/// What `pod` asks of a node besides room.
pub fn of_pod(pod: &impl Constraints) -> Asks {
    PodShape {
        node_selector: pod.node_selector().clone(),
        affinity_keys: pod.affinity_keys().to_vec(),
        tolerations: pod.tolerations().to_vec(),
        ..PodShape::default()
    }
}

/// What the pods of each of `workloads` ask: from a waiting pod of it, else from one of the
/// running pods `seen` already holds (read with the groups' loads), else from one on a node
/// `read` says was not read yet. A workload none of whose pods can be read is left out.
///
/// # Caveats
/// Nodes not read yet (not Ready, or not in an Auto Scaling group: Fargate's) are read one
/// `pods-on-node` call each, only until every workload is found: a workload with no pod
/// anywhere has every such node read, on every evaluation.
pub fn of(
    snapshot: &dyn Snapshot,
    workloads: &[&Workload],
    mut seen: HashMap<WorkloadRef, Asks>,
    read: impl Fn(&Node) -> bool,
) -> HashMap<WorkloadRef, Asks> {
    let mut missing: HashSet<&WorkloadRef> = workloads.iter().map(|w| &w.id).collect();
    let mut found = HashMap::new();
    for shape in snapshot.pending_shapes() {
        if let Some(owner) = shape.owner.as_ref().and_then(|o| missing.take(o)) {
            found.insert(owner.clone(), of_pod(shape));
        }
    }
    missing.retain(|owner| match seen.remove_entry(*owner) {
        Some((owner, asks)) => {
            found.insert(owner, asks);
            false
        }
        None => true,
    });
    for node in snapshot.nodes().iter().filter(|n| !read(n)) {
        if missing.is_empty() {
            break;
        }
        for pod in snapshot.pods_on_node(&node.name) {
            if let Some(owner) = pod.owner.as_ref().and_then(|o| missing.take(o)) {
                found.insert(owner.clone(), of_pod(&pod));
            }
        }
    }
    found
}

//! Workloads whose pods the scheduler keeps off each other's nodes: a required pod
//! anti-affinity on the hostname in one's pod template against the other's pods
//! ([`WorkloadView::kept_away`], as an adapter reads it from one side). The scheduler checks
//! the rule from both sides (an incoming pod's own terms, and those of the pods already on the
//! node), so policies get each pair under both workloads.

use std::collections::{BTreeMap, BTreeSet};

use ballast_sdk::{KeptAway, WorkloadRef};

use crate::ports::WorkloadView;

/// Each workload kept off another's nodes, with the workloads it is kept from, by workload;
/// a rule against a workload that is not observed, or against the workload itself (a limit
/// per node, not a pair), is left out.
pub fn pairs(workloads: &[WorkloadView]) -> Vec<KeptAway> {
    if workloads.iter().all(|w| w.kept_away.is_empty()) {
        return Vec::new();
    }
    let known: BTreeSet<&WorkloadRef> = workloads.iter().map(|w| &w.id).collect();
    let mut from: BTreeMap<&WorkloadRef, Vec<&WorkloadRef>> = BTreeMap::new();
    for w in workloads {
        for other in w.kept_away.iter().filter(|o| *o != &w.id && known.contains(o)) {
            from.entry(&w.id).or_default().push(other);
            from.entry(other).or_default().push(&w.id);
        }
    }
    (from.into_iter())
        .map(|(workload, mut apart)| {
            apart.sort();
            apart.dedup();
            KeptAway { workload: workload.clone(), apart_from: apart.into_iter().cloned().collect() }
        })
        .collect()
}

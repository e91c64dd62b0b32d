//! Nodes that run pods of a shrinking workload wait (`shrink-wait-seconds`,
//! `shrink-replace-wait-seconds`).
//!
//! While a Deployment scales in, its own controller deletes pods and empties nodes; a drain
//! of a node it runs on would evict pods the scale-in may delete minutes later, and move the
//! rest once more than needed. So with `shrink-wait-seconds` a node that is not empty is not
//! removed, replaced or merged while any workload it runs lost replicas within the window;
//! empty nodes still go at once.
//!
//! `shrink-replace-wait-seconds` holds back only the moves that launch a node: a half-empty
//! node of a scale-in replaced by a smaller one (a c5.xlarge by an m5.large, 44% less) is
//! soon merged with another such into a larger one again (two m5.large into a c5.xlarge),
//! its pods moved at each step. The node is still removed once its pods fit on the others.
//!
//! # Caveats
//! A workload's replica count is followed only while its pods are on a node weighed as a
//! candidate (a few hundred workloads at most, not every workload of the cluster on every
//! tick), so the first fall seen is the one between two evaluations that both weighed it:
//! a node waits from the second tick a shrink is under way, not the first.

use std::collections::{BTreeMap, HashSet};

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// A workload followed: its replicas when last seen, and when they last fell.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
pub struct Followed {
    pub replicas: u32,
    pub fell_at: u64,
    pub seen_at: u64,
}

/// Notes the replicas of every workload in `owners` and returns those that fell within
/// `window_ms` of `now`, with how long ago (ms). Workloads not seen for a window are
/// forgotten. Only the owners are looked up: the other workloads cost a hash each, not a
/// key (a tree of owners compared names for a quarter of consolidation's time at 5,000
/// nodes).
pub(crate) fn fell(
    followed: &mut BTreeMap<String, Followed>,
    workloads: &[Workload],
    owners: &HashSet<&WorkloadRef>,
    now: u64,
    window_ms: u64,
) -> BTreeMap<WorkloadRef, u64> {
    let mut falling = BTreeMap::new();
    for w in workloads.iter().filter(|w| owners.contains(&w.id)) {
        let seen =
            followed.entry(w.id.to_string()).or_insert(Followed { replicas: w.replicas, fell_at: 0, seen_at: now });
        if w.replicas < seen.replicas {
            seen.fell_at = now;
        }
        seen.replicas = w.replicas;
        seen.seen_at = now;
        let ago = now.saturating_sub(seen.fell_at);
        if seen.fell_at > 0 && ago < window_ms {
            falling.insert(w.id.clone(), ago);
        }
    }
    followed.retain(|_, f| now.saturating_sub(f.seen_at) <= window_ms);
    falling
}

/// The workloads whose pods a drain of a node with these shapes would move.
pub(crate) fn owners<'a>(shapes: impl Iterator<Item = &'a PodShape>) -> impl Iterator<Item = &'a WorkloadRef> {
    shapes.filter(|s| s.moves_on_drain && s.count > 0).filter_map(|s| s.owner.as_ref())
}

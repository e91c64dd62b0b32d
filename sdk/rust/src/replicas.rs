//! Replica history: the recent replica counts of the workloads a policy follows, kept in
//! its [`crate::Policy::State`] from one evaluation to the next.
//!
//! A policy that reasons about a workload's growth (a climb to make room ahead of, a rate
//! to price new nodes by) follows only the workloads whose pods wait, so its state stays
//! small in a large cluster at rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Workload, WorkloadRef};
use crate::snapshot::Snapshot;

/// A replica count and when it was first seen. Short names: a state holds one or more per
/// workload and crosses the plugin boundary as JSON on every call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Sample {
    #[serde(rename = "t")]
    pub at: u64,
    #[serde(rename = "n")]
    pub replicas: u32,
}

/// The key a workload is followed under: `Kind/namespace/name` with the kind's Rust name,
/// cheaper than the display form (which goes through serde), as it is made for every
/// workload of the snapshot on each evaluation that follows any.
pub fn key(id: &WorkloadRef) -> String {
    format!("{:?}/{}/{}", id.kind, id.namespace, id.name)
}

/// The followed workloads' replica counts, by workload ([`key`]): one sample
/// per change, the newest last, none older than needed to know the count at the start of
/// the window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ReplicaHistory {
    pub workloads: BTreeMap<String, Vec<Sample>>,
}

impl ReplicaHistory {
    /// Records the replica counts of the workloads `follow` admits that have pods pending
    /// now, and of those already followed.
    ///
    /// # Guarantees
    /// After the call, a followed workload's last sample is its count in this snapshot, and
    /// its first is its count at `now - window_millis` when it was followed then.
    ///
    /// # Caveats
    /// A workload is followed from the first evaluation that finds one of its pods pending,
    /// counting from the replicas it has then, so the step that made it wait is not seen;
    /// it is forgotten once nothing of it is pending and its count has not changed for a
    /// window.
    pub fn observe(
        &mut self,
        snapshot: &dyn Snapshot,
        now: u64,
        window_millis: u64,
        follow: impl Fn(&Workload) -> bool,
    ) {
        let pending: std::collections::BTreeSet<String> =
            snapshot.pending_shapes().iter().filter_map(|s| s.owner.as_ref()).map(key).collect();
        // A cluster at rest: nothing followed, nothing to start following.
        if pending.is_empty() && self.workloads.is_empty() {
            return;
        }
        let start = now.saturating_sub(window_millis);
        let mut followed = BTreeMap::new();
        for w in snapshot.workloads().iter().filter(|w| follow(w)) {
            let id = key(&w.id);
            let waiting = pending.contains(&id);
            let Some(mut samples) = self.workloads.remove(&id).or_else(|| waiting.then(Vec::new)) else {
                continue;
            };
            if samples.last().is_none_or(|s| s.replicas != w.replicas) {
                samples.push(Sample { at: now, replicas: w.replicas });
            }
            // Keep the newest sample at or before the window's start: the count it began at.
            let before = samples.iter().rposition(|s| s.at <= start).unwrap_or(0);
            samples.drain(..before);
            let rested = samples.len() == 1 && samples[0].at <= start;
            if waiting || !rested {
                followed.insert(id, samples);
            }
        }
        self.workloads = followed;
    }

    /// The samples of `workload`, oldest first, if it is followed.
    pub fn of(&self, workload: &WorkloadRef) -> Option<&[Sample]> {
        self.workloads.get(&key(workload)).map(Vec::as_slice)
    }

    /// True if no workload is followed.
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{SnapshotBuilder, deployment};

    fn web(at_seconds: u64, replicas: u32, pending: u32) -> crate::SnapshotData {
        let mut b = SnapshotBuilder::new()
            .at_millis(at_seconds * 1000)
            .workload(deployment("shop", "web", replicas, "500m", "1Gi"));
        if pending > 0 {
            b = b.pending_pods("shop", "web", pending as usize, "500m", "1Gi");
        }
        b.build()
    }

    #[test]
    fn a_workload_is_followed_from_its_first_wait_until_its_count_rests_for_a_window() {
        let mut history = ReplicaHistory::default();
        let web_ref = deployment("shop", "web", 0, "1", "1Gi").id;
        let window = 60_000;
        history.observe(&web(0, 10, 0), 0, window, |_| true);
        assert!(history.is_empty(), "nothing waits: nothing followed");
        for (at, replicas, pending) in [(10, 12, 1), (30, 14, 0), (80, 15, 0)] {
            history.observe(&web(at, replicas, pending), at * 1000, window, |_| true);
        }
        // The count at the window's start (12 since 10 s: the newest sample at or before 20 s)
        // and each change since; the count before that (10) was never followed.
        let samples: Vec<(u64, u32)> = history.of(&web_ref).unwrap().iter().map(|s| (s.at, s.replicas)).collect();
        assert_eq!(samples, [(10_000, 12), (30_000, 14), (80_000, 15)]);
        history.observe(&web(130, 15, 0), 130_000, window, |_| true);
        assert!(history.of(&web_ref).is_some(), "changed 50 s ago: still followed");
        history.observe(&web(140, 15, 0), 140_000, window, |_| true);
        assert!(history.is_empty(), "rested a window with nothing waiting: forgotten");
    }

    #[test]
    fn a_workload_the_filter_refuses_is_not_followed() {
        let mut history = ReplicaHistory::default();
        history.observe(&web(0, 10, 2), 0, 60_000, |_| false);
        assert!(history.is_empty());
    }
}

//! Growth: how many more pods a workload that keeps outgrowing its room will bring soon.
//!
//! A workload climbing a pod or two at a time (a working day's web tier) waits for a new
//! node every few minutes. The cheapest node for the one pod waiting now is often not the
//! cheapest per pod for the pods that follow it onto that node: an m5.large ($0.096/h, three
//! 500m pods) beats a c5.xlarge ($0.17/h, six) for one pod, and loses once the climb has
//! filled it. Scale-up then prices each group by what its new nodes would hold over
//! `growth.horizon-seconds` at the workload's recent rate, and still buys only what the pods
//! waiting now need.

use ballast_sdk::prelude::*;
use ballast_sdk::replicas::ReplicaHistory;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Growth {
    /// How far back a workload's growth is measured.
    pub window_seconds: u64,
    /// How far ahead that rate is expected to go on: how long a new node stays anyway (the
    /// host's cooldown after a scale-up). 0 turns this off: each group is priced for the pods
    /// waiting now only.
    pub horizon_seconds: u64,
}

impl Default for Growth {
    fn default() -> Self {
        Growth { window_seconds: 900, horizon_seconds: 0 }
    }
}

impl Growth {
    pub fn validate(&self) -> Result<(), String> {
        if self.horizon_seconds > 0 && self.window_seconds == 0 {
            return Err("growth.window-seconds: 0 leaves no time to measure growth over".into());
        }
        Ok(())
    }
}

/// The replica counts of workloads whose pods waited lately.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Followed {
    pub history: ReplicaHistory,
}

impl Followed {
    /// Records the replica counts of the workloads with pods pending now, and of those
    /// followed whose count changed within the window ([`ReplicaHistory::observe`]: a
    /// workload's first wait is priced for the pods waiting only).
    pub fn observe(&mut self, snapshot: &dyn Snapshot, now: u64, settings: &Growth) {
        self.history.observe(snapshot, now, settings.window_seconds.saturating_mul(1000), |_| true);
    }

    /// How many more replicas `workload` is expected to add within the horizon, at the rate
    /// it grew over the window (counted over the whole window, so a workload followed for
    /// less is expected to add less); no more than its HorizontalPodAutoscaler lets it reach.
    pub fn expected(&self, snapshot: &dyn Snapshot, workload: &WorkloadRef, settings: &Growth) -> u32 {
        if settings.horizon_seconds == 0 {
            return 0;
        }
        let Some(samples) = self.history.of(workload) else {
            return 0;
        };
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return 0;
        };
        // Over the whole window even when followed for less: a first step seconds ago is no
        // rate to extrapolate ten minutes from.
        let grew = last.replicas.saturating_sub(first.replicas);
        let at_rate = u64::from(grew).saturating_mul(settings.horizon_seconds) / settings.window_seconds.max(1);
        let at_rate = u32::try_from(at_rate).unwrap_or(u32::MAX);
        // The last sample is this tick's count: `observe` ran first. (No search of the
        // snapshot's workloads: this is asked once per waiting shape.)
        snapshot.autoscaler_of(workload).map_or(at_rate, |a| at_rate.min(a.room_to_grow(last.replicas)))
    }
}

//! Growth: how many more pods a workload that keeps outgrowing its room will bring soon.
//!
//! A workload climbing a pod or two at a time (a working day's web tier) waits for a new
//! node every few minutes. The cheapest node for the one pod waiting now is often not the
//! cheapest per pod for the pods that follow it onto that node: an m5.large ($0.096/h, three
//! 500m pods) beats a c5.xlarge ($0.17/h, six) for one pod, and loses once the climb has
//! filled it. Scale-up then prices each group by what its new nodes would hold over
//! `growth.horizon-seconds` at the workload's recent rate, and still buys only what the pods
//! waiting now need.

use std::collections::BTreeMap;

use ballast_sdk::prelude::*;
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

/// A replica count and when it was first seen (short names: the state crosses the plugin
/// boundary as JSON on every call).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
pub struct Sample {
    #[serde(rename = "t")]
    pub at: u64,
    #[serde(rename = "n")]
    pub replicas: u32,
}

/// The recent replica counts of the workloads followed, by workload (`kind/namespace/name`),
/// one sample per change, the newest last.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Followed {
    pub workloads: BTreeMap<String, Vec<Sample>>,
}

impl Followed {
    /// Records the replica counts of the workloads with pods pending now, and of those
    /// followed whose count changed within the window.
    ///
    /// # Caveats
    /// A workload is followed from the first evaluation that finds one of its pods pending,
    /// so its first wait is priced for the pods waiting only; it is forgotten once nothing of
    /// it is pending and its count has rested for a window, which keeps the state small in a
    /// large cluster at rest.
    pub fn observe(&mut self, snapshot: &dyn Snapshot, now: u64, settings: &Growth) {
        let pending: std::collections::BTreeSet<String> =
            snapshot.pending_shapes().iter().filter_map(|s| s.owner.as_ref()).map(ToString::to_string).collect();
        if pending.is_empty() && self.workloads.is_empty() {
            return;
        }
        let start = now.saturating_sub(settings.window_seconds * 1000);
        let mut followed = BTreeMap::new();
        for w in snapshot.workloads() {
            let key = w.id.to_string();
            let waiting = pending.contains(&key);
            let Some(mut samples) = self.workloads.remove(&key).or_else(|| waiting.then(Vec::new)) else {
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
                followed.insert(key, samples);
            }
        }
        self.workloads = followed;
    }

    /// How many more replicas `workload` is expected to add within the horizon, at the rate
    /// it grew over the window (counted over the whole window, so a workload followed for
    /// less is expected to add less); no more than its HorizontalPodAutoscaler lets it reach.
    pub fn expected(&self, snapshot: &dyn Snapshot, workload: &WorkloadRef, settings: &Growth) -> u32 {
        if settings.horizon_seconds == 0 {
            return 0;
        }
        let Some(samples) = self.workloads.get(&workload.to_string()) else {
            return 0;
        };
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return 0;
        };
        // Over the whole window even when followed for less: a first step seconds ago is no
        // rate to extrapolate ten minutes from.
        let grew = last.replicas.saturating_sub(first.replicas);
        let at_rate = (u64::from(grew) * settings.horizon_seconds / settings.window_seconds.max(1)) as u32;
        let current = snapshot.workloads().iter().find(|w| &w.id == workload).map_or(last.replicas, |w| w.replicas);
        snapshot.autoscaler_of(workload).map_or(at_rate, |a| at_rate.min(a.room_to_grow(current)))
    }
}

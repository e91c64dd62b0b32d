//! What the workloads and the groups reached lately, kept in the policy's state. A workload
//! on Fargate is priced on EC2 at the most replicas it ran within the window, beside the
//! least its group's load was: one whose bursts are dear on EC2, or that fits only while
//! short batch runs keep a group's nodes, is not brought back only to leave again.

use std::collections::BTreeMap;

use ballast_sdk::prelude::*;
use ballast_sdk::replicas::key;
use serde::{Deserialize, Serialize};

/// The policy's state: per workload on Fargate (or being sent there) its peak replica
/// count, per Auto Scaling group the least its load requested (and what was brought back to
/// it since, [`Recent::brought`]), each within the window. A
/// workload on EC2 has no entry, so the state grows with what runs on Fargate, not with the
/// cluster.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Recent {
    peaks: BTreeMap<String, Peak>,
    lows: BTreeMap<String, Low>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
struct Peak {
    replicas: u32,
    /// When it was set, Unix millis.
    at: u64,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
struct Low {
    load: Resources,
    /// When a load at or under it in every resource was last seen, Unix millis.
    at: u64,
}

impl Recent {
    /// Takes in the replica counts of the workloads on Fargate and the groups' loads at
    /// `now`, and forgets what is no longer listed.
    ///
    /// # Caveats
    /// One figure each, not a sliding extreme: a peak (a low) older than `window_ms` gives
    /// way to the figure of the moment, even if one in between went further. A low is kept
    /// per resource, so it may combine the least CPU of one moment with the least memory of
    /// another: never more than the load was. A workload's peak counts from when it was
    /// sent to Fargate ([`Recent::sent`]), not from before.
    pub fn observe<'a, 'w>(
        &mut self,
        on_fargate: impl Iterator<Item = &'w Workload>,
        loads: impl Iterator<Item = (&'a str, Resources)>,
        now: u64,
        window_ms: u64,
    ) {
        let peaks = on_fargate.map(|w| self.follow(w, now, window_ms)).collect();
        let mut lows = BTreeMap::new();
        for (group, load) in loads {
            // A load at or under the low in every resource is the new low.
            let low = match self.lows.remove(group) {
                Some(low) if fresh(low.at, now, window_ms) && !low.load.fits(&load) => {
                    Low { load: low.load.least(&load), ..low }
                }
                _ => Low { load, at: now },
            };
            lows.insert(group.to_string(), low);
        }
        (self.peaks, self.lows) = (peaks, lows);
    }

    /// Starts following `workload`, proposed for Fargate at `now`, from its count then.
    pub fn sent(&mut self, workload: &Workload, now: u64, window_ms: u64) {
        let (id, peak) = self.follow(workload, now, window_ms);
        self.peaks.insert(id, peak);
    }

    /// Adds `requests` to the least load of `group`: a workload on Fargate was brought back
    /// to it. Until its pods show in the group's load the least load lacks them, and a
    /// workload weighed beside it the next tick would fit in the room the first one takes.
    /// The next [`Recent::observe`] keeps the lesser of this and the load it sees, so a
    /// return the host refused lowers it again.
    pub fn brought(&mut self, group: &str, requests: &Resources) {
        if let Some(low) = self.lows.get_mut(group) {
            low.load = low.load.saturating_add(requests);
        }
    }

    /// The most replicas `workload` ran within the window, its count now included.
    pub fn peak(&self, workload: &Workload) -> u32 {
        let peak = self.peaks.get(&key(&workload.id)).map_or(0, |p| p.replicas);
        peak.max(workload.replicas)
    }

    /// The least the load of `group` requested within the window, the load [`Recent::observe`]
    /// took in included; `None` for a group it was not given.
    pub fn low(&self, group: &str) -> Option<Resources> {
        self.lows.get(group).map(|low| low.load)
    }

    /// `workload`'s entry: its peak if one still stands within the window, or its count now.
    fn follow(&self, workload: &Workload, now: u64, window_ms: u64) -> (String, Peak) {
        let id = key(&workload.id);
        let peak = match self.peaks.get(&id) {
            Some(p) if p.replicas > workload.replicas && fresh(p.at, now, window_ms) => *p,
            _ => Peak { replicas: workload.replicas, at: now },
        };
        (id, peak)
    }
}

/// Whether a figure set `at` still stands at `now`.
fn fresh(at: u64, now: u64, window_ms: u64) -> bool {
    now.saturating_sub(at) < window_ms
}

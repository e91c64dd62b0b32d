//! Ramps: a workload whose replica count has climbed step after step (a flash sale, a
//! horizontal autoscaler scaling out) is likely to climb for a node's boot time more. Room
//! for what it would add in `lead-seconds` at its recent rate is asked for now, so those pods
//! find nodes booted instead of each wave waiting for its own.
//!
//! Where a HorizontalPodAutoscaler scales the workload, the climb stops at its
//! `max-replicas`: room is asked only for what is left below it.
//!
//! A single jump is not a ramp: it has no rate to extrapolate, and its pods are pending
//! pods, scale-up's business. Nor is a climb that has stopped: room is asked for only while
//! the window holds a climb of `min-pods` in `min-steps` increases and the last increase is
//! within the lead time.

use std::collections::BTreeMap;
use std::rc::Rc;

use ballast_sdk::prelude::*;
use ballast_sdk::replicas::{self, ReplicaHistory, Sample};
use serde::{Deserialize, Serialize};

use super::lead::Lead;
use super::slots::Need;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Ramp {
    /// How far back the climb is measured.
    pub window_seconds: u64,
    /// How far ahead room is made: at least this, longer where the groups that admit the
    /// workload's pods delivered more slowly lately; and how long after its last step a
    /// climb still counts as climbing.
    pub lead_seconds: u64,
    /// A climb of fewer replicas over the window is not a ramp.
    pub min_pods: u32,
    /// Separate increases within the window that make a ramp rather than a jump.
    pub min_steps: u32,
}

impl Default for Ramp {
    fn default() -> Self {
        Ramp { window_seconds: 60, lead_seconds: 90, min_pods: 5, min_steps: 3 }
    }
}

impl Ramp {
    pub fn validate(&self) -> Result<(), String> {
        if self.window_seconds == 0 {
            return Err("window-seconds: 0 leaves no time to measure a climb over".into());
        }
        if self.lead_seconds == 0 {
            return Err("lead-seconds: 0 asks for room for nothing ahead".into());
        }
        Ok(())
    }
}

/// Every followed workload's recent replica counts.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Climbs {
    pub workloads: ReplicaHistory,
}

/// Room wanted ahead of one climbing workload.
pub struct Expected {
    workload: WorkloadRef,
    requests: Resources,
    /// Where its pods may go: one of its pods pending now, if any.
    shape: Option<PendingShape>,
    /// Replicas added over the window.
    grew: u32,
    over_seconds: u64,
    count: u32,
    lead_seconds: u64,
    /// The autoscaler's `max-replicas`, when it, not the rate, set `count`.
    capped_at: Option<u32>,
}

impl Expected {
    pub fn need(&self) -> Need<'_> {
        let cap = self.capped_at.map(|max| format!(", up to its autoscaler's max-replicas {max}")).unwrap_or_default();
        Need {
            what: format!(
                "the climb of {} (+{} replicas in {} s): {} more of {} expected within {} s{cap}",
                self.workload, self.grew, self.over_seconds, self.count, self.requests, self.lead_seconds
            ),
            shape: Resources { pods: 1, ..self.requests },
            count: self.count,
            admits: Rc::new(move |g: &NodeGroup| admits(g, self.shape.as_ref())),
            owner: Some(&self.workload),
            hold: false,
        }
    }
}

impl Climbs {
    /// Records the replica counts of the workloads on EC2 (or not placed yet) that have pods
    /// pending or changed within the window ([`ReplicaHistory::observe`]: a climb that
    /// spare room absorbs needs no room made, and the climb's first step is not counted).
    pub fn observe(&mut self, snapshot: &dyn Snapshot, now: u64, settings: &Ramp) {
        let window = settings.window_seconds.saturating_mul(1000);
        self.workloads.observe(snapshot, now, window, |w| !matches!(w.placement, Placement::Fargate));
    }

    /// The workloads climbing now, with the room their climb would fill within the lead time.
    ///
    /// # Guarantees
    /// No more room than a workload's HorizontalPodAutoscaler lets it grow into: a climb
    /// that reached its `max-replicas` expects nothing, however fast it came (contract 0.1.7;
    /// a host older than that says of no autoscaler, and the rate alone counts).
    pub fn expected(&self, snapshot: &dyn Snapshot, now: u64, settings: &Ramp, lead: &Lead) -> Vec<Expected> {
        let climbing: BTreeMap<&str, Rate> = self
            .workloads
            .workloads
            .iter()
            .filter_map(|(key, samples)| Some((key.as_str(), rate(samples, now, settings)?)))
            .collect();
        if climbing.is_empty() {
            return Vec::new();
        }
        let pending = |w: &Workload| {
            let shape = snapshot.pending_shapes().iter().find(|s| s.owner.as_ref() == Some(&w.id))?;
            Some(PendingShape { count: 0, oldest_age_seconds: 0, ..shape.clone() })
        };
        snapshot
            .workloads()
            .iter()
            .filter_map(|w| {
                let rate = climbing.get(replicas::key(&w.id).as_str())?;
                let shape = pending(w);
                let ahead = lead.seconds(settings.lead_seconds, |g| admits(g, shape.as_ref()));
                let at_rate = (rate.per_second() * ahead as f64).ceil() as u32;
                let room = snapshot.autoscaler_of(&w.id).map(|a| (a.room_to_grow(w.replicas), a.max_replicas));
                let (count, capped_at) = match room {
                    Some((room, max)) if room < at_rate => (room, Some(max)),
                    _ => (at_rate, None),
                };
                (count > 0).then(|| Expected {
                    workload: w.id.clone(),
                    requests: w.requests_per_replica,
                    shape,
                    grew: rate.grew,
                    over_seconds: rate.over_millis / 1000,
                    count,
                    lead_seconds: ahead,
                    capped_at,
                })
            })
            .collect()
    }
}

/// Where a climbing workload's pods may go: where its pending pod may, or, with none
/// pending, any untainted group.
fn admits(group: &NodeGroup, shape: Option<&PendingShape>) -> bool {
    match shape {
        Some(shape) => group.admits(shape),
        None => group.taints.is_empty(),
    }
}

/// How fast a workload climbed over the window.
struct Rate {
    grew: u32,
    over_millis: u64,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.grew as f64 * 1000.0 / self.over_millis.max(1) as f64
    }
}

/// A workload's climb over the window, if it is a ramp still climbing.
fn rate(samples: &[Sample], now: u64, settings: &Ramp) -> Option<Rate> {
    let start = now.saturating_sub(settings.window_seconds.saturating_mul(1000));
    let (first, last) = (samples.first()?, samples.last()?);
    let steps = samples.windows(2).filter(|p| p[1].at > start && p[1].replicas > p[0].replicas).count();
    let grew = last.replicas.saturating_sub(first.replicas);
    let rising = samples.len() > 1 && last.replicas > samples[samples.len() - 2].replicas;
    let climbing = rising && last.at.saturating_add(settings.lead_seconds.saturating_mul(1000)) >= now;
    (climbing && grew >= settings.min_pods && steps >= settings.min_steps as usize)
        .then(|| Rate { grew, over_millis: now.saturating_sub(first.at.max(start)) })
}

//! Recurring bursts: pending pods of one workload shape that arrive together at a steady
//! period. Learnt from the snapshots; the next burst is expected one period after the last.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use super::lead::Lead;
use super::slots::Need;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Recurring {
    /// How long before a burst is due its room is asked for, at least: longer where the
    /// groups that admit its pods delivered more slowly lately.
    pub lead_seconds: u64,
    /// Two intervals between bursts this close count as one period.
    pub tolerance_seconds: u64,
    /// Bursts smaller than this are not learnt.
    pub min_pods: u32,
    /// Bursts seen before the next is expected: 3 waits for two intervals that agree within
    /// the tolerance; 2 guesses the period from one interval, so pods wait less where bursts
    /// do recur, and a workload whose bursts do not gets room bought for nothing once.
    pub min_bursts: u32,
}

impl Default for Recurring {
    fn default() -> Self {
        Recurring { lead_seconds: 120, tolerance_seconds: 60, min_pods: 5, min_bursts: 3 }
    }
}

impl Recurring {
    pub fn validate(&self) -> Result<(), String> {
        if self.lead_seconds == 0 {
            return Err("lead-seconds: 0 asks for room when the burst is already due".into());
        }
        if !(2..=3).contains(&self.min_bursts) {
            return Err(format!("min-bursts: {} is neither 2 (guess from one interval) nor 3", self.min_bursts));
        }
        Ok(())
    }
}

/// One burst: when it arrived and how many pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Burst {
    pub at: u64,
    pub count: u32,
}

/// What has been learnt, by shape.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Learnt {
    pub shapes: BTreeMap<String, Learning>,
    /// Shapes with pods pending at the last evaluation: a burst is pods appearing anew.
    pub waiting: BTreeSet<String>,
    /// The replica count of each learnt shape's workload at the last evaluation: a burst the
    /// room takes at once shows only as replicas appearing anew.
    #[serde(default)]
    pub replicas: BTreeMap<String, u32>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Learning {
    pub shape: PendingShape,
    /// The last three bursts, oldest first.
    pub bursts: Vec<Burst>,
}

/// A burst expected soon.
pub struct Expected {
    shape: PendingShape,
    count: u32,
    /// When it is due, milliseconds since the Unix epoch.
    due_at: u64,
    period_seconds: u64,
}

impl Expected {
    pub fn need(&self) -> Need<'_> {
        let owner = self.shape.owner.as_ref().map_or_else(|| self.shape.namespace.clone(), |o| o.to_string());
        Need {
            what: format!(
                "the next burst of {owner} ({} pods of {}) due at {} (every {} min)",
                self.count,
                self.shape.requests,
                clock(self.due_at),
                self.period_seconds / 60
            ),
            shape: Resources { pods: 1, ..self.shape.requests },
            count: self.count,
            admits: Rc::new(move |g: &NodeGroup| g.admits(&self.shape)),
            owner: self.shape.owner.as_ref(),
            hold: true,
        }
    }
}

/// The time of day of `millis` (UTC), as the reason states it: the same on every tick that
/// holds room for one burst, so the recorder folds those decisions into one.
pub(crate) fn clock(millis: u64) -> String {
    let seconds = (millis / 1000) % 86_400;
    format!("{:02}:{:02}:{:02} UTC", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

fn key(shape: &PendingShape) -> String {
    let owner = shape.owner.as_ref().map_or_else(|| shape.namespace.clone(), |o| o.to_string());
    format!("{owner} {}", shape.requests)
}

impl Learnt {
    /// Records the bursts that arrived since the last evaluation: seen as pending pods, or
    /// as replicas of the workload that no pod of was seen pending.
    pub fn observe(&mut self, snapshot: &dyn Snapshot, now: u64, settings: &Recurring) {
        let tolerance = settings.tolerance_seconds * 1000;
        let mut waiting = BTreeSet::new();
        for shape in snapshot.pending_shapes() {
            let key = key(shape);
            if !self.waiting.contains(&key) && shape.count >= settings.min_pods {
                let learning = self.shapes.entry(key.clone()).or_default();
                learning.shape = PendingShape { count: 0, oldest_age_seconds: 0, ..shape.clone() };
                learning.arrived(Burst { at: now, count: shape.count }, tolerance);
            }
            waiting.insert(key);
        }
        self.waiting = waiting;
        // The workloads are read only once a burst has been learnt: a large cluster's list is
        // not copied into the plugin on every tick for nothing.
        if !self.shapes.is_empty() {
            self.landed(snapshot.workloads(), now, settings);
        }
        self.absorbed(now, settings);
    }

    /// Counts as arrived now each burst whose workload gained at least `min-pods` replicas
    /// since the last evaluation with none of its pods pending: the room made for it took
    /// them at once, perhaps a little before it was due. Without this, headroom would still
    /// expect the burst until its due time and ask for its room again, on top of the pods
    /// already in it. Its size stays what was asked for (no more than it rose): that room,
    /// with the spare room beside it, was enough.
    fn landed(&mut self, workloads: &[Workload], now: u64, settings: &Recurring) {
        let tolerance = settings.tolerance_seconds * 1000;
        let mut replicas = BTreeMap::new();
        for (key, learning) in &mut self.shapes {
            let Some(owner) = &learning.shape.owner else { continue };
            let Some(workload) = workloads.iter().find(|w| &w.id == owner) else { continue };
            replicas.insert(key.clone(), workload.replicas);
            let Some(&before) = self.replicas.get(key) else { continue };
            let rise = workload.replicas.saturating_sub(before);
            if rise >= settings.min_pods && !self.waiting.contains(key) {
                // No pod of it waited: the room asked for (and spare room beside it) held it.
                let asked = learning.bursts.iter().map(|b| b.count).max().unwrap_or(rise);
                learning.arrived(Burst { at: now, count: asked.min(rise) }, tolerance);
            }
        }
        self.replicas = replicas;
    }

    /// Counts as arrived, at its due time, each burst that came and went without a pod of it
    /// seen pending: the room made for it took it at once, so the snapshots never show it.
    /// Without this the learning would forget a burst it served well and ask for its room
    /// again, on top of the pods already in it.
    fn absorbed(&mut self, now: u64, settings: &Recurring) {
        let tolerance = settings.tolerance_seconds * 1000;
        for (key, learning) in &mut self.shapes {
            // Only a confirmed period: a guessed burst that never came must not be made up.
            let Some(due) = learning.next_due(tolerance, 3) else { continue };
            let seen_near = learning.bursts.last().is_some_and(|b| b.at + tolerance >= due.at);
            if now >= due.at + tolerance && !seen_near && !self.waiting.contains(key) {
                learning.arrived(Burst { at: due.at, count: due.count }, tolerance);
            }
        }
    }

    /// Bursts due within the lead time, of shapes not waiting now and not of a workload whose
    /// runs are `scheduled` (their room is asked for from the schedule). Only until the burst
    /// is due: a late burst shows as pending pods, which scale-up serves.
    pub fn expected(&self, now: u64, settings: &Recurring, scheduled: &[&WorkloadRef], lead: &Lead) -> Vec<Expected> {
        let tolerance = settings.tolerance_seconds * 1000;
        self.shapes
            .iter()
            .filter(|(key, _)| !self.waiting.contains(*key))
            .filter(|(_, l)| l.shape.owner.as_ref().is_none_or(|o| !scheduled.contains(&o)))
            .filter_map(|(_, l)| {
                let due = l.next_due(tolerance, settings.min_bursts)?;
                let ahead = lead.seconds(settings.lead_seconds, |g| g.admits(&l.shape)).saturating_mul(1000);
                (now.saturating_add(ahead) >= due.at && now < due.at).then(|| Expected {
                    shape: l.shape.clone(),
                    count: due.count,
                    due_at: due.at,
                    period_seconds: due.period / 1000,
                })
            })
            .collect()
    }
}

/// The next burst of a steady period: when, every how long, and how many pods.
struct Due {
    at: u64,
    period: u64,
    count: u32,
}

impl Learning {
    /// Keeps `burst` among the last three; one within `tolerance` of the last is the same
    /// burst seen a second way (its replicas, then its pods pending), not a new one.
    fn arrived(&mut self, burst: Burst, tolerance: u64) {
        if let Some(last) = self.bursts.last_mut()
            && burst.at.saturating_sub(last.at) < tolerance
        {
            last.count = last.count.max(burst.count);
            return;
        }
        self.bursts.push(burst);
        let extra = self.bursts.len().saturating_sub(3);
        self.bursts.drain(..extra);
    }

    /// The next burst, when the last three came at a steady period (within `tolerance`), or
    /// with `min_bursts` 2, one interval after the last of two.
    fn next_due(&self, tolerance: u64, min_bursts: u32) -> Option<Due> {
        if let ([a, b], 2) = (self.bursts.as_slice(), min_bursts) {
            let period = b.at - a.at;
            return (period > 0).then(|| Due { at: b.at + period, period, count: a.count.max(b.count) });
        }
        let [a, b, c] = self.bursts.as_slice() else { return None };
        let (first, second) = (b.at - a.at, c.at - b.at);
        if first.abs_diff(second) > tolerance || second == 0 {
            return None;
        }
        Some(Due { at: c.at + second, period: second, count: b.count.max(c.count) })
    }
}

//! The little the engine remembers between ticks: when each group last changed, which groups
//! are backing off, and which nodes are being drained.

use std::collections::BTreeMap;

use super::config::Backoff;

#[derive(Clone, Debug, Default)]
pub struct GroupState {
    pub last_scale_up: Option<u64>,
    pub last_scale_down: Option<u64>,
    /// When the group was last asked for more nodes than it had ready, and not yet satisfied.
    pub waiting_since: Option<u64>,
    pub backoff: Option<BackoffState>,
    /// The launch failure already counted, so one failure backs off once.
    pub failure_seen_at: Option<u64>,
    /// Consecutive provisioning failures.
    pub failures: u32,
}

#[derive(Clone, Debug)]
pub struct BackoffState {
    pub until: u64,
    pub reason: String,
}

impl GroupState {
    pub fn backing_off(&self, now: u64) -> Option<&BackoffState> {
        self.backoff.as_ref().filter(|b| now < b.until)
    }

    /// Records a provisioning failure and starts (or lengthens) the back-off.
    pub fn fail(&mut self, now: u64, reason: String, config: &Backoff) -> u64 {
        let initial = config.initial.as_millis() as u64;
        let max = config.max.as_millis() as u64;
        let wait = initial.saturating_mul(1u64 << self.failures.min(16)).min(max);
        self.failures += 1;
        self.waiting_since = None;
        let until = now + wait;
        self.backoff = Some(BackoffState { until, reason });
        until
    }

    /// The group delivered what it was asked for.
    pub fn satisfied(&mut self) {
        self.waiting_since = None;
        self.failures = 0;
    }
}

/// A node on its way out: cordoned, being drained.
#[derive(Clone, Debug)]
pub struct Drain {
    pub group: String,
    pub instance_id: String,
    pub started_at: u64,
    pub started_tick: u64,
    pub evicted: u32,
}

#[derive(Default)]
pub struct EngineState {
    pub groups: BTreeMap<String, GroupState>,
    pub drains: BTreeMap<String, Drain>,
    /// When each workload was last moved between Fargate and EC2.
    pub placed_at: BTreeMap<ballast_sdk::WorkloadRef, u64>,
}

impl EngineState {
    pub fn group(&mut self, id: &str) -> &mut GroupState {
        self.groups.entry(id.to_string()).or_default()
    }

    pub fn draining_in(&self, group: &str) -> u32 {
        self.drains.values().filter(|d| d.group == group).count() as u32
    }
}

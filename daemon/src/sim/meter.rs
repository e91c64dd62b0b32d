//! What a simulation measures: cost, waiting, utilisation, actions, and a time series for the
//! chart. Updated incrementally by the world as things change, so a step costs the same at
//! 150k pods as at 15.

use ballast_sdk::Resources;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default)]
pub struct Meter {
    /// Dollars spent so far.
    pub cost: f64,
    /// Dollars per hour right now: EC2 instances from launch, Fargate pods by billed size.
    pub cost_rate: f64,
    /// The lower bound on cost so far (see [`super::bound`]).
    pub bound_cost: f64,
    pub bound_rate: super::bound::BoundRate,
    pub pending_pod_ms: u128,
    pub worst_wait_ms: u64,
    pub pods_started_on_fargate: u64,
    pub pods_started_on_ec2: u64,
    /// CPU requested by every live pod, running or not (millicores).
    pub demand_cpu: i64,
    /// CPU allocatable on Ready nodes, Fargate included (millicores).
    pub capacity_cpu: u64,
    pub ec2_allocatable: Resources,
    pub ec2_requested: Resources,
    utilisation_ms: f64,
    utilised_time_ms: u64,
    pub scale_ups: u64,
    pub scale_downs: u64,
    pub nodes_removed: u64,
    /// Pods evicted through the Eviction API (drains of removals, replacements, merges and
    /// spot warnings); pods of a reclaimed node are killed, not evicted.
    pub pods_evicted: u64,
    /// Spot interruption warnings given, and nodes reclaimed before a drain removed them.
    pub interruptions: u64,
    pub reclaimed_undrained: u64,
    /// When each group last grew or shrank, so that one tick's actions count once.
    last_change: std::collections::BTreeMap<(String, bool), u64>,
    pub samples: Vec<Sample>,
}

/// One point of the time series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Sample {
    pub minute: f64,
    pub demand_vcpu: f64,
    pub capacity_vcpu: f64,
    pub pending_pods: u32,
    pub nodes: u32,
    pub cost_per_hour: f64,
    /// The lower bound's rate at that minute.
    #[serde(default)]
    pub lower_bound_per_hour: f64,
}

impl Meter {
    /// Charges `ms` of the current state.
    pub fn accrue(&mut self, ms: u64, pending: usize) {
        self.cost += self.cost_rate * ms as f64 / 3_600_000.0;
        self.bound_cost += self.bound_rate.per_hour() * ms as f64 / 3_600_000.0;
        self.pending_pod_ms += pending as u128 * ms as u128;
        if self.ec2_allocatable.cpu_millis > 0 {
            self.utilisation_ms += self.ec2_requested.utilisation_of(&self.ec2_allocatable) * ms as f64;
            self.utilised_time_ms += ms;
        }
    }

    pub fn add_cost_rate(&mut self, per_hour: f64) {
        self.cost_rate += per_hour;
        if self.cost_rate.abs() < 1e-9 {
            self.cost_rate = 0.0;
        }
    }

    pub fn add_demand(&mut self, cpu_millis: i64) {
        self.demand_cpu += cpu_millis;
    }

    pub fn node_ready(&mut self, allocatable: Resources, up: bool, fargate: bool) {
        if up {
            self.capacity_cpu += allocatable.cpu_millis;
            if !fargate {
                self.ec2_allocatable = self.ec2_allocatable.saturating_add(&allocatable);
            }
        } else {
            self.capacity_cpu = self.capacity_cpu.saturating_sub(allocatable.cpu_millis);
            if !fargate {
                self.ec2_allocatable = self.ec2_allocatable.saturating_sub(&allocatable);
            }
        }
    }

    pub fn add_requested(&mut self, requests: Resources, ec2: bool) {
        if ec2 {
            self.ec2_requested = self.ec2_requested.saturating_add(&requests);
        }
    }

    pub fn remove_requested(&mut self, requests: Resources, ec2: bool) {
        if ec2 {
            self.ec2_requested = self.ec2_requested.saturating_sub(&requests);
        }
    }

    pub fn pod_started(&mut self, waited_ms: u64, fargate: bool) {
        self.worst_wait_ms = self.worst_wait_ms.max(waited_ms);
        if fargate {
            self.pods_started_on_fargate += 1;
        } else {
            self.pods_started_on_ec2 += 1;
        }
    }

    pub fn pod_gone_waiting(&mut self, waited_ms: u64) {
        self.worst_wait_ms = self.worst_wait_ms.max(waited_ms);
    }

    /// Counts a group growing (`up`) or shrinking at `now`, once per group and instant.
    pub fn group_changed(&mut self, group: &str, up: bool, now: u64) {
        if self.last_change.insert((group.to_string(), up), now) != Some(now) {
            if up {
                self.scale_ups += 1;
            } else {
                self.scale_downs += 1;
            }
        }
    }

    /// Requests over allocatable on EC2 nodes, averaged over time.
    pub fn mean_utilisation(&self) -> f64 {
        if self.utilised_time_ms == 0 { 0.0 } else { self.utilisation_ms / self.utilised_time_ms as f64 }
    }
}

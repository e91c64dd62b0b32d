//! The lower bound on cost: what a provisioner with perfect foresight, no boot delay and
//! per-second billing would pay if it could pack requested resources fractionally.
//!
//! # Definition
//!
//! The bound charges demand, not pods: each replica a workload's trace asks for, from the
//! moment it asks, and each pod of a batch for its run time from the moment the batch is
//! due. So it is the same for every policy on a scenario and seed, and waiting never makes
//! it larger.
//!
//! For each such pod `p` (DaemonSet pods excluded) and each resource `k` (CPU, memory),
//! let `c(p, k)` be the cheapest price per unit of `k` among the capacity `p` may use:
//!
//! - every instance type of every node group whose labels and taints admit `p` and whose
//!   allocatable, less the requests of the DaemonSets that run on every node of that group,
//!   holds `p` whole (CPU, memory, a pod slot, GPUs), at its hourly price over that
//!   allocatable's `k`;
//! - Fargate, when the cluster has a profile and the workload is eligible: the pod's share
//!   is then `min(r(p, k) * c, fargate_price(p))`, its billed size at its hourly price.
//!
//! At each instant the bound's rate is `max over k of sum over p of r(p, k) * c(p, k)`, and
//! the bound is its integral over the run.
//!
//! # Why it is a lower bound
//!
//! Take any placement of those pods at any instant. A node `n` of price `P` holds pods
//! whose requests of `k`, DaemonSets aside, sum to at most `A(n, k)` (its allocatable less
//! the DaemonSets), so `P >= sum over p on n of r(p, k) * P / A(n, k) >= sum over p on n of
//! r(p, k) * c(p, k)`, since `n` admits and holds each `p` and `c` is the minimum over
//! what admits and holds it. (A type too small for `p` cannot be counted: a 2-CPU pod never
//! runs on an m5.large, so its cheaper CPU says nothing about what the pod costs.)
//! A pod on Fargate pays `fargate_price(p) >= r(p, k) * c(p, k)` by the `min`. Summing over
//! nodes and Fargate pods, the cost rate of any placement that runs the demand is at least
//! the sum for every `k`, hence at least the largest. Integrating over time keeps the
//! inequality; boot delays, whole instances, packing losses and idle nodes only add to a
//! real policy's cost.
//!
//! # Caveats
//!
//! It bounds policies that run the demand. A policy that leaves pods waiting (e.g. a static
//! size too small for the peak) can cost less than the bound: its pending pod-minutes show
//! what it saved on. So can every policy where a workload's own rules keep some of its
//! demand from ever running (more replicas than zones for one kept one a zone, pods kept
//! near pods that run nowhere): the bound still charges those replicas. A pod that nothing can hold (no type of an admitting group is large
//! enough, and Fargate is no option) adds nothing: no policy can pay for it, and it shows
//! as pending time in every set. Every type a group lists counts, though the simulator
//! launches only the group's launch type (an on-demand group's first, a spot group's
//! cheapest): the bound stays a bound, looser where a group lists a cheaper type it never
//! launches (the m5a.large of flash-sale's and mixed-fargate's general group).

use ballast_sdk::{InstanceType, Resources, WorkloadKind};

/// A pod's share of the bound's rate, per resource: dollars per hour for CPU and memory.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PodBound {
    pub cpu: f64,
    pub memory: f64,
}

/// One kind of capacity a pod may use: an instance type of an admitting group, with what
/// the group's DaemonSets leave of it.
pub struct Offer<'a> {
    pub instance_type: &'a InstanceType,
    pub daemonsets: Resources,
}

/// The bound's rate for one pod with `requests` (a pod slot included), given the EC2
/// capacity its labels and taints let it use and its Fargate price if it may run there.
/// Only the offers that hold the pod whole count.
pub fn pod_bound(requests: &Resources, ec2: &[Offer<'_>], fargate: Option<f64>) -> PodBound {
    let per_unit = |alloc: fn(&Resources) -> u64| {
        ec2.iter()
            .filter(|o| o.instance_type.allocatable.saturating_sub(&o.daemonsets).fits(requests))
            .filter_map(|o| {
                let left = alloc(&o.instance_type.allocatable).checked_sub(alloc(&o.daemonsets))?;
                (left > 0).then(|| o.instance_type.price_per_hour / left as f64)
            })
            .min_by(f64::total_cmp)
    };
    let share = |request: u64, unit: Option<f64>| {
        let ec2 = unit.map(|u| request as f64 * u);
        match (ec2, fargate) {
            (Some(e), Some(f)) => e.min(f),
            (Some(e), None) => e,
            (None, Some(f)) => f,
            (None, None) => 0.0,
        }
    };
    PodBound {
        cpu: share(requests.cpu_millis, per_unit(|r| r.cpu_millis)),
        memory: share(requests.memory_bytes, per_unit(|r| r.memory_bytes)),
    }
}

impl super::world::World {
    /// Works out each workload's share of the lower bound (see [`super::bound`]).
    pub(super) fn price_bounds(&mut self, fargate: bool) {
        for w in 0..self.workloads.len() {
            let workload = &self.workloads[w];
            if workload.spec.kind == WorkloadKind::DaemonSet {
                continue;
            }
            let mut offers = Vec::new();
            for (g, group) in self.groups.iter().enumerate() {
                if !self.group_admits(g, w) {
                    continue;
                }
                let daemonsets = self
                    .daemonsets
                    .iter()
                    .filter(|&&d| self.group_admits(g, d))
                    .fold(Resources::ZERO, |acc, &d| acc.saturating_add(&self.workloads[d].requests));
                offers.extend(group.types.iter().map(|t| Offer { instance_type: t, daemonsets }));
            }
            let blocker = crate::engine::observe::fargate_blocker(
                &workload.id,
                &workload.fargate_traits,
                &workload.requests,
                &self.pricing,
            );
            let eligible = fargate && blocker.is_none();
            let on_fargate = eligible.then(|| self.pricing.pod_price_per_hour(&workload.requests)).flatten();
            let bound = pod_bound(&workload.requests, &offers, on_fargate);
            self.workloads[w].bound = bound;
        }
    }
}

/// The running sum of the pods' shares: the bound's rate is its larger component.
#[derive(Clone, Copy, Debug, Default)]
pub struct BoundRate {
    cpu: f64,
    memory: f64,
}

impl BoundRate {
    pub fn add(&mut self, pod: PodBound, sign: f64) {
        self.cpu += sign * pod.cpu;
        self.memory += sign * pod.memory;
    }

    /// Dollars per hour now.
    pub fn per_hour(&self) -> f64 {
        self.cpu.max(self.memory).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m5_large() -> InstanceType {
        crate::sim::catalogue::instance_type("m5.large").unwrap()
    }

    #[test]
    fn a_pod_pays_its_share_of_the_cheapest_admitting_capacity_per_resource() {
        let m5 = m5_large();
        let none = Resources::ZERO;
        let half = Resources::pod(965, 0);
        let b = pod_bound(&half, &[Offer { instance_type: &m5, daemonsets: none }], None);
        assert!((b.cpu - 0.048).abs() < 1e-9, "half of 1930m of a $0.096 node: {b:?}");
        assert_eq!(b.memory, 0.0);
        // DaemonSets take their part of every node first.
        let ds = Resources::pod(965, 0);
        let b = pod_bound(&half, &[Offer { instance_type: &m5, daemonsets: ds }], None);
        assert!((b.cpu - 0.096).abs() < 1e-9, "{b:?}");
        // Fargate caps each resource's share at the pod's Fargate price.
        let b = pod_bound(&half, &[Offer { instance_type: &m5, daemonsets: ds }], Some(0.05));
        assert!((b.cpu - 0.05).abs() < 1e-9, "{b:?}");
        assert_eq!(pod_bound(&half, &[], None), PodBound::default(), "no capacity admits it");
    }

    #[test]
    fn only_capacity_that_holds_the_pod_whole_prices_it() {
        let (m5, m5_xl) = (m5_large(), crate::sim::catalogue::instance_type("m5.xlarge").unwrap());
        let none = Resources::ZERO;
        let two_cpus = Resources::pod(2000, 0);
        let offers =
            [Offer { instance_type: &m5, daemonsets: none }, Offer { instance_type: &m5_xl, daemonsets: none }];
        let b = pod_bound(&two_cpus, &offers, None);
        let per_cpu = m5_xl.price_per_hour / m5_xl.allocatable.cpu_millis as f64;
        assert!((b.cpu - 2000.0 * per_cpu).abs() < 1e-9, "an m5.large cannot hold 2 CPUs: {b:?}");
        let b = pod_bound(&two_cpus, &offers[..1], Some(0.0987));
        assert_eq!(b.cpu, 0.0987, "only Fargate holds it: {b:?}");
        assert_eq!(pod_bound(&two_cpus, &offers[..1], None), PodBound::default(), "nothing holds it");
        // What the DaemonSets leave is what counts: an m5.xlarge's 3920m hold 3900m, less a
        // 100m DaemonSet they do not.
        let big = Resources::pod(3900, 0);
        assert!(pod_bound(&big, &offers, None).cpu > 0.0);
        let agent = Resources::pod(100, 0);
        let taken =
            [Offer { instance_type: &m5, daemonsets: agent }, Offer { instance_type: &m5_xl, daemonsets: agent }];
        assert_eq!(pod_bound(&big, &taken, None), PodBound::default());
    }
}

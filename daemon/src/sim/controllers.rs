//! The simulated controllers: Deployments and StatefulSets keep replicas on their trace (and
//! roll over with surge when their placement changes), Jobs start batches and finish pods, and
//! Fargate gives each of its pods a node of its own after the provisioning delay.

use std::sync::Arc;

use ballast_sdk::Resources;

use super::world::{SimNode, World};

impl World {
    pub(super) fn finish_jobs(&mut self) {
        while let Some(&(end, pod)) = self.running_jobs.first() {
            if end > self.now {
                break;
            }
            self.running_jobs.pop_first();
            self.delete_pod(pod);
        }
    }

    /// Batches whose run time is over leave the lower bound (whether or not their pods ran).
    pub(super) fn end_batch_bounds(&mut self) {
        while let Some(entry) = self.bound_ends.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let ((_, w), count) = entry.remove_entry();
            self.meter.bound_rate.add(self.workloads[w].bound, -(count as f64));
        }
    }

    /// Controllers: replicas follow traces, placements roll over with surge, batches start.
    pub(super) fn reconcile_workloads(&mut self) {
        let t = self.now - self.start;
        for w in 0..self.workloads.len() {
            let workload = &mut self.workloads[w];
            if let Some(curve) = &workload.curve {
                let wanted = workload.spec.autoscaler.map_or_else(|| curve.at(t), |a| a.bound(curve.at(t)));
                if wanted != workload.wanted {
                    let change = wanted as f64 - workload.wanted as f64;
                    self.meter.bound_rate.add(workload.bound, change);
                    workload.wanted = wanted;
                    workload.dirty = true;
                }
            }
            let batch_due = workload.batch_times.first().is_some_and(|&b| b <= t);
            if batch_due {
                workload.batch_times.remove(0);
                let (count, fargate) = (workload.spec.batches.as_ref().map_or(0, |b| b.pods), workload.fargate);
                // The bound charges a batch for its run time from the moment it is due, as
                // a provisioner with perfect foresight would run it: waiting does not add.
                let run_for = workload.spec.batches.as_ref().map_or(0, |b| b.run_for.as_millis() as u64);
                self.meter.bound_rate.add(workload.bound, count as f64);
                *self.bound_ends.entry((self.now + run_for, w)).or_default() += count;
                for _ in 0..count {
                    self.create_pod(w, fargate);
                }
                continue;
            }
            if workload.dirty && workload.curve.is_some() {
                workload.dirty = false;
                self.reconcile_replicas(w);
            }
        }
    }

    pub(super) fn reconcile_replicas(&mut self, w: usize) {
        let workload = &self.workloads[w];
        let wanted = workload.wanted as usize;
        let target = workload.fargate;
        let (mut current, mut old): (Vec<usize>, Vec<usize>) =
            workload.pods.iter().partition(|&&p| self.pods[p].as_ref().is_some_and(|p| p.fargate == target));
        while current.len() < wanted {
            current.push(self.create_pod(w, target));
        }
        // Scale in: pending pods first, then the newest.
        let key = |world: &World, p: usize| {
            let pod = world.pods[p].as_ref();
            (pod.is_some_and(|p| p.started_at.is_some()), std::cmp::Reverse(p))
        };
        current.sort_by_key(|&p| key(self, p));
        while current.len() > wanted {
            let p = current.remove(0);
            self.delete_pod(p);
        }
        // Surge: old-placement pods go as new ones start.
        let started =
            current.iter().filter(|&&p| self.pods[p].as_ref().is_some_and(|p| p.started_at.is_some())).count();
        let keep_old = wanted.saturating_sub(started);
        old.sort_by_key(|&p| key(self, p));
        while old.len() > keep_old {
            let p = old.remove(0);
            self.delete_pod(p);
        }
    }

    /// Pods on their way to Fargate get their own node after the provisioning delay.
    pub(super) fn start_fargate_pods(&mut self) {
        let Some(delay) = self.fargate_delay_ms else { return };
        let waiting: Vec<usize> =
            self.pending.iter().copied().filter(|&p| self.pods[p].as_ref().is_some_and(|p| p.fargate)).collect();
        for pod in waiting {
            let Some(p) = self.pods[pod].as_mut() else { continue };
            let ready_at = *p.fargate_ready_at.get_or_insert(self.now + delay);
            if ready_at > self.now {
                continue;
            }
            let w = &self.workloads[p.workload];
            let requests = w.requests;
            let Some(size) = self.pricing.billed_size(&requests) else { continue };
            let price = self.pricing.hourly_price(&size);
            let id = self.nodes.len();
            let name: Arc<str> = Arc::from(format!("fargate-{}", p.name));
            self.nodes.push(Some(SimNode {
                name: name.clone(),
                instance_id: None,
                group: None,
                instance_type: format!("fargate-{}m-{}Mi", size.cpu_millis, size.memory_mib),
                zone: "us-east-1a".into(),
                allocatable: Resources {
                    cpu_millis: size.cpu_millis,
                    memory_bytes: size.memory_mib << 20,
                    pods: 1,
                    gpus: 0,
                    ephemeral_storage_bytes: Resources::STORAGE_NOT_KNOWN,
                },
                price_per_hour: price,
                ready_at: self.now,
                ready: true,
                lost_at: None,
                cordoned: false,
                removal_mark: None,
                replaces: None,
                image: 0,
                fargate: true,
                requested: Resources::ZERO,
                used: Resources::ZERO,
                pods: Vec::new(),
                tally: Default::default(),
            }));
            self.node_index.insert(name, id);
            let allocatable = self.nodes[id].as_ref().map_or(Resources::ZERO, |n| n.allocatable);
            self.meter.node_ready(allocatable, true, true);
            self.meter.add_cost_rate(price);
            self.bind(pod, id);
        }
    }
}

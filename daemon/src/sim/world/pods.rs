//! A pod's life in the simulated cluster: created pending, bound to a node and started, then
//! deleted (scale-in, eviction, completion, its node gone), each step kept in the workload's,
//! the node's and the meter's counts.

use std::sync::Arc;

use ballast_sdk::WorkloadKind;

use super::{SimPod, World, scale};

impl World {
    pub(in crate::sim) fn create_pod(&mut self, w: usize, fargate: bool) -> usize {
        let workload = &mut self.workloads[w];
        workload.serial += 1;
        let name: Arc<str> = Arc::from(format!("{}-{:05}", workload.spec.name, workload.serial));
        let pod = SimPod {
            name: name.clone(),
            workload: w,
            node: None,
            created_at: self.now,
            started_at: None,
            unschedulable: false,
            fargate,
            fargate_ready_at: None,
            finishes_at: None,
            shape: None,
            node_group: None,
        };
        let id = match self.free_pods.pop() {
            Some(id) => {
                self.pods[id] = Some(pod);
                id
            }
            None => {
                self.pods.push(Some(pod));
                self.pods.len() - 1
            }
        };
        workload.pods.push(id);
        self.pod_index.insert(name, id);
        self.meter.add_demand(workload.requests.cpu_millis as i64);
        if workload.spec.kind != WorkloadKind::DaemonSet {
            self.pending.insert(id);
            self.new_pending += 1;
            self.schedule_dirty = true;
        }
        id
    }

    /// Binds a pod to a node and starts it.
    pub(in crate::sim) fn bind(&mut self, pod: usize, node: usize) {
        let Some(p) = self.pods[pod].as_mut() else { return };
        let w = &mut self.workloads[p.workload];
        let Some(n) = self.nodes[node].as_mut() else { return };
        p.node = Some(node);
        p.started_at = Some(self.now);
        p.unschedulable = false;
        p.shape = Some(w.shape.clone());
        p.node_group = n.group;
        w.running += 1;
        if let Some(g) = n.group {
            *w.running_in_group.entry(g).or_default() += 1;
        }
        let w = &self.workloads[p.workload];
        Arc::make_mut(&mut n.tally).add(&w.shape, p.name.clone());
        n.pods.push(pod);
        n.requested = n.requested.saturating_add(&w.requests);
        n.used = n.used.saturating_add(&scale(&w.requests, w.spec.usage));
        if n.ready {
            self.meter.add_requested(w.requests, !n.fargate);
        }
        if self.pending.remove(&pod) {
            self.meter.pod_started(self.now - p.created_at, n.fargate);
        }
        if let Some(b) = &w.spec.batches {
            let end = self.now + b.run_for.as_millis() as u64;
            p.finishes_at = Some(end);
            self.running_jobs.insert((end, pod));
        }
        let w = p.workload;
        self.workloads[w].dirty = true;
    }

    /// Deletes a pod (scale-in, eviction, completion, its node gone).
    pub(in crate::sim) fn delete_pod(&mut self, pod: usize) {
        let Some(p) = self.pods[pod].take() else { return };
        self.free_pods.push(pod);
        self.pod_index.remove(&p.name);
        let w = &mut self.workloads[p.workload];
        w.pods.retain(|&q| q != pod);
        w.dirty = true;
        let requests = w.requests;
        let usage = w.spec.usage;
        self.meter.add_demand(-(requests.cpu_millis as i64));
        if self.pending.remove(&pod) {
            self.meter.pod_gone_waiting(self.now - p.created_at);
        }
        if let Some(end) = p.finishes_at {
            self.running_jobs.remove(&(end, pod));
        }
        if let Some(node) = p.node {
            let fargate_node = self.nodes[node].as_ref().is_some_and(|n| n.fargate);
            let w = &mut self.workloads[p.workload];
            w.running = w.running.saturating_sub(1);
            if let Some(g) = p.node_group
                && let Some(count) = w.running_in_group.get_mut(&g)
            {
                *count -= 1;
                if *count == 0 {
                    w.running_in_group.remove(&g);
                }
            }
            if let Some(n) = self.nodes[node].as_mut() {
                if let Some(shape) = &p.shape {
                    Arc::make_mut(&mut n.tally).remove(shape, &p.name);
                }
                n.pods.retain(|&q| q != pod);
                n.requested = n.requested.saturating_sub(&requests);
                n.used = n.used.saturating_sub(&scale(&requests, usage));
                if n.ready {
                    self.meter.remove_requested(requests, !n.fargate);
                }
            }
            if fargate_node {
                self.destroy_node(node);
            }
            self.schedule_dirty = true;
        }
    }
}

//! Node losses: at the moments a scenario names, Ready nodes of a group stop being Ready for
//! good, as when a kubelet dies or an instance is impaired. The node stays in its group,
//! costs and counts there, and the scheduler places nothing on it; five minutes later the
//! node lifecycle controller evicts its pods (not its DaemonSet pods), and their controllers
//! recreate them. Only something that terminates the instance (Ballast's node repair) ends
//! it; the group, its desired size unchanged, then launches a replacement.

use super::world::World;

/// Kubernetes' default `tolerationSeconds` for `node.kubernetes.io/unreachable`.
const POD_EVICTION_MS: u64 = 300_000;

impl World {
    /// Loses the nodes whose moment has come.
    pub(super) fn lose_nodes(&mut self) {
        let t = self.now - self.start;
        for g in 0..self.groups.len() {
            let due: u32 = self.groups[g].losses.iter().filter(|&&(at, _)| at <= t).map(|&(_, n)| n).sum();
            if due == 0 {
                continue;
            }
            self.groups[g].losses.retain(|&(at, _)| at > t);
            for _ in 0..due {
                let ready: Vec<usize> = self.groups[g]
                    .instances
                    .iter()
                    .copied()
                    .filter(|&n| self.nodes[n].as_ref().is_some_and(|n| n.ready))
                    .collect();
                if ready.is_empty() {
                    break;
                }
                let pick = ready[((self.random() * ready.len() as f64) as usize).min(ready.len() - 1)];
                self.lose(pick);
            }
        }
    }

    fn lose(&mut self, id: usize) {
        let now = self.now;
        let Some(node) = self.nodes[id].as_mut() else { return };
        node.ready = false;
        node.lost_at = Some(now);
        let (allocatable, requested) = (node.allocatable, node.requested);
        self.meter.node_ready(allocatable, false, false);
        self.meter.remove_requested(requested, true);
        self.unreachable.insert((now + POD_EVICTION_MS, id));
    }

    /// Evicts the pods of nodes lost five minutes ago, but their DaemonSet pods.
    pub(super) fn evict_from_lost_nodes(&mut self) {
        while let Some(&(at, id)) = self.unreachable.first() {
            if at > self.now {
                break;
            }
            self.unreachable.pop_first();
            let Some(node) = &self.nodes[id] else { continue };
            let evicted: Vec<usize> = node
                .pods
                .iter()
                .copied()
                .filter(|&p| self.pods[p].as_ref().is_some_and(|p| !self.daemonsets.contains(&p.workload)))
                .collect();
            for pod in evicted {
                self.delete_pod(pod);
            }
        }
    }
}

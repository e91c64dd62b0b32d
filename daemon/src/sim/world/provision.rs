//! The cloud side of the world: instances launched to match each group's desired size (or
//! not, inside a launch-failure window), terminated newest first, and booted into nodes after
//! their group's delay.

use std::sync::Arc;

use ballast_sdk::Resources;
use rand::RngExt;

use super::{SimNode, World};
use crate::engine::ports::LaunchFailure;

impl World {
    fn in_failure_window(&self, g: usize) -> bool {
        let t = self.now - self.start;
        self.groups[g].failures.iter().any(|&(a, b)| t >= a && t < b)
    }

    /// Launches or terminates instances until each group matches its desired size.
    pub(super) fn provision(&mut self) {
        for g in 0..self.groups.len() {
            let (live, desired) = (self.groups[g].instances.len() as u32, self.groups[g].desired);
            if desired > live {
                if self.in_failure_window(g) {
                    let failure = LaunchFailure {
                        at_millis: self.now,
                        message: format!(
                            "InsufficientInstanceCapacity: not enough {} capacity in the requested zones",
                            self.groups[g].launch_type().name
                        ),
                    };
                    // One failed activity per minute of retrying, as an ASG reports them.
                    let last = self.groups[g].last_failure.as_ref().map_or(0, |f| f.at_millis);
                    if self.now >= last + 60_000 {
                        self.groups[g].last_failure = Some(failure);
                    }
                    continue;
                }
                for _ in live..desired {
                    self.launch(g);
                }
            } else if desired < live {
                // The group picks: newest first (booting instances go before serving ones).
                for _ in desired..live {
                    if let Some(node) = self.groups[g].instances.pop() {
                        self.destroy_node(node);
                    }
                }
            }
        }
    }

    /// Launches one instance of group `g`: a node that joins after the group's delay (give
    /// or take a fifth), in the next of its zones, of its launch type. Returns its id.
    pub(super) fn launch(&mut self, g: usize) -> usize {
        let jitter = 0.8 + self.rng.random::<f64>() * 0.4;
        let group = &mut self.groups[g];
        group.launched += 1;
        let serial = group.launched;
        let itype = group.launch_type().clone();
        let image = group.image_at(self.now - self.start);
        let zone = group.zones[(serial as usize - 1) % group.zones.len()].clone();
        let id = self.nodes.len();
        let name: Arc<str> = Arc::from(format!("{}-{serial:04}", group.id));
        let node = SimNode {
            name: name.clone(),
            instance_id: Some(format!("i-{:017x}", (g as u64) << 40 | serial)),
            group: Some(g),
            instance_type: itype.name.clone(),
            zone,
            allocatable: itype.allocatable,
            price_per_hour: itype.price_per_hour,
            ready_at: self.now + (group.delay_ms as f64 * jitter) as u64,
            ready: false,
            lost_at: None,
            cordoned: false,
            removal_mark: None,
            replaces: None,
            image,
            fargate: false,
            requested: Resources::ZERO,
            used: Resources::ZERO,
            pods: Vec::new(),
            tally: Default::default(),
        };
        group.instances.push(id);
        self.meter.add_cost_rate(itype.price_per_hour);
        self.nodes.push(Some(node));
        self.node_index.insert(name, id);
        self.booting.push(id);
        id
    }

    /// Nodes whose boot time has come join the cluster, with their DaemonSet pods.
    pub(super) fn boot_nodes(&mut self) {
        let now = self.now;
        let mut joined = Vec::new();
        self.booting.retain(|&id| match &self.nodes[id] {
            Some(n) if n.ready_at <= now => {
                joined.push(id);
                false
            }
            Some(_) => true,
            None => false,
        });
        for id in joined {
            let Some(node) = self.nodes[id].as_mut() else { continue };
            node.ready = true;
            self.meter.node_ready(node.allocatable, true, false);
            for w in self.daemonsets.clone() {
                if self.node_admits(id, w) {
                    let pod = self.create_pod(w, false);
                    self.bind(pod, id);
                }
            }
            self.schedule_dirty = true;
        }
    }
}

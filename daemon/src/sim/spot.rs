//! Spot interruptions: in a group's interruption windows each Ready spot instance is warned
//! at its rate per hour (seeded), and reclaimed two minutes later, as EC2 does. The warning
//! waits for the engine (`Capacity::interruptions`); the reclaim takes the node and its pods
//! whatever the engine did, and the group, its desired size unchanged, launches again.

use super::world::World;
use crate::engine::ports::Interruption;

impl World {
    /// Warns the spot instances whose turn has come in this step of `ms`.
    pub(super) fn interrupt_spot(&mut self, ms: u64) {
        let t = self.now - self.start;
        for g in 0..self.groups.len() {
            let rate = self.groups[g].interruptions.iter().find(|w| t >= w.0 && t < w.1).map_or(0.0, |w| w.2);
            if rate <= 0.0 {
                continue;
            }
            let chance = rate * ms as f64 / 3_600_000.0;
            for node in self.groups[g].instances.clone() {
                let warned = self.doomed.iter().any(|&(_, n)| n == node);
                let ready = self.nodes[node].as_ref().is_some_and(|n| n.ready);
                if warned || !ready || self.random() >= chance {
                    continue;
                }
                let Some(instance_id) = self.nodes[node].as_ref().and_then(|n| n.instance_id.clone()) else { continue };
                let notice = Interruption::spot(instance_id, self.now);
                self.doomed.insert((notice.deadline_millis, node));
                self.notices.push(notice);
                self.meter.interruptions += 1;
            }
        }
    }

    /// Reclaims the interrupted instances whose two minutes are up.
    pub(super) fn reclaim_spot(&mut self) {
        while let Some(&(deadline, node)) = self.doomed.first() {
            if deadline > self.now {
                break;
            }
            self.doomed.pop_first();
            if self.nodes[node].is_some() {
                self.meter.reclaimed_undrained += 1;
                self.destroy_node(node);
            }
        }
    }

    /// The warnings given since the last call.
    pub fn take_interruptions(&mut self) -> Vec<Interruption> {
        std::mem::take(&mut self.notices)
    }
}

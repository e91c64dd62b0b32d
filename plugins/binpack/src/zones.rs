//! Pods kept spread over zones (contract 0.1.13 `zone-spreads`): the scheduler puts a pod of
//! such a workload in a zone only while that zone holds at most the skew more of its pods
//! than the zone with the fewest. Room bought in the zone that is ahead stays empty while the
//! pods wait, and is bought again when consolidation takes it away: churn.
//!
//! Scale-up ([`Shares`]) gives each zone its share of a workload's waiting pods, as the
//! scheduler will fill them ([`ZoneSpread::shares`]: each next pod to the zone with the
//! fewest), over the zones its pods may run in (those where it runs now and those of the
//! groups that admit it). A group in one zone takes at most its zone's share; a
//! group in several is not held to one (which zone EC2 picks is not known ahead).
//!
//! Scale-down ([`ZoneRoom`]) lets a node go only if its spread pods fit in the room of the
//! nodes that stay in its own zone: evicted, they are the pods its zone is now short of, and
//! the scheduler puts them back there or nowhere (moving them elsewhere would make the skew).

use std::collections::{BTreeMap, HashMap, HashSet};

use ballast_sdk::prelude::*;

/// Each zone's share of the spread workloads' waiting pods, less what a plan gave.
pub(crate) struct Shares {
    /// The spread workload each pending shape is of, by shape (an index into `left`).
    of_shape: Vec<Option<usize>>,
    /// Pods each spread workload may still be given, by zone.
    left: Vec<BTreeMap<String, u32>>,
}

impl Shares {
    /// The shares of `shapes`' pods (`waiting` of each) over the zones of `groups` (those that
    /// admit a shape) and the zones where the workload runs.
    pub(crate) fn new(snapshot: &dyn Snapshot, shapes: &[PendingShape], waiting: &[u32]) -> Self {
        let index: HashMap<&WorkloadRef, usize> =
            snapshot.zone_spreads().iter().enumerate().map(|(i, s)| (&s.workload, i)).collect();
        let of_shape: Vec<Option<usize>> =
            shapes.iter().map(|s| s.owner.as_ref().and_then(|o| index.get(o).copied())).collect();
        // Each spread workload's pending shapes, in one pass over the shapes.
        let mut theirs: Vec<Vec<usize>> = vec![Vec::new(); index.len()];
        for (s, w) in of_shape.iter().enumerate() {
            if let Some(w) = w {
                theirs[*w].push(s);
            }
        }
        let mut left = vec![BTreeMap::new(); index.len()];
        for (w, (spread, mine)) in snapshot.zone_spreads().iter().zip(&theirs).enumerate() {
            let pods: u32 = mine.iter().map(|&s| waiting[s]).sum();
            if pods == 0 {
                continue;
            }
            let admitting = (snapshot.node_groups().iter())
                .filter(|g| g.kind == NodeGroupKind::Asg && mine.iter().any(|&s| g.admits(&shapes[s])));
            left[w] = spread.shares(admitting.flat_map(|g| g.zones.iter().map(String::as_str)), pods);
        }
        Shares { of_shape, left }
    }

    /// How many pods of `shape`'s workload a new node of `group` may still take, when the
    /// workload is spread and the group launches in one zone.
    pub(crate) fn cap(&self, shape: usize, group: &NodeGroup) -> Option<(usize, u32)> {
        let w = self.of_shape[shape]?;
        let [zone] = group.zones.as_slice() else { return None };
        Some((w, self.left[w].get(zone).copied().unwrap_or(0)))
    }

    /// True if any of `shapes` is of a spread workload.
    pub(crate) fn any(&self, mut shapes: impl Iterator<Item = usize>) -> bool {
        shapes.any(|s| self.of_shape[s].is_some())
    }

    /// Counts `count` pods of `shape` given to `group`.
    pub(crate) fn give(&mut self, shape: usize, group: &NodeGroup, count: u32) {
        if let (Some(w), [zone]) = (self.of_shape[shape], group.zones.as_slice())
            && let Some(left) = self.left[w].get_mut(zone)
        {
            *left = left.saturating_sub(count);
        }
    }
}

/// Spare room by zone, for the spread pods of nodes a scale-down removes.
pub(crate) struct ZoneRoom {
    spread: HashSet<WorkloadRef>,
    /// Room left on the schedulable nodes that stay, by zone; counted when a workload is
    /// spread.
    spare: HashMap<String, Resources>,
}

impl ZoneRoom {
    /// `room`: what each of `schedulable` may still take.
    pub(crate) fn new(snapshot: &dyn Snapshot, schedulable: &[&Node], room: impl Fn(&Node) -> Resources) -> Self {
        let spread: HashSet<WorkloadRef> = snapshot.zone_spreads().iter().map(|s| s.workload.clone()).collect();
        let mut spare: HashMap<String, Resources> = HashMap::new();
        if !spread.is_empty() {
            for node in schedulable {
                let sum = spare.entry(node.zone.clone()).or_insert(Resources::ZERO);
                *sum = sum.saturating_add(&room(node));
            }
        }
        ZoneRoom { spread, spare }
    }

    /// What `shapes` (a node's pods) a drain moves of spread workloads, each pod a slot.
    pub(crate) fn load(&self, shapes: &[PodShape]) -> Resources {
        (shapes.iter().filter(|s| s.moves_on_drain && s.owner.as_ref().is_some_and(|o| self.spread.contains(o))))
            .fold(Resources::ZERO, |sum, s| sum.saturating_add(&Resources { pods: 1, ..s.requests }.times(s.count)))
    }

    /// True if `load` fits in the room `node`'s zone keeps without the node (`own`: its room).
    pub(crate) fn fits(&self, node: &Node, own: &Resources, load: &Resources) -> bool {
        if *load == Resources::ZERO {
            return true;
        }
        let spare = self.spare.get(&node.zone).copied().unwrap_or(Resources::ZERO);
        spare.saturating_sub(own).fits(load)
    }

    /// Counts `node` as going: its room is gone from its zone and its spread pods take room
    /// there.
    pub(crate) fn going(&mut self, node: &Node, own: &Resources, load: &Resources) {
        if let Some(spare) = self.spare.get_mut(&node.zone) {
            *spare = spare.saturating_sub(own).saturating_sub(load);
        }
    }
}

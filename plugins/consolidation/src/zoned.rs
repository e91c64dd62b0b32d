//! Pods kept spread over zones (contract 0.1.13 `zone-spreads`): the scheduler puts a pod of
//! such a workload in a zone only while that zone holds at most the skew more of its pods
//! than the zone with the fewest. A drain takes the pods out of their node's zone, which is
//! then the zone short of them: they go back to room there, or wait. So they are placed only
//! on nodes of their own zone, and what finds no room there goes to a new node only in a
//! group that launches in that zone alone. Without this a node whose spread pods fit only in
//! another zone would be removed, its pods left waiting and a node bought for them: churn.

use std::borrow::Cow;
use std::collections::HashSet;

use ballast_sdk::prelude::*;

/// The spread workloads, and each target's zone.
pub(crate) struct Zoned<'a> {
    spread: HashSet<&'a WorkloadRef>,
    /// Each target's zone, by its position in the plan's targets.
    zone_of: Vec<&'a str>,
}

impl<'a> Zoned<'a> {
    /// `zones`: each target's zone in the order targets were made; `position`: where each
    /// of them went when the targets were sorted. Kept only when some workload is spread.
    pub(crate) fn new(snapshot: &'a dyn Snapshot, zones: Vec<&'a str>, position: &[usize]) -> Self {
        let spread: HashSet<&WorkloadRef> = snapshot.zone_spreads().iter().map(|s| &s.workload).collect();
        let mut zone_of = Vec::new();
        if !spread.is_empty() {
            zone_of = vec![""; zones.len()];
            for (zone, &at) in zones.into_iter().zip(position) {
                zone_of[at] = zone;
            }
        }
        Zoned { spread, zone_of }
    }

    /// True if `shape`'s workload is kept spread over zones.
    pub(crate) fn bound(&self, shape: &PodShape) -> bool {
        !self.spread.is_empty() && shape.owner.as_ref().is_some_and(|o| self.spread.contains(o))
    }

    /// `at` (the targets that admit `shape`), only those in `zone` when the shape is bound.
    pub(crate) fn within<'p>(&self, shape: &PodShape, zone: &str, at: Cow<'p, [usize]>) -> Cow<'p, [usize]> {
        if !self.bound(shape) {
            return at;
        }
        Cow::Owned(at.iter().copied().filter(|&t| self.zone_of.get(t) == Some(&zone)).collect())
    }

    /// Where one new node may be to take `left`, the pods of nodes in `zones` that found no
    /// room on the others: anywhere when none of them is bound, else in their zone; none
    /// when bound pods come from nodes of more than one zone.
    pub(crate) fn new_node<'z>(
        &self,
        left: &[PodShape],
        mut zones: impl Iterator<Item = &'z str>,
    ) -> Option<NewNode<'z>> {
        if !left.iter().any(|p| self.bound(p)) {
            return Some(NewNode::Anywhere);
        }
        let first = zones.next()?;
        zones.all(|z| z == first).then_some(NewNode::In(first))
    }
}

/// Where a replacement or merge node may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NewNode<'z> {
    Anywhere,
    /// In this zone, surely: of a group that launches there alone.
    In(&'z str),
}

impl NewNode<'_> {
    /// True if a new node of `group` is surely where it may be.
    pub(crate) fn allows(self, group: &NodeGroup) -> bool {
        match self {
            NewNode::Anywhere => true,
            NewNode::In(zone) => matches!(group.zones.as_slice(), [only] if only == zone),
        }
    }
}

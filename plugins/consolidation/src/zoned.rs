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
    /// of them went when the targets were sorted.
    pub(crate) fn new(snapshot: &'a dyn Snapshot, zones: Vec<&'a str>, position: &[usize]) -> Self {
        let mut zone_of = vec![""; zones.len()];
        for (zone, &at) in zones.into_iter().zip(position) {
            zone_of[at] = zone;
        }
        Zoned { spread: snapshot.zone_spreads().iter().map(|s| &s.workload).collect(), zone_of }
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

    /// The zone a new node must launch in to take `left`, pods of nodes in `zones`: none when
    /// no pod of `left` is bound; `Err` when bound pods come from more than one zone.
    pub(crate) fn new_node_zone<'z>(
        &self,
        left: &[PodShape],
        mut zones: impl Iterator<Item = &'z str>,
    ) -> Result<Option<&'z str>, ()> {
        if !left.iter().any(|p| self.bound(p)) {
            return Ok(None);
        }
        let first = zones.next().ok_or(())?;
        match zones.all(|z| z == first) {
            true => Ok(Some(first)),
            false => Err(()),
        }
    }
}

/// True if a new node of `group` is surely in `zone` (or no zone is asked).
pub(crate) fn launches_in(group: &NodeGroup, zone: Option<&str>) -> bool {
    zone.is_none_or(|z| matches!(group.zones.as_slice(), [only] if only == z))
}

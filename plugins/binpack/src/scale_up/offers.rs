//! Each group's offer for the pods still waiting, kept across the rounds of a plan.
//!
//! A round chooses one group (and the groups balanced with it) and takes the pods it places.
//! Which shapes each group admits is worked out once a plan, and a group's offer is made
//! again only when pods it admits were taken: with pods pinned to each of 300 groups, a
//! round no longer asks every group about every shape (the engine bench's kept-apart
//! variant: binpack's call 2.19 s before, 105 ms after).

use std::collections::{HashMap, HashSet};

use ballast_sdk::prelude::*;

use super::{NodeRules, Offer, Pods, fit};
use crate::zones::Shares;

pub(crate) struct Offers<'a> {
    shapes: &'a [PendingShape],
    /// What keeps each shape's pods from sharing a new node.
    rules: NodeRules<'a>,
    /// The shapes each group admits, largest first.
    admitted: HashMap<&'a str, Vec<usize>>,
    /// The groups admitting each shape.
    admitting: Vec<Vec<&'a str>>,
    /// Pods still waiting, by shape.
    remaining: Vec<u32>,
    /// Pods each shape's workload is expected to add soon, by shape (see `soon`).
    extra: Vec<u32>,
    /// Each zone's share of the pods of workloads kept spread over zones.
    shares: Shares,
    none: Vec<u32>,
    made: HashMap<&'a str, Offer<'a>>,
    stale: HashSet<&'a str>,
}

impl<'a> Offers<'a> {
    /// `order`: the shapes largest first; `groups`: those a plan may grow.
    pub(crate) fn new(
        snapshot: &'a dyn Snapshot,
        shapes: &'a [PendingShape],
        order: &[usize],
        groups: &[(&'a NodeGroup, u32)],
        extra: Vec<u32>,
    ) -> Self {
        let limits: HashMap<&WorkloadRef, u32> =
            snapshot.per_node_limits().iter().map(|l| (&l.workload, l.max_pods)).collect();
        let per_node = shapes.iter().map(|s| s.owner.as_ref().and_then(|o| limits.get(o).copied())).collect();
        let away = shapes.iter().map(|s| s.owner.as_ref().map_or(&[][..], |o| snapshot.kept_away_from(o))).collect();
        let rules = NodeRules { per_node, away };
        let admitted: HashMap<&str, Vec<usize>> = groups
            .iter()
            .map(|(g, _)| (g.id.as_str(), order.iter().copied().filter(|&s| g.admits(&shapes[s])).collect()))
            .collect();
        let mut admitting: Vec<Vec<&str>> = vec![Vec::new(); shapes.len()];
        for (group, own) in &admitted {
            own.iter().for_each(|&s| admitting[s].push(group));
        }
        let remaining: Vec<u32> = shapes.iter().map(|s| s.count).collect();
        Offers {
            shapes,
            rules,
            admitted,
            admitting,
            shares: Shares::new(snapshot, shapes, &remaining),
            remaining,
            extra,
            none: vec![0; shapes.len()],
            made: HashMap::new(),
            stale: groups.iter().map(|(g, _)| g.id.as_str()).collect(),
        }
    }

    /// Some pods still wait.
    pub(crate) fn waiting(&self) -> bool {
        self.remaining.iter().any(|&n| n > 0)
    }

    /// Makes the offers of `groups` that pods taken since made out of date.
    pub(crate) fn refresh(&mut self, groups: &[(&'a NodeGroup, u32)]) {
        let growing = self.extra.iter().any(|&n| n > 0);
        for &(g, booting) in groups.iter().filter(|(g, _)| self.stale.contains(g.id.as_str())) {
            let offer = Offer {
                now: fit(g, booting, self.shapes, &self.rules, &self.waiting_for(g, &self.none)),
                ahead: growing.then(|| fit(g, booting, self.shapes, &self.rules, &self.waiting_for(g, &self.extra))),
            };
            self.made.insert(g.id.as_str(), offer);
        }
        self.stale.clear();
    }

    /// The offers that place pods, in the groups' order (ties are broken by it).
    pub(crate) fn open(&self, groups: &[(&'a NodeGroup, u32)]) -> Vec<&Offer<'a>> {
        (groups.iter().filter_map(|(g, _)| self.made.get(g.id.as_str()))).filter(|o| o.now.pods() > 0).collect()
    }

    /// True if some of `placed` are of a workload kept spread over zones.
    pub(crate) fn zoned(&self, placed: &[Pods]) -> bool {
        self.shares.any(placed.iter().map(|p| p.shape))
    }

    /// Takes the pods `placed` on new nodes of `group` from those waiting, and drops the
    /// `chosen` groups' offers.
    pub(crate) fn take(&mut self, group: &NodeGroup, placed: &[Pods], chosen: &[&str]) {
        for p in placed {
            self.shares.give(p.shape, group, p.count);
            self.remaining[p.shape] -= p.count.min(self.remaining[p.shape]);
            self.stale.extend(self.admitting[p.shape].iter().copied());
        }
        self.made.retain(|id, _| !chosen.contains(id));
    }

    /// The pods of the shapes `group` admits still waiting, with `more` of each shape; of a
    /// workload kept spread over zones, no more than the group's zone's share.
    fn waiting_for(&self, group: &NodeGroup, more: &[u32]) -> Vec<Pods> {
        let own = self.admitted.get(group.id.as_str()).map_or(&[][..], Vec::as_slice);
        let mut given: HashMap<usize, u32> = HashMap::new();
        (own.iter().filter(|&&s| self.remaining[s] > 0))
            .map(|&s| {
                let count = self.remaining[s].saturating_add(more[s]);
                let Some((w, share)) = self.shares.cap(s, group) else { return Pods { shape: s, count } };
                let given = given.entry(w).or_default();
                let count = count.min(share.saturating_sub(*given));
                *given += count;
                Pods { shape: s, count }
            })
            .filter(|p| p.count > 0)
            .collect()
    }
}

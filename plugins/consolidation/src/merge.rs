//! Merging: several nodes whose pods, with the room the other nodes have, fit together on one
//! new node that costs less than they do: Karpenter's multi-node consolidation. Two m5.large
//! running three 500m web pods each ($0.192/h together) become one c5.xlarge ($0.170/h).
//!
//! It goes as a replacement does ([`super::replace`]): the new node's group grows by one,
//! each merged node is marked as being replaced, and once the new node is Ready their pods
//! fit elsewhere and the ordinary removal takes them.
//!
//! # Guarantees
//! - Only on a tick that removes nothing and starts no single-node replacement, and only
//!   while no replacement is under way.
//! - The new node costs at most `1 - merge-min-saving` of the merged nodes' prices together,
//!   so the price of what runs the merged pods only falls: no cycle with replacements.
//! - No group is taken below its min-size: each merged node's group keeps min-size without
//!   counting the new node.
//! - Only nodes whose pods the host names by shape (`pods-on-node`, contract 0.1.4).
//!
//! # Caveats
//! Windows of consecutive candidates (lightest first) are weighed, not every subset; at most
//! [`MAX_STARTS`] windows start, so a large cluster pays a few placements a tick for it.

use std::collections::BTreeMap;

use ballast_sdk::prelude::*;

use super::replace::Replacing;
use super::{Candidate, Plan};

/// The most windows of candidates weighed for a merge in one evaluation.
pub const MAX_STARTS: usize = 8;

/// A merge found: the nodes, the group that grows for them, and what they cost together.
struct Merge<'a, 'c> {
    nodes: &'c [&'c Candidate<'a>],
    group: &'a NodeGroup,
    price: f64,
    pods: u32,
}

impl<'a> Plan<'a> {
    /// The one merge to start this tick, if any: called by [`Plan::replacement`] when no
    /// single node can be replaced, so no replacement is under way and the budget allows.
    pub(crate) fn merge(&mut self, unfit: &[Candidate<'a>]) -> Vec<Decision> {
        let most = self.settings.merge_max_nodes as usize;
        let known: Vec<&Candidate<'a>> = unfit.iter().filter(|c| c.shapes.is_some()).collect();
        for start in 0..known.len().min(MAX_STARTS) {
            for end in start + 2..=(start + most).min(known.len()) {
                if let Some(merge) = self.weigh(&known[start..end]) {
                    return vec![self.start(merge)];
                }
            }
        }
        Vec::new()
    }

    /// The cheapest group whose one new node takes what `nodes`' pods leave over on the other
    /// nodes, saving enough, if their groups may all lose them.
    fn weigh<'c>(&mut self, nodes: &'c [&'c Candidate<'a>]) -> Option<Merge<'a, 'c>> {
        let mut leaving: BTreeMap<&str, u32> = BTreeMap::new();
        for c in nodes {
            *leaving.entry(c.group.id.as_str()).or_default() += 1;
        }
        let above_min =
            |c: &&Candidate<'_>| c.group.desired_size.saturating_sub(c.group.min_size) >= leaving[c.group.id.as_str()];
        if !nodes.iter().all(above_min) {
            return None;
        }
        let left = self.left_over(nodes);
        let price: f64 = nodes.iter().map(|c| c.price()).sum();
        let new_node = self.zoned.new_node(&left, nodes.iter().map(|c| c.node.zone.as_str()))?;
        let group = self.cheapest_holding(&left, price * (1.0 - self.settings.merge_min_saving), None, new_node)?;
        let pods = nodes.iter().flat_map(|c| c.shapes.iter().flatten()).map(|s| s.count).sum();
        Some(Merge { nodes, group, price, pods })
    }

    /// The pods of `nodes` that find no room on the other nodes, none of `nodes` having any.
    fn left_over(&mut self, nodes: &[&Candidate<'a>]) -> Vec<PodShape> {
        let own: Vec<(usize, Resources)> = nodes
            .iter()
            .map(|c| (c.target, std::mem::replace(&mut self.targets[c.target].free, Resources::ZERO)))
            .collect();
        let mut taken = Vec::with_capacity(nodes.len());
        let mut left = Vec::new();
        for c in nodes {
            let (room, unplaced) = self.place_pods(c);
            taken.push(room);
            let shapes = c.shapes.as_deref().unwrap_or_default();
            left.extend(unplaced.iter().map(|l| PodShape { count: l.count, ..shapes[l.shape].clone() }));
        }
        for room in taken.into_iter().rev() {
            room.give_back(&mut self.targets, &mut self.apart);
        }
        for (target, free) in own {
            self.targets[target].free = free;
        }
        left
    }

    /// Grows the merge's group by one and marks its nodes as being replaced.
    fn start(&mut self, merge: Merge<'a, '_>) -> Decision {
        let names: Vec<&str> = merge.nodes.iter().map(|c| c.node.name.as_str()).collect();
        for name in &names {
            self.state.replacing.insert(name.to_string(), Replacing { group: merge.group.id.clone(), at: self.now });
        }
        let new_price = merge.group.launch_price_per_hour();
        let reason = format!(
            "merge {} (${:.4}/h together) into a new {} in {} at ${new_price:.4}/h, {:.0}% less: their {} pods fit \
             there and on the other nodes; they go once the new node is Ready",
            names.join(", "),
            merge.price,
            merge.group.launch_type().map_or("node", |t| t.name.as_str()),
            merge.group.id,
            (1.0 - new_price / merge.price) * 100.0,
            merge.pods,
        );
        Decision::new(Action::ScaleTo { group: merge.group.id.clone(), size: merge.group.desired_size + 1 }, reason)
    }
}

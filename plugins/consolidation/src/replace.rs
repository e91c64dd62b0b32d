//! Replacement: a node whose pods would fit on one new node of a cheaper group, with the room
//! the other nodes have, is replaced, Karpenter's way round: launch first, then drain. The
//! cheaper group grows by one; once its new node is Ready the old node's pods fit elsewhere,
//! and the ordinary removal takes the old node. Meanwhile the new node, empty, is not taken
//! for spare room.
//!
//! # Guarantees
//! - One replacement at a time, and only on a tick that removes nothing.
//! - A replacement saves at least `replace-min-saving` of the node's price, so a node's
//!   price only falls from one replacement to the next: no cycle.
//! - Only from a host that says which pods a node runs (`pods-on-node`, contract 0.1.4):
//!   each pod is placed at its requests on a group that admits it.
//!
//! # Caveats
//! A replacement is given up after [`GIVE_UP_MS`]; the new node is then spare like any other.

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use super::zoned::NewNode;
use super::{Candidate, Plan, Target, place_shapes};

/// A replacement under way: the group asked to grow for it, and when.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Replacing {
    pub group: String,
    pub at: u64,
}

/// How long a replacement may take (boot, drain) before it is given up.
pub const GIVE_UP_MS: u64 = 10 * 60_000;

/// Forgets replacements whose node is gone (done) or that took too long.
pub fn forget_finished(state: &mut super::State, snapshot: &dyn Snapshot, now: u64) {
    state
        .replacing
        .retain(|node, r| now.saturating_sub(r.at) < GIVE_UP_MS && snapshot.nodes().iter().any(|n| n.name == *node));
}

impl Candidate<'_> {
    /// What the node costs an hour: its instance type's price in its group, else the group's
    /// dearest.
    pub(crate) fn price(&self) -> f64 {
        self.group
            .instance_types
            .iter()
            .find(|t| t.name == self.node.instance_type)
            .map_or_else(|| self.group.max_price_per_hour(), |t| t.price_per_hour)
    }
}

/// A cheaper group that holds what the node's pods cannot find room for elsewhere.
struct Offer<'a> {
    group: &'a NodeGroup,
    price: f64,
}

impl<'a> Plan<'a> {
    /// The one replacement to start this tick, if any: of one node by a cheaper one, else
    /// of several by one ([`super::merge`]).
    pub(crate) fn replacement(&mut self, unfit: &[Candidate<'a>]) -> Vec<Decision> {
        if !self.state.replacing.is_empty() || self.budget == 0 {
            return Vec::new();
        }
        for c in unfit {
            if c.shapes.is_none() || c.group.desired_size <= c.group.min_size {
                continue;
            }
            let Some((offer, price, pods)) = self.offer(c) else { continue };
            self.state.replacing.insert(c.node.name.clone(), Replacing { group: offer.group.id.clone(), at: self.now });
            let reason = format!(
                "replace {} ({} in {} at ${price:.4}/h) by a new {} in {} at ${:.4}/h, {:.0}% less: its {pods} pods fit \
                 there and on the other nodes; {} goes once the new node is Ready",
                c.node.name,
                c.node.instance_type,
                c.group.id,
                offer.group.launch_type().map_or("node", |t| t.name.as_str()),
                offer.group.id,
                offer.price,
                (1.0 - offer.price / price) * 100.0,
                c.node.name,
            );
            let grow = Action::ScaleTo { group: offer.group.id.clone(), size: offer.group.desired_size + 1 };
            return vec![Decision::new(grow, reason)];
        }
        self.merge(unfit)
    }

    /// The cheapest group whose one new node takes what `c`'s pods leave over on the others,
    /// saving enough: the offer, the node's own price and how many pods it runs.
    fn offer(&mut self, c: &Candidate<'a>) -> Option<(Offer<'a>, f64, u32)> {
        let shapes = c.shapes.as_ref()?;
        let trial = self.trial(c);
        let left: Vec<PodShape> =
            trial.left.iter().map(|l| PodShape { count: l.count, ..shapes[l.shape].clone() }).collect();
        self.restore(trial);
        let price = c.price();
        let ceiling = price * (1.0 - self.settings.replace_min_saving);
        let new_node = self.zoned.new_node(&left, std::iter::once(c.node.zone.as_str()))?;
        let best = self.cheapest_holding(&left, ceiling, Some(&c.group.id), new_node)?;
        let pods = shapes.iter().map(|s| s.count).sum();
        Some((Offer { group: best, price: best.launch_price_per_hour() }, price, pods))
    }

    /// The cheapest group other than `except`'s, at most `ceiling` an hour and able to grow,
    /// whose one new node holds `pods` and is surely where `new_node` may be; of those as
    /// cheap, the first by id.
    pub(crate) fn cheapest_holding(
        &self,
        pods: &[PodShape],
        ceiling: f64,
        except: Option<&str>,
        new_node: NewNode<'_>,
    ) -> Option<&'a NodeGroup> {
        // Cheapest first: the first that holds them is the one, and none past the ceiling
        // is tried.
        self.by_price
            .iter()
            .take_while(|(price, _)| *price <= ceiling)
            .map(|(_, g)| *g)
            .filter(|g| Some(g.id.as_str()) != except && g.desired_size < g.max_size && !g.instance_types.is_empty())
            .filter(|g| new_node.allows(g))
            .find(|g| self.holds(g, pods))
    }

    /// True if one new node of `group` holds `pods`, beside the DaemonSet pods it will run,
    /// whichever of the group's types comes: the pods are running, and a replacement that
    /// came smaller would leave some of them waiting once evicted.
    fn holds(&self, group: &NodeGroup, pods: &[PodShape]) -> bool {
        let free = group.guaranteed_allocatable().saturating_sub(&self.daemonsets.requests);
        let free = Resources { pods: free.pods.saturating_sub(self.daemonsets.pods), ..free };
        let mut new = [Target { node: String::new(), group: 0, free }];
        let mut apart = self.apart.empty_nodes();
        pods.iter().all(|p| group.admits(p)) && place_shapes(pods, &mut new, &mut apart, |_| [0]).1.is_empty()
    }
}

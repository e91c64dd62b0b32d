//! Scale-up: first-fit decreasing of pending pods onto new nodes, cheapest group first.
//!
//! Works on pending shapes (pods alike for placement, with a count): a 1,000-replica
//! Deployment crosses the plugin boundary as one record. The packing itself still places
//! pod by pod, so the plan is the one per-pod first-fit decreasing gives.

use std::collections::{HashMap, HashSet};

use ballast_sdk::prelude::*;

use crate::balance::{self, Balance};
use crate::priority::Ranked;

mod offers;

use offers::Offers;

/// How a group is chosen among those that fit: the highest priority first, then by the
/// expander.
pub struct Choice<'a> {
    pub expander: crate::Expander,
    pub priorities: &'a Ranked,
}

/// How many pods of one shape (an index into the pending shapes).
#[derive(Clone, Copy)]
pub(crate) struct Pods {
    shape: usize,
    count: u32,
}

/// A group's answer for a set of pods: how many it places on how many new nodes.
pub(crate) struct Fit<'a> {
    group: &'a NodeGroup,
    template: Resources,
    price: f64,
    new_nodes: u32,
    /// The pods placed, by shape.
    placed: Vec<Pods>,
}

impl Fit<'_> {
    fn cost(&self) -> f64 {
        self.new_nodes as f64 * self.price
    }

    fn pods(&self) -> u32 {
        self.placed.iter().map(|p| p.count).sum()
    }
}

/// What keeps the pods of each waiting shape (by index) from sharing a new node.
pub(crate) struct NodeRules<'a> {
    /// At most this many of the shape's workload's pods on one node (`per-node-limits`).
    pub(crate) per_node: Vec<Option<u32>>,
    /// The workloads whose pods the shape's may not share a node with (`kept-away`).
    pub(crate) away: Vec<&'a [WorkloadRef]>,
}

/// A group's fit for the pods waiting now, and the fit it is ranked by: those pods with the
/// ones their workloads are expected to add soon, when any are.
pub(crate) struct Offer<'a> {
    now: Fit<'a>,
    ahead: Option<Fit<'a>>,
}

impl<'a> Offer<'a> {
    fn ranked(&self) -> &Fit<'a> {
        self.ahead.as_ref().unwrap_or(&self.now)
    }
}

/// Plans scale-ups for the pending pods. `expected` says how many more pods a workload is
/// expected to add soon ([`crate::growth`]); groups are ranked by what their new nodes
/// would hold with those, and sized for the pods waiting now. With `balance` on, the nodes
/// the chosen group would get are spread over it and the groups similar to it.
pub fn plan(
    snapshot: &dyn Snapshot,
    choice: &Choice<'_>,
    balance: &Balance,
    expected: &dyn Fn(&WorkloadRef) -> u32,
) -> Vec<Decision> {
    let shapes = snapshot.pending_shapes();
    if shapes.is_empty() {
        return Vec::new();
    }
    // Largest first, by the dimension that is scarcest on a typical node (CPU then memory).
    let mut order: Vec<usize> = (0..shapes.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&shapes[a].requests, &shapes[b].requests);
        (rb.cpu_millis, rb.memory_bytes).cmp(&(ra.cpu_millis, ra.memory_bytes))
    });
    let mut decisions = Vec::new();
    // Each group with the nodes it has on their way, read once (a host call per group that
    // has some).
    let mut groups: Vec<(&NodeGroup, u32)> = snapshot
        .node_groups()
        .iter()
        .filter(|g| g.kind == NodeGroupKind::Asg && !g.instance_types.is_empty())
        .map(|g| (g, snapshot.booting(g)))
        .collect();
    balance.pool(&mut groups);
    let extra = soon(shapes, &order, expected);
    let mut offers = Offers::new(snapshot, shapes, &order, &groups, extra);
    while offers.waiting() && !groups.is_empty() {
        offers.refresh(&groups);
        let open = offers.open(&groups);
        let Some(best) = open.iter().copied().min_by(|a, b| rank(choice, a.ranked(), b.ranked())) else {
            break;
        };
        let admits_all = |g: &NodeGroup| best.now.placed.iter().all(|p| g.admits(&shapes[p.shape]));
        // Pods kept spread over zones were given to the group's zone: its nodes stay there.
        let set = match offers.zoned(&best.now.placed) {
            true => vec![best.now.group],
            false => balance.set(best.now.group, groups.iter().map(|(g, _)| *g), admits_all),
        };
        if best.now.new_nodes > 0 {
            decisions.extend(grow(&set, best.now.new_nodes, &reason(best, &open, shapes, choice.priorities)));
        }
        let (group, placed) = (best.now.group, best.now.placed.clone());
        let chosen: Vec<&str> = set.iter().map(|g| g.id.as_str()).collect();
        offers.take(group, &placed, &chosen);
        groups.retain(|(g, _)| !chosen.contains(&g.id.as_str()));
    }
    decisions
}

/// One decision a group of `set` that gets nodes: all to the first when it is alone,
/// otherwise spread ([`balance::spread`]), the spread named in each reason.
fn grow(set: &[&NodeGroup], nodes: u32, reason: &str) -> Vec<Decision> {
    let added = balance::spread(set, nodes);
    let spread = match set {
        [_] => String::new(),
        _ => {
            let parts: Vec<String> =
                set.iter().zip(&added).filter(|(_, n)| **n > 0).map(|(g, n)| format!("{} +{n}", g.id)).collect();
            format!("; spread over similar groups: {}", parts.join(", "))
        }
    };
    set.iter()
        .zip(added)
        .filter(|(_, n)| *n > 0)
        .map(|(g, n)| {
            Decision::new(
                Action::ScaleTo { group: g.id.clone(), size: g.desired_size + n },
                format!("{reason}{spread}"),
            )
        })
        .collect()
}

/// The pods each waiting shape's workload is expected to add soon, by shape index (the first
/// shape of a workload in `order` carries them all).
fn soon(shapes: &[PendingShape], order: &[usize], expected: &dyn Fn(&WorkloadRef) -> u32) -> Vec<u32> {
    let mut extra = vec![0; shapes.len()];
    let mut seen = std::collections::BTreeSet::new();
    for &shape in order {
        if let Some(owner) = shapes[shape].owner.as_ref().filter(|&o| seen.insert(o)) {
            extra[shape] = expected(owner);
        }
    }
    extra
}

/// Orders two fits, better first: the higher priority; then by `most-pods`, most pods
/// placed, then lowest cost, then fewest nodes; by `price`, lowest cost per pod placed, then
/// most pods, then fewest nodes.
fn rank(choice: &Choice<'_>, a: &Fit, b: &Fit) -> std::cmp::Ordering {
    let per_pod = |f: &Fit| f.cost() / f.pods().max(1) as f64;
    let priority = |f: &Fit| choice.priorities.of(&f.group.id);
    priority(b).cmp(&priority(a)).then_with(|| {
        match choice.expander {
            crate::Expander::MostPods => b.pods().cmp(&a.pods()).then(a.cost().total_cmp(&b.cost())),
            crate::Expander::Price => per_pod(a).total_cmp(&per_pod(b)).then(b.pods().cmp(&a.pods())),
        }
        .then(a.new_nodes.cmp(&b.new_nodes))
    })
}

/// Packs `waiting` pods (largest first) onto the group's `booting` nodes (asked for, booting,
/// or registered lately but not Ready: the scheduler cannot use them, but soon will), then
/// onto new ones up to the group's max. A shape whose workload limits its pods per node
/// (`rules.per_node`) puts at most that many of the workload's pods on one node, and none on
/// a node given a pod of a workload it is kept away from (`rules.away`).
pub(crate) fn fit<'a>(
    group: &'a NodeGroup,
    booting: u32,
    shapes: &'a [PendingShape],
    rules: &NodeRules<'a>,
    waiting: &[Pods],
) -> Fit<'a> {
    let template = group.launch_allocatable();
    let limit = (booting + group.max_size.saturating_sub(group.desired_size)) as usize;
    let mut bins: Vec<Resources> = vec![template; booting as usize];
    // Pods of each limited workload per bin.
    let mut taken: HashMap<(&WorkloadRef, usize), u32> = HashMap::new();
    // The bins given pods of each workload kept away from others.
    let mut present: HashSet<(&WorkloadRef, usize)> = HashSet::new();
    let mut placed = Vec::new();
    for w in waiting {
        let shape = &shapes[w.shape];
        let request = Resources { pods: shape.requests.pods.max(1), ..shape.requests };
        if !group.admits(shape) || !template.fits(&request) {
            continue;
        }
        let limited = shape.owner.as_ref().zip(rules.per_node[w.shape]);
        let away = rules.away[w.shape];
        // Pods of a shape are alike and bins only fill up, so the next pod of the shape never
        // fits before where the last one went: the search resumes there.
        let mut from = 0;
        let mut count = 0;
        for _ in 0..w.count {
            let index = match bins[from..].iter().enumerate().position(|(i, free)| {
                free.fits(&request)
                    && limited.is_none_or(|(owner, max)| taken.get(&(owner, from + i)).is_none_or(|&n| n < max))
                    && away.iter().all(|other| !present.contains(&(other, from + i)))
            }) {
                Some(offset) => from + offset,
                None if bins.len() < limit => {
                    bins.push(template);
                    bins.len() - 1
                }
                None => break,
            };
            let free = &mut bins[index];
            *free = free.saturating_sub(&request);
            if let Some((owner, _)) = limited {
                *taken.entry((owner, index)).or_default() += 1;
            }
            if let Some(owner) = shape.owner.as_ref().filter(|_| !away.is_empty()) {
                present.insert((owner, index));
            }
            from = index;
            count += 1;
        }
        if count > 0 {
            placed.push(Pods { shape: w.shape, count });
        }
    }
    let new_nodes = (bins.len() as u32).saturating_sub(booting);
    Fit { group, template, price: group.launch_price_per_hour(), new_nodes, placed }
}

/// Whose pods a scale-up is for, as a journal reader asks: up to three owners (bare pods by
/// namespace), then how many more.
fn owners(best: &Fit, shapes: &[PendingShape]) -> String {
    let mut names: Vec<String> = best
        .placed
        .iter()
        .map(|p| {
            let shape = &shapes[p.shape];
            shape.owner.as_ref().map_or_else(|| format!("bare pods in {}", shape.namespace), |o| o.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    match names.len() {
        0..=3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

fn reason(offer: &Offer, all: &[&Offer], shapes: &[PendingShape], priorities: &Ranked) -> String {
    let best = &offer.now;
    let count = best.pods();
    let sample = &shapes[best.placed[0].shape].requests;
    let same = best.placed.iter().all(|p| {
        let r = &shapes[p.shape].requests;
        r.cpu_millis == sample.cpu_millis && r.memory_bytes == sample.memory_bytes
    });
    let whose = owners(best, shapes);
    let what = if same {
        format!("{count} pending pods of {whose} ({sample} each)")
    } else {
        format!("{count} pending pods of {whose}")
    };
    let type_name = best.group.launch_type().map_or("?", |t| t.name.as_str());
    let mut text = format!(
        "{what} fit on {} new {type_name} node(s) ({} allocatable each) at ${:.4}/h each = ${:.4}/h",
        best.new_nodes,
        best.template,
        best.price,
        best.cost()
    );
    let others: Vec<String> = all
        .iter()
        .filter(|o| o.now.group.id != best.group.id)
        .map(|o| {
            let f = o.ranked();
            format!("{}: {} pods on {} nodes, ${:.4}/h", f.group.id, f.pods(), f.new_nodes, f.cost())
        })
        .collect();
    if let Some(ahead) = &offer.ahead {
        text.push_str(&format!(
            "; priced with the {} more pods their growth brings soon: {} pods on {} nodes, ${:.4}/h",
            ahead.pods().saturating_sub(count),
            ahead.pods(),
            ahead.new_nodes,
            ahead.cost()
        ));
    }
    if !priorities.is_empty() {
        match priorities.of(&best.group.id) {
            Some(priority) => text.push_str(&format!("; priority {priority}")),
            None => text.push_str("; no priority matches the groups that fit"),
        }
    }
    if !others.is_empty() {
        text.push_str(&format!("; cheapest of {} groups (others: {})", all.len(), others.join("; ")));
    }
    text
}

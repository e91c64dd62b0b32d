//! Counting a shape's slots in a group, and sizing the group for a need.

use std::collections::BTreeMap;
use std::rc::Rc;

use ballast_sdk::prelude::*;

/// Room wanted for `count` pods of `shape`, in the groups `admits` accepts.
#[derive(Clone)]
pub struct Need<'a> {
    pub what: String,
    pub shape: Resources,
    pub count: u32,
    pub admits: Rc<dyn Fn(&NodeGroup) -> bool + 'a>,
    /// The workload the pods are of, if known: one that limits its pods per node (contract
    /// 0.1.12) gets at most that many slots a node, less those it already runs there.
    pub owner: Option<&'a WorkloadRef>,
    /// When there is enough room, propose to hold the group a removal would leave short.
    /// Not for a ramp: its pods are pending meanwhile, and consolidation removes nothing
    /// while pods are pending or soon after a group grew.
    pub hold: bool,
}

/// A group's slots for one shape: spare now, and per new node.
struct Slots<'a> {
    group: &'a NodeGroup,
    /// The size the group is headed for this tick (earlier proposals, this plugin's own).
    base: u32,
    spare: u64,
    per_node: u64,
    /// The most slots any one of its Ready nodes holds: what a removal could take.
    largest_node: u64,
}

/// A group asked to grow or hold for a need: its target size, and why.
pub struct Ask {
    pub group: String,
    pub size: u32,
    pub why: String,
}

/// The groups to grow or hold for `need` (none when nothing is asked).
///
/// When short, whole nodes of the group with the cheapest slot take what they can hold
/// whole; what is left over goes where it costs least in whole nodes, which may be a smaller
/// node of another group (one pod left over is not worth a whole big node).
pub fn plan(snapshot: &dyn Snapshot, need: &Need<'_>, planned: &BTreeMap<String, (u32, String)>) -> Vec<Ask> {
    let ready = snapshot.nodes().iter().filter(|n| n.ready).count();
    let overhead = ballast_sdk::daemonset_overhead(snapshot.workloads(), ready);
    let groups: Vec<Slots> = snapshot
        .node_groups()
        .iter()
        .filter(|g| g.kind == NodeGroupKind::Asg && !g.instance_types.is_empty() && (need.admits)(g))
        .map(|g| slots(snapshot, g, need, &overhead, planned.get(&g.id).map(|p| p.0)))
        .collect();
    let spare: u64 = groups.iter().map(|s| s.spare).sum();
    let want = need.count as u64;
    let what = &need.what;
    if spare >= want {
        if !need.hold {
            return Vec::new();
        }
        // Enough; hold each group whose loss of one node would leave too little. Every such
        // group, not the first: which one comes first changes as nodes turn Ready, and holds
        // that took turns would each start a new record instead of folding into one.
        return groups
            .iter()
            .filter(|s| s.spare > 0 && spare - s.largest_node.min(spare) < want)
            .map(|g| Ask {
                group: g.group.id.clone(),
                size: g.base,
                why: format!("keeps spare room for {what}: enough now, not without any one node of {}", g.group.id),
            })
            .collect();
    }
    let open: Vec<&Slots> = groups.iter().filter(|s| s.per_node > 0 && s.base < s.group.max_size).collect();
    let Some((cheapest, added)) = nodes_to_add(&open, want - spare) else { return Vec::new() };
    open.iter()
        .filter_map(|s| {
            let nodes = *added.get(s.group.id.as_str()).filter(|n| **n > 0)?;
            let why = format!(
                "spare room for {what}: {spare} slots free, {nodes} new node(s) of {} add {} ({}, ${:.4}/h per node)",
                s.group.id,
                nodes as u64 * s.per_node,
                if s.group.id == cheapest { "the cheapest slot" } else { "the cheapest for what is left over" },
                s.group.launch_price_per_hour()
            );
            Some(Ask { group: s.group.id.clone(), size: s.base + nodes, why })
        })
        .collect()
}

/// New nodes by group for `short` slots: whole nodes of the group with the cheapest slot,
/// then the rest where it costs least in whole nodes. Also names the cheapest-slot group.
fn nodes_to_add<'a>(open: &[&'a Slots<'a>], short: u64) -> Option<(&'a str, BTreeMap<&'a str, u32>)> {
    let per_slot = |s: &Slots| s.group.launch_price_per_hour() / s.per_node as f64;
    let cheapest = open.iter().copied().min_by(|a, b| per_slot(a).total_cmp(&per_slot(b)))?;
    let whole = (short / cheapest.per_node).min(cheapest.room() as u64) as u32;
    let mut added = BTreeMap::from([(cheapest.group.id.as_str(), whole)]);
    let rest = short - whole as u64 * cheapest.per_node;
    if rest > 0 {
        // What each group would add for the rest: nodes, and their cost.
        let offer = |s: &Slots| {
            let room = s.room().saturating_sub(added.get(s.group.id.as_str()).copied().unwrap_or(0));
            let nodes = rest.div_ceil(s.per_node).min(room as u64) as u32;
            (nodes, nodes as f64 * s.group.launch_price_per_hour())
        };
        let best = open
            .iter()
            .copied()
            .filter(|s| offer(s).0 as u64 * s.per_node >= rest)
            .min_by(|a, b| offer(a).1.total_cmp(&offer(b).1))
            .unwrap_or(cheapest);
        let nodes = offer(best).0;
        *added.entry(best.group.id.as_str()).or_default() += nodes;
    }
    Some((cheapest.group.id.as_str(), added))
}

impl Slots<'_> {
    /// New nodes the group can still take.
    fn room(&self) -> u32 {
        self.group.max_size.saturating_sub(self.base)
    }
}

/// `overhead`: the DaemonSet pods a new node runs before any of the shape's.
fn slots<'a>(
    snapshot: &dyn Snapshot,
    group: &'a NodeGroup,
    need: &Need<'_>,
    overhead: &Resources,
    planned: Option<u32>,
) -> Slots<'a> {
    let shape = &need.shape;
    let count = |free: &Resources| free.slots_for(shape);
    let limit = need.owner.and_then(|o| Some((o, snapshot.max_per_node(o)? as u64)));
    let away = need.owner.map_or(&[][..], |o| snapshot.kept_away_from(o));
    // What the limit leaves on a node (none where it runs a pod of a workload the owner is
    // kept away from), knowing its pods only when there is a rule.
    let kept_apart = |n: &Node| {
        if limit.is_none() && away.is_empty() {
            return u64::MAX;
        }
        let pods = snapshot.pods_on_node(&n.name);
        if pods.iter().any(|s| s.owner.as_ref().is_some_and(|o| away.contains(o))) {
            return 0;
        }
        let Some((owner, max)) = limit else { return u64::MAX };
        let here: u32 = pods.iter().filter(|s| s.owner.as_ref() == Some(owner)).map(|s| s.count).sum();
        max.saturating_sub(here as u64)
    };
    let per_node = count(&group.launch_allocatable().saturating_sub(overhead)).min(limit.map_or(u64::MAX, |l| l.1));
    let on_nodes: Vec<u64> = snapshot
        .nodes()
        .iter()
        .filter(|n| n.group.as_deref() == Some(&group.id) && n.ready && !n.cordoned)
        .map(|n| count(&n.allocatable.saturating_sub(&n.requested)).min(kept_apart(n)))
        .collect();
    let booting = snapshot.booting(group) as u64;
    let earlier = snapshot
        .proposals()
        .iter()
        .filter_map(|p| match &p.decision.action {
            Action::ScaleTo { group: g, size } if g == &group.id => Some(*size),
            _ => None,
        })
        .max();
    // Nodes earlier policies asked for are for pending pods; those this plugin added for an
    // earlier need are spare.
    let headed = earlier.unwrap_or(group.desired_size).max(group.desired_size);
    let base = planned.unwrap_or(headed).max(headed);
    Slots {
        group,
        base,
        spare: on_nodes.iter().sum::<u64>() + (booting + (base - headed) as u64) * per_node,
        per_node,
        largest_node: on_nodes.iter().copied().max().unwrap_or(0),
    }
}

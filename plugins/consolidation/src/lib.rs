//! `consolidation`: removes nodes whose pods provably fit on the other nodes, and replaces
//! nodes by cheaper ones: Karpenter's `WhenEmptyOrUnderutilized`.
//!
//! - A node is a candidate when it is Ready, schedulable, not blocked from removal by the
//!   host (PDBs, local storage, too young, ...) and its pods fit in the free room of the
//!   other nodes by a simulated placement ([`fit`]): not a utilisation threshold. From a host
//!   that says which pods a node runs (`pods-on-node`, contract 0.1.4) each pod is placed at
//!   its requests on any group that admits it (selectors, affinity keys, taints); from an
//!   older host, at the largest size it could be, within its own group.
//! - Empty nodes (DaemonSet pods only) come first, then the lightest; each chosen node's
//!   pods take the room they need, so two nodes never count on the same room.
//! - On a tick that removes nothing, a node whose pods would fit on one new node of a group
//!   cheaper by `replace-min-saving` (and on the others' room) is replaced: that group grows
//!   by one, and once the new node is Ready the old one is removed like any other
//!   ([`replace`]: launch first, one at a time, 10 minutes at most).
//! - On such a tick with no replacement, two or more nodes (up to `merge-max-nodes`) whose pods
//!   would fit together on one new node, with the others' room, are merged when that node
//!   costs at least `merge-min-saving` less than they do together: Karpenter's multi-node
//!   consolidation, launch first like a replacement (two m5.large running three 500m pods
//!   each become one c5.xlarge, 11% less).
//! - At most [`MAX_CANDIDATES`] nodes, the lightest, are weighed in one evaluation; the
//!   trial placements take room in place and give it back, so a tick costs candidates x
//!   nodes, not a copy of every node per candidate.
//! - A candidate must stay one for `consolidate-after-seconds` (0: at once).
//! - A group tagged with Cluster Autoscaler's `autoscaling-options` keeps CA's behaviour: only
//!   nodes under its `scaledownutilizationthreshold` are candidates, and they wait its
//!   `scaledownunneededtime` instead of `consolidate-after-seconds` (with
//!   `ignoredaemonsetsutilization`, DaemonSet pods do not count towards the threshold).
//! - Churn control: at most `disruption-budget` of the nodes are being removed at once
//!   (removals in progress count; an empty node, which disrupts nothing, does not use it
//!   unless `count-empty-nodes`, as with the host's own budget), nothing below a group's
//!   min-size, and nothing in a group the host would not let shrink yet (its
//!   `scale-down-after-scale-up` and `after-scale-down` cooldowns, read from the snapshot's
//!   `group-cooldowns`) or that grew in the last `stabilise-seconds` (0 by default: an extra
//!   wait of this policy's own), so
//!   capacity asked for a minute ago is not taken back before the pods that wanted it have
//!   landed, and no removal is proposed only to be refused. And it learns from regret: when
//!   a group has to grow again for waiting pods it admits within `churn-window-seconds` of a
//!   removal (a batch that comes back every 15 minutes), its nodes wait longer before they go
//!   (doubling, from 1 min up to `max-wait-seconds`); growth that comes later, or that was
//!   asked ahead of demand with no pod waiting (`headroom`'s room for a run it knew was
//!   coming), halves the wait again: that removal saved what the idle gap cost.
//! - With `shrink-replace-wait-seconds` (300 in the default chain), a node that runs pods of
//!   a workload whose replicas fell within that window is not replaced or merged: during a
//!   scale-in a node launched for its pods would soon be merged or emptied itself, and its
//!   pods moved twice. It is still removed when its pods fit on the other nodes.
//! - With `replace-after-cooldown` (on in the default chain), a node is replaced or merged
//!   only if the host's cooldowns let its group shrink by the time the new node is Ready
//!   (`replace-ready-within-seconds`, 180), so the new node does not wait as spare room
//!   beside it.
//! - No replacement or merge launches in a group whose launch failed within
//!   `failed-group-wait-seconds` (900) and that has not delivered nodes since (contract
//!   0.1.9 `launch-failures`): a spot pool out of capacity is no cheaper place for running
//!   pods, and another failure doubles the group's back-off for the pods that need it.
//! - With `shrink-wait-seconds`, a node that runs pods of a workload whose replicas fell
//!   within that window is not drained ([`shrink`]): its scale-in empties nodes itself.
//! - Nothing while pods wait that a new node would hold: capacity is short, not spare (a pod
//!   no group can hold, which waits whatever runs, holds nothing back); and nothing in a
//!   group an earlier policy of the chain asked to keep or grow this tick (`headroom` holds a
//!   group whose spare room it needs).
//!
//! # Caveats
//! The placement is first-fit at requests; the scheduler may place the moved pods elsewhere
//! (a replacement's new node then stays empty and goes as spare after the replacement ends).

mod admitted;
mod fit;
mod kept_apart;
mod merge;
mod received;
mod replace;
mod settings;
mod shrink;
mod zoned;

use std::collections::BTreeMap;

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

pub use fit::{Left, Load, Taken, Target, place, place_shapes};
pub use kept_apart::KeptApart;
pub use settings::Settings;

/// The most candidates weighed in one evaluation, lightest first: each is a placement over
/// every node, so a 5,000-node cluster is not searched 5,000 times a tick (Karpenter bounds
/// its search the same way). The rest are weighed once these have gone.
pub const MAX_CANDIDATES: usize = 100;

/// What the policy remembers: since when each node has been removable, and each group's
/// desired size with when it last grew.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct State {
    pub removable_since: BTreeMap<String, u64>,
    pub groups: BTreeMap<String, Growth>,
    /// Replacements under way, by the node being replaced.
    #[serde(default)]
    pub replacing: BTreeMap<String, replace::Replacing>,
    /// The replicas of workloads on candidate nodes, for `shrink-wait-seconds` and
    /// `shrink-replace-wait-seconds`.
    #[serde(default)]
    pub followed: BTreeMap<String, shrink::Followed>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
pub struct Growth {
    pub desired: u32,
    pub grew_at: u64,
    /// When this policy last removed nodes of the group.
    #[serde(default)]
    pub removed_at: u64,
    /// The extra wait churn has taught (millis).
    #[serde(default)]
    pub wait_ms: u64,
}

pub struct Consolidation;

impl Policy for Consolidation {
    type Settings = Settings;
    type State = State;

    fn validate(settings: &Settings) -> Result<(), String> {
        settings.validate()
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, state: &mut State) -> Result<Vec<Decision>, String> {
        let now = snapshot.taken_at_millis();
        track_growth(snapshot, settings, state, now);
        replace::forget_finished(state, snapshot, now);
        if snapshot.pods_wait_for_nodes() {
            state.removable_since.clear();
            return Ok(Vec::new());
        }
        Ok(Plan::new(snapshot, settings, state, now).choose())
    }
}

/// Remembers when each group last grew, and learns from growth soon after a removal.
fn track_growth(snapshot: &dyn Snapshot, settings: &Settings, state: &mut State, now: u64) {
    let window = ms(settings.churn_window_seconds);
    let mut groups = BTreeMap::new();
    for g in snapshot.node_groups().iter().filter(|g| g.kind == NodeGroupKind::Asg) {
        // Growth asked ahead of demand (room made before pods arrive) kept no pod waiting.
        let waited = || snapshot.pending_shapes().iter().any(|p| g.admits(p));
        let mut growth =
            state.groups.get(&g.id).copied().unwrap_or(Growth { desired: g.desired_size, ..Growth::default() });
        if g.desired_size > growth.desired {
            growth.grew_at = now;
            if window > 0 && growth.removed_at > 0 && now.saturating_sub(growth.removed_at) <= window && waited() {
                growth.wait_ms = (growth.wait_ms * 2).max(60_000).min(ms(settings.max_wait_seconds));
            } else {
                growth.wait_ms /= 2;
            }
        }
        growth.desired = g.desired_size;
        groups.insert(g.id.clone(), growth);
    }
    state.groups = groups;
}

/// A node that may go, and what must move off it.
pub(crate) struct Candidate<'a> {
    node: &'a Node,
    /// The node's own room, by its index in the plan's targets.
    target: usize,
    group: &'a NodeGroup,
    load: Load,
    /// The pods a drain moves, by shape, from a host that serves `pods-on-node` (0.1.4).
    shapes: Option<Vec<PodShape>>,
    /// How long it must stay removable: the group's Cluster Autoscaler unneeded time when it
    /// is tagged with one, else `consolidate-after-seconds`.
    wait_seconds: u64,
    /// Runs pods of a workload that lost replicas within `shrink-replace-wait-seconds`:
    /// removed when its pods fit elsewhere, never replaced or merged.
    shrinking: bool,
}

/// A trial placement of a candidate's pods: the room it took, and what found none.
struct Trial {
    /// The candidate's own target, and its room, taken away for the trial.
    own: usize,
    mine: Resources,
    taken: Taken,
    left: Vec<Left>,
}

struct Plan<'a> {
    settings: &'a Settings,
    state: &'a mut State,
    now: u64,
    /// The managed groups by index, as targets name them.
    indexed: Vec<&'a NodeGroup>,
    /// The same groups by the price of a node they launch, cheapest first, ties in id order;
    /// where a replacement may launch, so without those whose launches failed lately.
    by_price: Vec<(f64, &'a NodeGroup)>,
    candidates: Vec<Candidate<'a>>,
    /// Free room on the Ready schedulable nodes of every managed group, fullest first.
    targets: Vec<Target>,
    /// The positions in `targets` of each group's nodes, ascending, by group index.
    by_group: Vec<Vec<usize>>,
    /// Every position in `targets`, ascending: where a pod every group admits may go.
    everywhere: Vec<usize>,
    /// The largest request of any pod that may run on EC2, per resource.
    largest: Resources,
    /// The DaemonSet pods every node runs (a new node too).
    daemonsets: Load,
    /// Removals the budget still allows this tick.
    budget: usize,
    /// Where each group stands against the host's cooldowns.
    cooldowns: BTreeMap<&'a str, &'a GroupCooldown>,
    /// Which group admits which shape, by the shape's constraints.
    admitted: admitted::Admitted,
    /// Pods of workloads that limit them per node, on each target.
    apart: KeptApart,
    /// The workloads kept spread over zones, and each target's zone.
    zoned: zoned::Zoned<'a>,
}

/// The groups earlier policies of the chain asked to keep or grow this tick.
fn held<'a>(snapshot: &'a dyn Snapshot, groups: &BTreeMap<&'a str, &'a NodeGroup>) -> Vec<&'a str> {
    snapshot
        .proposals()
        .iter()
        .filter_map(|p| match &p.decision.action {
            Action::ScaleTo { group, size } => groups.get(group.as_str()).filter(|g| *size >= g.desired_size),
            Action::ScaleBy { group, delta } if *delta >= 0 => groups.get(group.as_str()),
            _ => None,
        })
        .map(|g| g.id.as_str())
        .collect()
}

/// The pods a drain of `node` moves, by shape; `None` when the host does not say (a node
/// that runs pods but has no shapes: a host older than 0.1.4).
fn movable(snapshot: &dyn Snapshot, node: &Node) -> Option<Vec<PodShape>> {
    let shapes = snapshot.pods_on_node(&node.name);
    if shapes.is_empty() && node.pod_count > 0 {
        return None;
    }
    Some(shapes.into_iter().filter(|s| s.moves_on_drain && s.count > 0).collect())
}

/// Drops the candidates that run pods of a workload that lost replicas within
/// `shrink-wait-seconds`, and marks those within `shrink-replace-wait-seconds` as not to be
/// replaced or merged ([`shrink`]); empty ones are neither.
fn wait_for_shrinks(
    snapshot: &dyn Snapshot,
    candidates: &mut Vec<Candidate<'_>>,
    followed: &mut BTreeMap<String, shrink::Followed>,
    now: u64,
    settings: &Settings,
) {
    let (drain_ms, replace_ms) = (ms(settings.shrink_wait_seconds), ms(settings.shrink_replace_wait_seconds));
    let window_ms = drain_ms.max(replace_ms);
    if window_ms == 0 {
        return;
    }
    let owners = candidates.iter().flat_map(|c| shrink::owners(c.shapes.iter().flatten())).collect();
    let fell = shrink::fell(followed, snapshot.workloads(), &owners, now, window_ms);
    candidates.retain_mut(|c| {
        // How long ago the latest fall among the workloads a drain of the node would move was.
        let since = shrink::owners(c.shapes.iter().flatten()).filter_map(|o| fell.get(o)).min().copied();
        c.shrinking = since.is_some_and(|ago| ago < replace_ms);
        c.load.pods == 0 || since.is_none_or(|ago| ago >= drain_ms)
    });
}

/// Seconds from the settings as milliseconds, the snapshot's clock; a value too large for
/// that stands for "never" rather than wrapping round to a short wait.
fn ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

/// What the plan needs of each managed group, by the index targets use.
struct GroupFacts<'a> {
    group: &'a NodeGroup,
    /// An earlier policy asked to keep or grow it this tick.
    held: bool,
    /// A replacement under way grows it.
    replacing: bool,
    /// Its Cluster Autoscaler options, when it is tagged with some.
    options: Option<&'a GroupOptions>,
}

/// Finds a node's group index by name, remembering the last hit: nodes of one group tend to
/// come together, so most lookups compare one name, not a tree's worth.
struct GroupIndex<'a> {
    index: BTreeMap<&'a str, usize>,
    last: Option<(&'a str, usize)>,
}

impl<'a> GroupIndex<'a> {
    fn of(&mut self, node: &'a Node) -> Option<usize> {
        let name = node.group.as_deref()?;
        if let Some((last, i)) = self.last
            && last == name
        {
            return Some(i);
        }
        let i = *self.index.get(name)?;
        self.last = Some((name, i));
        Some(i)
    }
}

impl<'a> Plan<'a> {
    fn new(snapshot: &'a dyn Snapshot, settings: &'a Settings, state: &'a mut State, now: u64) -> Self {
        let groups: BTreeMap<&str, &NodeGroup> = snapshot
            .node_groups()
            .iter()
            .filter(|g| g.kind == NodeGroupKind::Asg)
            .map(|g| (g.id.as_str(), g))
            .collect();
        let facts = group_facts(snapshot, &groups, state);
        let mut lookup = GroupIndex { index: groups.keys().enumerate().map(|(i, id)| (*id, i)).collect(), last: None };
        let managed: Vec<(&Node, usize)> =
            snapshot.nodes().iter().filter_map(|n| lookup.of(n).map(|i| (n, i))).collect();
        let in_flight = managed.iter().filter(|(n, _)| n.cordoned).count();
        let allowed = ((managed.len() as f64 * settings.disruption_budget).floor() as usize).max(1);
        let ready: Vec<(&Node, usize)> = managed.into_iter().filter(|(n, _)| n.ready && !n.cordoned).collect();
        let daemonsets = daemonset_load(snapshot.workloads(), ready.len());
        let mut targets = Vec::with_capacity(ready.len());
        let mut zones = Vec::with_capacity(ready.len());
        let mut candidates = Vec::new();
        for (node, gi) in ready {
            let free = node.allocatable.saturating_sub(&node.requested);
            targets.push(Target { node: node.name.clone(), group: gi, free });
            zones.push(node.zone.as_str());
            let load = Load {
                pods: node.pod_count.saturating_sub(daemonsets.pods),
                requests: node.requested.saturating_sub(&daemonsets.requests),
            };
            if let Some(wait_seconds) = wanted(node, &load, &facts[gi], settings) {
                let target = targets.len() - 1;
                candidates.push(Candidate {
                    node,
                    target,
                    group: facts[gi].group,
                    load,
                    shapes: None,
                    wait_seconds,
                    shrinking: false,
                });
            }
        }
        let lightest = |a: &Candidate<'_>, b: &Candidate<'_>| {
            (a.load.pods, a.load.requests.cpu_millis, &a.node.name).cmp(&(
                b.load.pods,
                b.load.requests.cpu_millis,
                &b.node.name,
            ))
        };
        // The lightest MAX_CANDIDATES without sorting all the others (nodes of a cluster
        // often tie on load, and the tie goes to comparing names).
        if candidates.len() > MAX_CANDIDATES {
            candidates.select_nth_unstable_by(MAX_CANDIDATES - 1, lightest);
            candidates.truncate(MAX_CANDIDATES);
        }
        candidates.sort_by(lightest);
        // Fullest first, once: placements fill the fullest nodes and leave the emptier ones
        // as candidates.
        let (targets, position) = fullest_first(targets);
        let targets_len = targets.len();
        let mut by_group = vec![Vec::new(); facts.len()];
        for (at, target) in targets.iter().enumerate() {
            if let Some(positions) = by_group.get_mut(target.group) {
                positions.push(at);
            }
        }
        // One host call per candidate weighed, not per node that could have been one.
        for c in &mut candidates {
            c.shapes = movable(snapshot, c.node);
            c.target = position[c.target];
        }
        wait_for_shrinks(snapshot, &mut candidates, &mut state.followed, now, settings);
        let mut apart = KeptApart::new(snapshot);
        apart.count_if_needed(snapshot, &targets, candidates.iter().flat_map(|c| c.shapes.iter().flatten()));
        // A price that is not a number is never at most a ceiling: such a group is never
        // offered; nor is one whose launches failed lately.
        let failed_lately = |g: &NodeGroup| {
            let wait = settings.failed_group_wait_seconds * 1000;
            snapshot.launch_failure_of(&g.id).is_some_and(|f| f.age_millis(now) < wait)
        };
        let mut by_price: Vec<(f64, &NodeGroup)> = groups
            .values()
            .filter(|g| !failed_lately(g))
            .map(|g| (g.launch_price_per_hour(), *g))
            .filter(|(price, _)| !price.is_nan())
            .collect();
        by_price.sort_by(|a, b| a.0.total_cmp(&b.0));
        Plan {
            settings,
            state,
            now,
            indexed: facts.iter().map(|f| f.group).collect(),
            by_price,
            candidates,
            targets,
            by_group,
            everywhere: (0..targets_len).collect(),
            largest: largest_pod(snapshot.workloads()),
            daemonsets,
            budget: allowed.saturating_sub(in_flight),
            cooldowns: snapshot.group_cooldowns().iter().map(|c| (c.group.as_str(), c)).collect(),
            admitted: admitted::Admitted::default(),
            apart,
            zoned: zoned::Zoned::new(snapshot, zones, &position),
        }
    }

    /// Places `c`'s pods on the other nodes, taking the room (by its shapes when known, else
    /// by slots within its group, all or nothing). `c`'s own node has no room until
    /// [`Plan::restore`] gives the trial back.
    fn trial(&mut self, c: &Candidate<'_>) -> Trial {
        let own = c.target;
        let mine = std::mem::replace(&mut self.targets[own].free, Resources::ZERO);
        let (taken, left) = self.place_pods(c);
        Trial { own, mine, taken, left }
    }

    /// Places `c`'s pods on the nodes that have room now, taking it.
    fn place_pods(&mut self, c: &Candidate<'_>) -> (Taken, Vec<Left>) {
        let own = c.target;
        match &c.shapes {
            Some(shapes) => {
                let admitted = self.admitted.rows(&self.indexed, shapes);
                let (by_group, everywhere, zoned) = (&self.by_group, &self.everywhere, &self.zoned);
                place_shapes(shapes, &mut self.targets, &mut self.apart, |shape| {
                    zoned.within(
                        &shapes[shape],
                        &c.node.zone,
                        admitted::positions(by_group, admitted[shape], everywhere),
                    )
                })
            }
            None => match place(&c.load, &self.largest, self.targets[own].group, &mut self.targets) {
                Some(taken) => (taken, Vec::new()),
                None => (Taken::default(), vec![Left { shape: 0, count: c.load.pods }]),
            },
        }
    }

    /// Undoes a [`Plan::trial`].
    fn restore(&mut self, trial: Trial) {
        trial.taken.give_back(&mut self.targets, &mut self.apart);
        self.targets[trial.own].free = trial.mine;
    }

    /// True if `group` may lose a node now: the host's cooldowns let it shrink and it has not
    /// grown within `stabilise-seconds`.
    fn settled(&self, group: &str) -> bool {
        self.now.saturating_sub(self.state.groups.get(group).map_or(0, |g| g.grew_at))
            >= ms(self.settings.stabilise_seconds)
            && self.cooldowns_let_shrink(group, self.now)
    }

    /// True if the host's cooldowns let `group` shrink at `at`.
    fn cooldowns_let_shrink(&self, group: &str, at: u64) -> bool {
        self.cooldowns.get(group).is_none_or(|c| c.may_shrink(at))
    }

    /// The removals to propose, one decision per group, then the replacements.
    fn choose(mut self) -> Vec<Decision> {
        let mut since = BTreeMap::new();
        let mut chosen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unfit = Vec::new();
        // Pods of chosen nodes, by the target they are to move to: a target chosen in turn
        // takes them along.
        let mut received = received::Received::default();
        let candidates = std::mem::take(&mut self.candidates);
        for mut c in candidates {
            let group = c.group.id.as_str();
            if !received.take_along(&mut c) {
                let first = self.state.removable_since.get(&c.node.name).copied().unwrap_or(self.now);
                since.insert(c.node.name.clone(), first);
                continue;
            }
            let trial = self.trial(&c);
            if !trial.left.is_empty() {
                self.restore(trial);
                unfit.push(c);
                continue;
            }
            let first = self.state.removable_since.get(&c.node.name).copied().unwrap_or(self.now);
            since.insert(c.node.name.clone(), first);
            let removing = chosen.get(group).map_or(0, Vec::len) as u32;
            let room_above_min = c.group.desired_size.saturating_sub(c.group.min_size) > removing;
            let settled = self.settled(group);
            let wait = ms(c.wait_seconds).saturating_add(self.state.groups.get(group).map_or(0, |g| g.wait_ms));
            let due = self.now.saturating_sub(first) >= wait;
            let budgeted = c.load.pods > 0 || self.settings.count_empty_nodes;
            if !(due && settled && room_above_min && (self.budget > 0 || !budgeted)) {
                self.restore(trial);
                continue;
            }
            let spread = trial.taken.spread();
            received.record(&c, &trial.taken);
            if budgeted {
                self.budget -= 1;
            }
            chosen.entry(group.to_string()).or_default().push(c.node.name.clone());
            reasons.entry(group.to_string()).or_default().push(explain(&c, spread, &self.largest));
        }
        self.state.removable_since = since;
        for group in chosen.keys() {
            if let Some(g) = self.state.groups.get_mut(group) {
                g.removed_at = self.now;
            }
        }
        let mut decisions: Vec<Decision> = chosen
            .into_iter()
            .map(|(group, nodes)| {
                let why = reasons.remove(&group).unwrap_or_default().join("; ");
                Decision::new(Action::RemoveNodes { nodes }, format!("group {group}: {why}"))
            })
            .collect();
        if self.settings.replace && decisions.is_empty() {
            let after_cooldown = self.settings.replace_after_cooldown;
            let ready_at = self.now.saturating_add(ms(self.settings.replace_ready_within_seconds));
            unfit.retain(|c| !c.shrinking && (!after_cooldown || self.cooldowns_let_shrink(&c.group.id, ready_at)));
            decisions.extend(self.replacement(&unfit));
        }
        decisions
    }
}

/// Each managed group's facts, in the order of its index.
fn group_facts<'a>(
    snapshot: &'a dyn Snapshot,
    groups: &BTreeMap<&'a str, &'a NodeGroup>,
    state: &State,
) -> Vec<GroupFacts<'a>> {
    let held = held(snapshot, groups);
    let options: BTreeMap<&str, &GroupOptions> =
        snapshot.group_options().iter().map(|o| (o.group.as_str(), o)).collect();
    groups
        .values()
        .map(|&group| GroupFacts {
            group,
            held: held.contains(&group.id.as_str()),
            replacing: state.replacing.values().any(|r| r.group == group.id),
            options: options.get(group.id.as_str()).copied(),
        })
        .collect()
}

/// How long `node` must stay removable before it goes, if it may go at all.
fn wanted(node: &Node, load: &Load, facts: &GroupFacts<'_>, settings: &Settings) -> Option<u64> {
    // A group tuned for Cluster Autoscaler keeps its threshold: busier nodes stay.
    let tagged = facts.options;
    let used = match tagged.and_then(|o| o.ignore_daemonsets_utilization) {
        Some(true) => load.requests.utilisation_of(&node.allocatable),
        _ => node.utilisation(),
    };
    let under = tagged.and_then(|o| o.scale_down_utilization_threshold).is_none_or(|t| used < t);
    // An empty node in a group a replacement grows is the replacement, not spare.
    let awaited = load.pods == 0 && facts.replacing;
    let wanted = node.removal_blocker.is_none()
        && (settings.underutilised || load.pods == 0)
        && under
        && !awaited
        && !facts.held;
    wanted.then(|| tagged.and_then(|o| o.scale_down_unneeded_seconds).unwrap_or(settings.consolidate_after_seconds))
}

/// The targets fullest first (a stable order), and where each one went, by its index before.
fn fullest_first(targets: Vec<Target>) -> (Vec<Target>, Vec<usize>) {
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by_key(|&i| (targets[i].free.cpu_millis, targets[i].free.memory_bytes));
    let mut position = vec![0; targets.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    let mut slots: Vec<Option<Target>> = targets.into_iter().map(Some).collect();
    let sorted = order.iter().filter_map(|&old| slots[old].take()).collect();
    (sorted, position)
}

fn explain(c: &Candidate<'_>, spread: usize, largest: &Resources) -> String {
    if c.load.pods == 0 {
        return format!("{} is empty (DaemonSet pods only)", c.node.name);
    }
    if let Some(shapes) = &c.shapes {
        let pods: u32 = shapes.iter().map(|s| s.count).sum();
        return format!("{}'s {pods} pods fit on {spread} other node(s) (placed at their requests)", c.node.name);
    }
    format!(
        "{}'s {} pods fit on {spread} other node(s) even at {} each (a simulated placement)",
        c.node.name,
        c.load.pods,
        fit::slot(&c.load, largest)
    )
}

/// The DaemonSet pods every node surely runs: those of DaemonSets with at least one replica
/// per Ready node.
fn daemonset_load(workloads: &[Workload], ready_nodes: usize) -> Load {
    let overhead = ballast_sdk::daemonset_overhead(workloads, ready_nodes);
    Load { pods: overhead.pods, requests: overhead }
}

/// The largest request per resource among the pods that may run on EC2 nodes.
fn largest_pod(workloads: &[Workload]) -> Resources {
    workloads.iter().filter(|w| w.id.kind != WorkloadKind::DaemonSet && w.placement != Placement::Fargate).fold(
        Resources::ZERO,
        |acc, w| Resources {
            cpu_millis: acc.cpu_millis.max(w.requests_per_replica.cpu_millis),
            memory_bytes: acc.memory_bytes.max(w.requests_per_replica.memory_bytes),
            pods: 1,
            gpus: acc.gpus.max(w.requests_per_replica.gpus),
            ephemeral_storage_bytes: acc.ephemeral_storage_bytes.max(w.requests_per_replica.ephemeral_storage_bytes),
        },
    )
}

ballast_sdk::export_policy!(Consolidation);

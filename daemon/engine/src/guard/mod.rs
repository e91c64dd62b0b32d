//! Guardrails: from what plugins propose to what is safe to do.
//!
//! Plugins propose; the host disposes. Every proposal gets an outcome (accepted, changed or
//! refused) with the reasons, and the accepted parts become a [`Plan`]. Rules:
//!
//! - Several scale proposals for one group: the largest target wins (availability before
//!   cost); the others are recorded as superseded.
//! - Scale-up: not while the group backs off, not within the scale-up cooldown, at most
//!   `max-step-up` nodes per tick, never past `max-size`, nor past a cluster-wide `limits`
//!   (nodes, CPU, memory of the managed groups together; see [`limits`]).
//! - Scale-down: never below `min-size`; never by lowering desired capacity below the
//!   instances already running, because an Auto Scaling group would then terminate instances
//!   of its own choosing without draining them. Such a proposal is turned into the removal of
//!   the least utilised removable nodes.
//! - Node removal: not a node with a removal blocker (PDB, no controller, local storage and
//!   kube-system pods unless `skip-nodes-with-*` is off, safe-to-evict, scale-down-disabled,
//!   do-not-disrupt, too young, a pod nominated to run on it; an expendable pod is never
//!   one), not within the group's scale-down cooldowns, at most `max-step-down` per group
//!   per tick, within the disruption budget (which a node with nothing to evict does not
//!   use, unless `count-empty-nodes`), within the limit of the most restrictive disruption
//!   window open (which every node uses), and not while too many nodes are unready.
//! - Placement: never a Fargate-ineligible workload on Fargate, never on Fargate without a
//!   Fargate profile.

mod limits;

use std::collections::{BTreeMap, BTreeSet};

use ballast_sdk::{Action, NodeGroupKind, PlacementTarget, WorkloadRef};

use super::config::Guardrails;
use super::observe::{FARGATE_GROUP, GroupFacts, Observation};
use super::record::GuardOutcome;
use super::rule::{Rule, Why};
use super::state::EngineState;
use crate::duration::display as dur;
use crate::policies::Proposed;
use crate::window::{self, DisruptionReason, OpenWindow};

/// A refusal for one rule.
fn refused(rule: Rule, why: String) -> GuardOutcome {
    GuardOutcome::Refused { why: vec![Why::new(rule, why)] }
}

/// A scale target: as the plugin asked it (negative for a `scale-by` below zero), and as a
/// size.
#[derive(Clone, Copy)]
struct ScaleTarget {
    asked: i64,
    size: u32,
}

/// What passed the guardrails, ready to act on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Group -> new desired size.
    pub scales: BTreeMap<String, u32>,
    /// Nodes to cordon and drain, with their group, in order.
    pub removals: Vec<(String, String)>,
    pub placements: Vec<(WorkloadRef, PlacementTarget)>,
}

pub struct Guard<'a> {
    pub obs: &'a Observation,
    pub config: &'a Guardrails,
    pub state: &'a EngineState,
    pub now: u64,
}

/// The cluster-wide disruption budget for this tick: EC2 nodes, how many may be leaving, and
/// the most restrictive disruption window open.
#[derive(Default)]
pub(crate) struct Budget<'a> {
    nodes: usize,
    allowed: usize,
    window: Option<OpenWindow<'a>>,
}

impl<'a> Budget<'a> {
    /// The budget `config` gives the cluster `obs` shows for removals for `reason`, with the
    /// window holding them open at `now`.
    pub(crate) fn at(
        obs: &Observation,
        config: &'a super::config::DisruptionBudget,
        reason: DisruptionReason,
        now: u64,
    ) -> Self {
        let nodes = obs.snapshot.nodes.iter().filter(|n| n.group.as_deref() != Some(FARGATE_GROUP)).count();
        let window = window::most_restrictive(&config.windows, reason, now, nodes);
        Budget { nodes, allowed: config.allowed(nodes), window }
    }

    /// How many more nodes may start leaving, with `leaving` under way: the budget, or the
    /// open window's limit if lower.
    pub(crate) fn room(&self, leaving: usize) -> usize {
        let window = self.window.as_ref().map_or(usize::MAX, |w| w.allowed);
        self.allowed.min(window).saturating_sub(leaving)
    }
}

/// Running tallies while proposals are judged in order.
#[derive(Default)]
struct Tally<'a> {
    removed_in_group: BTreeMap<String, u32>,
    removing: BTreeSet<String>,
    removals: usize,
    budget: Budget<'a>,
    growing: BTreeSet<String>,
    /// The managed groups' size with the growth planned so far.
    cluster: limits::ClusterSize,
    placed: BTreeSet<WorkloadRef>,
}

impl Guard<'_> {
    /// Judges every proposal; outcomes are in the order of `proposals`.
    pub fn run(&self, proposals: &[Proposed]) -> (Plan, Vec<GuardOutcome>) {
        let mut plan = Plan::default();
        let mut outcomes: Vec<Option<GuardOutcome>> = vec![None; proposals.len()];
        let budget = Budget::at(self.obs, &self.config.disruption_budget, DisruptionReason::Policies, self.now);
        let mut tally = Tally { budget, cluster: self.cluster_size(), ..Tally::default() };

        // Scale proposals, per group: the largest target wins.
        let mut by_group: BTreeMap<&str, Vec<(usize, i64)>> = BTreeMap::new();
        for (i, p) in proposals.iter().enumerate() {
            let (group, target) = match &p.decision.action {
                Action::ScaleTo { group, size } => (group.as_str(), i64::from(*size)),
                Action::ScaleBy { group, delta } => {
                    let desired = self.obs.groups.get(group).map_or(0, |g| i64::from(g.desired));
                    (group.as_str(), desired + i64::from(*delta))
                }
                _ => continue,
            };
            by_group.entry(group).or_default().push((i, target));
        }
        // Scale-ups first, so that removals in a group that is growing this tick are refused.
        let mut ordered: Vec<(&str, Vec<(usize, i64)>)> = by_group.into_iter().collect();
        ordered.sort_by_key(|(group, entries)| {
            let desired = self.obs.groups.get(*group).map_or(0, |g| g.desired);
            (entries.iter().map(|e| e.1).max().unwrap_or(0) <= i64::from(desired), group.to_string())
        });
        for (group, entries) in ordered {
            let winner = entries.iter().max_by_key(|(i, t)| (*t, std::cmp::Reverse(*i))).copied();
            let Some((winner_index, target)) = winner else { continue };
            let outcome = self.scale(group, target, &mut plan, &mut tally);
            for (i, t) in entries {
                outcomes[i] = Some(if t == target {
                    outcome.clone()
                } else {
                    GuardOutcome::Refused {
                        why: vec![Why::new(
                            Rule::Superseded,
                            format!(
                                "superseded by {}'s larger target of {target} for group {group}",
                                proposals[winner_index].plugin
                            ),
                        )],
                    }
                });
            }
        }

        for (i, p) in proposals.iter().enumerate() {
            match &p.decision.action {
                Action::RemoveNodes { nodes } => outcomes[i] = Some(self.remove(nodes, &mut plan, &mut tally)),
                Action::Place { workload, target } => {
                    outcomes[i] = Some(self.place(workload, target, &mut plan, &mut tally))
                }
                _ => {}
            }
        }
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(GuardOutcome::Refused { why: vec![Why::new(Rule::UnknownGroup, "not judged")] }))
            .collect();
        (plan, outcomes)
    }

    /// `asked` is the target as the plugin meant it, before any clamping (a `scale-by` of
    /// `i32::MIN` asks for a negative size, and the reason says so).
    fn scale(&self, group: &str, asked: i64, plan: &mut Plan, tally: &mut Tally) -> GuardOutcome {
        let Some(facts) = self.obs.groups.get(group) else {
            let known: Vec<&str> = self.obs.groups.keys().map(String::as_str).collect();
            return refused(Rule::UnknownGroup, format!("no node group `{group}`; known: {}", known.join(", ")));
        };
        if facts.kind == NodeGroupKind::Fargate {
            return refused(
                Rule::FargateHasNoSize,
                format!("`{group}` is Fargate: its capacity follows pods and has no size to set"),
            );
        }
        if asked == i64::from(facts.desired) {
            return GuardOutcome::Accepted;
        }
        let target = ScaleTarget { asked, size: u32::try_from(asked.max(0)).unwrap_or(u32::MAX) };
        let mut why = Vec::new();
        let size = if asked > i64::from(facts.desired) {
            let grown = self.grown_size(group, facts, target, &mut why);
            match grown.and_then(|size| self.within_limits(group, facts, size, &tally.cluster, &mut why)) {
                Ok(size) => {
                    tally.growing.insert(group.to_string());
                    if !self.config.limits.is_unset() {
                        tally.cluster.add(size - facts.desired, &self.node_capacity(group));
                    }
                    size
                }
                Err(refusal) => return refusal,
            }
        } else {
            match self.shrunk_size(group, facts, target, &mut why) {
                Ok(size) if size < facts.instances => return self.convert_to_removals(group, size, why, plan, tally),
                Ok(size) => size,
                Err(refusal) => return refusal,
            }
        };
        plan.scales.insert(group.to_string(), size);
        if why.is_empty() {
            GuardOutcome::Accepted
        } else {
            GuardOutcome::Changed { applied: vec![Action::ScaleTo { group: group.to_string(), size }], why }
        }
    }

    /// The size a growth of `group` comes to within its back-off, cooldown, max-size and
    /// step limit (each limit that applied added to `why`), or its refusal.
    fn grown_size(
        &self,
        group: &str,
        facts: &GroupFacts,
        target: ScaleTarget,
        why: &mut Vec<Why>,
    ) -> Result<u32, GuardOutcome> {
        let state = self.state.groups.get(group);
        if let Some(backoff) = state.and_then(|s| s.backing_off(self.now)) {
            return Err(refused(
                Rule::BackingOff,
                format!(
                    "group {group} is backing off for another {} after a provisioning failure: {}",
                    dur(std::time::Duration::from_millis(backoff.until - self.now)),
                    backoff.reason
                ),
            ));
        }
        let cooldown = self.config.cooldown.after_scale_up.as_millis() as u64;
        if let Some(last) = state.and_then(|s| s.last_scale_up)
            && self.now < last + cooldown
        {
            return Err(refused(
                Rule::ScaleUpCooldown,
                format!(
                    "group {group} grew {} ago; the scale-up cooldown is {}",
                    dur(std::time::Duration::from_millis(self.now - last)),
                    dur(self.config.cooldown.after_scale_up)
                ),
            ));
        }
        if facts.desired >= facts.max {
            return Err(refused(Rule::AtMaxSize, format!("group {group} is already at its max-size of {}", facts.max)));
        }
        let mut size = target.size;
        if size > facts.max {
            let message = format!("clamped to the group's max-size of {} (asked {})", facts.max, target.asked);
            why.push(Why::new(Rule::ClampedToMaxSize, message));
            size = facts.max;
        }
        let step = facts.desired.saturating_add(self.config.max_step_up);
        if size > step {
            let message = format!("limited to +{} nodes per tick (max-step-up)", self.config.max_step_up);
            why.push(Why::new(Rule::MaxStepUp, message));
            size = step;
        }
        Ok(size)
    }

    /// The size a shrink of `group` comes to within its min-size (added to `why` when it
    /// applied), or its refusal: at min-size, or a scale-down the cooldowns or an open
    /// disruption window hold.
    fn shrunk_size(
        &self,
        group: &str,
        facts: &GroupFacts,
        target: ScaleTarget,
        why: &mut Vec<Why>,
    ) -> Result<u32, GuardOutcome> {
        if facts.desired <= facts.min {
            return Err(refused(Rule::AtMinSize, format!("group {group} is already at its min-size of {}", facts.min)));
        }
        if let Some(refusal) = self.scale_down_refusal(group) {
            return Err(GuardOutcome::Refused { why: vec![refusal] });
        }
        if target.size < facts.min {
            let message = format!("clamped to the group's min-size of {} (asked {})", facts.min, target.asked);
            why.push(Why::new(Rule::ClampedToMinSize, message));
            return Ok(facts.min);
        }
        Ok(target.size)
    }

    /// A scale-down below the running instances, done safely: drain and terminate the least
    /// utilised removable nodes of the group.
    fn convert_to_removals(
        &self,
        group: &str,
        size: u32,
        mut why: Vec<Why>,
        plan: &mut Plan,
        tally: &mut Tally,
    ) -> GuardOutcome {
        let facts = &self.obs.groups[group];
        let excess = facts.instances - size;
        let mut candidates: Vec<&ballast_sdk::Node> =
            self.obs.snapshot.nodes.iter().filter(|n| n.group.as_deref() == Some(group)).collect();
        candidates.sort_by(|a, b| a.utilisation().total_cmp(&b.utilisation()).then(a.name.cmp(&b.name)));
        let mut chosen = Vec::new();
        let mut refusals = Vec::new();
        for node in candidates {
            if chosen.len() as u32 == excess {
                break;
            }
            match self.removal_refusal(&node.name, tally) {
                None => {
                    self.accept_removal(&node.name, group, plan, tally);
                    chosen.push(node.name.clone());
                }
                Some(r) => refusals.push(r),
            }
        }
        if chosen.is_empty() {
            let mut why = vec![Why::new(Rule::NoRemovableNode, format!("no node of group {group} can be removed now"))];
            why.extend(refusals.into_iter().take(5));
            return GuardOutcome::Refused { why };
        }
        let mut applied = Vec::new();
        if facts.desired > facts.instances {
            plan.scales.insert(group.to_string(), facts.instances);
            applied.push(Action::ScaleTo { group: group.to_string(), size: facts.instances });
        }
        why.push(Why::new(
            Rule::ConvertedToRemovals,
            format!(
                "lowering desired capacity below the {} running instances would let the Auto Scaling group \
                 terminate instances of its choosing without draining them; draining the {} least utilised \
                 removable node(s) instead",
                facts.instances,
                chosen.len()
            ),
        ));
        if (chosen.len() as u32) < excess {
            why.push(Why::new(
                Rule::PartialRemoval,
                format!("only {} of the {excess} node(s) asked for can be removed now", chosen.len()),
            ));
            why.extend(refusals.into_iter().take(3));
        }
        applied.push(Action::RemoveNodes { nodes: chosen });
        GuardOutcome::Changed { applied, why }
    }

    fn remove(&self, nodes: &[String], plan: &mut Plan, tally: &mut Tally) -> GuardOutcome {
        let mut accepted = Vec::new();
        let mut why = Vec::new();
        for name in nodes {
            match self.removal_refusal(name, tally) {
                None => {
                    let group = self.obs.nodes.get(name.as_str()).and_then(|f| f.group.clone()).unwrap_or_default();
                    self.accept_removal(name, &group, plan, tally);
                    accepted.push(name.clone());
                }
                Some(reason) => why.push(reason),
            }
        }
        if accepted.is_empty() {
            GuardOutcome::Refused { why }
        } else if why.is_empty() {
            GuardOutcome::Accepted
        } else {
            GuardOutcome::Changed { applied: vec![Action::RemoveNodes { nodes: accepted }], why }
        }
    }

    fn accept_removal(&self, name: &str, group: &str, plan: &mut Plan, tally: &mut Tally) {
        *tally.removed_in_group.entry(group.to_string()).or_default() += 1;
        tally.removing.insert(name.to_string());
        if self.uses_budget(name) {
            tally.removals += 1;
        }
        plan.removals.push((name.to_string(), group.to_string()));
    }

    /// Whether removing `name` counts against the disruption budget: it has a pod a drain
    /// would evict, or the budget counts empty nodes too.
    fn uses_budget(&self, name: &str) -> bool {
        self.config.disruption_budget.count_empty_nodes
            || self.obs.node(name).is_none_or(|(_, facts)| facts.pods.must_move_count() > 0)
    }

    /// Why this node may not start draining now, if it may not.
    fn removal_refusal(&self, name: &str, tally: &Tally) -> Option<Why> {
        let refuse = |rule: Rule, why: String| Some(Why::new(rule, format!("node {name}: {why}")));
        let Some((node, facts)) = self.obs.node(name) else {
            return refuse(Rule::UnknownNode, "not a node of the cluster".into());
        };
        if tally.removing.contains(name) || self.state.drains.contains_key(name) {
            return refuse(Rule::AlreadyBeingRemoved, "already being removed".into());
        }
        // Before the node's blockers: a window with no room left is one of them.
        if let Some(window) = &tally.budget.window {
            let leaving = self.state.drains.len() + tally.removing.len();
            if leaving >= window.allowed {
                return refuse(Rule::DisruptionWindow, window.describe(leaving));
            }
        }
        if let Some(blocker) = &node.removal_blocker {
            return refuse(Rule::RemovalBlocked, blocker.clone());
        }
        let (Some(group), Some(instance)) = (&facts.group, &facts.instance_id) else {
            return refuse(Rule::NoInstance, "no Auto Scaling group instance behind it".into());
        };
        if !facts.listed {
            return refuse(
                Rule::NoInstance,
                format!("its instance {instance} is not listed by group {group} (terminated, or not yet described)"),
            );
        }
        let Some(group_facts) = self.obs.groups.get(group) else {
            return refuse(Rule::GroupNotManaged, format!("group {group} is not managed"));
        };
        if tally.growing.contains(group) {
            return refuse(Rule::GroupGrowing, format!("group {group} is growing this tick"));
        }
        if let Some(why) = self.scale_down_refusal(group) {
            return refuse(why.rule, why.message);
        }
        let leaving = self.state.draining_in(group) + tally.removed_in_group.get(group).copied().unwrap_or(0);
        if group_facts.desired.saturating_sub(leaving) <= group_facts.min {
            return refuse(
                Rule::BelowMinSize,
                format!(
                    "group {group} would go below its min-size of {} ({} desired, {leaving} already leaving)",
                    group_facts.min, group_facts.desired
                ),
            );
        }
        if tally.removed_in_group.get(group).copied().unwrap_or(0) >= self.config.max_step_down {
            return refuse(
                Rule::MaxStepDown,
                format!("group {group} already loses {} node(s) this tick (max-step-down)", self.config.max_step_down),
            );
        }
        let (total, budget) = (tally.budget.nodes, tally.budget.allowed);
        let in_flight = self.state.drains.len() + tally.removals;
        if in_flight >= budget && self.uses_budget(name) {
            return refuse(
                Rule::DisruptionBudget,
                format!(
                    "disruption budget spent: {in_flight} node(s) already being removed, {budget} allowed \
                 ({}% of {total}, at least {})",
                    self.config.disruption_budget.percent, self.config.disruption_budget.min
                ),
            );
        }
        None
    }

    /// Cluster-wide and per-group reasons not to shrink a group now.
    fn scale_down_refusal(&self, group: &str) -> Option<Why> {
        let (unready, total) = self.obs.unready;
        if unready > 3 && unready as f64 > total as f64 * self.config.max_unready_fraction {
            return Some(Why::new(
                Rule::UnreadyBrake,
                format!(
                    "{unready} of {total} nodes are unready (over {:.0}%): no scale-down until the cluster recovers",
                    self.config.max_unready_fraction * 100.0
                ),
            ));
        }
        let state = self.state.groups.get(group)?;
        let cooldown = &self.config.cooldown;
        if let Some(last) = state.last_scale_up
            && self.now < last + cooldown.scale_down_after_scale_up.as_millis() as u64
        {
            return Some(Why::new(
                Rule::ScaleDownAfterScaleUp,
                format!(
                    "group {group} grew {} ago; scale-down waits {} after a scale-up",
                    dur(std::time::Duration::from_millis(self.now - last)),
                    dur(cooldown.scale_down_after_scale_up)
                ),
            ));
        }
        if let Some(last) = state.last_scale_down
            && self.now < last + cooldown.after_scale_down.as_millis() as u64
        {
            return Some(Why::new(
                Rule::ScaleDownCooldown,
                format!(
                    "group {group} shrank {} ago; the scale-down cooldown is {}",
                    dur(std::time::Duration::from_millis(self.now - last)),
                    dur(cooldown.after_scale_down)
                ),
            ));
        }
        None
    }

    fn place(
        &self,
        workload: &WorkloadRef,
        target: &PlacementTarget,
        plan: &mut Plan,
        tally: &mut Tally,
    ) -> GuardOutcome {
        let Some(found) = self.obs.workload(workload) else {
            return refused(Rule::UnknownWorkload, format!("no workload {workload}"));
        };
        if tally.placed.contains(workload) {
            return refused(
                Rule::AlreadyPlaced,
                format!("{workload} was already placed this tick by an earlier decision"),
            );
        }
        match target {
            PlacementTarget::Fargate => {
                if !self.obs.groups.contains_key(FARGATE_GROUP) {
                    return refused(Rule::NoFargateProfile, "the cluster has no Fargate profile configured".into());
                }
                if let Some(blocker) = &found.fargate_blocker {
                    return refused(Rule::FargateIneligible, format!("{workload} cannot run on Fargate: {blocker}"));
                }
            }
            PlacementTarget::Ec2(Some(group)) => match self.obs.groups.get(group) {
                None => return refused(Rule::UnknownGroup, format!("no node group `{group}`")),
                Some(g) if g.kind == NodeGroupKind::Fargate => {
                    return refused(Rule::NotEc2, format!("`{group}` is Fargate, not EC2; use the fargate target"));
                }
                Some(_) => {}
            },
            PlacementTarget::Ec2(None) => {}
        }
        if Observation::is_placed(found, target) {
            return GuardOutcome::Accepted;
        }
        let cooldown = self.config.cooldown.placement;
        if let Some(held) = self.state.placement_cooldown(workload, self.now, cooldown) {
            return refused(
                Rule::PlacementCooldown,
                format!(
                    "{workload} was moved {} ago; placements hold for {} (cooldown.placement)",
                    dur(std::time::Duration::from_millis(self.now - held.placed_at_millis)),
                    dur(cooldown)
                ),
            );
        }
        tally.placed.insert(workload.clone());
        plan.placements.push((workload.clone(), target.clone()));
        GuardOutcome::Accepted
    }
}

#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;

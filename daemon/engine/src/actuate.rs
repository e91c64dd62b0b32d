//! Acting on a plan, and carrying drains across ticks.
//!
//! A removal is several steps, one tick apart at most: cordon; evict every pod but DaemonSet
//! and mirror pods through the Eviction API, critical ones once the rest are gone (a
//! PodDisruptionBudget may refuse, and the next tick tries again); once the node holds no
//! pod it must see gone, ask its DaemonSet pods to leave (see `evict_daemons`) and
//! terminate its instance with a decrement, so the Auto Scaling group does not replace it.
//! A drain that outlives `drain-timeout` is abandoned and the node uncordoned.

use std::collections::BTreeMap;

use ballast_sdk::{Action, WorkloadRef};

use super::announce;
use super::failure::{Disposition, Step, disposition};
use super::observe::{NodeFacts, Observation};
use super::policies::Policies;
use super::ports::{Capacity, Cluster, ClusterView, Eviction, InterruptionCause, RemovalMark};
use super::record::{ActionResult, Record, RemovalOutcome, RemovalRecord};
use super::state::{Drain, EvictionHold};
use super::{Engine, guard::Plan};

/// Why an action was not taken: leadership went between the start of the tick and the action.
const STOOD_DOWN: &str = "not applied: this replica stopped leading";

/// What each part of a plan did.
#[derive(Debug, Default)]
pub struct Results {
    scales: BTreeMap<String, Result<(), Disposition>>,
    removals: BTreeMap<String, Result<(), Disposition>>,
    placements: BTreeMap<WorkloadRef, Result<(), Disposition>>,
}

impl Results {
    /// The result of a decision from the results of the actions it was turned into.
    pub fn for_actions(&self, actions: &[Action]) -> ActionResult {
        let mut errors: Vec<ActionResult> = Vec::new();
        let mut started = false;
        let mut done = false;
        for action in actions {
            let result = match action {
                Action::ScaleTo { group, .. } | Action::ScaleBy { group, .. } => self.scales.get(group),
                Action::RemoveNodes { nodes } => {
                    for node in nodes {
                        match self.removals.get(node) {
                            Some(Ok(())) => started = true,
                            Some(Err(e)) => errors.extend(e.result()),
                            None => {}
                        }
                    }
                    continue;
                }
                Action::Place { workload, .. } => self.placements.get(workload),
            };
            match result {
                Some(Ok(())) => done = true,
                Some(Err(e)) => match e.result() {
                    Some(failed) => errors.push(failed),
                    None => done = true,
                },
                None => {}
            }
        }
        if let Some(worst) = errors.iter().filter_map(ActionResult::failure_kind).max() {
            let error = errors.iter().filter_map(ActionResult::error).collect::<Vec<_>>().join("; ");
            ActionResult::Failed { error, kind: worst }
        } else if started {
            ActionResult::Started
        } else if done {
            ActionResult::Done
        } else {
            ActionResult::Unchanged
        }
    }
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    pub(super) async fn actuate(&mut self, plan: &Plan, obs: &Observation, now: u64, tick: u64) -> Results {
        let mut results = Results::default();
        for (group, &size) in &plan.scales {
            if !self.may_act() {
                results.scales.insert(group.clone(), Err(Disposition::Failed(STOOD_DOWN.into())));
                continue;
            }
            let before = obs.groups.get(group).map_or(0, |g| g.desired);
            let result = self.capacity.set_desired_size(group, size).await.map_err(|e| self.failed(Step::SetSize, &e));
            if result.is_ok() {
                let state = self.state.group(group);
                if size > before {
                    state.last_scale_up = Some(now);
                    state.waiting_since.get_or_insert(now);
                } else {
                    state.last_scale_down = Some(now);
                }
                tracing::info!(%group, from = before, to = size, "desired size set");
            } else if let Err(error) = &result {
                tracing::warn!(%group, %error, "cannot set desired size");
            }
            results.scales.insert(group.clone(), result);
        }
        for (node, group) in &plan.removals {
            if !self.may_act() {
                results.removals.insert(node.clone(), Err(Disposition::Failed(STOOD_DOWN.into())));
                continue;
            }
            let facts = obs.nodes.get(node.as_str());
            let Some(instance_id) = facts.and_then(|f| f.instance_id.clone()) else {
                results
                    .removals
                    .insert(node.clone(), Err(Disposition::Failed(format!("node {node} has no instance id"))));
                continue;
            };
            let drain = Drain {
                group: group.clone(),
                instance_id,
                started_at: now,
                started_tick: tick,
                evicted: 0,
                interrupted: false,
                hold: None,
                released_by: None,
                cause: None,
                occupied: facts.is_some_and(|f| f.pods.must_move_count() > 0),
                daemons_asked: false,
            };
            let result = self.begin_drain(node, drain).await.map_err(|e| self.failed(Step::Mark, &e));
            if result.is_ok() {
                self.state.group(group).last_scale_down = Some(now);
                tracing::info!(%node, %group, "cordoned; draining");
            }
            results.removals.insert(node.clone(), result);
        }
        for (workload, target) in &plan.placements {
            if !self.may_act() {
                results.placements.insert(workload.clone(), Err(Disposition::Failed(STOOD_DOWN.into())));
                continue;
            }
            let result = self.cluster.place(workload, target).await.map_err(|e| self.failed(Step::Place, &e));
            if result.is_ok() {
                self.state.placed_at.insert(workload.clone(), now);
            }
            results.placements.insert(workload.clone(), result);
        }
        results
    }

    /// Marks `node` for removal (cordon, taint, the annotation a restart or a new leader
    /// adopts) and, once that is written, carries `drain` from tick to tick.
    pub(super) async fn begin_drain(&mut self, node: &str, drain: Drain) -> super::ports::AdapterResult<()> {
        self.cluster.mark_for_removal(node, &self.mark_of(&drain)).await?;
        self.state.drains.insert(node.to_string(), drain);
        Ok(())
    }

    /// The removal mark that lets a restarted replica or a new leader carry `drain` on.
    pub(super) fn mark_of(&self, drain: &Drain) -> RemovalMark {
        RemovalMark {
            owner: self.identity.clone(),
            started_at_millis: drain.started_at,
            group: drain.group.clone(),
            instance_id: drain.instance_id.clone(),
            tick: drain.started_tick,
            interrupted: drain.interrupted,
            hold_until_millis: drain.hold.as_ref().map(|h| h.until_millis),
            released_by: drain.released_by.clone(),
            cause: drain.cause.map(str::to_string),
            occupied: drain.occupied,
        }
    }

    /// Classifies a failed call (see [`super::failure`]) and counts throttling.
    fn failed(&mut self, step: Step, error: &super::ports::AdapterError) -> Disposition {
        let disposition = disposition(step, error);
        if matches!(disposition, Disposition::Retry(_)) {
            self.throttled += 1;
        }
        disposition
    }

    /// Takes over removals marked on nodes that this engine is not draining: begun by a
    /// replica that died or lost the Lease, or by this one before a restart; and the
    /// replacement claims written on nodes (see [`Cluster::claim_replacement`]). Only while
    /// acting (leading, enforcing); the drain then continues, or is abandoned and the node
    /// cleared once `drain-timeout` has passed since the mark was written.
    pub(super) async fn adopt_marked(&mut self, view: &ClusterView, now: u64, tick: u64) {
        if !self.state.removed.is_empty() {
            let present: std::collections::HashSet<&str> = view.nodes.iter().map(|n| &*n.name).collect();
            self.state.removed.retain(|n| present.contains(n.as_str()));
        }
        for node in &view.nodes {
            // A node that released a spot drain's hold replaces that node, gone or not.
            if node.replaces.is_some() && !self.state.replacements.contains(&*node.name) {
                self.state.replacements.insert(node.name.to_string());
            }
            let Some(mark) = &node.removal_mark else { continue };
            if self.state.drains.contains_key(&*node.name) || self.state.removed.contains(&*node.name) {
                continue;
            }
            if mark.tick == 0 && mark.started_at_millis == 0 {
                // A taint without a readable record of who began what: nothing to carry on.
                match self.cluster.clear_removal(&node.name).await {
                    Ok(()) => tracing::warn!(node = %node.name, "cleared an unreadable removal mark and uncordoned"),
                    Err(error) => tracing::warn!(node = %node.name, %error, "cannot clear an unreadable removal mark"),
                }
                continue;
            }
            let instance_id = node.instance_id.clone().unwrap_or_else(|| mark.instance_id.clone());
            let group =
                if mark.group.is_empty() { node.group_label.clone().unwrap_or_default() } else { mark.group.clone() };
            self.state.drains.insert(
                node.name.to_string(),
                Drain {
                    group: group.clone(),
                    instance_id,
                    started_at: mark.started_at_millis,
                    started_tick: mark.tick,
                    evicted: 0,
                    interrupted: mark.interrupted,
                    hold: mark.hold_until_millis.map(|until_millis| EvictionHold { until_millis }),
                    released_by: mark.released_by.clone(),
                    cause: mark.cause.as_deref().and_then(|cause| known_cause(&node.name, cause)),
                    occupied: mark.occupied,
                    daemons_asked: false,
                },
            );
            // The node that released this drain's hold replaces it: it releases no other.
            self.state.replacements.extend(mark.released_by.clone());
            let state = self.state.group(&group);
            state.last_scale_down = state.last_scale_down.max(Some(mark.started_at_millis));
            let reason = format!(
                "adopting the removal of node {} that {} began {} ago (tick {}): it is carried on, or abandoned and \
                 the node uncordoned once drain-timeout has passed",
                node.name,
                mark.owner,
                crate::duration::display(std::time::Duration::from_millis(now.saturating_sub(mark.started_at_millis))),
                mark.tick
            );
            tracing::info!(node = %node.name, owner = %mark.owner, "adopting a removal in progress");
            self.recorder.record(super::record::Record::Decision(super::record::DecisionRecord {
                tick,
                at_millis: now,
                plugin: super::HOST.to_string(),
                proposed: Action::RemoveNodes { nodes: vec![node.name.to_string()] },
                reason,
                guard: super::record::GuardOutcome::Accepted,
                result: ActionResult::Started,
                repeated: None,
            }));
        }
    }

    /// Moves every drain one step: evict what is left, terminate what is empty, abandon what
    /// took too long.
    pub(super) async fn advance_drains(&mut self, obs: &Observation, now: u64, tick: u64) {
        for node in self.release_held_evictions(obs, now) {
            self.note_release(&node).await;
        }
        let nodes: Vec<String> = self.state.drains.keys().cloned().collect();
        for node in nodes {
            if !self.may_act() {
                return;
            }
            let Some(drain) = self.state.drains.get(&node).cloned() else { continue };
            if let Some(outcome) = self.advance_drain(&node, &drain, obs, now).await {
                self.end_drain(&node, &drain, outcome, now, tick).await;
            }
        }
    }

    /// One step of one drain; its outcome once it has ended.
    async fn advance_drain(
        &mut self,
        node: &str,
        drain: &Drain,
        obs: &Observation,
        now: u64,
    ) -> Option<RemovalOutcome> {
        let timed_out = now.saturating_sub(drain.started_at) >= self.config.guardrails.drain_timeout.as_millis() as u64;
        match obs.nodes.get(node) {
            None if drain.interrupted => {
                self.undo_replacement(obs, drain).await;
                Some(RemovalOutcome::Completed { evicted: drain.evicted })
            }
            None => Some(RemovalOutcome::Completed { evicted: drain.evicted }),
            Some(facts) if facts.pods.must_move_count() == 0 => {
                self.evict_daemons(node, drain, facts).await;
                self.terminate_drained(node, drain, timed_out).await
            }
            Some(facts) if timed_out => self.abandon_drain(node, facts.pods.must_move_count()).await,
            Some(_) if drain.hold.is_some() => None,
            Some(facts) => {
                let evicted = self.evict_all(node, facts).await;
                if let Some(d) = self.state.drains.get_mut(node) {
                    d.evicted += evicted;
                }
                None
            }
        }
    }

    /// Terminates a drained node's instance with a decrement of its group: completed once
    /// done (or found done), abandoned when it keeps failing past the drain timeout.
    async fn terminate_drained(&mut self, node: &str, drain: &Drain, timed_out: bool) -> Option<RemovalOutcome> {
        let terminated = self.capacity.terminate_instance(&drain.group, &drain.instance_id).await;
        match terminated.map_err(|e| self.failed(Step::Terminate, &e)) {
            Ok(()) | Err(Disposition::AlreadyDone) => Some(RemovalOutcome::Completed { evicted: drain.evicted }),
            Err(Disposition::Retry(error)) => {
                tracing::info!(%node, %error, "termination throttled; retried next tick");
                None
            }
            Err(error) if timed_out => Some(RemovalOutcome::Abandoned { why: format!("cannot terminate: {error}") }),
            Err(error) => {
                tracing::warn!(%node, %error, "cannot terminate the drained node's instance; will retry");
                None
            }
        }
    }

    /// Gives up a drain past its timeout with `left` pods still on the node: uncordoned and
    /// its mark cleared, or left marked (and nothing ended) when that fails, so the next tick
    /// (or the next leader) tries again.
    async fn abandon_drain(&mut self, node: &str, left: usize) -> Option<RemovalOutcome> {
        let cleared = self.cluster.clear_removal(node).await;
        match cleared.map_err(|e| self.failed(Step::Clear, &e)) {
            Ok(()) | Err(Disposition::AlreadyDone) => {}
            Err(error) => {
                tracing::warn!(%node, %error, "cannot uncordon an abandoned drain; will retry");
                return None;
            }
        }
        let timeout = crate::duration::display(self.config.guardrails.drain_timeout);
        Some(RemovalOutcome::Abandoned { why: format!("{left} pod(s) still on the node after {timeout}") })
    }

    /// Asks the Eviction API to evict each pod on the node a drain evicts now (critical pods
    /// last: [`super::pods::NodePods::to_evict_now`]); how many it evicted.
    /// A refusal (a PodDisruptionBudget) or a failure is asked again next tick.
    async fn evict_all(&mut self, node: &str, facts: &NodeFacts) -> u32 {
        let mut evicted = 0;
        for (namespace, pod) in facts.pods.to_evict_now() {
            match self.cluster.evict(namespace, pod).await {
                Ok(Eviction::Evicted) => {
                    evicted += 1;
                    self.cluster.announce(announce::evicted(namespace, pod, node)).await;
                }
                Ok(Eviction::Gone) => {}
                Ok(Eviction::Blocked { reason }) => {
                    tracing::debug!(%node, %namespace, %pod, %reason, "eviction refused; will retry")
                }
                Err(error) => match self.failed(Step::Evict, &error) {
                    Disposition::AlreadyDone => {}
                    other => {
                        tracing::warn!(%node, %namespace, %pod, error = %other, "eviction failed; retried next tick")
                    }
                },
            }
        }
        evicted
    }

    /// Asks the node's DaemonSet pods to leave before its instance goes, so agents such as
    /// log shippers stop gracefully: once a drain, best effort and not waited for, as Cluster
    /// Autoscaler does. On a node that had pods to move unless
    /// `daemonset-eviction-for-occupied-nodes` is off, on one that had none only with
    /// `daemonset-eviction-for-empty-nodes`; a pod's `enable-ds-eviction` annotation decides
    /// for itself.
    async fn evict_daemons(&mut self, node: &str, drain: &Drain, facts: &NodeFacts) {
        if drain.daemons_asked {
            return;
        }
        let rules = &self.config.guardrails;
        let by_default = match drain.occupied {
            true => rules.daemonset_eviction_for_occupied_nodes,
            false => rules.daemonset_eviction_for_empty_nodes,
        };
        for (namespace, pod) in facts.pods.daemon_pods_to_evict(by_default) {
            match self.cluster.evict(namespace, pod).await {
                Ok(answer) => tracing::debug!(%node, %namespace, %pod, ?answer, "DaemonSet pod asked to leave"),
                Err(error) => {
                    tracing::debug!(%node, %namespace, %pod, %error, "DaemonSet pod not evicted; the node goes anyway")
                }
            }
        }
        if let Some(d) = self.state.drains.get_mut(node) {
            d.daemons_asked = true;
        }
    }

    /// A drain has ended: forgotten (a completed node remembered as removed), announced on
    /// the node and recorded.
    async fn end_drain(&mut self, node: &str, drain: &Drain, outcome: RemovalOutcome, now: u64, tick: u64) {
        self.state.drains.remove(node);
        if matches!(outcome, RemovalOutcome::Completed { .. }) {
            self.state.removed.insert(node.to_string());
        }
        self.cluster.announce(announce::removal(node, &drain.group, &outcome)).await;
        self.recorder.record(Record::Removal(RemovalRecord {
            tick,
            at_millis: now,
            node: node.to_string(),
            group: drain.group.clone(),
            started_tick: drain.started_tick,
            outcome,
            cause: drain.cause.map(str::to_string),
        }));
    }

    /// An interrupted instance died before its drain could terminate it with a decrement: the
    /// group, raised by one for the replacement, would otherwise replace the dead instance
    /// too. Lowers it by one.
    async fn undo_replacement(&mut self, obs: &Observation, drain: &super::state::Drain) {
        let Some(desired) = obs.groups.get(&drain.group).map(|g| g.desired) else { return };
        if let Err(error) = self.capacity.set_desired_size(&drain.group, desired.saturating_sub(1)).await {
            tracing::warn!(group = %drain.group, %error, "cannot lower the group after an interrupted node died");
        }
    }
}

/// The removal reason a mark names, if this version knows it; one written by a later
/// version is logged, naming it, and the removal is counted by what it evicts.
fn known_cause(node: &str, cause: &str) -> Option<&'static str> {
    let known = InterruptionCause::removal_reason_named(cause);
    if known.is_none() {
        tracing::warn!(
            node,
            cause,
            "the removal mark's cause is not one this version knows; counted as empty or underutilized"
        );
    }
    known
}

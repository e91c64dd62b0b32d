//! Spot interruptions: EC2 gives two minutes' warning before it reclaims a spot instance.
//! An AWS Health scheduled change (an instance retirement, a system reboot) gives days; both
//! are handled alike. The engine cordons the node and starts its replacement at once, as
//! Karpenter does, instead of waiting for the pods to go pending after the instance dies.
//! Unlike Karpenter, it evicts the pods only once the replacement is Ready (or when the
//! reclaim is `spot-eviction-margin` away): a node boots in about a minute, well inside the
//! notice, so the pods move once, straight to a node that can take them, instead of waiting
//! pending.

use std::collections::BTreeMap;
use std::time::Duration;

use ballast_sdk::Action;

use super::announce;
use super::observe::Observation;
use super::policies::Policies;
use super::ports::{Capacity, Cluster, Interruption, InterruptionCause};
use super::record::{ActionResult, DecisionRecord, GuardOutcome, Record};
use super::state::{Drain, EvictionHold};
use super::{Engine, HOST};

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Acts on the interruption warnings the capacity side reports.
    ///
    /// # Guarantees
    ///
    /// Each warned node that Ballast manages and is not already draining is cordoned and
    /// drained (marked for removal, so a restart or a new leader carries the drain on), and
    /// its group's desired size is raised by one, up to max-size, so the replacement boots
    /// at once (a growth: the scale-down cooldowns count from it, as from any other); the
    /// drain's terminate-with-decrement brings the size back. While the
    /// replacement boots the pods stay: they are evicted once a node that joined the group
    /// after the warning is Ready, or `spot-eviction-margin` before the reclaim, or half the
    /// `drain-timeout` on (a change due days away), whichever comes first (see
    /// [`Engine::release_held_evictions`]). With no replacement (the group
    /// backs off from a failed launch, or is at max-size) they are evicted at once, so they
    /// go pending and policies place them elsewhere. No guardrail holds this back (minimum
    /// age, disruption budget, cooldowns): the node goes whatever is decided. Every warning
    /// is recorded as a decision of `ballast`; in dry-run nothing is done. Returns the groups
    /// it raised, at their new desired size: the tick runs it before the snapshot policies
    /// see is final, which then shows that growth (sizes and cooldowns) and the warned nodes
    /// being removed, so no policy proposes what the growth has made moot or refused.
    ///
    /// # Caveats
    ///
    /// Warnings read while paused or standing by are not acted on later: the adapter hands
    /// each out once, and the pods then come back as pending pods like after any node loss.
    /// A drain adopted after a restart or a change of leader holds its pods as the one that
    /// began it did: the hold is written in the node's removal mark, and when released the
    /// mark is written again without it and with the new node that released it, which the
    /// adopting replica then lets release no other drain. That new node also carries the
    /// claim itself (`replaces`), which outlives the drained node and its mark. If writing
    /// the claim fails (logged), a replica starting after the drained node is gone may let
    /// that replacement release a second held drain, up to the hold's length early.
    pub(super) async fn handle_interruptions(
        &mut self,
        obs: &Observation,
        warnings: Vec<Interruption>,
        now: u64,
        tick: u64,
    ) -> BTreeMap<String, u32> {
        let mut raised: BTreeMap<String, u32> = BTreeMap::new();
        let mut done: BTreeMap<String, u32> = BTreeMap::new();
        for warning in warnings {
            let Some((node, group)) = obs
                .nodes
                .iter()
                .find(|(_, f)| f.instance_id.as_deref() == Some(warning.instance_id.as_str()))
                .and_then(|(name, f)| Some((name.to_string(), f.group.clone()?)))
            else {
                tracing::info!(instance = %warning.instance_id, "interruption warning for an instance no managed node runs on");
                continue;
            };
            if self.state.drains.contains_key(&node) {
                continue;
            }
            let desired =
                raised.get(&group).copied().or_else(|| obs.groups.get(&group).map(|g| g.desired)).unwrap_or(0);
            let max = obs.groups.get(&group).map_or(0, |g| g.max);
            let backing_off = self.state.groups.get(&group).is_some_and(|g| g.backing_off(now).is_some());
            let size = if backing_off { desired } else { (desired + 1).min(max.max(desired)) };
            let dry_run = self.asked_dry_runs.remove(&warning.instance_id);
            let taken = Taken { node: &node, group: &group, desired, size, max, backing_off };
            let result = if dry_run || self.config.mode != super::Mode::Enforce || !self.may_act() {
                ActionResult::DryRun
            } else {
                let occupied = obs.nodes.get(node.as_str()).is_some_and(|f| f.pods.must_move_count() > 0);
                let (result, grown) = self.replace(&warning, &taken, occupied, now, tick).await;
                if grown {
                    done.insert(group.clone(), size);
                }
                result
            };
            raised.insert(group.clone(), size);
            let reason = self.interruption_reason(&warning, &taken, result != ActionResult::DryRun, now);
            if matches!(result, ActionResult::Started | ActionResult::Done) {
                self.cluster.announce(announce::interrupted(&node, &warning.cause, &reason)).await;
            }
            let record = Record::Decision(DecisionRecord {
                tick,
                at_millis: now,
                plugin: HOST.to_string(),
                proposed: Action::RemoveNodes { nodes: vec![node.clone()] },
                reason,
                guard: GuardOutcome::Accepted,
                result,
                repeated: None,
            });
            self.record_answered(&node, record);
        }
        // A node asked for and not acted on (gone since it was checked) answers nothing.
        self.asked_answers.clear();
        self.asked_dry_runs.clear();
        done
    }

    /// The spot interruption warnings the capacity side has for this tick (none if it
    /// cannot say: the next tick asks again).
    pub(super) async fn read_interruptions(&self) -> Vec<Interruption> {
        match self.capacity.interruptions().await {
            Ok(warnings) => warnings,
            Err(error) => {
                tracing::warn!(%error, "cannot read spot interruption warnings; next tick tries again");
                Vec::new()
            }
        }
    }

    fn margin_millis(&self) -> u64 {
        self.config.guardrails.spot_eviction_margin.as_millis() as u64
    }

    /// How long a warned node's pods wait for its replacement: until `spot-eviction-margin`
    /// before the instance goes, and no longer than half the drain timeout, so that a
    /// replacement that never comes for a change due days away (a retirement) leaves the
    /// drain time to evict before it is abandoned.
    fn hold_until(&self, warning: &Interruption, now: u64) -> u64 {
        let half_timeout = self.config.guardrails.drain_timeout.as_millis() as u64 / 2;
        warning.deadline_millis.saturating_sub(self.margin_millis()).min(now + half_timeout)
    }

    /// What a warning's decision record says: its cause, then what was done about its node,
    /// or, when not `acted` (dry-run), what would have been.
    fn interruption_reason(&self, warning: &Interruption, taken: &Taken<'_>, acted: bool, now: u64) -> String {
        let Taken { node, group, desired, size, max, backing_off } = *taken;
        let would = |done: &str, not_done: &str| if acted { done.to_string() } else { not_done.to_string() };
        let replacement = if size > desired {
            let latest = match self.hold_until(warning, now) {
                until if until + self.margin_millis() >= warning.deadline_millis => format!(
                    "{} s before the reclaim at the latest",
                    self.config.guardrails.spot_eviction_margin.as_secs()
                ),
                until => format!("for {} at the most", crate::duration::display(Duration::from_millis(until - now))),
            };
            format!(
                "its replacement {} at once ({group} {desired} -> {size}); its pods {} until the replacement is \
                 Ready, {latest}",
                would("started", "would start"),
                would("stay", "would stay"),
            )
        } else if backing_off {
            format!(
                "no replacement in {group}, which cannot launch now (backing off): its pods {} where policies send them",
                would("go", "would go"),
            )
        } else {
            format!("no replacement: {group} is at its max-size {max}")
        };
        let done = format!("{} {node}; {replacement}", would("cordoned", "would cordon"));
        let due = Duration::from_secs(warning.deadline_millis.saturating_sub(now) / 1000);
        match &warning.cause {
            InterruptionCause::SpotReclaim => format!(
                "spot interruption warning for {} (reclaimed in {} s): {done}",
                warning.instance_id,
                due.as_secs(),
            ),
            asked @ (InterruptionCause::Asked { .. } | InterruptionCause::Drifted(_)) => format!("{asked}: {done}"),
            scheduled => {
                format!("{scheduled} for {} (due in {}): {done}", warning.instance_id, crate::duration::display(due))
            }
        }
    }

    /// Raises the group to `size` (if above `desired`) and marks the node for removal;
    /// says whether the group was raised.
    async fn replace(
        &mut self,
        warning: &Interruption,
        taken: &Taken<'_>,
        occupied: bool,
        now: u64,
        tick: u64,
    ) -> (ActionResult, bool) {
        let Taken { node, group, size, desired, .. } = *taken;
        let mut grown = false;
        if size > desired {
            match self.capacity.set_desired_size(group, size).await {
                // A growth like any other: the scale-down cooldowns count from it.
                Ok(()) => {
                    self.state.group(group).last_scale_up = Some(now);
                    grown = true;
                }
                Err(error) => tracing::warn!(%group, %error, "cannot start the replacement of an interrupted node"),
            }
        }
        let until_millis = self.hold_until(warning, now);
        let drain = Drain {
            group: group.to_string(),
            instance_id: warning.instance_id.clone(),
            started_at: now,
            started_tick: tick,
            evicted: 0,
            interrupted: size > desired,
            hold: (size > desired && until_millis > now).then_some(EvictionHold { until_millis }),
            released_by: None,
            cause: Some(warning.cause.removal_reason()),
            occupied,
            daemons_asked: false,
        };
        let result = match self.begin_drain(node, drain).await {
            Ok(()) => ActionResult::Started,
            Err(error) => ActionResult::Failed { error: error.to_string(), kind: Default::default() },
        };
        (result, grown)
    }
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Lets the pods of warned spot nodes go once somewhere is ready for them.
    ///
    /// # Guarantees
    ///
    /// Held drains are taken in the order they were warned. Each is released by the first
    /// Ready, schedulable node of its group that joined after its warning and has not
    /// released another (a node replaces one node, for as long as it exists), or once
    /// `until_millis` has come, whatever else holds. A released drain evicts on this tick
    /// and keeps the node that released it (`released_by`, written in its removal mark by
    /// [`Engine::note_release`]). Returns the nodes released.
    pub(super) fn release_held_evictions(&mut self, obs: &Observation, now: u64) -> Vec<String> {
        let mut released = Vec::new();
        self.state.replacements.retain(|n| obs.nodes.contains_key(n.as_str()));
        let mut held: Vec<(u64, String)> = self
            .state
            .drains
            .iter()
            .filter(|(_, d)| d.hold.is_some())
            .map(|(node, d)| (d.started_at, node.clone()))
            .collect();
        held.sort();
        for (warned_at, node) in held {
            let Some(drain) = self.state.drains.get(&node) else { continue };
            let deadline = drain.hold.as_ref().is_some_and(|h| now >= h.until_millis);
            let replacement = ready_newcomer(obs, &drain.group, warned_at, now, &self.state.replacements);
            if !deadline && replacement.is_none() {
                continue;
            }
            match &replacement {
                Some(by) => tracing::info!(%node, replacement = %by, "replacement Ready: evicting"),
                None => tracing::info!(%node, "no replacement Ready before the reclaim: evicting now"),
            }
            self.state.replacements.extend(replacement.clone());
            if let Some(drain) = self.state.drains.get_mut(&node) {
                drain.hold = None;
                drain.released_by = replacement;
            }
            released.push(node);
        }
        released
    }

    /// Writes `node`'s removal mark again, without the hold just released, so that a replica
    /// adopting the drain evicts as this one does instead of holding the pods again; and
    /// writes on the replacement that released it which node it replaces, so that a replica
    /// starting after `node` is gone lets the replacement release no other drain.
    pub(super) async fn note_release(&mut self, node: &str) {
        let Some(drain) = self.state.drains.get(node) else { return };
        let mark = self.mark_of(drain);
        let replacement = drain.released_by.clone();
        if let Err(error) = self.cluster.mark_for_removal(node, &mark).await {
            tracing::warn!(
                %node, %error,
                "cannot write the released hold on the node: a replica adopting its drain would hold its pods again"
            );
        }
        let Some(replacement) = replacement else { return };
        if let Err(error) = self.cluster.claim_replacement(&replacement, node).await {
            tracing::warn!(
                %node, %replacement, %error,
                "cannot write the claim on the replacement: after a restart it could release another held drain"
            );
        }
    }
}

/// A warned node, its group and what its replacement did to the group's size.
#[derive(Clone, Copy)]
struct Taken<'a> {
    node: &'a str,
    group: &'a str,
    desired: u32,
    size: u32,
    max: u32,
    backing_off: bool,
}

/// A Ready, schedulable node of `group` that joined after `since` and is not already some
/// other node's replacement.
fn ready_newcomer(
    obs: &Observation,
    group: &str,
    since: u64,
    now: u64,
    taken: &std::collections::BTreeSet<String>,
) -> Option<String> {
    obs.snapshot
        .nodes
        .iter()
        .filter(|n| n.ready && !n.cordoned && n.group.as_deref() == Some(group))
        .filter(|n| now.saturating_sub(n.age_seconds * 1000) >= since)
        .find(|n| !taken.contains(&n.name))
        .map(|n| n.name.clone())
}

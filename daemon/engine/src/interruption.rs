//! Spot interruptions: EC2 gives two minutes' warning before it reclaims a spot instance.
//! The engine drains the node at once and starts its replacement at the same moment, as
//! Karpenter does, instead of waiting for the pods to go pending after the instance dies.

use ballast_sdk::Action;

use super::observe::Observation;
use super::policies::Policies;
use super::ports::{Capacity, Cluster, Interruption};
use super::record::{ActionResult, DecisionRecord, GuardOutcome, Record};
use super::state::Drain;
use super::{Engine, HOST};

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Acts on the interruption warnings the capacity side reports.
    ///
    /// # Guarantees
    ///
    /// Each warned node that Ballast manages and is not already draining is cordoned and
    /// drained (marked for removal, so a restart or a new leader carries the drain on), and
    /// its group's desired size is raised by one, up to max-size, so the replacement boots
    /// while the pods leave (not while the group backs off from a failed launch: its pods
    /// then go pending and policies place them elsewhere at once); the drain's terminate-with-decrement brings the size back. No
    /// guardrail holds this back (minimum age, disruption budget, cooldowns): the node goes
    /// whatever is decided. Every warning is recorded as a decision of `ballast`; in dry-run
    /// nothing is done.
    ///
    /// # Caveats
    ///
    /// Warnings read while paused or standing by are not acted on later: the adapter hands
    /// each out once, and the pods then come back as pending pods like after any node loss.
    pub(super) async fn handle_interruptions(&mut self, obs: &Observation, now: u64, tick: u64) {
        let warnings = match self.capacity.interruptions().await {
            Ok(w) => w,
            Err(error) => {
                tracing::warn!(%error, "cannot read spot interruption warnings; next tick tries again");
                return;
            }
        };
        let mut raised: std::collections::BTreeMap<String, u32> = Default::default();
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
            let result = if self.config.mode != super::Mode::Enforce || !self.may_act() {
                ActionResult::DryRun
            } else {
                self.replace(&warning, &node, &group, size, desired, now, tick).await
            };
            raised.insert(group.clone(), size);
            let replacement = if size > desired {
                format!("its replacement started at once ({group} {desired} -> {size})")
            } else if backing_off {
                format!(
                    "no replacement in {group}, which cannot launch now (backing off): its pods go where policies send them"
                )
            } else {
                format!("no replacement: {group} is at its max-size {max}")
            };
            let reason = format!(
                "spot interruption warning for {} (reclaimed in {} s): draining {node} now; {replacement}",
                warning.instance_id,
                warning.deadline_millis.saturating_sub(now) / 1000,
            );
            self.recorder.record(Record::Decision(DecisionRecord {
                tick,
                at_millis: now,
                plugin: HOST.to_string(),
                proposed: Action::RemoveNodes { nodes: vec![node] },
                reason,
                guard: GuardOutcome::Accepted,
                result,
                repeated: None,
            }));
        }
    }

    /// Raises the group to `size` (if above `desired`) and marks the node for removal.
    #[allow(clippy::too_many_arguments)]
    async fn replace(
        &mut self,
        warning: &Interruption,
        node: &str,
        group: &str,
        size: u32,
        desired: u32,
        now: u64,
        tick: u64,
    ) -> ActionResult {
        if size > desired
            && let Err(error) = self.capacity.set_desired_size(group, size).await
        {
            tracing::warn!(%group, %error, "cannot start the replacement of an interrupted node");
        }
        let drain = Drain {
            group: group.to_string(),
            instance_id: warning.instance_id.clone(),
            started_at: now,
            started_tick: tick,
            evicted: 0,
            interrupted: size > desired,
        };
        match self.begin_drain(node, drain).await {
            Ok(()) => ActionResult::Started,
            Err(error) => ActionResult::Failed { error: error.to_string(), kind: Default::default() },
        }
    }
}

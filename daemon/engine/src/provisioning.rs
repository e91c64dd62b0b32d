//! Provisioning failures: groups whose launches failed, or whose nodes did not become Ready
//! in time, back off; their desired size goes back to the instances they have, and the
//! snapshot shows both (max-size held, `launch-failures`). And provisioning times: how long
//! each group took to deliver its last nodes (`provisioning-times`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::failure;
use super::observe::{GroupFacts, Observation};
use super::policies::Policies;
use super::ports::{Capacity, Cluster, LaunchFailure};
use super::record::{ActionResult, DecisionRecord, GuardOutcome, Record};
use super::{Engine, HOST, Mode};

/// What the provisioning watch found this tick.
pub(super) struct Watched {
    /// Groups whose desired size goes back to their instances.
    pub resets: Vec<Reset>,
    /// Seconds each node a group delivered this tick took, by group.
    pub delivered: BTreeMap<String, Vec<u32>>,
}

/// A group that failed to provision, brought back to the instances it has.
pub(super) struct Reset {
    pub group: String,
    pub size: u32,
    /// What failed.
    pub reason: String,
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Backs off from groups that failed to launch or whose nodes did not become ready in
    /// time, and shows it in the snapshot (max-size held at the current size; the group in
    /// `launch-failures` until it delivers).
    ///
    /// A group that has just failed also has its desired size brought back to the instances
    /// it has (as Cluster Autoscaler does): the nodes asked for are not coming, and a policy
    /// counting them as on their way would never look elsewhere. Returns those resets, and
    /// the nodes each group delivered this tick, timed.
    pub(super) fn watch_provisioning(&mut self, obs: &mut Observation, now: u64) -> Watched {
        let mut backing_off = Vec::new();
        let mut watched = Watched { resets: Vec::new(), delivered: BTreeMap::new() };
        for (id, facts) in &obs.groups {
            if facts.kind != ballast_sdk::NodeGroupKind::Asg {
                continue;
            }
            // A node that was Ready and is no longer is lost, not awaited: node repair
            // replaces it; it is no launch failure to back off from.
            let here = facts.ready + facts.lost;
            let timed = self.state.group(id).time_provisioning(here, facts.desired, now);
            if !timed.is_empty() {
                watched.delivered.insert(id.clone(), timed);
            }
            if let Some(reason) = self.provisioning_failure(id, facts, here, obs.launch_failures.get(id), now) {
                let until = self.state.group(id).fail(now, reason.clone(), &self.config.guardrails.backoff);
                tracing::warn!(group = %id, %reason, until, "node group backing off");
                let keep = facts.instances.max(facts.min);
                if facts.desired > keep {
                    watched.resets.push(Reset { group: id.clone(), size: keep, reason });
                }
            }
            if self.state.group(id).backing_off(now).is_some() {
                backing_off.push(id.clone());
            }
        }
        for reset in &watched.resets {
            if let Some(facts) = obs.groups.get_mut(&reset.group) {
                facts.desired = reset.size;
            }
        }
        self.show_provisioning(obs, &watched.resets, &backing_off, now);
        watched
    }

    /// Why `id` failed to provision this tick, if it did: a launch failure not seen before,
    /// or nodes not Ready past the back-off timeout (`here` of them present).
    fn provisioning_failure(
        &mut self,
        id: &str,
        facts: &GroupFacts,
        here: u32,
        launch_failure: Option<&LaunchFailure>,
        now: u64,
    ) -> Option<String> {
        let timeout = self.config.guardrails.backoff.timeout;
        let state = self.state.group(id);
        let mut failure = None;
        if let Some(f) = launch_failure
            && state.failure_seen_at.is_none_or(|seen| f.at_millis > seen)
        {
            state.failure_seen_at = Some(f.at_millis);
            failure = Some(format!("launch failed: {}", f.message));
        }
        if here >= facts.desired {
            state.satisfied();
        } else {
            let since = *state.waiting_since.get_or_insert(now);
            if failure.is_none() && now.saturating_sub(since) >= timeout.as_millis() as u64 {
                failure = Some(format!(
                    "{} of {} nodes not ready after {}",
                    facts.desired - here,
                    facts.desired,
                    crate::duration::display(timeout)
                ));
            }
        }
        failure
    }

    /// What the snapshot shows of provisioning: groups' launch failures and provisioning
    /// times, desired sizes reset, and max-size held at the current size while backing off.
    fn show_provisioning(&self, obs: &mut Observation, resets: &[Reset], backing_off: &[String], now: u64) {
        let Some(snapshot) = Arc::get_mut(&mut obs.snapshot) else { return };
        let state = &self.state;
        snapshot.launch_failures = (snapshot.node_groups.iter())
            .filter_map(|g| state.groups.get(&g.id).and_then(|s| s.launch_failure(&g.id, now)))
            .collect();
        snapshot.provisioning_times = (snapshot.node_groups.iter())
            .filter_map(|g| state.groups.get(&g.id).and_then(|s| s.provisioning_time(&g.id)))
            .collect();
        for group in snapshot.node_groups.iter_mut() {
            if let Some(reset) = resets.iter().find(|r| r.group == group.id) {
                group.desired_size = reset.size;
            }
            if backing_off.contains(&group.id) {
                group.max_size = group.max_size.min(group.desired_size);
            }
        }
    }

    /// Brings failed groups back to the instances they have, and records it.
    pub(super) async fn reset_failed_groups(&mut self, resets: Vec<Reset>, now: u64, tick: u64) {
        for Reset { group, size, reason } in resets {
            let result = match self.config.mode {
                Mode::Enforce => match self.capacity.set_desired_size(&group, size).await {
                    Ok(()) => ActionResult::Done,
                    Err(error) => {
                        let failed = failure::disposition(failure::Step::SetSize, &error);
                        if matches!(failed, failure::Disposition::Retry(_)) {
                            self.throttled += 1;
                        }
                        failed.result().unwrap_or(ActionResult::Done)
                    }
                },
                _ => ActionResult::DryRun,
            };
            self.recorder.record(Record::Decision(DecisionRecord {
                tick,
                at_millis: now,
                plugin: HOST.to_string(),
                proposed: ballast_sdk::Action::ScaleTo { group: group.clone(), size },
                reason: format!(
                    "group {group} failed to provision ({reason}); its desired size goes back to the {size} \
                     instance(s) it has and it is backed off, so policies look to other groups"
                ),
                guard: GuardOutcome::Accepted,
                result,
                repeated: None,
            }));
        }
    }
}

//! Provisioning failures: groups whose launches failed, or whose nodes did not become Ready
//! in time, back off; their desired size goes back to the instances they have, and the
//! snapshot shows both (max-size held, `launch-failures`). And provisioning times: how long
//! each group took to deliver its last nodes (`provisioning-times`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::failure;
use super::observe::Observation;
use super::policies::Policies;
use super::ports::{Capacity, Cluster};
use super::record::{ActionResult, DecisionRecord, GuardOutcome, Record};
use super::{Engine, HOST, Mode};

/// What the provisioning watch found this tick.
pub(super) struct Watched {
    /// Groups whose desired size goes back to their instances: size, and why.
    pub resets: Vec<(String, u32, String)>,
    /// Seconds each node a group delivered this tick took, by group.
    pub delivered: BTreeMap<String, Vec<u32>>,
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
        let backoff = self.config.guardrails.backoff.clone();
        let timeout = backoff.timeout.as_millis() as u64;
        let mut backing_off = Vec::new();
        let mut resets = Vec::new();
        let mut delivered = BTreeMap::new();
        for (id, facts) in &obs.groups {
            if facts.kind != ballast_sdk::NodeGroupKind::Asg {
                continue;
            }
            let state = self.state.group(id);
            let mut failure = None;
            if let Some(f) = obs.launch_failures.get(id)
                && state.failure_seen_at.is_none_or(|seen| f.at_millis > seen)
            {
                state.failure_seen_at = Some(f.at_millis);
                failure = Some(format!("launch failed: {}", f.message));
            }
            // A node that was Ready and is no longer is lost, not awaited: node repair
            // replaces it; it is no launch failure to back off from.
            let here = facts.ready + facts.lost;
            let timed = state.time_provisioning(here, facts.desired, now);
            if !timed.is_empty() {
                delivered.insert(id.clone(), timed);
            }
            if here >= facts.desired {
                state.satisfied();
            } else {
                let since = *state.waiting_since.get_or_insert(now);
                if failure.is_none() && now.saturating_sub(since) >= timeout {
                    failure = Some(format!(
                        "{} of {} nodes not ready after {}",
                        facts.desired - here,
                        facts.desired,
                        crate::duration::display(backoff.timeout)
                    ));
                }
            }
            if let Some(reason) = failure {
                let until = state.fail(now, reason.clone(), &backoff);
                tracing::warn!(group = %id, %reason, until, "node group backing off");
                let keep = facts.instances.max(facts.min);
                if facts.desired > keep {
                    resets.push((id.clone(), keep, reason));
                }
            }
            if state.backing_off(now).is_some() {
                backing_off.push(id.clone());
            }
        }
        for (id, keep, _) in &resets {
            if let Some(facts) = obs.groups.get_mut(id) {
                facts.desired = *keep;
            }
        }
        if let Some(snapshot) = Arc::get_mut(&mut obs.snapshot) {
            let state = &self.state;
            snapshot.launch_failures = (snapshot.node_groups.iter())
                .filter_map(|g| state.groups.get(&g.id).and_then(|s| s.launch_failure(&g.id, now)))
                .collect();
            snapshot.provisioning_times = (snapshot.node_groups.iter())
                .filter_map(|g| state.groups.get(&g.id).and_then(|s| s.provisioning_time(&g.id)))
                .collect();
            for group in snapshot.node_groups.iter_mut() {
                if let Some((_, keep, _)) = resets.iter().find(|(id, ..)| *id == group.id) {
                    group.desired_size = *keep;
                }
                if backing_off.contains(&group.id) {
                    group.max_size = group.max_size.min(group.desired_size);
                }
            }
        }
        Watched { resets, delivered }
    }

    /// Brings failed groups back to the instances they have, and records it.
    pub(super) async fn reset_failed_groups(&mut self, resets: Vec<(String, u32, String)>, now: u64, tick: u64) {
        for (group, size, reason) in resets {
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

//! The little the engine remembers between ticks: when each group last changed, which groups
//! are backing off, and which nodes are being drained.

use std::collections::BTreeMap;

use ballast_sdk::Action;

use super::config::{Backoff, Cooldown};
use super::record::{ActionResult, DecisionRecord, Record, RemovalOutcome, TickRecord};

/// What the engine remembers of a group between ticks (and leaves in the handover: fields a
/// newer version wrote are kept apart in `unknown`, see [`super::handover::Handover`]).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct GroupState {
    pub last_scale_up: Option<u64>,
    pub last_scale_down: Option<u64>,
    /// When the group was last asked for more nodes than it had ready, and not yet satisfied.
    pub waiting_since: Option<u64>,
    pub backoff: Option<BackoffState>,
    /// The launch failure already counted, so one failure backs off once.
    pub failure_seen_at: Option<u64>,
    /// Consecutive provisioning failures.
    pub failures: u32,
    /// When the last of them was counted (engine clock).
    pub failed_at: Option<u64>,
    /// Nodes asked of the group and not yet there, oldest first: when each was asked (the
    /// tick before the one that saw the desired size rise), unknown for nodes asked before
    /// this engine first saw the group or before a failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub asked: Vec<Option<u64>>,
    /// Nodes present (Ready, or lost after being Ready) at the last tick that looked, and
    /// when that was.
    pub present: Option<u32>,
    pub looked_at: Option<u64>,
    /// Seconds from ask to Ready of the last deliveries, oldest first (`provisioning-times`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provisioned: Vec<u32>,
    /// Fields a newer version left in the handover that this one does not know.
    #[serde(flatten, skip_serializing)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackoffState {
    pub until: u64,
    pub reason: String,
}

impl GroupState {
    pub fn backing_off(&self, now: u64) -> Option<&BackoffState> {
        self.backoff.as_ref().filter(|b| now < b.until)
    }

    /// Records a provisioning failure and starts (or lengthens) the back-off.
    pub fn fail(&mut self, now: u64, reason: String, config: &Backoff) -> u64 {
        let initial = config.initial.as_millis() as u64;
        let max = config.max.as_millis() as u64;
        let wait = initial.saturating_mul(1u64 << self.failures.min(16)).min(max);
        self.failures += 1;
        self.failed_at = Some(now);
        // Whatever still arrives of what was asked is no measure of the group's boot.
        self.asked.fill(None);
        self.waiting_since = None;
        let until = now + wait;
        self.backoff = Some(BackoffState { until, reason });
        until
    }

    /// The group's failures since it last delivered the nodes asked of it, as the snapshot
    /// tells plugins (`launch-failures`); none once they arrived (see [`Self::satisfied`]).
    pub fn launch_failure(&self, group: &str, now: u64) -> Option<ballast_sdk::LaunchFailure> {
        let failed_at = self.failed_at.filter(|_| self.failures > 0)?;
        Some(ballast_sdk::LaunchFailure {
            group: group.to_string(),
            failed_at_millis: failed_at,
            reason: self.backoff.as_ref().map(|b| b.reason.clone()).unwrap_or_default(),
            in_a_row: self.failures,
            backing_off_until_millis: self.backing_off(now).map_or(0, |b| b.until),
        })
    }

    /// Times the nodes the group delivers, once a tick: a node asked for is stamped with the
    /// tick before the one that saw the ask, and each node that the next ticks see arrive
    /// takes the oldest stamp.
    ///
    /// # Guarantees
    /// Each figure is at least the node's boot (the ask came no earlier than its stamp, the
    /// node was Ready no later than the tick that saw it), so a lead of the slowest recent
    /// figure has nodes Ready in time if the group boots as it did.
    ///
    /// # Caveats
    /// Nodes are matched to asks in order, not by name: when a replacement arrives while an
    /// older ask is still outstanding, the older stamp goes to it. A desired size lowered
    /// before its nodes came cancels the newest asks first.
    ///
    /// Returns the figures this tick added.
    pub fn time_provisioning(&mut self, present: u32, desired: u32, now: u64) -> Vec<u32> {
        let arrived = self.present.map_or(0, |before| present.saturating_sub(before));
        let delivered = (arrived as usize).min(self.asked.len());
        let timed: Vec<u32> = self
            .asked
            .drain(..delivered)
            .flatten()
            .map(|asked| now.saturating_sub(asked).div_ceil(1000) as u32)
            .collect();
        self.provisioned.extend(&timed);
        let extra = self.provisioned.len().saturating_sub(ballast_sdk::ProvisioningTime::KEPT);
        self.provisioned.drain(..extra);
        let outstanding = desired.saturating_sub(present) as usize;
        let stamp = self.present.and(self.looked_at);
        self.asked.truncate(outstanding);
        self.asked.resize(outstanding, stamp);
        self.present = Some(present);
        self.looked_at = Some(now);
        timed
    }

    /// The group's recent deliveries, as the snapshot tells plugins (`provisioning-times`);
    /// none before it delivered a node this engine saw asked for.
    pub fn provisioning_time(&self, group: &str) -> Option<ballast_sdk::ProvisioningTime> {
        (!self.provisioned.is_empty()).then(|| ballast_sdk::ProvisioningTime {
            group: group.to_string(),
            recent_seconds: self.provisioned.clone(),
        })
    }

    /// Where the group stands against `config`'s cooldowns, as the guardrails judge them:
    /// what the snapshot tells plugins (`group-cooldowns`).
    pub fn cooldown(&self, group: &str, config: &Cooldown) -> ballast_sdk::GroupCooldown {
        let after = |last: Option<u64>, wait: std::time::Duration| last.map_or(0, |at| at + wait.as_millis() as u64);
        ballast_sdk::GroupCooldown {
            group: group.to_string(),
            last_scale_up_millis: self.last_scale_up,
            last_scale_down_millis: self.last_scale_down,
            scale_up_allowed_at_millis: after(self.last_scale_up, config.after_scale_up),
            scale_down_allowed_at_millis: after(self.last_scale_up, config.scale_down_after_scale_up)
                .max(after(self.last_scale_down, config.after_scale_down)),
        }
    }

    /// The group has every node it is asked for.
    ///
    /// # Guarantees
    /// The failure count (which doubles the next back-off) is cleared only when nodes the
    /// group was waiting for arrived. A group whose desired size was brought back to its
    /// instances after a failure has nothing outstanding, but has not recovered: its next
    /// failure backs off twice as long, as Cluster Autoscaler's does.
    pub fn satisfied(&mut self) {
        if self.waiting_since.take().is_some() {
            self.failures = 0;
        }
    }
}

/// A node on its way out: cordoned, being drained.
#[derive(Clone, Debug)]
pub struct Drain {
    pub group: String,
    pub instance_id: String,
    pub started_at: u64,
    pub started_tick: u64,
    pub evicted: u32,
    /// Begun for a spot interruption, with the group's desired size raised by one for the
    /// replacement: if the instance dies before the drain ends, the size is lowered again.
    pub interrupted: bool,
    /// Evictions held back until the replacement is Ready (see [`EvictionHold`]).
    pub hold: Option<EvictionHold>,
    /// The new node whose readiness released the hold: it replaces this node and no other.
    pub released_by: Option<String>,
    /// Why it was begun when no policy asked ([`crate::ports::InterruptionCause::removal_reason`]);
    /// kept in its removal mark, so a drain adopted after a restart knows it too.
    pub cause: Option<&'static str>,
    /// The node had pods to move when the drain began: its DaemonSet pods are asked to leave
    /// before it goes unless `daemonset-eviction-for-occupied-nodes` is off. Kept in its mark.
    pub occupied: bool,
    /// Its DaemonSet pods have been asked to leave (once a drain, best effort).
    pub daemons_asked: bool,
}

/// A warned spot node's pods stay where they run until a node that joined its group after
/// the warning is Ready to take them, or until `until_millis`, whichever comes first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvictionHold {
    /// The latest moment to evict: the reclaim less `spot-eviction-margin`.
    pub until_millis: u64,
}

#[derive(Clone, Default)]
pub struct EngineState {
    pub groups: BTreeMap<String, GroupState>,
    pub drains: BTreeMap<String, Drain>,
    /// When each workload was last moved between Fargate and EC2.
    pub placed_at: BTreeMap<ballast_sdk::WorkloadRef, u64>,
    /// Nodes whose removal completed while their Node object (and its mark) lingers until
    /// the cloud controller deletes it: not adopted again.
    pub removed: std::collections::BTreeSet<String>,
    /// Nodes that released an interrupted node's held evictions: each replaces one.
    pub replacements: std::collections::BTreeSet<String>,
    /// Nodes replaced for not being Ready, until they leave the cluster: replaced once.
    pub repaired: std::collections::BTreeSet<String>,
    /// Groups being replaced node by node, asked through the control API.
    pub rolls: BTreeMap<String, super::roll::Roll>,
}

impl EngineState {
    /// The cooldown `placement` holds `workload` in at `now`, if it was moved within it: what
    /// the guardrails refuse a move for, and what the snapshot tells plugins
    /// (`placement-cooldowns`).
    pub fn placement_cooldown(
        &self,
        workload: &ballast_sdk::WorkloadRef,
        now: u64,
        placement: std::time::Duration,
    ) -> Option<ballast_sdk::PlacementCooldown> {
        let at = *self.placed_at.get(workload)?;
        let allowed_at_millis = at + placement.as_millis() as u64;
        (now < allowed_at_millis).then(|| ballast_sdk::PlacementCooldown {
            workload: workload.clone(),
            placed_at_millis: at,
            allowed_at_millis,
        })
    }

    /// Every workload `placement` still holds at `now` (see [`EngineState::placement_cooldown`]).
    pub fn placement_cooldowns(&self, now: u64, placement: std::time::Duration) -> Vec<ballast_sdk::PlacementCooldown> {
        self.placed_at.keys().filter_map(|workload| self.placement_cooldown(workload, now, placement)).collect()
    }

    /// Where `group` stands against `config`'s cooldowns (see [`GroupState::cooldown`]).
    pub fn cooldown(&self, group: &str, config: &Cooldown) -> ballast_sdk::GroupCooldown {
        match self.groups.get(group) {
            Some(state) => state.cooldown(group, config),
            None => GroupState::default().cooldown(group, config),
        }
    }

    /// What the records of an earlier run say about cooldowns, back-offs and placements, so
    /// that a restart does not start them over: scale-ups and scale-downs that were done,
    /// removals that completed, moves between Fargate and EC2, and the back-offs the last
    /// tick showed. Removals still in progress are adopted from the marks on their nodes.
    pub fn restored<'a>(records: impl Iterator<Item = &'a Record>) -> Self {
        let mut state = EngineState::default();
        let mut desired_at: BTreeMap<(u64, &str), u32> = BTreeMap::new();
        let mut last_tick: Option<&TickRecord> = None;
        for record in records {
            match record {
                Record::Tick(t) => {
                    for g in &t.saw.groups {
                        desired_at.insert((t.tick, g.id.as_str()), g.desired);
                    }
                    last_tick = Some(t);
                }
                Record::Decision(d) if d.result == ActionResult::Done => {
                    for action in d.guard.applied(&d.proposed) {
                        state.restore_action(&action, d, &desired_at);
                    }
                }
                Record::Removal(r) if matches!(r.outcome, RemovalOutcome::Completed { .. }) => {
                    let g = state.group(&r.group);
                    g.last_scale_down = g.last_scale_down.max(Some(r.at_millis));
                }
                _ => {}
            }
        }
        for g in last_tick.map(|t| t.saw.groups.as_slice()).unwrap_or_default() {
            if let Some(until) = g.backoff_until_millis {
                let reason = "a provisioning failure before the restart".to_string();
                state.group(&g.id).backoff = Some(BackoffState { until, reason });
            }
        }
        state
    }

    fn restore_action(&mut self, action: &Action, d: &DecisionRecord, desired_at: &BTreeMap<(u64, &str), u32>) {
        let (group, grew) = match action {
            Action::ScaleTo { group, size } => match desired_at.get(&(d.tick, group.as_str())) {
                Some(before) if size != before => (group, size > before),
                _ => return,
            },
            Action::ScaleBy { group, delta } if *delta != 0 => (group, *delta > 0),
            Action::Place { workload, .. } => {
                self.placed_at.insert(workload.clone(), d.at_millis);
                return;
            }
            _ => return,
        };
        let g = self.group(group);
        let at = Some(d.at_millis);
        if grew {
            g.last_scale_up = g.last_scale_up.max(at);
        } else {
            g.last_scale_down = g.last_scale_down.max(at);
        }
    }

    pub fn group(&mut self, id: &str) -> &mut GroupState {
        self.groups.entry(id.to_string()).or_default()
    }

    pub fn draining_in(&self, group: &str) -> u32 {
        self.drains.values().filter(|d| d.group == group).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use ballast_sdk::{PlacementTarget, WorkloadKind, WorkloadRef};

    use super::*;
    use crate::Mode;
    use crate::record::{GroupSummary, GuardOutcome, RemovalRecord, SnapshotSummary, Trigger};

    fn tick(tick: u64, at: u64, desired: u32, backoff_until: Option<u64>) -> Record {
        Record::Tick(TickRecord {
            tick,
            at_millis: at,
            mode: Mode::Enforce,
            trigger: Trigger::Periodic,
            error: None,
            standby: false,
            saw: SnapshotSummary {
                groups: vec![GroupSummary {
                    id: "web".into(),
                    min: 1,
                    max: 10,
                    desired,
                    ready: desired,
                    backoff_until_millis: backoff_until,
                    delivered_seconds: Vec::new(),
                }],
                ..SnapshotSummary::default()
            },
            plugins: Vec::new(),
        })
    }

    fn decision(tick: u64, at: u64, proposed: Action, result: ActionResult) -> Record {
        Record::Decision(DecisionRecord {
            tick,
            at_millis: at,
            plugin: "p".into(),
            proposed,
            reason: "r".into(),
            guard: GuardOutcome::Accepted,
            result,
            repeated: None,
        })
    }

    #[test]
    fn a_restart_keeps_cooldowns_backoffs_and_placements() {
        let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
        let records = [
            tick(1, 1_000, 3, None),
            decision(1, 1_000, Action::ScaleTo { group: "web".into(), size: 5 }, ActionResult::Done),
            tick(2, 2_000, 5, None),
            // Failed actions start no cooldown.
            decision(2, 2_000, Action::ScaleTo { group: "web".into(), size: 2 }, ActionResult::DryRun),
            decision(
                2,
                2_000,
                Action::Place { workload: web.clone(), target: PlacementTarget::Fargate },
                ActionResult::Done,
            ),
            Record::Removal(RemovalRecord {
                tick: 3,
                at_millis: 3_000,
                node: "w1".into(),
                group: "web".into(),
                started_tick: 2,
                outcome: RemovalOutcome::Completed { evicted: 2 },
                cause: None,
            }),
            tick(4, 4_000, 4, Some(90_000)),
        ];
        let state = EngineState::restored(records.iter());
        let web_group = &state.groups["web"];
        assert_eq!(web_group.last_scale_up, Some(1_000), "the scale-up from 3 to 5");
        assert_eq!(web_group.last_scale_down, Some(3_000), "the completed removal; the dry-run is not counted");
        assert_eq!(web_group.backing_off(4_000).map(|b| b.until), Some(90_000));
        assert_eq!(state.placed_at.get(&web), Some(&2_000));
        assert!(state.drains.is_empty(), "drains come from the marks on nodes, not the journal");
    }

    #[test]
    fn a_group_that_keeps_failing_backs_off_longer_each_time_until_nodes_arrive() {
        let config = Backoff::default();
        let minute = 60_000;
        let mut group = GroupState::default();
        // The first failure: 5 minutes. The desired size is then brought back to the
        // instances, so the group has everything it is asked for, yet has not recovered.
        assert_eq!(group.fail(0, "launch failed".into(), &config), 5 * minute);
        group.satisfied();
        assert_eq!(group.fail(5 * minute, "launch failed".into(), &config), 15 * minute, "doubled to 10 minutes");
        group.satisfied();
        assert_eq!(group.fail(15 * minute, "launch failed".into(), &config), 35 * minute, "doubled to 20 minutes");
        group.satisfied();
        assert_eq!(group.fail(35 * minute, "launch failed".into(), &config), 65 * minute, "held at the 30-minute max");
        // Asked again, and the nodes it waited for arrived: the count starts over.
        group.waiting_since = Some(70 * minute);
        group.satisfied();
        assert_eq!(group.fail(80 * minute, "launch failed".into(), &config), 85 * minute);
    }
}

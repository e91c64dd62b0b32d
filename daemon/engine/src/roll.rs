//! Replacing a whole node group by hand (`ballast ctl replace group`), after a new AMI or
//! launch template: every node the group had when it was asked is replaced, `at-once` at a
//! time, oldest first, each as an asked replacement is ([`super::asked`]): its successor
//! launched first, its pods evicted through the Eviction API once the successor is Ready.
//! Unlike an Auto Scaling instance refresh, no node is terminated before its pods have
//! moved with their PDBs honoured.

use serde::{Deserialize, Serialize};

use super::control::{Asked, ChangeError};
use super::guard::Budget;
use super::observe::Observation;
use super::policies::Policies;
use super::ports::{Capacity, Cluster, Interruption, InterruptionCause};
use super::record::{ControlRecord, Record};
use super::window::DisruptionReason;
use super::{Engine, HOST};

/// A group being replaced node by node. Kept in the engine state and the handover, so a
/// restart or a new leader carries it on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Roll {
    /// Nodes created before this moment (Unix millis), when it was asked, are replaced.
    pub before_millis: u64,
    /// How many of the group's nodes may be leaving at once.
    pub at_once: u32,
    pub caller: String,
    pub reason: String,
    /// Replacements started so far.
    #[serde(default)]
    pub started: u32,
}

/// A node of the group a roll (or drift) covers, not yet leaving.
pub(super) struct Due<'a> {
    pub name: &'a str,
    created_millis: u64,
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Starts replacing `group`'s nodes, as of `now`, and makes a tick due at once; says
    /// which nodes, as the last observation had them. Asked as a dry run, or in dry-run
    /// mode, it only says so: nothing is started, and nothing is kept to start later.
    pub(super) fn ask_roll(
        &mut self,
        group: String,
        at_once: u32,
        dry_run: bool,
        asked: &Asked,
        now: u64,
    ) -> Result<String, ChangeError> {
        let observed = self.live.observed();
        let obs = observed.as_ref().map(|o| &o.obs).filter(|o| o.groups.contains_key(&group));
        let Some(obs) = obs else { return Err(ChangeError::NoSuchGroup(group)) };
        if let Some(roll) = self.state.rolls.get(&group) {
            return Err(ChangeError::AlreadyReplacing { group, caller: roll.caller.clone() });
        }
        let at_once = at_once.max(1);
        let (due, kept) = self.due_nodes(obs, &group, |_, created| created < now, now);
        let names: Vec<&str> = due.iter().map(|d| d.name).collect();
        let mut description = format!(
            "replace group {group}: {} node(s), {at_once} at a time, oldest first: {}",
            names.len(),
            names.join(", ")
        );
        if !kept.is_empty() {
            description.push_str(&format!("; kept: {}", kept.join("; ")));
        }
        if dry_run || self.config.mode == super::Mode::DryRun {
            return Ok(format!("dry-run, nothing started: {description}"));
        }
        let roll = Roll {
            before_millis: now,
            at_once,
            caller: asked.caller.clone(),
            reason: asked.reason.clone(),
            started: 0,
        };
        self.state.rolls.insert(group, roll);
        self.schedule.ask();
        Ok(description)
    }

    /// Stops replacing `group`; its drains under way go on.
    pub(super) fn cancel_roll(&mut self, group: &str) -> Result<String, ChangeError> {
        let roll = self.state.rolls.remove(group).ok_or_else(|| ChangeError::NotReplacing(group.to_string()))?;
        Ok(format!("cancel replacement of group {group} ({} started; drains under way go on)", roll.started))
    }

    /// The nodes of every group being replaced whose turn has come, as interruption warnings;
    /// then, with `guardrails.drift.replace`, the drifted nodes' ([`Engine::drifted_interruptions`]),
    /// the rolls' counted as leaving.
    ///
    /// # Guarantees
    /// Per group, nodes created before the roll was asked are taken oldest first, so that at
    /// most `at-once` of the group's nodes are being removed at a time, and no more nodes of
    /// the cluster than its disruption budget and the most restrictive open disruption
    /// window holding group replacements allow (drains of any cause count; a roll is a
    /// voluntary disruption, as Karpenter's drift is). Nothing starts while the group backs
    /// off from a failed launch: a replacement that cannot launch would only take capacity
    /// away. A node that may not be replaced (annotated, or running a pod annotated
    /// `karpenter.sh/do-not-disrupt`) is left and named when the roll ends. The roll ends,
    /// with a control record, once no node it covers is left or leaving; it also ends if
    /// its group is gone. In dry-run no roll advances, and the drifted nodes' warnings are
    /// recorded as would-be replacements ([`Engine::handle_interruptions`]), nothing done.
    pub(super) fn rolling_interruptions(&mut self, obs: &Observation, now: u64) -> Vec<Interruption> {
        let mut warnings = Vec::new();
        let budget = &self.config.guardrails.disruption_budget;
        let reason = DisruptionReason::GroupReplacement;
        let mut room = Budget::at(obs, budget, reason, now).room(self.state.drains.len());
        let drift_room = self.config.guardrails.drift.replace.then(|| {
            // Nodes the rolls start this tick are taken from it below.
            Budget::at(obs, budget, DisruptionReason::Drift, now).room(self.state.drains.len())
        });
        let groups: Vec<String> = match self.config.mode {
            super::Mode::Enforce => self.state.rolls.keys().cloned().collect(),
            _ => Vec::new(),
        };
        for group in groups {
            let Some(roll) = self.state.rolls.get(&group).cloned() else { continue };
            if !obs.groups.contains_key(&group) {
                self.end_roll(&group, &roll, "its group is gone".into(), now);
                continue;
            }
            if self.backing_off(Some(&group), now) {
                continue;
            }
            let leaving = self.leaving(&group);
            let (due, kept) = self.due_nodes(obs, &group, |_, created| created < roll.before_millis, now);
            if due.is_empty() && leaving == 0 {
                let kept = match kept.is_empty() {
                    true => String::new(),
                    false => format!("; kept: {}", kept.join("; ")),
                };
                self.end_roll(&group, &roll, format!("done, {} replaced{kept}", roll.started), now);
                continue;
            }
            let take = (roll.at_once.saturating_sub(leaving) as usize).min(room);
            let reason = format!("replace group {group}: {}", roll.reason);
            let cause = InterruptionCause::Asked { caller: roll.caller.clone(), reason };
            let mut started = 0;
            for node in due.into_iter().take(take) {
                let Some(instance_id) = obs.nodes.get(node.name).and_then(|f| f.instance_id.clone()) else { continue };
                warnings.push(self.asked_warning(instance_id, cause.clone(), now));
                started += 1;
            }
            room -= started as usize;
            if let Some(roll) = self.state.rolls.get_mut(&group) {
                roll.started += started;
            }
        }
        if let Some(room) = drift_room {
            let room = room.saturating_sub(warnings.len());
            warnings.extend(self.drifted_interruptions(obs, now, room));
        }
        warnings
    }

    /// How many of `group`'s nodes are being drained, whatever the cause.
    pub(super) fn leaving(&self, group: &str) -> u32 {
        self.state.drains.values().filter(|d| d.group == group).count() as u32
    }

    /// `group`'s nodes that `covers` (by name and creation, Unix millis), not leaving, oldest
    /// first; and those kept from replacement, each with why.
    pub(super) fn due_nodes<'o>(
        &self,
        obs: &'o Observation,
        group: &str,
        covers: impl Fn(&str, u64) -> bool,
        now: u64,
    ) -> (Vec<Due<'o>>, Vec<String>) {
        let mut due = Vec::new();
        let mut kept = Vec::new();
        for node in obs.snapshot.nodes.iter().filter(|n| n.group.as_deref() == Some(group)) {
            let created_millis = now.saturating_sub(node.age_seconds * 1000);
            let leaving = self.state.drains.contains_key(&node.name) || self.state.removed.contains(&node.name);
            if leaving || !covers(&node.name, created_millis) {
                continue;
            }
            match self.replaceable(obs, &node.name) {
                Ok(_) => due.push(Due { name: &node.name, created_millis }),
                Err(why) => kept.push(why.message),
            }
        }
        due.sort_by(|a, b| a.created_millis.cmp(&b.created_millis).then(a.name.cmp(b.name)));
        (due, kept)
    }

    fn end_roll(&mut self, group: &str, roll: &Roll, how: String, now: u64) {
        self.state.rolls.remove(group);
        tracing::info!(%group, %how, "replacement of the group ended");
        self.recorder.record(Record::Control(ControlRecord {
            tick: self.tick,
            at_millis: now,
            caller: HOST.to_string(),
            change: format!("replace group {group}: {how}"),
            reason: format!("asked by {}: {}", roll.caller, roll.reason),
        }));
    }
}

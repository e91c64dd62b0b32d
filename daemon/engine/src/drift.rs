//! Drift: a node launched from a machine image (AMI) its group no longer launches, after a
//! new launch template version (a new default, or `$Latest` moved on) or a changed launch
//! configuration; or of an instance type it no longer launches (a template's type changed,
//! a mixed instances policy's overrides without it); or from a launch template version its
//! group no longer launches (whatever changed in it: user data, security groups, ...).
//! Always reported (`ballast ctl groups`, `ctl explain node`,
//! `ballast_node_group_drifted_nodes`); replaced when `guardrails.drift.replace` is set
//! ([`crate::config::DriftReplacement`]), the way a roll replaces a group ([`super::roll`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Engine;
use super::observe::Observation;
use super::policies::Policies;
use super::ports::{Capacity, Cluster, GroupView, InstanceLifecycle, InstanceView, Interruption, InterruptionCause};

/// What a drifted node was launched from, and what its group launches now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub what: Drifted,
    pub launched: Arc<str>,
    /// The image, the instance types (comma separated) or the template version.
    pub current: Arc<str>,
}

/// What a node differs from its group by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drifted {
    Image,
    InstanceType,
    TemplateVersion,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (launched, current) = (&self.launched, &self.current);
        match self.what {
            Drifted::Image | Drifted::TemplateVersion => {
                write!(f, "launched from {launched}; its group now launches {current}")
            }
            Drifted::InstanceType => write!(f, "launched as {launched}; its group now launches {current}"),
        }
    }
}

/// Whether `instance` of `group` has drifted: its image first, then its instance type, then
/// its launch template version (the most telling difference is named). An instance or
/// group whose image, types or version are unknown has not (by that measure): nothing is
/// replaced on a guess; nor has one already leaving.
pub fn of(group: &GroupView, instance: &InstanceView) -> Option<Drift> {
    if instance.lifecycle == InstanceLifecycle::Terminating {
        return None;
    }
    image(group, instance).or_else(|| instance_type(group, instance)).or_else(|| template(group, instance))
}

fn image(group: &GroupView, instance: &InstanceView) -> Option<Drift> {
    let current = group.image.as_ref()?;
    let launched = instance.image.as_ref().filter(|image| *image != current)?;
    Some(Drift { what: Drifted::Image, launched: launched.clone(), current: current.clone() })
}

fn template(group: &GroupView, instance: &InstanceView) -> Option<Drift> {
    let current = group.template.as_ref()?;
    let launched = instance.template.as_ref().filter(|launched| *launched != current)?;
    let (launched, current) = (Arc::from(launched.to_string()), Arc::from(current.to_string()));
    Some(Drift { what: Drifted::TemplateVersion, launched, current })
}

fn instance_type(group: &GroupView, instance: &InstanceView) -> Option<Drift> {
    let types = group.launched_types.as_ref().filter(|types| !types.is_empty())?;
    let launched = instance.instance_type.as_str();
    if launched.is_empty() || types.iter().any(|t| **t == *launched) {
        return None;
    }
    let current = types.iter().map(|t| &**t).collect::<Vec<_>>().join(", ");
    Some(Drift { what: Drifted::InstanceType, launched: Arc::from(launched), current: Arc::from(current) })
}

/// Whether any instance of `groups` has drifted: what a tick checks before it looks further.
pub fn any(groups: &[GroupView]) -> bool {
    groups.iter().any(|g| g.instances.iter().any(|i| of(g, i).is_some()))
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// The drifted nodes whose turn has come, as interruption warnings: each is replaced as
    /// a roll replaces a node, successor first.
    ///
    /// # Guarantees
    /// Per group, drifted nodes are taken oldest first, so that at most `drift.at-once` of
    /// the group's nodes are being removed at a time (drains of any cause count), and no more
    /// than `room` in all: what the disruption budget and the open windows holding drift
    /// leave. Nothing starts in a group backing off from a failed launch, in one being rolled
    /// (the roll covers its nodes), nor in an EKS managed node group (EKS rolls its nodes
    /// itself on an image update). A node that may not be replaced (annotated, or running a
    /// pod annotated `karpenter.sh/do-not-disrupt`) is left as it is, drifted.
    pub(super) fn drifted_interruptions(&self, obs: &Observation, now: u64, mut room: usize) -> Vec<Interruption> {
        let at_once = self.config.guardrails.drift.at_once;
        let groups: BTreeSet<&str> =
            obs.nodes.values().filter(|f| f.drift.is_some()).filter_map(|f| f.group.as_deref()).collect();
        let mut warnings = Vec::new();
        for group in groups {
            let updates_itself = obs.groups.get(group).is_some_and(|g| g.updates_itself);
            if updates_itself || self.state.rolls.contains_key(group) || self.backing_off(Some(group), now) {
                continue;
            }
            let drifted = |name: &str, _| obs.nodes.get(name).is_some_and(|f| f.drift.is_some());
            let (due, _) = self.due_nodes(obs, group, drifted, now);
            let take = (at_once.saturating_sub(self.leaving(group)) as usize).min(room);
            for node in due.into_iter().take(take) {
                let Some(facts) = obs.nodes.get(node.name) else { continue };
                let (Some(instance_id), Some(drift)) = (facts.instance_id.clone(), facts.drift.clone()) else {
                    continue;
                };
                warnings.push(self.asked_warning(instance_id, InterruptionCause::Drifted(drift), now));
                room -= 1;
            }
        }
        warnings
    }
}

//! `expiry`: replaces nodes older than `expire-after-seconds`, the successor first:
//! Karpenter's `expireAfter` (720 h there and here by default), for clusters that must run
//! fresh AMIs and patched kernels. Auto Scaling's own maximum instance lifetime terminates
//! an instance without draining it; this drains it through the Eviction API, its pods moving
//! to room that is already there.
//!
//! - The oldest expired node the host would let go (Ready, schedulable, no removal blocker:
//!   PDBs, do-not-disrupt, an open disruption window with no room, ...) is rotated: its group
//!   grows by one, and once a node of that group newer than the request is Ready and the
//!   host's cooldowns let the group shrink, the old node is removed (cordoned, drained,
//!   terminated with a decrement).
//! - While a rotation is under way, until the old node is gone, its group is asked to keep
//!   its size, so that a later policy of the chain (`consolidation`) does not take back the
//!   successor, empty until the drain, first. Put `expiry` before `consolidation` in the
//!   chain.
//! - At most `max-at-once` nodes are rotated at once (removals of expired nodes under way
//!   count), one begun a tick, and none begun while pods wait for nodes: capacity is short,
//!   and a successor would go to the waiting pods. With `hours` (a maintenance window,
//!   `[{from: "01:00", to: "05:00", days: [sat, sun]}]`, UTC), rotations begin only then.
//! - A group at its max-size gets no successor: the old node is removed outright, its pods
//!   rescheduled on the others' room or on nodes the scale-up policies launch for them. So is
//!   a node whose successor is not Ready within `successor-wait-seconds` (900): expiry is a
//!   promise about age, kept at the price of a wait.
//!
//! # Caveats
//! The host refuses to shrink a group for `scale-down-after-scale-up` (10 min) after it grew,
//! the successor's own growth included: each rotation runs both nodes that long, and a group
//! of N expired nodes takes about N times that to rotate with `max-at-once` 1. A group held
//! at one size (min-size = max-size) cannot rotate: nothing is proposed for its nodes.

mod settings;

use std::collections::BTreeMap;

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

pub use settings::Settings;

/// A rotation under way: the old node's group, and when its successor was asked for.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rotation {
    pub group: String,
    pub asked_at: u64,
}

/// What the policy remembers: the rotations under way, by the node being rotated.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct State {
    pub rotations: BTreeMap<String, Rotation>,
}

pub struct Expiry;

impl Policy for Expiry {
    type Settings = Settings;
    type State = State;

    fn validate(settings: &Settings) -> Result<(), String> {
        settings.validate()
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, state: &mut State) -> Result<Vec<Decision>, String> {
        let now = snapshot.taken_at_millis();
        let mut decisions = follow(snapshot, settings, state, now);
        let expired_leaving = snapshot
            .nodes()
            .iter()
            .filter(|n| {
                n.cordoned && n.age_seconds >= settings.expire_after_seconds && !state.rotations.contains_key(&n.name)
            })
            .count();
        let room = (settings.max_at_once as usize).saturating_sub(state.rotations.len() + expired_leaving);
        if room > 0 && settings.in_hours(now) && !snapshot.pods_wait_for_nodes() {
            decisions.extend(begin(snapshot, settings, state, now));
        }
        Ok(decisions)
    }
}

/// Carries each rotation on: the old node goes once its successor is Ready (or the wait for
/// it is over) and the host lets its group shrink. Until it is gone, drain included, the
/// group keeps its size: the successor is empty until the old node's pods land on it.
fn follow(snapshot: &dyn Snapshot, settings: &Settings, state: &mut State, now: u64) -> Vec<Decision> {
    let (nodes, groups) = (snapshot.nodes(), snapshot.node_groups());
    let mut decisions = Vec::new();
    state.rotations.retain(|name, rotation| {
        let Some(old) = nodes.iter().find(|n| &n.name == name) else { return false };
        let Some(group) = groups.iter().find(|g| g.id == rotation.group) else { return false };
        let keep = |waiting_for: &str| {
            Decision::new(
                Action::ScaleTo { group: group.id.clone(), size: group.desired_size },
                format!(
                    "keep group {} at {} while node {name} is rotated: {waiting_for}",
                    group.id, group.desired_size
                ),
            )
        };
        if old.cordoned {
            decisions.push(keep("its removal is under way"));
            return true;
        }
        let successor = nodes.iter().any(|n| {
            n.group.as_deref() == Some(group.id.as_str())
                && n.ready
                && !n.cordoned
                && now.saturating_sub(n.age_seconds * 1000) >= rotation.asked_at
        });
        let waited_out = now.saturating_sub(rotation.asked_at) >= settings.successor_wait_seconds.saturating_mul(1000);
        let cooldown = snapshot.group_cooldowns().iter().find(|c| c.group == group.id);
        let shrink_at = cooldown.map_or(0, |c| c.scale_down_allowed_at_millis);
        // The same words tick after tick while nothing changes, so the records fold.
        let waiting_for = if let Some(blocker) = &old.removal_blocker {
            format!("the node is held: {blocker}")
        } else if !successor && !waited_out {
            "its successor is not Ready yet".to_string()
        } else if now < shrink_at {
            format!("the host lets the group shrink from {}", time_of_day(shrink_at))
        } else {
            let how = if successor { "its successor is Ready" } else { "its successor did not come in time" };
            let age = span(old.age_seconds);
            decisions.push(Decision::new(
                Action::RemoveNodes { nodes: vec![name.clone()] },
                format!("node {name} is {age} old, past expire-after {}: {how}", span(settings.expire_after_seconds)),
            ));
            "its removal is under way".to_string()
        };
        decisions.push(keep(&waiting_for));
        true
    });
    decisions
}

/// Begins rotating the oldest expired node the host would let go: its group grows by one,
/// or, at its max-size, the node goes outright.
fn begin(snapshot: &dyn Snapshot, settings: &Settings, state: &mut State, now: u64) -> Option<Decision> {
    let groups = snapshot.node_groups();
    let (node, group) = snapshot
        .nodes()
        .iter()
        .filter(|n| {
            n.age_seconds >= settings.expire_after_seconds
                && n.ready
                && !n.cordoned
                && n.removal_blocker.is_none()
                && !state.rotations.contains_key(&n.name)
        })
        .filter_map(|n| {
            let group = groups.iter().find(|g| g.kind == NodeGroupKind::Asg && Some(&g.id) == n.group.as_ref())?;
            // No room above for a successor, none below to lose the node: it cannot rotate.
            let fixed = group.desired_size >= group.max_size && group.desired_size <= group.min_size;
            (!fixed).then_some((n, group))
        })
        .max_by(|(a, _), (b, _)| a.age_seconds.cmp(&b.age_seconds).then_with(|| b.name.cmp(&a.name)))?;
    let expired = format!(
        "node {} is {} old, past expire-after {}",
        node.name,
        span(node.age_seconds),
        span(settings.expire_after_seconds)
    );
    if group.desired_size >= group.max_size {
        return Some(Decision::new(
            Action::RemoveNodes { nodes: vec![node.name.clone()] },
            format!("{expired}; group {} is at its max-size of {}: no successor first", group.id, group.max_size),
        ));
    }
    state.rotations.insert(node.name.clone(), Rotation { group: group.id.clone(), asked_at: now });
    Some(Decision::new(
        Action::ScaleTo { group: group.id.clone(), size: group.desired_size + 1 },
        format!("{expired}: its successor first, in group {}", group.id),
    ))
}

/// The UTC time of day of `millis`, `HH:MM:SS`.
fn time_of_day(millis: u64) -> String {
    let seconds = millis / 1000 % 86_400;
    format!("{:02}:{:02}:{:02} UTC", seconds / 3600, seconds % 3600 / 60, seconds % 60)
}

/// A length of time as people write it: `30d 4h`, `2h 10m`, `45m`, `20s`.
fn span(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

ballast_sdk::export_policy!(Expiry);

#[cfg(test)]
mod tests {
    use super::{span, time_of_day};

    #[test]
    fn spans_read_as_people_write_them() {
        assert_eq!(span(720 * 3600), "30d 0h");
        assert_eq!(span(2 * 3600 + 600), "2h 10m");
        assert_eq!(span(45 * 60 + 5), "45m");
        assert_eq!(span(20), "20s");
        assert_eq!(time_of_day(1_767_571_200_000 + 3_723_000), "01:02:03 UTC");
    }
}

//! What a leader leaves for the next one, so that a change of leader (a rollout, a lost
//! node, an evicted pod) does not reset the guardrails' memory: the groups' cooldowns,
//! back-offs and provisioning waits, when each workload was last moved between Fargate and
//! EC2, the nodes already dealt with, and the policies' own states.
//!
//! The leader leaves a [`Handover`] with a [`HandoverStore`] after every tick it led (a
//! ConfigMap in a cluster, written off the tick); a replica that starts to lead takes it
//! before it acts ([`Engine::take_over`]). Removals in progress need none of this: their
//! marks are on the nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use ballast_sdk::WorkloadRef;
use serde::{Deserialize, Serialize};

use super::Engine;
use super::live::TakenOver;
use super::policies::Policies;
use super::ports::{Capacity, Cluster};
use super::state::{EngineState, GroupState};

/// What one leader left: enough for the next to keep every cooldown and back-off.
///
/// Fields it does not know (left by a newer version of Ballast, in a rolling upgrade or a
/// rollback) do not make it unusable: they are kept apart in `unknown` and named in the log
/// of the replica that takes it over, which goes on with what it knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Handover {
    /// The time of the tick that left it, milliseconds since the Unix epoch.
    pub at_millis: u64,
    /// The replica that left it (its Lease identity).
    pub left_by: String,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupState>,
    #[serde(default)]
    pub placed: Vec<Placed>,
    /// Nodes whose removal completed while their Node object lingers: not adopted again.
    #[serde(default)]
    pub removed: BTreeSet<String>,
    /// Nodes that released an interrupted node's held evictions: each replaces one.
    #[serde(default)]
    pub replacements: BTreeSet<String>,
    /// Nodes replaced for not being Ready: replaced once.
    #[serde(default)]
    pub repaired: BTreeSet<String>,
    /// Groups being replaced node by node (written only while there are some, so a replica
    /// of an earlier version can read the handover of one that rolls nothing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rolls: BTreeMap<String, super::roll::Roll>,
    /// The policies' own states, opaque to the engine ([`Policies::hand_over`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<serde_json::Value>,
    /// Fields this version does not know, by name.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

impl Handover {
    /// The fields of this handover this version of Ballast does not know
    /// (`rolls`, `groups.general.surge`), which it leaves aside.
    pub fn unknown_fields(&self) -> Vec<String> {
        let groups = self.groups.iter().flat_map(|(id, g)| g.unknown.keys().map(move |k| format!("groups.{id}.{k}")));
        self.unknown.keys().cloned().chain(groups).collect()
    }
}

/// When a workload was last moved between Fargate and EC2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Placed {
    pub workload: WorkloadRef,
    pub at_millis: u64,
}

/// Why the last leader's handover could not be taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandoverError {
    /// Retryable: the store did not answer (a timeout, a server error, throttling). The new
    /// leader acts on nothing until it has read it.
    #[error("the handover could not be read, retried next tick: {0}")]
    Unavailable(String),
    /// Not retried: it was read and does not parse, or reading it is forbidden. The new
    /// leader goes on with what it remembers itself and its first handover replaces it.
    #[error("the handover is not usable: {0}")]
    Unusable(String),
}

/// A reply from a [`HandoverStore`].
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where leaders leave handovers: a ConfigMap in a cluster, memory in tests.
pub trait HandoverStore: Send + Sync + 'static {
    /// The last handover left, `None` when none ever was.
    fn read(&self) -> StoreFuture<'_, Result<Option<Handover>, HandoverError>>;

    /// Leaves `handover` for the next leader. Returns at once: the store writes it off the
    /// tick, the latest replacing any not yet written.
    fn leave(&self, handover: Handover);
}

/// A store in memory: what one engine leaves, another takes (tests, benchmarks).
#[derive(Clone, Default)]
pub struct MemoryHandover {
    left: Arc<Mutex<Option<Handover>>>,
    /// Answers reads with this error while set.
    failing: Arc<Mutex<Option<HandoverError>>>,
}

impl MemoryHandover {
    /// What was left last.
    pub fn left(&self) -> Option<Handover> {
        self.left.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Answers every read with `error` until called again with `None`.
    pub fn fail_reads(&self, error: Option<HandoverError>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

impl HandoverStore for MemoryHandover {
    fn read(&self) -> StoreFuture<'_, Result<Option<Handover>, HandoverError>> {
        let result = match self.failing.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(error) => Err(error),
            None => Ok(self.left()),
        };
        Box::pin(std::future::ready(result))
    }

    fn leave(&self, handover: Handover) {
        *self.left.lock().unwrap_or_else(|p| p.into_inner()) = Some(handover);
    }
}

impl GroupState {
    /// This group as a replica remembers it, with what the last leader left for it.
    ///
    /// # Guarantees
    /// No guardrail gets looser: each cooldown counts from the later of the two last
    /// scalings, and the back-off that ends later is kept. Whether the group is waiting for
    /// nodes (and since when each node it waits for was asked), how many failures in a row
    /// it has seen, and its recent provisioning times are the last leader's: it acted after
    /// this replica last did.
    fn taken_over(&self, left: &GroupState) -> GroupState {
        let backoff = match (&self.backoff, &left.backoff) {
            (Some(mine), Some(theirs)) if mine.until > theirs.until => Some(mine.clone()),
            (mine, None) => mine.clone(),
            (_, theirs) => theirs.clone(),
        };
        GroupState {
            last_scale_up: self.last_scale_up.max(left.last_scale_up),
            last_scale_down: self.last_scale_down.max(left.last_scale_down),
            waiting_since: left.waiting_since,
            backoff,
            failure_seen_at: self.failure_seen_at.max(left.failure_seen_at),
            failures: left.failures,
            failed_at: self.failed_at.max(left.failed_at),
            asked: left.asked.clone(),
            present: left.present,
            looked_at: left.looked_at,
            provisioned: if left.provisioned.is_empty() { self.provisioned.clone() } else { left.provisioned.clone() },
            unknown: Default::default(),
        }
    }
}

impl EngineState {
    /// What this state leaves for the next leader (without the policies' states).
    pub fn handover(&self, at_millis: u64, left_by: &str) -> Handover {
        Handover {
            at_millis,
            left_by: left_by.to_string(),
            groups: self.groups.clone(),
            placed: self.placed_at.iter().map(|(w, at)| Placed { workload: w.clone(), at_millis: *at }).collect(),
            removed: self.removed.clone(),
            replacements: self.replacements.clone(),
            repaired: self.repaired.clone(),
            rolls: self.rolls.clone(),
            policies: None,
            unknown: BTreeMap::new(),
        }
    }

    /// Adds what the last leader left to what this replica remembers: groups as
    /// [`GroupState::taken_over`] says, the later move of each workload, and every node
    /// either knows was dealt with. Drains are not in it: their marks are on the nodes.
    pub fn take_over(&mut self, left: &Handover) {
        for (id, theirs) in &left.groups {
            let merged = self.groups.get(id).cloned().unwrap_or_default().taken_over(theirs);
            self.groups.insert(id.clone(), merged);
        }
        for Placed { workload, at_millis } in &left.placed {
            let at = self.placed_at.entry(workload.clone()).or_insert(*at_millis);
            *at = (*at).max(*at_millis);
        }
        self.removed.extend(left.removed.iter().cloned());
        self.replacements.extend(left.replacements.iter().cloned());
        self.repaired.extend(left.repaired.iter().cloned());
        // The last leader's rolls are the latest: it started their replacements.
        self.rolls.extend(left.rolls.clone());
    }
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Notes whether this replica leads at this tick, and on the first tick it does, takes
    /// over what the last leader left.
    ///
    /// # Errors
    /// As [`Engine::take_over`]; this replica is not taken to lead until it succeeds.
    pub(crate) async fn lead_or_stand_by(&mut self, now: u64) -> Result<(), HandoverError> {
        let leads = self.may_act();
        if leads && !self.led {
            self.take_over(now).await?;
        }
        self.led = leads;
        Ok(())
    }

    /// Leaves what the next leader needs, after a tick this replica led to its end.
    pub(crate) fn leave_handover(&self, now: u64) {
        let Some(store) = &self.handover else { return };
        if !self.led || !self.may_act() {
            return;
        }
        let mut handover = self.state.handover(now, &self.identity);
        handover.policies = self.policies.hand_over();
        store.leave(handover);
    }

    /// Takes what the last leader left, before this replica first acts as leader.
    ///
    /// # Errors
    /// [`HandoverError::Unavailable`] when the store did not answer: the caller acts on
    /// nothing this tick and tries again on the next. A handover that is not usable is
    /// reported and passed over, as is a policies' state that does not parse.
    pub(crate) async fn take_over(&mut self, now: u64) -> Result<(), HandoverError> {
        let Some(store) = self.handover.clone() else { return Ok(()) };
        self.live.set_taken_over(None);
        let left = match store.read().await {
            Ok(Some(left)) => left,
            Ok(None) => {
                tracing::info!("no handover left by an earlier leader; leading with what this replica remembers");
                return Ok(());
            }
            Err(HandoverError::Unusable(why)) => {
                tracing::warn!(%why, "the last leader's handover is not usable; leading with what this replica remembers");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let unknown = left.unknown_fields();
        if !unknown.is_empty() {
            tracing::warn!(
                ?unknown,
                "the last leader (a newer version?) left fields this version does not know; they are left aside"
            );
        }
        self.state.take_over(&left);
        let from = left.left_by.clone();
        self.live.set_taken_over(Some(TakenOver { from, at_millis: now, left_at_millis: left.at_millis }));
        let policies = match left.policies.clone().map(|states| self.policies.take_over(states)) {
            Some(Ok(names)) => names,
            Some(Err(why)) => {
                tracing::warn!(%why, "the policies' states in the handover are not usable; they start afresh");
                Vec::new()
            }
            None => Vec::new(),
        };
        tracing::info!(
            from = %left.left_by,
            age_seconds = now.saturating_sub(left.at_millis) / 1000,
            groups = left.groups.len(),
            ?policies,
            "taken over from the last leader"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::state::BackoffState;

    fn backoff(until: u64) -> Option<BackoffState> {
        Some(BackoffState { until, reason: format!("until {until}") })
    }

    #[test]
    fn taking_over_keeps_the_later_cooldowns_and_back_off_and_the_last_leaders_wait() {
        let mine = GroupState {
            last_scale_up: Some(5_000),
            last_scale_down: Some(1_000),
            waiting_since: Some(500),
            backoff: backoff(90_000),
            failures: 3,
            failed_at: Some(85_000),
            ..GroupState::default()
        };
        let theirs = GroupState {
            last_scale_up: Some(2_000),
            last_scale_down: Some(8_000),
            waiting_since: None,
            backoff: backoff(60_000),
            failures: 1,
            failed_at: Some(55_000),
            ..GroupState::default()
        };
        let merged = mine.taken_over(&theirs);
        assert_eq!((merged.last_scale_up, merged.last_scale_down), (Some(5_000), Some(8_000)));
        assert_eq!(merged.backoff, backoff(90_000), "the back-off that ends later");
        assert_eq!((merged.waiting_since, merged.failures), (None, 1), "the last leader's");
        assert_eq!(merged.failed_at, Some(85_000), "the later failure: plugins see the group failed lately");
        let none = GroupState::default().taken_over(&theirs);
        assert_eq!(none.backoff, backoff(60_000));
        // A new leader times the nodes the last one asked for, and keeps the group's recent
        // deliveries, so its first scheduled room is asked as far ahead as the last one's.
        let timing = GroupState { asked: vec![Some(70_000)], present: Some(4), provisioned: vec![80], ..theirs };
        let merged = GroupState { provisioned: vec![60], ..mine.clone() }.taken_over(&timing);
        assert_eq!((merged.asked, merged.present, merged.provisioned), (vec![Some(70_000)], Some(4), vec![80]));
        let kept = GroupState { provisioned: vec![60], ..mine }.taken_over(&GroupState::default());
        assert_eq!(kept.provisioned, [60], "a leader that timed nothing leaves this replica's figures");
    }

    /// In a rolling upgrade (or a rollback), a replica of this version may take over from a
    /// newer one: the fields it does not know are left aside and named, and what it knows
    /// (here a roll and a group's cooldown) is taken over as usual.
    #[test]
    fn a_handover_from_a_newer_version_is_taken_with_the_fields_it_does_not_know_named() {
        let text = r#"{"at-millis": 10, "left-by": "replica-new", "drift": {"general": true},
            "groups": {"general": {"last-scale-up": 7, "surge": 2}},
            "rolls": {"general": {"before-millis": 5, "at-once": 1, "caller": "ops", "reason": "AMI", "started": 1}}}"#;
        let left: Handover = serde_json::from_str(text).unwrap();
        assert_eq!(left.unknown_fields(), ["drift", "groups.general.surge"]);
        let mut state = EngineState::default();
        state.take_over(&left);
        assert_eq!(state.groups["general"].last_scale_up, Some(7));
        assert_eq!(state.rolls["general"].started, 1);
        let again = serde_json::to_string(&state.handover(11, "replica-old")).unwrap();
        assert!(!again.contains("drift") && !again.contains("surge"), "not written back: {again}");
    }

    #[test]
    fn a_handover_reads_back_as_it_was_left() {
        let mut state = EngineState::default();
        state.group("batch").last_scale_up = Some(7);
        (state.group("batch").failures, state.group("batch").failed_at) = (1, Some(8));
        let web =
            WorkloadRef { kind: ballast_sdk::WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
        state.placed_at.insert(web.clone(), 9);
        state.removed.insert("n1".into());
        let mut left = state.handover(10, "replica-a");
        left.policies = Some(serde_json::json!({"at-millis": 10, "policies": {}}));
        let text = serde_json::to_string(&left).unwrap();
        let read: Handover = serde_json::from_str(&text).unwrap();
        assert_eq!(read, left);

        let mut next = EngineState::default();
        next.take_over(&read);
        assert_eq!(next.groups["batch"].last_scale_up, Some(7));
        let failure = next.groups["batch"].launch_failure("batch", 10).map(|f| (f.failed_at_millis, f.in_a_row));
        assert_eq!(failure, Some((8, 1)), "a new leader still tells plugins the group failed lately");
        assert_eq!(next.placed_at[&web], 9);
        assert!(next.removed.contains("n1"));
    }
}

//! Node repair: a node that stopped being Ready (its kubelet died, its instance is impaired)
//! runs nothing and never comes back by itself, yet its group counts it. After
//! `replace-unready-after` (Cluster Autoscaler's `scale-down-unready-time`, 20 minutes; a
//! group's `scaledownunreadytime` tag overrides it) its instance is terminated with the
//! group's size kept, so the group launches a replacement, as an Auto Scaling health check
//! or Karpenter's node repair would.

use std::collections::BTreeMap;
use std::time::Duration;

use ballast_sdk::{Action, Snapshot};

use super::observe::{NodeFacts, Observation};
use super::policies::Policies;
use super::ports::{Capacity, Cluster};
use super::record::{ActionResult, DecisionRecord, GuardOutcome, Record};
use super::{Engine, HOST};

/// A node to replace, and since when it has not been Ready.
struct Broken<'a> {
    node: &'a str,
    group: &'a str,
    instance_id: &'a str,
    /// When it stopped being Ready (milliseconds since the epoch).
    unready_since: u64,
    limit: Duration,
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Replaces the nodes of managed groups that have not been Ready for their group's limit.
    ///
    /// # Guarantees
    ///
    /// Each such node is replaced once: its instance terminated without a decrement (or, in a
    /// group backing off, with one: see below), and the node remembered until it leaves the
    /// cluster. Nodes being removed are left to their
    /// drain. Nothing is replaced while the unready brake holds (more than 3 nodes unready
    /// and over `max-unready-fraction`): so many at once is a cluster-wide fault (network,
    /// control plane) that new instances would not mend. A group backing off from failed
    /// launches (a node that never became Ready is one) gets no replacement: the instance is
    /// terminated with a decrement instead, down to the group's min-size, as Cluster
    /// Autoscaler removes a node that did not come up and backs the group off. Every
    /// replacement is recorded as a decision of `ballast`; in dry-run it is recorded and not
    /// done.
    ///
    /// # Caveats
    ///
    /// The node is not drained: its kubelet is not answering, so evictions could not finish.
    /// Its pods go when the instance does (their controllers recreate them), PodDisruptionBudgets
    /// notwithstanding, as with Karpenter's repair.
    pub(super) async fn repair_unready(&mut self, obs: &Observation, now: u64, tick: u64) {
        let default_limit = self.config.guardrails.replace_unready_after;
        self.state.repaired.retain(|n| obs.nodes.contains_key(n.as_str()));
        let (unready, total) = obs.unready;
        if unready > 3 && unready as f64 > total as f64 * self.config.guardrails.max_unready_fraction {
            tracing::warn!(unready, total, "too many nodes unready to repair any: a cluster-wide fault?");
            return;
        }
        let mut broken: Vec<Broken<'_>> = obs
            .nodes
            .iter()
            .filter(|(name, _)| {
                !self.state.drains.contains_key(name.as_ref()) && !self.state.repaired.contains(name.as_ref())
            })
            .filter_map(|(name, facts)| {
                let limits = Limits {
                    default: default_limit,
                    provision: self.config.guardrails.backoff.timeout,
                    backing_off: self.backing_off(facts.group.as_deref(), now),
                };
                broken(name, facts, obs, now, &limits)
            })
            .collect();
        broken.sort_by_key(|b| b.node);
        let mut shrunk: BTreeMap<&str, u32> = BTreeMap::new();
        for b in broken {
            // A group backing off cannot launch: its broken node goes without a replacement,
            // down to its min-size (below which Auto Scaling would launch one anyway).
            let backing_off = self.backing_off(Some(b.group), now);
            let taken = shrunk.get(b.group).copied().unwrap_or(0);
            let shrink =
                backing_off && obs.groups.get(b.group).is_some_and(|g| g.desired.saturating_sub(taken) > g.min);
            let result = self.repair(&b, shrink, now).await;
            if shrink && result == ActionResult::Done {
                *shrunk.entry(b.group).or_default() += 1;
            }
            self.record_repair(&b, shrink, result, now, tick);
        }
    }

    /// Whether `group` backs off from a failed launch at `now`.
    pub(super) fn backing_off(&self, group: Option<&str>, now: u64) -> bool {
        group.and_then(|g| self.state.groups.get(g)).is_some_and(|g| g.backing_off(now).is_some())
    }

    /// Terminates `b`'s instance, with a decrement if `shrink`; in dry-run, nothing.
    async fn repair(&mut self, b: &Broken<'_>, shrink: bool, now: u64) -> ActionResult {
        if self.config.mode != super::Mode::Enforce || !self.may_act() {
            return ActionResult::DryRun;
        }
        let call = if shrink {
            self.capacity.terminate_instance(b.group, b.instance_id).await
        } else {
            self.capacity.replace_instance(b.group, b.instance_id).await
        };
        match call {
            Ok(()) => {
                self.state.repaired.insert(b.node.to_string());
                if shrink {
                    self.state.group(b.group).last_scale_down = Some(now);
                }
                ActionResult::Done
            }
            Err(error) => ActionResult::Failed { error: error.to_string(), kind: Default::default() },
        }
    }

    fn record_repair(&self, b: &Broken<'_>, shrink: bool, result: ActionResult, now: u64, tick: u64) {
        // Names the moment, not a growing age, so the same decision made again (dry-run,
        // or a refused call retried) reads the same and is folded.
        let since = std::time::UNIX_EPOCH + Duration::from_millis(b.unready_since);
        let outcome = if shrink {
            format!(
                "group {} shrinks by one: it cannot launch now (backing off), so no replacement is asked for",
                b.group
            )
        } else {
            format!("group {} keeps its size, so a replacement launches", b.group)
        };
        let reason = format!(
            "node {} has not been Ready since {} (limit {}): its instance {} is terminated and {outcome}",
            b.node,
            humantime::format_rfc3339_seconds(since),
            crate::duration::display(b.limit),
            b.instance_id,
        );
        tracing::info!(node = b.node, group = b.group, shrink, "replacing a node that is not Ready");
        self.recorder.record(Record::Decision(DecisionRecord {
            tick,
            at_millis: now,
            plugin: HOST.to_string(),
            proposed: Action::RemoveNodes { nodes: vec![b.node.to_string()] },
            reason,
            guard: GuardOutcome::Accepted,
            result,
            repeated: None,
        }));
    }
}

/// How long a node of a group may stay unready.
struct Limits {
    /// `replace-unready-after`, unless the group's `scaledownunreadytime` tag says otherwise.
    default: Duration,
    /// `backoff.timeout`: how long a new node has to become Ready before its launch counts
    /// as failed.
    provision: Duration,
    /// The node's group is backing off from a failed launch.
    backing_off: bool,
}

/// `facts`' node, if it belongs to a managed group and has not been Ready for that group's
/// limit (its `scaledownunreadytime` tag, else the default; zero: never). A node that never
/// became Ready in a group backing off is a launch that failed: its limit is the time a new
/// node has to come up (`backoff.timeout`), if that is shorter, as Cluster Autoscaler's
/// `max-node-provision-time` is.
fn broken<'a>(
    name: &'a str,
    facts: &'a NodeFacts,
    obs: &'a Observation,
    now: u64,
    limits: &Limits,
) -> Option<Broken<'a>> {
    let since = facts.unready_since?;
    let group = facts.group.as_deref()?;
    let instance_id = facts.instance_id.as_deref().filter(|_| facts.listed)?;
    obs.groups.get(group).filter(|g| g.kind == ballast_sdk::NodeGroupKind::Asg)?;
    let mut limit =
        obs.snapshot.options_of(group).scale_down_unready_seconds.map_or(limits.default, Duration::from_secs);
    if !facts.lost && limits.backing_off && !limit.is_zero() {
        limit = limit.min(limits.provision);
    }
    let unready_for = Duration::from_millis(now.saturating_sub(since));
    (!limit.is_zero() && unready_for >= limit).then_some(Broken {
        node: name,
        group,
        instance_id,
        unready_since: since,
        limit,
    })
}

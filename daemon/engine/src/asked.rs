//! Node replacements asked for through the control API (`ballast ctl replace node`): an
//! operator's "this node is bad, give me another" (a kernel to patch, a noisy neighbour, a
//! node Karpenter users would `kubectl delete`). Each is handled as an instance retirement
//! is ([`super::interruption`]): the replacement is launched first, the pods wait for it to
//! be Ready (half the drain timeout at the most), then go through the Eviction API, PDBs
//! honoured, and the node is terminated with its group decremented.

use ballast_sdk::Action;
use tokio::sync::oneshot;

use super::control::Asked;
use super::observe::{FARGATE_GROUP, Observation};
use super::policies::Policies;
use super::ports::{Capacity, Cluster, Interruption, InterruptionCause};
use super::record::{ActionResult, DecisionRecord, GuardOutcome, Record, Stamped};
use super::rule::{Rule, Why};
use super::{Engine, HOST};

/// Where the decision record made of an asked-for replacement is sent.
pub type Answer = oneshot::Sender<Stamped>;

/// One asked-for replacement, waiting for the next tick.
#[derive(Debug)]
pub struct ReplaceRequest {
    pub node: String,
    pub asked: Asked,
    /// Only say what would be done: recorded as a dry run whatever the engine's mode.
    pub dry_run: bool,
    pub answer: Answer,
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Queues the replacement of `node` and makes a tick due at once.
    pub(super) fn ask_replacement(&mut self, node: String, asked: &Asked, dry_run: bool, answer: Answer) {
        self.asked_replacements.push(ReplaceRequest { node, asked: asked.clone(), dry_run, answer });
        self.schedule.ask();
    }

    /// Records `record` (a host decision about `node`) and sends it to whoever asked for the
    /// node's replacement, if someone did.
    pub(super) fn record_answered(&mut self, node: &str, record: Record) {
        let Some(answer) = self.asked_answers.remove(node) else {
            self.recorder.record(record);
            return;
        };
        let id = self.recorder.record(record.clone());
        // The asker may have stopped waiting; the record is kept either way.
        let _ = answer.send(Stamped::new(id, record));
    }

    /// An asked-for replacement of `instance_id` as an interruption warning, due a drain
    /// timeout from `now` (so the pods wait for the replacement for half of it at the most).
    pub(super) fn asked_warning(&self, instance_id: String, cause: InterruptionCause, now: u64) -> Interruption {
        let deadline_millis = now + self.config.guardrails.drain_timeout.as_millis() as u64;
        Interruption { instance_id, at_millis: now, deadline_millis, cause }
    }

    /// The asked-for replacements as interruption warnings ([`Engine::asked_warning`]).
    ///
    /// # Guarantees
    /// A node that is unknown, on Fargate, outside a managed group, without a listed
    /// instance, already being removed, annotated to be kept (`karpenter.sh/do-not-disrupt`,
    /// `scale-down-disabled`) or running a pod annotated `karpenter.sh/do-not-disrupt` is
    /// not replaced: the refusal is recorded, naming the rule and the node. Other removal
    /// blockers (a PDB allowing nothing now, `safe-to-evict: false`, no controller) do not
    /// refuse an operator's request: the drain evicts through the Eviction API, which
    /// honours PDBs, and is abandoned at `drain-timeout` if they never allow it.
    pub(super) fn asked_interruptions(&mut self, obs: &Observation, now: u64, tick: u64) -> Vec<Interruption> {
        let requests = std::mem::take(&mut self.asked_replacements);
        let mut warnings = Vec::with_capacity(requests.len());
        for request in requests {
            let cause = InterruptionCause::Asked { caller: request.asked.caller, reason: request.asked.reason };
            self.asked_answers.insert(request.node.clone(), request.answer);
            match self.replaceable(obs, &request.node) {
                Ok(instance_id) => {
                    if request.dry_run {
                        self.asked_dry_runs.insert(instance_id.clone());
                    }
                    warnings.push(self.asked_warning(instance_id, cause, now));
                }
                Err(why) => {
                    let refused = Record::Decision(DecisionRecord {
                        tick,
                        at_millis: now,
                        plugin: HOST.to_string(),
                        proposed: Action::RemoveNodes { nodes: vec![request.node.clone()] },
                        reason: cause.to_string(),
                        guard: GuardOutcome::Refused { why: vec![why] },
                        result: ActionResult::NotApplied,
                        repeated: None,
                    });
                    self.record_answered(&request.node, refused);
                }
            }
        }
        warnings
    }

    /// The instance behind `node` if it may be replaced, or why not.
    pub(super) fn replaceable(&self, obs: &Observation, node: &str) -> Result<String, Why> {
        let refuse = |rule, message: String| Err(Why::new(rule, format!("node {node}: {message}")));
        let Some(facts) = obs.nodes.get(node) else {
            return refuse(Rule::UnknownNode, "no such node in the cluster".into());
        };
        if self.state.drains.contains_key(node) || self.state.removed.contains(node) {
            return refuse(Rule::AlreadyBeingRemoved, "already being removed".into());
        }
        let group = match facts.group.as_deref() {
            Some(FARGATE_GROUP) => {
                return refuse(Rule::RemovalBlocked, "a Fargate node: it goes when its pod does".into());
            }
            Some(group) => group,
            None => return refuse(Rule::GroupNotManaged, "not in a managed node group".into()),
        };
        let Some(instance_id) = facts.instance_id.clone().filter(|_| facts.listed) else {
            return refuse(Rule::NoInstance, format!("no instance of {group} is known behind it"));
        };
        if let Some(annotation) = facts.kept_by {
            return refuse(Rule::RemovalBlocked, format!("annotated {annotation}=true"));
        }
        let kept = facts.pods.shapes.iter().find(|s| s.shape.template.do_not_disrupt);
        if let Some(pod) = kept.and_then(|s| Some(format!("{}/{}", s.shape.namespace, s.pods.first()?))) {
            return refuse(Rule::RemovalBlocked, format!("pod {pod} is annotated karpenter.sh/do-not-disrupt=true"));
        }
        Ok(instance_id)
    }
}

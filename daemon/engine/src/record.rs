//! Decision records: what each tick saw, what each plugin proposed, what the guardrails made
//! of it and what acting on it did. Kept in a bounded ring in memory and, when configured,
//! appended to a JSON-lines journal (see [`super::journal`]).

use ballast_sdk::Action;
use serde::{Deserialize, Serialize};

use super::config::Mode;
use super::rule::Why;

mod recorder;

pub use recorder::Recorder;

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    Tick(TickRecord),
    Decision(DecisionRecord),
    Removal(RemovalRecord),
    /// A change asked for through the control API: mode, plugins.
    Control(ControlRecord),
    /// An answer to Cluster Autoscaler's expander (`ballast expander`).
    Expander(ExpanderRecord),
}

impl Record {
    pub fn tick(&self) -> u64 {
        match self {
            Record::Tick(r) => r.tick,
            Record::Decision(r) => r.tick,
            Record::Removal(r) => r.tick,
            Record::Control(r) => r.tick,
            Record::Expander(r) => r.call,
        }
    }

    pub fn at_millis(&self) -> u64 {
        match self {
            Record::Tick(r) => r.at_millis,
            Record::Decision(r) => r.at_millis,
            Record::Removal(r) => r.at_millis,
            Record::Control(r) => r.at_millis,
            Record::Expander(r) => r.at_millis,
        }
    }
}

/// A change to the daemon made by someone: who, what, why. Applied between ticks; `tick` is
/// the last tick before it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ControlRecord {
    pub tick: u64,
    pub at_millis: u64,
    /// The token's name or the client certificate that asked.
    pub caller: String,
    /// What changed, e.g. `mode enforce -> paused`.
    pub change: String,
    pub reason: String,
}

/// One BestOptions call of Cluster Autoscaler's expander: the options CA offered, the ones
/// the policies chose (best first) and why. CA keeps all of its options when `chosen` is
/// empty or the call failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExpanderRecord {
    /// The call's number since the expander started (its `tick`).
    pub call: u64,
    pub at_millis: u64,
    pub offered: Vec<OfferSummary>,
    pub chosen: Vec<ChosenOption>,
    pub plugins: Vec<PluginRun>,
    /// Why no answer was given: a request that cannot be read, a plugin that failed, the
    /// deadline. CA then makes its own choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ExpanderRecord {
    /// `chosen`, `none-chosen` or `failed`: what outcome filters match.
    pub fn outcome(&self) -> &'static str {
        match (&self.error, self.chosen.is_empty()) {
            (Some(_), _) => "failed",
            (None, true) => "none-chosen",
            (None, false) => "chosen",
        }
    }
}

/// One of CA's options, as offered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OfferSummary {
    pub group: String,
    pub node_count: u32,
    /// Pending pods the option would schedule.
    pub pods: usize,
}

/// An option the policies chose: the scale-up proposal that named its group, and its plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChosenOption {
    pub group: String,
    pub plugin: String,
    pub proposed: Action,
    pub reason: String,
}

/// Why a tick ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    Periodic,
    /// A batch of new pending pods closed.
    PendingPods,
    /// Asked for explicitly (API, CLI, test).
    Manual,
}

/// What one tick saw and how its plugins ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TickRecord {
    pub tick: u64,
    pub at_millis: u64,
    pub mode: Mode,
    pub trigger: Trigger,
    /// Set when observing failed: nothing was evaluated or done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Another replica leads: this one observed and kept its caches warm, but evaluated
    /// and did nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    pub saw: SnapshotSummary,
    pub plugins: Vec<PluginRun>,
}

/// The figures a decision was taken on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotSummary {
    pub nodes: usize,
    pub ready_nodes: usize,
    pub pending_pods: usize,
    pub workloads: usize,
    pub nodes_being_removed: usize,
    /// Pending pods no node group can hold, nor Fargate (`unplaceable.rs`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unplaceable_pods: usize,
    pub groups: Vec<GroupSummary>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GroupSummary {
    pub id: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub ready: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_until_millis: Option<u64>,
    /// The nodes the group delivered this tick: seconds each took from the tick that asked
    /// for it (`provisioning-times`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered_seconds: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginRun {
    pub plugin: String,
    pub elapsed_micros: u64,
    pub decisions: usize,
    /// The error kind and message when the plugin failed and was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&super::policies::PolicyCall> for PluginRun {
    fn from(c: &super::policies::PolicyCall) -> Self {
        PluginRun {
            plugin: c.plugin.to_string(),
            elapsed_micros: c.elapsed.as_micros() as u64,
            decisions: c.decisions,
            error: c.error.clone(),
        }
    }
}

/// What the guardrails made of a proposed decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum GuardOutcome {
    Accepted,
    /// Done differently: clamped, split, converted. `applied` is what will be done.
    Changed {
        applied: Vec<Action>,
        why: Vec<Why>,
    },
    Refused {
        why: Vec<Why>,
    },
}

impl GuardOutcome {
    /// `accepted`, `changed` or `refused`: what records, filters and metrics call it.
    pub fn name(&self) -> &'static str {
        match self {
            GuardOutcome::Accepted => "accepted",
            GuardOutcome::Changed { .. } => "changed",
            GuardOutcome::Refused { .. } => "refused",
        }
    }

    /// The rules that spoke, in order.
    pub fn rules(&self) -> Vec<super::rule::Rule> {
        match self {
            GuardOutcome::Accepted => Vec::new(),
            GuardOutcome::Changed { why, .. } | GuardOutcome::Refused { why } => why.iter().map(|w| w.rule).collect(),
        }
    }

    pub fn applied(&self, proposed: &Action) -> Vec<Action> {
        match self {
            GuardOutcome::Accepted => vec![proposed.clone()],
            GuardOutcome::Changed { applied, .. } => applied.clone(),
            GuardOutcome::Refused { .. } => Vec::new(),
        }
    }
}

/// What acting did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum ActionResult {
    Done,
    /// A removal began: nodes cordoned, drains under way (see the removal records).
    Started,
    /// Dry-run: recorded, not done.
    DryRun,
    /// Proposed by a plugin in shadow mode: guarded as if enforced, never acted on.
    Shadow,
    /// Refused by the guardrails, or superseded: nothing to do.
    NotApplied,
    /// Accepted, and already so: the group was at that size, the workload in that place.
    Unchanged,
    /// Not done; `kind` says whether the API refused, throttled (retried next tick) or failed.
    Failed {
        error: String,
        #[serde(default)]
        kind: FailureKind,
    },
}

/// Why an action failed, from the adapter's error kind (see `engine::failure`). Ordered from
/// least to most serious.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Rate limited: the next tick tries again.
    Throttled,
    /// The API refused on purpose, with its reason.
    Refused,
    #[default]
    Failed,
}

impl ActionResult {
    /// `done`, `started`, `dry-run`, `shadow`, `not-applied`, `unchanged` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            ActionResult::Done => "done",
            ActionResult::Started => "started",
            ActionResult::DryRun => "dry-run",
            ActionResult::Shadow => "shadow",
            ActionResult::NotApplied => "not-applied",
            ActionResult::Unchanged => "unchanged",
            ActionResult::Failed { .. } => "failed",
        }
    }

    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            ActionResult::Failed { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            ActionResult::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DecisionRecord {
    pub tick: u64,
    pub at_millis: u64,
    /// The plugin that proposed it; `ballast` for the host's own (a drain timeout, a
    /// provisioning back-off).
    pub plugin: String,
    pub proposed: Action,
    pub reason: String,
    pub guard: GuardOutcome,
    pub result: ActionResult,
    /// Set on the record that closes a run of identical decisions on consecutive ticks
    /// (see [`Recorder::record`]): the first was recorded when it was made, the rest are
    /// counted here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeated: Option<Repeated>,
}

/// A run of one decision (same plugin, action, reason, guard outcome and result) made on
/// consecutive ticks. The closing record carries the guard's messages of the last time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Repeated {
    /// How many times it was made, the first included.
    pub count: u64,
    pub first_tick: u64,
    pub last_tick: u64,
    /// The id of the record of its first time.
    pub first_id: u64,
}

/// How a node removal ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RemovalOutcome {
    /// Drained and its instance terminated.
    Completed { evicted: u32 },
    /// Gave up and uncordoned the node.
    Abandoned { why: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RemovalRecord {
    pub tick: u64,
    pub at_millis: u64,
    pub node: String,
    pub group: String,
    /// The tick whose decision started it.
    pub started_tick: u64,
    #[serde(flatten)]
    pub outcome: RemovalOutcome,
    /// Why it was begun when no policy asked: `drifted`, `spot-interrupted`,
    /// `scheduled-change` or `replacement-asked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// A record with its id: its position in the history (the journal's line order, counting
/// from 1), the cursor of the control API's `Watch` and the key of its `Get`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamped {
    pub id: u64,
    pub record: Record,
    /// The record as the journal writes it: serialised at most once, when the journal or a
    /// reader first asks (a simulation without a journal never pays for it).
    json: std::sync::OnceLock<Box<str>>,
}

impl Stamped {
    pub fn new(id: u64, record: Record) -> Self {
        Stamped { id, record, json: std::sync::OnceLock::new() }
    }

    /// One line of JSON; empty only if the record cannot be serialised.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| serde_json::to_string(&self.record).unwrap_or_default().into())
    }
}

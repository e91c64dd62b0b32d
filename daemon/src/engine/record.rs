//! Decision records: what each tick saw, what each plugin proposed, what the guardrails made
//! of it and what acting on it did. Kept in a bounded ring in memory and, when configured,
//! appended to a JSON-lines journal (see [`super::journal`]).

use std::collections::VecDeque;

use ballast_sdk::Action;
use serde::{Deserialize, Serialize};

use super::config::Mode;
use super::journal::Journal;
use super::rule::Why;

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    Tick(TickRecord),
    Decision(DecisionRecord),
    Removal(RemovalRecord),
}

impl Record {
    pub fn tick(&self) -> u64 {
        match self {
            Record::Tick(r) => r.tick,
            Record::Decision(r) => r.tick,
            Record::Removal(r) => r.tick,
        }
    }
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
    pub groups: Vec<GroupSummary>,
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
}

/// The ring and, optionally, the journal.
pub struct Recorder {
    ring: VecDeque<Record>,
    capacity: usize,
    journal: Option<Journal>,
    journal_errors: u64,
}

impl Recorder {
    pub fn new(capacity: usize, journal: Option<Journal>) -> Self {
        Recorder {
            ring: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
            journal,
            journal_errors: 0,
        }
    }

    /// Keeps the record; a journal write that fails is logged and counted, never fatal: the
    /// autoscaler must keep working when its disk is full.
    pub fn record(&mut self, record: Record) {
        if let Some(journal) = &mut self.journal
            && let Err(error) = journal.append(&record)
        {
            self.journal_errors += 1;
            tracing::error!(%error, "cannot append to the decision journal");
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(record);
    }

    /// Seeds the ring with records read back from a journal after a restart.
    pub fn restore(&mut self, records: impl IntoIterator<Item = Record>) {
        for record in records {
            if self.ring.len() == self.capacity {
                self.ring.pop_front();
            }
            self.ring.push_back(record);
        }
    }

    pub fn records(&self) -> impl DoubleEndedIterator<Item = &Record> + ExactSizeIterator {
        self.ring.iter()
    }

    pub fn last_tick(&self) -> Option<u64> {
        self.ring.back().map(Record::tick)
    }

    pub fn journal_errors(&self) -> u64 {
        self.journal_errors
    }
}

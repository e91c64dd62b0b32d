//! Decision records: what each tick saw, what each plugin proposed, what the guardrails made
//! of it and what acting on it did. Kept in a bounded ring in memory and, when configured,
//! appended to a JSON-lines journal (see [`super::journal`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use ballast_sdk::Action;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

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

/// The ring and, optionally, the journal, shared: the engine records, readers (the control
/// API) list and wait for new records. Cheap to clone; every clone is the same log.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

struct Shared {
    log: Mutex<Log>,
    /// The id of the newest record; changes with every record.
    newest: watch::Sender<u64>,
}

struct Log {
    ring: VecDeque<Arc<Stamped>>,
    capacity: usize,
    next_id: u64,
    journal: Option<Journal>,
    journal_errors: u64,
    /// Runs of identical decisions open as of the last tick.
    runs: super::fold::Runs,
}

impl Recorder {
    pub fn new(capacity: usize, journal: Option<Journal>) -> Self {
        let log = Log {
            ring: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
            next_id: 1,
            journal,
            journal_errors: 0,
            runs: super::fold::Runs::default(),
        };
        Recorder { shared: Arc::new(Shared { log: Mutex::new(log), newest: watch::channel(0).0 }) }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while the log was held left at worst one record out; keep recording.
        self.shared.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the record and returns its id; a journal write that fails is logged and counted,
    /// never fatal: the autoscaler must keep working when its disk is full.
    ///
    /// # Guarantees
    ///
    /// A decision that changed nothing (refused, unchanged, dry-run, shadow) and is made
    /// again on the next tick, identical in plugin, action, reason, guard outcome and
    /// result, is not kept again: the run is counted, and when it ends (a tick passes
    /// without it, or [`Recorder::close_runs`]) one closing record with [`Repeated`] says
    /// how many times and over which ticks. The id returned for a folded decision is that
    /// of its first record. So a standing refusal costs two records, not one per tick.
    ///
    /// # Caveats
    ///
    /// A run still open when the process is killed has only its first record; the closing
    /// record is written at the tick after it ends, with that tick's number.
    pub fn record(&self, record: Record) -> u64 {
        let id = {
            let mut log = self.log();
            if let Record::Tick(tick) = &record {
                log.close_runs_before(Some(tick.tick), tick.at_millis);
            }
            if let Record::Decision(decision) = &record
                && let Some(first_id) = log.runs.fold(decision)
            {
                return first_id;
            }
            let id = log.write(record);
            let Log { ring, runs, .. } = &mut *log;
            if let Some(Record::Decision(decision)) = ring.back().map(|s| &s.record) {
                runs.open(decision, id);
            }
            id
        };
        self.shared.newest.send_replace(id);
        id
    }

    /// Ends every open run of identical decisions, writing the closing record of each that
    /// repeated (at shutdown, at the end of a simulation).
    pub fn close_runs(&self, at_millis: u64) {
        let id = {
            let mut log = self.log();
            log.close_runs_before(None, at_millis);
            log.next_id - 1
        };
        self.shared.newest.send_replace(id);
    }

    /// Seeds the ring with records read back from a journal after a restart; ids continue
    /// from them, so a reader's cursor stays valid across the restart.
    pub fn restore(&self, records: impl IntoIterator<Item = Record>) {
        let id = {
            let mut log = self.log();
            for record in records {
                let stamped = Stamped::new(log.next_id, record);
                log.push(stamped);
            }
            log.next_id - 1
        };
        self.shared.newest.send_replace(id);
    }

    /// Every record held, oldest first (a copy).
    pub fn records(&self) -> std::vec::IntoIter<Record> {
        self.log().ring.iter().map(|s| s.record.clone()).collect::<Vec<_>>().into_iter()
    }

    /// Records held with an id above `after`, oldest first, at most `limit`; `Err` with the
    /// oldest id held when records after `after` were dropped from the ring already.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Stamped>>, u64> {
        let log = self.log();
        let oldest = log.ring.front().map_or(log.next_id, |s| s.id);
        if after + 1 < oldest {
            return Err(oldest);
        }
        let skip = (after + 1 - oldest) as usize;
        Ok(log.ring.iter().skip(skip).take(limit).cloned().collect())
    }

    /// Walks the records held from the newest with an id below `before` (all with `None`),
    /// handing each to `visit` until it returns false.
    pub fn scan_back(&self, before: Option<u64>, mut visit: impl FnMut(&Arc<Stamped>) -> bool) {
        let log = self.log();
        let oldest = log.ring.front().map_or(log.next_id, |s| s.id);
        let end = match before {
            Some(b) => (b.saturating_sub(oldest) as usize).min(log.ring.len()),
            None => log.ring.len(),
        };
        for stamped in log.ring.range(..end).rev() {
            if !visit(stamped) {
                break;
            }
        }
    }

    /// The record with this id, if still held.
    pub fn get(&self, id: u64) -> Option<Arc<Stamped>> {
        let log = self.log();
        let oldest = log.ring.front()?.id;
        log.ring.get(id.checked_sub(oldest)? as usize).cloned()
    }

    /// Changes whenever a record is added; holds the newest id.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.newest.subscribe()
    }

    /// The id of the newest record (0 when none).
    pub fn newest_id(&self) -> u64 {
        self.log().next_id - 1
    }

    pub fn last_tick(&self) -> Option<u64> {
        self.log().ring.back().map(|s| s.record.tick())
    }

    pub fn journal_errors(&self) -> u64 {
        self.log().journal_errors
    }
}

impl Log {
    /// Appends to the journal and keeps the record; returns its id.
    fn write(&mut self, record: Record) -> u64 {
        let stamped = Stamped::new(self.next_id, record);
        let written = match &mut self.journal {
            None => Ok(()),
            Some(_) if stamped.json().is_empty() => Err(std::io::Error::other("the record could not be serialised")),
            Some(journal) => journal.append_line(stamped.json()),
        };
        if let Err(error) = written {
            self.journal_errors += 1;
            tracing::error!(%error, "cannot append to the decision journal");
        }
        self.push(stamped)
    }

    /// Ends the runs not made on the tick before `tick` (all of them with `None`), writing
    /// the closing record of each that repeated, stamped `tick` (the tick at which its end
    /// is known) or the newest record's tick, so the history stays in tick order.
    fn close_runs_before(&mut self, tick: Option<u64>, at_millis: u64) {
        let newest = self.ring.back().map_or(0, |s| s.record.tick());
        for closing in self.runs.end(tick, newest, at_millis) {
            self.write(Record::Decision(closing));
        }
    }

    /// Keeps `stamped`, whose id must be `next_id`.
    fn push(&mut self, stamped: Stamped) -> u64 {
        let id = stamped.id;
        self.next_id = id + 1;
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(Arc::new(stamped));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(n: u64) -> Record {
        Record::Control(ControlRecord {
            tick: n,
            at_millis: n,
            caller: "t".into(),
            change: format!("change {n}"),
            reason: String::new(),
        })
    }

    #[test]
    fn ids_continue_from_the_journal_and_a_cursor_past_the_ring_is_refused_not_skipped() {
        let recorder = Recorder::new(3, None);
        recorder.restore((1..=5).map(control));
        assert_eq!(recorder.newest_id(), 5);
        assert_eq!(recorder.record(control(6)), 6, "ids continue after a restore");
        let held: Vec<u64> = recorder.after(3, 10).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(held, [4, 5, 6]);
        assert_eq!(recorder.after(2, 10).unwrap_err(), 4, "record 3 is gone: say so, never skip it");
        assert!(recorder.after(6, 10).unwrap().is_empty());
        assert_eq!(recorder.get(5).map(|s| s.record.tick()), Some(5));
        assert!(recorder.get(3).is_none());
        let mut back = Vec::new();
        recorder.scan_back(Some(6), |s| {
            back.push(s.id);
            true
        });
        assert_eq!(back, [5, 4], "newest first, below the page token");
    }
}

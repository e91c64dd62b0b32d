//! The engine: one tick is observe -> snapshot -> policies -> guardrails -> actuate -> record.
//!
//! It is deterministic and knows nothing of Kubernetes, AWS or Wasmtime, and this crate
//! depends on none of them: it talks to the traits in [`ports`] and [`policies`], and the same
//! code runs against the kube and AWS adapters in a cluster, the sim adapters in
//! `ballast simulate`, and wasm plugins or plain Rust for policies.
//!
//! # Layout
//! - `tick`: one tick, phase by phase, in the order above;
//! - [`ports`]: the cluster, capacity and clock traits and what they return;
//! - [`pods`]: pods counted by shape, kept by the adapters as pods change;
//! - [`policies`]: the policies port (what a plugin host implements);
//! - [`observe`]: views to snapshot, with removal and Fargate blockers worked out;
//! - [`guard`]: proposals to a safe [`guard::Plan`], with a reason for every change;
//! - [`actuate`]: the plan to adapter calls, and drains carried across ticks;
//! - [`rule`]: which guardrail changed or refused a proposal, and why;
//! - [`record`], [`journal`]: decision records in memory and on disk;
//! - [`schedule`]: periodic and batched event-driven ticks;
//! - [`config`], [`state`]: settings, and what is remembered between ticks;
//! - [`handover`]: what a leader leaves for the next one;
//! - [`unplaceable`]: pending pods no node group can hold, and why;
//! - [`cron`], [`window`]: cron schedules, and the disruption windows they open;
//! - [`interruption`], [`asked`], [`roll`]: spot warnings, scheduled changes, node and
//!   group replacements asked for, each a drain with its replacement started first.

pub mod actuate;
pub mod announce;
pub mod asked;
pub mod buffer;
pub mod config;
pub mod control;
pub mod cost;
pub mod cron;
pub mod disk;
pub mod drift;
pub mod duration;
pub mod eks;
pub mod failure;
mod fold;
pub mod guard;
pub mod handover;
pub mod interruption;
pub mod journal;
pub mod kept_away;
pub mod live;
pub mod node_labels;
pub mod node_spread;
pub mod observe;
pub mod placement_rules;
pub mod pod_affinity;
pub mod pods;
pub mod policies;
pub mod ports;
mod provisioning;
pub mod record;
pub mod repair;
pub mod roll;
pub mod rule;
pub mod schedule;
pub mod series;
pub mod state;
mod tick;
pub mod unplaceable;
pub mod unreadable;
pub mod window;
pub mod zone_affinity;
pub mod zone_domains;

use std::collections::HashMap;
use std::sync::Arc;

pub use config::{EngineConfig, Mode};
use guard::Plan;
pub use ports::{Capacity, Clock, Cluster};
use record::{ActionResult, DecisionRecord, GuardOutcome, Record, Recorder, Trigger};
use schedule::TickSchedule;
use state::EngineState;

use policies::{Policies, Proposed};

/// The name decisions of the host itself are recorded under.
pub const HOST: &str = "ballast";

/// What one tick did, for runners and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickOutcome {
    pub tick: u64,
    pub proposed: usize,
    pub accepted: usize,
    pub changed: usize,
    pub refused: usize,
    /// Plugins that failed this tick and were skipped.
    pub plugin_errors: usize,
    pub plan: Plan,
    pub error: Option<String>,
    /// Another replica leads: observed and recorded only.
    pub standby: bool,
}

pub struct Engine<C, P, Q: Policies> {
    cluster: C,
    capacity: P,
    policies: Q,
    config: EngineConfig,
    /// The cluster has a Fargate profile that steered workloads can use.
    fargate: bool,
    state: EngineState,
    recorder: Recorder,
    schedule: TickSchedule,
    tick: u64,
    gate: Option<Gate>,
    /// This replica's name, written on the nodes it marks for removal.
    identity: String,
    /// Adapter calls answered with throttling so far (each retried on a later tick).
    throttled: u64,
    live: Arc<live::Live<Q::Entry>>,
    /// CloudWatch series for the snapshot, read by [`series::feed`] outside the tick.
    series: Option<series::SeriesStore>,
    /// Where a leader leaves what the next one needs.
    handover: Option<Arc<dyn handover::HandoverStore>>,
    /// This replica led at its last tick and has taken over what the last leader left.
    led: bool,
    /// What each unplaceable pod was last told (`unplaceable::announcements`).
    told_unplaceable: HashMap<(String, String), Arc<str>>,
    /// Node replacements asked for through the control API, for the next tick.
    asked_replacements: Vec<asked::ReplaceRequest>,
    /// Who waits for this tick's decision on a node whose replacement was asked for.
    asked_answers: HashMap<String, asked::Answer>,
    /// The instances of this tick's asked replacements that are only to be described.
    asked_dry_runs: std::collections::HashSet<String>,
}

/// The record of what became of a plugin's proposal.
pub fn decision_record(
    proposal: &Proposed,
    tick: u64,
    at_millis: u64,
    guard: GuardOutcome,
    result: ActionResult,
) -> Record {
    Record::Decision(DecisionRecord {
        tick,
        at_millis,
        plugin: proposal.plugin.to_string(),
        proposed: proposal.decision.action.clone(),
        reason: proposal.decision.reason.clone(),
        guard,
        result,
        repeated: None,
    })
}

/// Whether this replica may act now (leadership, in a cluster). Checked at the start of a
/// tick and again before every action, so a replica that loses leadership mid-tick stops.
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Tick numbers continue from the last record the recorder holds, so a restart that
    /// restores records from the journal does not reuse tick ids.
    pub fn new(cluster: C, capacity: P, policies: Q, config: EngineConfig, recorder: Recorder) -> Self {
        let schedule = TickSchedule::new(config.tick_interval, &config.batching);
        let tick = recorder.last_tick().unwrap_or(0);
        let records: Vec<Record> = recorder.records().collect();
        let state = EngineState::restored(records.iter());
        let live = Arc::new(live::Live::default());
        live.set_mode(config.mode);
        live.set_plugins(policies.entries().to_vec());
        Engine {
            cluster,
            capacity,
            policies,
            config,
            fargate: false,
            state,
            recorder,
            schedule,
            tick,
            gate: None,
            identity: HOST.to_string(),
            throttled: 0,
            live,
            series: None,
            handover: None,
            led: false,
            told_unplaceable: HashMap::new(),
            asked_replacements: Vec::new(),
            asked_answers: HashMap::new(),
            asked_dry_runs: Default::default(),
        }
    }

    /// Offers the series `store` holds to the plugins (`snapshot.metrics`).
    pub fn with_series(mut self, store: series::SeriesStore) -> Self {
        self.series = Some(store);
        self
    }

    /// What the engine last saw and did, for readers on other tasks.
    pub fn live(&self) -> Arc<live::Live<Q::Entry>> {
        self.live.clone()
    }

    /// Names this replica on the removal marks it writes (the Lease identity, in a cluster).
    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }

    /// Leaves what the next leader needs with `store` after every tick it leads, and takes
    /// what the last one left before it first acts ([`handover`]).
    pub fn with_handover(mut self, store: Arc<dyn handover::HandoverStore>) -> Self {
        self.handover = Some(store);
        self
    }

    /// Acts only while `gate` says so; otherwise ticks observe and record, as a standby.
    pub fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The gate allows acting (always, without one).
    pub(crate) fn may_act(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g())
    }

    /// Declares that the cluster has a Fargate profile Ballast may steer workloads to.
    pub fn with_fargate(mut self, enabled: bool) -> Self {
        self.fargate = enabled;
        self
    }

    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    pub fn set_mode(&mut self, mode: Mode) {
        self.config.mode = mode;
        self.live.set_mode(mode);
    }

    /// Adapter calls the API throttled so far; each was retried on a later tick.
    pub fn throttled_calls(&self) -> u64 {
        self.throttled
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub fn policies(&self) -> &Q {
        &self.policies
    }

    pub fn cluster(&self) -> &C {
        &self.cluster
    }

    pub fn capacity(&self) -> &P {
        &self.capacity
    }

    /// New pending pods were seen: a batch opens or stays open.
    pub fn pods_arrived(&mut self, now: u64) {
        self.schedule.pods_arrived(now);
    }

    /// Whether a tick is due, and why.
    pub fn due(&self, now: u64) -> Option<Trigger> {
        self.schedule.due(now)
    }

    pub fn schedule(&self) -> &TickSchedule {
        &self.schedule
    }

    /// Runs one tick at `now`, in a `tick` span that the plugin calls inherit.
    pub async fn tick(&mut self, now: u64, trigger: Trigger) -> TickOutcome {
        use tracing::Instrument;
        let span = tracing::info_span!("tick", tick = self.tick + 1, mode = %self.config.mode);
        let started = std::time::Instant::now();
        tracing::debug!(tick = self.tick + 1, ?trigger, "tick started");
        let outcome = self.run_tick(now, trigger).instrument(span).await;
        if outcome.error.is_none() {
            self.leave_handover(now);
        }
        self.publish_tick(&outcome, now, trigger, started.elapsed());
        outcome
    }

    fn publish_tick(&self, outcome: &TickOutcome, now: u64, trigger: Trigger, duration: std::time::Duration) {
        let kind = match self.config.mode {
            _ if outcome.error.is_some() => "failed",
            _ if outcome.standby => "standby",
            Mode::Paused => "paused",
            Mode::DryRun => "dry-run",
            Mode::Enforce => "acted",
        };
        self.live.set_tick(live::TickInfo {
            tick: outcome.tick,
            at_millis: now,
            trigger,
            duration,
            outcome: kind,
            error: outcome.error.clone(),
            proposed: outcome.proposed,
            accepted: outcome.accepted,
            changed: outcome.changed,
            refused: outcome.refused,
            plugin_errors: outcome.plugin_errors,
            throttled_calls: self.throttled,
        });
    }
}

#[cfg(test)]
mod tests;

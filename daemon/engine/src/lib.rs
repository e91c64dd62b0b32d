//! The engine: one tick is observe -> snapshot -> policies -> guardrails -> actuate -> record.
//!
//! It is deterministic and knows nothing of Kubernetes, AWS or Wasmtime, and this crate
//! depends on none of them: it talks to the traits in [`ports`] and [`policies`], and the same
//! code runs against the kube and AWS adapters in a cluster, the sim adapters in
//! `ballast simulate`, and wasm plugins or plain Rust for policies.
//!
//! # Layout
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
pub mod config;
pub mod control;
pub mod cost;
pub mod cron;
pub mod drift;
pub mod duration;
pub mod eks;
pub mod failure;
mod fold;
pub mod guard;
pub mod handover;
pub mod interruption;
pub mod journal;
pub mod live;
pub mod node_labels;
pub mod observe;
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
pub mod unplaceable;
pub mod unreadable;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ballast_sdk::SnapshotData;

pub use config::{EngineConfig, Mode};
use guard::{Guard, Plan};
use observe::{Observation, ObserveContext};
pub use ports::{Capacity, Clock, Cluster};
use record::{
    ActionResult, DecisionRecord, GroupSummary, GuardOutcome, PluginRun, Record, Recorder, SnapshotSummary, TickRecord,
    Trigger,
};
use schedule::TickSchedule;
use state::EngineState;

use policies::{Evaluation, Policies, Proposed};

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

/// What the guardrails would make of shadow-mode proposals were they enforced: guarded after
/// the enforced ones, as a plugin at the end of the chain would be.
fn shadowed_outcomes(guard: &Guard<'_>, enforced: &[Proposed], shadowed: &[Proposed]) -> Vec<GuardOutcome> {
    if shadowed.is_empty() {
        return Vec::new();
    }
    let all: Vec<Proposed> = enforced.iter().chain(shadowed).cloned().collect();
    let (_, mut outcomes) = guard.run(&all);
    outcomes.split_off(enforced.len().min(outcomes.len()))
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

    /// What the views show, with what the engine remembers (back-offs, drains, cooldowns).
    fn observation(
        &self,
        cluster: ports::ClusterView,
        groups: Vec<ports::GroupView>,
        pricing: ballast_sdk::FargatePricing,
        now: u64,
    ) -> Observation {
        let state = &self.state;
        let backoff = |g: &str| state.groups.get(g).is_some_and(|s| s.backing_off(now).is_some());
        let being_removed = |n: &str| state.drains.contains_key(n);
        let cooldown = |g: &str| state.cooldown(g, &self.config.guardrails.cooldown);
        let cx = ObserveContext {
            now_millis: now,
            guardrails: &self.config.guardrails,
            fargate: self.fargate,
            fargate_pricing: pricing,
            backoff: &backoff,
            being_removed: &being_removed,
            removals_under_way: state.drains.len(),
            cooldown: &cooldown,
            placement_cooldowns: state.placement_cooldowns(now, self.config.guardrails.cooldown.placement),
            metrics: self.series.as_ref().map(series::SeriesStore::latest).unwrap_or_default(),
        };
        observe::observe(cluster, groups, &cx)
    }

    async fn run_tick(&mut self, now: u64, trigger: Trigger) -> TickOutcome {
        self.tick += 1;
        self.schedule.ticked(now);
        let tick = self.tick;

        let observed = async {
            let cluster = self.cluster.observe().await?;
            let groups = self.capacity.node_groups().await?;
            let pricing = self.capacity.fargate_pricing().await?;
            Ok::<_, ports::AdapterError>((cluster, groups, pricing))
        }
        .await;
        let (cluster, groups, pricing) = match observed {
            Ok(views) => views,
            Err(error) => {
                tracing::warn!(%error, "observation failed; nothing done this tick");
                let message = error.to_string();
                self.record_tick(now, trigger, SnapshotSummary::default(), &[], Some(message.clone()), false);
                return TickOutcome { tick, error: Some(message), ..TickOutcome::default() };
            }
        };

        if let Err(error) = self.lead_or_stand_by(now).await {
            let message = error.to_string();
            tracing::warn!(%message, "not leading until the last leader's handover is read");
            self.record_tick(now, trigger, SnapshotSummary::default(), &[], Some(message.clone()), false);
            return TickOutcome { tick, error: Some(message), ..TickOutcome::default() };
        }
        if self.config.mode == Mode::Enforce && self.may_act() {
            self.adopt_marked(&cluster, now, tick).await;
        }
        // Spot warnings (and replacements asked for) are acted on before the snapshot policies
        // see is final, so that it shows the replacements' growth (sizes, cooldowns) and the
        // warned nodes draining.
        let warnings = if self.config.mode != Mode::Paused && self.may_act() {
            self.read_interruptions().await
        } else {
            Vec::new()
        };
        // Drift replacement runs in dry-run too, so its would-be replacements are recorded (a
        // roll does not advance in dry-run: `rolling_interruptions`).
        let drifting = self.config.guardrails.drift.replace && drift::any(&groups);
        let rolling = (!self.state.rolls.is_empty() || drifting) && self.config.mode != Mode::Paused && self.may_act();
        let mut obs = if warnings.is_empty() && self.asked_replacements.is_empty() && !rolling {
            self.observation(cluster, groups, pricing, now)
        } else {
            let warned = self.observation(cluster.clone(), groups.clone(), pricing.clone(), now);
            let mut warnings = warnings;
            warnings.extend(self.asked_interruptions(&warned, now, tick));
            if rolling {
                warnings.extend(self.rolling_interruptions(&warned, now));
            }
            let raised = self.handle_interruptions(&warned, warnings, now, tick).await;
            let mut groups = groups;
            for group in &mut groups {
                group.desired_size = raised.get(&group.id).copied().unwrap_or(group.desired_size);
            }
            self.observation(cluster, groups, pricing, now)
        };
        let watched = self.watch_provisioning(&mut obs, now);
        let obs = Arc::new(obs);
        let unplaceable = unplaceable::find(&obs.snapshot);
        let summary =
            SnapshotSummary { unplaceable_pods: unplaceable.len(), ..self.summary(&obs, now, &watched.delivered) };
        let told = match self.config.mode {
            Mode::Enforce if self.may_act() => unplaceable::announcements(&unplaceable, &mut self.told_unplaceable),
            _ => Vec::new(),
        };
        self.live.set_leading(self.may_act(), now);
        self.live.set_observed(live::Observed {
            at_millis: now,
            obs: obs.clone(),
            state: self.state.clone(),
            guardrails: self.config.guardrails.clone(),
            unplaceable_pods: unplaceable.len(),
        });

        if self.config.mode == Mode::Paused {
            self.record_tick(now, trigger, summary, &[], None, false);
            return TickOutcome { tick, ..TickOutcome::default() };
        }
        if !self.may_act() {
            self.record_tick(now, trigger, summary, &[], None, true);
            return TickOutcome { tick, standby: true, ..TickOutcome::default() };
        }

        for announcement in told {
            self.cluster.announce(announcement).await;
        }
        self.repair_unready(&obs, now, tick).await;
        let Evaluation { proposals, calls } = self.policies.evaluate(obs.snapshot.clone()).await;
        tracing::debug!(proposals = proposals.len(), "policies evaluated");
        let runs: Vec<PluginRun> = calls.iter().map(PluginRun::from).collect();
        self.record_tick(now, trigger, summary, &runs, None, false);
        self.reset_failed_groups(watched.resets, now, tick).await;

        let (proposals, shadowed): (Vec<_>, Vec<_>) = proposals.into_iter().partition(|p| !p.shadow);
        let guard = Guard { obs: &obs, config: &self.config.guardrails, state: &self.state, now };
        let (plan, outcomes) = guard.run(&proposals);
        let shadow_outcomes = shadowed_outcomes(&guard, &proposals, &shadowed);
        let mut outcome = TickOutcome {
            tick,
            proposed: proposals.len(),
            plugin_errors: runs.iter().filter(|r| r.error.is_some()).count(),
            ..TickOutcome::default()
        };
        for guard in &outcomes {
            match guard {
                GuardOutcome::Accepted => outcome.accepted += 1,
                GuardOutcome::Changed { .. } => outcome.changed += 1,
                GuardOutcome::Refused { .. } => outcome.refused += 1,
            }
        }

        let results = match self.config.mode {
            Mode::Enforce => self.actuate(&plan, &obs, now, tick).await,
            _ => actuate::Results::default(),
        };
        for (proposal, guard) in proposals.iter().zip(outcomes) {
            let result = match self.config.mode {
                _ if matches!(guard, GuardOutcome::Refused { .. }) => ActionResult::NotApplied,
                Mode::DryRun => ActionResult::DryRun,
                _ => results.for_actions(&guard.applied(&proposal.decision.action)),
            };
            if matches!(result, ActionResult::Done | ActionResult::Started) {
                for announcement in announce::applied(
                    &proposal.plugin,
                    &guard.applied(&proposal.decision.action),
                    &proposal.decision.reason,
                ) {
                    self.cluster.announce(announcement).await;
                }
            }
            self.recorder.record(decision_record(proposal, tick, now, guard, result));
        }
        for (proposal, guard) in shadowed.iter().zip(shadow_outcomes) {
            let result = match guard {
                GuardOutcome::Refused { .. } => ActionResult::NotApplied,
                _ => ActionResult::Shadow,
            };
            self.recorder.record(decision_record(proposal, tick, now, guard, result));
        }
        if self.config.mode == Mode::Enforce {
            self.advance_drains(&obs, now, tick).await;
        }
        outcome.plan = plan;
        outcome
    }

    fn summary(&self, obs: &Observation, now: u64, delivered: &BTreeMap<String, Vec<u32>>) -> SnapshotSummary {
        let s: &SnapshotData = &obs.snapshot;
        SnapshotSummary {
            nodes: s.nodes.len(),
            ready_nodes: s.nodes.iter().filter(|n| n.ready).count(),
            pending_pods: s.pending_pods.len(),
            workloads: s.workloads.len(),
            nodes_being_removed: self.state.drains.len(),
            unplaceable_pods: 0,
            groups: obs
                .groups
                .iter()
                .map(|(id, g)| GroupSummary {
                    id: id.clone(),
                    min: g.min,
                    max: g.max,
                    desired: g.desired,
                    ready: g.ready,
                    backoff_until_millis: self.state.groups.get(id).and_then(|s| s.backing_off(now)).map(|b| b.until),
                    delivered_seconds: delivered.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    fn record_tick(
        &mut self,
        now: u64,
        trigger: Trigger,
        saw: SnapshotSummary,
        plugins: &[PluginRun],
        error: Option<String>,
        standby: bool,
    ) {
        self.recorder.record(Record::Tick(TickRecord {
            tick: self.tick,
            at_millis: now,
            mode: self.config.mode,
            trigger,
            error,
            standby,
            saw,
            plugins: plugins.to_vec(),
        }));
    }
}

#[cfg(test)]
mod tests;

//! One tick, phase by phase: read the views; take over from the last leader or stand by;
//! adopt drains left marked; act on interruptions (spot warnings, scheduled changes, asked
//! replacements, rolls, drift) before the snapshot is final; publish what was seen; then
//! policies -> guardrails -> actuate -> record.

use std::collections::BTreeMap;
use std::sync::Arc;

use ballast_sdk::{FargatePricing, SnapshotData};

use super::config::Mode;
use super::guard::Guard;
use super::observe::{self, Observation, ObserveContext};
use super::policies::{Evaluation, Policies, Proposed};
use super::ports::{AdapterError, Announcement, Capacity, Cluster, ClusterView, GroupView};
use super::record::{
    ActionResult, GroupSummary, GuardOutcome, PluginRun, Record, SnapshotSummary, TickRecord, Trigger,
};
use super::{Engine, TickOutcome, actuate, announce, decision_record, drift, live, series, unplaceable};

/// What the adapters showed at the start of a tick.
#[derive(Clone)]
struct Views {
    cluster: ClusterView,
    groups: Vec<GroupView>,
    pricing: FargatePricing,
}

/// What a tick's observation comes to before policies see it: the summary its record
/// carries, and what unplaceable pods are to be told.
struct Seen {
    summary: SnapshotSummary,
    told: Vec<Announcement>,
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

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    pub(super) async fn run_tick(&mut self, now: u64, trigger: Trigger) -> TickOutcome {
        self.tick += 1;
        self.schedule.ticked(now);
        let tick = self.tick;
        let views = match self.read_views().await {
            Ok(views) => views,
            Err(error) => {
                tracing::warn!(%error, "observation failed; nothing done this tick");
                return self.failed_tick(now, trigger, error.to_string());
            }
        };
        if let Err(error) = self.lead_or_stand_by(now).await {
            let message = error.to_string();
            tracing::warn!(%message, "not leading until the last leader's handover is read");
            return self.failed_tick(now, trigger, message);
        }
        if self.config.mode == Mode::Enforce && self.may_act() {
            self.adopt_marked(&views.cluster, now, tick).await;
        }
        let mut obs = self.observe_interrupted(views, now, tick).await;
        let watched = self.watch_provisioning(&mut obs, now);
        let obs = Arc::new(obs);
        let Seen { summary, told } = self.publish_observed(&obs, &watched.delivered, now);
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
        if self.config.mode == Mode::Enforce {
            self.cluster.update_status(now).await;
        }
        self.repair_unready(&obs, now, tick).await;
        let Evaluation { proposals, calls } = self.policies.evaluate(obs.snapshot.clone()).await;
        tracing::debug!(proposals = proposals.len(), "policies evaluated");
        let runs: Vec<PluginRun> = calls.iter().map(PluginRun::from).collect();
        self.record_tick(now, trigger, summary, &runs, None, false);
        self.reset_failed_groups(watched.resets, now, tick).await;
        let mut outcome = self.decide(&obs, proposals, now, tick).await;
        outcome.plugin_errors = runs.iter().filter(|r| r.error.is_some()).count();
        if self.config.mode == Mode::Enforce {
            self.advance_drains(&obs, now, tick).await;
        }
        outcome
    }

    async fn read_views(&self) -> Result<Views, AdapterError> {
        Ok(Views {
            cluster: self.cluster.observe().await?,
            groups: self.capacity.node_groups().await?,
            pricing: self.capacity.fargate_pricing().await?,
        })
    }

    /// A tick that could not observe or take over: recorded with its error, nothing done.
    fn failed_tick(&mut self, now: u64, trigger: Trigger, message: String) -> TickOutcome {
        self.record_tick(now, trigger, SnapshotSummary::default(), &[], Some(message.clone()), false);
        TickOutcome { tick: self.tick, error: Some(message), ..TickOutcome::default() }
    }

    /// The observation policies get. Spot warnings (and replacements asked for, rolls,
    /// drift) are acted on first, against an observation of their own, so that the one
    /// policies get shows the replacements' growth (sizes, cooldowns) and the warned nodes
    /// draining.
    async fn observe_interrupted(&mut self, views: Views, now: u64, tick: u64) -> Observation {
        let mut warnings = if self.config.mode != Mode::Paused && self.may_act() {
            self.read_interruptions().await
        } else {
            Vec::new()
        };
        // Drift replacement runs in dry-run too, so its would-be replacements are recorded (a
        // roll does not advance in dry-run: `rolling_interruptions`).
        let drifting = self.config.guardrails.drift.replace && drift::any(&views.groups);
        let rolling = (!self.state.rolls.is_empty() || drifting) && self.config.mode != Mode::Paused && self.may_act();
        if warnings.is_empty() && self.asked_replacements.is_empty() && !rolling {
            return self.observation(views, now);
        }
        let warned = self.observation(views.clone(), now);
        warnings.extend(self.asked_interruptions(&warned, now, tick));
        if rolling {
            warnings.extend(self.rolling_interruptions(&warned, now));
        }
        let raised = self.handle_interruptions(&warned, warnings, now, tick).await;
        let mut views = views;
        for group in &mut views.groups {
            group.desired_size = raised.get(&group.id).copied().unwrap_or(group.desired_size);
        }
        self.observation(views, now)
    }

    /// What the views show, with what the engine remembers (back-offs, drains, cooldowns).
    fn observation(&self, views: Views, now: u64) -> Observation {
        let state = &self.state;
        let backoff = |g: &str| state.groups.get(g).is_some_and(|s| s.backing_off(now).is_some());
        let being_removed = |n: &str| state.drains.contains_key(n);
        let cooldown = |g: &str| state.cooldown(g, &self.config.guardrails.cooldown);
        let cx = ObserveContext {
            now_millis: now,
            guardrails: &self.config.guardrails,
            fargate: self.fargate,
            fargate_pricing: views.pricing,
            backoff: &backoff,
            being_removed: &being_removed,
            removals_under_way: state.drains.len(),
            cooldown: &cooldown,
            placement_cooldowns: state.placement_cooldowns(now, self.config.guardrails.cooldown.placement),
            metrics: self.series.as_ref().map(series::SeriesStore::latest).unwrap_or_default(),
        };
        observe::observe(views.cluster, views.groups, &cx)
    }

    /// Makes what this tick saw readable from other tasks (the control API, metrics), with
    /// what the tick's record says of it and what unplaceable pods are to be told.
    fn publish_observed(&mut self, obs: &Arc<Observation>, delivered: &BTreeMap<String, Vec<u32>>, now: u64) -> Seen {
        let mut unplaceable = unplaceable::find(&obs.snapshot);
        unplaceable.extend(unplaceable::passed_over_for_good(&obs.passed_over));
        let summary = SnapshotSummary { unplaceable_pods: unplaceable.len(), ..self.summary(obs, now, delivered) };
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
        Seen { summary, told }
    }

    /// The policies' proposals through the guardrails, the plan acted on in enforce mode,
    /// and each proposal recorded with what became of it.
    async fn decide(&mut self, obs: &Observation, proposals: Vec<Proposed>, now: u64, tick: u64) -> TickOutcome {
        let (proposals, shadowed): (Vec<_>, Vec<_>) = proposals.into_iter().partition(|p| !p.shadow);
        let guard = Guard { obs, config: &self.config.guardrails, state: &self.state, now };
        let (plan, outcomes) = guard.run(&proposals);
        let shadow_outcomes = shadowed_outcomes(&guard, &proposals, &shadowed);
        let mut outcome = TickOutcome { tick, proposed: proposals.len(), ..TickOutcome::default() };
        for guard in &outcomes {
            match guard {
                GuardOutcome::Accepted => outcome.accepted += 1,
                GuardOutcome::Changed { .. } => outcome.changed += 1,
                GuardOutcome::Refused { .. } => outcome.refused += 1,
            }
        }
        let results = match self.config.mode {
            Mode::Enforce => self.actuate(&plan, obs, now, tick).await,
            _ => actuate::Results::default(),
        };
        self.record_decisions(&proposals, outcomes, &results, now, tick).await;
        for (proposal, guard) in shadowed.iter().zip(shadow_outcomes) {
            let result = match guard {
                GuardOutcome::Refused { .. } => ActionResult::NotApplied,
                _ => ActionResult::Shadow,
            };
            self.recorder.record(decision_record(proposal, tick, now, guard, result));
        }
        outcome.plan = plan;
        outcome
    }

    /// Each enforced proposal's record, with the result of what was applied of it; what was
    /// done or started is announced on the objects it touched.
    async fn record_decisions(
        &mut self,
        proposals: &[Proposed],
        outcomes: Vec<GuardOutcome>,
        results: &actuate::Results,
        now: u64,
        tick: u64,
    ) {
        for (proposal, guard) in proposals.iter().zip(outcomes) {
            let result = match self.config.mode {
                _ if matches!(guard, GuardOutcome::Refused { .. }) => ActionResult::NotApplied,
                Mode::DryRun => ActionResult::DryRun,
                _ => results.for_actions(&guard.applied(&proposal.decision.action)),
            };
            if matches!(result, ActionResult::Done | ActionResult::Started) {
                let applied = guard.applied(&proposal.decision.action);
                for announcement in announce::applied(&proposal.plugin, &applied, &proposal.decision.reason) {
                    self.cluster.announce(announcement).await;
                }
            }
            self.recorder.record(decision_record(proposal, tick, now, guard, result));
        }
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

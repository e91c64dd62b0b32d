//! Figures read at scrape time: what the engine last published (groups, nodes, cost,
//! leadership, mode, plugins) and the adapters' own counters.

use std::sync::Arc;

use super::*;
use crate::aws::{CallCounts, Operation};
use crate::engine::ports::PassOver;
use crate::kubernetes::EvictionCounts;
use crate::kubernetes::handover::WriteCounts;

/// The adapters' counters, as they stand. `None` where the adapter does not exist (the
/// simulator has no Kubernetes watches or AWS calls): those series are then absent.
#[derive(Clone, Debug, Default)]
pub struct AdapterFigures {
    pub watch_restarts: Option<u64>,
    pub caches_synced: Option<bool>,
    pub evictions: Option<EvictionCounts>,
    pub aws_calls: Vec<(Operation, CallCounts)>,
    /// Values each adapter could not read so far.
    pub unreadable: Vec<Unreadable>,
    /// Handovers written to the ConfigMap for the next leader, and writes that failed.
    pub handover_writes: Option<WriteCounts>,
}

/// How many values one adapter (`kubernetes`, `aws`) could not read so far.
#[derive(Clone, Copy, Debug)]
pub struct Unreadable {
    pub adapter: &'static str,
    pub values: u64,
}

/// Asks the adapters for their counters.
pub type FiguresProbe = Arc<dyn Fn() -> AdapterFigures + Send + Sync>;

/// Sets a counter to a total kept elsewhere (it only ever grows there).
fn set_total(counter: &Counter, total: u64) {
    counter.inner().store(total, std::sync::atomic::Ordering::Relaxed);
}

/// One series per CapacityBuffer resolved at the last tick; a deleted one's series goes.
fn set_buffers(family: &Family<BufferLabels, Gauge>, buffers: &[ballast_sdk::CapacityBuffer]) {
    family.clear();
    for buffer in buffers {
        let labels = BufferLabels { namespace: buffer.namespace.clone(), name: buffer.name.clone() };
        family.get_or_create(&labels).set(i64::from(buffer.pods));
    }
}

impl Metrics {
    pub(super) fn refresh(&self) {
        self.refresh_engine();
        self.refresh_adapters((self.probe)());
    }

    fn refresh_engine(&self) {
        let f = &self.f;
        let mode = self.live.mode();
        f.mode.clear();
        f.mode.get_or_create(&ModeLabel { mode: mode.to_string() }).set(1);
        f.leader.set(i64::from(self.live.leading().leading));
        f.plugin_info.clear();
        for entry in self.live.plugins().iter() {
            let labels = PluginInfoLabels {
                plugin: entry.plugin.name().to_string(),
                mode: entry.mode.to_string(),
                sha256: entry.plugin.info().digest.clone(),
            };
            f.plugin_info.get_or_create(&labels).set(1);
        }
        let Some(observed) = self.live.observed() else { return };
        let snapshot = &observed.obs.snapshot;
        f.unschedulable.set(snapshot.pending_pods.len() as i64);
        f.unplaceable.set(observed.unplaceable_pods as i64);
        for reason in PassOver::ALL {
            let count = observed.obs.passed_over.iter().filter(|p| p.passed_over.reason == reason).count();
            f.passed_over.get_or_create(&ReasonLabel { reason: reason.label().into() }).set(count as i64);
        }
        set_buffers(&f.capacity_buffers, &snapshot.capacity_buffers);
        f.disruption_windows.clear();
        for window in &observed.guardrails.disruption_budget.windows {
            let labels = WindowLabels {
                schedule: window.schedule.as_str().to_string(),
                duration: crate::engine::duration::display(window.duration),
                reasons: match window.reasons.is_empty() {
                    true => "all".to_string(),
                    false => window.reasons.iter().map(crate::control::convert::kebab).collect::<Vec<_>>().join(","),
                },
            };
            f.disruption_windows.get_or_create(&labels).set(i64::from(window.open_since(observed.at_millis).is_some()));
        }
        let (unready, all) = observed.obs.unready;
        f.nodes.get_or_create(&StateLabel { state: "ready".into() }).set((all - unready.min(all)) as i64);
        f.nodes.get_or_create(&StateLabel { state: "unready".into() }).set(unready as i64);
        f.drains.set(observed.state.drains.len() as i64);
        for family in [&f.group_min, &f.group_max, &f.group_desired, &f.group_ready, &f.group_drifted] {
            family.clear();
        }
        f.group_backoff.clear();
        f.group_replacing.clear();
        for (group, roll) in &observed.state.rolls {
            f.group_replacing.get_or_create(&GroupLabel { node_group: group.clone() }).set(i64::from(roll.started));
        }
        f.group_cost.clear();
        let cost = crate::engine::cost::cost_per_hour(snapshot);
        let mut drifted: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for facts in observed.obs.nodes.values().filter(|f| f.drift.is_some()) {
            *drifted.entry(facts.group.as_deref().unwrap_or_default()).or_default() += 1;
        }
        for g in &snapshot.node_groups {
            let label = GroupLabel { node_group: g.id.clone() };
            f.group_min.get_or_create(&label).set(i64::from(g.min_size));
            f.group_max.get_or_create(&label).set(i64::from(g.max_size));
            f.group_desired.get_or_create(&label).set(i64::from(g.desired_size));
            f.group_ready.get_or_create(&label).set(i64::from(g.ready_nodes));
            f.group_drifted.get_or_create(&label).set(drifted.get(g.id.as_str()).copied().unwrap_or(0));
            f.group_cost.get_or_create(&label).set(cost.groups.get(&g.id).copied().unwrap_or(0.0));
            if let Some(b) = observed.state.groups.get(&g.id).and_then(|s| s.backing_off(observed.at_millis)) {
                f.group_backoff
                    .get_or_create(&BackoffLabels { node_group: g.id.clone(), reason: b.reason.clone() })
                    .set(1);
            }
        }
        f.fargate_cost.set(cost.fargate);
    }

    fn refresh_adapters(&self, figures: AdapterFigures) {
        let f = &self.f;
        if let Some(restarts) = figures.watch_restarts {
            set_total(&f.watch_restarts, restarts);
        }
        f.caches_synced.set(i64::from(figures.caches_synced.unwrap_or(true)));
        if let Some(e) = figures.evictions {
            for (result, total) in
                [("evicted", e.evicted), ("gone", e.gone), ("blocked", e.blocked), ("failed", e.failed)]
            {
                set_total(&f.evictions.get_or_create(&ResultLabel { result: result.into() }), total);
            }
        }
        if let Some(writes) = figures.handover_writes {
            for (result, total) in [("written", writes.written), ("failed", writes.failed)] {
                set_total(&f.handover_writes.get_or_create(&ResultLabel { result: result.into() }), total);
            }
        }
        for Unreadable { adapter, values } in figures.unreadable {
            set_total(&f.unreadable.get_or_create(&AdapterLabel { adapter: adapter.into() }), values);
        }
        for (op, counts) in figures.aws_calls {
            let labels = ApiLabels { service: op.service, operation: op.name };
            set_total(&f.aws_calls.get_or_create(&labels), counts.calls);
            set_total(&f.aws_retries.get_or_create(&labels), counts.attempts.saturating_sub(counts.calls));
            set_total(&f.aws_throttles.get_or_create(&labels), counts.throttled);
            set_total(&f.aws_server_errors.get_or_create(&labels), counts.server_errors);
        }
    }
}

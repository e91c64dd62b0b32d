//! Counters that follow the records: each decision, plugin run and node removal is counted
//! once, from the same record the journal and the control API see.

use std::sync::Arc;

use ballast_sdk::Action;
use tokio::sync::watch;

use super::*;
use crate::engine::record::Recorder;
use crate::engine::record::{Record, RemovalOutcome, TickRecord};

/// Records read per wake-up.
const BATCH: usize = 1024;

/// Counts every record made from now on (records restored from the journal are not
/// counted again: counters start at zero with the process, as Prometheus expects) until
/// `stop` turns true.
///
/// # Caveats
/// A follower that falls more than the ring's size behind skips what the ring dropped and
/// logs how many.
pub async fn follow(metrics: Arc<Metrics>, recorder: Recorder, mut stop: watch::Receiver<bool>) {
    let mut newest = recorder.subscribe();
    let mut cursor = recorder.newest_id();
    loop {
        loop {
            match recorder.after(cursor, BATCH) {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => {
                    for stamped in &batch {
                        metrics.count(&stamped.record);
                    }
                    cursor = batch.last().map_or(cursor, |s| s.id);
                }
                Err(oldest) => {
                    tracing::warn!(missed = oldest - 1 - cursor, "metrics fell behind the record ring");
                    cursor = oldest - 1;
                }
            }
        }
        tokio::select! {
            changed = newest.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

impl Metrics {
    /// Counts one record.
    pub fn count(&self, record: &Record) {
        let f = &self.f;
        match record {
            Record::Tick(tick) => {
                self.count_plugin_runs(tick);
                self.count_deliveries(tick);
            }
            Record::Decision(d) => {
                let labels = DecisionLabels {
                    plugin: d.plugin.clone(),
                    action: action_name(&d.proposed).into(),
                    guard: d.guard.name().into(),
                    result: d.result.name().into(),
                };
                // A closing record stands for the repeats after the first, already counted.
                let made = d.repeated.as_ref().map_or(1, |r| r.count.saturating_sub(1));
                f.decisions.get_or_create(&labels).inc_by(made);
            }
            Record::Removal(r) => match &r.outcome {
                RemovalOutcome::Completed { evicted } => {
                    // As Cluster Autoscaler's scaled_down_nodes_total: empty, or moved pods;
                    // or why the interruption path began it.
                    let reason = match (&r.cause, evicted) {
                        (Some(cause), _) => cause.clone(),
                        (None, 0) => "empty".into(),
                        (None, _) => "underutilized".into(),
                    };
                    let labels = RemovalLabels { node_group: r.group.clone(), reason };
                    f.nodes_removed.get_or_create(&labels).inc();
                }
                RemovalOutcome::Abandoned { .. } => {
                    f.removals_abandoned.get_or_create(&GroupLabel { node_group: r.group.clone() }).inc();
                }
            },
            Record::Control(_) | Record::Expander(_) => {}
        }
    }

    fn count_deliveries(&self, tick: &TickRecord) {
        for group in tick.saw.groups.iter().filter(|g| !g.delivered_seconds.is_empty()) {
            let histogram = self.f.group_provisioning.get_or_create(&GroupLabel { node_group: group.id.clone() });
            for seconds in &group.delivered_seconds {
                histogram.observe(f64::from(*seconds));
            }
        }
    }

    fn count_plugin_runs(&self, tick: &TickRecord) {
        for run in &tick.plugins {
            let plugin = PluginLabel { plugin: run.plugin.clone() };
            self.f.plugin_duration.get_or_create(&plugin).observe(run.elapsed_micros as f64 / 1e6);
            if let Some(error) = &run.error {
                // Recorded as "kind: message".
                let kind = error.split_once(':').map_or(error.as_str(), |(k, _)| k).to_string();
                self.f.plugin_errors.get_or_create(&PluginErrorLabels { plugin: run.plugin.clone(), kind }).inc();
            }
        }
    }
}

pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::ScaleTo { .. } => "scale-to",
        Action::ScaleBy { .. } => "scale-by",
        Action::RemoveNodes { .. } => "remove-nodes",
        Action::Place { .. } => "place",
    }
}

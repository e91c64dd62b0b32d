//! `queue-floor` (example): keeps a node group at least as large as a queue's backlog
//! needs, reading the depth from CloudWatch (interface 0.1.1's `snapshot.metrics`). Workers
//! that scale on the same queue (KEDA, an HPA on an external metric) then find nodes
//! waiting instead of pending for minutes.
//!
//! Configuration (`ballast run`):
//! ```yaml
//! policies:
//!   - plugin: /etc/ballast/policies/queue_floor.wasm
//!     settings: {series: orders-depth, group: workers, messages-per-node: 100, max: 20}
//!     metrics:
//!       - name: orders-depth
//!         namespace: AWS/SQS
//!         metric: ApproximateNumberOfMessagesVisible
//!         dimensions: {QueueName: orders}
//!         statistic: maximum
//!         period: 60s
//!         window: 5m
//!         every: 30s
//! ```
//! It only ever raises the group: scale-down stays with the other policies, whose removals
//! the guardrails keep above the group's min-size, not above this floor.

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// The series' name in the configuration's `metrics`.
    pub series: String,
    /// The node group to hold up.
    pub group: String,
    /// Messages one node's workers get through: the floor is depth / this, rounded up.
    pub messages_per_node: f64,
    /// The floor never goes below this...
    #[serde(default)]
    pub min: u32,
    /// ...nor above this (the group's max-size still applies).
    #[serde(default = "unbounded")]
    pub max: u32,
    /// A reading older than this many seconds is not acted on.
    #[serde(default = "five_minutes")]
    pub max_age_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            series: String::new(),
            group: String::new(),
            messages_per_node: 100.0,
            min: 0,
            max: unbounded(),
            max_age_seconds: five_minutes(),
        }
    }
}

fn unbounded() -> u32 {
    u32::MAX
}

fn five_minutes() -> u64 {
    300
}

pub struct QueueFloor;

impl Policy for QueueFloor {
    type Settings = Settings;
    type State = ();

    fn validate(settings: &Settings) -> Result<(), String> {
        if settings.series.is_empty() {
            return Err("series is required: the name of a query under this policy's metrics".into());
        }
        if settings.group.is_empty() {
            return Err("group is required: the node group to hold up".into());
        }
        if !(settings.messages_per_node > 0.0 && settings.messages_per_node.is_finite()) {
            return Err(format!("messages-per-node must be a positive number, not {}", settings.messages_per_node));
        }
        if settings.min > settings.max {
            return Err(format!("min {} is above max {}", settings.min, settings.max));
        }
        Ok(())
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, _: &mut ()) -> Result<Vec<Decision>, String> {
        let Some(depth) = fresh_depth(snapshot, settings) else { return Ok(Vec::new()) };
        let Some(group) = snapshot.node_group(&settings.group) else {
            return Err(format!("no node group '{}'", settings.group));
        };
        let needed = (depth / settings.messages_per_node).ceil().max(0.0).min(f64::from(u32::MAX)) as u32;
        let floor = needed.clamp(settings.min, settings.max);
        if group.desired_size >= floor {
            return Ok(Vec::new());
        }
        Ok(vec![Decision::new(
            Action::ScaleTo { group: group.id.clone(), size: floor },
            format!(
                "queue floor: {} is {depth} deep, {} messages per node needs {floor} nodes in {} (has {})",
                settings.series, settings.messages_per_node, group.id, group.desired_size
            ),
        )])
    }
}

/// The newest depth, unless the series failed, is empty, or is too old to act on.
fn fresh_depth(snapshot: &dyn Snapshot, settings: &Settings) -> Option<f64> {
    let Some(series) = snapshot.metric(&settings.series) else {
        log::warn(&format!("no series '{}': name it under this policy's metrics", settings.series));
        return None;
    };
    if let Some(error) = &series.error {
        log::warn(&format!("series '{}' could not be read: {error}", series.name));
        return None;
    }
    let age = snapshot.taken_at_millis().saturating_sub(series.read_at_millis) / 1000;
    (series.read_at_millis > 0 && age <= settings.max_age_seconds).then(|| series.latest()).flatten()
}

ballast_sdk::export_policy!(QueueFloor);

#[cfg(test)]
mod tests {
    use ballast_sdk::testing::{GroupBuilder, Harness, SnapshotBuilder};

    use super::*;

    fn evaluate(snapshot: &SnapshotData, settings: &Settings) -> Result<Vec<Decision>, String> {
        Harness::<QueueFloor>::with_settings(serde_json::to_value(settings).unwrap())?.evaluate(snapshot)
    }

    fn settings() -> Settings {
        Settings {
            series: "depth".into(),
            group: "workers".into(),
            messages_per_node: 100.0,
            min: 1,
            max: 20,
            max_age_seconds: 300,
        }
    }

    fn snapshot(desired: u32, depth: &[f64]) -> SnapshotBuilder {
        SnapshotBuilder::new()
            .at_millis(1_000_000_000)
            .group(GroupBuilder::asg("workers").sizes(0, desired, 50))
            .metric("depth", depth)
    }

    #[test]
    fn the_floor_follows_the_newest_depth_and_only_raises() {
        let decisions = evaluate(&snapshot(1, &[90.0, 450.0]).build(), &settings()).unwrap();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].action, Action::ScaleTo { group: "workers".into(), size: 5 });
        assert!(decisions[0].reason.contains("450"), "{}", decisions[0].reason);
        assert!(evaluate(&snapshot(6, &[450.0]).build(), &settings()).unwrap().is_empty());
        let capped = evaluate(&snapshot(1, &[1e9]).build(), &settings()).unwrap();
        assert_eq!(capped[0].action, Action::ScaleTo { group: "workers".into(), size: 20 });
    }

    #[test]
    fn settings_are_checked_at_load() {
        let zero = Settings { messages_per_node: 0.0, ..settings() };
        let error = Harness::<QueueFloor>::with_settings(serde_json::to_value(zero).unwrap()).err().unwrap();
        assert!(error.contains("messages-per-node"), "{error}");
    }

    #[test]
    fn a_failed_empty_or_stale_series_is_not_acted_on() {
        let mut failed = snapshot(0, &[900.0]).build();
        failed.metrics[0].error = Some("AccessDenied".into());
        assert!(evaluate(&failed, &settings()).unwrap().is_empty());
        assert!(evaluate(&snapshot(0, &[]).build(), &settings()).unwrap().is_empty());
        let mut stale = snapshot(0, &[900.0]).build();
        stale.metrics[0].read_at_millis -= 301_000;
        assert!(evaluate(&stale, &settings()).unwrap().is_empty());
    }
}

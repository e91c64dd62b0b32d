//! What one evaluation reads: the tick's snapshot, converted to WIT types only when a plugin
//! asks for a part, plus the plugin's own settings, state and the proposals made before it in
//! the chain.

use std::sync::Arc;

use ballast_sdk::{Snapshot, SnapshotData};

use super::bindings::types as w;
use super::convert;

/// The tick's snapshot, shared by every plugin of the chain.
///
/// Each getter converts its part straight from the model when a plugin asks for it: a getter
/// must hand Wasmtime an owned value anyway, so converting is one copy, where caching the
/// converted form would cost a copy into the cache and another out of it. A chain whose
/// plugins only read pending pods never converts the node list.
pub struct SharedSnapshot {
    data: Arc<SnapshotData>,
}

impl SharedSnapshot {
    pub fn new(data: Arc<SnapshotData>) -> Self {
        SharedSnapshot { data }
    }

    pub fn data(&self) -> &SnapshotData {
        &self.data
    }

    pub fn taken_at_millis(&self) -> u64 {
        self.data.taken_at_millis
    }

    pub fn node_groups(&self) -> Vec<w::NodeGroup> {
        self.data.node_groups.iter().map(convert::node_group).collect()
    }

    pub fn nodes(&self) -> Vec<w::Node> {
        self.data.nodes.iter().map(convert::node).collect()
    }

    pub fn nodes_in_group(&self, group: &str) -> Vec<w::Node> {
        self.data.nodes.iter().filter(|n| n.group.as_deref() == Some(group)).map(convert::node).collect()
    }

    pub fn pending_pods(&self) -> Vec<w::PendingPod> {
        self.data.pending_pods.iter().map(convert::pending_pod).collect()
    }

    /// Grouped once per tick (the first plugin to ask pays), shared by the chain.
    pub fn pending_shapes(&self) -> Vec<w::PendingShape> {
        self.data.pending_shapes().iter().map(convert::pending_shape).collect()
    }

    pub fn workloads(&self) -> Vec<w::Workload> {
        self.data.workloads.iter().map(convert::workload).collect()
    }

    pub fn fargate_pricing(&self) -> w::FargatePricing {
        convert::fargate_pricing(&self.data.fargate_pricing)
    }

    pub fn metrics(&self) -> Vec<w::MetricSeries> {
        self.data.metrics.iter().map(convert::metric_series).collect()
    }

    pub fn group_options(&self) -> Vec<w::GroupOptions> {
        self.data.group_options.iter().map(convert::group_options).collect()
    }

    pub fn scheduled_runs(&self) -> Vec<w::ScheduledRun> {
        self.data.scheduled_runs.iter().map(convert::scheduled_run).collect()
    }

    pub fn group_cooldowns(&self) -> Vec<w::GroupCooldown> {
        self.data.group_cooldowns.iter().map(convert::group_cooldown).collect()
    }

    pub fn horizontal_autoscalers(&self) -> Vec<w::HorizontalAutoscaler> {
        self.data.horizontal_autoscalers.iter().map(convert::horizontal_autoscaler).collect()
    }

    pub fn placement_cooldowns(&self) -> Vec<w::PlacementCooldown> {
        self.data.placement_cooldowns.iter().map(convert::placement_cooldown).collect()
    }

    pub fn launch_failures(&self) -> Vec<w::LaunchFailure> {
        self.data.launch_failures.iter().map(convert::launch_failure).collect()
    }

    pub fn provisioning_times(&self) -> Vec<w::ProvisioningTime> {
        self.data.provisioning_times.iter().map(convert::provisioning_time).collect()
    }

    pub fn capacity_buffers(&self) -> Vec<w::CapacityBuffer> {
        self.data.capacity_buffers.iter().map(convert::capacity_buffer).collect()
    }

    pub fn per_node_limits(&self) -> Vec<w::PerNodeLimit> {
        self.data.per_node_limits.iter().map(convert::per_node_limit).collect()
    }

    pub fn zone_spreads(&self) -> Vec<w::ZoneSpread> {
        self.data.zone_spreads.iter().map(convert::zone_spread).collect()
    }

    pub fn kept_away(&self) -> Vec<w::KeptAway> {
        self.data.kept_away.iter().map(convert::kept_away).collect()
    }

    pub fn pods_on_node(&self, node: &str) -> Vec<w::PodShape> {
        self.data.pods_on_node(node).iter().map(convert::pod_shape).collect()
    }

    pub fn node_group_storage(&self) -> Vec<Vec<u64>> {
        let disks = |g: &ballast_sdk::NodeGroup| {
            g.instance_types.iter().map(|t| t.allocatable.ephemeral_storage_bytes).collect()
        };
        self.data.node_groups.iter().map(disks).collect()
    }

    pub fn node_storage(&self) -> Vec<w::NodeStorage> {
        self.data.nodes.iter().map(convert::node_storage).collect()
    }

    pub fn nodes_in_group_storage(&self, group: &str) -> Vec<w::NodeStorage> {
        self.data.nodes.iter().filter(|n| n.group.as_deref() == Some(group)).map(convert::node_storage).collect()
    }

    pub fn pending_pod_storage(&self) -> Vec<u64> {
        self.data.pending_pods.iter().map(|p| p.requests.ephemeral_storage_bytes).collect()
    }

    pub fn pending_shape_storage(&self) -> Vec<u64> {
        self.data.pending_shapes().iter().map(|s| s.requests.ephemeral_storage_bytes).collect()
    }

    pub fn pods_on_node_storage(&self, node: &str) -> Vec<u64> {
        self.data.pods_on_node(node).iter().map(|p| p.requests.ephemeral_storage_bytes).collect()
    }

    pub fn workload_storage(&self) -> Vec<u64> {
        self.data.workloads.iter().map(|w| w.requests_per_replica.ephemeral_storage_bytes).collect()
    }

    pub fn scheduled_run_storage(&self) -> Vec<u64> {
        self.data.scheduled_runs.iter().map(|r| r.requests.ephemeral_storage_bytes).collect()
    }

    pub fn capacity_buffer_storage(&self) -> Vec<u64> {
        self.data.capacity_buffers.iter().map(|b| b.requests.ephemeral_storage_bytes).collect()
    }
}

/// Everything one plugin's evaluation reads.
#[derive(Clone)]
pub struct EvaluationInput {
    pub snapshot: Arc<SharedSnapshot>,
    /// The plugin's settings, JSON.
    pub settings: Arc<str>,
    /// What the plugin returned last time.
    pub state: Option<Vec<u8>>,
    /// What earlier plugins of the chain proposed this tick.
    pub proposals: Vec<w::Proposal>,
}

impl EvaluationInput {
    /// An input with no state and no earlier proposals.
    pub fn new(snapshot: Arc<SharedSnapshot>, settings: Arc<str>) -> Self {
        EvaluationInput { snapshot, settings, state: None, proposals: Vec::new() }
    }
}

/// The `snapshot` resource handed to a plugin. There is one per evaluation and the store's
/// context holds its data, so the handle itself carries nothing.
pub struct SnapshotResource;

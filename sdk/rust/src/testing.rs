//! Native testing for policies: run a [`Policy`] on a snapshot built in code, with the same
//! settings parsing and state round-trip the host does, and no wasm involved.
//!
//! ```
//! use ballast_sdk::testing::{GroupBuilder, Harness, SnapshotBuilder};
//! # use ballast_sdk::prelude::*;
//! # #[derive(Default)] struct Noop;
//! # impl Policy for Noop { type Settings = (); type State = ();
//! #   fn evaluate(_: &dyn Snapshot, _: &(), _: &mut ()) -> Result<Vec<Decision>, String> { Ok(vec![]) } }
//! let snapshot = SnapshotBuilder::new()
//!     .group(GroupBuilder::asg("web").instance_type("m5.large", "2", "8Gi", 0.096).sizes(0, 0, 10))
//!     .pending_pods("default", "web", 3, "500m", "1Gi")
//!     .build();
//! let decisions = Harness::<Noop>::new().evaluate(&snapshot).unwrap();
//! assert!(decisions.is_empty());
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::model::*;
use crate::quantity;
use crate::snapshot::SnapshotData;
use crate::{Policy, run, validate_settings};

/// Runs a policy natively, keeping its state between evaluations as the host would.
pub struct Harness<P: Policy> {
    settings: String,
    state: Option<Vec<u8>>,
    _policy: PhantomData<P>,
}

impl<P: Policy> Default for Harness<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Policy> Harness<P> {
    /// A harness with default settings and no state.
    pub fn new() -> Self {
        Harness { settings: String::new(), state: None, _policy: PhantomData }
    }

    /// A harness with these settings, validated as the host validates them at load.
    ///
    /// # Errors
    /// The message the host would refuse the plugin with.
    pub fn with_settings(settings: serde_json::Value) -> Result<Self, String> {
        let settings = settings.to_string();
        validate_settings::<P>(&settings)?;
        Ok(Harness { settings, state: None, _policy: PhantomData })
    }

    /// Evaluates the policy; the state it returns is handed to the next call.
    ///
    /// # Errors
    /// The policy's error.
    pub fn evaluate(&mut self, snapshot: &SnapshotData) -> Result<Vec<Decision>, String> {
        let outcome = run::<P>(snapshot, &self.settings, self.state.as_deref())?;
        self.state = Some(outcome.state);
        Ok(outcome.decisions)
    }

    /// The state as the host would store it (JSON).
    pub fn state(&self) -> Option<&[u8]> {
        self.state.as_deref()
    }
}

fn cpu(text: &str) -> u64 {
    quantity::parse(text, 1000.0).unwrap_or_else(|e| panic!("test builder: bad cpu: {e}"))
}

fn memory(text: &str) -> u64 {
    quantity::parse(text, 1.0).unwrap_or_else(|e| panic!("test builder: bad memory: {e}"))
}

/// Default max pods for builder nodes when a test does not care.
const DEFAULT_MAX_PODS: u32 = 110;

/// Builds a [`SnapshotData`] for tests. Quantities are Kubernetes notation; a malformed
/// literal panics, since it is a bug in the test.
#[derive(Default)]
pub struct SnapshotBuilder {
    data: SnapshotData,
}

impl SnapshotBuilder {
    pub fn new() -> Self {
        SnapshotBuilder::default()
    }

    /// Sets the time the snapshot was taken, in milliseconds since the epoch.
    pub fn at_millis(mut self, millis: u64) -> Self {
        self.data.taken_at_millis = millis;
        self
    }

    pub fn group(mut self, group: GroupBuilder) -> Self {
        self.data.node_groups.push(group.0);
        self
    }

    pub fn node(mut self, node: NodeBuilder) -> Self {
        self.data.nodes.push(node.0);
        self
    }

    /// Adds `count` pending pods of one Deployment, each requesting `cpu` and `memory`.
    pub fn pending_pods(
        mut self,
        namespace: &str,
        deployment: &str,
        count: usize,
        cpu_q: &str,
        memory_q: &str,
    ) -> Self {
        let requests = Resources::pod(cpu(cpu_q), memory(memory_q));
        let owner = WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: namespace.to_string(),
            name: deployment.to_string(),
        };
        for i in 0..count {
            self.data.pending_pods.push(PendingPod {
                namespace: namespace.to_string(),
                name: format!("{deployment}-{i}"),
                requests,
                owner: Some(owner.clone()),
                ..PendingPod::default()
            });
        }
        self
    }

    pub fn pending_pod(mut self, pod: PendingPod) -> Self {
        self.data.pending_pods.push(pod);
        self
    }

    pub fn workload(mut self, workload: Workload) -> Self {
        self.data.workloads.push(workload);
        self
    }

    pub fn proposal(mut self, plugin: &str, decision: Decision) -> Self {
        self.data.proposals.push(Proposal { plugin: plugin.to_string(), decision });
        self
    }

    /// A CloudWatch series, read at the snapshot's time, with these values oldest first
    /// (one a minute, the newest at the snapshot's time).
    pub fn metric(mut self, name: &str, values: &[f64]) -> Self {
        let now = self.data.taken_at_millis;
        let n = values.len() as u64;
        let points = values
            .iter()
            .enumerate()
            .map(|(i, &value)| MetricPoint { at_millis: now.saturating_sub((n - 1 - i as u64) * 60_000), value })
            .collect();
        self.data.metrics.push(MetricSeries { name: name.to_string(), points, read_at_millis: now, error: None });
        self
    }

    /// Puts pods of `shape` on `node` (interface 0.1.4 `pods-on-node`), adding their requests
    /// and count to the node's totals when the node is already in the snapshot.
    pub fn pods_on(mut self, node: &str, shape: PodShape) -> Self {
        if let Some(n) = self.data.nodes.iter_mut().find(|n| n.name == node) {
            n.requested = n.requested.saturating_add(&Resources { pods: 1, ..shape.requests }.times(shape.count));
            n.pod_count += shape.count;
        }
        self.data.pods_on_nodes.entry(node.to_string()).or_default().push(shape);
        self
    }

    /// Adds the next run of a scheduled workload (interface 0.1.5 `scheduled-runs`).
    pub fn scheduled_run(mut self, run: ScheduledRun) -> Self {
        self.data.scheduled_runs.push(run);
        self
    }

    /// Says the host last grew `group` at `at_millis` and refuses to shrink it for
    /// `scale_down_after_seconds` after (interface 0.1.6 `group-cooldowns`).
    pub fn grown_at(mut self, group: &str, at_millis: u64, scale_down_after_seconds: u64) -> Self {
        self.data.group_cooldowns.retain(|c| c.group != group);
        self.data.group_cooldowns.push(GroupCooldown {
            group: group.to_string(),
            last_scale_up_millis: Some(at_millis),
            last_scale_down_millis: None,
            scale_up_allowed_at_millis: 0,
            scale_down_allowed_at_millis: at_millis + scale_down_after_seconds * 1000,
        });
        self
    }

    /// Says a HorizontalPodAutoscaler keeps `target` within `min..=max` replicas (interface
    /// 0.1.7 `horizontal-autoscalers`).
    pub fn autoscaled(mut self, target: WorkloadRef, min_replicas: u32, max_replicas: u32) -> Self {
        self.data.horizontal_autoscalers.retain(|a| a.target != target);
        self.data.horizontal_autoscalers.push(HorizontalAutoscaler { target, min_replicas, max_replicas });
        self
    }

    /// Says the host moved `workload` at `at_millis` and refuses to move it again for
    /// `cooldown_seconds` (interface 0.1.8 `placement-cooldowns`).
    pub fn placed_at(mut self, workload: WorkloadRef, at_millis: u64, cooldown_seconds: u64) -> Self {
        self.data.placement_cooldowns.retain(|c| c.workload != workload);
        let allowed_at_millis = at_millis + cooldown_seconds * 1000;
        self.data.placement_cooldowns.push(PlacementCooldown {
            workload,
            placed_at_millis: at_millis,
            allowed_at_millis,
        });
        self
    }

    /// Says `group` failed to launch at `at_millis`, `in_a_row` times since it last
    /// delivered, for `reason`, with no back-off holding it now (interface 0.1.9
    /// `launch-failures`).
    pub fn launch_failed(mut self, group: &str, at_millis: u64, in_a_row: u32, reason: &str) -> Self {
        self.data.launch_failures.retain(|f| f.group != group);
        self.data.launch_failures.push(LaunchFailure {
            group: group.into(),
            failed_at_millis: at_millis,
            reason: reason.into(),
            in_a_row,
            backing_off_until_millis: 0,
        });
        self
    }

    /// Says `group` delivered its last nodes in `recent_seconds`, oldest first (interface
    /// 0.1.10 `provisioning-times`).
    pub fn provisioned(mut self, group: &str, recent_seconds: &[u32]) -> Self {
        self.data.provisioning_times.retain(|t| t.group != group);
        self.data
            .provisioning_times
            .push(ProvisioningTime { group: group.into(), recent_seconds: recent_seconds.to_vec() });
        self
    }

    /// Adds a resolved CapacityBuffer (interface 0.1.11 `capacity-buffers`).
    pub fn capacity_buffer(mut self, buffer: CapacityBuffer) -> Self {
        self.data.capacity_buffers.push(buffer);
        self
    }

    /// Says at most `max_pods` pods of `workload` run on one node (interface 0.1.12
    /// `per-node-limits`).
    pub fn per_node_limit(mut self, workload: WorkloadRef, max_pods: u32) -> Self {
        self.data.per_node_limits.retain(|l| l.workload != workload);
        self.data.per_node_limits.push(PerNodeLimit { workload, max_pods });
        self
    }

    /// Says the scheduler keeps `workload` within `max_skew` over zones, with its pods on
    /// nodes by zone as given (interface 0.1.13 `zone-spreads`).
    pub fn zone_spread(mut self, workload: WorkloadRef, max_skew: u32, pods_by_zone: &[(&str, u32)]) -> Self {
        self.data.zone_spreads.retain(|s| s.workload != workload);
        let pods_by_zone = pods_by_zone.iter().map(|&(zone, pods)| ZonePods { zone: zone.into(), pods }).collect();
        self.data.zone_spreads.push(ZoneSpread { workload, max_skew, pods_by_zone });
        self
    }

    /// Says the scheduler keeps the pods of `a` and `b` off each other's nodes (interface
    /// 0.1.16 `kept-away`), listed under both as a host lists it.
    pub fn kept_away(mut self, a: WorkloadRef, b: WorkloadRef) -> Self {
        for (one, other) in [(a.clone(), b.clone()), (b, a)] {
            match self.data.kept_away.iter_mut().find(|k| k.workload == one) {
                Some(k) => k.apart_from.push(other),
                None => self.data.kept_away.push(KeptAway { workload: one, apart_from: vec![other] }),
            }
        }
        self
    }

    pub fn build(self) -> SnapshotData {
        self.data
    }
}

/// Builds a [`NodeGroup`].
pub struct GroupBuilder(NodeGroup);

impl GroupBuilder {
    /// An Auto Scaling group with sizes 0/0/10 and no instance types yet.
    pub fn asg(id: &str) -> Self {
        GroupBuilder(NodeGroup {
            id: id.to_string(),
            kind: NodeGroupKind::Asg,
            max_size: 10,
            zones: vec!["us-east-1a".to_string()],
            ..NodeGroup::default()
        })
    }

    /// The cluster's Fargate profile, as the host shows it: a group of kind `fargate` whose
    /// size is the number of pods on Fargate.
    pub fn fargate() -> Self {
        GroupBuilder(NodeGroup {
            id: "fargate".to_string(),
            kind: NodeGroupKind::Fargate,
            max_size: u32::MAX,
            ..NodeGroup::default()
        })
    }

    /// Adds an instance type whose allocatable equals its capacity, with 110 pod slots and a
    /// disk no one has said (it holds any request, as the host hands it; see
    /// [`GroupBuilder::disk`]).
    pub fn instance_type(mut self, name: &str, cpu_q: &str, memory_q: &str, price_per_hour: f64) -> Self {
        let capacity = Resources {
            cpu_millis: cpu(cpu_q),
            memory_bytes: memory(memory_q),
            pods: DEFAULT_MAX_PODS,
            gpus: 0,
            ..Resources::ZERO
        };
        let allocatable = Resources { ephemeral_storage_bytes: Resources::STORAGE_NOT_KNOWN, ..capacity };
        self.0.instance_types.push(InstanceType { name: name.to_string(), capacity, allocatable, price_per_hour });
        self
    }

    /// Sets the ephemeral storage of the instance types added so far: what a new node's disk
    /// offers pods.
    pub fn disk(mut self, allocatable_q: &str) -> Self {
        for t in &mut self.0.instance_types {
            t.allocatable.ephemeral_storage_bytes = memory(allocatable_q);
        }
        self
    }

    /// Sets min, desired and max.
    pub fn sizes(mut self, min: u32, desired: u32, max: u32) -> Self {
        self.0.min_size = min;
        self.0.desired_size = desired;
        self.0.ready_nodes = desired;
        self.0.max_size = max;
        self
    }

    /// Sets how many of the group's nodes are Ready (`sizes` sets it to desired).
    pub fn ready_nodes(mut self, ready: u32) -> Self {
        self.0.ready_nodes = ready;
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.labels.insert(key.to_string(), value.to_string());
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: TaintEffect) -> Self {
        self.0.taints.push(Taint { key: key.to_string(), value: value.to_string(), effect });
        self
    }

    /// The zones its instances launch in (`us-east-1a` unless told).
    pub fn zones(mut self, zones: &[&str]) -> Self {
        self.0.zones = zones.iter().map(|z| z.to_string()).collect();
        self
    }

    pub fn build(self) -> NodeGroup {
        self.0
    }
}

/// Builds a [`Node`]: ready, old enough to remove, and removable unless told otherwise.
pub struct NodeBuilder(Node);

impl NodeBuilder {
    pub fn new(name: &str, group: &str) -> Self {
        NodeBuilder(Node {
            name: name.to_string(),
            group: Some(group.to_string()),
            zone: "us-east-1a".to_string(),
            ready: true,
            age_seconds: 3600,
            // A disk no one has said, as the host hands it: it holds any request.
            allocatable: Resources {
                pods: DEFAULT_MAX_PODS,
                ephemeral_storage_bytes: Resources::STORAGE_NOT_KNOWN,
                ..Resources::ZERO
            },
            ..Node::default()
        })
    }

    pub fn instance_type(mut self, name: &str) -> Self {
        self.0.instance_type = name.to_string();
        self
    }

    pub fn allocatable(mut self, cpu_q: &str, memory_q: &str) -> Self {
        self.0.allocatable.cpu_millis = cpu(cpu_q);
        self.0.allocatable.memory_bytes = memory(memory_q);
        self
    }

    /// Sets the node's summed pod requests and its pod count.
    pub fn requested(mut self, cpu_q: &str, memory_q: &str, pods: u32) -> Self {
        self.0.requested =
            Resources { cpu_millis: cpu(cpu_q), memory_bytes: memory(memory_q), pods, gpus: 0, ..Resources::ZERO };
        self.0.pod_count = pods;
        self
    }

    /// Its zone (`us-east-1a` unless told).
    pub fn zone(mut self, zone: &str) -> Self {
        self.0.zone = zone.to_string();
        self
    }

    /// Its ephemeral storage: what pods may ask of it and what those on it ask.
    pub fn disk(mut self, allocatable_q: &str, requested_q: &str) -> Self {
        self.0.allocatable.ephemeral_storage_bytes = memory(allocatable_q);
        self.0.requested.ephemeral_storage_bytes = memory(requested_q);
        self
    }

    pub fn age_seconds(mut self, seconds: u64) -> Self {
        self.0.age_seconds = seconds;
        self
    }

    pub fn blocked(mut self, reason: &str) -> Self {
        self.0.removal_blocker = Some(reason.to_string());
        self
    }

    pub fn cordoned(mut self) -> Self {
        self.0.cordoned = true;
        self
    }

    /// Registered but not Ready (booting when young, lost or stuck when old).
    pub fn not_ready(mut self) -> Self {
        self.0.ready = false;
        self
    }

    pub fn build(self) -> Node {
        self.0
    }
}

/// A Deployment with `replicas` replicas of these requests, not yet placed.
pub fn deployment(namespace: &str, name: &str, replicas: u32, cpu_q: &str, memory_q: &str) -> Workload {
    Workload {
        id: WorkloadRef { kind: WorkloadKind::Deployment, namespace: namespace.to_string(), name: name.to_string() },
        replicas,
        requests_per_replica: Resources::pod(cpu(cpu_q), memory(memory_q)),
        ..Workload::default()
    }
}

/// `count` running pods of one Deployment, each requesting `cpu` and `memory`, that a drain
/// moves: for [`SnapshotBuilder::pods_on`].
pub fn running(namespace: &str, deployment: &str, count: u32, cpu_q: &str, memory_q: &str) -> PodShape {
    PodShape {
        namespace: namespace.to_string(),
        owner: Some(WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: namespace.to_string(),
            name: deployment.to_string(),
        }),
        requests: Resources::pod(cpu(cpu_q), memory(memory_q)),
        count,
        moves_on_drain: true,
        ..PodShape::default()
    }
}

/// The next run of CronJob `name`, due at `due_at_millis`, of `pods` pods each requesting `cpu`
/// and `memory`: for [`SnapshotBuilder::scheduled_run`].
pub fn cron_run(
    namespace: &str,
    name: &str,
    due_at_millis: u64,
    pods: u32,
    cpu_q: &str,
    memory_q: &str,
) -> ScheduledRun {
    ScheduledRun {
        owner: WorkloadRef { kind: WorkloadKind::Job, namespace: namespace.to_string(), name: name.to_string() },
        due_at_millis,
        pods,
        requests: Resources::pod(cpu(cpu_q), memory(memory_q)),
        ..ScheduledRun::default()
    }
}

/// A CapacityBuffer `namespace/name` for `pods` pods of `cpu` and `memory`: for
/// [`SnapshotBuilder::capacity_buffer`].
pub fn buffer(namespace: &str, name: &str, pods: u32, cpu_q: &str, memory_q: &str) -> CapacityBuffer {
    CapacityBuffer {
        namespace: namespace.to_string(),
        name: name.to_string(),
        pods,
        requests: Resources::pod(cpu(cpu_q), memory(memory_q)),
        ..CapacityBuffer::default()
    }
}

/// Labels from pairs, for node selectors and group labels.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The nodes every `RemoveNodes` among `decisions` names, in order: what a test of a
/// removal compares.
pub fn removed(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .flat_map(|d| match &d.action {
            Action::RemoveNodes { nodes } => nodes.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// Each `ScaleTo` among `decisions` as (group, size), in order: what a test of a scale-up
/// compares.
pub fn scaled_to(decisions: &[Decision]) -> Vec<(String, u32)> {
    decisions
        .iter()
        .filter_map(|d| match &d.action {
            Action::ScaleTo { group, size } => Some((group.clone(), *size)),
            _ => None,
        })
        .collect()
}

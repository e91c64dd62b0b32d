//! The snapshot and decision types a policy works with.
//!
//! They mirror `sdk/wit/policy.wit` one to one, with Rust names and maps where the WIT has
//! lists of pairs. The same types (with serde) are the snapshot file format that
//! `ballast plugin run` reads, so a snapshot written for a test is also a CLI input.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::quantity;

mod decision;
mod group;
mod zone;

pub use decision::{Action, Decision, PlacementTarget, Proposal};
pub use group::{
    CAPACITY_TYPE_LABEL, CapacityType, GroupCooldown, GroupOptions, InstanceType, NodeGroup, NodeGroupKind, Refusal,
    launch_type,
};
pub use zone::{ZonePods, ZoneSpread};

/// An amount of compute: a node's allocatable or requested total, or a pod's requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Resources {
    /// CPU in millicores. Files write it as a Kubernetes quantity: `cpu: 500m`.
    #[serde(rename = "cpu", with = "quantity::cpu")]
    pub cpu_millis: u64,
    /// Memory in bytes. Files write it as a Kubernetes quantity: `memory: 1Gi`.
    #[serde(rename = "memory", with = "quantity::memory")]
    pub memory_bytes: u64,
    /// Pod slots: a node's max pods, or 1 for a pod.
    pub pods: u32,
    /// Accelerators: the extended resources of [`Resources::GPU_RESOURCES`], summed.
    pub gpus: u32,
    /// Local ephemeral storage in bytes (`ephemeral-storage`): what a pod asks, what a node
    /// offers. [`Resources::STORAGE_NOT_KNOWN`] on a node no one has said the disk of, which
    /// then holds any request. Files write it as a quantity: `ephemeral-storage: 10Gi`.
    ///
    /// # Caveats
    /// Inside a plugin (interface 0.1.15) it is set on node groups' allocatable, nodes'
    /// allocatable and requested, pending pods and shapes, the pods on a node, workloads'
    /// requests, scheduled runs and capacity buffers; elsewhere (a type's capacity, usage) it
    /// is 0.
    #[serde(rename = "ephemeral-storage", with = "quantity::memory", skip_serializing_if = "is_zero")]
    pub ephemeral_storage_bytes: u64,
}

fn is_zero(bytes: &u64) -> bool {
    *bytes == 0
}

impl Resources {
    pub const ZERO: Resources =
        Resources { cpu_millis: 0, memory_bytes: 0, pods: 0, gpus: 0, ephemeral_storage_bytes: 0 };
    /// A node's ephemeral storage when nothing says it (a group at zero whose node-template
    /// tags and launch template say no disk): it holds any request, as before storage was read.
    pub const STORAGE_NOT_KNOWN: u64 = u64::MAX;

    pub fn new(cpu_millis: u64, memory_bytes: u64) -> Self {
        Resources { cpu_millis, memory_bytes, ..Resources::ZERO }
    }

    /// A pod's requests: `pods` is 1.
    pub fn pod(cpu_millis: u64, memory_bytes: u64) -> Self {
        Resources { cpu_millis, memory_bytes, pods: 1, ..Resources::ZERO }
    }

    /// The extended resources counted as [`Resources::gpus`]: NVIDIA and AMD GPUs and AWS
    /// Neuron devices (Inferentia, Trainium).
    pub const GPU_RESOURCES: [&str; 3] = ["nvidia.com/gpu", "amd.com/gpu", "aws.amazon.com/neuron"];

    /// True if `other` fits in `self` in every dimension.
    pub fn fits(&self, other: &Resources) -> bool {
        other.cpu_millis <= self.cpu_millis
            && other.memory_bytes <= self.memory_bytes
            && other.pods <= self.pods
            && other.gpus <= self.gpus
            && other.ephemeral_storage_bytes <= self.ephemeral_storage_bytes
    }

    /// How many pods each asking `pod` fit in `self`, one pod slot each: the fewest over CPU,
    /// memory, GPUs, ephemeral storage and pod slots (a resource the pod does not ask does
    /// not limit it).
    pub fn slots_for(&self, pod: &Resources) -> u64 {
        let per = |free: u64, need: u64| free.checked_div(need).unwrap_or(u64::MAX);
        per(self.cpu_millis, pod.cpu_millis)
            .min(per(self.memory_bytes, pod.memory_bytes))
            .min(per(self.gpus.into(), pod.gpus.into()))
            .min(per(self.ephemeral_storage_bytes, pod.ephemeral_storage_bytes))
            .min(self.pods.into())
    }

    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            pods: self.pods.saturating_sub(other.pods),
            gpus: self.gpus.saturating_sub(other.gpus),
            ephemeral_storage_bytes: self.ephemeral_storage_bytes.saturating_sub(other.ephemeral_storage_bytes),
        }
    }

    pub fn saturating_add(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            pods: self.pods.saturating_add(other.pods),
            gpus: self.gpus.saturating_add(other.gpus),
            ephemeral_storage_bytes: self.ephemeral_storage_bytes.saturating_add(other.ephemeral_storage_bytes),
        }
    }

    /// The smaller of the two in each dimension.
    pub fn least(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.min(other.cpu_millis),
            memory_bytes: self.memory_bytes.min(other.memory_bytes),
            pods: self.pods.min(other.pods),
            gpus: self.gpus.min(other.gpus),
            ephemeral_storage_bytes: self.ephemeral_storage_bytes.min(other.ephemeral_storage_bytes),
        }
    }

    /// `n` of these, e.g. what a pending shape requests in all.
    pub fn times(&self, n: u32) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_mul(u64::from(n)),
            memory_bytes: self.memory_bytes.saturating_mul(u64::from(n)),
            pods: self.pods.saturating_mul(n),
            gpus: self.gpus.saturating_mul(n),
            ephemeral_storage_bytes: self.ephemeral_storage_bytes.saturating_mul(u64::from(n)),
        }
    }

    /// The larger of the CPU and memory fractions of `of` that `self` takes, as Cluster
    /// Autoscaler and Escalator measure utilisation. Zero when `of` is empty.
    pub fn utilisation_of(&self, of: &Resources) -> f64 {
        let ratio = |used: u64, total: u64| if total == 0 { 0.0 } else { used as f64 / total as f64 };
        ratio(self.cpu_millis, of.cpu_millis).max(ratio(self.memory_bytes, of.memory_bytes))
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cpu / {} memory",
            quantity::format_cpu(self.cpu_millis),
            quantity::display_memory(self.memory_bytes)
        )?;
        if self.gpus > 0 {
            write!(f, " / {} gpu", self.gpus)?;
        }
        if self.ephemeral_storage_bytes > 0 && self.ephemeral_storage_bytes != Resources::STORAGE_NOT_KNOWN {
            write!(f, " / {} ephemeral-storage", quantity::display_memory(self.ephemeral_storage_bytes))?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    /// The effect as Kubernetes spells it (`NoSchedule`, `PreferNoSchedule`, `NoExecute`).
    pub fn parse(text: &str) -> Option<TaintEffect> {
        match text {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Toleration {
    /// Empty together with `operator_exists` tolerates everything.
    pub key: String,
    /// `operator: Exists` (true) or `Equal` (false).
    pub operator_exists: bool,
    pub value: String,
    /// None tolerates every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Kubernetes' matching rule for one taint.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if self.key.is_empty() {
            return self.operator_exists;
        }
        self.key == taint.key && (self.operator_exists || self.value == taint.value)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Node {
    pub name: String,
    pub group: Option<String>,
    pub instance_type: String,
    pub zone: String,
    pub allocatable: Resources,
    pub requested: Resources,
    pub usage: Option<Resources>,
    pub ready: bool,
    pub cordoned: bool,
    pub age_seconds: u64,
    pub pod_count: u32,
    /// None if the node may be removed; otherwise why not.
    pub removal_blocker: Option<String>,
}

impl Node {
    /// Requests over allocatable, the larger of CPU and memory.
    pub fn utilisation(&self) -> f64 {
        self.requested.utilisation_of(&self.allocatable)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    ReplicaSet,
    Other,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = serde_json::to_value(self.kind).ok();
        let kind = kind.as_ref().and_then(|v| v.as_str()).unwrap_or("workload");
        write!(f, "{kind}/{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PendingPod {
    pub namespace: String,
    pub name: String,
    pub requests: Resources,
    pub owner: Option<WorkloadRef>,
    /// Labels a node must carry with these values: the pod's nodeSelector, and any label its
    /// required node affinity (a single term) pins to one value, a zone say.
    pub node_selector: BTreeMap<String, String>,
    /// Label keys named by required node affinity terms.
    pub affinity_keys: Vec<String>,
    pub tolerations: Vec<Toleration>,
    pub age_seconds: u64,
}

/// Pending pods interchangeable for placement, counted (interface 0.1.2): what
/// [`crate::Snapshot::pending_shapes`] returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PendingShape {
    pub namespace: String,
    pub owner: Option<WorkloadRef>,
    /// What each pod of the shape requests.
    pub requests: Resources,
    pub node_selector: BTreeMap<String, String>,
    /// Label keys named by required node affinity terms.
    pub affinity_keys: Vec<String>,
    pub tolerations: Vec<Toleration>,
    /// How many pods of this shape are waiting.
    pub count: u32,
    /// How long the one that has waited longest has waited.
    pub oldest_age_seconds: u64,
}

/// Pods running on one node that are interchangeable for placement, counted (interface
/// 0.1.4): what [`crate::Snapshot::pods_on_node`] returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PodShape {
    pub namespace: String,
    pub owner: Option<WorkloadRef>,
    /// What each pod of the shape requests.
    pub requests: Resources,
    pub node_selector: BTreeMap<String, String>,
    /// Label keys named by required node affinity terms.
    pub affinity_keys: Vec<String>,
    pub tolerations: Vec<Toleration>,
    /// How many pods of this shape run on the node.
    pub count: u32,
    /// A drain of the node evicts them (false for DaemonSet and static pods).
    pub moves_on_drain: bool,
}

/// The next run of a workload that runs on a schedule (interface 0.1.5): a CronJob, named as
/// a workload of kind `job` after the CronJob (in a cluster each run's pods belong to that
/// run's own Job). What [`crate::Snapshot::scheduled_runs`] returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ScheduledRun {
    pub owner: WorkloadRef,
    /// When the run is due, milliseconds since the Unix epoch.
    pub due_at_millis: u64,
    /// The pods it starts at once (its Job's parallelism).
    pub pods: u32,
    /// What each pod requests.
    pub requests: Resources,
    pub node_selector: BTreeMap<String, String>,
    /// Label keys named by required node affinity terms.
    pub affinity_keys: Vec<String>,
    pub tolerations: Vec<Toleration>,
    /// Its pods go to Fargate, not to a node group.
    pub on_fargate: bool,
}

/// At most `max_pods` pods of a workload on any one node, as the scheduler keeps them
/// (interface 0.1.12): 1 for a required pod anti-affinity on `kubernetes.io/hostname` that
/// selects the workload's own pods; for a topology spread on the hostname that may not be
/// broken, the cap it sets now (the fewest of the workload's pods on a node that counts, once
/// its waiting pods have filled the nodes with the fewest, plus `maxSkew`), which rises as the
/// workload grows. What [`crate::Snapshot::per_node_limits`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PerNodeLimit {
    pub workload: WorkloadRef,
    pub max_pods: u32,
}

/// A workload whose pods the scheduler keeps off the nodes that run other workloads' pods
/// (interface 0.1.16): a required pod anti-affinity on `kubernetes.io/hostname` in one's pod
/// template whose selector takes in the other's pods. The scheduler holds the rule both ways,
/// so each pair is listed under both. What [`crate::Snapshot::kept_away`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct KeptAway {
    pub workload: WorkloadRef,
    /// The workloads whose pods its pods may not share a node with.
    pub apart_from: Vec<WorkloadRef>,
}

/// A HorizontalPodAutoscaler's bounds on the workload it scales (interface 0.1.7): what
/// [`crate::Snapshot::horizontal_autoscalers`] returns. A workload at its `max_replicas`
/// grows no further however fast it climbed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct HorizontalAutoscaler {
    /// The workload it scales (its `scaleTargetRef`).
    pub target: WorkloadRef,
    /// `spec.minReplicas` (1 when unset).
    pub min_replicas: u32,
    /// `spec.maxReplicas`.
    pub max_replicas: u32,
}

impl HorizontalAutoscaler {
    /// Replicas the autoscaler may still add to a workload running `replicas`.
    pub fn room_to_grow(&self, replicas: u32) -> u32 {
        self.max_replicas.saturating_sub(replicas)
    }
}

/// A workload the host moved between Fargate and EC2 within its placement cooldown
/// (interface 0.1.8): what [`crate::Snapshot::placement_cooldowns`] returns, so a policy need
/// not copy the host's configuration to know that another move would be refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PlacementCooldown {
    pub workload: WorkloadRef,
    /// When the host last placed it, milliseconds since the Unix epoch.
    pub placed_at_millis: u64,
    /// The host refuses another placement of it before this moment.
    pub allowed_at_millis: u64,
}

impl PlacementCooldown {
    /// The host would let the workload move at `now`.
    pub fn may_move(&self, now: u64) -> bool {
        now >= self.allowed_at_millis
    }
}

/// An Auto Scaling group whose launches failed since it last delivered the nodes asked of it
/// (interface 0.1.9): what [`crate::Snapshot::launch_failures`] returns. While the host backs
/// off, the group's `max_size` is also held at its size; after that only this record says the
/// group failed lately, which a discretionary move (a cheaper replacement) should weigh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct LaunchFailure {
    pub group: String,
    /// When the host last counted a failure, milliseconds since the Unix epoch.
    pub failed_at_millis: u64,
    /// Why, as the host recorded it.
    pub reason: String,
    /// Failures counted since the group last delivered the nodes asked of it.
    pub in_a_row: u32,
    /// The host refuses to grow the group before this moment; 0 when its back-off is over.
    pub backing_off_until_millis: u64,
}

impl LaunchFailure {
    /// Milliseconds since the last failure at `now` (0 for a failure stamped later).
    pub fn age_millis(&self, now: u64) -> u64 {
        now.saturating_sub(self.failed_at_millis)
    }
}

/// How long an Auto Scaling group took to deliver its last few nodes (interface 0.1.10): what
/// [`crate::Snapshot::provisioning_times`] returns. Each figure runs from the tick at which
/// the group was asked for one more node to the first tick that saw a node of it Ready, so it
/// is an upper bound on that node's boot, rounded up to the host's tick.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ProvisioningTime {
    pub group: String,
    /// The last deliveries, oldest first, in seconds (at most
    /// [`ProvisioningTime::KEPT`]).
    pub recent_seconds: Vec<u32>,
}

impl ProvisioningTime {
    /// How many deliveries the host keeps per group.
    pub const KEPT: usize = 8;

    /// How far ahead to ask for a node that should be Ready at a given moment, if the group
    /// boots as it did lately: the second slowest of the recent deliveries (the only one, if
    /// one), so that one outlier among them does not move every lead. None before any.
    pub fn lead_seconds(&self) -> Option<u32> {
        let (mut slowest, mut second) = (None, None);
        for &s in &self.recent_seconds {
            if Some(s) > slowest {
                (second, slowest) = (slowest, Some(s));
            } else if Some(s) > second {
                second = Some(s);
            }
        }
        second.or(slowest)
    }
}

/// A CapacityBuffer (`autoscaling.x-k8s.io`, the resource Cluster Autoscaler and Karpenter
/// share) as the host resolved it (interface 0.1.11): spare room wanted for `pods` pods that
/// do not exist, each of this shape. What [`crate::Snapshot::capacity_buffers`] returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct CapacityBuffer {
    pub namespace: String,
    pub name: String,
    /// How many pods the room is for: the smallest of the buffer's `replicas`, its
    /// `percentage` of its workload's replicas (rounded up) and what its `limits` hold,
    /// among those it sets.
    pub pods: u32,
    /// What each pod requests.
    pub requests: Resources,
    pub node_selector: BTreeMap<String, String>,
    /// Label keys named by required node affinity terms.
    pub affinity_keys: Vec<String>,
    pub tolerations: Vec<Toleration>,
}

/// Where a pod may be scheduled: what [`NodeGroup::admits`] reads.
pub trait Constraints {
    fn node_selector(&self) -> &BTreeMap<String, String>;
    fn affinity_keys(&self) -> &[String];
    fn tolerations(&self) -> &[Toleration];
}

/// The pending forms and the running shape keep their constraints in fields of the same names.
macro_rules! constraints_from_fields {
    ($($type:ty),+) => {$(
        impl Constraints for $type {
            fn node_selector(&self) -> &BTreeMap<String, String> {
                &self.node_selector
            }
            fn affinity_keys(&self) -> &[String] {
                &self.affinity_keys
            }
            fn tolerations(&self) -> &[Toleration] {
                &self.tolerations
            }
        }
    )+};
}

constraints_from_fields!(PendingPod, PendingShape, PodShape, ScheduledRun, CapacityBuffer);

/// The requests of the DaemonSet pods that every node runs, a new one too: those of the
/// DaemonSets with a pod for each of the `ready_nodes` (`pods` counts them). A new node
/// offers its group's allocatable less this.
pub fn daemonset_overhead(workloads: &[Workload], ready_nodes: usize) -> Resources {
    workloads
        .iter()
        .filter(|w| w.id.kind == WorkloadKind::DaemonSet && ready_nodes > 0 && w.replicas as usize >= ready_nodes)
        .fold(Resources::ZERO, |acc, w| Resources { pods: acc.pods + 1, ..acc.saturating_add(&w.requests_per_replica) })
}

/// Groups pending pods by shape, in the order each shape's first pod appears, with counts
/// and the oldest age. The one definition of a shape: the host and snapshot files both use it.
pub fn pending_shapes(pods: &[PendingPod]) -> Vec<PendingShape> {
    type Key<'a> =
        (&'a str, Option<&'a WorkloadRef>, Resources, &'a BTreeMap<String, String>, &'a [String], &'a [Toleration]);
    let mut index: std::collections::HashMap<Key<'_>, usize> = std::collections::HashMap::new();
    let mut shapes: Vec<PendingShape> = Vec::new();
    for pod in pods {
        let key = (
            pod.namespace.as_str(),
            pod.owner.as_ref(),
            pod.requests,
            &pod.node_selector,
            pod.affinity_keys.as_slice(),
            pod.tolerations.as_slice(),
        );
        match index.get(&key) {
            Some(&i) => {
                let shape = &mut shapes[i];
                shape.count += 1;
                shape.oldest_age_seconds = shape.oldest_age_seconds.max(pod.age_seconds);
            }
            None => {
                index.insert(key, shapes.len());
                shapes.push(PendingShape {
                    namespace: pod.namespace.clone(),
                    owner: pod.owner.clone(),
                    requests: pod.requests,
                    node_selector: pod.node_selector.clone(),
                    affinity_keys: pod.affinity_keys.clone(),
                    tolerations: pod.tolerations.clone(),
                    count: 1,
                    oldest_age_seconds: pod.age_seconds,
                });
            }
        }
    }
    shapes
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    #[default]
    Unplaced,
    Fargate,
    /// On EC2, in the named group when all replicas share one.
    Ec2(Option<String>),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Workload {
    pub id: WorkloadRef,
    pub replicas: u32,
    pub requests_per_replica: Resources,
    pub placement: Placement,
    /// None if the workload may run on Fargate; otherwise why not.
    pub fargate_blocker: Option<String>,
    pub usage_per_replica: Option<Resources>,
}

/// One value of a series: the start of the period it covers (Unix millis) and the value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricPoint {
    pub at_millis: u64,
    pub value: f64,
}

/// A CloudWatch series the plugin's configuration names (`policies[].metrics`), as last
/// read. Series are read on their own schedule, outside the tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct MetricSeries {
    /// The name the configuration gives the query.
    pub name: String,
    /// One point per period over the query's window, oldest first.
    pub points: Vec<MetricPoint>,
    /// When it was last read (Unix millis); 0 before the first read.
    pub read_at_millis: u64,
    /// Set when the last read failed; the points are then those of the read before.
    pub error: Option<String>,
}

impl MetricSeries {
    /// The newest value, if any.
    pub fn latest(&self) -> Option<f64> {
        self.points.last().map(|p| p.value)
    }
}

/// One Fargate vCPU size and the memory sizes allowed with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FargateSize {
    pub cpu_millis: u64,
    pub memory_mib_min: u64,
    pub memory_mib_max: u64,
    pub memory_mib_step: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct FargatePricing {
    pub per_vcpu_hour: f64,
    pub per_gb_hour: f64,
    /// US dollars per GB-hour of ephemeral storage beyond the 20 GiB every pod gets (see
    /// [`FargatePricing::billed_size`]); in plugins since interface 0.1.15.
    pub per_storage_gb_hour: f64,
    pub overhead_mib: u64,
    pub sizes: Vec<FargateSize>,
}

impl Default for FargatePricing {
    /// EKS on Fargate in us-east-1, Linux x86 (see `shared/reference/domain.md`).
    fn default() -> Self {
        let size = |cpu_millis: u64, min: u64, max: u64, step: u64| FargateSize {
            cpu_millis,
            memory_mib_min: min * 1024,
            memory_mib_max: max * 1024,
            memory_mib_step: step,
        };
        FargatePricing {
            per_vcpu_hour: 0.04048,
            per_gb_hour: 0.004445,
            per_storage_gb_hour: 0.000111,
            overhead_mib: 256,
            sizes: vec![
                // 0.25 vCPU allows 0.5, 1 and 2 GB: a 512 MiB step from 0.5 to 1, then 2.
                FargateSize { cpu_millis: 250, memory_mib_min: 512, memory_mib_max: 1024, memory_mib_step: 512 },
                FargateSize { cpu_millis: 250, memory_mib_min: 2048, memory_mib_max: 2048, memory_mib_step: 1024 },
                size(500, 1, 4, 1024),
                size(1000, 2, 8, 1024),
                size(2000, 4, 16, 1024),
                size(4000, 8, 30, 1024),
                size(8000, 16, 60, 4096),
                size(16000, 32, 120, 8192),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ProvisioningTime, Resources};

    /// A node's slots for a pod are limited by whichever resource runs out first, GPUs and
    /// disk included; a resource the pod does not ask, or a disk not known, limits nothing.
    #[test]
    fn slots_for_a_pod_are_the_fewest_any_resource_allows() {
        const GIB: u64 = 1 << 30;
        let node =
            Resources { gpus: 4, ephemeral_storage_bytes: 89 * GIB, pods: 29, ..Resources::pod(16_000, 64 * GIB) };
        let pod = |f: &dyn Fn(&mut Resources)| {
            let mut pod = Resources::pod(1000, GIB);
            f(&mut pod);
            node.slots_for(&pod)
        };
        assert_eq!(pod(&|_| {}), 16, "CPU");
        assert_eq!(pod(&|p| p.memory_bytes = 16 * GIB), 4, "memory");
        assert_eq!(pod(&|p| p.gpus = 1), 4, "GPUs");
        assert_eq!(pod(&|p| p.ephemeral_storage_bytes = 30 * GIB), 2, "disk");
        assert_eq!(pod(&|p| p.cpu_millis = 100), 29, "pod slots");
        let unknown = Resources { ephemeral_storage_bytes: Resources::STORAGE_NOT_KNOWN, ..node };
        let disk = Resources { ephemeral_storage_bytes: 30 * GIB, ..Resources::pod(1000, GIB) };
        assert_eq!(unknown.slots_for(&disk), 16, "a disk not known holds any request");
    }

    #[test]
    fn a_groups_lead_is_its_second_slowest_recent_delivery_so_one_outlier_does_not_move_it() {
        let lead =
            |recent: &[u32]| ProvisioningTime { group: "g".into(), recent_seconds: recent.to_vec() }.lead_seconds();
        assert_eq!(lead(&[]), None, "nothing delivered yet");
        assert_eq!(lead(&[90]), Some(90), "one delivery is all there is");
        assert_eq!(lead(&[70, 600, 80, 60]), Some(80), "a 10-minute boot among 1-minute ones");
        assert_eq!(lead(&[150, 180, 180, 160]), Some(180), "the slowest twice");
    }
}

//! What the engine needs from the world, as traits: the cluster side (Kubernetes), the
//! capacity side (AWS) and a clock.
//!
//! Three sets of adapters implement them: `kube`, `aws` and `sim`. The traits carry
//! plain observations and single actions, no policy: every judgement (which node, how many,
//! whether it is safe) is the engine's, so the adapters stay thin and the sim exercises the
//! same engine code as production.
//!
//! Views are taken whole each tick rather than streamed: the engine is a pure function of what
//! it observes plus its own small state (cooldowns, drains in progress), which is what makes a
//! tick reproducible and a simulation deterministic. Adapters are free to serve views from a
//! watch cache (kube's reflector) or a periodic describe (AWS).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

pub use super::pods::{NodePods, PodShape};

use ballast_sdk::{
    FargatePricing, InstanceType, Placement, PlacementTarget, Resources, Taint, Toleration, WorkloadRef,
};

/// Why an adapter call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct AdapterError {
    pub kind: AdapterErrorKind,
    /// What was attempted, e.g. `set desired size of web-m5 to 4`.
    pub operation: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterErrorKind {
    /// The object is gone (node deleted, instance terminated).
    NotFound,
    /// The API refused on purpose: an eviction a PodDisruptionBudget blocks, a size outside
    /// the group's bounds.
    Refused,
    /// Rate limited; retry later.
    Throttled,
    /// Anything else: network, permissions, a server error.
    Failed,
}

impl AdapterError {
    pub fn new(kind: AdapterErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        AdapterError { kind, operation: operation.into(), message: message.into() }
    }
}

pub type AdapterResult<T> = Result<T, AdapterError>;

/// Everything the cluster side shows in one observation.
///
/// Pods come counted, not listed: each node carries what runs on it ([`NodePods`], kept up to
/// date by the adapter as pods come and go), and only pods waiting for capacity are listed
/// one by one. A tick therefore costs what the nodes and the pending pods cost, not what
/// every pod in the cluster does.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub nodes: Vec<NodeView>,
    /// Pods waiting for capacity: the scheduler found no room and their requests are
    /// readable. In a stable order (the adapter's), which is the order plugins see.
    pub pending: Vec<PendingPodView>,
    pub workloads: Vec<WorkloadView>,
    pub disruption_budgets: Vec<DisruptionBudgetView>,
    /// The next run of each workload that runs on a schedule (a CronJob), in any order.
    pub scheduled_runs: Vec<ballast_sdk::ScheduledRun>,
    /// The HorizontalPodAutoscalers whose bounds read, in any order.
    pub horizontal_autoscalers: Vec<ballast_sdk::HorizontalAutoscaler>,
    /// The CapacityBuffers whose pod shape and size resolve, in any order.
    pub capacity_buffers: Vec<ballast_sdk::CapacityBuffer>,
    /// Pods the scheduler refused that nothing is sized for (a DaemonSet's, expendable, or
    /// nominated to a node where they preempt), with why: what `explain pod` says of them.
    pub passed_over: Vec<PassedOverPod>,
}

impl ClusterView {
    /// Counts `pods` onto the view's nodes and lists the pending ones, replacing what the
    /// nodes carried: how a view is made from a plain pod list (fixtures, one-off adapters).
    /// Pods bound to a node the view does not list are left out, as a tick would ignore them.
    pub fn count_pods(&mut self, pods: &[PodView]) {
        let mut interner = super::pods::ShapeInterner::default();
        let mut tally = super::pods::NodeTally::default();
        self.pending.clear();
        for pod in pods {
            let shape = interner.acquire(pod.shape());
            match &pod.node {
                Some(node) => tally.add(node, &shape, pod.name.clone()),
                None if pod.waits_for_capacity() => self.pending.push(PendingPodView {
                    shape,
                    name: pod.name.clone(),
                    created_at_millis: pod.created_at_millis,
                }),
                None => {}
            }
        }
        for node in &mut self.nodes {
            node.pods = tally.of(&node.name);
        }
    }

    /// Every pod the view holds one by one: those on its nodes, then those waiting for
    /// capacity. For tools and tests; a tick reads the counts instead.
    pub fn pods(&self) -> impl Iterator<Item = PodSeen<'_>> {
        let running = self.nodes.iter().flat_map(|n| {
            n.pods.shapes.iter().flat_map(move |s| {
                s.pods.iter().map(move |name| PodSeen { name, node: Some(&n.name), shape: &s.shape })
            })
        });
        let pending = self.pending.iter().map(|p| PodSeen { name: &p.name, node: None, shape: &p.shape });
        running.chain(pending)
    }
}

/// One pod as a view holds it: see [`ClusterView::pods`].
#[derive(Clone, Copy, Debug)]
pub struct PodSeen<'a> {
    pub name: &'a Arc<str>,
    /// None while it waits for capacity.
    pub node: Option<&'a Arc<str>>,
    pub shape: &'a Arc<PodShape>,
}

/// A pod the scheduler refused that is not waiting for capacity, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassedOverPod {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub passed_over: PassedOver,
}

impl PassedOverPod {
    /// A waiting pod the host itself takes out of the snapshot's pending pods, for `reason`.
    pub fn taken_out(pod: &ballast_sdk::PendingPod, reason: PassOver, why: Arc<str>) -> Self {
        PassedOverPod {
            namespace: Arc::from(pod.namespace.as_str()),
            name: Arc::from(pod.name.as_str()),
            passed_over: PassedOver { reason, node: None, why },
        }
    }
}

/// Why a pod the scheduler refused waits for no capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassedOver {
    pub reason: PassOver,
    /// The node the scheduler nominated for it ([`PassOver::Nominated`]): it keeps that node
    /// from removal until it runs there.
    pub node: Option<Arc<str>>,
    /// For people: the DaemonSet's pod, its expendable priority, or the node the scheduler
    /// nominated for it.
    pub why: Arc<str>,
}

/// The pods Cluster Autoscaler passes over too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassOver {
    /// A DaemonSet's pod runs only on the node it was made for.
    DaemonSet,
    /// Its priority is below the cutoff.
    Expendable,
    /// Nominated to a node where it preempts lower-priority pods.
    Nominated,
    /// It asks more ephemeral storage than any group's new node offers ([`crate::disk`]).
    Disk,
    /// Kept spread over nodes, it waits for a node being removed to go, and then fits on
    /// room the others have ([`crate::node_spread`]).
    AwaitsRemoval,
    /// Kept spread over more zones (its `minDomains`) than any node its pods may run on is
    /// in, or kept to so many a zone and every zone it may run in holding as many, it is past
    /// what the zones there are may hold ([`crate::zone_domains`]).
    TooFewZones,
    /// Kept on the nodes of other workloads' pods, it waits for room on those; kept in their
    /// zones, it waits for one of them to run: no new node runs them ([`crate::pod_affinity`]).
    PodAffinity,
}

impl PassOver {
    pub const ALL: [PassOver; 7] = [
        PassOver::DaemonSet,
        PassOver::Expendable,
        PassOver::Nominated,
        PassOver::Disk,
        PassOver::AwaitsRemoval,
        PassOver::TooFewZones,
        PassOver::PodAffinity,
    ];

    /// Its name in metrics' `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            PassOver::DaemonSet => "daemon-set",
            PassOver::Expendable => "expendable",
            PassOver::Nominated => "nominated",
            PassOver::Disk => "ephemeral-storage",
            PassOver::AwaitsRemoval => "awaits-removal",
            PassOver::TooFewZones => "too-few-zones",
            PassOver::PodAffinity => "pod-affinity",
        }
    }

    /// No capacity added could run it: it is told as unplaceable too.
    pub fn unplaceable(self) -> bool {
        matches!(self, PassOver::Disk | PassOver::TooFewZones | PassOver::PodAffinity)
    }
}

/// A pod waiting for capacity.
#[derive(Clone, Debug)]
pub struct PendingPodView {
    pub shape: Arc<PodShape>,
    pub name: Arc<str>,
    pub created_at_millis: u64,
}

#[derive(Clone, Debug)]
pub struct NodeView {
    pub name: Arc<str>,
    /// The EC2 instance behind the node, from its provider id (`aws:///zone/i-...`).
    pub instance_id: Option<String>,
    pub instance_type: String,
    pub zone: String,
    pub allocatable: Resources,
    /// Measured usage (metrics.k8s.io), when known.
    pub usage: Option<Resources>,
    pub ready: bool,
    /// When a node that is not Ready stopped being Ready (its `Ready` condition's last
    /// transition); none while it is Ready or when the adapter cannot tell.
    pub unready_since_millis: Option<u64>,
    /// `spec.unschedulable`.
    pub cordoned: bool,
    pub created_at_millis: u64,
    /// An EKS Fargate node (one pod each).
    pub fargate: bool,
    /// The annotation, set to `"true"`, that keeps the node from any voluntary removal:
    /// Cluster Autoscaler's `cluster-autoscaler.kubernetes.io/scale-down-disabled` or
    /// Karpenter's `karpenter.sh/do-not-disrupt` (so a cluster moving from either keeps its
    /// promises).
    pub kept_by: Option<&'static str>,
    /// The group its labels name (`eks.amazonaws.com/nodegroup`, `kops.k8s.io/instancegroup`),
    /// used when no group lists its instance yet (a node registered before the group's
    /// description caught up).
    pub group_label: Option<String>,
    /// A removal in progress, as written on the node by the replica that began it.
    pub removal_mark: Option<RemovalMark>,
    /// The node this one replaces, written on it when its readiness released a warned spot
    /// node's held pods (see [`Cluster::claim_replacement`]).
    pub replaces: Option<String>,
    /// What runs on it, as the adapter counts it.
    pub pods: Arc<NodePods>,
}

/// What a node removal in progress needs to outlive the replica that began it: written on
/// the node itself (a `NoSchedule` taint and an annotation of Ballast's own, as Cluster
/// Autoscaler does with `ToBeDeletedByClusterAutoscaler`), so that a restarted replica or a
/// new leader adopts the drain instead of leaving the node cordoned and half drained.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RemovalMark {
    /// The replica that began it, or carries it on since (it writes the mark again when a
    /// spot drain's hold is released).
    pub owner: String,
    pub started_at_millis: u64,
    pub group: String,
    pub instance_id: String,
    /// The tick whose decision began it.
    pub tick: u64,
    /// Begun for a spot interruption with the group raised by one for the replacement (see
    /// [`crate::state::Drain::interrupted`]). Absent from marks written before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The pods are held until a replacement is Ready, or until this moment at the latest
    /// (see [`crate::state::EvictionHold`]): a drain adopted after a restart holds them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_until_millis: Option<u64>,
    /// The new node whose readiness released the hold: a replica adopting the drain knows
    /// that node replaces this one, and lets it release no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// Why it was begun when no policy asked (`drifted`, `spot-interrupted`, ...: see
    /// [`InterruptionCause::removal_reason`]), so the removal is counted under it after a
    /// restart too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The node had pods to move when its removal began (see [`crate::state::Drain::occupied`]).
    /// Absent from marks written before it existed: taken as empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub occupied: bool,
}

/// Scheduling constraints and disruption traits of a pod. Pods of one workload share them, so
/// adapters hand out one `Arc` per template rather than a copy per pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodTemplate {
    pub node_selector: BTreeMap<String, String>,
    /// Label keys named by required node affinity terms.
    pub affinity_keys: Vec<String>,
    pub tolerations: Vec<Toleration>,
    /// Uses emptyDir or hostPath: data is lost if the pod moves (volumes named in
    /// `cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes` do not count).
    pub local_storage: bool,
    /// `cluster-autoscaler.kubernetes.io/safe-to-evict`: `Some(false)` pins the pod,
    /// `Some(true)` allows moving it despite other blockers.
    pub safe_to_evict: Option<bool>,
    /// Karpenter's `karpenter.sh/do-not-disrupt: "true"`: pins the pod, whatever
    /// `safe_to_evict` says (Karpenter's users annotate pods so).
    pub do_not_disrupt: bool,
    /// `cluster-autoscaler.kubernetes.io/enable-ds-eviction` on a DaemonSet's pod: whether
    /// it is asked to leave before its node goes, whatever the node (see
    /// [`crate::config::Guardrails::daemonset_eviction_for_occupied_nodes`]).
    pub daemonset_eviction: Option<bool>,
    /// The pod's controller when it is of a kind Kubernetes does not itself recreate pods
    /// for (not a ReplicaSet, StatefulSet, DaemonSet, Job or ReplicationController), as
    /// "Kind name": a custom controller, which may not bring an evicted pod back (see
    /// [`crate::config::Guardrails::skip_nodes_with_custom_controller_pods`]).
    pub custom_controller: Option<String>,
    /// Of priority class `system-cluster-critical` or `system-node-critical` (DNS, the CNI's
    /// controllers, metrics-server): a drain asks it to leave after the other pods.
    pub critical: bool,
}

/// One pod as an adapter reads it, before it is counted: adapters turn these into each
/// node's [`NodePods`] and the pending list (see [`ClusterView::count_pods`]).
#[derive(Clone, Debug)]
pub struct PodView {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    /// The node it is bound to; none while pending.
    pub node: Option<Arc<str>>,
    pub requests: Resources,
    /// Its controller, if any. DaemonSet pods are never evicted by a drain. Shared by the
    /// pods of a workload.
    pub owner: Option<Arc<WorkloadRef>>,
    pub template: Arc<PodTemplate>,
    /// The scheduler reported it unschedulable (`PodScheduled=False`, reason
    /// `Unschedulable`) and it is waiting for capacity. A pod waiting for Fargate is not, nor
    /// one the adapter passes over (see [`ClusterView::passed_over`]).
    pub unschedulable: bool,
    pub created_at_millis: u64,
    /// The PodDisruptionBudget selecting it, by name in the pod's namespace.
    pub disruption_budget: Option<Arc<str>>,
    /// A static pod mirrored from the kubelet: not evictable, not a blocker.
    pub mirror: bool,
    /// Its requests could not be read (named field and value): its node is not removed and
    /// it is not sized for while pending.
    pub unreadable: Option<String>,
    /// Its priority is below the cluster's cutoff: see [`PodShape::expendable`].
    pub expendable: bool,
}

impl PodView {
    /// Its equivalence class (not yet shared: see [`super::pods::ShapeInterner`]).
    pub fn shape(&self) -> PodShape {
        PodShape {
            namespace: self.namespace.clone(),
            owner: self.owner.clone(),
            requests: self.requests,
            template: self.template.clone(),
            disruption_budget: self.disruption_budget.clone(),
            mirror: self.mirror,
            unreadable: self.unreadable.clone(),
            expendable: self.expendable,
        }
    }

    /// Unbound, reported unschedulable, readable and not expendable: sized for by the engine.
    pub fn waits_for_capacity(&self) -> bool {
        self.node.is_none() && self.unschedulable && self.unreadable.is_none() && !self.expendable
    }
}

/// What keeps a workload off Fargate. Each flag is a hard limit of EKS on Fargate; the pin
/// is its owner's choice, which Ballast keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FargateTraits {
    pub ebs_volume: bool,
    pub privileged: bool,
    pub host_network: bool,
    pub gpu: bool,
    /// Selects Arm or Windows nodes.
    pub unsupported_platform: bool,
    /// The node group its owner pins it to: a nodeSelector on the group label that Ballast
    /// did not write (one Ballast wrote for a placement is Ballast's to change).
    pub pinned_by_owner: Option<String>,
}

#[derive(Clone, Debug)]
pub struct WorkloadView {
    pub id: WorkloadRef,
    pub replicas: u32,
    pub requests_per_replica: Resources,
    pub placement: Placement,
    pub fargate_traits: FargateTraits,
    pub usage_per_replica: Option<Resources>,
    /// At most this many of its pods on one node, as the scheduler keeps them (a required pod
    /// anti-affinity on the hostname; see [`ballast_sdk::PerNodeLimit`]).
    pub max_per_node: Option<u32>,
    /// The most more of its pods one zone may hold than the zone with the fewest, as the
    /// scheduler keeps them (a zone topology spread; see [`ballast_sdk::ZoneSpread`]).
    pub max_zone_skew: Option<u32>,
    /// That spread's `minDomains`: while fewer zones count, the scheduler takes the fewest as
    /// none, so each zone holds at most `max_zone_skew` of its pods.
    pub min_zone_domains: Option<u32>,
    /// The most more of its pods one node may run than the node with the fewest, as the
    /// scheduler keeps them (a topology spread on `kubernetes.io/hostname`): plugins get it
    /// as the cap per node it sets now (see [`crate::node_spread::caps`]).
    pub max_node_skew: Option<u32>,
    /// That spread's `minDomains`: while fewer nodes count for it, the scheduler takes the
    /// fewest as none, so each node runs at most `max_node_skew` of its pods.
    pub min_node_domains: Option<u32>,
    /// Which nodes that spread counts (its `nodeTaintsPolicy` and `nodeAffinityPolicy`).
    pub node_inclusion: NodeInclusion,
    /// The workloads whose pods its pods may not share a node with, as its own pod template
    /// says (a required pod anti-affinity on the hostname against their pods); the engine
    /// hands each pair to policies both ways ([`crate::kept_away`]).
    pub kept_away: Vec<WorkloadRef>,
    /// The workloads whose pods its pods must share a zone with, as its own pod template says
    /// (a required pod affinity on `topology.kubernetes.io/zone` taking in their pods, its own
    /// included when the term takes them in); see [`crate::zone_affinity`].
    pub zone_affinity: Vec<WorkloadRef>,
    /// The workloads on whose pods' nodes its pods must run, as its own pod template says (a
    /// required pod affinity on `kubernetes.io/hostname` taking in their pods, its own
    /// included when the term takes them in); see [`crate::pod_affinity`].
    pub kept_beside: Vec<WorkloadRef>,
    /// At most this many of its pods in one zone, as the scheduler keeps them (a required pod
    /// anti-affinity on `topology.kubernetes.io/zone` against its own pods: 1); see
    /// [`crate::zone_domains`].
    pub max_per_zone: Option<u32>,
}

/// Which nodes a topology spread counts when it finds the domain with the fewest pods, as its
/// `nodeTaintsPolicy` and `nodeAffinityPolicy` say. The default is the scheduler's: every
/// node the pods' node selector and required node affinity allow, whatever its taints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeInclusion {
    /// `nodeTaintsPolicy: Honor`: a node with a taint the pods do not tolerate does not
    /// count, a cordoned or not-Ready one neither (their taints).
    pub honors_taints: bool,
    /// `nodeAffinityPolicy: Ignore`: a node counts whatever the pods' node selector and
    /// affinity say.
    pub ignores_affinity: bool,
}

#[derive(Clone, Debug)]
pub struct DisruptionBudgetView {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: u32,
}

/// What an eviction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Eviction {
    Evicted,
    /// Refused (HTTP 429): a PodDisruptionBudget allows no disruption now.
    Blocked {
        reason: String,
    },
    /// The pod was already gone.
    Gone,
}

/// What an announcement is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Node(String),
    Pod { namespace: String, name: String },
    Workload(WorkloadRef),
    NodeGroup(String),
}

/// Something the engine did, told to the cluster's users where they look (a Kubernetes
/// Event on the object, shown by `kubectl describe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub subject: Subject,
    /// Short and CamelCase, e.g. `ScaleDown`.
    pub reason: &'static str,
    /// What was done and why, with the plugin that asked.
    pub note: String,
    /// Something went wrong (Warning rather than Normal).
    pub warning: bool,
}

/// The cluster side: Kubernetes.
pub trait Cluster: Send + Sync {
    /// Publishes an announcement. Best effort: a failure is logged by the adapter and never
    /// fails a tick.
    fn announce(&self, announcement: Announcement) -> impl Future<Output = ()> + Send;
    fn observe(&self) -> impl Future<Output = AdapterResult<ClusterView>> + Send;
    /// Cordons the node and writes `mark` on it, in one write.
    fn mark_for_removal(&self, node: &str, mark: &RemovalMark) -> impl Future<Output = AdapterResult<()>> + Send;
    /// Uncordons the node and clears Ballast's mark from it: a removal abandoned.
    fn clear_removal(&self, node: &str) -> impl Future<Output = AdapterResult<()>> + Send;
    /// Writes on `node` that it replaces `replaced`, a warned spot node whose held pods its
    /// readiness released.
    ///
    /// # Guarantees
    /// The claim lives on the node itself, so a replica that starts after the replaced node
    /// is gone still knows `node` replaces one node and lets it release no other.
    fn claim_replacement(&self, node: &str, replaced: &str) -> impl Future<Output = AdapterResult<()>> + Send;
    /// Evicts through the Eviction API, so PodDisruptionBudgets are honoured by the server too.
    fn evict(&self, namespace: &str, pod: &str) -> impl Future<Output = AdapterResult<Eviction>> + Send;
    /// Steers a workload's future pods to Fargate or EC2 (a label its Fargate profile selects).
    fn place(&self, workload: &WorkloadRef, target: &PlacementTarget)
    -> impl Future<Output = AdapterResult<()>> + Send;
    /// Brings the status the adapter keeps on cluster objects up to date (a CapacityBuffer's
    /// replicas and conditions), writing only what changed. Called once a tick by the
    /// replica that acts, in enforce mode, so a dry run beside another autoscaler writes
    /// nothing; `at_millis` stamps a condition that changes. Best effort, like
    /// [`Cluster::announce`]: the adapter logs a failure and the next tick tries again.
    fn update_status(&self, at_millis: u64) -> impl Future<Output = ()> + Send {
        let _ = at_millis;
        async {}
    }
}

/// One instance of a node group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceView {
    pub id: String,
    pub zone: String,
    pub instance_type: String,
    /// Launched but not yet in service, or leaving: either way not capacity to count on.
    pub lifecycle: InstanceLifecycle,
    /// The machine image (AMI) it was launched from, when known.
    pub image: Option<Arc<str>>,
    /// The launch template version it was launched from, when known.
    pub template: Option<TemplateVersion>,
}

/// A launch template's id and one of its version numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateVersion {
    pub id: Arc<str>,
    pub version: i64,
}

impl std::fmt::Display for TemplateVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} version {}", self.id, self.version)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceLifecycle {
    Pending,
    InService,
    Terminating,
}

/// The most recent failed attempt of a group to launch capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchFailure {
    pub at_millis: u64,
    pub message: String,
}

/// An EC2 Auto Scaling group as the capacity side sees it.
#[derive(Clone, Debug)]
pub struct GroupView {
    pub id: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_size: u32,
    pub instance_types: Vec<InstanceType>,
    /// Labels and taints a new node will carry (from the node template).
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub zones: Vec<String>,
    pub instances: Vec<InstanceView>,
    pub last_launch_failure: Option<LaunchFailure>,
    /// Cluster Autoscaler's per-group settings (its `autoscaling-options` tags).
    pub options: ballast_sdk::GroupOptions,
    /// The machine image (AMI) the group launches now (its launch template's version or its
    /// launch configuration), when known: an instance launched from another has drifted.
    pub image: Option<Arc<str>>,
    /// Every instance type the group launches now, when all are known (not when an override
    /// chooses types by attributes): an instance of another type has drifted.
    pub launched_types: Option<Vec<Arc<str>>>,
    /// The launch template version it launches now (`$Latest` or `$Default` resolved), when
    /// known: an instance launched from another has drifted, whatever changed in it (user
    /// data, security groups, ...).
    pub template: Option<TemplateVersion>,
    /// Its nodes are replaced by the service that owns it when its image changes (an EKS
    /// managed node group: UpdateNodegroupVersion rolls them), so drift is shown, not acted on.
    pub updates_itself: bool,
}

/// A metric series to read (CloudWatch `GetMetricData` in AWS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricQuery {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    /// `Average`, `Sum`, `Minimum`, `Maximum` or `SampleCount`.
    pub statistic: String,
    pub period_seconds: u32,
    pub start_millis: u64,
    pub end_millis: u64,
}

/// One data point of a metric series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricPoint {
    pub at_millis: u64,
    pub value: f64,
}

/// The capacity side: EC2 Auto Scaling, EC2 and CloudWatch.
pub trait Capacity: Send + Sync {
    fn node_groups(&self) -> impl Future<Output = AdapterResult<Vec<GroupView>>> + Send;
    /// Sets a group's desired capacity (never its min or max, which stay the group owner's).
    fn set_desired_size(&self, group: &str, size: u32) -> impl Future<Output = AdapterResult<()>> + Send;
    /// Terminates one instance and lowers the group's desired capacity by one, so the group
    /// does not replace it.
    fn terminate_instance(&self, group: &str, instance_id: &str) -> impl Future<Output = AdapterResult<()>> + Send;
    /// Terminates one instance and keeps the group's desired capacity, so the group launches
    /// a replacement (a broken node's repair).
    fn replace_instance(&self, group: &str, instance_id: &str) -> impl Future<Output = AdapterResult<()>> + Send;
    /// Fargate prices for this region.
    fn fargate_pricing(&self) -> impl Future<Output = AdapterResult<FargatePricing>> + Send;
    fn query_metric(&self, query: &MetricQuery) -> impl Future<Output = AdapterResult<Vec<MetricPoint>>> + Send;
    /// Spot interruption warnings received since the last call, each once (an AWS adapter
    /// reads them from the SQS queue EventBridge feeds). None by default.
    fn interruptions(&self) -> impl Future<Output = AdapterResult<Vec<Interruption>>> + Send {
        async { Ok(Vec::new()) }
    }
}

/// A spot instance about to be reclaimed: EC2's two-minute warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interruption {
    pub instance_id: String,
    /// When the warning was given (Unix millis).
    pub at_millis: u64,
    /// When the instance will be stopped or terminated.
    pub deadline_millis: u64,
    pub cause: InterruptionCause,
}

impl Interruption {
    /// EC2's notice before it reclaims a spot instance.
    pub const NOTICE_MS: u64 = 120_000;

    /// EC2 reclaims a spot instance, [`Interruption::NOTICE_MS`] after `at_millis`.
    pub fn spot(instance_id: impl Into<String>, at_millis: u64) -> Self {
        Interruption {
            instance_id: instance_id.into(),
            at_millis,
            deadline_millis: at_millis + Self::NOTICE_MS,
            cause: InterruptionCause::SpotReclaim,
        }
    }
}

/// Why an instance will go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterruptionCause {
    /// EC2 reclaims a spot instance.
    SpotReclaim,
    /// An AWS Health scheduled change for the instance (a retirement, a system reboot,
    /// maintenance), by its event type code: `AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED`...
    Scheduled(String),
    /// Someone asked for the node's replacement through the control API.
    Asked { caller: String, reason: String },
    /// The node is of an image, instance type or template version its group no longer launches
    /// ([`crate::drift`]).
    Drifted(crate::drift::Drift),
}

/// The removal reasons of [`InterruptionCause::removal_reason`].
const REMOVAL_REASONS: [&str; 4] = ["spot-interrupted", "scheduled-change", "replacement-asked", "drifted"];

impl InterruptionCause {
    /// What a removal begun for it is counted as (`ballast_nodes_removed_total`'s `reason`),
    /// beside a policy's `empty` and `underutilized`.
    pub fn removal_reason(&self) -> &'static str {
        match self {
            InterruptionCause::SpotReclaim => REMOVAL_REASONS[0],
            InterruptionCause::Scheduled(_) => REMOVAL_REASONS[1],
            InterruptionCause::Asked { .. } => REMOVAL_REASONS[2],
            InterruptionCause::Drifted(_) => REMOVAL_REASONS[3],
        }
    }

    /// The removal reason named `name` (as a removal mark keeps it); none for a name this
    /// version does not know (a mark written by a later one).
    pub fn removal_reason_named(name: &str) -> Option<&'static str> {
        REMOVAL_REASONS.iter().find(|r| **r == name).copied()
    }
}

impl std::fmt::Display for InterruptionCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterruptionCause::SpotReclaim => f.write_str("spot interruption warning"),
            InterruptionCause::Scheduled(code) => write!(f, "scheduled change {code}"),
            InterruptionCause::Asked { caller, reason } => write!(f, "replacement asked by {caller} ({reason})"),
            InterruptionCause::Drifted(drift) => write!(f, "drifted ({drift})"),
        }
    }
}

/// Where time comes from: the wall clock in the daemon, a virtual one in the simulator.
pub trait Clock: Send + Sync {
    fn now_millis(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }
}

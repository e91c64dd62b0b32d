//! The read-only view a policy evaluates, and its in-memory form.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::model::{
    CapacityBuffer, FargatePricing, GroupCooldown, GroupOptions, HorizontalAutoscaler, KeptAway, LaunchFailure,
    MetricSeries, Node, NodeGroup, NodeGroupKind, PendingPod, PendingShape, PerNodeLimit, PlacementCooldown, PodShape,
    Proposal, ProvisioningTime, Resources, ScheduledRun, Workload, WorkloadRef, ZoneSpread,
};

/// How long after it registered a node that is not Ready is taken for lost or stuck rather
/// than booting: a node is Ready a minute or two after it registers.
pub const STUCK_AFTER_SECONDS: u64 = 600;

/// What a policy can read about the cluster in one evaluation.
///
/// Inside a plugin each method fetches its part from the host on first use and caches it, so
/// a policy pays only for what it reads. In native tests [`SnapshotData`] implements it.
pub trait Snapshot {
    /// Milliseconds since the Unix epoch when the snapshot was taken (virtual in simulations).
    fn taken_at_millis(&self) -> u64;
    fn node_groups(&self) -> &[NodeGroup];
    fn nodes(&self) -> &[Node];
    /// The nodes of one group. Cheaper than [`Snapshot::nodes`] inside a plugin when the
    /// policy only looks at a few groups.
    fn nodes_in_group(&self, group: &str) -> Vec<Node> {
        self.nodes().iter().filter(|n| n.group.as_deref() == Some(group)).cloned().collect()
    }
    /// Nodes `group` has asked for that are still on their way: its desired size less its
    /// Ready nodes and less its nodes that registered over [`STUCK_AFTER_SECONDS`] ago and
    /// are not Ready (lost or stuck, not coming: the host replaces them). Reads the group's
    /// nodes only when some are not Ready.
    fn booting(&self, group: &NodeGroup) -> u32 {
        let missing = group.desired_size.saturating_sub(group.ready_nodes);
        if missing == 0 {
            return 0;
        }
        let stuck =
            self.nodes_in_group(&group.id).into_iter().filter(|n| !n.ready && n.age_seconds >= STUCK_AFTER_SECONDS);
        missing.saturating_sub(stuck.count() as u32)
    }
    /// Every pod waiting for capacity, one record each.
    fn pending_pods(&self) -> &[PendingPod];
    /// The pending pods grouped by shape with counts (interface 0.1.2), in the order each
    /// shape's first pod appears in [`Snapshot::pending_pods`]. Inside a plugin this crosses
    /// the boundary once per shape instead of once per pod: prefer it when many replicas wait.
    fn pending_shapes(&self) -> &[PendingShape];
    /// Whether a pod waits that a new node of some Auto Scaling group would hold: one a group
    /// (with a max-size above 0) admits (selectors, affinity keys, taints) and its launch
    /// type's allocatable fits, the pods a scale-up can help.
    ///
    /// Other pods wait however many nodes run (a request no group's type holds, a selector
    /// or a taint no group matches), so they do not make capacity short: a policy that keeps
    /// nodes while pods wait should keep them for the pods this counts only, or one
    /// unrunnable pod keeps every idle node for as long as it waits.
    ///
    /// # Caveats
    /// A group at its max still counts: its pods may wait for room a removal elsewhere in it
    /// would hand back to them.
    fn pods_wait_for_nodes(&self) -> bool {
        let groups = growable(self.node_groups());
        self.pending_shapes().iter().any(|shape| new_node_takes(&groups, shape))
    }
    fn workloads(&self) -> &[Workload];
    fn fargate_pricing(&self) -> &FargatePricing;
    /// Decisions earlier plugins of the chain proposed this tick.
    fn proposals(&self) -> &[Proposal];
    /// The CloudWatch series the configuration names (interface 0.1.1).
    fn metrics(&self) -> &[MetricSeries] {
        &[]
    }

    /// Cluster Autoscaler's settings of the groups that set any, from their tags (interface
    /// 0.1.3).
    fn group_options(&self) -> &[GroupOptions] {
        &[]
    }

    /// The pods running on one node, grouped by shape (interface 0.1.4); empty for a node the
    /// snapshot does not hold, and from a host older than 0.1.4. Inside a plugin each call
    /// crosses the boundary once, so ask only for the nodes a policy weighs.
    fn pods_on_node(&self, node: &str) -> Vec<PodShape> {
        let _ = node;
        Vec::new()
    }

    /// The next run of each workload that runs on a schedule, soonest first (interface
    /// 0.1.5); empty from a host older than 0.1.5.
    fn scheduled_runs(&self) -> &[ScheduledRun] {
        &[]
    }

    /// Each Auto Scaling group's standing against the host's cooldowns, in the order of
    /// [`Snapshot::node_groups`] (interface 0.1.6); empty from a host older than 0.1.6.
    fn group_cooldowns(&self) -> &[GroupCooldown] {
        &[]
    }

    /// Every HorizontalPodAutoscaler whose bounds read, by target (interface 0.1.7); empty
    /// from a host older than 0.1.7.
    fn horizontal_autoscalers(&self) -> &[HorizontalAutoscaler] {
        &[]
    }

    /// The workloads the host's placement cooldown still holds (interface 0.1.8); empty
    /// from a host older than 0.1.8.
    fn placement_cooldowns(&self) -> &[PlacementCooldown] {
        &[]
    }

    /// The Auto Scaling groups whose launches failed since they last delivered the nodes
    /// asked of them (interface 0.1.9); empty from a host older than 0.1.9.
    fn launch_failures(&self) -> &[LaunchFailure] {
        &[]
    }

    /// One group's launch failures since it last delivered, if any (see
    /// [`Snapshot::launch_failures`]).
    fn launch_failure_of(&self, group: &str) -> Option<&LaunchFailure> {
        self.launch_failures().iter().find(|f| f.group == group)
    }

    /// How long each Auto Scaling group took to deliver its last few nodes (interface
    /// 0.1.10); empty from an older host, and a group the host has not yet seen deliver is
    /// not listed.
    fn provisioning_times(&self) -> &[ProvisioningTime] {
        &[]
    }

    /// The cluster's CapacityBuffers whose pod shape and size resolve, by namespace and
    /// name (interface 0.1.11); empty from an older host.
    fn capacity_buffers(&self) -> &[CapacityBuffer] {
        &[]
    }

    /// The workloads whose pods may not share a node beyond a count, by workload (interface
    /// 0.1.12); empty from an older host, and a workload without such a rule is not listed.
    fn per_node_limits(&self) -> &[PerNodeLimit] {
        &[]
    }

    /// How many pods of `workload` one node may run, if the scheduler limits it (see
    /// [`Snapshot::per_node_limits`]).
    fn max_per_node(&self, workload: &WorkloadRef) -> Option<u32> {
        self.per_node_limits().iter().find(|l| &l.workload == workload).map(|l| l.max_pods)
    }

    /// The workloads the scheduler keeps spread over zones, by workload (interface 0.1.13);
    /// empty from an older host, and a workload without such a rule is not listed.
    fn zone_spreads(&self) -> &[ZoneSpread] {
        &[]
    }

    /// How `workload` is kept spread over zones, if it is (see [`Snapshot::zone_spreads`]).
    fn zone_spread(&self, workload: &WorkloadRef) -> Option<&ZoneSpread> {
        self.zone_spreads().iter().find(|s| &s.workload == workload)
    }

    /// The workloads whose pods may not share a node with other workloads' pods, by workload
    /// (interface 0.1.16); empty from an older host, and a workload with no such rule, its
    /// own or another's, is not listed.
    fn kept_away(&self) -> &[KeptAway] {
        &[]
    }

    /// The workloads whose pods `workload`'s may not share a node with (see
    /// [`Snapshot::kept_away`]); empty when none.
    fn kept_away_from(&self, workload: &WorkloadRef) -> &[WorkloadRef] {
        self.kept_away().iter().find(|k| &k.workload == workload).map_or(&[], |k| &k.apart_from)
    }

    /// One group's recent provisioning times, if the host has seen it deliver (see
    /// [`Snapshot::provisioning_times`]).
    fn provisioning_time_of(&self, group: &str) -> Option<&ProvisioningTime> {
        self.provisioning_times().iter().find(|t| t.group == group)
    }

    /// Whether the host would let `workload` move between Fargate and EC2 now: not while
    /// its placement cooldown holds it. Always from a host older than 0.1.8, which says
    /// nothing of it (its guardrails still refuse such a move).
    fn may_place(&self, workload: &WorkloadRef) -> bool {
        let now = self.taken_at_millis();
        self.placement_cooldowns().iter().all(|c| &c.workload != workload || c.may_move(now))
    }

    /// The autoscaler of one workload, if it has one the host could read.
    fn autoscaler_of(&self, workload: &WorkloadRef) -> Option<&HorizontalAutoscaler> {
        self.horizontal_autoscalers().iter().find(|a| &a.target == workload)
    }

    /// One group's standing against the host's cooldowns, if the host says.
    fn cooldown_of(&self, group: &str) -> Option<&GroupCooldown> {
        self.group_cooldowns().iter().find(|c| c.group == group)
    }

    /// One group's Cluster Autoscaler settings; none set gives the default (all `None`).
    fn options_of(&self, group: &str) -> GroupOptions {
        self.group_options().iter().find(|o| o.group == group).cloned().unwrap_or_default()
    }

    /// A series by the name the configuration gives it.
    fn metric(&self, name: &str) -> Option<&MetricSeries> {
        self.metrics().iter().find(|m| m.name == name)
    }

    /// A node group by id.
    fn node_group(&self, id: &str) -> Option<&NodeGroup> {
        self.node_groups().iter().find(|g| g.id == id)
    }
}

/// A whole snapshot held in memory: what the host builds each tick, what snapshot files
/// contain, and what native policy tests evaluate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct SnapshotData {
    pub taken_at_millis: u64,
    pub node_groups: Vec<NodeGroup>,
    pub nodes: Vec<Node>,
    pub pending_pods: Vec<PendingPod>,
    pub workloads: Vec<Workload>,
    pub fargate_pricing: FargatePricing,
    pub proposals: Vec<Proposal>,
    pub metrics: Vec<MetricSeries>,
    pub group_options: Vec<GroupOptions>,
    /// The pods on each node by shape, by node name (interface 0.1.4), as a snapshot file
    /// or a test gives them. A node not listed here is asked of `pods_source`.
    pub pods_on_nodes: BTreeMap<String, Vec<PodShape>>,
    /// The next run of each scheduled workload, soonest first (interface 0.1.5).
    pub scheduled_runs: Vec<ScheduledRun>,
    /// Each Auto Scaling group's standing against the host's cooldowns (interface 0.1.6).
    pub group_cooldowns: Vec<GroupCooldown>,
    /// Every HorizontalPodAutoscaler whose bounds read, by target (interface 0.1.7).
    pub horizontal_autoscalers: Vec<HorizontalAutoscaler>,
    /// The workloads the host's placement cooldown holds (interface 0.1.8).
    pub placement_cooldowns: Vec<PlacementCooldown>,
    /// The groups whose launches failed since they last delivered (interface 0.1.9).
    pub launch_failures: Vec<LaunchFailure>,
    /// How long each group took to deliver its last few nodes (interface 0.1.10).
    pub provisioning_times: Vec<ProvisioningTime>,
    /// The CapacityBuffers that resolve, by namespace and name (interface 0.1.11).
    pub capacity_buffers: Vec<CapacityBuffer>,
    /// The workloads whose pods may not share a node beyond a count (interface 0.1.12).
    pub per_node_limits: Vec<PerNodeLimit>,
    /// The workloads the scheduler keeps spread over zones (interface 0.1.13).
    pub zone_spreads: Vec<ZoneSpread>,
    /// The workloads whose pods may not share a node with others' (interface 0.1.16).
    pub kept_away: Vec<KeptAway>,
    /// Where a host's snapshot finds a node's pods, only when a policy asks: never written.
    #[serde(skip)]
    pub pods_source: PodsSource,
    /// Worked out from `pending_pods` on first use; never written to a file.
    #[serde(skip)]
    pub shapes: DerivedShapes,
}

/// The Auto Scaling groups that may grow (a max-size above 0), each with what a new node of it
/// offers ([`NodeGroup::launch_allocatable`]): what [`new_node_takes`] asks.
pub fn growable(groups: &[NodeGroup]) -> Vec<(&NodeGroup, Resources)> {
    groups
        .iter()
        .filter(|g| g.kind == NodeGroupKind::Asg && g.max_size > 0)
        .map(|g| (g, g.launch_allocatable()))
        .collect()
}

/// Whether a new node of one of the `growable` groups takes a pod of the shape: the group
/// admits it and the node holds its requests and a pod slot. The rule of
/// [`Snapshot::pods_wait_for_nodes`].
pub fn new_node_takes(growable: &[(&NodeGroup, Resources)], shape: &PendingShape) -> bool {
    let one = Resources { pods: shape.requests.pods.max(1), ..shape.requests };
    growable.iter().any(|(g, template)| g.admits(shape) && template.fits(&one))
}

/// Looks up one node's pods by shape: how a host hands over `pods-on-node` without building
/// every node's list each tick. Equal to any other, like [`DerivedShapes`].
#[derive(Clone, Default)]
pub struct PodsSource(Option<Arc<PodsLookup>>);

/// A host's lookup of one node's pods by shape.
type PodsLookup = dyn Fn(&str) -> Vec<PodShape> + Send + Sync;

impl PodsSource {
    pub fn new(lookup: impl Fn(&str) -> Vec<PodShape> + Send + Sync + 'static) -> Self {
        PodsSource(Some(Arc::new(lookup)))
    }

    fn get(&self, node: &str) -> Vec<PodShape> {
        self.0.as_ref().map(|lookup| lookup(node)).unwrap_or_default()
    }
}

impl PartialEq for PodsSource {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for PodsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "PodsSource(host)" } else { "PodsSource(none)" })
    }
}

/// [`SnapshotData::pending_shapes`], computed once from the pending pods. Equal to any other,
/// so that comparing two snapshots compares what they hold, not whether one was asked for
/// its shapes yet.
#[derive(Clone, Debug, Default)]
pub struct DerivedShapes(OnceLock<Vec<PendingShape>>);

impl PartialEq for DerivedShapes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Snapshot for SnapshotData {
    fn taken_at_millis(&self) -> u64 {
        self.taken_at_millis
    }
    fn node_groups(&self) -> &[NodeGroup] {
        &self.node_groups
    }
    fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    fn pending_pods(&self) -> &[PendingPod] {
        &self.pending_pods
    }
    fn pending_shapes(&self) -> &[PendingShape] {
        self.shapes.0.get_or_init(|| crate::model::pending_shapes(&self.pending_pods))
    }
    fn workloads(&self) -> &[Workload] {
        &self.workloads
    }
    fn fargate_pricing(&self) -> &FargatePricing {
        &self.fargate_pricing
    }
    fn proposals(&self) -> &[Proposal] {
        &self.proposals
    }
    fn metrics(&self) -> &[MetricSeries] {
        &self.metrics
    }
    fn group_options(&self) -> &[GroupOptions] {
        &self.group_options
    }
    fn scheduled_runs(&self) -> &[ScheduledRun] {
        &self.scheduled_runs
    }
    fn group_cooldowns(&self) -> &[GroupCooldown] {
        &self.group_cooldowns
    }
    fn horizontal_autoscalers(&self) -> &[HorizontalAutoscaler] {
        &self.horizontal_autoscalers
    }
    fn placement_cooldowns(&self) -> &[PlacementCooldown] {
        &self.placement_cooldowns
    }
    fn launch_failures(&self) -> &[LaunchFailure] {
        &self.launch_failures
    }
    fn provisioning_times(&self) -> &[ProvisioningTime] {
        &self.provisioning_times
    }
    fn capacity_buffers(&self) -> &[CapacityBuffer] {
        &self.capacity_buffers
    }
    fn per_node_limits(&self) -> &[PerNodeLimit] {
        &self.per_node_limits
    }
    fn zone_spreads(&self) -> &[ZoneSpread] {
        &self.zone_spreads
    }
    fn kept_away(&self) -> &[KeptAway] {
        &self.kept_away
    }
    fn pods_on_node(&self, node: &str) -> Vec<PodShape> {
        match self.pods_on_nodes.get(node) {
            Some(listed) => listed.clone(),
            None => self.pods_source.get(node),
        }
    }
}

//! Node groups: what they launch, at what price, for which pods, and where they stand
//! against Cluster Autoscaler's per-group options and the host's cooldowns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Constraints, Resources, Taint, TaintEffect};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeGroupKind {
    /// An EC2 Auto Scaling group (EKS managed node group, kops instance group).
    #[default]
    Asg,
    /// An EKS Fargate profile.
    Fargate,
}

/// The label carrying a group's capacity type, as EKS managed node groups put it on their
/// nodes: `ON_DEMAND` or `SPOT`. The host sets it on every Auto Scaling group it shows.
pub const CAPACITY_TYPE_LABEL: &str = "eks.amazonaws.com/capacityType";

/// Whether a group's instances are on-demand or spot (interruptible, cheaper).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    #[default]
    OnDemand,
    Spot,
}

impl CapacityType {
    /// The label's value: `ON_DEMAND` or `SPOT`.
    pub fn label(self) -> &'static str {
        match self {
            CapacityType::OnDemand => "ON_DEMAND",
            CapacityType::Spot => "SPOT",
        }
    }
}

/// One instance type a node group can launch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct InstanceType {
    pub name: String,
    pub capacity: Resources,
    pub allocatable: Resources,
    /// US dollars per hour for one instance.
    pub price_per_hour: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct NodeGroup {
    pub id: String,
    pub kind: NodeGroupKind,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_size: u32,
    pub ready_nodes: u32,
    /// Every type the group can launch, primary first.
    pub instance_types: Vec<InstanceType>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub zones: Vec<String>,
}

impl NodeGroup {
    /// What a new node of this group is certain to offer, whichever of its instance types is
    /// launched: the smallest allocatable in each dimension. Never overestimates, but in a
    /// group whose types differ in size it can be half of what comes: a scale-up planned by
    /// it buys twice the nodes. Plans use [`NodeGroup::launch_allocatable`]; this is for
    /// moves that must not leave running pods short (a replacement node).
    pub fn guaranteed_allocatable(&self) -> Resources {
        let mut types = self.instance_types.iter().map(|t| t.allocatable);
        let Some(first) = types.next() else { return Resources::ZERO };
        types.fold(first, |a, b| a.least(&b))
    }

    /// On-demand or spot, from [`CAPACITY_TYPE_LABEL`] (on-demand when absent).
    pub fn capacity_type(&self) -> CapacityType {
        match self.labels.get(CAPACITY_TYPE_LABEL).map(String::as_str) {
            Some("SPOT") => CapacityType::Spot,
            _ => CapacityType::OnDemand,
        }
    }

    /// The most a new node of this group can cost per hour.
    pub fn max_price_per_hour(&self) -> f64 {
        self.instance_types.iter().map(|t| t.price_per_hour).fold(0.0, f64::max)
    }

    /// The type a new node of this group is most likely to be: see [`launch_type`].
    pub fn launch_type(&self) -> Option<&InstanceType> {
        launch_type(&self.instance_types, self.capacity_type())
    }

    /// What a new node of this group is expected to cost per hour: its [`launch_type`]'s
    /// price, at most [`NodeGroup::max_price_per_hour`].
    pub fn launch_price_per_hour(&self) -> f64 {
        self.launch_type().map_or(0.0, |t| t.price_per_hour)
    }

    /// What a new node of this group is expected to offer: its [`launch_type`]'s allocatable
    /// (nothing for a group with no types), the room that [`NodeGroup::launch_price_per_hour`]
    /// buys. Cluster Autoscaler sizes a mixed-instances group by its first type the same way.
    ///
    /// # Caveats
    /// A node that comes as a smaller type of the group holds less: what it cannot hold waits
    /// for the next scale-up.
    pub fn launch_allocatable(&self) -> Resources {
        self.launch_type().map_or(Resources::ZERO, |t| t.allocatable)
    }

    /// True if a pod with these constraints (a [`PendingPod`](super::PendingPod) or a [`PendingShape`](super::PendingShape)) may be
    /// scheduled on a new node of this group.
    pub fn admits(&self, pod: &impl Constraints) -> bool {
        self.refusal(pod).is_none()
    }

    /// Why a new node of this group would not take a pod with these constraints: the first
    /// label it selects that the group's nodes do not carry with that value, the first label
    /// its required node affinity names that they do not carry at all, or the first taint it
    /// does not tolerate. None when the group admits it ([`NodeGroup::admits`]).
    pub fn refusal<'a>(&'a self, pod: &'a impl Constraints) -> Option<Refusal<'a>> {
        if let Some((key, value)) = pod.node_selector().iter().find(|(k, v)| self.labels.get(*k) != Some(v)) {
            return Some(Refusal::Label { key, value });
        }
        if let Some(key) = pod.affinity_keys().iter().find(|k| !self.labels.contains_key(*k)) {
            return Some(Refusal::AffinityKey(key));
        }
        self.untolerated_taint(pod).map(Refusal::Taint)
    }

    /// The first taint of the group's nodes that keeps off pods with these constraints (one
    /// they do not tolerate; a `PreferNoSchedule` taint keeps nothing off), whatever their
    /// labels: the taint half of [`NodeGroup::refusal`].
    pub fn untolerated_taint(&self, pod: &impl Constraints) -> Option<&Taint> {
        (self.taints.iter())
            .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
            .find(|t| !pod.tolerations().iter().any(|tol| tol.tolerates(t)))
    }
}

/// Why a group does not admit a pod ([`NodeGroup::refusal`]); its `Display` says it as
/// "its nodes do not carry `topology.kubernetes.io/zone=us-east-1c`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// The pod selects this label with this value; the group's nodes do not carry it.
    Label { key: &'a str, value: &'a str },
    /// The pod's required node affinity names this label; the group's nodes do not carry it.
    AffinityKey(&'a str),
    /// The group's nodes carry this taint; the pod does not tolerate it.
    Taint(&'a Taint),
}

impl std::fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Label { key, value } => write!(f, "its nodes do not carry {key}={value}"),
            Refusal::AffinityKey(key) => {
                write!(f, "its nodes do not carry {key}, which the pod's node affinity requires")
            }
            Refusal::Taint(t) => {
                write!(f, "its nodes carry taint {}={}:{:?}, which the pod does not tolerate", t.key, t.value, t.effect)
            }
        }
    }
}

/// Which of a group's instance types (primary first) EC2 launches for a new node when the
/// group sets no weights: a spot group's cheapest (the spot allocation strategies weigh
/// price per instance, so the cheapest pool wins unless it has no capacity), an on-demand
/// group's first (the `prioritized` strategy, the default for on-demand; the AWS adapter
/// lists a `lowest-price` group's types cheapest first). The simulator launches the same
/// type; the first of equally cheap types wins.
///
/// # Caveats
/// An estimate, not a promise: a spot pool short of capacity launches another type, and a
/// spot group on `capacity-optimized` picks pools by capacity, not price. A scale-up sized
/// by it ([`NodeGroup::launch_allocatable`]) that gets a smaller type leaves pods waiting for
/// the next one; a replacement is sized by the smallest type
/// ([`NodeGroup::guaranteed_allocatable`]), so it never leaves running pods short.
pub fn launch_type(types: &[InstanceType], capacity: CapacityType) -> Option<&InstanceType> {
    match capacity {
        CapacityType::OnDemand => types.first(),
        CapacityType::Spot => {
            types.iter().reduce(|cheapest, t| if t.price_per_hour < cheapest.price_per_hour { t } else { cheapest })
        }
    }
}

/// Cluster Autoscaler's per-group settings (interface 0.1.3), from the Auto Scaling group's
/// tags `k8s.io/cluster-autoscaler/node-template/autoscaling-options/<option>`. `None` where
/// the group does not set one: the policy's own setting applies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct GroupOptions {
    pub group: String,
    /// A node whose requests are below this fraction of its allocatable may be removed.
    pub scale_down_utilization_threshold: Option<f64>,
    /// The same for nodes with GPUs.
    pub scale_down_gpu_utilization_threshold: Option<f64>,
    /// How long a node must stay removable before it is removed.
    pub scale_down_unneeded_seconds: Option<u64>,
    /// The same for a node that is not Ready.
    pub scale_down_unready_seconds: Option<u64>,
    /// Leave DaemonSet pods out of a node's utilisation.
    pub ignore_daemonsets_utilization: Option<bool>,
}

impl GroupOptions {
    /// True when the group sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == GroupOptions { group: self.group.clone(), ..GroupOptions::default() }
    }
}

/// Where a node group stands against the host's cooldowns (interface 0.1.6): what
/// [`crate::Snapshot::group_cooldowns`] returns, so a policy need not copy the host's
/// configuration to know what it would refuse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct GroupCooldown {
    pub group: String,
    /// When the host last grew the group, milliseconds since the Unix epoch.
    pub last_scale_up_millis: Option<u64>,
    /// When the host last shrank it (a smaller size or a node removal begun).
    pub last_scale_down_millis: Option<u64>,
    /// The host refuses a growth of the group before this moment; 0 when nothing holds it.
    pub scale_up_allowed_at_millis: u64,
    /// The host refuses a shrink before this moment; 0 when nothing holds it.
    pub scale_down_allowed_at_millis: u64,
}

impl GroupCooldown {
    /// The host would let the group shrink at `now`.
    pub fn may_shrink(&self, now: u64) -> bool {
        now >= self.scale_down_allowed_at_millis
    }
}

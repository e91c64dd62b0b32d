//! From what the adapters show to the snapshot plugins read, plus the facts the guardrails and
//! actuation need (which instance backs a node, which pods a drain must evict).
//!
//! The removal and Fargate blockers are worked out here, once, by the host: a plugin sees why
//! a node cannot go, and the guardrails refuse it whatever a plugin says.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ballast_sdk::{
    FargatePricing, Node, NodeGroup, NodeGroupKind, PendingPod, Placement, Resources, SnapshotData, Workload,
    WorkloadKind, WorkloadRef,
};

use super::config::Guardrails;
use super::ports::{
    ClusterView, GroupView, InstanceLifecycle, InstanceView, LaunchFailure, NodePods, NodeView, PassedOverPod,
    PendingPodView, PodShape, WorkloadView,
};

/// The id of the node group that stands for the cluster's Fargate profile.
pub const FARGATE_GROUP: &str = "fargate";

/// What the engine knows about a group beyond the snapshot.
#[derive(Clone, Debug)]
pub struct GroupFacts {
    pub kind: NodeGroupKind,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    /// Instances launched and not leaving: capacity the group already pays for.
    pub instances: u32,
    pub ready: u32,
    /// Nodes that were Ready once and are not now (see [`was_ready_once`]): lost, not booting,
    /// so not awaited by the provisioning watch.
    pub lost: u32,
    /// See [`GroupView::updates_itself`].
    pub updates_itself: bool,
}

/// What the engine knows about a node beyond the snapshot.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    /// Index of the node in the snapshot's node list.
    pub index: usize,
    pub group: Option<String>,
    pub instance_id: Option<String>,
    /// Its group lists its instance (not terminated, not waiting to be described).
    pub listed: bool,
    /// When it stopped being Ready, if it is not (as the adapter tells).
    pub unready_since: Option<u64>,
    /// It was Ready once and is not now (see [`was_ready_once`]); an unready node that is
    /// not lost never became Ready.
    pub lost: bool,
    /// The annotation that keeps it from any voluntary removal ([`super::ports::NodeView::kept_by`]).
    pub kept_by: Option<&'static str>,
    /// What runs on it; a drain evicts [`NodePods::evictable`].
    pub pods: Arc<NodePods>,
    /// It is of an image, instance type or template version its group no longer launches.
    pub drift: Option<crate::drift::Drift>,
}

/// One observation, ready for plugins and guardrails.
pub struct Observation {
    pub snapshot: Arc<SnapshotData>,
    pub groups: BTreeMap<String, GroupFacts>,
    pub nodes: HashMap<Arc<str>, NodeFacts>,
    /// Unready nodes over all nodes.
    pub unready: (usize, usize),
    /// Each group's most recent failed launch, as the capacity side reports it.
    pub launch_failures: BTreeMap<String, LaunchFailure>,
    /// Pods the scheduler refused that nothing is sized for, and why (see
    /// [`ClusterView::passed_over`]).
    pub passed_over: Vec<PassedOverPod>,
    /// The workloads kept spread over nodes, with their skew: their cap per node is in the
    /// snapshot's per-node limits (see [`crate::node_spread::caps`]).
    pub node_skews: BTreeMap<WorkloadRef, NodeSkew>,
    /// The workloads kept in the zone of other workloads' pods, with that zone, where it is
    /// one ([`crate::zone_affinity`]): their pods select it in the snapshot.
    pub zone_pins: Arc<HashMap<WorkloadRef, String>>,
}

/// A spread over nodes as read: its `maxSkew`, and its `minDomains` if it sets one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSkew {
    pub max_skew: u32,
    pub min_domains: Option<u32>,
}

/// Inputs to [`observe`] besides the views.
pub struct ObserveContext<'a> {
    pub now_millis: u64,
    pub guardrails: &'a Guardrails,
    pub fargate: bool,
    pub fargate_pricing: FargatePricing,
    /// Groups in provisioning back-off, offered to plugins with `max-size` at their current
    /// size so that a policy falls back to another group at once.
    pub backoff: &'a dyn Fn(&str) -> bool,
    /// Nodes being removed (already cordoned by the engine).
    pub being_removed: &'a dyn Fn(&str) -> bool,
    /// How many: what an open disruption window counts against its limit.
    pub removals_under_way: usize,
    /// Where a group stands against the host's cooldowns.
    pub cooldown: &'a dyn Fn(&str) -> ballast_sdk::GroupCooldown,
    /// The workloads the host's placement cooldown holds at `now_millis`.
    pub placement_cooldowns: Vec<ballast_sdk::PlacementCooldown>,
    /// The CloudWatch series as last read (see [`super::series`]).
    pub metrics: Vec<ballast_sdk::MetricSeries>,
}

/// A node that is not Ready but was once: it stopped being Ready well after it registered
/// (a node that never became Ready has been unready since about when it registered).
pub fn was_ready_once(view: &NodeView) -> bool {
    const BOOT_MS: u64 = 60_000;
    !view.ready && view.unready_since_millis.is_some_and(|since| since >= view.created_at_millis + BOOT_MS)
}

/// The snapshot and the facts behind it, from the views and what the engine remembers
/// (`cx`): nodes with their removal blockers, then groups with their ready and lost nodes.
pub fn observe(cluster: ClusterView, mut groups: Vec<GroupView>, cx: &ObserveContext<'_>) -> Observation {
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    let affinity = crate::pod_affinity::PodAffinity::new(&cluster.workloads);
    let seen = observe_nodes(&cluster, &groups, &affinity, cx);
    let GroupsSeen { mut node_groups, facts: group_facts } = observe_groups(&cluster, &groups, &seen, cx);
    let NodesSeen { nodes, facts, unready, pods_on_nodes, .. } = seen;
    crate::disk::learn_group_disks(&mut node_groups, &nodes);
    let workloads: Vec<Workload> = cluster.workloads.iter().map(|w| workload(w, &cx.fargate_pricing)).collect();
    let pins = Arc::new(crate::zone_affinity::pins(&cluster.workloads, &cluster.nodes));
    let pending: Vec<PendingPod> = cluster.pending.iter().map(|p| pending_pod(p, cx.now_millis, &pins)).collect();
    let (pending, refused_for_disk) = crate::disk::refused_for_disk(pending, &node_groups, &workloads);
    let node_spreads = crate::node_spread::caps(&cluster, &nodes, &node_groups, cx.being_removed);
    let (pending, awaiting_removal) = crate::node_spread::awaiting_removal(pending, node_spreads.awaiting_removal);
    let per_node_limits = crate::placement_rules::per_node_limits(&cluster.workloads, &node_spreads.caps);
    let by_zone = crate::placement_rules::pods_by_zone(&cluster.workloads, &cluster.nodes);
    let zone_spreads = crate::placement_rules::zone_spreads(&cluster.workloads, &by_zone);
    let kept_away = crate::kept_away::pairs(&cluster.workloads);
    let fargate = crate::unplaceable::FargateFallback::new(&node_groups, &workloads);
    let (pending, too_few_zones) =
        crate::zone_domains::too_few_zones(pending, &cluster.workloads, &by_zone, &node_groups, &nodes, &fargate);
    let (pending, near_nothing) = affinity.waits_for_ever(pending, &cluster.nodes);
    let total_nodes = cluster.nodes.len();
    let mut scheduled_runs = cluster.scheduled_runs;
    scheduled_runs.sort_by(|a, b| (a.due_at_millis, &a.owner).cmp(&(b.due_at_millis, &b.owner)));
    let mut horizontal_autoscalers = cluster.horizontal_autoscalers;
    horizontal_autoscalers.sort_by(|a, b| a.target.cmp(&b.target));
    let mut capacity_buffers = cluster.capacity_buffers;
    capacity_buffers.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Observation {
        snapshot: Arc::new(SnapshotData {
            taken_at_millis: cx.now_millis,
            node_groups,
            nodes,
            pending_pods: pending,
            workloads,
            fargate_pricing: cx.fargate_pricing.clone(),
            proposals: Vec::new(),
            metrics: cx.metrics.clone(),
            group_options: groups
                .iter()
                .filter(|g| !g.options.is_empty())
                .map(|g| ballast_sdk::GroupOptions { group: g.id.clone(), ..g.options.clone() })
                .collect(),
            pods_on_nodes: BTreeMap::new(),
            scheduled_runs,
            group_cooldowns: groups.iter().map(|g| (cx.cooldown)(&g.id)).collect(),
            horizontal_autoscalers,
            placement_cooldowns: cx.placement_cooldowns.clone(),
            // Filled in by the engine once this tick's failures are counted.
            launch_failures: Vec::new(),
            provisioning_times: Vec::new(),
            capacity_buffers,
            per_node_limits,
            zone_spreads,
            kept_away,
            pods_source: ballast_sdk::PodsSource::new({
                let pins = pins.clone();
                move |node| pods_on_nodes.get(node).map(|pods| pod_shapes(pods, &pins)).unwrap_or_default()
            }),
            shapes: Default::default(),
        }),
        groups: group_facts,
        nodes: facts,
        unready: (unready, total_nodes),
        launch_failures: groups
            .iter()
            .filter_map(|g| g.last_launch_failure.clone().map(|f| (g.id.clone(), f)))
            .collect(),
        passed_over: cluster
            .passed_over
            .into_iter()
            .chain(refused_for_disk)
            .chain(awaiting_removal)
            .chain(too_few_zones)
            .chain(near_nothing)
            .collect(),
        node_skews: (cluster.workloads.iter())
            .filter_map(|w| {
                let skew = NodeSkew { max_skew: w.max_node_skew?, min_domains: w.min_node_domains };
                Some((w.id.clone(), skew))
            })
            .collect(),
        zone_pins: pins,
    }
}

/// The nodes as the snapshot shows them and the facts behind each, with what the groups'
/// counts need.
struct NodesSeen<'a> {
    nodes: Vec<Node>,
    facts: HashMap<Arc<str>, NodeFacts>,
    /// Ready nodes by group (Fargate's included).
    ready_in_group: HashMap<&'a str, u32>,
    /// Nodes that were Ready once and are not now, by group.
    lost_in_group: HashMap<&'a str, u32>,
    unready: usize,
    pods_on_nodes: HashMap<Arc<str>, Arc<NodePods>>,
}

fn observe_nodes<'a>(
    cluster: &'a ClusterView,
    groups: &'a [GroupView],
    affinity: &'a crate::pod_affinity::PodAffinity<'a>,
    cx: &ObserveContext<'_>,
) -> NodesSeen<'a> {
    let mut instance_group: HashMap<&str, (&GroupView, &InstanceView)> = HashMap::new();
    for group in groups {
        for instance in &group.instances {
            instance_group.insert(instance.id.as_str(), (group, instance));
        }
    }
    let known: std::collections::HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    let blockers = Blockers {
        budgets: cluster
            .disruption_budgets
            .iter()
            .map(|b| ((&*b.namespace, &*b.name), b.disruptions_allowed))
            .collect(),
        window_hold: window_hold(cluster, cx),
        nominated: cluster.passed_over.iter().filter_map(|p| Some((&**p.passed_over.node.as_ref()?, p))).collect(),
        pod_affinity: affinity,
    };
    let mut seen = NodesSeen {
        nodes: Vec::with_capacity(cluster.nodes.len()),
        facts: HashMap::with_capacity(cluster.nodes.len()),
        ready_in_group: HashMap::new(),
        lost_in_group: HashMap::new(),
        unready: 0,
        pods_on_nodes: HashMap::new(),
    };
    for view in &cluster.nodes {
        let listed = view.instance_id.as_deref().and_then(|id| instance_group.get(id).copied());
        let listed_in = listed.map(|(group, _)| group.id.as_str());
        let group = if view.fargate {
            Some(FARGATE_GROUP)
        } else {
            listed_in.or_else(|| view.group_label.as_deref().filter(|g| known.contains(g)))
        };
        if view.ready {
            if let Some(g) = group {
                *seen.ready_in_group.entry(g).or_default() += 1;
            }
        } else {
            seen.unready += 1;
            if let Some(g) = group.filter(|_| was_ready_once(view)) {
                *seen.lost_in_group.entry(g).or_default() += 1;
            }
        }
        let blocker = removal_blocker(view, group, &blockers, cx);
        seen.nodes.push(snapshot_node(view, group, blocker, cx));
        if !view.fargate {
            seen.pods_on_nodes.insert(view.name.clone(), view.pods.clone());
        }
        let facts = NodeFacts {
            index: seen.nodes.len() - 1,
            group: group.map(str::to_string),
            instance_id: view.instance_id.clone(),
            listed: listed_in.is_some(),
            unready_since: view.unready_since_millis.filter(|_| !view.ready),
            lost: was_ready_once(view),
            kept_by: view.kept_by,
            pods: view.pods.clone(),
            drift: listed.and_then(|(group, instance)| crate::drift::of(group, instance)),
        };
        seen.facts.insert(view.name.clone(), facts);
    }
    seen
}

/// What the cluster as a whole holds against removing its nodes.
struct Blockers<'a> {
    /// Disruptions each PodDisruptionBudget allows now, by namespace and name.
    budgets: HashMap<(&'a str, &'a str), u32>,
    /// An open disruption window that lets no node leave, as it says so.
    window_hold: Option<String>,
    /// Pods nominated to run on a node once the lower-priority pods they preempt leave.
    nominated: HashMap<&'a str, &'a PassedOverPod>,
    /// Pods kept on the nodes of other workloads' pods, which are not moved.
    pod_affinity: &'a crate::pod_affinity::PodAffinity<'a>,
}

/// Why a node may not be removed, the first reason that holds; none when it may.
fn removal_blocker(
    view: &NodeView,
    group: Option<&str>,
    blockers: &Blockers<'_>,
    cx: &ObserveContext<'_>,
) -> Option<String> {
    let age_ms = cx.now_millis.saturating_sub(view.created_at_millis);
    if view.fargate {
        Some("a Fargate node: it goes when its pod does".to_string())
    } else if (cx.being_removed)(&view.name) {
        Some("already being removed".to_string())
    } else if let Some(annotation) = view.kept_by {
        Some(format!("annotated {annotation}=true"))
    } else if group.is_none() {
        Some("not in a managed node group".to_string())
    } else if let Some(window) = &blockers.window_hold {
        Some(window.clone())
    } else if age_ms < cx.guardrails.min_node_age.as_millis() as u64 {
        Some(format!(
            "only {} old; nodes are kept at least {}",
            crate::duration::display(std::time::Duration::from_millis(age_ms)),
            crate::duration::display(cx.guardrails.min_node_age)
        ))
    } else if let Some(pod) = blockers.nominated.get(&*view.name) {
        Some(format!(
            "pod {}/{} is nominated to run here once the lower-priority pods it preempts leave",
            pod.namespace, pod.name
        ))
    } else {
        node_blocker(&view.pods, &blockers.budgets, cx.guardrails).or_else(|| blockers.pod_affinity.holds(&view.pods))
    }
}

fn snapshot_node(
    view: &NodeView,
    group: Option<&str>,
    removal_blocker: Option<String>,
    cx: &ObserveContext<'_>,
) -> Node {
    Node {
        name: view.name.to_string(),
        group: group.map(str::to_string),
        instance_type: view.instance_type.clone(),
        zone: view.zone.clone(),
        allocatable: view.allocatable,
        requested: view.pods.requested,
        usage: view.usage,
        ready: view.ready,
        // The engine cordoned it, though the view may have been read just before.
        cordoned: view.cordoned || (cx.being_removed)(&view.name),
        age_seconds: cx.now_millis.saturating_sub(view.created_at_millis) / 1000,
        pod_count: view.pods.count,
        removal_blocker,
    }
}

/// The groups as the snapshot offers them to plugins, and the facts behind each.
struct GroupsSeen {
    node_groups: Vec<NodeGroup>,
    facts: BTreeMap<String, GroupFacts>,
}

fn observe_groups(
    cluster: &ClusterView,
    groups: &[GroupView],
    nodes: &NodesSeen<'_>,
    cx: &ObserveContext<'_>,
) -> GroupsSeen {
    let mut seen = GroupsSeen { node_groups: Vec::with_capacity(groups.len() + 1), facts: BTreeMap::new() };
    for group in groups {
        let ready = nodes.ready_in_group.get(group.id.as_str()).copied().unwrap_or(0);
        let instances = group.instances.iter().filter(|i| i.lifecycle != InstanceLifecycle::Terminating).count() as u32;
        let offered_max = if (cx.backoff)(&group.id) { group.desired_size.min(group.max_size) } else { group.max_size };
        seen.node_groups.push(NodeGroup {
            id: group.id.clone(),
            kind: NodeGroupKind::Asg,
            min_size: group.min_size,
            max_size: offered_max,
            desired_size: group.desired_size,
            ready_nodes: ready,
            instance_types: group.instance_types.clone(),
            labels: group.labels.clone(),
            taints: group.taints.clone(),
            zones: group.zones.clone(),
        });
        let facts = GroupFacts {
            kind: NodeGroupKind::Asg,
            min: group.min_size,
            max: group.max_size,
            desired: group.desired_size,
            instances,
            ready,
            lost: nodes.lost_in_group.get(group.id.as_str()).copied().unwrap_or(0),
            updates_itself: group.updates_itself,
        };
        seen.facts.insert(group.id.clone(), facts);
    }
    if cx.fargate {
        let on_fargate = cluster.nodes.iter().filter(|n| n.fargate).count() as u32;
        let ready = nodes.ready_in_group.get(FARGATE_GROUP).copied().unwrap_or(0);
        seen.node_groups.push(NodeGroup {
            id: FARGATE_GROUP.to_string(),
            kind: NodeGroupKind::Fargate,
            min_size: 0,
            max_size: u32::MAX,
            desired_size: on_fargate,
            ready_nodes: ready,
            ..NodeGroup::default()
        });
        let facts = GroupFacts {
            kind: NodeGroupKind::Fargate,
            min: 0,
            max: u32::MAX,
            desired: on_fargate,
            instances: on_fargate,
            ready,
            lost: 0,
            updates_itself: false,
        };
        seen.facts.insert(FARGATE_GROUP.to_string(), facts);
    }
    seen
}

/// What holds every node while the most restrictive disruption window open has no room
/// left, so that policies see it and propose nothing the guardrails would refuse.
fn window_hold(cluster: &ClusterView, cx: &ObserveContext<'_>) -> Option<String> {
    let windows = &cx.guardrails.disruption_budget.windows;
    if windows.is_empty() {
        return None;
    }
    let ec2_nodes = cluster.nodes.iter().filter(|n| !n.fargate).count();
    let open =
        crate::window::most_restrictive(windows, crate::window::DisruptionReason::Policies, cx.now_millis, ec2_nodes)?;
    (cx.removals_under_way >= open.allowed).then(|| open.describe(cx.removals_under_way))
}

/// A node's pods by shape as policies see them (contract 0.1.4 `pods-on-node`), worked out
/// only for the nodes a policy asks about, each selecting the zone its workload is pinned to
/// if it is ([`crate::zone_affinity`]). Expendable pods are left out: no other pod makes
/// room for them.
fn pod_shapes(pods: &NodePods, pins: &HashMap<WorkloadRef, String>) -> Vec<ballast_sdk::PodShape> {
    pods.shapes
        .iter()
        .filter(|on| !on.shape.expendable)
        .map(|on| {
            let mut node_selector = on.shape.template.node_selector.clone();
            crate::zone_affinity::pin(&mut node_selector, on.shape.owner.as_deref(), pins);
            ballast_sdk::PodShape {
                namespace: on.shape.namespace.to_string(),
                owner: on.shape.owner.as_deref().cloned(),
                requests: on.shape.requests,
                node_selector,
                affinity_keys: on.shape.template.affinity_keys.clone(),
                tolerations: on.shape.template.tolerations.clone(),
                count: on.pods.len() as u32,
                moves_on_drain: on.shape.evictable(),
            }
        })
        .collect()
}

/// Why a pod keeps this node, if one does: the first blocking pod of the first blocking shape.
/// A shape is judged once, however many of its pods the node runs.
fn node_blocker(pods: &NodePods, budgets: &HashMap<(&str, &str), u32>, rules: &Guardrails) -> Option<String> {
    pods.shapes
        .iter()
        .filter(|s| s.shape.must_move())
        .find_map(|s| s.pods.first().and_then(|name| pod_blocker(&s.shape, name, budgets, rules)))
}

/// Why a pod of this shape keeps its node, if it does (Cluster Autoscaler's drainability
/// rules, local storage and system pods as `rules` say). `name` is one pod of the shape on
/// the node, for the message.
fn pod_blocker(pod: &PodShape, name: &str, budgets: &HashMap<(&str, &str), u32>, rules: &Guardrails) -> Option<String> {
    let id = || format!("pod {}/{name}", pod.namespace);
    if let Some(unreadable) = &pod.unreadable {
        return Some(format!("{}: {unreadable}; its needs are unknown", id()));
    }
    let template = &pod.template;
    if template.do_not_disrupt {
        return Some(format!("{} is annotated karpenter.sh/do-not-disrupt=true", id()));
    }
    if template.safe_to_evict == Some(false) {
        return Some(format!("{} is annotated cluster-autoscaler.kubernetes.io/safe-to-evict=false", id()));
    }
    if let Some(budget) = &pod.disruption_budget {
        match budgets.get(&(&*pod.namespace, &**budget)) {
            Some(0) => {
                return Some(format!(
                    "{} is covered by PodDisruptionBudget {}/{budget}, which allows no disruption now",
                    id(),
                    pod.namespace
                ));
            }
            Some(_) => {}
            None => return Some(format!("{}: its PodDisruptionBudget {budget} is not known", id())),
        }
    }
    if template.safe_to_evict == Some(true) {
        return None;
    }
    if pod.owner.is_none() {
        return Some(format!("{} has no controller: evicted, it would not come back", id()));
    }
    if let Some(controller) = &template.custom_controller
        && rules.skip_nodes_with_custom_controller_pods
    {
        return Some(format!("{} is controlled by {controller}, a custom controller that may not bring it back", id()));
    }
    if template.local_storage && rules.skip_nodes_with_local_storage {
        return Some(format!("{} uses local storage (emptyDir or hostPath) that a move would lose", id()));
    }
    if &*pod.namespace == "kube-system" && pod.disruption_budget.is_none() && rules.skip_nodes_with_system_pods {
        return Some(format!("{} is a kube-system pod without a PodDisruptionBudget", id()));
    }
    None
}

/// A pending pod as policies see it, selecting the zone its workload is pinned to if it is
/// ([`crate::zone_affinity`]).
fn pending_pod(pod: &PendingPodView, now_millis: u64, pins: &HashMap<WorkloadRef, String>) -> PendingPod {
    let shape = &pod.shape;
    let mut node_selector = shape.template.node_selector.clone();
    crate::zone_affinity::pin(&mut node_selector, shape.owner.as_deref(), pins);
    PendingPod {
        namespace: shape.namespace.to_string(),
        name: pod.name.to_string(),
        requests: shape.requests,
        owner: shape.owner.as_deref().cloned(),
        node_selector,
        affinity_keys: shape.template.affinity_keys.clone(),
        tolerations: shape.template.tolerations.clone(),
        age_seconds: now_millis.saturating_sub(pod.created_at_millis) / 1000,
    }
}

/// Why a workload whose pods each ask `requests` cannot run on Fargate, if it cannot.
pub fn fargate_blocker(
    id: &WorkloadRef,
    traits: &super::ports::FargateTraits,
    requests: &Resources,
    pricing: &FargatePricing,
) -> Option<String> {
    let why = if id.kind == WorkloadKind::DaemonSet {
        "a DaemonSet (Fargate runs one pod per node and no DaemonSets)"
    } else if traits.ebs_volume {
        "mounts an EBS-backed volume (Fargate supports EFS only)"
    } else if traits.privileged {
        "runs a privileged container"
    } else if traits.host_network {
        "uses hostNetwork or hostPort"
    } else if traits.gpu {
        "requests GPUs"
    } else if traits.unsupported_platform {
        "selects Arm or Windows nodes"
    } else if let Some(group) = &traits.pinned_by_owner {
        return Some(format!("pinned to node group `{group}` by its own nodeSelector, which Ballast keeps"));
    } else {
        return too_large_for_fargate(requests, pricing);
    };
    Some(why.to_string())
}

/// Why pods asking `requests` are more than Fargate runs, if they are.
fn too_large_for_fargate(requests: &Resources, pricing: &FargatePricing) -> Option<String> {
    if requests.ephemeral_storage_bytes > FargatePricing::MAX_EPHEMERAL_STORAGE_BYTES {
        let bytes = ballast_sdk::quantity::display_memory;
        return Some(format!(
            "asks {} of ephemeral storage a pod, more than Fargate's {}",
            bytes(requests.ephemeral_storage_bytes),
            bytes(FargatePricing::MAX_EPHEMERAL_STORAGE_BYTES)
        ));
    }
    if pricing.billed_size(requests).is_some() {
        return None;
    }
    let largest = pricing.sizes.iter().max_by_key(|s| (s.cpu_millis, s.memory_mib_max));
    let largest = largest.map(|s| Resources::pod(s.cpu_millis, s.memory_mib_max << 20)).unwrap_or(Resources::ZERO);
    Some(format!("asks {requests} a pod, more than Fargate's largest size ({largest}) less its overhead"))
}

fn workload(view: &WorkloadView, pricing: &FargatePricing) -> Workload {
    Workload {
        id: view.id.clone(),
        replicas: view.replicas,
        requests_per_replica: view.requests_per_replica,
        placement: view.placement.clone(),
        fargate_blocker: fargate_blocker(&view.id, &view.fargate_traits, &view.requests_per_replica, pricing),
        usage_per_replica: view.usage_per_replica,
    }
}

impl Observation {
    pub fn workload(&self, id: &WorkloadRef) -> Option<&Workload> {
        self.snapshot.workloads.iter().find(|w| &w.id == id)
    }

    pub fn node(&self, name: &str) -> Option<(&Node, &NodeFacts)> {
        let facts = self.nodes.get(name)?;
        Some((self.snapshot.nodes.get(facts.index)?, facts))
    }

    pub fn is_placed(workload: &Workload, target: &ballast_sdk::PlacementTarget) -> bool {
        use ballast_sdk::PlacementTarget;
        match (target, &workload.placement) {
            (PlacementTarget::Fargate, Placement::Fargate) => true,
            (PlacementTarget::Ec2(None), Placement::Ec2(_)) => true,
            (PlacementTarget::Ec2(Some(g)), Placement::Ec2(Some(h))) => g == h,
            _ => false,
        }
    }
}

//! The simulated cluster and cloud: node groups whose instances boot after a delay, nodes,
//! pods and the meters behind the report. Workload controllers are in [`super::controllers`],
//! the scheduler in [`super::scheduler`].
//!
//! Time moves in whole steps (one second in `ballast simulate`) and only through
//! [`World::step`]; every random draw comes from the seed, and every collection is ordered,
//! so a scenario and a seed always produce the same run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ballast_sdk::{FargatePricing, InstanceType, Resources, Taint, WorkloadKind, WorkloadRef};
use rand::{RngExt, SeedableRng, rngs::StdRng};

mod pods;
mod provision;

use crate::engine::node_labels::{self, Arch, NewNode};

use super::meter::Meter;
use super::scenario::{Budget, GroupSpec, NODE_GROUP_LABEL, Scenario, Target, WorkloadSpec};
use super::trace::ReplicaCurve;
use crate::engine::ports::{FargateTraits, LaunchFailure, NodePods, PodShape, PodTemplate};

/// Simulated time starts on Monday 2026-01-05 at the scenario's `start` (UTC).
pub const EPOCH_MILLIS: u64 = 1_767_571_200_000;

pub(super) struct SimGroup {
    pub id: String,
    pub types: Vec<InstanceType>,
    pub capacity: ballast_sdk::CapacityType,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub zones: Vec<String>,
    pub delay_ms: u64,
    pub failures: Vec<(u64, u64)>,
    /// Node ids of live instances, oldest first.
    pub instances: Vec<usize>,
    pub last_failure: Option<LaunchFailure>,
    pub launched: u64,
    /// Interruption windows: from, to (millis after the start) and rate per instance-hour.
    pub interruptions: Vec<(u64, u64, f64)>,
    /// Node losses not yet due: when (millis after the start) and how many nodes.
    pub losses: Vec<(u64, u32)>,
    /// When (millis after the start) its launch template gets a new machine image.
    pub new_images: Vec<u64>,
    /// The names of its images, the first at index 0; none when it never gets a new one.
    pub image_names: Vec<Arc<str>>,
}

impl SimGroup {
    /// The machine image the group launches `elapsed` millis after the start: the first,
    /// plus one for each new image by then.
    pub fn image_at(&self, elapsed: u64) -> u32 {
        1 + self.new_images.iter().filter(|&&at| at <= elapsed).count() as u32
    }

    /// An image as the adapters name it; none for a group whose image never changes, so
    /// drift is not looked for in scenarios without new images.
    pub fn image_name(&self, image: u32) -> Option<Arc<str>> {
        self.image_names.get((image as usize).checked_sub(1)?).cloned()
    }

    /// The group a scenario describes, with no instances yet: spot types at the spot price,
    /// the group's own label, its capacity type's and those every node registers with
    /// ([`node_labels::add_well_known`]) among its labels.
    fn from_spec(scenario: &Scenario, g: &GroupSpec) -> SimGroup {
        let mut labels = g.labels.clone();
        labels.insert(NODE_GROUP_LABEL.into(), g.id.clone());
        labels.insert(ballast_sdk::CAPACITY_TYPE_LABEL.into(), g.capacity_type.label().into());
        let window = |w: &super::scenario::Window| (w.from.as_millis() as u64, w.to.as_millis() as u64);
        let mut group = SimGroup {
            id: g.id.clone(),
            types: g
                .instance_types
                .iter()
                .filter_map(|t| scenario.instance_type(t))
                .map(|mut t| {
                    if g.capacity_type == ballast_sdk::CapacityType::Spot {
                        t.price_per_hour *= super::catalogue::SPOT_PRICE_RATIO;
                    }
                    if let Some(disk) = g.ephemeral_storage {
                        t.capacity.ephemeral_storage_bytes = disk;
                        t.allocatable.ephemeral_storage_bytes = crate::eks::allocatable_storage(disk);
                    }
                    t
                })
                .collect(),
            capacity: g.capacity_type,
            min: g.min_size,
            max: g.max_size,
            desired: g.desired_size.unwrap_or(g.min_size),
            labels,
            taints: g.taints.clone(),
            zones: g.zones.clone(),
            delay_ms: g.provisioning_delay.as_millis() as u64,
            failures: g.launch_failures.iter().map(window).collect(),
            instances: Vec::new(),
            last_failure: None,
            launched: 0,
            interruptions: g
                .interruptions
                .iter()
                .map(|w| (w.from.as_millis() as u64, w.to.as_millis() as u64, w.per_hour))
                .collect(),
            losses: g.node_losses.iter().map(|l| (l.at.as_millis() as u64, l.nodes)).collect(),
            new_images: g.new_images.iter().map(|i| i.at.as_millis() as u64).collect(),
            image_names: match g.new_images.len() {
                0 => Vec::new(),
                n => (1..=n + 1).map(|i| Arc::from(format!("{}-image-{i}", g.id))).collect(),
            },
        };
        let launched = group.launch_type().name.clone();
        let node = NewNode {
            instance_type: &launched,
            arch: Some(Arch::of_type_name(&launched)),
            region: None,
            zones: &group.zones,
        };
        node_labels::add_well_known(&mut group.labels, &node);
        group
    }

    /// The type EC2 launches for a new instance of the group ([`ballast_sdk::launch_type`]:
    /// a spot group's cheapest, an on-demand group's first). A scenario's group always lists
    /// one at least.
    pub fn launch_type(&self) -> &InstanceType {
        ballast_sdk::launch_type(&self.types, self.capacity).unwrap_or_else(|| &self.types[0])
    }
}

pub(super) struct SimNode {
    pub name: Arc<str>,
    pub instance_id: Option<String>,
    pub group: Option<usize>,
    pub instance_type: String,
    pub zone: String,
    pub allocatable: Resources,
    pub price_per_hour: f64,
    pub ready_at: u64,
    pub ready: bool,
    /// When it stopped being Ready for good (see `sim/loss.rs`).
    pub lost_at: Option<u64>,
    pub cordoned: bool,
    pub removal_mark: Option<crate::engine::ports::RemovalMark>,
    /// The node it replaces (see `Cluster::claim_replacement`).
    pub replaces: Option<String>,
    /// The machine image it was launched from ([`SimGroup::image_at`]); 0 on Fargate.
    pub image: u32,
    pub fargate: bool,
    pub requested: Resources,
    pub used: Resources,
    pub pods: Vec<usize>,
    /// What the view shows of its pods, kept as they are bound and deleted.
    pub tally: Arc<NodePods>,
}

pub(super) struct SimPod {
    pub name: Arc<str>,
    pub workload: usize,
    pub node: Option<usize>,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub unschedulable: bool,
    /// Created for Fargate: waits for its own node instead of the scheduler.
    pub fargate: bool,
    pub fargate_ready_at: Option<u64>,
    /// Jobs: when the pod completes.
    pub finishes_at: Option<u64>,
    /// The shape it was counted under on its node, once bound.
    pub shape: Option<Arc<PodShape>>,
    /// The node group of its node, once bound (kept here: the node may go first).
    pub node_group: Option<usize>,
}

pub(super) struct SimWorkload {
    pub spec: WorkloadSpec,
    pub id: Arc<WorkloadRef>,
    pub namespace: Arc<str>,
    pub budget_name: Option<Arc<str>>,
    pub template: Arc<PodTemplate>,
    /// The class of its pods as created now (a placement changes the template).
    pub shape: Arc<PodShape>,
    pub requests: Resources,
    pub curve: Option<ReplicaCurve>,
    pub batch_times: Vec<u64>,
    pub fargate: bool,
    pub fargate_traits: FargateTraits,
    pub pods: Vec<usize>,
    /// Pods bound to a node (started), and how many per node group.
    pub running: u32,
    pub running_in_group: BTreeMap<usize, u32>,
    pub serial: u64,
    pub wanted: u32,
    pub dirty: bool,
    /// Each of its pods' share of the lower bound's rate.
    pub bound: super::bound::PodBound,
}

pub struct World {
    pub(super) now: u64,
    pub(super) start: u64,
    pub(super) end: u64,
    rng: StdRng,
    pub(super) groups: Vec<SimGroup>,
    pub(super) nodes: Vec<Option<SimNode>>,
    pub(super) node_index: HashMap<Arc<str>, usize>,
    pub(super) pods: Vec<Option<SimPod>>,
    pub(super) pod_index: HashMap<Arc<str>, usize>,
    free_pods: Vec<usize>,
    pub(super) workloads: Vec<SimWorkload>,
    pub(super) daemonsets: Vec<usize>,
    pub(super) fargate_delay_ms: Option<u64>,
    pub(super) pricing: FargatePricing,
    /// Pods not running, by id (creation order).
    pub(super) pending: BTreeSet<usize>,
    booting: Vec<usize>,
    pub(super) running_jobs: BTreeSet<(u64, usize)>,
    /// When each batch's share of the lower bound ends (its run time after it starts), by
    /// workload, with its pod count.
    pub(super) bound_ends: BTreeMap<(u64, usize), u32>,
    schedule_dirty: bool,
    new_pending: u32,
    pub(super) meter: Meter,
    /// Spot interruption warnings not yet read by the engine.
    pub(super) notices: Vec<crate::engine::ports::Interruption>,
    /// Interrupted nodes by when EC2 reclaims them.
    pub(super) doomed: BTreeSet<(u64, usize)>,
    /// Lost nodes whose pods the node lifecycle controller has yet to evict, by when.
    pub(super) unreachable: BTreeSet<(u64, usize)>,
}

impl SimWorkload {
    /// Workload `i` of the scenario as the world runs it: its pods' shared template and
    /// shape, its replica curve (seeded from `seed` and `i`) or batch times.
    fn from_spec(scenario: &Scenario, i: usize, spec: &WorkloadSpec, seed: u64) -> SimWorkload {
        let horizon = scenario.duration;
        let mut node_selector = spec.node_selector.clone();
        if let Some(group) = &spec.node_group {
            node_selector.insert(NODE_GROUP_LABEL.into(), group.clone());
        }
        let template = PodTemplate {
            node_selector,
            affinity_keys: Vec::new(),
            tolerations: spec.tolerations.clone(),
            local_storage: spec.local_storage,
            safe_to_evict: spec.safe_to_evict,
            do_not_disrupt: spec.do_not_disrupt,
            daemonset_eviction: None,
            custom_controller: None,
            critical: false,
        };
        let curve = spec
            .replicas
            .as_ref()
            .map(|t| ReplicaCurve::new(t, horizon, scenario.start_of_day(), seed.wrapping_add(i as u64 * 7919)));
        let batch_times = spec
            .batches
            .as_ref()
            .map(|b| {
                let every = b.every.as_millis() as u64;
                (0..)
                    .map(|k| b.start.as_millis() as u64 + k * every)
                    .take_while(|&t| t < horizon.as_millis() as u64)
                    .collect()
            })
            .unwrap_or_default();
        let id = Arc::new(WorkloadRef { kind: spec.kind, namespace: spec.namespace.clone(), name: spec.name.clone() });
        let namespace: Arc<str> = Arc::from(spec.namespace.as_str());
        let budget_name: Option<Arc<str>> = spec.disruption_budget.as_ref().map(|_| Arc::from(spec.name.as_str()));
        let template = Arc::new(template);
        let requests = Resources { pods: 1, ..spec.requests };
        let shape = Arc::new(PodShape {
            namespace: namespace.clone(),
            owner: Some(id.clone()),
            requests,
            template: template.clone(),
            disruption_budget: budget_name.clone(),
            mirror: false,
            unreadable: None,
            expendable: false,
        });
        SimWorkload {
            id,
            namespace,
            budget_name,
            template,
            shape,
            requests,
            curve,
            batch_times,
            fargate: spec.placement == Target::Fargate,
            fargate_traits: spec.fargate_traits(),
            pods: Vec::new(),
            running: 0,
            running_in_group: BTreeMap::new(),
            serial: 0,
            wanted: 0,
            dirty: true,
            bound: Default::default(),
            spec: spec.clone(),
        }
    }
}

impl World {
    pub fn new(scenario: &Scenario, seed: u64) -> World {
        let start = EPOCH_MILLIS + scenario.start_of_day();
        let horizon = scenario.duration;
        let mut world = World {
            now: start,
            start,
            end: start + horizon.as_millis() as u64,
            rng: StdRng::seed_from_u64(seed),
            groups: scenario.node_groups.iter().map(|g| SimGroup::from_spec(scenario, g)).collect(),
            nodes: Vec::new(),
            node_index: HashMap::new(),
            pods: Vec::new(),
            pod_index: HashMap::new(),
            free_pods: Vec::new(),
            workloads: (scenario.workloads.iter().enumerate())
                .map(|(i, spec)| SimWorkload::from_spec(scenario, i, spec, seed))
                .collect(),
            daemonsets: (scenario.workloads.iter().enumerate())
                .filter(|(_, spec)| spec.kind == WorkloadKind::DaemonSet)
                .map(|(i, _)| i)
                .collect(),
            fargate_delay_ms: scenario.fargate.as_ref().map(|f| f.provisioning_delay.as_millis() as u64),
            pricing: FargatePricing::default(),
            pending: BTreeSet::new(),
            booting: Vec::new(),
            running_jobs: BTreeSet::new(),
            bound_ends: BTreeMap::new(),
            schedule_dirty: false,
            new_pending: 0,
            meter: Meter::default(),
            notices: Vec::new(),
            doomed: BTreeSet::new(),
            unreachable: BTreeSet::new(),
        };
        world.price_bounds(scenario.fargate.is_some());
        // The starting nodes are up and Ready at time zero, registered their age before.
        for (g, spec) in scenario.node_groups.iter().enumerate() {
            let registered = world.now.saturating_sub(spec.initial_node_age.as_millis() as u64);
            for _ in 0..world.groups[g].desired {
                let node = world.launch(g);
                if let Some(n) = world.nodes[node].as_mut() {
                    n.ready_at = registered;
                }
            }
        }
        world.boot_nodes();
        world.reconcile_workloads();
        world.schedule();
        world
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.now - self.start
    }

    /// Pods that became pending since the last call: what opens a batch in the engine.
    pub fn take_new_pending(&mut self) -> u32 {
        std::mem::take(&mut self.new_pending)
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Advances time by `ms`.
    pub fn step(&mut self, ms: u64) {
        self.meter.accrue(ms, self.pending.len());
        self.now += ms;
        self.interrupt_spot(ms);
        self.reclaim_spot();
        self.lose_nodes();
        self.evict_from_lost_nodes();
        self.provision();
        self.boot_nodes();
        self.finish_jobs();
        self.end_batch_bounds();
        self.reconcile_workloads();
        self.start_fargate_pods();
        if self.schedule_dirty {
            self.schedule();
        }
    }

    pub(super) fn random(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// The node of `group` that runs `instance_id`.
    pub(super) fn node_of_instance(&self, group: &str, instance_id: &str) -> Option<usize> {
        let g = self.groups.iter().find(|g| g.id == group)?;
        g.instances
            .iter()
            .copied()
            .find(|&n| self.nodes[n].as_ref().and_then(|n| n.instance_id.as_deref()) == Some(instance_id))
    }

    /// Removes a node and its pods; controllers recreate what they own.
    pub(super) fn destroy_node(&mut self, id: usize) {
        let Some(node) = self.nodes[id].take() else { return };
        self.node_index.remove(&node.name);
        self.meter.add_cost_rate(-node.price_per_hour);
        if node.ready {
            self.meter.node_ready(node.allocatable, false, node.fargate);
            self.meter.remove_requested(node.requested, !node.fargate);
        }
        for pod in node.pods {
            self.delete_pod(pod);
        }
        if let Some(g) = node.group {
            self.groups[g].instances.retain(|&n| n != id);
        }
        // A node gone, empty or not, may let a pod kept spread go where the skew kept it out
        // (kube-scheduler retries such pods when a node is deleted).
        self.schedule_dirty = true;
    }

    /// True if the workload's pods may run on the node: its group admits them, but for the
    /// zone, which is the node's own (a group in several zones promises none).
    pub(super) fn node_admits(&self, node: usize, workload: usize) -> bool {
        let Some(n) = &self.nodes[node] else { return false };
        let Some(g) = n.group else { return false };
        self.admits(g, workload, Some(&n.zone))
    }

    /// True if the workload's pods, as first templated, may run on a node of group `g`.
    pub(super) fn group_admits(&self, g: usize, workload: usize) -> bool {
        self.admits(g, workload, None)
    }

    /// True if the workload's pods select a zone: whether a node admits them depends on the
    /// node, not only on its group.
    pub(super) fn selects_zone(&self, workload: usize) -> bool {
        let selector = &self.workloads[workload].template.node_selector;
        node_labels::ZONE_KEYS.iter().any(|k| selector.contains_key(*k))
    }

    fn admits(&self, g: usize, workload: usize, zone: Option<&str>) -> bool {
        let group = &self.groups[g];
        let template = &self.workloads[workload].template;
        let carries = |k: &String, v: &String| match zone {
            Some(zone) if node_labels::ZONE_KEYS.contains(&k.as_str()) => zone == v,
            _ => group.labels.get(k) == Some(v),
        };
        template.node_selector.iter().all(|(k, v)| carries(k, v))
            && group
                .taints
                .iter()
                .filter(|t| t.effect != ballast_sdk::TaintEffect::PreferNoSchedule)
                .all(|t| template.tolerations.iter().any(|tol| tol.tolerates(t)))
    }

    pub(super) fn mark_schedule_dirty(&mut self) {
        self.schedule_dirty = true;
    }

    pub(super) fn clear_schedule_dirty(&mut self) {
        self.schedule_dirty = false;
    }
}

pub(super) fn scale(r: &Resources, f: f64) -> Resources {
    Resources { cpu_millis: (r.cpu_millis as f64 * f) as u64, memory_bytes: (r.memory_bytes as f64 * f) as u64, ..*r }
}

/// How many pods of a workload a disruption budget lets go now.
pub(super) fn disruptions_allowed(budget: &Budget, wanted: u32, healthy: u32) -> u32 {
    match budget {
        Budget::MinAvailable(min) => healthy.saturating_sub(min.of(wanted)),
        Budget::MaxUnavailable(max) => max.of(wanted).saturating_sub(wanted.saturating_sub(healthy)),
    }
}

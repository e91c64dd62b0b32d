//! The wasm side of a plugin: the generated bindings, a [`Snapshot`] that fetches from the
//! host on first use, and the conversions between generated and model types. Used through
//! [`crate::export_policy!`]; nothing here is public API.

use std::cell::OnceCell;

use crate::log::Level;
use crate::model as m;
use crate::snapshot::Snapshot;
use crate::{Policy, run};

pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "ballast:policy/plugin",
        pub_export_macro: true,
        default_bindings_module: "ballast_sdk::guest::bindings",
    });
}

use bindings::ballast::policy::{host, snapshot as wit_snapshot, types as w};
pub use bindings::exports::ballast::policy::policy::Evaluation;

/// How the export receives the snapshot resource.
pub type SnapshotHandle<'a> = &'a wit_snapshot::Snapshot;

pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => host::Level::Trace,
        Level::Debug => host::Level::Debug,
        Level::Info => host::Level::Info,
        Level::Warn => host::Level::Warn,
        Level::Error => host::Level::Error,
    };
    host::log(level, message);
}

/// Runs `P` on the host's snapshot; called by the code `export_policy!` generates.
pub fn evaluate<P: Policy>(handle: SnapshotHandle<'_>) -> Result<Evaluation, String> {
    let snapshot = WasmSnapshot::new(handle);
    let settings = handle.settings();
    let previous = handle.state();
    let outcome = run::<P>(&snapshot, &settings, previous.as_deref())?;
    Ok(Evaluation {
        decisions: outcome.decisions.into_iter().map(decision_to_wit).collect(),
        state: Some(outcome.state),
    })
}

/// A snapshot whose parts are fetched from the host the first time the policy reads them.
struct WasmSnapshot<'a> {
    handle: SnapshotHandle<'a>,
    node_groups: OnceCell<Vec<m::NodeGroup>>,
    nodes: OnceCell<Vec<m::Node>>,
    pending_pods: OnceCell<Vec<m::PendingPod>>,
    pending_shapes: OnceCell<Vec<m::PendingShape>>,
    workloads: OnceCell<Vec<m::Workload>>,
    fargate: OnceCell<m::FargatePricing>,
    proposals: OnceCell<Vec<m::Proposal>>,
    metrics: OnceCell<Vec<m::MetricSeries>>,
    group_options: OnceCell<Vec<m::GroupOptions>>,
    scheduled_runs: OnceCell<Vec<m::ScheduledRun>>,
    group_cooldowns: OnceCell<Vec<m::GroupCooldown>>,
    horizontal_autoscalers: OnceCell<Vec<m::HorizontalAutoscaler>>,
    placement_cooldowns: OnceCell<Vec<m::PlacementCooldown>>,
    launch_failures: OnceCell<Vec<m::LaunchFailure>>,
    provisioning_times: OnceCell<Vec<m::ProvisioningTime>>,
    capacity_buffers: OnceCell<Vec<m::CapacityBuffer>>,
    per_node_limits: OnceCell<Vec<m::PerNodeLimit>>,
    zone_spreads: OnceCell<Vec<m::ZoneSpread>>,
    kept_away: OnceCell<Vec<m::KeptAway>>,
}

impl<'a> WasmSnapshot<'a> {
    fn new(handle: SnapshotHandle<'a>) -> Self {
        WasmSnapshot {
            handle,
            node_groups: OnceCell::new(),
            nodes: OnceCell::new(),
            pending_pods: OnceCell::new(),
            pending_shapes: OnceCell::new(),
            workloads: OnceCell::new(),
            fargate: OnceCell::new(),
            proposals: OnceCell::new(),
            metrics: OnceCell::new(),
            group_options: OnceCell::new(),
            scheduled_runs: OnceCell::new(),
            group_cooldowns: OnceCell::new(),
            horizontal_autoscalers: OnceCell::new(),
            placement_cooldowns: OnceCell::new(),
            launch_failures: OnceCell::new(),
            provisioning_times: OnceCell::new(),
            capacity_buffers: OnceCell::new(),
            per_node_limits: OnceCell::new(),
            zone_spreads: OnceCell::new(),
            kept_away: OnceCell::new(),
        }
    }
}

/// `nodes` with the ephemeral storage the interface hands beside them (0.1.14).
fn with_disks(mut nodes: Vec<m::Node>, disks: Vec<w::NodeStorage>) -> Vec<m::Node> {
    for (n, disk) in nodes.iter_mut().zip(disks) {
        n.allocatable.ephemeral_storage_bytes = disk.allocatable_bytes;
        n.requested.ephemeral_storage_bytes = disk.requested_bytes;
    }
    nodes
}

/// Sets each request's ephemeral storage from the list the interface hands beside them.
fn with_storage<T>(mut items: Vec<T>, storage: Vec<u64>, requests: impl Fn(&mut T) -> &mut m::Resources) -> Vec<T> {
    for (item, bytes) in items.iter_mut().zip(storage) {
        requests(item).ephemeral_storage_bytes = bytes;
    }
    items
}

impl Snapshot for WasmSnapshot<'_> {
    fn taken_at_millis(&self) -> u64 {
        self.handle.taken_at_millis()
    }
    fn node_groups(&self) -> &[m::NodeGroup] {
        self.node_groups.get_or_init(|| {
            let mut groups: Vec<m::NodeGroup> = self.handle.node_groups().into_iter().map(node_group).collect();
            for (group, disks) in groups.iter_mut().zip(self.handle.node_group_storage()) {
                for (t, bytes) in group.instance_types.iter_mut().zip(disks) {
                    t.allocatable.ephemeral_storage_bytes = bytes;
                }
            }
            groups
        })
    }
    fn nodes(&self) -> &[m::Node] {
        self.nodes
            .get_or_init(|| with_disks(self.handle.nodes().into_iter().map(node).collect(), self.handle.node_storage()))
    }
    fn nodes_in_group(&self, group: &str) -> Vec<m::Node> {
        match self.nodes.get() {
            Some(all) => all.iter().filter(|n| n.group.as_deref() == Some(group)).cloned().collect(),
            None => {
                let nodes = self.handle.nodes_in_group(group).into_iter().map(node).collect();
                with_disks(nodes, self.handle.nodes_in_group_storage(group))
            }
        }
    }
    fn pending_pods(&self) -> &[m::PendingPod] {
        self.pending_pods.get_or_init(|| {
            let pods = self.handle.pending_pods().into_iter().map(pending_pod).collect();
            with_storage(pods, self.handle.pending_pod_storage(), |p| &mut p.requests)
        })
    }
    fn pending_shapes(&self) -> &[m::PendingShape] {
        self.pending_shapes.get_or_init(|| {
            let shapes = self.handle.pending_shapes().into_iter().map(pending_shape).collect();
            with_storage(shapes, self.handle.pending_shape_storage(), |s| &mut s.requests)
        })
    }
    fn workloads(&self) -> &[m::Workload] {
        self.workloads.get_or_init(|| {
            let workloads = self.handle.workloads().into_iter().map(workload).collect();
            with_storage(workloads, self.handle.workload_storage(), |w| &mut w.requests_per_replica)
        })
    }
    fn fargate_pricing(&self) -> &m::FargatePricing {
        self.fargate.get_or_init(|| {
            let pricing = fargate_pricing(self.handle.fargate_pricing());
            m::FargatePricing { per_storage_gb_hour: self.handle.fargate_storage_price(), ..pricing }
        })
    }
    fn proposals(&self) -> &[m::Proposal] {
        self.proposals.get_or_init(|| {
            self.handle
                .proposals()
                .into_iter()
                .map(|p| m::Proposal { plugin: p.plugin, decision: decision_from_wit(p.decision) })
                .collect()
        })
    }
    fn metrics(&self) -> &[m::MetricSeries] {
        self.metrics.get_or_init(|| self.handle.metrics().into_iter().map(metric_series).collect())
    }
    fn group_options(&self) -> &[m::GroupOptions] {
        self.group_options.get_or_init(|| self.handle.group_options().into_iter().map(group_options).collect())
    }
    fn pods_on_node(&self, node: &str) -> Vec<m::PodShape> {
        let shapes = self.handle.pods_on_node(node).into_iter().map(pod_shape).collect();
        with_storage(shapes, self.handle.pods_on_node_storage(node), |s| &mut s.requests)
    }
    fn scheduled_runs(&self) -> &[m::ScheduledRun] {
        self.scheduled_runs.get_or_init(|| {
            let runs = self.handle.scheduled_runs().into_iter().map(scheduled_run).collect();
            with_storage(runs, self.handle.scheduled_run_storage(), |r| &mut r.requests)
        })
    }
    fn group_cooldowns(&self) -> &[m::GroupCooldown] {
        self.group_cooldowns.get_or_init(|| self.handle.group_cooldowns().into_iter().map(group_cooldown).collect())
    }
    fn horizontal_autoscalers(&self) -> &[m::HorizontalAutoscaler] {
        self.horizontal_autoscalers
            .get_or_init(|| self.handle.horizontal_autoscalers().into_iter().map(horizontal_autoscaler).collect())
    }
    fn placement_cooldowns(&self) -> &[m::PlacementCooldown] {
        self.placement_cooldowns
            .get_or_init(|| self.handle.placement_cooldowns().into_iter().map(placement_cooldown).collect())
    }
    fn launch_failures(&self) -> &[m::LaunchFailure] {
        self.launch_failures.get_or_init(|| self.handle.launch_failures().into_iter().map(launch_failure).collect())
    }
    fn provisioning_times(&self) -> &[m::ProvisioningTime] {
        self.provisioning_times.get_or_init(|| {
            (self.handle.provisioning_times().into_iter())
                .map(|t| m::ProvisioningTime { group: t.group, recent_seconds: t.recent_seconds })
                .collect()
        })
    }
    fn capacity_buffers(&self) -> &[m::CapacityBuffer] {
        self.capacity_buffers.get_or_init(|| {
            let buffers = self.handle.capacity_buffers().into_iter().map(capacity_buffer).collect();
            with_storage(buffers, self.handle.capacity_buffer_storage(), |b| &mut b.requests)
        })
    }
    fn per_node_limits(&self) -> &[m::PerNodeLimit] {
        self.per_node_limits.get_or_init(|| {
            (self.handle.per_node_limits().into_iter())
                .map(|l| m::PerNodeLimit { workload: workload_ref(l.workload), max_pods: l.max_pods })
                .collect()
        })
    }
    fn zone_spreads(&self) -> &[m::ZoneSpread] {
        self.zone_spreads.get_or_init(|| self.handle.zone_spreads().into_iter().map(zone_spread).collect())
    }
    fn kept_away(&self) -> &[m::KeptAway] {
        self.kept_away.get_or_init(|| {
            (self.handle.kept_away().into_iter())
                .map(|k| m::KeptAway {
                    workload: workload_ref(k.workload),
                    apart_from: k.apart_from.into_iter().map(workload_ref).collect(),
                })
                .collect()
        })
    }
}

fn zone_spread(s: w::ZoneSpread) -> m::ZoneSpread {
    m::ZoneSpread {
        workload: workload_ref(s.workload),
        max_skew: s.max_skew,
        pods_by_zone: s.pods_by_zone.into_iter().map(|z| m::ZonePods { zone: z.zone, pods: z.pods }).collect(),
    }
}

fn group_options(o: w::GroupOptions) -> m::GroupOptions {
    m::GroupOptions {
        group: o.group,
        scale_down_utilization_threshold: o.scale_down_utilization_threshold,
        scale_down_gpu_utilization_threshold: o.scale_down_gpu_utilization_threshold,
        scale_down_unneeded_seconds: o.scale_down_unneeded_seconds,
        scale_down_unready_seconds: o.scale_down_unready_seconds,
        ignore_daemonsets_utilization: o.ignore_daemonsets_utilization,
    }
}

fn metric_series(s: w::MetricSeries) -> m::MetricSeries {
    m::MetricSeries {
        name: s.name,
        points: s.points.into_iter().map(|p| m::MetricPoint { at_millis: p.at_millis, value: p.value }).collect(),
        read_at_millis: s.read_at_millis,
        error: s.error,
    }
}

fn resources(r: w::Resources) -> m::Resources {
    // Ephemeral storage comes in lists of its own (0.1.14, 0.1.15), set where they complete a
    // record.
    m::Resources {
        cpu_millis: r.cpu_millis,
        memory_bytes: r.memory_bytes,
        pods: r.pods,
        gpus: r.gpus,
        ephemeral_storage_bytes: 0,
    }
}

fn labels(list: Vec<w::Label>) -> std::collections::BTreeMap<String, String> {
    list.into_iter().map(|l| (l.key, l.value)).collect()
}

fn taint_effect(e: w::TaintEffect) -> m::TaintEffect {
    match e {
        w::TaintEffect::NoSchedule => m::TaintEffect::NoSchedule,
        w::TaintEffect::PreferNoSchedule => m::TaintEffect::PreferNoSchedule,
        w::TaintEffect::NoExecute => m::TaintEffect::NoExecute,
    }
}

fn node_group(g: w::NodeGroup) -> m::NodeGroup {
    m::NodeGroup {
        id: g.id,
        kind: match g.kind {
            w::NodeGroupKind::Asg => m::NodeGroupKind::Asg,
            w::NodeGroupKind::Fargate => m::NodeGroupKind::Fargate,
        },
        min_size: g.min_size,
        max_size: g.max_size,
        desired_size: g.desired_size,
        ready_nodes: g.ready_nodes,
        instance_types: g
            .instance_types
            .into_iter()
            .map(|t| m::InstanceType {
                name: t.name,
                capacity: resources(t.capacity),
                allocatable: resources(t.allocatable),
                price_per_hour: t.price_per_hour,
            })
            .collect(),
        labels: labels(g.labels),
        taints: g
            .taints
            .into_iter()
            .map(|t| m::Taint { key: t.key, value: t.value, effect: taint_effect(t.effect) })
            .collect(),
        zones: g.zones,
    }
}

fn node(n: w::Node) -> m::Node {
    m::Node {
        name: n.name,
        group: n.group,
        instance_type: n.instance_type,
        zone: n.zone,
        allocatable: resources(n.allocatable),
        requested: resources(n.requested),
        usage: n.usage.map(resources),
        ready: n.ready,
        cordoned: n.cordoned,
        age_seconds: n.age_seconds,
        pod_count: n.pod_count,
        removal_blocker: n.removal_blocker,
    }
}

fn workload_kind(k: w::WorkloadKind) -> m::WorkloadKind {
    match k {
        w::WorkloadKind::Deployment => m::WorkloadKind::Deployment,
        w::WorkloadKind::StatefulSet => m::WorkloadKind::StatefulSet,
        w::WorkloadKind::DaemonSet => m::WorkloadKind::DaemonSet,
        w::WorkloadKind::Job => m::WorkloadKind::Job,
        w::WorkloadKind::ReplicaSet => m::WorkloadKind::ReplicaSet,
        w::WorkloadKind::Other => m::WorkloadKind::Other,
    }
}

fn workload_ref(r: w::WorkloadRef) -> m::WorkloadRef {
    m::WorkloadRef { kind: workload_kind(r.kind), namespace: r.namespace, name: r.name }
}

fn workload_ref_to_wit(r: m::WorkloadRef) -> w::WorkloadRef {
    let kind = match r.kind {
        m::WorkloadKind::Deployment => w::WorkloadKind::Deployment,
        m::WorkloadKind::StatefulSet => w::WorkloadKind::StatefulSet,
        m::WorkloadKind::DaemonSet => w::WorkloadKind::DaemonSet,
        m::WorkloadKind::Job => w::WorkloadKind::Job,
        m::WorkloadKind::ReplicaSet => w::WorkloadKind::ReplicaSet,
        m::WorkloadKind::Other => w::WorkloadKind::Other,
    };
    w::WorkloadRef { kind, namespace: r.namespace, name: r.name }
}

fn pending_pod(p: w::PendingPod) -> m::PendingPod {
    m::PendingPod {
        namespace: p.namespace,
        name: p.name,
        requests: resources(p.requests),
        owner: p.owner.map(workload_ref),
        node_selector: labels(p.node_selector),
        affinity_keys: p.affinity_keys,
        tolerations: tolerations(p.tolerations),
        age_seconds: p.age_seconds,
    }
}

fn pending_shape(p: w::PendingShape) -> m::PendingShape {
    m::PendingShape {
        namespace: p.namespace,
        owner: p.owner.map(workload_ref),
        requests: resources(p.requests),
        node_selector: labels(p.node_selector),
        affinity_keys: p.affinity_keys,
        tolerations: tolerations(p.tolerations),
        count: p.count,
        oldest_age_seconds: p.oldest_age_seconds,
    }
}

fn scheduled_run(r: w::ScheduledRun) -> m::ScheduledRun {
    m::ScheduledRun {
        owner: workload_ref(r.owner),
        due_at_millis: r.due_at_millis,
        pods: r.pods,
        requests: resources(r.requests),
        node_selector: labels(r.node_selector),
        affinity_keys: r.affinity_keys,
        tolerations: tolerations(r.tolerations),
        on_fargate: r.on_fargate,
    }
}

fn capacity_buffer(b: w::CapacityBuffer) -> m::CapacityBuffer {
    m::CapacityBuffer {
        namespace: b.namespace,
        name: b.name,
        pods: b.pods,
        requests: resources(b.requests),
        node_selector: labels(b.node_selector),
        affinity_keys: b.affinity_keys,
        tolerations: tolerations(b.tolerations),
    }
}

fn group_cooldown(c: w::GroupCooldown) -> m::GroupCooldown {
    m::GroupCooldown {
        group: c.group,
        last_scale_up_millis: c.last_scale_up_millis,
        last_scale_down_millis: c.last_scale_down_millis,
        scale_up_allowed_at_millis: c.scale_up_allowed_at_millis,
        scale_down_allowed_at_millis: c.scale_down_allowed_at_millis,
    }
}

fn launch_failure(f: w::LaunchFailure) -> m::LaunchFailure {
    m::LaunchFailure {
        group: f.group,
        failed_at_millis: f.failed_at_millis,
        reason: f.reason,
        in_a_row: f.in_a_row,
        backing_off_until_millis: f.backing_off_until_millis,
    }
}

fn placement_cooldown(c: w::PlacementCooldown) -> m::PlacementCooldown {
    m::PlacementCooldown {
        workload: workload_ref(c.workload),
        placed_at_millis: c.placed_at_millis,
        allowed_at_millis: c.allowed_at_millis,
    }
}

fn horizontal_autoscaler(a: w::HorizontalAutoscaler) -> m::HorizontalAutoscaler {
    m::HorizontalAutoscaler {
        target: workload_ref(a.target),
        min_replicas: a.min_replicas,
        max_replicas: a.max_replicas,
    }
}

fn pod_shape(p: w::PodShape) -> m::PodShape {
    m::PodShape {
        namespace: p.namespace,
        owner: p.owner.map(workload_ref),
        requests: resources(p.requests),
        node_selector: labels(p.node_selector),
        affinity_keys: p.affinity_keys,
        tolerations: tolerations(p.tolerations),
        count: p.count,
        moves_on_drain: p.moves_on_drain,
    }
}

fn tolerations(list: Vec<w::Toleration>) -> Vec<m::Toleration> {
    list.into_iter()
        .map(|t| m::Toleration {
            key: t.key,
            operator_exists: t.operator_exists,
            value: t.value,
            effect: t.effect.map(taint_effect),
        })
        .collect()
}

fn workload(wl: w::Workload) -> m::Workload {
    m::Workload {
        id: workload_ref(wl.id),
        replicas: wl.replicas,
        requests_per_replica: resources(wl.requests_per_replica),
        placement: match wl.placement {
            w::Placement::Unplaced => m::Placement::Unplaced,
            w::Placement::Fargate => m::Placement::Fargate,
            w::Placement::Ec2(group) => m::Placement::Ec2(group),
        },
        fargate_blocker: wl.fargate_blocker,
        usage_per_replica: wl.usage_per_replica.map(resources),
    }
}

fn fargate_pricing(f: w::FargatePricing) -> m::FargatePricing {
    m::FargatePricing {
        per_vcpu_hour: f.per_vcpu_hour,
        per_gb_hour: f.per_gb_hour,
        // Handed beside it (0.1.15), set by the caller.
        per_storage_gb_hour: 0.0,
        overhead_mib: f.overhead_mib,
        sizes: f
            .sizes
            .into_iter()
            .map(|s| m::FargateSize {
                cpu_millis: s.cpu_millis,
                memory_mib_min: s.memory_mib_min,
                memory_mib_max: s.memory_mib_max,
                memory_mib_step: s.memory_mib_step,
            })
            .collect(),
    }
}

fn target_from_wit(t: w::PlacementTarget) -> m::PlacementTarget {
    match t {
        w::PlacementTarget::Fargate => m::PlacementTarget::Fargate,
        w::PlacementTarget::Ec2(group) => m::PlacementTarget::Ec2(group),
    }
}

fn decision_from_wit(d: w::Decision) -> m::Decision {
    let action = match d.action {
        w::Action::ScaleTo(s) => m::Action::ScaleTo { group: s.group, size: s.size },
        w::Action::ScaleBy(s) => m::Action::ScaleBy { group: s.group, delta: s.delta },
        w::Action::RemoveNodes(nodes) => m::Action::RemoveNodes { nodes },
        w::Action::Place(p) => {
            m::Action::Place { workload: workload_ref(p.workload), target: target_from_wit(p.target) }
        }
    };
    m::Decision { action, reason: d.reason }
}

fn decision_to_wit(d: m::Decision) -> w::Decision {
    let action = match d.action {
        m::Action::ScaleTo { group, size } => w::Action::ScaleTo(w::ScaleTo { group, size }),
        m::Action::ScaleBy { group, delta } => w::Action::ScaleBy(w::ScaleBy { group, delta }),
        m::Action::RemoveNodes { nodes } => w::Action::RemoveNodes(nodes),
        m::Action::Place { workload, target } => w::Action::Place(w::Place {
            workload: workload_ref_to_wit(workload),
            target: match target {
                m::PlacementTarget::Fargate => w::PlacementTarget::Fargate,
                m::PlacementTarget::Ec2(group) => w::PlacementTarget::Ec2(group),
            },
        }),
    };
    w::Decision { action, reason: d.reason }
}

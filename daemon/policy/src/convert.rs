//! Conversions between the SDK model (what the engine and snapshot files use) and the
//! generated WIT types (what crosses into a plugin).

use ballast_sdk::model as m;

use super::bindings::types as w;

fn resources(r: &m::Resources) -> w::Resources {
    w::Resources { cpu_millis: r.cpu_millis, memory_bytes: r.memory_bytes, pods: r.pods, gpus: r.gpus }
}

pub fn node_storage(n: &m::Node) -> w::NodeStorage {
    w::NodeStorage {
        allocatable_bytes: n.allocatable.ephemeral_storage_bytes,
        requested_bytes: n.requested.ephemeral_storage_bytes,
    }
}

fn labels(map: &std::collections::BTreeMap<String, String>) -> Vec<w::Label> {
    map.iter().map(|(k, v)| w::Label { key: k.clone(), value: v.clone() }).collect()
}

fn taint_effect(e: m::TaintEffect) -> w::TaintEffect {
    match e {
        m::TaintEffect::NoSchedule => w::TaintEffect::NoSchedule,
        m::TaintEffect::PreferNoSchedule => w::TaintEffect::PreferNoSchedule,
        m::TaintEffect::NoExecute => w::TaintEffect::NoExecute,
    }
}

pub fn node_group(g: &m::NodeGroup) -> w::NodeGroup {
    w::NodeGroup {
        id: g.id.clone(),
        kind: match g.kind {
            m::NodeGroupKind::Asg => w::NodeGroupKind::Asg,
            m::NodeGroupKind::Fargate => w::NodeGroupKind::Fargate,
        },
        min_size: g.min_size,
        max_size: g.max_size,
        desired_size: g.desired_size,
        ready_nodes: g.ready_nodes,
        instance_types: g
            .instance_types
            .iter()
            .map(|t| w::InstanceType {
                name: t.name.clone(),
                capacity: resources(&t.capacity),
                allocatable: resources(&t.allocatable),
                price_per_hour: t.price_per_hour,
            })
            .collect(),
        labels: labels(&g.labels),
        taints: g
            .taints
            .iter()
            .map(|t| w::Taint { key: t.key.clone(), value: t.value.clone(), effect: taint_effect(t.effect) })
            .collect(),
        zones: g.zones.clone(),
    }
}

pub fn node(n: &m::Node) -> w::Node {
    w::Node {
        name: n.name.clone(),
        group: n.group.clone(),
        instance_type: n.instance_type.clone(),
        zone: n.zone.clone(),
        allocatable: resources(&n.allocatable),
        requested: resources(&n.requested),
        usage: n.usage.as_ref().map(resources),
        ready: n.ready,
        cordoned: n.cordoned,
        age_seconds: n.age_seconds,
        pod_count: n.pod_count,
        removal_blocker: n.removal_blocker.clone(),
    }
}

fn workload_kind(k: m::WorkloadKind) -> w::WorkloadKind {
    match k {
        m::WorkloadKind::Deployment => w::WorkloadKind::Deployment,
        m::WorkloadKind::StatefulSet => w::WorkloadKind::StatefulSet,
        m::WorkloadKind::DaemonSet => w::WorkloadKind::DaemonSet,
        m::WorkloadKind::Job => w::WorkloadKind::Job,
        m::WorkloadKind::ReplicaSet => w::WorkloadKind::ReplicaSet,
        m::WorkloadKind::Other => w::WorkloadKind::Other,
    }
}

fn workload_ref(r: &m::WorkloadRef) -> w::WorkloadRef {
    w::WorkloadRef { kind: workload_kind(r.kind), namespace: r.namespace.clone(), name: r.name.clone() }
}

fn workload_ref_from_wit(r: w::WorkloadRef) -> m::WorkloadRef {
    let kind = match r.kind {
        w::WorkloadKind::Deployment => m::WorkloadKind::Deployment,
        w::WorkloadKind::StatefulSet => m::WorkloadKind::StatefulSet,
        w::WorkloadKind::DaemonSet => m::WorkloadKind::DaemonSet,
        w::WorkloadKind::Job => m::WorkloadKind::Job,
        w::WorkloadKind::ReplicaSet => m::WorkloadKind::ReplicaSet,
        w::WorkloadKind::Other => m::WorkloadKind::Other,
    };
    m::WorkloadRef { kind, namespace: r.namespace, name: r.name }
}

pub fn pending_pod(p: &m::PendingPod) -> w::PendingPod {
    w::PendingPod {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        requests: resources(&p.requests),
        owner: p.owner.as_ref().map(workload_ref),
        node_selector: labels(&p.node_selector),
        affinity_keys: p.affinity_keys.clone(),
        tolerations: tolerations(&p.tolerations),
        age_seconds: p.age_seconds,
    }
}

pub fn pending_shape(p: &m::PendingShape) -> w::PendingShape {
    w::PendingShape {
        namespace: p.namespace.clone(),
        owner: p.owner.as_ref().map(workload_ref),
        requests: resources(&p.requests),
        node_selector: labels(&p.node_selector),
        affinity_keys: p.affinity_keys.clone(),
        tolerations: tolerations(&p.tolerations),
        count: p.count,
        oldest_age_seconds: p.oldest_age_seconds,
    }
}

pub fn scheduled_run(r: &m::ScheduledRun) -> w::ScheduledRun {
    w::ScheduledRun {
        owner: workload_ref(&r.owner),
        due_at_millis: r.due_at_millis,
        pods: r.pods,
        requests: resources(&r.requests),
        node_selector: labels(&r.node_selector),
        affinity_keys: r.affinity_keys.clone(),
        tolerations: tolerations(&r.tolerations),
        on_fargate: r.on_fargate,
    }
}

pub fn horizontal_autoscaler(a: &m::HorizontalAutoscaler) -> w::HorizontalAutoscaler {
    w::HorizontalAutoscaler {
        target: workload_ref(&a.target),
        min_replicas: a.min_replicas,
        max_replicas: a.max_replicas,
    }
}

pub fn per_node_limit(l: &m::PerNodeLimit) -> w::PerNodeLimit {
    w::PerNodeLimit { workload: workload_ref(&l.workload), max_pods: l.max_pods }
}

pub fn zone_spread(s: &m::ZoneSpread) -> w::ZoneSpread {
    w::ZoneSpread {
        workload: workload_ref(&s.workload),
        max_skew: s.max_skew,
        pods_by_zone: s.pods_by_zone.iter().map(|z| w::ZonePods { zone: z.zone.clone(), pods: z.pods }).collect(),
    }
}

pub fn kept_away(k: &m::KeptAway) -> w::KeptAway {
    w::KeptAway { workload: workload_ref(&k.workload), apart_from: k.apart_from.iter().map(workload_ref).collect() }
}

pub fn group_cooldown(c: &m::GroupCooldown) -> w::GroupCooldown {
    w::GroupCooldown {
        group: c.group.clone(),
        last_scale_up_millis: c.last_scale_up_millis,
        last_scale_down_millis: c.last_scale_down_millis,
        scale_up_allowed_at_millis: c.scale_up_allowed_at_millis,
        scale_down_allowed_at_millis: c.scale_down_allowed_at_millis,
    }
}

pub fn placement_cooldown(c: &m::PlacementCooldown) -> w::PlacementCooldown {
    w::PlacementCooldown {
        workload: workload_ref(&c.workload),
        placed_at_millis: c.placed_at_millis,
        allowed_at_millis: c.allowed_at_millis,
    }
}

pub fn launch_failure(f: &m::LaunchFailure) -> w::LaunchFailure {
    w::LaunchFailure {
        group: f.group.clone(),
        failed_at_millis: f.failed_at_millis,
        reason: f.reason.clone(),
        in_a_row: f.in_a_row,
        backing_off_until_millis: f.backing_off_until_millis,
    }
}

pub fn provisioning_time(t: &m::ProvisioningTime) -> w::ProvisioningTime {
    w::ProvisioningTime { group: t.group.clone(), recent_seconds: t.recent_seconds.clone() }
}

pub fn capacity_buffer(b: &m::CapacityBuffer) -> w::CapacityBuffer {
    w::CapacityBuffer {
        namespace: b.namespace.clone(),
        name: b.name.clone(),
        pods: b.pods,
        requests: resources(&b.requests),
        node_selector: labels(&b.node_selector),
        affinity_keys: b.affinity_keys.clone(),
        tolerations: tolerations(&b.tolerations),
    }
}

pub fn pod_shape(p: &m::PodShape) -> w::PodShape {
    w::PodShape {
        namespace: p.namespace.clone(),
        owner: p.owner.as_ref().map(workload_ref),
        requests: resources(&p.requests),
        node_selector: labels(&p.node_selector),
        affinity_keys: p.affinity_keys.clone(),
        tolerations: tolerations(&p.tolerations),
        count: p.count,
        moves_on_drain: p.moves_on_drain,
    }
}

fn tolerations(list: &[m::Toleration]) -> Vec<w::Toleration> {
    list.iter()
        .map(|t| w::Toleration {
            key: t.key.clone(),
            operator_exists: t.operator_exists,
            value: t.value.clone(),
            effect: t.effect.map(taint_effect),
        })
        .collect()
}

pub fn workload(wl: &m::Workload) -> w::Workload {
    w::Workload {
        id: workload_ref(&wl.id),
        replicas: wl.replicas,
        requests_per_replica: resources(&wl.requests_per_replica),
        placement: match &wl.placement {
            m::Placement::Unplaced => w::Placement::Unplaced,
            m::Placement::Fargate => w::Placement::Fargate,
            m::Placement::Ec2(group) => w::Placement::Ec2(group.clone()),
        },
        fargate_blocker: wl.fargate_blocker.clone(),
        usage_per_replica: wl.usage_per_replica.as_ref().map(resources),
    }
}

pub fn metric_series(s: &m::MetricSeries) -> w::MetricSeries {
    w::MetricSeries {
        name: s.name.clone(),
        points: s.points.iter().map(|p| w::MetricPoint { at_millis: p.at_millis, value: p.value }).collect(),
        read_at_millis: s.read_at_millis,
        error: s.error.clone(),
    }
}

pub fn group_options(o: &m::GroupOptions) -> w::GroupOptions {
    w::GroupOptions {
        group: o.group.clone(),
        scale_down_utilization_threshold: o.scale_down_utilization_threshold,
        scale_down_gpu_utilization_threshold: o.scale_down_gpu_utilization_threshold,
        scale_down_unneeded_seconds: o.scale_down_unneeded_seconds,
        scale_down_unready_seconds: o.scale_down_unready_seconds,
        ignore_daemonsets_utilization: o.ignore_daemonsets_utilization,
    }
}

pub fn fargate_pricing(f: &m::FargatePricing) -> w::FargatePricing {
    w::FargatePricing {
        per_vcpu_hour: f.per_vcpu_hour,
        per_gb_hour: f.per_gb_hour,
        overhead_mib: f.overhead_mib,
        sizes: f
            .sizes
            .iter()
            .map(|s| w::FargateSize {
                cpu_millis: s.cpu_millis,
                memory_mib_min: s.memory_mib_min,
                memory_mib_max: s.memory_mib_max,
                memory_mib_step: s.memory_mib_step,
            })
            .collect(),
    }
}

pub fn decision(d: &m::Decision) -> w::Decision {
    let action = match &d.action {
        m::Action::ScaleTo { group, size } => w::Action::ScaleTo(w::ScaleTo { group: group.clone(), size: *size }),
        m::Action::ScaleBy { group, delta } => w::Action::ScaleBy(w::ScaleBy { group: group.clone(), delta: *delta }),
        m::Action::RemoveNodes { nodes } => w::Action::RemoveNodes(nodes.clone()),
        m::Action::Place { workload, target } => w::Action::Place(w::Place {
            workload: workload_ref(workload),
            target: match target {
                m::PlacementTarget::Fargate => w::PlacementTarget::Fargate,
                m::PlacementTarget::Ec2(group) => w::PlacementTarget::Ec2(group.clone()),
            },
        }),
    };
    w::Decision { action, reason: d.reason.clone() }
}

pub fn decision_from_wit(d: w::Decision) -> m::Decision {
    let action = match d.action {
        w::Action::ScaleTo(s) => m::Action::ScaleTo { group: s.group, size: s.size },
        w::Action::ScaleBy(s) => m::Action::ScaleBy { group: s.group, delta: s.delta },
        w::Action::RemoveNodes(nodes) => m::Action::RemoveNodes { nodes },
        w::Action::Place(p) => m::Action::Place {
            workload: workload_ref_from_wit(p.workload),
            target: match p.target {
                w::PlacementTarget::Fargate => m::PlacementTarget::Fargate,
                w::PlacementTarget::Ec2(group) => m::PlacementTarget::Ec2(group),
            },
        },
    };
    m::Decision { action, reason: d.reason }
}

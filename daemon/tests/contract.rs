//! One contract, checked: a snapshot in which every field has a distinct value goes through
//! the host's conversion to WIT, the guest SDK's conversion back, and returns as the echo
//! plugin's state. Two fields of the same type swapped anywhere along the way fail here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ballast::policy::{HostConfig, PluginLimits, PluginSpec, PolicyChain, PolicyHost};
use ballast_sdk::*;
use serde_json::json;

fn component(file: &str, name: &str, settings: serde_json::Value) -> PluginSpec {
    let path = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join(format!("{file}.wasm"));
    let bytes: Arc<[u8]> = std::fs::read(&path).expect("built by build.rs").into();
    PluginSpec { name: name.into(), bytes, settings, limits: PluginLimits::default() }
}

/// Hands out 1, 2, 3, ... so that no two numeric fields agree.
struct Distinct(u64);

impl Distinct {
    fn n(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
    fn u(&mut self) -> u32 {
        self.n() as u32
    }
    fn f(&mut self) -> f64 {
        self.n() as f64 + 0.25
    }
    fn s(&mut self, what: &str) -> String {
        format!("{what}-{}", self.n())
    }
    /// Resources with ephemeral storage, for the records whose storage crosses the interface
    /// (0.1.14: node groups' allocatable, nodes, pending pods and shapes, pods on nodes;
    /// 0.1.15: workloads' requests, scheduled runs, capacity buffers).
    fn disk(&mut self) -> Resources {
        Resources { ephemeral_storage_bytes: self.n() << 20, ..self.resources() }
    }
    fn resources(&mut self) -> Resources {
        // Where ephemeral storage does not cross the interface (0 on both sides).
        Resources {
            cpu_millis: self.n(),
            memory_bytes: self.n() << 10,
            pods: self.u(),
            gpus: self.u(),
            ..Resources::ZERO
        }
    }
    fn taint(&mut self, effect: TaintEffect) -> Taint {
        Taint { key: self.s("taint-key"), value: self.s("taint-value"), effect }
    }
    fn workload(&mut self, kind: WorkloadKind) -> WorkloadRef {
        WorkloadRef { kind, namespace: self.s("ns"), name: self.s("workload") }
    }
}

fn full_snapshot() -> SnapshotData {
    let mut d = Distinct(1000);
    let mut groups = Vec::new();
    for (kind, effect) in
        [(NodeGroupKind::Asg, TaintEffect::NoSchedule), (NodeGroupKind::Fargate, TaintEffect::NoExecute)]
    {
        groups.push(NodeGroup {
            id: d.s("group"),
            kind,
            min_size: d.u(),
            max_size: d.u(),
            desired_size: d.u(),
            ready_nodes: d.u(),
            instance_types: vec![InstanceType {
                name: d.s("type"),
                capacity: d.resources(),
                allocatable: d.disk(),
                price_per_hour: d.f(),
            }],
            labels: BTreeMap::from([(d.s("label-key"), d.s("label-value"))]),
            taints: vec![d.taint(effect), d.taint(TaintEffect::PreferNoSchedule)],
            zones: vec![d.s("zone"), d.s("zone")],
        });
    }
    let nodes = (0..3)
        .map(|i| Node {
            name: d.s("node"),
            group: (i < 2).then(|| groups[i].id.clone()),
            instance_type: d.s("type"),
            zone: d.s("zone"),
            allocatable: d.disk(),
            requested: d.disk(),
            usage: (i != 1).then(|| d.resources()),
            ready: i != 0,
            cordoned: i == 0,
            age_seconds: d.n(),
            pod_count: d.u(),
            removal_blocker: (i == 2).then(|| d.s("blocker")),
        })
        .collect::<Vec<_>>();
    let pending_pods = vec![PendingPod {
        namespace: d.s("ns"),
        name: d.s("pod"),
        requests: d.disk(),
        owner: Some(d.workload(WorkloadKind::Job)),
        node_selector: BTreeMap::from([(d.s("selector-key"), d.s("selector-value"))]),
        affinity_keys: vec![d.s("affinity"), d.s("affinity")],
        tolerations: vec![
            Toleration {
                key: d.s("tol-key"),
                operator_exists: false,
                value: d.s("tol-value"),
                effect: Some(TaintEffect::NoSchedule),
            },
            Toleration { key: d.s("tol-key"), operator_exists: true, value: String::new(), effect: None },
        ],
        age_seconds: d.n(),
    }];
    // A second pod of the first one's shape, waiting longer, and a pod of a shape of its own.
    let twin =
        PendingPod { name: d.s("twin"), age_seconds: pending_pods[0].age_seconds + 1000, ..pending_pods[0].clone() };
    let other = PendingPod { name: d.s("other"), requests: d.disk(), age_seconds: d.n(), ..pending_pods[0].clone() };
    let pending_pods = [pending_pods, vec![twin, other]].concat();
    let workloads = vec![
        Workload {
            id: d.workload(WorkloadKind::Deployment),
            replicas: d.u(),
            requests_per_replica: d.disk(),
            placement: Placement::Ec2(Some(groups[0].id.clone())),
            fargate_blocker: None,
            usage_per_replica: Some(d.resources()),
        },
        Workload {
            id: d.workload(WorkloadKind::StatefulSet),
            replicas: d.u(),
            requests_per_replica: d.disk(),
            placement: Placement::Fargate,
            fargate_blocker: Some(d.s("fargate-blocker")),
            usage_per_replica: None,
        },
        Workload {
            id: d.workload(WorkloadKind::DaemonSet),
            replicas: d.u(),
            requests_per_replica: d.disk(),
            placement: Placement::Unplaced,
            fargate_blocker: None,
            usage_per_replica: None,
        },
        Workload {
            id: d.workload(WorkloadKind::ReplicaSet),
            replicas: d.u(),
            requests_per_replica: d.disk(),
            placement: Placement::Ec2(None),
            fargate_blocker: None,
            usage_per_replica: None,
        },
    ];
    // Two shapes on the first node (one a DaemonSet's, which a drain leaves), one on the second.
    let mut running = |kind, moves_on_drain| PodShape {
        namespace: d.s("ns"),
        owner: Some(d.workload(kind)),
        requests: d.disk(),
        node_selector: BTreeMap::from([(d.s("selector-key"), d.s("selector-value"))]),
        affinity_keys: vec![d.s("affinity")],
        tolerations: vec![Toleration {
            key: d.s("tol-key"),
            operator_exists: true,
            value: String::new(),
            effect: None,
        }],
        count: d.u(),
        moves_on_drain,
    };
    let pods_on_nodes = BTreeMap::from([
        (nodes[0].name.clone(), vec![running(WorkloadKind::Deployment, true), running(WorkloadKind::DaemonSet, false)]),
        (nodes[1].name.clone(), vec![PodShape { owner: None, ..running(WorkloadKind::Other, true) }]),
    ]);
    let scheduled_runs = vec![
        ScheduledRun {
            owner: d.workload(WorkloadKind::Job),
            due_at_millis: d.n(),
            pods: d.u(),
            requests: d.disk(),
            node_selector: BTreeMap::from([(d.s("run-key"), d.s("run-value"))]),
            affinity_keys: vec![d.s("run-affinity")],
            tolerations: vec![Toleration {
                key: d.s("run-tol"),
                operator_exists: false,
                value: d.s("run-tol-value"),
                effect: Some(TaintEffect::NoSchedule),
            }],
            on_fargate: false,
        },
        ScheduledRun { owner: d.workload(WorkloadKind::Job), on_fargate: true, ..ScheduledRun::default() },
    ];
    let group_cooldowns = vec![
        GroupCooldown {
            group: d.s("cooling"),
            last_scale_up_millis: Some(d.n()),
            last_scale_down_millis: Some(d.n()),
            scale_up_allowed_at_millis: d.n(),
            scale_down_allowed_at_millis: d.n(),
        },
        GroupCooldown { group: d.s("never-scaled"), ..GroupCooldown::default() },
    ];
    let horizontal_autoscalers = vec![
        HorizontalAutoscaler { target: d.workload(WorkloadKind::Deployment), min_replicas: d.u(), max_replicas: d.u() },
        HorizontalAutoscaler { target: d.workload(WorkloadKind::StatefulSet), min_replicas: 0, max_replicas: d.u() },
    ];
    let placement_cooldowns = vec![
        PlacementCooldown {
            workload: d.workload(WorkloadKind::Deployment),
            placed_at_millis: d.n(),
            allowed_at_millis: d.n(),
        },
        PlacementCooldown { workload: d.workload(WorkloadKind::StatefulSet), ..PlacementCooldown::default() },
    ];
    let launch_failures = vec![
        LaunchFailure {
            group: d.s("group"),
            failed_at_millis: d.n(),
            reason: d.s("reason"),
            in_a_row: d.u(),
            backing_off_until_millis: d.n(),
        },
        LaunchFailure { group: d.s("group"), ..LaunchFailure::default() },
    ];
    let provisioning_times = vec![
        ProvisioningTime { group: d.s("group"), recent_seconds: vec![d.u(), d.u(), d.u()] },
        ProvisioningTime { group: d.s("group"), recent_seconds: Vec::new() },
    ];
    let capacity_buffers = vec![
        CapacityBuffer {
            namespace: d.s("ns"),
            name: d.s("buffer"),
            pods: d.u(),
            requests: d.disk(),
            node_selector: BTreeMap::from([(d.s("buffer-key"), d.s("buffer-value"))]),
            affinity_keys: vec![d.s("buffer-affinity")],
            tolerations: vec![Toleration {
                key: d.s("buffer-tol"),
                operator_exists: true,
                value: String::new(),
                effect: None,
            }],
        },
        CapacityBuffer { namespace: d.s("ns"), name: d.s("empty"), ..CapacityBuffer::default() },
    ];
    let per_node_limits = vec![
        PerNodeLimit { workload: d.workload(WorkloadKind::Deployment), max_pods: d.u() },
        PerNodeLimit { workload: d.workload(WorkloadKind::StatefulSet), max_pods: d.u() },
    ];
    let zone_spreads = vec![
        ZoneSpread {
            workload: d.workload(WorkloadKind::Deployment),
            max_skew: d.u(),
            pods_by_zone: vec![
                ZonePods { zone: d.s("zone"), pods: d.u() },
                ZonePods { zone: d.s("zone"), pods: d.u() },
            ],
        },
        ZoneSpread { workload: d.workload(WorkloadKind::StatefulSet), max_skew: d.u(), pods_by_zone: Vec::new() },
    ];
    let kept_away = vec![
        KeptAway {
            workload: d.workload(WorkloadKind::Deployment),
            apart_from: vec![d.workload(WorkloadKind::StatefulSet), d.workload(WorkloadKind::Job)],
        },
        KeptAway { workload: d.workload(WorkloadKind::StatefulSet), apart_from: Vec::new() },
    ];
    let fargate_pricing = FargatePricing {
        per_vcpu_hour: d.f(),
        per_gb_hour: d.f(),
        per_storage_gb_hour: d.f(),
        overhead_mib: d.n(),
        sizes: vec![FargateSize {
            cpu_millis: d.n(),
            memory_mib_min: d.n(),
            memory_mib_max: d.n(),
            memory_mib_step: d.n(),
        }],
    };
    SnapshotData {
        taken_at_millis: d.n(),
        node_groups: groups,
        nodes,
        pending_pods,
        workloads,
        fargate_pricing,
        proposals: Vec::new(),
        pods_on_nodes,
        scheduled_runs,
        group_cooldowns,
        horizontal_autoscalers,
        placement_cooldowns,
        launch_failures,
        provisioning_times,
        capacity_buffers,
        per_node_limits,
        zone_spreads,
        kept_away,
        pods_source: Default::default(),
        shapes: Default::default(),
        group_options: vec![
            GroupOptions {
                group: d.s("group"),
                scale_down_utilization_threshold: Some(d.f()),
                scale_down_gpu_utilization_threshold: Some(d.f()),
                scale_down_unneeded_seconds: Some(d.n()),
                scale_down_unready_seconds: Some(d.n()),
                ignore_daemonsets_utilization: Some(true),
            },
            GroupOptions { group: d.s("other"), ignore_daemonsets_utilization: Some(false), ..GroupOptions::default() },
        ],
        metrics: vec![
            MetricSeries {
                name: d.s("series"),
                points: vec![
                    MetricPoint { at_millis: d.n(), value: d.f() },
                    MetricPoint { at_millis: d.n(), value: d.f() },
                ],
                read_at_millis: d.n(),
                error: None,
            },
            MetricSeries {
                name: d.s("failed-series"),
                points: Vec::new(),
                read_at_millis: d.n(),
                error: Some(d.s("error")),
            },
        ],
    }
}

#[test]
fn every_field_of_a_snapshot_reaches_a_plugin_as_sent() {
    let snapshot = full_snapshot();
    let (asg, replica_set) = (snapshot.node_groups[0].id.clone(), snapshot.workloads[3].id.clone());
    let (deployment, node) = (snapshot.workloads[0].id.clone(), snapshot.nodes[1].name.clone());
    // Earlier plugins' proposals, one of every action and target.
    let proposed = vec![
        Decision::new(Action::ScaleTo { group: asg.clone(), size: 7 }, "to seven"),
        Decision::new(Action::ScaleBy { group: asg.clone(), delta: -3 }, "down three"),
        Decision::new(Action::RemoveNodes { nodes: vec![node] }, "remove one"),
        Decision::new(Action::Place { workload: deployment.clone(), target: PlacementTarget::Fargate }, "fargate"),
        Decision::new(Action::Place { workload: deployment.clone(), target: PlacementTarget::Ec2(None) }, "ec2"),
        Decision::new(Action::Place { workload: replica_set, target: PlacementTarget::Ec2(Some(asg)) }, "ec2 group"),
    ];
    let host = PolicyHost::new(HostConfig { deterministic: true, cache_dir: None, ..HostConfig::default() }).unwrap();
    let scripted = component("scripted_policy", "scripted", json!({ "decisions": proposed }));
    let echo = component("echo_policy", "echo", serde_json::Value::Null);
    let mut chain = PolicyChain::new(vec![host.load(scripted).unwrap(), host.load(echo).unwrap()]);
    let outcome = chain.evaluate_blocking(Arc::new(snapshot.clone()));
    let report = &outcome.reports[1];
    let state = report.result.as_ref().expect("echo ran").state.clone().expect("echo returns what it read");

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct Read {
        snapshot: SnapshotData,
        by_group: BTreeMap<String, Vec<Node>>,
        pending_shapes: Vec<PendingShape>,
        pods_on_unknown_node: Vec<PodShape>,
    }
    let read: Read = serde_json::from_slice(&state).expect("the echo's state is JSON");
    let got = read.snapshot;
    assert_eq!(got.taken_at_millis, snapshot.taken_at_millis);
    assert_eq!(got.node_groups, snapshot.node_groups);
    assert_eq!(got.nodes, snapshot.nodes);
    assert_eq!(got.pending_pods, snapshot.pending_pods);
    // Two pods of one shape and one of another: counts, the oldest age and every field.
    let shapes = ballast_sdk::Snapshot::pending_shapes(&snapshot);
    assert_eq!(shapes.iter().map(|s| s.count).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(shapes[0].oldest_age_seconds, snapshot.pending_pods[1].age_seconds);
    assert_eq!(read.pending_shapes, shapes);
    assert_eq!(got.workloads, snapshot.workloads);
    assert_eq!(got.pods_on_nodes, snapshot.pods_on_nodes, "pods-on-node, node by node");
    assert!(read.pods_on_unknown_node.is_empty());
    assert_eq!(got.scheduled_runs, snapshot.scheduled_runs, "scheduled-runs, field by field");
    assert_eq!(got.group_cooldowns, snapshot.group_cooldowns, "group-cooldowns, field by field");
    assert_eq!(got.horizontal_autoscalers, snapshot.horizontal_autoscalers, "horizontal-autoscalers, field by field");
    assert_eq!(got.placement_cooldowns, snapshot.placement_cooldowns, "placement-cooldowns, field by field");
    assert_eq!(got.launch_failures, snapshot.launch_failures, "launch-failures, field by field");
    assert_eq!(got.provisioning_times, snapshot.provisioning_times, "provisioning-times, field by field");
    assert_eq!(got.capacity_buffers, snapshot.capacity_buffers, "capacity-buffers, field by field");
    assert_eq!(got.per_node_limits, snapshot.per_node_limits, "per-node-limits, field by field");
    assert_eq!(got.zone_spreads, snapshot.zone_spreads, "zone-spreads, field by field");
    assert_eq!(got.kept_away, snapshot.kept_away, "kept-away, field by field");
    assert_eq!(got.fargate_pricing, snapshot.fargate_pricing);
    let expected: Vec<Proposal> =
        proposed.into_iter().map(|decision| Proposal { plugin: "scripted".into(), decision }).collect();
    assert_eq!(got.proposals, expected);
    for group in &snapshot.node_groups {
        let nodes: Vec<Node> = snapshot.nodes.iter().filter(|n| n.group.as_ref() == Some(&group.id)).cloned().collect();
        assert_eq!(read.by_group[&group.id], nodes, "nodes-in-group {}", group.id);
    }
}

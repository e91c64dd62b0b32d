//! The API access the adapter needs, and nothing more: what the chart's ClusterRole and
//! Role grant. `daemon/tests/chart.rs` checks the rendered chart grants exactly these.

/// One RBAC rule and the part of the adapter that needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub api_groups: &'static [&'static str],
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub used_by: &'static str,
}

const READ: &[&str] = &["get", "list", "watch"];

/// Cluster-wide: the watches, usage, node and pod actions, placement and Events.
pub const CLUSTER_RULES: &[Rule] = &[
    Rule {
        api_groups: &[""],
        resources: &["pods", "nodes", "persistentvolumeclaims"],
        verbs: READ,
        used_by: "watch.rs: the cache the snapshot is built from",
    },
    Rule {
        api_groups: &[""],
        resources: &["persistentvolumes"],
        verbs: READ,
        used_by: "watch.rs: the zone a pending pod's bound volume pins it to",
    },
    Rule {
        api_groups: &["apps"],
        resources: &["replicasets", "deployments", "statefulsets", "daemonsets"],
        verbs: READ,
        used_by: "watch.rs: workload owners",
    },
    Rule { api_groups: &["batch"], resources: &["jobs"], verbs: READ, used_by: "watch.rs: workload owners" },
    Rule { api_groups: &["batch"], resources: &["cronjobs"], verbs: READ, used_by: "watch.rs: scheduled runs" },
    Rule {
        api_groups: &["autoscaling"],
        resources: &["horizontalpodautoscalers"],
        verbs: READ,
        used_by: "watch.rs: workloads' replica bounds",
    },
    Rule {
        api_groups: &["autoscaling.x-k8s.io"],
        resources: &["capacitybuffers"],
        verbs: READ,
        used_by: "watch.rs: spare room CapacityBuffers ask for",
    },
    Rule { api_groups: &[""], resources: &["podtemplates"], verbs: READ, used_by: "watch.rs: CapacityBuffers' pods" },
    Rule {
        api_groups: &["policy"],
        resources: &["poddisruptionbudgets"],
        verbs: READ,
        used_by: "watch.rs: disruption budgets",
    },
    Rule {
        api_groups: &["metrics.k8s.io"],
        resources: &["nodes", "pods"],
        verbs: &["get", "list"],
        used_by: "metrics.rs: usage, when metrics-server serves it",
    },
    Rule {
        api_groups: &[""],
        resources: &["nodes"],
        verbs: &["patch"],
        used_by: "actions.rs: cordon, mark for removal, unmark, uncordon",
    },
    Rule {
        api_groups: &[""],
        resources: &["pods/eviction"],
        verbs: &["create"],
        used_by: "actions.rs: drain through the Eviction API",
    },
    Rule {
        api_groups: &["apps"],
        resources: &["deployments", "statefulsets", "daemonsets", "replicasets"],
        verbs: &["patch"],
        used_by: "actions.rs: placement patches a pod template",
    },
    Rule {
        api_groups: &["autoscaling.x-k8s.io"],
        resources: &["capacitybuffers/status"],
        verbs: &["patch"],
        used_by: "capacity_buffer/status.rs: a buffer's replicas and conditions",
    },
    Rule {
        api_groups: &["events.k8s.io"],
        resources: &["events"],
        verbs: &["create", "patch"],
        used_by: "actions.rs: an Event per applied decision",
    },
];

/// In Ballast's own namespace: its Lease and its handover.
pub const LEASE_RULES: &[Rule] = &[
    Rule {
        api_groups: &["coordination.k8s.io"],
        resources: &["leases"],
        verbs: &["get", "create", "update"],
        used_by: "leader.rs: one Lease",
    },
    Rule {
        api_groups: &[""],
        resources: &["configmaps"],
        verbs: &["get", "create", "patch"],
        used_by: "handover.rs: what the leader leaves for the next one",
    },
];

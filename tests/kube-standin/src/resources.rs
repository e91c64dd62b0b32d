//! The resource types the stand-in serves: what discovery lists and what paths resolve to.
//!
//! It is the set Ballast and the kubectl tests touch, not the whole API. An unknown resource
//! answers 404, as a real server does for a type it does not serve.

/// One served resource type.
#[derive(Debug)]
pub struct Resource {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served (`status`, `eviction`).
    pub subresources: &'static [&'static str],
    /// Only list and get (metrics.k8s.io).
    pub read_only: bool,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn is_metrics(&self) -> bool {
        self.group == METRICS_GROUP
    }
}

pub const METRICS_GROUP: &str = "metrics.k8s.io";

#[allow(clippy::too_many_arguments)] // a table row: every field named in the table's order
const fn r(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    subresources: &'static [&'static str],
) -> Resource {
    Resource { group, version, plural, singular, kind, namespaced, short_names, subresources, read_only: false }
}

pub static RESOURCES: &[Resource] = &[
    r("", "v1", "pods", "pod", "Pod", true, &["po"], &["status", "eviction"]),
    r("", "v1", "nodes", "node", "Node", false, &["no"], &["status"]),
    r("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], &["status"]),
    r("", "v1", "events", "event", "Event", true, &["ev"], &[]),
    r(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        &["status"],
    ),
    r("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, &["pv"], &["status"]),
    r("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"], &["status"]),
    r("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], &["status"]),
    r("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], &["status"]),
    r("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, &["ds"], &["status"]),
    r("batch", "v1", "jobs", "job", "Job", true, &[], &["status"]),
    r("batch", "v1", "cronjobs", "cronjob", "CronJob", true, &["cj"], &["status"]),
    r(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        &["status"],
    ),
    r(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        &["status"],
    ),
    r("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], &[]),
    r("", "v1", "podtemplates", "podtemplate", "PodTemplate", true, &[], &[]),
    r(
        "autoscaling.x-k8s.io",
        "v1beta1",
        "capacitybuffers",
        "capacitybuffer",
        "CapacityBuffer",
        true,
        &["cb"],
        &["status"],
    ),
    r("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[], &[]),
    r("events.k8s.io", "v1", "events", "event", "Event", true, &["ev"], &[]),
    Resource { read_only: true, ..r(METRICS_GROUP, "v1beta1", "nodes", "", "NodeMetrics", false, &[], &[]) },
    Resource { read_only: true, ..r(METRICS_GROUP, "v1beta1", "pods", "", "PodMetrics", true, &[], &[]) },
];

/// The resource a path names, by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES.iter().position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource an object is, by its `apiVersion` and `kind`.
pub fn for_object(api_version: &str, kind: &str) -> Option<usize> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    RESOURCES.iter().position(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The groups in discovery order, with their one version each.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

//! The adapter's cache: compact views of what the watches have seen, updated one event at a
//! time, from which a [`ClusterView`] is assembled on demand without touching the API.
//!
//! Why not kube-runtime's reflector `Store` of whole objects: at 150,000 pods the full
//! objects (managed fields, status, every container) cost around a gigabyte and would be
//! converted again on every tick. Each event is converted once here instead, and what a
//! tick needs (owners resolved through ReplicaSets, the PodDisruptionBudget of each pod, a
//! template shared by the pods of a workload) is kept resolved as events arrive.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ballast_sdk::{HorizontalAutoscaler, Resources, WorkloadKind, WorkloadRef};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

mod buffers;
mod cron_jobs;
mod related;
mod view;
mod workloads;

pub use buffers::StatusPatch;
use buffers::{BufferEntry, TemplateEntry};
use cron_jobs::CronEntry;
use related::Related;

use super::convert;
use super::pod_index::{PodEntry, PodIndex};
use super::settings::KubeSettings;
use super::volumes::{self, Volumes};
use ballast_engine::ports::{FargateTraits, NodeInclusion, NodeView, PodTemplate, PodView};
use ballast_engine::unreadable::Unreadable;

pub(super) type Key = (String, String);

/// An object's namespace and name, the store's key.
pub(super) fn key(meta: &ObjectMeta) -> Key {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// The kinds the adapter watches, as the store names them.
pub mod kinds {
    pub const PODS: &str = "pods";
    pub const NODES: &str = "nodes";
    pub const REPLICA_SETS: &str = "replicasets";
    pub const DEPLOYMENTS: &str = "deployments";
    pub const STATEFUL_SETS: &str = "statefulsets";
    pub const DAEMON_SETS: &str = "daemonsets";
    pub const JOBS: &str = "jobs";
    pub const BUDGETS: &str = "poddisruptionbudgets";
    pub const CLAIMS: &str = "persistentvolumeclaims";
    pub const VOLUMES: &str = "persistentvolumes";
    pub const CRON_JOBS: &str = "cronjobs";
    pub const AUTOSCALERS: &str = "horizontalpodautoscalers";
    pub const CAPACITY_BUFFERS: &str = "capacitybuffers";
    pub const POD_TEMPLATES: &str = "podtemplates";
    pub const ALL: &[&str] = &[
        PODS,
        NODES,
        REPLICA_SETS,
        DEPLOYMENTS,
        STATEFUL_SETS,
        DAEMON_SETS,
        JOBS,
        BUDGETS,
        CLAIMS,
        VOLUMES,
        CRON_JOBS,
        AUTOSCALERS,
        CAPACITY_BUFFERS,
        POD_TEMPLATES,
    ];
    /// Kinds that only tell policies more: when the API server refuses to list one
    /// (forbidden by a ClusterRole from before it was read, or not served), it counts as
    /// listed and empty, and the engine acts on the rest ([`super::ClusterStore::forgo`]).
    /// The CapacityBuffer CRD is only there where Cluster Autoscaler or Karpenter installed it.
    pub const OPTIONAL: &[&str] = &[AUTOSCALERS, VOLUMES, CAPACITY_BUFFERS, POD_TEMPLATES];
}

struct WorkloadEntry {
    replicas: u32,
    template: PodTemplateSpec,
    claim_templates: Vec<PersistentVolumeClaim>,
    requests: Resources,
    traits: FargateTraits,
    max_per_node: Option<u32>,
    max_zone_skew: Option<u32>,
    min_zone_domains: Option<u32>,
    max_node_skew: Option<u32>,
    min_node_domains: Option<u32>,
    node_inclusion: NodeInclusion,
    max_per_zone: Option<u32>,
    /// Its required pod anti-affinity terms on the hostname, with the other workloads they
    /// keep its pods off the nodes of ([`related`]).
    kept_away: Related,
    /// Its required pod affinity terms on the zone, with the workloads (itself among them
    /// when taken in) whose zones they keep its pods in.
    zone_affinity: Related,
    /// Its required pod affinity terms on the hostname, with the workloads (itself among them
    /// when taken in) on whose pods' nodes they keep its pods.
    kept_beside: Related,
}

struct BudgetEntry {
    selector: LabelSelector,
    allowed: u32,
}

/// What the watches have seen.
pub struct ClusterStore {
    settings: Arc<KubeSettings>,
    nodes: BTreeMap<Arc<str>, NodeView>,
    node_usage: HashMap<Arc<str>, Resources>,
    pods: PodIndex,
    /// ReplicaSet -> the Deployment that controls it, if any.
    replica_sets: HashMap<Key, Option<String>>,
    workloads: BTreeMap<WorkloadRef, WorkloadEntry>,
    budgets: BTreeMap<Key, BudgetEntry>,
    /// Claims (can Fargate mount each, the volume it is bound to) and volumes' zones.
    volumes: Volumes,
    /// CronJobs whose schedule and pods were readable.
    cron_jobs: BTreeMap<Key, CronEntry>,
    /// HorizontalPodAutoscalers whose bounds were readable.
    autoscalers: BTreeMap<Key, HorizontalAutoscaler>,
    /// CapacityBuffers of the active-capacity strategy whose spec was readable.
    buffers: BTreeMap<Key, BufferEntry>,
    /// PodTemplates whose requests were readable (what a CapacityBuffer may name).
    pod_templates: BTreeMap<Key, TemplateEntry>,
    /// One `Arc` per owner and per template, shared by the pods of a workload.
    owners: HashMap<WorkloadRef, Arc<WorkloadRef>>,
    templates: HashMap<WorkloadRef, Arc<PodTemplate>>,
    synced: BTreeSet<&'static str>,
    /// Keys seen since a relist began, per kind; what a relist did not see is gone.
    relisting: HashMap<&'static str, HashSet<Key>>,
    /// Values that did not parse, shared with the usage poll and the adapter's status.
    pub unreadable: Arc<Unreadable>,
}

fn workload_kind(kind: &str) -> WorkloadKind {
    match kind {
        "Deployment" => WorkloadKind::Deployment,
        "StatefulSet" => WorkloadKind::StatefulSet,
        "DaemonSet" => WorkloadKind::DaemonSet,
        "Job" => WorkloadKind::Job,
        "ReplicaSet" => WorkloadKind::ReplicaSet,
        _ => WorkloadKind::Other,
    }
}

/// The kind and name of the object that controls this one (its controller owner reference).
pub fn controller(meta: &ObjectMeta) -> Option<(WorkloadKind, String)> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (workload_kind(&o.kind), o.name.clone()))
}

/// A `metav1.LabelSelector` against labels. The empty selector matches everything, as a
/// policy/v1 PodDisruptionBudget's does.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    by_label
        && selector.match_expressions.iter().flatten().all(|e| {
            let value = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

impl ClusterStore {
    pub fn new(settings: Arc<KubeSettings>) -> Self {
        ClusterStore {
            settings,
            nodes: BTreeMap::new(),
            node_usage: HashMap::new(),
            pods: PodIndex::default(),
            replica_sets: HashMap::new(),
            workloads: BTreeMap::new(),
            budgets: BTreeMap::new(),
            cron_jobs: BTreeMap::new(),
            autoscalers: BTreeMap::new(),
            buffers: BTreeMap::new(),
            pod_templates: BTreeMap::new(),
            volumes: Volumes::default(),
            owners: HashMap::new(),
            templates: HashMap::new(),
            synced: BTreeSet::new(),
            relisting: HashMap::new(),
            unreadable: Arc::default(),
        }
    }

    /// Kinds whose first list has not completed.
    pub fn unsynced(&self) -> Vec<&'static str> {
        kinds::ALL.iter().copied().filter(|k| !self.synced.contains(k)).collect()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Distinct pod shapes (equivalence classes) among the pods held.
    pub fn shape_count(&self) -> usize {
        self.pods.shape_count()
    }

    /// Takes an optional kind the API server refuses to list as listed and empty, so that
    /// the caches count as synced without it. True the first time, while it was unsynced.
    pub fn forgo(&mut self, kind: &'static str) -> bool {
        if self.synced.contains(kind) && !self.relisting.contains_key(kind) {
            return false;
        }
        self.relist_started(kind);
        self.relist_done(kind);
        true
    }

    /// A relist of `kind` begins.
    pub fn relist_started(&mut self, kind: &'static str) {
        self.relisting.insert(kind, HashSet::new());
    }

    fn seen(&mut self, kind: &'static str, key: &Key) {
        if let Some(seen) = self.relisting.get_mut(kind) {
            seen.insert(key.clone());
        }
    }

    /// A relist of `kind` ended: objects it did not see were deleted while nobody watched.
    pub fn relist_done(&mut self, kind: &'static str) {
        self.synced.insert(kind);
        let Some(seen) = self.relisting.remove(kind) else { return };
        let stale: Vec<Key> = match kind {
            kinds::PODS => self.pods.keys().filter(|k| !seen.contains(*k)).cloned().collect(),
            kinds::NODES => {
                self.nodes.keys().map(|n| (String::new(), n.to_string())).filter(|k| !seen.contains(k)).collect()
            }
            kinds::REPLICA_SETS => self.replica_sets.keys().filter(|k| !seen.contains(*k)).cloned().collect(),
            kinds::BUDGETS => self.budgets.keys().filter(|k| !seen.contains(*k)).cloned().collect(),
            kinds::CLAIMS => self.volumes.claim_keys().filter(|k| !seen.contains(*k)).cloned().collect(),
            kinds::VOLUMES => {
                self.volumes.volume_names().map(|n| (String::new(), n.clone())).filter(|k| !seen.contains(k)).collect()
            }
            kinds::CRON_JOBS => self.cron_jobs.keys().filter(|k| !seen.contains(*k)).cloned().collect(),
            kinds::AUTOSCALERS => self.autoscalers.keys().filter(|k| !seen.contains(*k)).cloned().collect(),
            kinds::CAPACITY_BUFFERS => self.buffers.keys().filter(|k| !seen.contains(*k)).cloned().collect(),
            kinds::POD_TEMPLATES => self.pod_templates.keys().filter(|k| !seen.contains(*k)).cloned().collect(),
            other => {
                let kind = workload_kind_of(other);
                self.workloads
                    .keys()
                    .filter(|w| w.kind == kind)
                    .map(|w| (w.namespace.clone(), w.name.clone()))
                    .filter(|k| !seen.contains(k))
                    .collect()
            }
        };
        for key in stale {
            self.remove(kind, &key);
        }
    }

    /// Removes an object by kind and key.
    pub fn remove(&mut self, kind: &'static str, key: &Key) {
        match kind {
            kinds::PODS => {
                self.pods.remove(key);
            }
            kinds::NODES => {
                self.nodes.remove(key.1.as_str());
                self.node_usage.remove(key.1.as_str());
            }
            kinds::REPLICA_SETS => {
                self.replica_sets.remove(key);
                self.forget_workload(&WorkloadRef {
                    kind: WorkloadKind::ReplicaSet,
                    namespace: key.0.clone(),
                    name: key.1.clone(),
                });
            }
            kinds::BUDGETS => {
                self.budgets.remove(key);
                self.rematch_budgets(&key.0);
            }
            kinds::CLAIMS => {
                self.volumes.remove_claim(key);
                self.reassess_traits(&key.0);
            }
            kinds::VOLUMES => self.volumes.remove_volume(&key.1),
            kinds::CRON_JOBS => {
                self.cron_jobs.remove(key);
            }
            kinds::AUTOSCALERS => {
                self.autoscalers.remove(key);
            }
            kinds::CAPACITY_BUFFERS => {
                self.buffers.remove(key);
            }
            kinds::POD_TEMPLATES => {
                self.pod_templates.remove(key);
            }
            other => {
                let id = WorkloadRef { kind: workload_kind_of(other), namespace: key.0.clone(), name: key.1.clone() };
                self.forget_workload(&id);
            }
        }
    }

    pub fn apply_node(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.seen(kinds::NODES, &(String::new(), name.clone()));
        match convert::node(node, &self.settings.group_labels) {
            Ok(mut view) => {
                view.usage = self.node_usage.get(&view.name).copied();
                self.nodes.insert(view.name.clone(), view);
            }
            Err(bad) => {
                // Unknown capacity: the node is left out (never removed, never counted as
                // room) until a readable version arrives.
                bad.report_to(&self.unreadable, &format!("node {name}"));
                self.nodes.remove(name.as_str());
            }
        }
    }

    /// Returns whether the pod is newly waiting for capacity, which opens a tick batch.
    pub fn apply_pod(&mut self, pod: &Pod) -> bool {
        let key = key(&pod.metadata);
        self.seen(kinds::PODS, &key);
        if convert::finished(pod) {
            self.pods.remove(&key);
            return false;
        }
        let Some(spec) = pod.spec.as_ref() else { return false };
        let controller = controller(&pod.metadata);
        let owner = controller.as_ref().map(|(kind, name)| self.resolve_owner(&key.0, *kind, name));
        let template = convert::template(&pod.metadata, spec);
        // A pod whose claim is bound to a zonal volume runs only in that zone: its own
        // template, not its workload's shared one.
        let claims = volumes::claim_names(spec);
        let zoned = self.volumes.zone_of(&key.0, &claims).and_then(|zone| volumes::in_zone(&template, &zone));
        let template = match (&owner, zoned) {
            (_, Some(zoned)) => Arc::new(zoned),
            (Some(owner), None) => self.intern_template(owner, template),
            (None, None) => Arc::new(template),
        };
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let disruption_budget = self.budget_for(&key.0, &labels);
        let cutoff = self.settings.expendable_pods_priority_cutoff;
        let daemon = controller.as_ref().is_some_and(|(kind, _)| *kind == WorkloadKind::DaemonSet);
        let refused = convert::refused(pod);
        let passed_over = refused.then(|| convert::passed_over(pod, spec, daemon, cutoff)).flatten();
        let unschedulable = refused && passed_over.is_none();
        let previous = self.pods.get(&key);
        let newly_pending = unschedulable && !previous.is_some_and(|p| p.view.unschedulable);
        let usage = previous.and_then(|p| p.usage);
        let on_fargate = spec.scheduler_name.as_deref() == Some("fargate-scheduler")
            || labels.contains_key("eks.amazonaws.com/fargate-profile");
        let (requests, unreadable) = match convert::requests(spec) {
            Ok(requests) => (requests, None),
            Err(bad) => {
                bad.report_to(&self.unreadable, &format!("pod {}/{}", key.0, key.1));
                (Resources { pods: 1, ..Resources::default() }, Some(bad.to_string()))
            }
        };
        let view = PodView {
            namespace: key.0.as_str().into(),
            name: key.1.as_str().into(),
            node: spec.node_name.as_deref().map(Into::into),
            requests,
            unreadable,
            owner,
            template,
            unschedulable,
            created_at_millis: convert::millis(pod.metadata.creation_timestamp.as_ref()),
            disruption_budget,
            mirror: convert::mirror(pod),
            expendable: convert::expendable(spec, cutoff),
        };
        self.pods.insert(key, PodEntry { view, controller, labels, on_fargate, usage, claims, passed_over });
        newly_pending
    }

    fn resolve_owner(&mut self, namespace: &str, kind: WorkloadKind, name: &str) -> Arc<WorkloadRef> {
        let id = match kind {
            WorkloadKind::ReplicaSet => {
                match self.replica_sets.get(&(namespace.to_string(), name.to_string())).cloned().flatten() {
                    Some(deployment) => {
                        WorkloadRef { kind: WorkloadKind::Deployment, namespace: namespace.into(), name: deployment }
                    }
                    None => WorkloadRef { kind, namespace: namespace.into(), name: name.into() },
                }
            }
            kind => WorkloadRef { kind, namespace: namespace.into(), name: name.into() },
        };
        self.owners.entry(id.clone()).or_insert_with(|| Arc::new(id)).clone()
    }

    fn intern_template(&mut self, owner: &WorkloadRef, template: PodTemplate) -> Arc<PodTemplate> {
        match self.templates.get(owner) {
            Some(shared) if **shared == template => shared.clone(),
            _ => {
                let shared = Arc::new(template);
                self.templates.insert(owner.clone(), shared.clone());
                shared
            }
        }
    }

    fn budget_for(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Option<Arc<str>> {
        let start = (namespace.to_string(), String::new());
        self.budgets
            .range(start..)
            .take_while(|((ns, _), _)| ns == namespace)
            .find(|(_, b)| selects(&b.selector, labels))
            .map(|((_, name), _)| Arc::from(name.as_str()))
    }

    /// A budget appeared, went or changed its selector: pods of its namespace are matched again.
    fn rematch_budgets(&mut self, namespace: &str) {
        let start = (namespace.to_string(), String::new());
        let changed: Vec<(Key, Option<Arc<str>>)> = self
            .pods
            .entries()
            .skip_while(|(k, _)| **k < start)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(k, p)| (k.clone(), p.view.disruption_budget.clone(), self.budget_for(namespace, &p.labels)))
            .filter(|(_, was, now)| was != now)
            .map(|(k, _, now)| (k, now))
            .collect();
        for (key, budget) in changed {
            self.pods.update(&key, |p| p.view.disruption_budget = budget);
        }
    }

    pub fn apply_budget(&mut self, budget: &PodDisruptionBudget) {
        let key = key(&budget.metadata);
        self.seen(kinds::BUDGETS, &key);
        let selector = budget.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        let allowed = budget.status.as_ref().map_or(0, |s| s.disruptions_allowed.max(0) as u32);
        let selector_changed = self.budgets.get(&key).is_none_or(|b| b.selector != selector);
        self.budgets.insert(key.clone(), BudgetEntry { selector, allowed });
        if selector_changed {
            self.rematch_budgets(&key.0);
        }
    }

    pub fn apply_claim(&mut self, claim: &PersistentVolumeClaim) {
        let key = key(&claim.metadata);
        self.seen(kinds::CLAIMS, &key);
        let namespace = key.0.clone();
        let change = self.volumes.apply_claim(key, claim);
        if change.mountable {
            self.reassess_traits(&namespace);
        }
        if change.binding {
            self.rezone_pending();
        }
    }

    pub fn apply_volume(&mut self, volume: &PersistentVolume) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        self.seen(kinds::VOLUMES, &(String::new(), name));
        if self.volumes.apply_volume(volume) {
            self.rezone_pending();
        }
    }

    /// Pins the pending pods whose claims were bound, or whose volumes were seen, after the
    /// pods themselves to their volume's zone (`volumes.rs`). Pending pods are few; claims
    /// and volumes change rarely.
    fn rezone_pending(&mut self) {
        for key in self.pods.pending_with_claims() {
            let zoned = self.pods.get(&key).and_then(|e| {
                let zone = self.volumes.zone_of(&key.0, &e.claims)?;
                volumes::in_zone(&e.view.template, &zone)
            });
            if let Some(zoned) = zoned {
                self.pods.update(&key, |e| e.view.template = Arc::new(zoned));
            }
        }
    }

    fn traits(
        &self,
        namespace: &str,
        template: &PodTemplateSpec,
        claim_templates: &[PersistentVolumeClaim],
    ) -> FargateTraits {
        let volumes = &self.volumes;
        convert::fargate_traits(template, claim_templates, &|claim| volumes.fargate_mountable(namespace, claim))
    }

    fn reassess_traits(&mut self, namespace: &str) {
        let ids: Vec<WorkloadRef> = self.workloads.keys().filter(|w| w.namespace == namespace).cloned().collect();
        for id in ids {
            let traits = self.workloads.get(&id).map(|w| self.traits(namespace, &w.template, &w.claim_templates));
            if let (Some(traits), Some(w)) = (traits, self.workloads.get_mut(&id)) {
                w.traits = FargateTraits { pinned_by_owner: w.traits.pinned_by_owner.take(), ..traits };
            }
        }
    }

    /// Usage read from metrics.k8s.io, replacing what was known.
    pub fn set_usage(&mut self, nodes: HashMap<String, Resources>, pods: HashMap<Key, Resources>) {
        self.node_usage = nodes.into_iter().map(|(k, v)| (Arc::from(k.as_str()), v)).collect();
        for (name, node) in self.nodes.iter_mut() {
            node.usage = self.node_usage.get(name).copied();
        }
        self.pods.set_usage(&pods);
    }

    /// A HorizontalPodAutoscaler: the bounds it keeps its target within. One whose bounds
    /// do not hold is reported as unreadable and bounds nothing.
    pub fn apply_autoscaler(&mut self, hpa: &HorizontalPodAutoscaler) {
        let key = key(&hpa.metadata);
        self.seen(kinds::AUTOSCALERS, &key);
        self.autoscalers.remove(&key);
        match super::autoscaler::bounds(hpa) {
            Ok(Some(bounds)) => {
                self.autoscalers.insert(key, bounds);
            }
            Ok(None) => {}
            Err(bad) => bad.report_to(&self.unreadable, &format!("HorizontalPodAutoscaler {}/{}", key.0, key.1)),
        }
    }
}

fn workload_kind_of(kind: &str) -> WorkloadKind {
    match kind {
        kinds::DEPLOYMENTS => WorkloadKind::Deployment,
        kinds::STATEFUL_SETS => WorkloadKind::StatefulSet,
        kinds::DAEMON_SETS => WorkloadKind::DaemonSet,
        kinds::JOBS => WorkloadKind::Job,
        _ => WorkloadKind::Other,
    }
}

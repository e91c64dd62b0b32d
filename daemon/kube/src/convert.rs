//! From Kubernetes objects to the engine's views: pure functions, one object at a time, so
//! the store can convert on each watch event rather than on each tick.
//!
//! Requests follow the scheduler's arithmetic: the larger of what runs (the containers and the
//! sidecars) and what starts (each init container beside the sidecars before it), pod-level
//! requests where set, plus pod overhead.

use std::collections::BTreeMap;
use std::sync::Arc;

use ballast_sdk::{Resources, Taint, TaintEffect, Toleration};
use k8s_openapi::api::core::v1::{Node, NodeSelector, PersistentVolumeClaim, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use ballast_engine::ports::{FargateTraits, NodeView, PassOver, PassedOver, PodTemplate, RemovalMark};
use ballast_engine::unreadable::BadValue;

pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// Cluster Autoscaler's: the pod's local volumes (comma-separated names) it may lose.
pub const SAFE_TO_EVICT_LOCAL_VOLUMES: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes";
/// Cluster Autoscaler's, on a DaemonSet's pod: `"true"` or `"false"`, whether it is asked to
/// leave before its node goes, whatever the node held.
pub const ENABLE_DS_EVICTION: &str = "cluster-autoscaler.kubernetes.io/enable-ds-eviction";
pub const SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
/// Karpenter's: on a pod, it may not be evicted for a voluntary removal; on a node, the node
/// may not be removed.
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
pub const MIRROR: &str = "kubernetes.io/config.mirror";
pub const COMPUTE_TYPE: &str = "eks.amazonaws.com/compute-type";
/// The taint and annotation of a node Ballast is removing (see [`RemovalMark`]).
pub const REMOVAL: &str = "ballast.dev/removal";
/// On a node whose readiness released a warned spot node's held pods: the node it replaces.
pub const REPLACES: &str = "ballast.dev/replaces";
/// On a workload Ballast placed in one node group: that group, so the nodeSelector it wrote
/// is told from one its owner wrote (an owner's pin Ballast keeps).
pub const PLACED_GROUP: &str = "ballast.dev/placed-group";
/// Provisioners whose claims Fargate can mount (EFS, statically provisioned).
const FARGATE_MOUNTABLE: &[&str] = &["efs.csi.aws.com"];

pub fn millis(time: Option<&Time>) -> u64 {
    time.map_or(0, |t| t.0.as_millisecond().max(0) as u64)
}

/// One named quantity of a list: absent is zero, unparseable is an error naming it.
fn quantity(list: &BTreeMap<String, Quantity>, at: &str, key: &str, scale: f64) -> Result<u64, BadValue> {
    let Some(q) = list.get(key) else { return Ok(0) };
    ballast_sdk::quantity::parse(&q.0, scale).map_err(|error| BadValue {
        field: if at.is_empty() { key.to_string() } else { format!("{at}.{key}") },
        value: q.0.clone(),
        error,
    })
}

/// CPU, memory, pods, GPUs and ephemeral storage of a resource list found at `at` (for
/// errors, e.g. `spec.overhead`).
///
/// # Errors
/// The first quantity that does not parse, named by its field path.
pub fn resources(list: Option<&BTreeMap<String, Quantity>>, at: &str) -> Result<Resources, BadValue> {
    let Some(list) = list else { return Ok(Resources::default()) };
    let mut gpus = 0u64;
    for g in Resources::GPU_RESOURCES {
        gpus = gpus.saturating_add(quantity(list, at, g, 1.0)?);
    }
    Ok(Resources {
        cpu_millis: quantity(list, at, "cpu", 1000.0)?,
        memory_bytes: quantity(list, at, "memory", 1.0)?,
        pods: u32::try_from(quantity(list, at, "pods", 1.0)?).unwrap_or(u32::MAX),
        gpus: u32::try_from(gpus).unwrap_or(u32::MAX),
        ephemeral_storage_bytes: quantity(list, at, EPHEMERAL_STORAGE, 1.0)?,
    })
}

/// A node's allocatable: as [`resources`], but a list that does not say its ephemeral storage
/// (a kubelet always does; a hand-written node may not) leaves it not known
/// ([`Resources::STORAGE_NOT_KNOWN`]), not 0, so the node is not taken for one without a disk.
///
/// # Errors
/// The first quantity that does not parse, named by its field path.
pub fn node_allocatable(list: Option<&BTreeMap<String, Quantity>>) -> Result<Resources, BadValue> {
    let mut allocatable = resources(list, "status.allocatable")?;
    if !list.is_some_and(|l| l.contains_key(EPHEMERAL_STORAGE)) {
        allocatable.ephemeral_storage_bytes = Resources::STORAGE_NOT_KNOWN;
    }
    Ok(allocatable)
}

const EPHEMERAL_STORAGE: &str = "ephemeral-storage";

fn max_each(a: Resources, b: Resources) -> Resources {
    Resources {
        cpu_millis: a.cpu_millis.max(b.cpu_millis),
        memory_bytes: a.memory_bytes.max(b.memory_bytes),
        pods: a.pods.max(b.pods),
        gpus: a.gpus.max(b.gpus),
        ephemeral_storage_bytes: a.ephemeral_storage_bytes.max(b.ephemeral_storage_bytes),
    }
}

/// What a pod with this spec asks the scheduler for, one pod slot included, as the
/// scheduler adds it up (`PodRequests` in Kubernetes' component-helpers). Sidecars (init
/// containers with `restartPolicy: Always`) run beside the containers, so they add to what
/// runs, and every init container after a sidecar starts beside it; the pod needs the
/// larger of what runs and what starts. Pod-level requests (`spec.resources.requests`, CPU
/// and memory) replace the containers' where set. Overhead comes on top.
///
/// # Errors
/// The first request that does not parse, e.g. `spec.containers[web].resources.requests.cpu`.
pub fn requests(spec: &PodSpec) -> Result<Resources, BadValue> {
    // The field path is built only for an error: this runs on every pod event.
    let of = |kind: &str, c: &k8s_openapi::api::core::v1::Container| {
        resources(c.resources.as_ref().and_then(|r| r.requests.as_ref()), "")
            .map_err(|bad| bad.under(&format!("spec.{kind}[{}].resources.requests", c.name)))
    };
    let mut running = Resources::default();
    for c in &spec.containers {
        running = running.saturating_add(&of("containers", c)?);
    }
    let (mut sidecars, mut starting) = (Resources::default(), Resources::default());
    for c in spec.init_containers.iter().flatten() {
        let asked = of("initContainers", c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            running = running.saturating_add(&asked);
            sidecars = sidecars.saturating_add(&asked);
            starting = max_each(starting, sidecars);
        } else {
            starting = max_each(starting, asked.saturating_add(&sidecars));
        }
    }
    let mut total = with_pod_level(max_each(running, starting), spec)?;
    total = total.saturating_add(&resources(spec.overhead.as_ref(), "spec.overhead")?);
    total.pods = 1;
    Ok(total)
}

/// `containers` with the CPU and memory the pod's own `spec.resources.requests` sets instead.
fn with_pod_level(containers: Resources, spec: &PodSpec) -> Result<Resources, BadValue> {
    let Some(list) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) else { return Ok(containers) };
    let pod = resources(Some(list), "spec.resources.requests")?;
    Ok(Resources {
        cpu_millis: if list.contains_key("cpu") { pod.cpu_millis } else { containers.cpu_millis },
        memory_bytes: if list.contains_key("memory") { pod.memory_bytes } else { containers.memory_bytes },
        ..containers
    })
}

/// The node group a workload's owner pins it to: the template's nodeSelector on
/// `group_label`, unless Ballast wrote that selector for a placement ([`PLACED_GROUP`]).
pub fn pinned_by_owner(meta: &ObjectMeta, template: &PodTemplateSpec, group_label: &str) -> Option<String> {
    let group = template.spec.as_ref()?.node_selector.as_ref()?.get(group_label)?;
    (annotation(meta, PLACED_GROUP) != Some(group.as_str())).then(|| group.clone())
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// Scheduling constraints and disruption traits of a pod spec.
pub fn template(meta: &ObjectMeta, spec: &PodSpec) -> PodTemplate {
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    let mut node_selector = spec.node_selector.clone().unwrap_or_default();
    for (key, value) in required.map(pinned_by_affinity).unwrap_or_default() {
        node_selector.entry(key).or_insert(value);
    }
    let affinity_keys = required
        .map(|r| {
            let mut keys: Vec<String> = r
                .node_selector_terms
                .iter()
                .flat_map(|t| t.match_expressions.iter().flatten())
                .map(|e| e.key.clone())
                .collect();
            keys.sort();
            keys.dedup();
            keys
        })
        .unwrap_or_default();
    let tolerations = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| Toleration {
            key: t.key.clone().unwrap_or_default(),
            operator_exists: t.operator.as_deref() == Some("Exists"),
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.as_deref().and_then(TaintEffect::parse),
        })
        .collect();
    // Local volumes hold data a move would lose, unless the pod says it may lose them.
    let may_lose: Vec<&str> = annotation(meta, SAFE_TO_EVICT_LOCAL_VOLUMES)
        .map(|v| v.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let local_storage = spec
        .volumes
        .iter()
        .flatten()
        .any(|v| (v.empty_dir.is_some() || v.host_path.is_some()) && !may_lose.contains(&v.name.as_str()));
    PodTemplate {
        node_selector,
        affinity_keys,
        tolerations,
        local_storage,
        safe_to_evict: annotation(meta, SAFE_TO_EVICT).map(|v| v == "true"),
        do_not_disrupt: annotation(meta, DO_NOT_DISRUPT) == Some("true"),
        daemonset_eviction: annotation(meta, ENABLE_DS_EVICTION).map(|v| v == "true"),
        custom_controller: custom_controller(meta),
        critical: matches!(
            spec.priority_class_name.as_deref(),
            Some("system-cluster-critical" | "system-node-critical")
        ),
    }
}

/// The controller of a pod, as "Kind name", when it is of a kind Kubernetes does not itself
/// recreate pods for; a mirror pod's Node is not one (mirror pods are never evicted).
fn custom_controller(meta: &ObjectMeta) -> Option<String> {
    const RECREATING: &[&str] =
        &["ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicationController", "Node"];
    let controller = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true))?;
    (!RECREATING.contains(&controller.kind.as_str())).then(|| format!("{} {}", controller.kind, controller.name))
}

/// The labels a pod's required node affinity pins to one value, which admit it as a node
/// selector would: with a single term (terms are alternatives), each `In` expression of one
/// value (a zone, an architecture, an instance type). Other expressions stay keys only.
pub fn pinned_by_affinity(required: &NodeSelector) -> Vec<(String, String)> {
    let [term] = required.node_selector_terms.as_slice() else { return Vec::new() };
    term.match_expressions
        .iter()
        .flatten()
        .filter(|e| e.operator == "In")
        .filter_map(|e| match e.values.as_deref() {
            Some([value]) => Some((e.key.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

pub fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some(Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: TaintEffect::parse(&t.effect)?,
            })
        })
        .collect()
}

/// The scheduler gave up on the pod for want of room (`PodScheduled=False`, reason
/// `Unschedulable`). It waits for capacity unless [`passed_over`] says why not.
pub fn refused(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
}

fn nominated_node(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.nominated_node_name.as_deref()).filter(|n| !n.is_empty())
}

/// Its priority (`spec.priority`, set by the Priority admission plugin) is below `cutoff`.
/// A pod with none is never expendable, as in Cluster Autoscaler.
pub fn expendable(spec: &PodSpec, cutoff: i32) -> bool {
    spec.priority.is_some_and(|p| p < cutoff)
}

/// Why a pod the scheduler [`refused`] waits for no capacity, if it does not (Cluster
/// Autoscaler passes over the same pods): a DaemonSet's pod (`daemon`) can run only on the
/// node it was made for, which no new node changes; an expendable one causes no scale-up; one
/// nominated to a node (`status.nominatedNodeName`) preempted lower-priority pods there and
/// runs once they leave. For people (`explain pod`).
pub fn passed_over(pod: &Pod, spec: &PodSpec, daemon: bool, cutoff: i32) -> Option<PassedOver> {
    let (reason, why) = match (daemon, spec.priority, nominated_node(pod)) {
        (true, _, _) => (
            PassOver::DaemonSet,
            "a DaemonSet's pod runs only on the node it was made for: a new node runs its own and makes no room for this one"
                .to_string(),
        ),
        (_, Some(priority), _) if expendable(spec, cutoff) => (
            PassOver::Expendable,
            format!(
                "its priority {priority} is below kubernetes.expendable-pods-priority-cutoff ({cutoff}): an expendable pod causes no scale-up"
            ),
        ),
        (_, _, Some(node)) => (
            PassOver::Nominated,
            format!(
                "the scheduler nominated node {node} for it, where it preempts lower-priority pods: it runs there once they leave"
            ),
        ),
        _ => return None,
    };
    let node = nominated_node(pod).filter(|_| reason == PassOver::Nominated).map(Arc::from);
    Some(PassedOver { reason, why: why.into(), node })
}

pub fn finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

pub fn mirror(pod: &Pod) -> bool {
    annotation(&pod.metadata, MIRROR).is_some()
}

/// The zone and EC2 instance id in a provider id (`aws:///us-east-1a/i-0abc`). Fargate
/// nodes have provider ids too, but no instance behind them.
pub fn provider_id(id: &str) -> Option<(String, String)> {
    let rest = id.strip_prefix("aws:///")?;
    let mut parts = rest.split('/');
    let zone = parts.next()?.to_string();
    let instance = parts.next_back()?.to_string();
    instance.starts_with("i-").then_some((zone, instance))
}

/// The node as the engine sees it, without usage (metrics arrive separately).
///
/// # Errors
/// An allocatable quantity that does not parse: the node's capacity is unknown.
pub fn node(node: &Node, group_labels: &[String]) -> Result<NodeView, BadValue> {
    let meta = &node.metadata;
    let spec = node.spec.as_ref();
    let status = node.status.as_ref();
    let parsed = spec.and_then(|s| s.provider_id.as_deref()).and_then(provider_id);
    let ready_condition = status.and_then(|s| s.conditions.as_ref()).into_iter().flatten().find(|c| c.type_ == "Ready");
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let unready_since_millis =
        ready_condition.filter(|_| !ready).and_then(|c| c.last_transition_time.as_ref()).map(|t| millis(Some(t)));
    let zone = label(meta, "topology.kubernetes.io/zone")
        .map(str::to_string)
        .or_else(|| parsed.as_ref().map(|(z, _)| z.clone()))
        .unwrap_or_default();
    Ok(NodeView {
        name: meta.name.clone().unwrap_or_default().into(),
        instance_id: parsed.map(|(_, i)| i),
        instance_type: label(meta, "node.kubernetes.io/instance-type")
            .or_else(|| label(meta, "beta.kubernetes.io/instance-type"))
            .unwrap_or_default()
            .to_string(),
        zone,
        allocatable: node_allocatable(status.and_then(|s| s.allocatable.as_ref()))?,
        usage: None,
        ready,
        unready_since_millis,
        cordoned: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        created_at_millis: millis(meta.creation_timestamp.as_ref()),
        fargate: label(meta, COMPUTE_TYPE) == Some("fargate"),
        kept_by: [SCALE_DOWN_DISABLED, DO_NOT_DISRUPT].into_iter().find(|a| annotation(meta, a) == Some("true")),
        group_label: group_labels.iter().find_map(|k| label(meta, k)).map(str::to_string),
        removal_mark: removal_mark(node),
        replaces: annotation(meta, REPLACES).map(str::to_string),
        pods: Default::default(),
    })
}

/// The removal mark a replica wrote on the node. A taint without a readable annotation is
/// still a mark (of unknown age): whoever leads adopts it and, past `drain-timeout`, clears
/// it, so no node stays cordoned by a Ballast that no longer exists.
fn removal_mark(node: &Node) -> Option<RemovalMark> {
    let tainted = node.spec.as_ref()?.taints.iter().flatten().any(|t| t.key == REMOVAL);
    let written = annotation(&node.metadata, REMOVAL).and_then(|text| serde_json::from_str(text).ok());
    match written {
        Some(mark) => Some(mark),
        None if tainted || annotation(&node.metadata, REMOVAL).is_some() => Some(RemovalMark {
            owner: "unknown".into(),
            started_at_millis: 0,
            group: String::new(),
            instance_id: node.spec.as_ref()?.provider_id.as_deref().and_then(provider_id)?.1,
            tick: 0,
            interrupted: false,
            hold_until_millis: None,
            released_by: None,
            cause: None,
            occupied: false,
        }),
        None => None,
    }
}

/// What keeps pods of this template off Fargate. `claims_fargate_mountable` answers, for a
/// PersistentVolumeClaim name in the template's namespace, whether Fargate can mount it;
/// `claim_templates` are a StatefulSet's volumeClaimTemplates, provisioned per replica (EBS
/// on EKS unless the class is EFS).
pub fn fargate_traits(
    template: &PodTemplateSpec,
    claim_templates: &[PersistentVolumeClaim],
    claims_fargate_mountable: &dyn Fn(&str) -> bool,
) -> FargateTraits {
    let Some(spec) = template.spec.as_ref() else { return FargateTraits::default() };
    let templated_ebs = claim_templates.iter().any(|c| {
        !c.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()).is_some_and(|class| class.contains("efs"))
    });
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let privileged =
        containers.clone().any(|c| c.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false));
    let host_port = containers.clone().any(|c| c.ports.iter().flatten().any(|p| p.host_port.is_some()));
    let ebs_volume = templated_ebs
        || spec.volumes.iter().flatten().any(|v| {
            v.aws_elastic_block_store.is_some()
                || v.csi.as_ref().is_some_and(|c| c.driver == "ebs.csi.aws.com")
                || v.ephemeral.is_some()
                || v.persistent_volume_claim.as_ref().is_some_and(|c| !claims_fargate_mountable(&c.claim_name))
        });
    let selector = spec.node_selector.as_ref();
    let arch = selector.and_then(|s| s.get("kubernetes.io/arch")).map(String::as_str);
    let os = selector.and_then(|s| s.get("kubernetes.io/os")).map(String::as_str);
    FargateTraits {
        ebs_volume,
        privileged,
        host_network: spec.host_network.unwrap_or(false) || host_port,
        gpu: requests(spec).map_or(true, |r| r.gpus > 0),
        unsupported_platform: arch.is_some_and(|a| a != "amd64") || os.is_some_and(|o| o != "linux"),
        pinned_by_owner: None,
    }
}

/// Whether Fargate can mount a claim: only EFS (static) volumes.
pub fn claim_fargate_mountable(claim: &PersistentVolumeClaim) -> bool {
    let meta = &claim.metadata;
    let provisioner = annotation(meta, "volume.kubernetes.io/storage-provisioner")
        .or_else(|| annotation(meta, "volume.beta.kubernetes.io/storage-provisioner"));
    provisioner.is_some_and(|p| FARGATE_MOUNTABLE.contains(&p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a valid pod")
    }

    #[test]
    fn requests_take_the_larger_of_containers_and_init_containers() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "250m", "nvidia.com/gpu": "1"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}}],
            "overhead": {"cpu": "100m"}}}));
        let r = requests(p.spec.as_ref().unwrap()).unwrap();
        assert_eq!((r.cpu_millis, r.memory_bytes, r.gpus, r.pods), (2100, 1 << 30, 1, 1));
    }

    /// Native sidecars (Kubernetes 1.29 on, as Istio and log shippers run them) add to what
    /// runs, and an init container after one starts beside it.
    #[test]
    fn sidecars_run_beside_the_containers_and_the_init_containers_after_them() {
        let cpu = |containers: serde_json::Value, init: serde_json::Value| {
            let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": containers, "initContainers": init}}));
            requests(p.spec.as_ref().unwrap()).unwrap().cpu_millis
        };
        let app = json!([{"name": "app", "resources": {"requests": {"cpu": "500m"}}}]);
        let proxy = json!({"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "300m"}}});
        let migrate = |cpu: &str| json!({"name": "migrate", "resources": {"requests": {"cpu": cpu}}});
        assert_eq!(cpu(app.clone(), json!([proxy.clone()])), 800, "the sidecar runs beside the app");
        assert_eq!(cpu(app.clone(), json!([proxy.clone(), migrate("1")])), 1300, "migrate starts beside the proxy");
        assert_eq!(cpu(app.clone(), json!([migrate("1"), proxy])), 1000, "migrate ends before the proxy starts");
        assert_eq!(cpu(app, json!([migrate("1")])), 1000, "an init container alone: the larger phase");
    }

    #[test]
    fn pod_level_requests_replace_the_containers_cpu_and_memory_where_set() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "resources": {"requests": {"cpu": "2"}},
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}],
            "overhead": {"cpu": "100m"}}}));
        let r = requests(p.spec.as_ref().unwrap()).unwrap();
        assert_eq!((r.cpu_millis, r.memory_bytes), (2100, 1 << 30), "CPU the pod's own, memory the containers'");
        let bad = pod(json!({"metadata": {"name": "p"}, "spec": {"resources": {"requests": {"memory": "lots"}},
            "containers": []}}));
        let error = requests(bad.spec.as_ref().unwrap()).unwrap_err().to_string();
        assert!(error.contains("spec.resources.requests.memory") && error.contains("lots"), "{error}");
    }

    /// Ephemeral storage is asked as CPU is (the larger of what runs and what starts) and a
    /// node offers what its kubelet reports; a node that does not say is not taken for one
    /// without a disk.
    #[test]
    fn ephemeral_storage_is_read_from_pods_and_nodes() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "resources": {"requests": {"ephemeral-storage": "2Gi"}}},
                           {"name": "b", "resources": {"requests": {"ephemeral-storage": "1Gi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"ephemeral-storage": "5Gi"}}}]}}));
        assert_eq!(requests(p.spec.as_ref().unwrap()).unwrap().ephemeral_storage_bytes, 5 << 30);
        let node_with = |allocatable: serde_json::Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"allocatable": allocatable}}))
                .expect("a valid node")
        };
        let said = node(&node_with(json!({"cpu": "2", "ephemeral-storage": "18242267924"})), &[]).unwrap();
        assert_eq!(said.allocatable.ephemeral_storage_bytes, 18_242_267_924);
        let unsaid = node(&node_with(json!({"cpu": "2"})), &[]).unwrap();
        assert_eq!(unsaid.allocatable.ephemeral_storage_bytes, Resources::STORAGE_NOT_KNOWN);
        let bad = node(&node_with(json!({"ephemeral-storage": "lots"})), &[]).unwrap_err().to_string();
        assert!(bad.contains("status.allocatable.ephemeral-storage = \"lots\" cannot be read"), "{bad}");
    }

    #[test]
    fn a_node_that_is_not_ready_says_since_when_and_a_ready_one_does_not() {
        let node_with = |status: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n", "creationTimestamp": "2026-01-05T10:00:00Z"},
                "spec": {"providerID": "aws:///us-east-1a/i-0abc"},
                "status": {"conditions": [{"type": "Ready", "status": status, "reason": "NodeStatusUnknown",
                    "lastTransitionTime": "2026-01-05T12:00:00Z"}]}}))
            .expect("a valid node")
        };
        let lost = node(&node_with("Unknown"), &[]).unwrap();
        assert!(!lost.ready);
        assert_eq!(lost.unready_since_millis, Some(1_767_614_400_000), "12:00 UTC");
        assert_eq!(node(&node_with("False"), &[]).unwrap().unready_since_millis, Some(1_767_614_400_000));
        let ready = node(&node_with("True"), &[]).unwrap();
        assert!(ready.ready && ready.unready_since_millis.is_none());
    }

    #[test]
    fn a_removal_mark_written_before_spot_holds_reads_as_a_plain_drain_and_a_held_or_released_one_keeps_it() {
        let marked = |mark: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n", "annotations": {REMOVAL: mark}},
                "spec": {"providerID": "aws:///us-east-1a/i-0abc"}}))
            .expect("a valid node")
        };
        let old = r#"{"owner":"a","started-at-millis":5,"group":"web","instance-id":"i-0abc","tick":3}"#;
        let read = node(&marked(old), &[]).unwrap().removal_mark.expect("a mark");
        assert!(!read.interrupted && read.hold_until_millis.is_none(), "{read:?}");
        let held = RemovalMark { interrupted: true, hold_until_millis: Some(75_000), ..read };
        let written = serde_json::to_string(&held).unwrap();
        assert!(written.contains(r#""hold-until-millis":75000"#), "{written}");
        assert_eq!(node(&marked(&written), &[]).unwrap().removal_mark, Some(held.clone()));
        let released = RemovalMark {
            hold_until_millis: None,
            released_by: Some("n-new".into()),
            cause: Some("spot-interrupted".into()),
            ..held
        };
        let written = serde_json::to_string(&released).unwrap();
        assert!(written.contains(r#""released-by":"n-new""#), "{written}");
        assert!(written.contains(r#""cause":"spot-interrupted""#), "{written}");
        assert_eq!(node(&marked(&written), &[]).unwrap().removal_mark, Some(released));
    }

    #[test]
    fn karpenters_do_not_disrupt_keeps_a_pod_and_a_node_as_cluster_autoscalers_annotations_do() {
        let spec: PodSpec = serde_json::from_value(json!({"containers": []})).expect("a pod spec");
        let annotated = |pairs: &[(&str, &str)]| ObjectMeta {
            annotations: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        };
        let kept = template(&annotated(&[(DO_NOT_DISRUPT, "true"), (SAFE_TO_EVICT, "true")]), &spec);
        assert!(kept.do_not_disrupt && kept.safe_to_evict == Some(true));
        assert!(!template(&annotated(&[(DO_NOT_DISRUPT, "false")]), &spec).do_not_disrupt);

        let node_with = |pairs: &[(&str, &str)]| -> Node {
            let mut n: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
                "spec": {"providerID": "aws:///us-east-1a/i-0abc"}}))
            .expect("a valid node");
            n.metadata.annotations = annotated(pairs).annotations;
            n
        };
        let kept_by = |pairs: &[(&str, &str)]| node(&node_with(pairs), &[]).unwrap().kept_by;
        assert_eq!(kept_by(&[(DO_NOT_DISRUPT, "true")]), Some(DO_NOT_DISRUPT));
        assert_eq!(kept_by(&[(SCALE_DOWN_DISABLED, "true")]), Some(SCALE_DOWN_DISABLED));
        assert_eq!(kept_by(&[(DO_NOT_DISRUPT, "no")]), None);
    }

    #[test]
    fn local_volumes_keep_a_pod_unless_it_names_them_all_safe_to_lose() {
        let spec: PodSpec = serde_json::from_value(json!({"containers": [], "volumes": [
            {"name": "scratch", "emptyDir": {}}, {"name": "logs", "hostPath": {"path": "/var/log"}},
            {"name": "config", "configMap": {"name": "c"}}]}))
        .expect("a pod spec");
        let with = |value: Option<&str>| {
            let annotations = value.map(|v| [(SAFE_TO_EVICT_LOCAL_VOLUMES.to_string(), v.to_string())].into());
            template(&ObjectMeta { annotations, ..ObjectMeta::default() }, &spec).local_storage
        };
        assert!(with(None), "emptyDir and hostPath");
        assert!(with(Some("scratch")), "logs is not named");
        assert!(!with(Some("scratch, logs")), "both named: the move loses nothing the pod keeps");
    }

    #[test]
    fn provider_ids_yield_zone_and_instance_but_not_for_fargate() {
        assert_eq!(provider_id("aws:///us-east-1a/i-0abc"), Some(("us-east-1a".into(), "i-0abc".into())));
        assert_eq!(provider_id("aws:///us-east-1a/0123abcd/fargate-ip-10-0-0-1.ec2.internal"), None);
        assert_eq!(provider_id("gce://p/z/n"), None);
    }

    #[test]
    fn unschedulable_needs_the_scheduler_reason() {
        let waiting = pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}));
        let new = pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}}));
        assert!(refused(&waiting));
        assert!(!refused(&new));
        assert_eq!(passed_over(&waiting, &PodSpec::default(), false, -10), None, "it waits for capacity");
        let daemon = passed_over(&waiting, &PodSpec::default(), true, -10).expect("passed over");
        assert_eq!(daemon.reason, PassOver::DaemonSet);
        assert!(daemon.why.starts_with("a DaemonSet's pod runs only on the node it was made for"), "{daemon:?}");
    }

    #[test]
    fn a_pod_of_a_custom_controller_is_told_from_one_kubernetes_recreates() {
        let owned_by = |kind: &str| {
            let meta: ObjectMeta = serde_json::from_value(json!({"name": "p", "ownerReferences": [
                {"apiVersion": "x/v1", "kind": kind, "name": "owner", "uid": "u", "controller": true}]}))
            .unwrap();
            template(&meta, &PodSpec::default()).custom_controller
        };
        assert_eq!(owned_by("VirtualMachineInstance").as_deref(), Some("VirtualMachineInstance owner"));
        for kind in ["ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicationController", "Node"] {
            assert_eq!(owned_by(kind), None, "{kind}");
        }
        assert_eq!(template(&ObjectMeta::default(), &PodSpec::default()).custom_controller, None, "no controller");
    }

    #[test]
    fn a_pod_of_a_system_priority_class_is_critical() {
        let of = |class: &str| PodSpec { priority_class_name: Some(class.into()), ..PodSpec::default() };
        let critical = |spec: &PodSpec| template(&ObjectMeta::default(), spec).critical;
        assert!(critical(&of("system-cluster-critical")) && critical(&of("system-node-critical")));
        assert!(!critical(&of("high-priority")) && !critical(&PodSpec::default()));
    }

    #[test]
    fn a_pod_nominated_after_preempting_waits_for_its_victims_not_for_capacity() {
        let nominated = |node: &str| {
            pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending", "nominatedNodeName": node,
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}))
        };
        let over = passed_over(&nominated("n1"), &PodSpec::default(), false, -10).expect("passed over");
        assert_eq!((over.reason, over.node.as_deref()), (PassOver::Nominated, Some("n1")));
        assert!(over.why.starts_with("the scheduler nominated node n1 for it"), "{over:?}");
        assert_eq!(passed_over(&nominated(""), &PodSpec::default(), false, -10), None, "an empty one names no node");
    }

    #[test]
    fn a_pod_is_expendable_only_below_the_cutoff_and_never_without_a_priority() {
        let with = |priority: Option<i32>| PodSpec { priority, ..PodSpec::default() };
        assert!(expendable(&with(Some(-11)), -10));
        assert!(!expendable(&with(Some(-10)), -10), "at the cutoff is not below it");
        assert!(!expendable(&with(Some(-1)), -10), "an overprovisioning pause pod (-1) still counts");
        assert!(!expendable(&with(None), -10));
    }

    #[test]
    fn required_affinity_that_pins_a_label_to_one_value_selects_it_as_a_node_selector_would() {
        let spec = |terms: serde_json::Value| -> PodSpec {
            serde_json::from_value(json!({"containers": [], "nodeSelector": {"kubernetes.io/os": "linux"},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                    {"nodeSelectorTerms": terms}}}}))
            .expect("a valid pod spec")
        };
        let zone = json!({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1b"]});
        let either_arch = json!({"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]});
        let not_spot = json!({"key": "eks.amazonaws.com/capacityType", "operator": "NotIn", "values": ["SPOT"]});
        let one_term = spec(json!([{"matchExpressions": [zone, either_arch, not_spot]}]));
        let read = template(&ObjectMeta::default(), &one_term);
        let selector: Vec<(&str, &str)> = read.node_selector.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(selector, [("kubernetes.io/os", "linux"), ("topology.kubernetes.io/zone", "us-east-1b")]);
        assert_eq!(
            read.affinity_keys,
            ["eks.amazonaws.com/capacityType", "kubernetes.io/arch", "topology.kubernetes.io/zone"]
        );
        // Two terms are alternatives: neither pins the zone.
        let other_zone = json!({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1c"]});
        let two_terms = spec(json!([{"matchExpressions": [zone]}, {"matchExpressions": [other_zone]}]));
        let read = template(&ObjectMeta::default(), &two_terms);
        assert!(!read.node_selector.contains_key("topology.kubernetes.io/zone"), "{:?}", read.node_selector);
    }

    #[test]
    fn fargate_traits_flag_what_fargate_cannot_run() {
        let t: PodTemplateSpec = serde_json::from_value(json!({"spec": {
            "containers": [{"name": "a", "securityContext": {"privileged": true}, "ports": [{"containerPort": 80}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            "nodeSelector": {"kubernetes.io/arch": "arm64"}}}))
        .unwrap();
        let traits = fargate_traits(&t, &[], &|_| false);
        assert!(traits.privileged && traits.ebs_volume && traits.unsupported_platform);
        assert!(!traits.host_network && !traits.gpu);
        assert!(!fargate_traits(&t, &[], &|name| name == "data").ebs_volume);
        let claim: PersistentVolumeClaim =
            serde_json::from_value(json!({"spec": {"storageClassName": "gp3"}})).unwrap();
        let bare: PodTemplateSpec = serde_json::from_value(json!({"spec": {"containers": [{"name": "a"}]}})).unwrap();
        assert!(fargate_traits(&bare, std::slice::from_ref(&claim), &|_| true).ebs_volume);
    }
}

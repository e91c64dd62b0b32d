//! Cluster Autoscaler's request read into a snapshot the policies understand.
//!
//! Each option becomes a node group from its template node: the instance type, capacity,
//! allocatable, labels, taints and zone of a node the group would add, priced from the
//! bundled table (or `on-demand-prices`), with `desired-size` 0 and `max-size` the option's
//! node count, the room CA offers. The pending pods are those of every option, once each,
//! with the per-node limit their required pod anti-affinity sets (`per-node-limits`).
//! Nothing else is known: the snapshot has no nodes and no workloads, so a policy sizes each
//! group for the pending pods alone, which is the question CA asks.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ballast_proto::grpcplugin as ca;
use ballast_proto::k8s::io::api::core::v1 as pb;
use ballast_sdk::{
    CAPACITY_TYPE_LABEL, InstanceType, NodeGroup, NodeGroupKind, PendingPod, PerNodeLimit, SnapshotData, WorkloadRef,
};
use k8s_openapi::api::core::v1 as core;

use super::objects;
use crate::kubernetes::convert;
use crate::kubernetes::store::controller;

/// A request CA should not have sent: the field at fault and what is wrong with its value.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadRequest {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> BadRequest {
    BadRequest { field: field.into(), message: message.into() }
}

/// What instances cost: on-demand from the AWS adapter's table and overrides, spot as a
/// fraction of it (the template says which, by its capacity-type label).
pub struct Pricing {
    pub on_demand: crate::aws::prices::Prices,
    pub spot_ratio: f64,
}

/// One of CA's options, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub group: String,
    pub node_count: u32,
    /// Pending pods the option would schedule.
    pub pods: usize,
    /// The option as CA sent it, without its pods: what an answer returns.
    pub echo: ca::Option,
}

/// The request as policies see it, and the options it came from.
pub struct Offers {
    pub offers: Vec<Offer>,
    pub snapshot: SnapshotData,
}

/// Reads CA's request.
///
/// # Errors
/// The first field that cannot be used, named as CA's proto names it (e.g.
/// `options[2].podBytes[0]`, `nodeBytesMap[spot-a]`).
pub fn read(request: &ca::BestOptionsRequest, pricing: &Pricing, now_millis: u64) -> Result<Offers, BadRequest> {
    let mut offers = Vec::with_capacity(request.options.len());
    let mut groups = Vec::with_capacity(request.options.len());
    let mut pods = Pods::default();
    let mut seen = BTreeSet::new();
    for (i, option) in request.options.iter().enumerate() {
        let at = format!("options[{i}]");
        let group = option.node_group_id.clone();
        if group.is_empty() {
            return Err(bad(format!("{at}.nodeGroupId"), "empty"));
        }
        if !seen.insert(group.clone()) {
            return Err(bad(format!("{at}.nodeGroupId"), format!("'{group}' is offered twice")));
        }
        let node_count = u32::try_from(option.node_count)
            .map_err(|_| bad(format!("{at}.nodeCount"), format!("{} is below 0", option.node_count)))?;
        let carried = pods.read(option, &at)?;
        let template = template(request, &group, &at)?;
        groups.push(node_group(&group, node_count, &template.0, &template.1, pricing)?);
        offers.push(Offer {
            group,
            node_count,
            pods: carried,
            echo: ca::Option { pod: Vec::new(), pod_bytes: Vec::new(), ..option.clone() },
        });
    }
    let snapshot = SnapshotData {
        taken_at_millis: now_millis,
        node_groups: groups,
        pending_pods: pods.by_name.into_values().collect(),
        per_node_limits: pods
            .per_node
            .into_iter()
            .map(|(workload, max_pods)| PerNodeLimit { workload, max_pods })
            .collect(),
        ..SnapshotData::default()
    };
    Ok(Offers { offers, snapshot })
}

/// The options' pending pods, each read once: CA repeats a pod in every option that could
/// hold it (20 options of 1,000 pods are 20,000 entries and 1,000 pods).
#[derive(Default)]
struct Pods<'r> {
    by_name: BTreeMap<(String, String), PendingPod>,
    /// The pods' owners that keep them apart, with how many a node may run (the tightest a
    /// pod of theirs says).
    per_node: BTreeMap<WorkloadRef, u32>,
    /// Serialised pods already read.
    bytes_seen: HashSet<&'r [u8]>,
}

impl<'r> Pods<'r> {
    /// Reads an option's pods (`podBytes` when CA sent them, the deprecated `pod`
    /// otherwise); returns how many it carries.
    fn read(&mut self, option: &'r ca::Option, at: &str) -> Result<usize, BadRequest> {
        if option.pod_bytes.is_empty() {
            for (j, p) in option.pod.iter().enumerate() {
                let meta = p.metadata.as_ref();
                let name = meta.and_then(|m| m.name.clone()).unwrap_or_default();
                let namespace = meta.and_then(|m| m.namespace.clone()).unwrap_or_else(|| "default".into());
                if !self.by_name.contains_key(&(namespace, name)) {
                    self.add(pending(&objects::pod(p), &format!("{at}.pod[{j}]"))?);
                }
            }
            return Ok(option.pod.len());
        }
        for (j, bytes) in option.pod_bytes.iter().enumerate() {
            if !self.bytes_seen.insert(bytes.as_slice()) {
                continue;
            }
            let field = format!("{at}.podBytes[{j}]");
            let pod: pb::Pod =
                objects::decode(bytes).map_err(|e| bad(&field, format!("not a protobuf v1.Pod: {e}")))?;
            self.add(pending(&objects::pod(&pod), &field)?);
        }
        Ok(option.pod_bytes.len())
    }

    fn add(&mut self, (pod, per_node): (PendingPod, Option<u32>)) {
        if let Some((owner, max)) = pod.owner.clone().zip(per_node) {
            let limit = self.per_node.entry(owner).or_insert(max);
            *limit = (*limit).min(max);
        }
        self.by_name.entry((pod.namespace.clone(), pod.name.clone())).or_insert(pod);
    }
}

/// The template node of `group` (`nodeBytesMap`, else the deprecated `nodeMap`), with the
/// field it came from.
fn template(request: &ca::BestOptionsRequest, group: &str, at: &str) -> Result<(core::Node, String), BadRequest> {
    if let Some(bytes) = request.node_bytes_map.get(group) {
        let field = format!("nodeBytesMap[{group}]");
        let node: pb::Node = objects::decode(bytes).map_err(|e| bad(&field, format!("not a protobuf v1.Node: {e}")))?;
        return Ok((objects::node(&node), field));
    }
    match request.node_map.get(group) {
        Some(node) => Ok((objects::node(node), format!("nodeMap[{group}]"))),
        None => {
            Err(bad(format!("{at}.nodeGroupId"), format!("'{group}' has no template node in nodeBytesMap or nodeMap")))
        }
    }
}

/// The pod as policies see it, and how many like it a node may run if it says.
fn pending(pod: &core::Pod, field: &str) -> Result<(PendingPod, Option<u32>), BadRequest> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref().ok_or_else(|| bad(format!("{field}.spec"), "missing"))?;
    let requests = convert::requests(spec)
        .map_err(|b| bad(format!("{field}.{}", b.field), format!("'{}': {}", b.value, b.error)))?;
    let template = convert::template(meta, spec);
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let owner = controller(meta).map(|(kind, name)| WorkloadRef { kind, namespace: namespace.clone(), name });
    let per_node =
        crate::kubernetes::per_node::of_pod(meta.labels.as_ref().unwrap_or(&BTreeMap::new()), spec, &namespace);
    let pod = PendingPod {
        name: meta.name.clone().ok_or_else(|| bad(format!("{field}.metadata.name"), "missing"))?,
        namespace,
        requests,
        owner,
        node_selector: template.node_selector,
        affinity_keys: template.affinity_keys,
        tolerations: template.tolerations,
        age_seconds: 0,
    };
    Ok((pod, per_node))
}

fn label<'a>(node: &'a core::Node, key: &str) -> Option<&'a str> {
    node.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The group a template node stands for.
fn node_group(id: &str, room: u32, node: &core::Node, field: &str, pricing: &Pricing) -> Result<NodeGroup, BadRequest> {
    let status = node.status.as_ref();
    let resources = |list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
                     at: &str| {
        convert::resources(list, at)
            .map_err(|b| bad(format!("{field}.{}", b.field), format!("'{}': {}", b.value, b.error)))
    };
    let capacity = resources(status.and_then(|s| s.capacity.as_ref()), "status.capacity")?;
    let allocatable = resources(status.and_then(|s| s.allocatable.as_ref()), "status.allocatable")?;
    if allocatable.cpu_millis == 0 || allocatable.memory_bytes == 0 {
        return Err(bad(
            format!("{field}.status.allocatable"),
            "no cpu or no memory: the template node cannot hold a pod",
        ));
    }
    let name = label(node, "node.kubernetes.io/instance-type")
        .or_else(|| label(node, "beta.kubernetes.io/instance-type"))
        .ok_or_else(|| bad(format!("{field}.metadata.labels"), "no node.kubernetes.io/instance-type label"))?;
    let gib = capacity.memory_bytes as f64 / f64::from(1u32 << 30);
    let (mut price, _) = pricing.on_demand.on_demand(name, capacity.cpu_millis.div_ceil(1000), gib);
    let mut labels = node.metadata.labels.clone().unwrap_or_default();
    if is_spot(&labels) {
        price *= pricing.spot_ratio;
        // Policies read one spelling (the Rust SDK's NodeGroup::capacity_type).
        labels.insert(CAPACITY_TYPE_LABEL.into(), "SPOT".into());
    }
    Ok(NodeGroup {
        id: id.to_string(),
        kind: NodeGroupKind::Asg,
        min_size: 0,
        max_size: room,
        desired_size: 0,
        ready_nodes: 0,
        instance_types: vec![InstanceType { name: name.to_string(), capacity, allocatable, price_per_hour: price }],
        zones: labels.get("topology.kubernetes.io/zone").into_iter().cloned().collect(),
        taints: convert::taints(node),
        labels,
    })
}

/// Spot by EKS's label (`SPOT`) or Karpenter's (`spot`), as templates carry it.
fn is_spot(labels: &BTreeMap<String, String>) -> bool {
    labels.get(CAPACITY_TYPE_LABEL).is_some_and(|v| v == "SPOT")
        || labels.get("karpenter.sh/capacity-type").is_some_and(|v| v == "spot")
}

//! Kubernetes objects as Cluster Autoscaler sends them (protobuf: embedded messages in the
//! deprecated fields, serialised bytes in the newer ones), turned into k8s-openapi objects
//! with the fields the snapshot needs, so that the Kubernetes adapter's conversions
//! (requests, tolerations, taints, allocatable) apply unchanged.

use std::collections::{BTreeMap, HashMap};

use ballast_proto::k8s::io::api::core::v1 as pb;
use ballast_proto::k8s::io::apimachinery::pkg::api::resource::Quantity as PbQuantity;
use ballast_proto::k8s::io::apimachinery::pkg::apis::meta::v1 as pbmeta;
use ballast_proto::k8s::io::apimachinery::pkg::runtime::Unknown;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use prost::Message;

/// What precedes an object in Kubernetes' protobuf wire encoding (then a `runtime.Unknown`).
const ENVELOPE_MAGIC: &[u8] = b"k8s\0";

/// One serialised object: bare protobuf (as CA's `podBytes` and `nodeBytesMap` carry it), or
/// wrapped in Kubernetes' envelope (as the API server sends it), which is unwrapped.
///
/// # Errors
/// Bytes that are not a protobuf `M`, with prost's reason.
pub fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, String> {
    let bare = match bytes.strip_prefix(ENVELOPE_MAGIC) {
        Some(wrapped) => Unknown::decode(wrapped)
            .map_err(|e| format!("a Kubernetes envelope that does not decode: {e}"))?
            .raw
            .unwrap_or_default(),
        None => bytes.to_vec(),
    };
    M::decode(bare.as_slice()).map_err(|e| e.to_string())
}

fn quantities(list: &HashMap<String, PbQuantity>) -> Option<BTreeMap<String, Quantity>> {
    (!list.is_empty())
        .then(|| list.iter().map(|(k, q)| (k.clone(), Quantity(q.string.clone().unwrap_or_default()))).collect())
}

fn strings(map: &HashMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn meta(m: Option<&pbmeta::ObjectMeta>) -> ObjectMeta {
    let Some(m) = m else { return ObjectMeta::default() };
    let owners: Vec<OwnerReference> = m
        .owner_references
        .iter()
        .map(|o| OwnerReference {
            api_version: o.api_version.clone().unwrap_or_default(),
            kind: o.kind.clone().unwrap_or_default(),
            name: o.name.clone().unwrap_or_default(),
            uid: o.uid.clone().unwrap_or_default(),
            controller: o.controller,
            block_owner_deletion: None,
        })
        .collect();
    ObjectMeta {
        name: m.name.clone(),
        generate_name: m.generate_name.clone(),
        namespace: m.namespace.clone(),
        labels: strings(&m.labels),
        annotations: strings(&m.annotations),
        owner_references: (!owners.is_empty()).then_some(owners),
        ..ObjectMeta::default()
    }
}

pub fn node(n: &pb::Node) -> core::Node {
    let spec = n.spec.as_ref().map(|s| core::NodeSpec {
        pod_cidr: s.pod_cidr.clone(),
        provider_id: s.provider_id.clone(),
        unschedulable: s.unschedulable,
        taints: (!s.taints.is_empty()).then(|| {
            s.taints
                .iter()
                .map(|t| core::Taint {
                    key: t.key.clone().unwrap_or_default(),
                    value: t.value.clone(),
                    effect: t.effect.clone().unwrap_or_default(),
                    time_added: None,
                })
                .collect()
        }),
        ..core::NodeSpec::default()
    });
    let status = n.status.as_ref().map(|s| core::NodeStatus {
        capacity: quantities(&s.capacity),
        allocatable: quantities(&s.allocatable),
        ..core::NodeStatus::default()
    });
    core::Node { metadata: meta(n.metadata.as_ref()), spec, status }
}

fn container(c: &pb::Container) -> core::Container {
    core::Container {
        name: c.name.clone().unwrap_or_default(),
        resources: c.resources.as_ref().map(requirements),
        restart_policy: c.restart_policy.clone(),
        ..core::Container::default()
    }
}

fn requirements(r: &pb::ResourceRequirements) -> core::ResourceRequirements {
    core::ResourceRequirements { limits: quantities(&r.limits), requests: quantities(&r.requests), claims: None }
}

fn selector(s: &pbmeta::LabelSelector) -> LabelSelector {
    let expressions: Vec<LabelSelectorRequirement> = s
        .match_expressions
        .iter()
        .map(|e| LabelSelectorRequirement {
            key: e.key.clone().unwrap_or_default(),
            operator: e.operator.clone().unwrap_or_default(),
            values: Some(e.values.clone()),
        })
        .collect();
    LabelSelector {
        match_labels: strings(&s.match_labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    }
}

fn strings_list(list: &[String]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| list.to_vec())
}

/// The required anti-affinity terms: what keeps a pod off a node (see
/// [`crate::kubernetes::per_node`]).
fn anti_affinity(a: &pb::PodAntiAffinity) -> core::PodAntiAffinity {
    let term = |t: &pb::PodAffinityTerm| core::PodAffinityTerm {
        label_selector: t.label_selector.as_ref().map(selector),
        namespaces: strings_list(&t.namespaces),
        topology_key: t.topology_key.clone().unwrap_or_default(),
        namespace_selector: t.namespace_selector.as_ref().map(selector),
        match_label_keys: strings_list(&t.match_label_keys),
        mismatch_label_keys: strings_list(&t.mismatch_label_keys),
    };
    core::PodAntiAffinity {
        required_during_scheduling_ignored_during_execution: (!a
            .required_during_scheduling_ignored_during_execution
            .is_empty())
        .then(|| a.required_during_scheduling_ignored_during_execution.iter().map(term).collect()),
        preferred_during_scheduling_ignored_during_execution: None,
    }
}

fn affinity(a: &pb::Affinity) -> core::Affinity {
    let required =
        a.node_affinity.as_ref().and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    core::Affinity {
        pod_anti_affinity: a.pod_anti_affinity.as_ref().map(anti_affinity),
        node_affinity: required.map(|r| core::NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(core::NodeSelector {
                node_selector_terms: r
                    .node_selector_terms
                    .iter()
                    .map(|t| core::NodeSelectorTerm {
                        match_expressions: Some(
                            t.match_expressions
                                .iter()
                                .map(|e| core::NodeSelectorRequirement {
                                    key: e.key.clone().unwrap_or_default(),
                                    operator: e.operator.clone().unwrap_or_default(),
                                    values: Some(e.values.clone()),
                                })
                                .collect(),
                        ),
                        match_fields: None,
                    })
                    .collect(),
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..core::Affinity::default()
    }
}

fn toleration(t: &pb::Toleration) -> core::Toleration {
    core::Toleration {
        key: t.key.clone(),
        operator: t.operator.clone(),
        value: t.value.clone(),
        effect: t.effect.clone(),
        toleration_seconds: t.toleration_seconds,
    }
}

pub fn pod(p: &pb::Pod) -> core::Pod {
    let spec = p.spec.as_ref().map(|s| core::PodSpec {
        containers: s.containers.iter().map(container).collect(),
        init_containers: (!s.init_containers.is_empty()).then(|| s.init_containers.iter().map(container).collect()),
        node_selector: strings(&s.node_selector),
        node_name: s.node_name.clone(),
        affinity: s.affinity.as_ref().map(affinity),
        tolerations: (!s.tolerations.is_empty()).then(|| s.tolerations.iter().map(toleration).collect()),
        priority: s.priority,
        overhead: quantities(&s.overhead),
        resources: s.resources.as_ref().map(requirements),
        ..core::PodSpec::default()
    });
    core::Pod { metadata: meta(p.metadata.as_ref()), spec, status: None }
}

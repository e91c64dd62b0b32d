//! CapacityBuffer (`autoscaling.x-k8s.io/v1beta1`), the resource Cluster Autoscaler and
//! Karpenter share for spare room kept for pods that do not exist yet, read as its spec says.
//!
//! The spec is read by hand from JSON rather than by serde into typed fields, so that a
//! value that does not read names its field and value (and the rest of the cluster is still
//! watched) instead of failing the whole watch event.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ballast_engine::buffer::{BufferLimits, BufferSize};
use ballast_engine::unreadable::BadValue;
use ballast_sdk::{WorkloadKind, WorkloadRef};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

pub mod status;

/// The provisioning strategy Ballast keeps room for; the CRD's default.
pub const ACTIVE_CAPACITY: &str = "buffer.x-k8s.io/active-capacity";

/// A CapacityBuffer object as watched: its metadata, and its spec and status unread.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CapacityBufferObject {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<Value>,
    #[serde(default)]
    pub status: Option<Value>,
}

impl kube::Resource for CapacityBufferObject {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "CapacityBuffer".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "autoscaling.x-k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1beta1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "capacitybuffers".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Where a buffer's pods take their shape from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeSource {
    /// `spec.podTemplateRef.name`: a PodTemplate in the buffer's namespace.
    PodTemplate(String),
    /// `spec.scalableRef`: a workload in the buffer's namespace, whose replicas a
    /// `percentage` counts from.
    Workload(WorkloadRef),
}

/// What a buffer's spec asks for, read: where its pods' shape comes from, and how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferSpec {
    pub source: ShapeSource,
    pub size: BufferSize,
}

impl BufferSpec {
    /// Reads a buffer's spec. `Ok(None)`: a strategy other than active capacity, which
    /// another controller keeps.
    ///
    /// # Errors
    /// The first field that does not read, e.g. `spec.replicas` = `"five"`, or a buffer that
    /// names neither a PodTemplate nor a workload (or both).
    pub fn read(spec: &Value) -> Result<Option<BufferSpec>, BadValue> {
        let strategy = text(spec, "provisioningStrategy")?;
        if strategy.is_some_and(|s| s != ACTIVE_CAPACITY) {
            return Ok(None);
        }
        let template = spec.get("podTemplateRef").map(|r| text(r, "name").map_err(|b| b.under("podTemplateRef")));
        let workload = spec.get("scalableRef").map(workload);
        let source = match (template.transpose()?.flatten(), workload.transpose()?) {
            (Some(name), None) => ShapeSource::PodTemplate(name.to_string()),
            (None, Some(workload)) => ShapeSource::Workload(workload),
            (template, _) => {
                let set = if template.is_some() { "both" } else { "neither" };
                return Err(bad("podTemplateRef|scalableRef", set, "a buffer names exactly one of them"));
            }
        };
        let percentage = count(spec, "percentage")?;
        if percentage.is_some() && matches!(source, ShapeSource::PodTemplate(_)) {
            return Err(bad("percentage", &shown(&spec["percentage"]), "a percentage needs a scalableRef"));
        }
        let size = BufferSize { replicas: count(spec, "replicas")?, percentage, limits: limits(spec)? };
        if size.is_empty() {
            let error = "a buffer sets replicas, percentage (with a scalableRef) or limits";
            return Err(bad("replicas", "", error));
        }
        Ok(Some(BufferSpec { source, size }))
    }
}

fn bad(field: &str, value: &str, error: &str) -> BadValue {
    BadValue { field: field.to_string(), value: value.to_string(), error: error.to_string() }
}

/// A JSON value as a user wrote it: a string without its quotes.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string field, if present.
fn text<'a>(object: &'a Value, field: &str) -> Result<Option<&'a str>, BadValue> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad(field, &shown(other), "not a string")),
    }
}

/// A non-negative whole number, if present.
fn count(object: &Value, field: &str) -> Result<Option<u32>, BadValue> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(field, &shown(value), "not a whole number of 0 or more")),
    }
}

/// `spec.scalableRef`: a workload kind Ballast watches, by name.
fn workload(reference: &Value) -> Result<WorkloadRef, BadValue> {
    let under = |b: BadValue| b.under("scalableRef");
    let name = text(reference, "name").map_err(under)?.unwrap_or_default();
    if name.is_empty() {
        return Err(bad("scalableRef.name", "", "a scalableRef names its workload"));
    }
    let kind = match text(reference, "kind").map_err(under)? {
        Some("Deployment") => WorkloadKind::Deployment,
        Some("StatefulSet") => WorkloadKind::StatefulSet,
        Some("ReplicaSet") => WorkloadKind::ReplicaSet,
        Some("Job") => WorkloadKind::Job,
        other => {
            return Err(bad(
                "scalableRef.kind",
                other.unwrap_or_default(),
                "not a workload kind Ballast watches: Deployment, StatefulSet, ReplicaSet or Job",
            ));
        }
    };
    Ok(WorkloadRef { kind, namespace: String::new(), name: name.to_string() })
}

/// `spec.limits`: CPU and memory, each a quantity.
fn limits(spec: &Value) -> Result<BufferLimits, BadValue> {
    let Some(list) = spec.get("limits").filter(|l| !l.is_null()) else { return Ok(BufferLimits::default()) };
    let list: BTreeMap<String, Quantity> =
        serde_json::from_value(list.clone()).map_err(|error| bad("limits", &list.to_string(), &error.to_string()))?;
    let read = crate::convert::resources(Some(&list), "limits")?;
    Ok(BufferLimits {
        cpu_millis: list.contains_key("cpu").then_some(read.cpu_millis),
        memory_bytes: list.contains_key("memory").then_some(read.memory_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(spec: Value) -> Result<Option<BufferSpec>, String> {
        BufferSpec::read(&spec).map_err(|b| b.to_string())
    }

    #[test]
    fn a_template_buffer_names_its_pod_template_and_another_strategy_is_not_ours() {
        let got = read(json!({"podTemplateRef": {"name": "spare"}, "replicas": 3})).unwrap().unwrap();
        assert_eq!(got.source, ShapeSource::PodTemplate("spare".into()));
        assert_eq!(got.size, BufferSize { replicas: Some(3), ..BufferSize::default() });
        let capped = read(json!({"podTemplateRef": {"name": "spare"}, "limits": {"cpu": "6", "memory": "12Gi"}}));
        let limits = capped.unwrap().unwrap().size.limits;
        assert_eq!((limits.cpu_millis, limits.memory_bytes), (Some(6000), Some(12 << 30)));
        let other = json!({"provisioningStrategy": "buffer.x-k8s.io/standby", "podTemplateRef": {"name": "spare"}});
        assert_eq!(read(other).unwrap(), None);
    }

    #[test]
    fn a_spec_that_does_not_read_names_the_field_and_value() {
        let err = |s: Value| read(s).unwrap_err();
        assert_eq!(
            err(json!({"podTemplateRef": {"name": "spare"}, "replicas": "five"})),
            r#"replicas = "five" cannot be read (not a whole number of 0 or more)"#
        );
        assert!(err(json!({"podTemplateRef": {"name": "spare"}, "replicas": -1})).starts_with("replicas = \"-1\""));
        assert!(
            err(json!({"scalableRef": {"kind": "CronJob", "name": "etl"}}))
                .starts_with("scalableRef.kind = \"CronJob\"")
        );
        assert_eq!(
            err(json!({"replicas": 2})),
            r#"podTemplateRef|scalableRef = "neither" cannot be read (a buffer names exactly one of them)"#
        );
        assert!(
            err(json!({"podTemplateRef": {"name": "spare"}, "limits": {"cpu": "lots"}}))
                .starts_with("limits.cpu = \"lots\"")
        );
        assert!(err(json!({"podTemplateRef": {"name": "spare"}, "percentage": 10})).starts_with("percentage = \"10\""));
        assert!(err(json!({"podTemplateRef": {"name": "spare"}})).contains("a buffer sets replicas, percentage"));
    }
}

//! CapacityBuffer (`autoscaling.x-k8s.io/v1beta1`), the resource Cluster Autoscaler and
//! Karpenter share for spare room kept for pods that do not exist yet, read as its spec says.
//!
//! The spec is read by hand from JSON rather than by serde into typed fields, so that a
//! value that does not read names its field and value (and the rest of the cluster is still
//! watched) instead of failing the whole watch event.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ballast_engine::unreadable::BadValue;
use ballast_sdk::{Resources, WorkloadKind, WorkloadRef};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

/// The provisioning strategy Ballast keeps room for; the CRD's default.
pub const ACTIVE_CAPACITY: &str = "buffer.x-k8s.io/active-capacity";

/// A CapacityBuffer object as watched: its metadata and its spec, unread.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CapacityBufferObject {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<Value>,
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

/// What a buffer's spec asks for, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferSpec {
    pub source: ShapeSource,
    pub replicas: Option<u32>,
    pub percentage: Option<u32>,
    /// Caps on the buffer's total requests; a resource not named is not capped.
    pub limits: Limits,
}

/// `spec.limits`: CPU and memory the buffer's pods may request in all, where set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
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
            (template, workload) => {
                return Err(bad(
                    "podTemplateRef",
                    &format!("{template:?}, scalableRef {:?}", workload.map(|w| w.to_string())),
                    "exactly one of podTemplateRef.name and scalableRef must be set",
                ));
            }
        };
        let percentage = count(spec, "percentage")?;
        if percentage.is_some() && matches!(source, ShapeSource::PodTemplate(_)) {
            return Err(bad("percentage", &shown(&spec["percentage"]), "a percentage needs a scalableRef"));
        }
        Ok(Some(BufferSpec { source, replicas: count(spec, "replicas")?, percentage, limits: limits(spec)? }))
    }

    /// How many pods of `requests` the buffer keeps room for, with `workload_replicas` the
    /// replicas of its scalableRef: the larger of `replicas` and `percentage` of them
    /// (rounded up), capped by what `limits` hold; with neither, as many as `limits` hold;
    /// with nothing set, none.
    pub fn pods(&self, requests: &Resources, workload_replicas: Option<u32>) -> u32 {
        let by_share = self
            .percentage
            .zip(workload_replicas)
            .map(|(percent, replicas)| (u64::from(percent) * u64::from(replicas)).div_ceil(100));
        let wanted = match (self.replicas.map(u64::from), by_share) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let within = |limit: Option<u64>, each: u64| limit.map(|l| l.checked_div(each).unwrap_or(u64::MAX));
        let held = match (
            within(self.limits.cpu_millis, requests.cpu_millis),
            within(self.limits.memory_bytes, requests.memory_bytes),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let pods = match (wanted, held) {
            (Some(w), Some(h)) => w.min(h),
            (w, h) => w.or(h).unwrap_or(0),
        };
        u32::try_from(pods).unwrap_or(u32::MAX)
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
fn limits(spec: &Value) -> Result<Limits, BadValue> {
    let Some(list) = spec.get("limits").filter(|l| !l.is_null()) else { return Ok(Limits::default()) };
    let list: BTreeMap<String, Quantity> =
        serde_json::from_value(list.clone()).map_err(|error| bad("limits", &list.to_string(), &error.to_string()))?;
    let read = crate::convert::resources(Some(&list), "limits")?;
    Ok(Limits {
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

    fn pod(cpu_millis: u64, memory_bytes: u64) -> Resources {
        Resources { cpu_millis, memory_bytes, pods: 1, gpus: 0 }
    }

    const GI: u64 = 1 << 30;

    #[test]
    fn the_sizing_rules_cluster_autoscaler_and_karpenter_document() {
        let spec = |s: Value| read(s).unwrap().unwrap();
        let web = json!({"scalableRef": {"apiGroup": "apps", "kind": "Deployment", "name": "web"}});
        let with = |extra: Value| {
            let mut s = web.clone();
            s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            spec(s)
        };
        let one_cpu = pod(1000, GI);
        assert_eq!(with(json!({"replicas": 5})).pods(&one_cpu, Some(10)), 5);
        assert_eq!(with(json!({"percentage": 20})).pods(&one_cpu, Some(10)), 2);
        assert_eq!(with(json!({"percentage": 20})).pods(&one_cpu, Some(24)), 5, "4.8 rounds up");
        assert_eq!(with(json!({"replicas": 5, "percentage": 80})).pods(&one_cpu, Some(10)), 8);
        assert_eq!(with(json!({"replicas": 10, "limits": {"cpu": "3"}})).pods(&one_cpu, Some(10)), 3);
        assert_eq!(with(json!({"limits": {"cpu": "5"}})).pods(&one_cpu, Some(10)), 5);
        assert_eq!(with(json!({"replicas": 10, "limits": {"cpu": "20", "memory": "4Gi"}})).pods(&one_cpu, None), 4);
        assert_eq!(with(json!({})).pods(&one_cpu, Some(10)), 0, "nothing asked");
    }

    #[test]
    fn a_template_buffer_names_its_pod_template_and_another_strategy_is_not_ours() {
        let got = read(json!({"podTemplateRef": {"name": "spare"}, "replicas": 3})).unwrap().unwrap();
        assert_eq!(got.source, ShapeSource::PodTemplate("spare".into()));
        assert_eq!(got.replicas, Some(3));
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
        assert!(err(json!({"replicas": 2})).contains("exactly one of podTemplateRef.name and scalableRef"));
        assert!(
            err(json!({"podTemplateRef": {"name": "spare"}, "limits": {"cpu": "lots"}}))
                .starts_with("limits.cpu = \"lots\"")
        );
        assert!(err(json!({"podTemplateRef": {"name": "spare"}, "percentage": 10})).starts_with("percentage = \"10\""));
    }
}

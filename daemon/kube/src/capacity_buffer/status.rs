//! What Ballast says on the CapacityBuffers it keeps room for, in the fields Cluster
//! Autoscaler's buffer controller fills, so `kubectl get capacitybuffers` reads the same
//! under either: `status.replicas` (the pods room is kept for), `status.podTemplateRef`,
//! `status.provisioningStrategy` and the `ReadyForProvisioning` condition, `False` with the
//! reason when the buffer keeps no room.

use std::sync::atomic::Ordering;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::{ACTIVE_CAPACITY, CapacityBufferObject};
use crate::KubeCluster;
use crate::store::StatusPatch;

/// The condition Ballast keeps on each buffer it reads, as CA names it.
pub const READY_FOR_PROVISIONING: &str = "ReadyForProvisioning";
/// The condition's reason when the buffer keeps room (CA's word for it).
pub const ROOM_KEPT: &str = "AttributesSetSuccessfully";
/// Its reason when the spec does not read: the message names the field and value.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Its reason when the PodTemplate or workload the buffer names is not there (or its pods
/// request nothing), so its pods have no shape yet.
pub const SHAPE_UNKNOWN: &str = "PodShapeUnknown";

/// What Ballast makes of one buffer, to be said in its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferReport {
    /// The pods room is kept for, or why none is.
    pub kept: Result<u32, Unresolved>,
    /// The PodTemplate the spec names, if it names one.
    pub template: Option<String>,
}

/// Why a buffer keeps no room: the condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    pub reason: &'static str,
    pub message: String,
}

/// A buffer as the API last showed it: its status, and what a write must name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub status: Option<Value>,
    pub generation: Option<i64>,
    pub resource_version: Option<String>,
}

/// The merge patch of the `status` subresource that makes `observed` say `report`, or
/// `None` when it says so already. `at` is the time a changed condition is stamped with.
///
/// # Guarantees
/// - Conditions of other types (another controller's) are kept, and the ready condition's
///   `lastTransitionTime` moves only when its status does.
/// - The patch names the `resourceVersion` it was made from, so a write that races
///   another writer is refused (409) instead of dropping what that writer added.
pub fn patch(observed: &Observed, report: &BufferReport, at: &str) -> Option<Value> {
    let status = observed.status.as_ref();
    let field = |pointer: &str| status.and_then(|s| s.pointer(pointer));
    let replicas = report.kept.as_ref().ok().copied();
    let mut ready = ready_condition(report, observed.generation);
    let conditions: Vec<&Value> =
        field("/conditions").and_then(Value::as_array).map(|c| c.iter().collect()).unwrap_or_default();
    let (existing, others): (Vec<&Value>, Vec<&Value>) =
        conditions.into_iter().partition(|c| c.get("type").and_then(Value::as_str) == Some(READY_FOR_PROVISIONING));
    let existing = existing.first().copied();
    let says_ready = existing.is_some_and(|c| {
        ["status", "reason", "message", "observedGeneration"].iter().all(|k| c.get(k) == ready.get(k))
    });
    let unchanged = says_ready
        && field("/replicas").and_then(Value::as_u64) == replicas.map(u64::from)
        && field("/podTemplateRef/name").and_then(Value::as_str) == report.template.as_deref()
        && field("/provisioningStrategy").and_then(Value::as_str) == Some(ACTIVE_CAPACITY);
    if unchanged {
        return None;
    }
    let since = existing
        .filter(|c| c.get("status") == ready.get("status"))
        .and_then(|c| c.get("lastTransitionTime"))
        .cloned()
        .unwrap_or_else(|| json!(at));
    ready["lastTransitionTime"] = since;
    let mut conditions: Vec<Value> = others.into_iter().cloned().collect();
    conditions.push(ready);
    let mut patch = json!({"status": {
        "replicas": replicas,
        "podTemplateRef": report.template.as_ref().map(|name| json!({"name": name})),
        "provisioningStrategy": ACTIVE_CAPACITY,
        "conditions": conditions,
    }});
    if let Some(version) = &observed.resource_version {
        patch["metadata"] = json!({"resourceVersion": version});
    }
    Some(patch)
}

impl KubeCluster {
    /// Writes the status of each buffer whose status does not say what Ballast makes of it
    /// now, and takes each written buffer into the cache at once (so the next tick does
    /// not write it again before its watch event arrives).
    ///
    /// # Caveats
    /// Best effort: a write refused because the buffer changed (409) waits for the next
    /// tick; one refused for want of permission (403) is warned about once.
    pub(crate) async fn write_buffer_statuses(&self, at_millis: u64) {
        let at = jiff::Timestamp::from_second(i64::try_from(at_millis / 1000).unwrap_or(i64::MAX))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_string();
        let patches = self.inner.feed.read().buffer_status_patches(&at);
        for StatusPatch { namespace, name, patch } in patches {
            let api = Api::<CapacityBufferObject>::namespaced(self.client().clone(), &namespace);
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(written) => self.inner.feed.write().apply_capacity_buffer(&written),
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                    tracing::debug!(buffer = %format_args!("{namespace}/{name}"), code = s.code, "buffer changed or gone; its status waits for the next tick");
                }
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    if !self.inner.buffer_status_refused.swap(true, Ordering::Relaxed) {
                        tracing::warn!(message = %s.message, "not allowed to write CapacityBuffer status (capacitybuffers/status patch); buffers keep their room, their status is not written");
                    }
                }
                Err(error) => {
                    tracing::warn!(buffer = %format_args!("{namespace}/{name}"), %error, "cannot write a CapacityBuffer's status; tried again next tick")
                }
            }
        }
    }
}

/// The `ReadyForProvisioning` condition a report comes to, without its time.
fn ready_condition(report: &BufferReport, generation: Option<i64>) -> Value {
    let (status, reason, message) = match &report.kept {
        Ok(pods) => ("True", ROOM_KEPT, format!("room kept for {pods} pod(s)")),
        Err(why) => ("False", why.reason, why.message.clone()),
    };
    let mut condition = json!({"type": READY_FOR_PROVISIONING, "status": status, "reason": reason, "message": message});
    if let Some(generation) = generation {
        condition["observedGeneration"] = json!(generation);
    }
    condition
}

#[cfg(test)]
mod tests {
    use super::*;

    const EARLIER: &str = "2026-11-28T10:00:00Z";
    const NOW: &str = "2026-11-28T12:00:00Z";

    fn kept(pods: u32) -> BufferReport {
        BufferReport { kept: Ok(pods), template: Some("spare".into()) }
    }

    fn observed(status: Option<Value>) -> Observed {
        Observed { status, generation: Some(2), resource_version: Some("41".into()) }
    }

    /// The status a patch leaves, as the API server would store it.
    fn applied(observed: &Observed, patch: &Value) -> Observed {
        let mut status = patch["status"].clone();
        if let Some(fields) = status.as_object_mut() {
            fields.retain(|_, v| !v.is_null());
        }
        Observed { status: Some(status), ..observed.clone() }
    }

    #[test]
    fn a_new_buffer_gets_its_replicas_template_strategy_and_ready_condition() {
        let patch = patch(&observed(None), &kept(3), NOW).expect("a buffer without status is written");
        assert_eq!(patch["metadata"]["resourceVersion"], "41", "the write names what it was made from");
        let status = &patch["status"];
        assert_eq!(status["replicas"], 3);
        assert_eq!(status["podTemplateRef"]["name"], "spare");
        assert_eq!(status["provisioningStrategy"], ACTIVE_CAPACITY);
        let ready = &status["conditions"][0];
        assert_eq!((ready["type"].as_str(), ready["status"].as_str()), (Some(READY_FOR_PROVISIONING), Some("True")));
        assert_eq!((ready["reason"].as_str(), ready["lastTransitionTime"].as_str()), (Some(ROOM_KEPT), Some(NOW)));
        assert_eq!(ready["observedGeneration"], 2);
    }

    #[test]
    fn a_status_that_already_says_it_is_not_written_again() {
        let before = observed(None);
        let written = applied(&before, &patch(&before, &kept(3), EARLIER).unwrap());
        assert_eq!(patch(&written, &kept(3), NOW), None, "nothing changed: no write");
        let grown = patch(&written, &kept(5), NOW).expect("a new size is written");
        assert_eq!(grown["status"]["replicas"], 5);
        let ready = &grown["status"]["conditions"][0];
        assert_eq!(ready["lastTransitionTime"], EARLIER, "still ready: the transition time stays");
        let newer = Observed { generation: Some(3), ..written };
        assert!(patch(&newer, &kept(3), NOW).is_some(), "a new generation is acknowledged");
    }

    #[test]
    fn a_buffer_that_keeps_no_room_says_why_and_keeps_other_controllers_conditions() {
        let theirs = json!({"type": "LimitedByQuotas", "status": "False", "reason": "ResourceQuotasAllocated",
            "message": "", "lastTransitionTime": EARLIER});
        let before = observed(Some(json!({"replicas": 3, "conditions": [theirs, {"type": READY_FOR_PROVISIONING,
            "status": "True", "reason": ROOM_KEPT, "message": "room kept for 3 pod(s)", "lastTransitionTime": EARLIER}]})));
        let why = Unresolved { reason: INVALID_SPEC, message: r#"spec.replicas = "five" cannot be read"#.into() };
        let patch = patch(&before, &BufferReport { kept: Err(why), template: None }, NOW).unwrap();
        let status = &patch["status"];
        assert!(status["replicas"].is_null() && status["podTemplateRef"].is_null(), "cleared: {status}");
        assert_eq!(status["conditions"][0], theirs, "another controller's condition is kept");
        let ready = &status["conditions"][1];
        assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("False"), Some(INVALID_SPEC)));
        assert_eq!(ready["message"], r#"spec.replicas = "five" cannot be read"#);
        assert_eq!(ready["lastTransitionTime"], NOW, "ready to not ready is a transition");
    }
}

//! CapacityBuffers in the cache, and the PodTemplates they name: each buffer resolved, when
//! a view is built, to the room it asks for (its pods' shape from its PodTemplate or its
//! workload's pod template, its size from its workload's replicas as they are then), and
//! to the status that says so.

use std::sync::atomic::{AtomicBool, Ordering};

use ballast_engine::ports::PodTemplate;
use ballast_sdk::{CapacityBuffer, Resources};
use k8s_openapi::api::core::v1::PodTemplate as PodTemplateObject;
use serde_json::Value;

use super::{ClusterStore, Key, convert, key, kinds};
use crate::capacity_buffer::status::{self, BufferReport, Observed, Unresolved};
use crate::capacity_buffer::{BufferSpec, CapacityBufferObject, ShapeSource};

pub(super) struct BufferEntry {
    /// The spec read, or what in it does not read (its field and value).
    spec: Result<BufferSpec, String>,
    /// The buffer as the API last showed it, for its status.
    observed: Observed,
    /// Whether the log has said why the buffer is not resolved; once per spec read.
    warned: AtomicBool,
}

/// A PodTemplate's pods, read.
pub(super) struct TemplateEntry {
    requests: Resources,
    template: PodTemplate,
}

/// A buffer's pods: what each requests, where it may go, and the replicas its size counts
/// a percentage of.
struct BufferPods {
    requests: Resources,
    template: PodTemplate,
    workload_replicas: Option<u32>,
}

/// A status to write: the buffer's namespace and name, and the merge patch.
pub struct StatusPatch {
    pub namespace: String,
    pub name: String,
    pub patch: Value,
}

impl ClusterStore {
    /// A CapacityBuffer. One whose spec does not read is reported as unreadable and keeps no
    /// room; one of another provisioning strategy is another controller's.
    pub fn apply_capacity_buffer(&mut self, buffer: &CapacityBufferObject) {
        let key = key(&buffer.metadata);
        self.seen(kinds::CAPACITY_BUFFERS, &key);
        let previous = self.buffers.remove(&key);
        let object = format!("CapacityBuffer {}/{}", key.0, key.1);
        let spec = match BufferSpec::read(&buffer.spec.clone().unwrap_or_default()) {
            Ok(Some(mut spec)) => {
                if let ShapeSource::Workload(workload) = &mut spec.source {
                    workload.namespace = key.0.clone();
                }
                Ok(spec)
            }
            Ok(None) => {
                tracing::debug!(buffer = %object, "another provisioning strategy; not Ballast's to keep");
                return;
            }
            Err(bad) => {
                let bad = bad.under("spec");
                bad.report_to(&self.unreadable, &object);
                Err(bad.to_string())
            }
        };
        let observed = Observed {
            status: buffer.status.clone(),
            generation: buffer.metadata.generation,
            resource_version: buffer.metadata.resource_version.clone(),
        };
        // Said once per spec: not again when only the status changed (Ballast's own write).
        let warned = previous.is_some_and(|p| p.spec == spec && p.warned.load(Ordering::Relaxed));
        self.buffers.insert(key, BufferEntry { spec, observed, warned: AtomicBool::new(warned) });
    }

    /// A PodTemplate, which a CapacityBuffer may name. One whose requests do not read is
    /// reported as unreadable and resolves no buffer.
    pub fn apply_pod_template(&mut self, object: &PodTemplateObject) {
        let key = key(&object.metadata);
        self.seen(kinds::POD_TEMPLATES, &key);
        self.pod_templates.remove(&key);
        let template = object.template.clone().unwrap_or_default();
        let spec = template.spec.unwrap_or_default();
        match convert::requests(&spec) {
            Ok(requests) => {
                let template = convert::template(&template.metadata.unwrap_or_default(), &spec);
                self.pod_templates.insert(key, TemplateEntry { requests, template });
            }
            Err(bad) => {
                let object = format!("PodTemplate {}/{}", key.0, key.1);
                bad.under("template").report_to(&self.unreadable, &object);
            }
        }
    }

    /// The buffers that resolve, with their size now; each that does not is logged once.
    pub(super) fn capacity_buffers(&self) -> Vec<CapacityBuffer> {
        (self.buffers.iter())
            .filter_map(|(key, entry)| match self.resolve(key, entry) {
                Ok(buffer) => Some(buffer),
                Err(why) => {
                    // A spec that does not read is reported as unreadable already.
                    if why.reason == status::SHAPE_UNKNOWN && !entry.warned.swap(true, Ordering::Relaxed) {
                        let why = why.message;
                        tracing::warn!(buffer = %format_args!("{}/{}", key.0, key.1), %why, "CapacityBuffer keeps no room");
                    }
                    None
                }
            })
            .collect()
    }

    /// The status writes that bring each buffer's status to what Ballast makes of it now;
    /// none for a buffer whose status says so already. `at`: an RFC 3339 time for a
    /// condition that changes.
    pub fn buffer_status_patches(&self, at: &str) -> Vec<StatusPatch> {
        (self.buffers.iter())
            .filter_map(|(key, entry)| {
                let template = match &entry.spec {
                    Ok(BufferSpec { source: ShapeSource::PodTemplate(name), .. }) => Some(name.clone()),
                    _ => None,
                };
                let report = BufferReport { kept: self.resolve(key, entry).map(|b| b.pods), template };
                let patch = status::patch(&entry.observed, &report, at)?;
                Some(StatusPatch { namespace: key.0.clone(), name: key.1.clone(), patch })
            })
            .collect()
    }

    /// A buffer's room, or why it keeps none.
    fn resolve(&self, key: &Key, entry: &BufferEntry) -> Result<CapacityBuffer, Unresolved> {
        let spec = (entry.spec.as_ref())
            .map_err(|message| Unresolved { reason: status::INVALID_SPEC, message: message.clone() })?;
        let pods =
            (self.buffer_pods(key, spec)).map_err(|message| Unresolved { reason: status::SHAPE_UNKNOWN, message })?;
        Ok(CapacityBuffer {
            namespace: key.0.clone(),
            name: key.1.clone(),
            pods: spec.size.pods(&pods.requests, pods.workload_replicas),
            requests: pods.requests,
            node_selector: pods.template.node_selector,
            affinity_keys: pods.template.affinity_keys,
            tolerations: pods.template.tolerations,
        })
    }

    /// What the buffer's pods are, or why that is not known.
    fn buffer_pods(&self, (namespace, _): &Key, spec: &BufferSpec) -> Result<BufferPods, String> {
        let pods = match &spec.source {
            ShapeSource::PodTemplate(name) => {
                let entry = (self.pod_templates.get(&(namespace.clone(), name.clone()))).ok_or_else(|| {
                    format!("spec.podTemplateRef.name = {name:?}: no readable PodTemplate {namespace}/{name}")
                })?;
                BufferPods { requests: entry.requests, template: entry.template.clone(), workload_replicas: None }
            }
            ShapeSource::Workload(workload) => {
                let entry = (self.workloads.get(workload))
                    .ok_or_else(|| format!("spec.scalableRef = {workload}: no such workload is watched"))?;
                let template = &entry.template;
                let spec = template.spec.clone().unwrap_or_default();
                BufferPods {
                    requests: entry.requests,
                    template: convert::template(&template.metadata.clone().unwrap_or_default(), &spec),
                    workload_replicas: Some(entry.replicas),
                }
            }
        };
        if pods.requests.cpu_millis == 0 && pods.requests.memory_bytes == 0 {
            return Err("its pods request no CPU and no memory (or their requests do not read)".into());
        }
        Ok(pods)
    }
}

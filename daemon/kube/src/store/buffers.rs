//! CapacityBuffers in the cache, and the PodTemplates they name: each buffer resolved, when
//! a view is built, to the room it asks for (its pods' shape from its PodTemplate or its
//! workload's pod template, its size from its workload's replicas as they are then).

use std::sync::atomic::{AtomicBool, Ordering};

use ballast_engine::ports::PodTemplate;
use ballast_sdk::{CapacityBuffer, Resources};
use k8s_openapi::api::core::v1::PodTemplate as PodTemplateObject;

use super::{ClusterStore, Key, convert, key, kinds};
use crate::capacity_buffer::{BufferSpec, CapacityBufferObject, ShapeSource};

pub(super) struct BufferEntry {
    spec: BufferSpec,
    /// Whether the log has said why the buffer is not resolved; once per version read.
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

impl ClusterStore {
    /// A CapacityBuffer. One whose spec does not read is reported as unreadable and keeps no
    /// room; one of another provisioning strategy is another controller's.
    pub fn apply_capacity_buffer(&mut self, buffer: &CapacityBufferObject) {
        let key = key(&buffer.metadata);
        self.seen(kinds::CAPACITY_BUFFERS, &key);
        self.buffers.remove(&key);
        let object = format!("CapacityBuffer {}/{}", key.0, key.1);
        let spec = buffer.spec.clone().unwrap_or_default();
        match BufferSpec::read(&spec) {
            Ok(Some(mut spec)) => {
                if let ShapeSource::Workload(workload) = &mut spec.source {
                    workload.namespace = key.0.clone();
                }
                self.buffers.insert(key, BufferEntry { spec, warned: AtomicBool::new(false) });
            }
            Ok(None) => tracing::debug!(buffer = %object, "another provisioning strategy; not Ballast's to keep"),
            Err(bad) => bad.under("spec").report_to(&self.unreadable, &object),
        }
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
            .filter_map(|(key, entry)| match self.buffer_pods(key, &entry.spec) {
                Ok(pods) => Some(CapacityBuffer {
                    namespace: key.0.clone(),
                    name: key.1.clone(),
                    pods: entry.spec.size.pods(&pods.requests, pods.workload_replicas),
                    requests: pods.requests,
                    node_selector: pods.template.node_selector,
                    affinity_keys: pods.template.affinity_keys,
                    tolerations: pods.template.tolerations,
                }),
                Err(why) => {
                    if !entry.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(buffer = %format_args!("{}/{}", key.0, key.1), %why, "CapacityBuffer keeps no room");
                    }
                    None
                }
            })
            .collect()
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

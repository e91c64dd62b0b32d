//! What the adapter does to the cluster: cordon, evict, steer a workload's pods, and tell
//! users why through Events.

use ballast_sdk::{PlacementTarget, WorkloadKind, WorkloadRef};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{EvictParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource};
use serde_json::{Value, json};

use super::{KubeCluster, convert};
use ballast_engine::ports::{
    AdapterError, AdapterErrorKind, AdapterResult, Announcement, Clock, Cluster, ClusterView, Eviction, RemovalMark,
    Subject, SystemClock,
};

fn adapter_error(operation: String, error: kube::Error) -> AdapterError {
    let kind = match &error {
        kube::Error::Api(s) if s.code == 404 => AdapterErrorKind::NotFound,
        kube::Error::Api(s) if s.code == 429 => AdapterErrorKind::Throttled,
        kube::Error::Api(s) if s.code == 422 || s.code == 403 => AdapterErrorKind::Refused,
        _ => AdapterErrorKind::Failed,
    };
    AdapterError::new(kind, operation, error.to_string())
}

/// A 429 from the eviction subresource is a PodDisruptionBudget refusing (the usual case)
/// or API priority and fairness throttling; only the first is an answer about the pod.
fn budget_refusal(status: &kube::core::Status) -> Option<String> {
    let causes: Vec<String> = status
        .details
        .as_ref()
        .map(|d| d.causes.iter().filter(|c| c.reason == "DisruptionBudget").map(|c| c.message.clone()).collect())
        .unwrap_or_default();
    let by_message = status.message.contains("disruption budget");
    (!causes.is_empty() || by_message).then(|| {
        if causes.is_empty() { status.message.clone() } else { format!("{} ({})", status.message, causes.join("; ")) }
    })
}

impl KubeCluster {
    /// The template patch that steers future pods: the placement label the Fargate profile
    /// selects on, and the group nodeSelector (set for one EC2 group, removed otherwise),
    /// with the workload's [`convert::PLACED_GROUP`] annotation saying Ballast wrote it.
    /// Running pods move as the workload rolls them.
    ///
    /// # Caveats
    /// A selector its owner wrote is removed too: the guard never sends a workload so pinned
    /// to Fargate ([`convert::pinned_by_owner`]), and "EC2 at large" needs no patch for one
    /// already on EC2, so only a placement in another named group replaces an owner's pin.
    fn placement_patch(&self, target: &PlacementTarget) -> Value {
        let s = self.settings();
        let (value, group) = match target {
            PlacementTarget::Fargate => (&s.fargate_value, None),
            PlacementTarget::Ec2(group) => (&s.ec2_value, group.as_ref()),
        };
        json!({
            "metadata": {"annotations": {convert::PLACED_GROUP: group}},
            "spec": {"template": {
                "metadata": {"labels": {s.placement_label.clone(): value}},
                "spec": {"nodeSelector": {s.group_selector_label.clone(): group}},
            }},
        })
    }

    /// Writes or clears the removal mark and cordons or uncordons, in one merge patch that
    /// carries the resourceVersion read, so a concurrent change to the node's taints is never
    /// overwritten (a conflict fails the call; the next tick tries again).
    async fn set_removal(&self, node: &str, mark: Option<&RemovalMark>) -> AdapterResult<()> {
        let verb = if mark.is_some() { "cordon and mark" } else { "uncordon and unmark" };
        let api = Api::<Node>::all(self.client().clone());
        let current = api.get(node).await.map_err(|e| adapter_error(format!("{verb} {node}"), e))?;
        let mut taints: Vec<Value> = current
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.key != convert::REMOVAL)
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        let (annotation, unschedulable) = match mark {
            Some(mark) => {
                taints.push(json!({"key": convert::REMOVAL, "value": mark.owner, "effect": "NoSchedule"}));
                // An unwritable mark (it cannot be) would read back as unknown and be cleared.
                (Value::String(serde_json::to_string(mark).unwrap_or_default()), json!(true))
            }
            // `null` removes the field, as kubectl uncordon does.
            None => (Value::Null, Value::Null),
        };
        let patch = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version, "annotations": {convert::REMOVAL: annotation}},
            "spec": {"unschedulable": unschedulable, "taints": taints},
        });
        api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| adapter_error(format!("{verb} {node}"), e))
    }

    fn reference(subject: &Subject) -> Option<ObjectReference> {
        let (api_version, kind, namespace, name) = match subject {
            Subject::Node(name) => ("v1", "Node", None, name.clone()),
            Subject::Pod { namespace, name } => ("v1", "Pod", Some(namespace.clone()), name.clone()),
            Subject::Workload(w) => {
                let kind = match w.kind {
                    WorkloadKind::Deployment => "Deployment",
                    WorkloadKind::StatefulSet => "StatefulSet",
                    WorkloadKind::DaemonSet => "DaemonSet",
                    WorkloadKind::ReplicaSet => "ReplicaSet",
                    WorkloadKind::Job => "Job",
                    WorkloadKind::Other => return None,
                };
                let api_version = if w.kind == WorkloadKind::Job { "batch/v1" } else { "apps/v1" };
                (api_version, kind, Some(w.namespace.clone()), w.name.clone())
            }
            // An Auto Scaling group is no Kubernetes object; its decisions are in the records.
            Subject::NodeGroup(_) => return None,
        };
        Some(ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            namespace,
            name: Some(name),
            ..Default::default()
        })
    }

    /// Asks the eviction subresource; a budget's refusal is an answer, not an error.
    async fn request_eviction(&self, api: &Api<Pod>, namespace: &str, pod: &str) -> AdapterResult<Eviction> {
        match api.evict(pod, &EvictParams::default()).await {
            Ok(_) => Ok(Eviction::Evicted),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Eviction::Gone),
            Err(kube::Error::Api(s)) if s.code == 429 && budget_refusal(&s).is_some() => {
                Ok(Eviction::Blocked { reason: budget_refusal(&s).unwrap_or_default() })
            }
            // More than one budget selects the pod: the server refuses every eviction of it.
            Err(kube::Error::Api(s)) if s.code == 500 && s.message.contains("more than one PodDisruptionBudget") => {
                Ok(Eviction::Blocked { reason: s.message.clone() })
            }
            Err(e) => Err(adapter_error(format!("evict {namespace}/{pod}"), e)),
        }
    }
}

async fn patch_template<K>(api: Api<K>, name: &str, patch: &Value) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch)).await.map(|_| ())
}

impl Cluster for KubeCluster {
    async fn observe(&self) -> AdapterResult<ClusterView> {
        let store = self.inner.feed.read();
        let unsynced = store.unsynced();
        if !unsynced.is_empty() {
            return Err(AdapterError::new(
                AdapterErrorKind::Failed,
                "observe the cluster",
                format!("watch caches not synced yet: {}", unsynced.join(", ")),
            ));
        }
        // CronJobs fire by the wall clock.
        Ok(store.view(SystemClock.now_millis()))
    }

    async fn mark_for_removal(&self, node: &str, mark: &RemovalMark) -> AdapterResult<()> {
        self.set_removal(node, Some(mark)).await
    }

    async fn clear_removal(&self, node: &str) -> AdapterResult<()> {
        self.set_removal(node, None).await
    }

    async fn claim_replacement(&self, node: &str, replaced: &str) -> AdapterResult<()> {
        let api = Api::<Node>::all(self.client().clone());
        let patch = json!({"metadata": {"annotations": {convert::REPLACES: replaced}}});
        api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| adapter_error(format!("claim {node} as the replacement of {replaced}"), e))
    }

    async fn evict(&self, namespace: &str, pod: &str) -> AdapterResult<Eviction> {
        let api = Api::<Pod>::namespaced(self.direct().clone(), namespace);
        let answer = self.request_eviction(&api, namespace, pod).await;
        let counts = self.evictions();
        let counter = match &answer {
            Ok(Eviction::Evicted) => &counts.evicted,
            Ok(Eviction::Gone) => &counts.gone,
            Ok(Eviction::Blocked { .. }) => &counts.blocked,
            Err(_) => &counts.failed,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        answer
    }

    async fn place(&self, workload: &WorkloadRef, target: &PlacementTarget) -> AdapterResult<()> {
        let operation = format!("place {workload} on {target:?}");
        let patch = self.placement_patch(target);
        let client = self.client().clone();
        let ns = &workload.namespace;
        let result = match workload.kind {
            WorkloadKind::Deployment => {
                patch_template(Api::<Deployment>::namespaced(client, ns), &workload.name, &patch).await
            }
            WorkloadKind::StatefulSet => {
                patch_template(Api::<StatefulSet>::namespaced(client, ns), &workload.name, &patch).await
            }
            WorkloadKind::DaemonSet => {
                patch_template(Api::<DaemonSet>::namespaced(client, ns), &workload.name, &patch).await
            }
            WorkloadKind::ReplicaSet => {
                patch_template(Api::<ReplicaSet>::namespaced(client, ns), &workload.name, &patch).await
            }
            WorkloadKind::Job | WorkloadKind::Other => {
                return Err(AdapterError::new(
                    AdapterErrorKind::Refused,
                    operation,
                    "a Job's pod template cannot change after creation; label it when it is created",
                ));
            }
        };
        result.map_err(|e| adapter_error(operation, e))
    }

    async fn update_status(&self, at_millis: u64) {
        self.write_buffer_statuses(at_millis).await;
    }

    async fn announce(&self, announcement: Announcement) {
        let Some(reference) = Self::reference(&announcement.subject) else { return };
        let mut note = announcement.note;
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_: if announcement.warning { EventType::Warning } else { EventType::Normal },
            reason: announcement.reason.to_string(),
            note: Some(note),
            action: announcement.reason.to_string(),
            secondary: None,
        };
        if let Err(error) = self.inner.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason = announcement.reason, "cannot publish an Event");
        }
    }
}

//! Workloads in the cache: Deployments, StatefulSets, DaemonSets, Jobs and the ReplicaSets no
//! Deployment owns, each with what its pod template says of where its pods may run.

use ballast_sdk::{Resources, WorkloadKind, WorkloadRef};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::related::Related;
use super::{ClusterStore, Key, WorkloadEntry, controller, convert, key, kinds};
use ballast_engine::ports::FargateTraits;
use ballast_engine::unreadable::BadValue;

impl ClusterStore {
    /// A ReplicaSet: remembered for the Deployment that owns it; one without a Deployment is
    /// a workload of its own.
    pub fn apply_replica_set(&mut self, meta: &ObjectMeta, replicas: u32, template: Option<&PodTemplateSpec>) {
        let key = key(meta);
        self.seen(kinds::REPLICA_SETS, &key);
        let deployment = controller(meta).and_then(|(kind, name)| (kind == WorkloadKind::Deployment).then_some(name));
        let changed = self.replica_sets.get(&key) != Some(&deployment);
        self.replica_sets.insert(key.clone(), deployment.clone());
        if deployment.is_none() {
            self.apply_workload(WorkloadKind::ReplicaSet, meta, replicas, template, &[], None);
        }
        if changed {
            // Pods seen before their ReplicaSet were owned by it; now the Deployment owns them.
            let ns = key.0.clone();
            let pods: Vec<Key> = self
                .pods
                .entries()
                .filter(|((pns, _), p)| {
                    *pns == ns
                        && p.controller.as_ref().is_some_and(|(k, n)| *k == WorkloadKind::ReplicaSet && *n == key.1)
                })
                .map(|(k, _)| k.clone())
                .collect();
            let owner = self.resolve_owner(&ns, WorkloadKind::ReplicaSet, &key.1);
            for pod in pods {
                self.pods.update(&pod, |p| p.view.owner = Some(owner.clone()));
            }
        }
    }

    /// A Deployment, StatefulSet, DaemonSet or Job (`seen_as` is the kind's store name,
    /// for relists).
    pub fn apply_workload(
        &mut self,
        kind: WorkloadKind,
        meta: &ObjectMeta,
        replicas: u32,
        template: Option<&PodTemplateSpec>,
        claim_templates: &[PersistentVolumeClaim],
        seen_as: Option<&'static str>,
    ) {
        let key = key(meta);
        if let Some(kind_name) = seen_as {
            self.seen(kind_name, &key);
        }
        let template = template.cloned().unwrap_or_default();
        let requests = match template.spec.as_ref().map(convert::requests).transpose() {
            Ok(requests) => requests.unwrap_or_default(),
            Err(bad) => {
                bad.report_to(&self.unreadable, &format!("{kind:?} {}/{}", key.0, key.1));
                Resources::default()
            }
        };
        let claim_templates = claim_templates.to_vec();
        let pinned_by_owner = convert::pinned_by_owner(meta, &template, &self.settings.group_selector_label);
        let traits = FargateTraits { pinned_by_owner, ..self.traits(&key.0, &template, &claim_templates) };
        let max_per_node = crate::per_node::max_per_node(&template, &key.0);
        let max_per_zone = crate::affinity::max_per_zone(&template, &key.0);
        let kept_away = Related::new(crate::affinity::hostname_repels(&template));
        let zone_affinity = Related::new(crate::affinity::zone_affinity(&template));
        let kept_beside = Related::new(crate::affinity::hostname_affinity(&template));
        let unreadable = |bad: BadValue| bad.report_to(&self.unreadable, &format!("{kind:?} {}/{}", key.0, key.1));
        let zone_spread = crate::spread::zone_spread(&template).unwrap_or_else(|bad| {
            unreadable(bad);
            None
        });
        let (max_zone_skew, min_zone_domains) =
            (zone_spread.map(|z| z.max_skew), zone_spread.and_then(|z| z.min_domains));
        let node_spread = crate::spread::node_spread(&template).unwrap_or_else(|bad| {
            unreadable(bad);
            None
        });
        let max_node_skew = node_spread.map(|s| s.max_skew);
        let min_node_domains = node_spread.and_then(|s| s.min_domains);
        let node_inclusion = node_spread.map(|s| s.inclusion).unwrap_or_default();
        let id = WorkloadRef { kind, namespace: key.0, name: key.1 };
        let entry = WorkloadEntry {
            replicas,
            template,
            claim_templates,
            requests,
            traits,
            max_per_node,
            max_zone_skew,
            min_zone_domains,
            max_node_skew,
            min_node_domains,
            node_inclusion,
            max_per_zone,
            kept_away,
            zone_affinity,
            kept_beside,
        };
        self.insert_workload(id, entry);
    }
}

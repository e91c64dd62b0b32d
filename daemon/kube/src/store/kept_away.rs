//! Which workloads each workload's own rules keep its pods off the nodes of (a required pod
//! anti-affinity on the hostname against their pods, [`crate::per_node::keeps_off`]), kept
//! up to date as workloads come, change and go, so a view reads it without judging every
//! rule against every template each tick.
//!
//! # Guarantees
//! After [`ClusterStore::relate`] or [`ClusterStore::forget_workload`], each entry's
//! `kept_away` lists exactly the other workloads in the cache whose template its terms take in.
//!
//! # Caveats
//! A workload whose template labels and terms are unchanged (a status update) keeps the list
//! it had: nothing is judged again.

use ballast_sdk::WorkloadRef;

use super::{ClusterStore, WorkloadEntry};
use crate::per_node::{PodOf, keeps_off};

impl ClusterStore {
    /// Puts `entry` in the cache as `id`, relating it to the other workloads: its own terms
    /// against their templates, and their terms against its template. A pass over the
    /// workloads when its labels or terms changed; none otherwise.
    pub(super) fn insert_workload(&mut self, id: WorkloadRef, mut entry: WorkloadEntry) {
        let labels = |e: &WorkloadEntry| e.template.metadata.as_ref().and_then(|m| m.labels.clone());
        if let Some(old) = self.workloads.get(&id).filter(|o| labels(o) == labels(&entry) && o.repels == entry.repels) {
            entry.kept_away = old.kept_away.clone();
            self.workloads.insert(id, entry);
            return;
        }
        self.workloads.insert(id.clone(), entry);
        self.relate(&id);
    }

    /// Takes workload `id` out of the cache and out of every other workload's list.
    pub(super) fn forget_workload(&mut self, id: &WorkloadRef) {
        if self.workloads.remove(id).is_some() {
            for entry in self.workloads.values_mut() {
                entry.kept_away.retain(|o| o != id);
            }
        }
    }

    /// Judges `id`'s terms against the other templates, and theirs against its own.
    fn relate(&mut self, id: &WorkloadRef) {
        let Some(entry) = self.workloads.get(id) else { return };
        let own = PodOf::template(&entry.template, &id.namespace);
        let others = self.workloads.iter().filter(|(other, _)| *other != id);
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for (other, e) in others {
            let them = PodOf::template(&e.template, &other.namespace);
            if !entry.repels.is_empty() && keeps_off(&entry.repels, own, them) {
                mine.push(other.clone());
            }
            if !e.repels.is_empty() {
                theirs.push((other.clone(), keeps_off(&e.repels, them, own)));
            }
        }
        if let Some(entry) = self.workloads.get_mut(id) {
            entry.kept_away = mine;
        }
        for (other, kept) in theirs {
            let Some(list) = self.workloads.get_mut(&other).map(|e| &mut e.kept_away) else { continue };
            list.retain(|o| o != id);
            if kept {
                list.push(id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ballast_sdk::{WorkloadKind, WorkloadRef};
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::super::{ClusterStore, kinds};
    use crate::settings::KubeSettings;

    /// A Deployment in `shop` labelled `app: <app>`, kept off the nodes of `app: <avoids>`'s
    /// pods when it says.
    fn apply(store: &mut ClusterStore, name: &str, app: &str, avoids: Option<&str>) {
        let mut template = json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c"}]}});
        if let Some(other) = avoids {
            template["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": other}}}]}});
        }
        let template: PodTemplateSpec = serde_json::from_value(template).unwrap();
        let meta = ObjectMeta { name: Some(name.into()), namespace: Some("shop".into()), ..ObjectMeta::default() };
        store.apply_workload(WorkloadKind::Deployment, &meta, 2, Some(&template), &[], Some(kinds::DEPLOYMENTS));
    }

    fn kept_away(store: &ClusterStore, name: &str) -> Vec<String> {
        let id = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: name.into() };
        store.workloads.get(&id).map(|w| w.kept_away.iter().map(|o| o.name.clone()).collect()).unwrap_or_default()
    }

    #[test]
    fn a_workloads_list_follows_the_others_as_they_come_change_and_go() {
        let mut store = ClusterStore::new(Arc::new(KubeSettings::default()));
        apply(&mut store, "indexer", "indexer", Some("web"));
        assert!(kept_away(&store, "indexer").is_empty(), "no web yet");
        apply(&mut store, "web", "web", None);
        assert_eq!(kept_away(&store, "indexer"), ["web"], "web came after the rule");
        apply(&mut store, "web", "web", None);
        assert_eq!(kept_away(&store, "indexer"), ["web"], "web unchanged, listed once");
        apply(&mut store, "web", "frontend", None);
        assert!(kept_away(&store, "indexer").is_empty(), "web's labels no longer selected");
        apply(&mut store, "web", "web", None);
        apply(&mut store, "indexer", "indexer", Some("web"));
        assert_eq!(kept_away(&store, "indexer"), ["web"], "the indexer's status update keeps its list");
        apply(&mut store, "indexer", "indexer", Some("cache"));
        assert!(kept_away(&store, "indexer").is_empty(), "its rule changed");
        apply(&mut store, "indexer", "indexer", Some("web"));
        store.remove(kinds::DEPLOYMENTS, &("shop".into(), "web".into()));
        assert!(kept_away(&store, "indexer").is_empty(), "web is gone");
        assert!(kept_away(&store, "web").is_empty());
    }
}

//! Which other workloads each workload's rules take in, kept up to date as workloads come,
//! change and go, so a view reads them without judging every rule against every template
//! each tick: its required pod anti-affinity terms on the hostname (the workloads it is kept
//! off the nodes of, itself aside: that is a limit per node) and its required pod affinity
//! terms on the zone and on the hostname (the workloads it is kept in the zones of, or on the
//! nodes of, itself included) ([`crate::affinity::takes_in`]).
//!
//! # Guarantees
//! After [`ClusterStore::insert_workload`] or [`ClusterStore::forget_workload`], each entry's
//! lists name exactly the workloads in the cache whose template its terms take in.
//!
//! # Caveats
//! A workload whose template labels and terms are unchanged (a status update) keeps the lists
//! it had: nothing is judged again.

use ballast_sdk::WorkloadRef;
use k8s_openapi::api::core::v1::PodAffinityTerm;

use super::{ClusterStore, WorkloadEntry};
use crate::affinity::{PodOf, takes_in};

/// A workload's terms of one kind, with the workloads they take in.
pub(super) struct Related {
    pub(super) terms: Vec<PodAffinityTerm>,
    pub(super) workloads: Vec<WorkloadRef>,
}

impl Related {
    pub(super) fn new(terms: Vec<PodAffinityTerm>) -> Self {
        Related { terms, workloads: Vec::new() }
    }
}

/// One kind of terms: where an entry keeps them, and whether they may take in its own pods.
struct Kind {
    of: fn(&WorkloadEntry) -> &Related,
    of_mut: fn(&mut WorkloadEntry) -> &mut Related,
    itself: bool,
}

const KINDS: [Kind; 3] = [
    Kind { of: |e| &e.kept_away, of_mut: |e| &mut e.kept_away, itself: false },
    Kind { of: |e| &e.zone_affinity, of_mut: |e| &mut e.zone_affinity, itself: true },
    Kind { of: |e| &e.kept_beside, of_mut: |e| &mut e.kept_beside, itself: true },
];

impl ClusterStore {
    /// Puts `entry` in the cache as `id`, relating it to the other workloads: its own terms
    /// against their templates, and their terms against its template. A pass over the
    /// workloads when its labels or terms changed; none otherwise.
    pub(super) fn insert_workload(&mut self, id: WorkloadRef, mut entry: WorkloadEntry) {
        let labels = |e: &WorkloadEntry| e.template.metadata.as_ref().and_then(|m| m.labels.clone());
        let same = |o: &&WorkloadEntry| {
            labels(o) == labels(&entry) && KINDS.iter().all(|k| (k.of)(o).terms == (k.of)(&entry).terms)
        };
        if let Some(old) = self.workloads.get(&id).filter(same) {
            for kind in &KINDS {
                (kind.of_mut)(&mut entry).workloads = (kind.of)(old).workloads.clone();
            }
            self.workloads.insert(id, entry);
            return;
        }
        self.workloads.insert(id.clone(), entry);
        for kind in &KINDS {
            self.relate(&id, kind);
        }
    }

    /// Takes workload `id` out of the cache and out of every other workload's lists.
    pub(super) fn forget_workload(&mut self, id: &WorkloadRef) {
        if self.workloads.remove(id).is_some() {
            for entry in self.workloads.values_mut() {
                KINDS.iter().for_each(|k| (k.of_mut)(entry).workloads.retain(|o| o != id));
            }
        }
    }

    /// Judges `id`'s terms of `kind` against the other templates, and theirs against its own.
    fn relate(&mut self, id: &WorkloadRef, kind: &Kind) {
        let Some(entry) = self.workloads.get(id) else { return };
        let own = PodOf::template(&entry.template, &id.namespace);
        let mine_terms = &(kind.of)(entry).terms;
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for (other, e) in self.workloads.iter().filter(|(other, _)| kind.itself || *other != id) {
            let them = PodOf::template(&e.template, &other.namespace);
            if !mine_terms.is_empty() && takes_in(mine_terms, own, them) {
                mine.push(other.clone());
            }
            let their_terms = &(kind.of)(e).terms;
            if other != id && !their_terms.is_empty() {
                theirs.push((other.clone(), takes_in(their_terms, them, own)));
            }
        }
        if let Some(entry) = self.workloads.get_mut(id) {
            (kind.of_mut)(entry).workloads = mine;
        }
        for (other, taken) in theirs {
            let Some(list) = self.workloads.get_mut(&other).map(|e| &mut (kind.of_mut)(e).workloads) else { continue };
            list.retain(|o| o != id);
            if taken {
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
        store
            .workloads
            .get(&id)
            .map(|w| w.kept_away.workloads.iter().map(|o| o.name.clone()).collect())
            .unwrap_or_default()
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

    #[test]
    fn a_zone_affinity_takes_in_its_own_pods_and_others_as_they_come() {
        let mut store = ClusterStore::new(Arc::new(KubeSettings::default()));
        let template = |app: &str, near: &str| {
            let template = json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c"}],
                "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchExpressions": [
                        {"key": "app", "operator": "In", "values": [near, app]}]}}]}}}});
            serde_json::from_value::<PodTemplateSpec>(template).unwrap()
        };
        let meta =
            |name: &str| ObjectMeta { name: Some(name.into()), namespace: Some("shop".into()), ..Default::default() };
        let api = template("api", "db");
        store.apply_workload(WorkloadKind::Deployment, &meta("api"), 2, Some(&api), &[], Some(kinds::DEPLOYMENTS));
        apply(&mut store, "db", "db", None);
        let near = |name: &str| {
            let id = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: name.into() };
            let w = store.workloads.get(&id);
            w.map(|w| w.zone_affinity.workloads.iter().map(|o| o.name.clone()).collect::<Vec<_>>()).unwrap_or_default()
        };
        assert_eq!(near("api"), ["api", "db"], "its own pods, and db's that came after");
        assert!(near("db").is_empty(), "an affinity holds one way");
        assert!(kept_away(&store, "api").is_empty());
    }
}

//! The store's pods, with everything a view needs kept counted as they change: each node's
//! [`NodePods`], the pods waiting for capacity, and per owner where its pods run and what they
//! use. A view then costs nodes + pending pods + workloads, never every pod.
//!
//! # Guarantees
//! Every change to a pod goes through [`PodIndex::insert`], [`PodIndex::remove`] or
//! [`PodIndex::update`], which take the old version out of every count before the new one
//! goes in, so the counts always equal a fresh walk over the pods (a test checks it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ballast_sdk::{Resources, WorkloadKind, WorkloadRef};

use super::store::Key;
use ballast_engine::pods::{NodeTally, ShapeInterner};
use ballast_engine::ports::{NodePods, PassedOver, PassedOverPod, PendingPodView, PodShape, PodView};

pub(super) struct PodEntry {
    pub view: PodView,
    /// The pod's controller as its owner reference names it (a ReplicaSet for Deployments).
    pub controller: Option<(WorkloadKind, String)>,
    pub labels: BTreeMap<String, String>,
    pub on_fargate: bool,
    pub usage: Option<Resources>,
    /// The claims it mounts by name, which may pin it to a zone (`volumes.rs`).
    pub claims: Vec<String>,
    /// Refused by the scheduler but not sized for, and why (`convert::passed_over`).
    pub passed_over: Option<PassedOver>,
}

struct Indexed {
    entry: PodEntry,
    shape: Arc<PodShape>,
}

/// Where an owner's pods run and what they use, for its workload's placement and usage.
#[derive(Default)]
pub(super) struct OwnerPods {
    pub on_fargate: u32,
    pub on_ec2: u32,
    pub usage: Resources,
    pub measured: u32,
}

impl OwnerPods {
    pub fn mean_usage(&self) -> Resources {
        let n = u64::from(self.measured.max(1));
        Resources {
            cpu_millis: self.usage.cpu_millis / n,
            memory_bytes: self.usage.memory_bytes / n,
            pods: 1,
            gpus: self.usage.gpus / self.measured.max(1),
            ephemeral_storage_bytes: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.on_fargate == 0 && self.on_ec2 == 0 && self.measured == 0
    }
}

#[derive(Default)]
pub(super) struct PodIndex {
    pods: BTreeMap<Key, Indexed>,
    shapes: ShapeInterner,
    nodes: NodeTally,
    /// Pods waiting for capacity, in key order (the order plugins see).
    pending: BTreeSet<Key>,
    /// Pods refused by the scheduler that are not sized for (see [`PodEntry::passed_over`]).
    passed_over: BTreeSet<Key>,
    owners: HashMap<Arc<WorkloadRef>, OwnerPods>,
}

impl PodIndex {
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn get(&self, key: &Key) -> Option<&PodEntry> {
        self.pods.get(key).map(|i| &i.entry)
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.pods.keys()
    }

    pub fn entries(&self) -> impl Iterator<Item = (&Key, &PodEntry)> {
        self.pods.iter().map(|(k, i)| (k, &i.entry))
    }

    /// Adds or replaces a pod.
    pub fn insert(&mut self, key: Key, entry: PodEntry) {
        self.remove(&key);
        let shape = self.shapes.acquire(entry.view.shape());
        if let Some(node) = &entry.view.node {
            self.nodes.add(node, &shape, entry.view.name.clone());
        } else if entry.view.waits_for_capacity() {
            self.pending.insert(key.clone());
        } else if entry.passed_over.is_some() {
            self.passed_over.insert(key.clone());
        }
        self.count_owner(&entry, true);
        self.pods.insert(key, Indexed { entry, shape });
    }

    pub fn remove(&mut self, key: &Key) -> Option<PodEntry> {
        let Indexed { entry, shape } = self.pods.remove(key)?;
        if let Some(node) = &entry.view.node {
            self.nodes.remove(node, &shape, &entry.view.name);
        }
        self.pending.remove(key);
        self.passed_over.remove(key);
        self.count_owner(&entry, false);
        self.shapes.release(&shape);
        Some(entry)
    }

    /// Changes a pod in place, keeping every count right.
    pub fn update(&mut self, key: &Key, change: impl FnOnce(&mut PodEntry)) {
        if let Some(mut entry) = self.remove(key) {
            change(&mut entry);
            self.insert(key.clone(), entry);
        }
    }

    fn count_owner(&mut self, entry: &PodEntry, add: bool) {
        let Some(owner) = &entry.view.owner else { return };
        let counts = self.owners.entry(owner.clone()).or_default();
        let step = |n: &mut u32| *n = if add { *n + 1 } else { n.saturating_sub(1) };
        if entry.on_fargate {
            step(&mut counts.on_fargate);
        } else if entry.view.node.is_some() {
            step(&mut counts.on_ec2);
        }
        if let Some(usage) = &entry.usage {
            step(&mut counts.measured);
            counts.usage = if add { counts.usage.saturating_add(usage) } else { counts.usage.saturating_sub(usage) };
        }
        if counts.is_empty() {
            self.owners.remove(owner);
        }
    }

    /// Replaces every pod's measured usage.
    pub fn set_usage(&mut self, usage: &HashMap<Key, Resources>) {
        for owner in self.owners.values_mut() {
            owner.usage = Resources::ZERO;
            owner.measured = 0;
        }
        for (key, indexed) in self.pods.iter_mut() {
            indexed.entry.usage = usage.get(key).copied();
            if let (Some(owner), Some(used)) = (&indexed.entry.view.owner, &indexed.entry.usage) {
                let counts = self.owners.entry(owner.clone()).or_default();
                counts.usage = counts.usage.saturating_add(used);
                counts.measured += 1;
            }
        }
        self.owners.retain(|_, o| !o.is_empty());
    }

    pub fn on_node(&self, node: &str) -> Arc<NodePods> {
        self.nodes.of(node)
    }

    /// The pods waiting for capacity that mount claims.
    pub fn pending_with_claims(&self) -> Vec<Key> {
        self.pending.iter().filter(|k| self.get(k).is_some_and(|e| !e.claims.is_empty())).cloned().collect()
    }

    pub fn pending(&self) -> Vec<PendingPodView> {
        self.pending
            .iter()
            .filter_map(|key| self.pods.get(key))
            .map(|i| PendingPodView {
                shape: i.shape.clone(),
                name: i.entry.view.name.clone(),
                created_at_millis: i.entry.view.created_at_millis,
            })
            .collect()
    }

    pub fn passed_over(&self) -> Vec<PassedOverPod> {
        self.passed_over
            .iter()
            .filter_map(|key| self.pods.get(key))
            .filter_map(|i| {
                Some(PassedOverPod {
                    namespace: i.entry.view.namespace.clone(),
                    name: i.entry.view.name.clone(),
                    passed_over: i.entry.passed_over.clone()?,
                })
            })
            .collect()
    }

    pub fn owner(&self, id: &WorkloadRef) -> Option<&OwnerPods> {
        self.owners.get(id)
    }

    /// Distinct pod shapes held.
    pub fn shape_count(&self) -> usize {
        self.shapes.len()
    }
}

#[cfg(test)]
mod tests {
    use ballast_engine::guard::fixture;
    use ballast_engine::ports::ClusterView;

    use super::*;

    fn entry(name: &str, node: Option<&str>, cpu: u64) -> PodEntry {
        PodEntry {
            view: fixture::pod(name, node, Some(fixture::web()), cpu),
            controller: None,
            labels: BTreeMap::new(),
            on_fargate: false,
            usage: Some(Resources::pod(cpu / 2, 1 << 20)),
            claims: Vec::new(),
            passed_over: None,
        }
    }

    fn key(name: &str) -> Key {
        ("shop".into(), name.into())
    }

    /// What a walk over every pod gives, against what the index kept.
    fn agrees_with_a_fresh_walk(index: &PodIndex) {
        let pods: Vec<PodView> = index.entries().map(|(_, e)| e.view.clone()).collect();
        let mut fresh = ClusterView {
            nodes: vec![fixture::node("n1", None, None), fixture::node("n2", None, None)],
            ..ClusterView::default()
        };
        fresh.count_pods(&pods);
        for node in &fresh.nodes {
            let kept = index.on_node(&node.name);
            assert_eq!((kept.count, kept.requested), (node.pods.count, node.pods.requested), "{}", node.name);
            let names = |p: &NodePods| {
                let mut n: Vec<String> = p.evictable().map(|(_, name)| name.to_string()).collect();
                n.sort();
                n
            };
            assert_eq!(names(&kept), names(&node.pods), "{}", node.name);
        }
        let pending = |v: Vec<PendingPodView>| v.into_iter().map(|p| p.name.to_string()).collect::<Vec<_>>();
        assert_eq!(pending(index.pending()), pending(fresh.pending));
        let on_ec2 = pods.iter().filter(|p| p.node.is_some()).count() as u32;
        assert_eq!(index.owner(&fixture::web()).map_or(0, |o| o.on_ec2), on_ec2);
        assert_eq!(index.owner(&fixture::web()).map_or(0, |o| o.measured), pods.len() as u32);
    }

    #[test]
    fn counts_equal_a_fresh_walk_after_every_kind_of_change() {
        let mut index = PodIndex::default();
        index.insert(key("a"), entry("a", Some("n1"), 500));
        index.insert(key("b"), entry("b", Some("n1"), 250));
        index.insert(key("c"), entry("c", Some("n2"), 1000));
        index.insert(key("p"), entry("p", None, 750));
        agrees_with_a_fresh_walk(&index);
        assert_eq!(index.pending().len(), 1);

        // The pending pod is bound; a pod moves under a budget; one goes; one is replaced.
        index.insert(key("p"), entry("p", Some("n2"), 750));
        agrees_with_a_fresh_walk(&index);
        index.update(&key("a"), |p| p.view.disruption_budget = Some("web-pdb".into()));
        agrees_with_a_fresh_walk(&index);
        assert!(index.on_node("n1").shapes.iter().any(|s| s.shape.disruption_budget.is_some()));
        index.remove(&key("b"));
        index.insert(key("c"), entry("c", Some("n1"), 100));
        agrees_with_a_fresh_walk(&index);
        index.set_usage(&HashMap::new());
        assert_eq!(index.owner(&fixture::web()).map(|o| o.measured), Some(0), "usage replaced by none");

        for name in ["a", "c", "p"] {
            index.remove(&key(name));
        }
        assert_eq!((index.len(), index.shape_count(), index.on_node("n1").count), (0, 0, 0), "nothing left behind");
    }
}

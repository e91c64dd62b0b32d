//! Pods counted by shape, kept up to date one pod at a time by the adapters, so that a tick
//! reads per-node totals instead of walking every pod.
//!
//! A [`PodShape`] is an equivalence class: pods of one shape are interchangeable to every
//! judgement the engine makes (what they request, where they may go, whether a drain may move
//! them). The kube store and the sim world keep, per node, a [`NodePods`]: the totals, and the
//! pods of each shape by name (the names a drain evicts). A [`PodTally`] does the bookkeeping
//! and shares one `Arc<PodShape>` per class; a view hands out each node's `Arc<NodePods>`
//! without copying it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use ballast_sdk::{Resources, WorkloadKind, WorkloadRef};

use super::ports::PodTemplate;

/// What makes pods interchangeable to the engine.
#[derive(Clone, Debug)]
pub struct PodShape {
    pub namespace: Arc<str>,
    /// Its controller, if any. DaemonSet pods are never evicted by a drain.
    pub owner: Option<Arc<WorkloadRef>>,
    pub requests: Resources,
    /// Scheduling constraints and disruption traits, shared by the pods of a workload (pods
    /// are of one shape only if they share the same `Arc`).
    pub template: Arc<PodTemplate>,
    /// The PodDisruptionBudget selecting the pods, by name in their namespace.
    pub disruption_budget: Option<Arc<str>>,
    /// Static pods mirrored from the kubelet: not evictable, not a blocker.
    pub mirror: bool,
    /// Their requests could not be read (named field and value): their node is not removed
    /// and they are not sized for while pending.
    pub unreadable: Option<String>,
    /// Their priority is below the cluster's cutoff (Cluster Autoscaler's expendable pods,
    /// `kubernetes.expendable-pods-priority-cutoff`): they run only on room nothing else
    /// wants, so they cause no scale-up, their room counts as free, they keep no node and
    /// need no room elsewhere when it goes. A drain still asks them to leave, but does not
    /// wait for them.
    pub expendable: bool,
}

impl PodShape {
    pub fn is_daemon(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| o.kind == WorkloadKind::DaemonSet)
    }

    /// A drain evicts it: everything but DaemonSet and mirror pods.
    pub fn evictable(&self) -> bool {
        !self.is_daemon() && !self.mirror
    }

    /// A drain must see it gone before the node goes: evictable and not expendable.
    pub fn must_move(&self) -> bool {
        self.evictable() && !self.expendable
    }
}

impl PartialEq for PodShape {
    fn eq(&self, other: &Self) -> bool {
        self.namespace == other.namespace
            && self.owner == other.owner
            && self.requests == other.requests
            && Arc::ptr_eq(&self.template, &other.template)
            && self.disruption_budget == other.disruption_budget
            && self.mirror == other.mirror
            && self.unreadable == other.unreadable
            && self.expendable == other.expendable
    }
}

impl Eq for PodShape {}

impl Hash for PodShape {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.namespace.hash(state);
        self.owner.hash(state);
        self.requests.hash(state);
        Arc::as_ptr(&self.template).hash(state);
        self.disruption_budget.hash(state);
        self.expendable.hash(state);
    }
}

/// The pods of one shape on one node.
#[derive(Clone, Debug)]
pub struct ShapeOnNode {
    pub shape: Arc<PodShape>,
    /// Their names, in the order they arrived.
    pub pods: Vec<Arc<str>>,
}

/// What runs on a node: totals and the pods by shape.
#[derive(Clone, Debug, Default)]
pub struct NodePods {
    /// Sum of the requests of the pods bound to the node, expendable ones left out: any other
    /// pod takes their room (see [`PodShape::expendable`]).
    pub requested: Resources,
    /// The pods bound to the node, expendable ones left out.
    pub count: u32,
    /// Shapes in the order their first pod arrived; a shape with no pod left is dropped.
    pub shapes: Vec<ShapeOnNode>,
}

impl NodePods {
    pub fn add(&mut self, shape: &Arc<PodShape>, name: Arc<str>) {
        if !shape.expendable {
            self.requested = self.requested.saturating_add(&shape.requests);
            self.count += 1;
        }
        match self.shapes.iter_mut().find(|s| s.shape == *shape) {
            Some(entry) => entry.pods.push(name),
            None => self.shapes.push(ShapeOnNode { shape: shape.clone(), pods: vec![name] }),
        }
    }

    /// Takes one pod out; false if it was not counted here.
    pub fn remove(&mut self, shape: &PodShape, name: &str) -> bool {
        let Some(at) = self.shapes.iter().position(|s| *s.shape == *shape) else { return false };
        let entry = &mut self.shapes[at];
        let Some(pod) = entry.pods.iter().position(|p| &**p == name) else { return false };
        entry.pods.remove(pod);
        if entry.pods.is_empty() {
            self.shapes.remove(at);
        }
        if !shape.expendable {
            self.requested = self.requested.saturating_sub(&shape.requests);
            self.count = self.count.saturating_sub(1);
        }
        true
    }

    /// The DaemonSet pods asked to leave before the node goes, as (namespace, name): those
    /// whose `enable-ds-eviction` annotation says so, or `by_default` when they have none.
    pub fn daemon_pods_to_evict(&self, by_default: bool) -> impl Iterator<Item = (&Arc<str>, &Arc<str>)> {
        self.shapes
            .iter()
            .filter(move |s| {
                s.shape.is_daemon() && !s.shape.mirror && s.shape.template.daemonset_eviction.unwrap_or(by_default)
            })
            .flat_map(|s| s.pods.iter().map(move |p| (&s.shape.namespace, p)))
    }

    /// The pods a drain asks to leave now, as (namespace, name): all of [`Self::evictable`],
    /// but a critical one (`system-cluster-critical`, `system-node-critical`) only once no
    /// other pod the drain must see gone is left, so that cluster services such as DNS keep
    /// serving while the rest move (Karpenter drains in that order).
    pub fn to_evict_now(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<str>)> {
        let others_left = self.shapes.iter().any(|s| s.shape.must_move() && !s.shape.template.critical);
        self.shapes
            .iter()
            .filter(move |s| s.shape.evictable() && !(others_left && s.shape.template.critical))
            .flat_map(|s| s.pods.iter().map(move |p| (&s.shape.namespace, p)))
    }

    /// The pods a drain asks to leave, as (namespace, name).
    pub fn evictable(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<str>)> {
        self.shapes
            .iter()
            .filter(|s| s.shape.evictable())
            .flat_map(|s| s.pods.iter().map(move |p| (&s.shape.namespace, p)))
    }

    /// The pods a drain must see gone before the node goes ([`PodShape::must_move`]).
    pub fn must_move_count(&self) -> usize {
        self.shapes.iter().filter(|s| s.shape.must_move()).map(|s| s.pods.len()).sum()
    }
}

/// One shape per class, shared: the interner the adapters use so that pods of a class hold
/// the same `Arc` (and a node's shape list compares pointers, not fields).
#[derive(Default)]
pub struct ShapeInterner {
    shapes: HashMap<Arc<PodShape>, u32>,
}

impl ShapeInterner {
    /// The shared shape equal to `shape`, counted once more.
    pub fn acquire(&mut self, shape: PodShape) -> Arc<PodShape> {
        if let Some((shared, refs)) = self.shapes.get_key_value(&shape) {
            let shared = shared.clone();
            let refs = refs + 1;
            self.shapes.insert(shared.clone(), refs);
            return shared;
        }
        let shared = Arc::new(shape);
        self.shapes.insert(shared.clone(), 1);
        shared
    }

    /// One pod of the shape went; the shape is forgotten with its last pod.
    pub fn release(&mut self, shape: &Arc<PodShape>) {
        match self.shapes.get_mut(shape) {
            Some(refs) if *refs > 1 => *refs -= 1,
            Some(_) => {
                self.shapes.remove(shape);
            }
            None => {}
        }
    }

    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }
}

/// Per-node totals kept up to date pod by pod, handed out copy-on-write.
#[derive(Default)]
pub struct NodeTally {
    nodes: HashMap<Arc<str>, Arc<NodePods>>,
}

impl NodeTally {
    pub fn add(&mut self, node: &Arc<str>, shape: &Arc<PodShape>, pod: Arc<str>) {
        Arc::make_mut(self.nodes.entry(node.clone()).or_default()).add(shape, pod);
    }

    pub fn remove(&mut self, node: &str, shape: &PodShape, pod: &str) {
        let Some(entry) = self.nodes.get_mut(node) else { return };
        Arc::make_mut(entry).remove(shape, pod);
        if entry.shapes.is_empty() {
            self.nodes.remove(node);
        }
    }

    /// What runs on `node` now (empty if nothing is bound to it).
    pub fn of(&self, node: &str) -> Arc<NodePods> {
        self.nodes.get(node).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(interner: &mut ShapeInterner, template: &Arc<PodTemplate>, cpu: u64, daemon: bool) -> Arc<PodShape> {
        let kind = if daemon { WorkloadKind::DaemonSet } else { WorkloadKind::Deployment };
        interner.acquire(shape_of(kind, template, cpu))
    }

    fn shape_of(kind: WorkloadKind, template: &Arc<PodTemplate>, cpu: u64) -> PodShape {
        PodShape {
            namespace: "default".into(),
            owner: Some(Arc::new(WorkloadRef { kind, namespace: "default".into(), name: "web".into() })),
            requests: Resources::pod(cpu, 1 << 30),
            template: template.clone(),
            disruption_budget: None,
            mirror: false,
            unreadable: None,
            expendable: false,
        }
    }

    #[test]
    fn pods_of_one_class_share_a_shape_and_the_last_one_out_forgets_it() {
        let template = Arc::new(PodTemplate::default());
        let mut interner = ShapeInterner::default();
        let a = shape(&mut interner, &template, 500, false);
        let b = shape(&mut interner, &template, 500, false);
        assert!(Arc::ptr_eq(&a, &b));
        let other_template = shape(&mut interner, &Arc::new(PodTemplate::default()), 500, false);
        assert!(!Arc::ptr_eq(&a, &other_template), "an equal template behind another Arc is another class");
        assert_eq!(interner.len(), 2);
        interner.release(&a);
        interner.release(&b);
        assert_eq!(interner.len(), 1);
    }

    #[test]
    fn a_node_keeps_totals_and_the_names_a_drain_evicts() {
        let template = Arc::new(PodTemplate::default());
        let mut interner = ShapeInterner::default();
        let web = shape(&mut interner, &template, 500, false);
        let agent = shape(&mut interner, &template, 100, true);
        let mut tally = NodeTally::default();
        let node: Arc<str> = "n1".into();
        tally.add(&node, &web, "web-1".into());
        tally.add(&node, &agent, "agent-1".into());
        tally.add(&node, &web, "web-2".into());
        let seen = tally.of("n1");
        assert_eq!((seen.count, seen.requested.cpu_millis), (3, 1100));
        let evictable: Vec<&str> = seen.evictable().map(|(_, p)| &**p).collect();
        assert_eq!(evictable, ["web-1", "web-2"], "DaemonSet pods are not evicted");

        tally.remove("n1", &web, "web-1");
        assert_eq!(seen.count, 3, "a view taken before a change keeps what it saw");
        let now = tally.of("n1");
        assert_eq!((now.count, now.requested.cpu_millis, now.must_move_count()), (2, 600, 1));
        tally.remove("n1", &web, "web-2");
        tally.remove("n1", &agent, "agent-1");
        assert_eq!(tally.of("n1").count, 0);
        assert!(tally.nodes.is_empty(), "an empty node is forgotten");
    }

    #[test]
    fn a_critical_pod_is_asked_to_leave_once_the_others_are_gone() {
        let mut interner = ShapeInterner::default();
        let critical = Arc::new(PodTemplate { critical: true, ..PodTemplate::default() });
        let dns = interner.acquire(shape_of(WorkloadKind::Deployment, &critical, 100));
        let web = interner.acquire(shape_of(WorkloadKind::Deployment, &Arc::new(PodTemplate::default()), 500));
        let filler = interner.acquire(PodShape {
            expendable: true,
            ..shape_of(WorkloadKind::Deployment, &Arc::new(PodTemplate::default()), 200)
        });
        let mut tally = NodeTally::default();
        let node: Arc<str> = "n1".into();
        for (shape, name) in [(&dns, "dns-1"), (&web, "web-1"), (&filler, "filler-1")] {
            tally.add(&node, shape, name.into());
        }
        let now = |tally: &NodeTally| tally.of("n1").to_evict_now().map(|(_, p)| p.to_string()).collect::<Vec<_>>();
        assert_eq!(now(&tally), ["web-1", "filler-1"], "DNS keeps serving while the web pod moves");
        tally.remove("n1", &web, "web-1");
        assert_eq!(now(&tally), ["dns-1", "filler-1"], "an expendable pod does not hold it back");
    }

    #[test]
    fn an_expendable_pod_is_asked_to_leave_but_holds_no_room_and_keeps_no_node() {
        let template = Arc::new(PodTemplate::default());
        let mut interner = ShapeInterner::default();
        let web = interner.acquire(shape_of(WorkloadKind::Deployment, &template, 500));
        let filler =
            interner.acquire(PodShape { expendable: true, ..shape_of(WorkloadKind::Deployment, &template, 1500) });
        assert!(!Arc::ptr_eq(&web, &interner.acquire(shape_of(WorkloadKind::Deployment, &template, 1500))));
        let mut tally = NodeTally::default();
        let node: Arc<str> = "n1".into();
        tally.add(&node, &filler, "filler-1".into());
        tally.add(&node, &web, "web-1".into());
        let seen = tally.of("n1");
        assert_eq!((seen.count, seen.requested.cpu_millis, seen.must_move_count()), (1, 500, 1));
        let evictable: Vec<&str> = seen.evictable().map(|(_, p)| &**p).collect();
        assert_eq!(evictable, ["filler-1", "web-1"], "a drain asks both to leave");

        tally.remove("n1", &web, "web-1");
        let only_filler = tally.of("n1");
        assert_eq!((only_filler.count, only_filler.requested.cpu_millis, only_filler.must_move_count()), (0, 0, 0));
        assert_eq!(only_filler.evictable().count(), 1, "the node still lists the pod a drain asks to leave");
        tally.remove("n1", &filler, "filler-1");
        assert!(tally.nodes.is_empty());
    }
}

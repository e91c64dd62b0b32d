//! Pods kept spread over nodes (a topology spread on `kubernetes.io/hostname` that may not
//! be broken), handed to policies as a cap per node: one more pod on a node may leave it at
//! most `maxSkew` above the node with the fewest, so no node may run more than that fewest
//! plus `maxSkew` until the nodes with the fewest fill.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use ballast_sdk::{Constraints, Node, NodeGroup, Refusal, Resources, WorkloadRef};

use super::ports::{ClusterView, NodeView, PodTemplate};

/// The most pods of each workload kept spread over nodes that one node may run (see
/// [`WorkloadView::max_node_skew`](super::ports::WorkloadView::max_node_skew)): the fewest
/// of its pods on a node that counts, plus its skew, once its waiting pods have filled the
/// nodes with the fewest that have room for them, as the scheduler fills them. `nodes` are
/// the snapshot's, one for each of the view's nodes in its order; `being_removed` names the
/// nodes a removal under way will take. Walks the nodes' shapes only when some workload is
/// spread over nodes, and lists every node only for those with pods waiting.
///
/// # Guarantees
/// The fewest is never put above what the scheduler would reach: every node counts but
/// Fargate's, those being removed and those whose group's labels refuse the workload's pods
/// (its node selector or the keys its node affinity requires); taints do not matter (the
/// scheduler's default `nodeTaintsPolicy: Ignore`), and a node whose group is unknown
/// counts. Only a Ready, uncordoned node of a group that admits the pods, taints included,
/// is filled, with as many as its free room holds.
///
/// # Caveats
/// - A node being removed is left out although the scheduler counts it until it is gone:
///   while it stands drained, with none of the pods, the scheduler's cap is `maxSkew` alone
///   and the pods it evicted wait for it to go. The cap given is the one after, so policies
///   buy no node for that wait.
/// - The fill takes the room as free for the workload's pods alone: other pods waiting for
///   the same room may leave the fewest lower, and the cap with it, until the next tick sees
///   where they went.
/// - A group whose nodes differ in a label the pods select (a zone, in a group over
///   several) is judged by its own labels.
/// - `minDomains` is not read.
pub fn caps(
    cluster: &ClusterView,
    nodes: &[Node],
    groups: &[NodeGroup],
    being_removed: &dyn Fn(&str) -> bool,
) -> HashMap<WorkloadRef, u32> {
    let skews: BTreeMap<&WorkloadRef, u32> =
        cluster.workloads.iter().filter_map(|w| Some((&w.id, w.max_node_skew?))).collect();
    if skews.is_empty() {
        return HashMap::new();
    }
    let rules =
        Rules { templates: templates(cluster, &skews), groups: groups.iter().map(|g| (g.id.as_str(), g)).collect() };
    let waiting = waiting(cluster, &skews);
    let mut nodes_in: HashMap<Option<&str>, u32> = HashMap::new();
    let mut with_pods: HashMap<&WorkloadRef, Fewest> = HashMap::new();
    let mut domains: HashMap<&WorkloadRef, Vec<Domain>> = HashMap::new();
    for (view, node) in cluster.nodes.iter().zip(nodes) {
        if view.fargate || view.removal_mark.is_some() || being_removed(&view.name) {
            continue;
        }
        let group = node.group.as_deref();
        *nodes_in.entry(group).or_default() += 1;
        let mut here: HashMap<&WorkloadRef, u32> = HashMap::new();
        for on in &view.pods.shapes {
            if let Some(owner) = on.shape.owner.as_deref().filter(|o| skews.contains_key(o)) {
                *here.entry(owner).or_default() += on.pods.len() as u32;
            }
        }
        for (&workload, wait) in waiting.iter().filter(|&(&w, _)| rules.counts(group, w)) {
            let room = if rules.fills(view, group, workload) { room_for(view, wait) } else { 0 };
            domains.entry(workload).or_default().push(Domain { pods: here.get(workload).copied().unwrap_or(0), room });
        }
        for (workload, pods) in here.into_iter().filter(|&(w, _)| rules.counts(group, w)) {
            let fewest = with_pods.entry(workload).or_insert(Fewest { nodes: 0, pods: u32::MAX });
            (fewest.nodes, fewest.pods) = (fewest.nodes + 1, fewest.pods.min(pods));
        }
    }
    (skews.into_iter())
        .map(|(w, skew)| {
            let fewest = match waiting.get(w) {
                Some(wait) => filled(domains.remove(w).unwrap_or_default(), wait.pods, skew),
                None => {
                    let counting: u32 = nodes_in.iter().filter(|&(&g, _)| rules.counts(g, w)).map(|(_, n)| n).sum();
                    // A node that counts and runs none of them sets the fewest at none.
                    with_pods.get(w).filter(|f| f.nodes == counting).map_or(0, |f| f.pods)
                }
            };
            (w.clone(), fewest + skew)
        })
        .collect()
}

/// The fewest of a workload's pods on the nodes that count and run some: how many such
/// nodes, and the fewest pods on one.
struct Fewest {
    nodes: u32,
    pods: u32,
}

/// A node that counts for a workload's spread: its pods of the workload, and how many more
/// its free room holds (none where they may not go).
struct Domain {
    pods: u32,
    room: u32,
}

/// A spread workload's pods waiting for a node: how many, and what each asks.
struct Waiting {
    pods: u32,
    requests: Resources,
}

/// The fewest of the workload's pods on a node once `pods` more have gone, each to a node
/// with the fewest that has room (the scheduler's spread scoring leans so), none to one the
/// skew keeps them from.
fn filled(domains: Vec<Domain>, mut pods: u32, skew: u32) -> u32 {
    if domains.is_empty() {
        return 0;
    }
    let mut full = domains.iter().filter(|d| d.room == 0).map(|d| d.pods).min().unwrap_or(u32::MAX);
    let mut open: BinaryHeap<Reverse<(u32, u32)>> =
        domains.iter().filter(|d| d.room > 0).map(|d| Reverse((d.pods, d.room))).collect();
    while pods > 0 {
        let Some(&Reverse((on, room))) = open.peek() else { break };
        if on >= full.saturating_add(skew) {
            break;
        }
        open.pop();
        pods -= 1;
        if room > 1 {
            open.push(Reverse((on + 1, room - 1)));
        } else {
            full = full.min(on + 1);
        }
    }
    full.min(open.peek().map_or(u32::MAX, |Reverse((on, _))| *on))
}

/// How many pods asking `wait.requests` the node's free room holds, at most as many as wait.
fn room_for(view: &NodeView, wait: &Waiting) -> u32 {
    let free = view.allocatable.saturating_sub(&view.pods.requested);
    let asks = &wait.requests;
    [
        (free.cpu_millis, asks.cpu_millis),
        (free.memory_bytes, asks.memory_bytes),
        (u64::from(free.pods), u64::from(asks.pods)),
        (u64::from(free.gpus), u64::from(asks.gpus)),
    ]
    .into_iter()
    .filter(|&(_, ask)| ask > 0)
    .map(|(free, ask)| free / ask)
    .fold(u64::from(wait.pods), u64::min) as u32
}

/// Each spread workload's pods waiting for a node, from the view's pending pods.
fn waiting<'a>(cluster: &'a ClusterView, skews: &BTreeMap<&WorkloadRef, u32>) -> HashMap<&'a WorkloadRef, Waiting> {
    let mut waiting: HashMap<&WorkloadRef, Waiting> = HashMap::new();
    for pod in &cluster.pending {
        if let Some(owner) = pod.shape.owner.as_deref().filter(|o| skews.contains_key(o)) {
            waiting.entry(owner).or_insert(Waiting { pods: 0, requests: pod.shape.requests }).pods += 1;
        }
    }
    waiting
}

/// The template of each spread workload's pods, from the first pending or running pod of it.
fn templates<'a>(
    cluster: &'a ClusterView,
    skews: &BTreeMap<&WorkloadRef, u32>,
) -> HashMap<&'a WorkloadRef, &'a PodTemplate> {
    let pending = cluster.pending.iter().map(|p| &p.shape);
    let running = cluster.nodes.iter().flat_map(|n| n.pods.shapes.iter().map(|on| &on.shape));
    let mut templates = HashMap::new();
    for shape in pending.chain(running) {
        if let Some(owner) = shape.owner.as_deref().filter(|o| skews.contains_key(o)) {
            templates.entry(owner).or_insert(&*shape.template);
        }
    }
    templates
}

/// Which nodes count for a workload's spread, and which it may go to.
struct Rules<'a> {
    templates: HashMap<&'a WorkloadRef, &'a PodTemplate>,
    groups: HashMap<&'a str, &'a NodeGroup>,
}

impl Rules<'_> {
    /// A node of `group` counts for `workload`'s spread: its group is unknown, or its labels
    /// admit the pods (a taint does not keep a node from counting).
    fn counts(&self, group: Option<&str>, workload: &WorkloadRef) -> bool {
        match (group.and_then(|g| self.groups.get(g)), self.templates.get(workload)) {
            (Some(group), Some(template)) => {
                !matches!(group.refusal(*template), Some(Refusal::Label { .. } | Refusal::AffinityKey(_)))
            }
            _ => true,
        }
    }

    /// The node may take one of the pods now: Ready, uncordoned, of a group that admits them.
    fn fills(&self, view: &NodeView, group: Option<&str>, workload: &WorkloadRef) -> bool {
        let admitted = match (group.and_then(|g| self.groups.get(g)), self.templates.get(workload)) {
            (Some(group), Some(template)) => group.admits(*template),
            _ => false,
        };
        view.ready && !view.cordoned && admitted
    }
}

impl Constraints for PodTemplate {
    fn node_selector(&self) -> &BTreeMap<String, String> {
        &self.node_selector
    }
    fn affinity_keys(&self) -> &[String] {
        &self.affinity_keys
    }
    fn tolerations(&self) -> &[ballast_sdk::Toleration] {
        &self.tolerations
    }
}

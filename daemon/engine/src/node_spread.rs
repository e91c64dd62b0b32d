//! Pods kept spread over nodes (a topology spread on `kubernetes.io/hostname` that may not
//! be broken), handed to policies as a cap per node: one more pod on a node may leave it at
//! most `maxSkew` above the node with the fewest, so no node may run more than that fewest
//! plus `maxSkew` until the nodes with the fewest fill.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use ballast_sdk::{Constraints, Node, NodeGroup, PendingPod, Refusal, Resources, WorkloadRef};

use super::observe::was_ready_once;
use super::ports::{ClusterView, NodeInclusion, NodeView, PassOver, PassedOverPod, PodShape, PodTemplate};

/// What the host tells of each workload kept spread over nodes ([`NodeSpreads`]). Its cap,
/// the most of its pods one node may run (see
/// [`WorkloadView::max_node_skew`](super::ports::WorkloadView::max_node_skew)), is the fewest
/// of its pods on a node that counts, plus its skew, once its waiting pods have filled the
/// nodes with the fewest that have room for them, as the scheduler fills them. `nodes` are
/// the snapshot's, one for each of the view's nodes in its order; `being_removed` names the
/// nodes a removal under way will take. Walks the nodes' shapes only when some workload is
/// spread over nodes, and lists every node only for those with pods waiting.
///
/// # Guarantees
/// The fewest is never put above what the scheduler would reach: every node counts but
/// Fargate's, those being removed and those whose group's labels refuse the workload's pods
/// (its node selector or the keys its node affinity requires); taints do not matter, and a
/// node whose group is unknown counts. So the scheduler's defaults have it; a spread's
/// `nodeTaintsPolicy: Honor` leaves out nodes whose taints the pods do not tolerate and
/// cordoned or unready ones, `nodeAffinityPolicy: Ignore` counts nodes whatever their labels
/// ([`NodeInclusion`]). Only an uncordoned node of a group that admits the pods, taints
/// included, is filled, with as many as its free room holds: a Ready one, or one still
/// booting (never Ready yet), which the waiting pods will fill once it is; not one that was
/// lost.
///
/// A node being removed is left out although the scheduler counts it until it is gone: while
/// it stands drained, with none of the pods, the scheduler's cap is `maxSkew` alone and the
/// pods it evicted wait for it to go. The cap given is the one after, and the waiting pods
/// the fill places are told as awaiting that removal ([`NodeSpreads::awaiting_removal`]),
/// so policies buy no node for that wait.
///
/// # Caveats
/// - The fill takes the room as free for the workload's pods alone: other pods waiting for
///   the same room may leave the fewest lower, and the cap with it, until the next tick sees
///   where they went.
/// - A pod told as awaiting a removal is one the fill places; any other reason it waits for
///   (room another workload's waiting pods take first) goes unseen until the node is gone.
/// - A group whose nodes differ in a label the pods select (a zone, in a group over
///   several) is judged by its own labels.
/// - A spread's `minDomains`: while fewer nodes count, the scheduler takes the fewest as
///   none, so each node runs at most `maxSkew`. The cap told then shares the waiting pods
///   over the nodes still missing (at least `maxSkew`), so the nodes bought for them are as
///   many as bring the count up, not one for each `maxSkew` of them; the nodes already up
///   take their share once enough count. With none waiting, the cap is `maxSkew` while too
///   few count and also when just as many do, since a node that went would leave too few:
///   so a removal that would strand its pods is not made.
pub fn caps(
    cluster: &ClusterView,
    nodes: &[Node],
    groups: &[NodeGroup],
    being_removed: &dyn Fn(&str) -> bool,
) -> NodeSpreads {
    let spreads: BTreeMap<&WorkloadRef, Spread> = (cluster.workloads.iter())
        .filter_map(|w| {
            let spread =
                Spread { max_skew: w.max_node_skew?, min_domains: w.min_node_domains, inclusion: w.node_inclusion };
            Some((&w.id, spread))
        })
        .collect();
    if spreads.is_empty() {
        return NodeSpreads::default();
    }
    let seen = Seen::walk(cluster, nodes, &spreads, being_removed);
    let groups: HashMap<&str, &NodeGroup> = groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let waiting = waiting(cluster, &spreads);
    let mut found = NodeSpreads::default();
    for (&w, spread) in &spreads {
        let rules = Rules { groups: &groups, template: seen.templates.get(w).copied(), inclusion: spread.inclusion };
        let counting = seen.counting(&rules);
        // How many more must count than do, for its minDomains and `spare` more: while any,
        // the scheduler takes the fewest as none (`spare` 0), or would once a node went (1).
        let short =
            |spare: u32| spread.min_domains.map_or(0, |m| (m.saturating_add(spare) as usize).saturating_sub(counting));
        let fill = match waiting.get(w) {
            // The waiting pods are planned over the nodes still to come, as evenly as the
            // scheduler fills them once enough count.
            Some(wait) if short(0) > 0 => {
                let even = wait.pods.div_ceil(short(0) as u32);
                Fill { fewest: even.saturating_sub(spread.max_skew), placed: 0 }
            }
            None if short(1) > 0 => Fill::default(),
            Some(wait) => filled(seen.domains(w, wait, &rules), wait.pods, spread.max_skew),
            None => Fill { fewest: seen.fewest(w, counting, &rules), placed: 0 },
        };
        if fill.placed > 0 && seen.leaving.iter().any(|&place| rules.counts(place)) {
            found.awaiting_removal.insert(w.clone(), fill.placed);
        }
        found.caps.insert(w.clone(), fill.fewest + spread.max_skew);
    }
    found
}

/// What the host tells of the workloads kept spread over nodes ([`caps`]).
#[derive(Default)]
pub struct NodeSpreads {
    /// The most pods of each that one node may run.
    pub caps: HashMap<WorkloadRef, u32>,
    /// Of each one's waiting pods, how many wait only for a node being removed to go: the
    /// scheduler counts that node, drained, as the one with the fewest until it is gone, and
    /// then puts them on the room the other nodes have.
    pub awaiting_removal: HashMap<WorkloadRef, u32>,
}

/// Takes out of `pending` the pods that await a removal, as many of each workload's as
/// `awaiting` says, and tells them as passed over: no node need be bought for them.
pub fn awaiting_removal(
    pending: Vec<PendingPod>,
    mut awaiting: HashMap<WorkloadRef, u32>,
) -> (Vec<PendingPod>, Vec<PassedOverPod>) {
    if awaiting.is_empty() {
        return (pending, Vec::new());
    }
    let why: Arc<str> = Arc::from(
        "kept spread over nodes, it waits for a node being removed to go: the scheduler counts that node, \
         drained, as the one with the fewest of its workload's pods until it is gone, and then puts it on room \
         the other nodes have",
    );
    let mut passed = Vec::new();
    let waiting = (pending.into_iter())
        .filter(|pod| {
            let Some(left) = pod.owner.as_ref().and_then(|o| awaiting.get_mut(o)).filter(|left| **left > 0) else {
                return true;
            };
            *left -= 1;
            passed.push(PassedOverPod::taken_out(pod, PassOver::AwaitsRemoval, why.clone()));
            false
        })
        .collect();
    (waiting, passed)
}

/// A workload's spread over nodes.
#[derive(Clone, Copy)]
struct Spread {
    max_skew: u32,
    min_domains: Option<u32>,
    inclusion: NodeInclusion,
}

/// What decides whether a node counts, but for the workload: its group, and whether it
/// carries a taint for being cordoned or not Ready.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Place<'a> {
    group: Option<&'a str>,
    held: bool,
}

/// The nodes that may count for a spread (all but Fargate's and those being removed), by
/// place, with the spread workloads' pods on each.
struct Seen<'a> {
    by_place: HashMap<Place<'a>, Vec<&'a NodeView>>,
    /// Where the nodes being removed stand: the scheduler counts them until they are gone.
    leaving: Vec<Place<'a>>,
    /// Each spread workload's pods on the nodes that run some, with the node's place.
    pods_of: HashMap<&'a WorkloadRef, HashMap<&'a str, PodsOn<'a>>>,
    /// The template of each spread workload's pods, from the first pending or running pod.
    templates: HashMap<&'a WorkloadRef, &'a PodTemplate>,
}

/// A spread workload's pods on one node, and where the node stands.
#[derive(Clone, Copy)]
struct PodsOn<'a> {
    place: Place<'a>,
    pods: u32,
}

impl<'a> Seen<'a> {
    fn walk(
        cluster: &'a ClusterView,
        nodes: &'a [Node],
        spreads: &BTreeMap<&WorkloadRef, Spread>,
        being_removed: &dyn Fn(&str) -> bool,
    ) -> Self {
        let mut seen =
            Seen { by_place: HashMap::new(), leaving: Vec::new(), pods_of: HashMap::new(), templates: HashMap::new() };
        // Shapes are shared between nodes: each is looked up once, by its address.
        let mut spread: HashMap<*const PodShape, Option<&WorkloadRef>> = HashMap::new();
        let mut owner_of = |shape: &'a Arc<PodShape>| {
            *spread
                .entry(Arc::as_ptr(shape))
                .or_insert_with(|| shape.owner.as_deref().filter(|o| spreads.contains_key(o)))
        };
        for shape in cluster.pending.iter().map(|p| &p.shape) {
            if let Some(owner) = owner_of(shape) {
                seen.templates.entry(owner).or_insert(&*shape.template);
            }
        }
        for (view, node) in cluster.nodes.iter().zip(nodes) {
            if view.fargate {
                continue;
            }
            let group = node.group.as_deref();
            if view.removal_mark.is_some() || being_removed(&view.name) {
                // Cordoned by its removal, if not yet by the cluster.
                seen.leaving.push(Place { group, held: true });
                continue;
            }
            let place = Place { group, held: view.cordoned || !view.ready };
            seen.by_place.entry(place).or_default().push(view);
            for on in &view.pods.shapes {
                if let Some(owner) = owner_of(&on.shape) {
                    seen.templates.entry(owner).or_insert(&*on.shape.template);
                    let here = seen.pods_of.entry(owner).or_default();
                    here.entry(&view.name).or_insert(PodsOn { place, pods: 0 }).pods += on.pods.len() as u32;
                }
            }
        }
        seen
    }

    /// How many nodes count for a workload's spread.
    fn counting(&self, rules: &Rules<'_>) -> usize {
        self.by_place.iter().filter(|&(&p, _)| rules.counts(p)).map(|(_, n)| n.len()).sum()
    }

    /// The fewest of `workload`'s pods on a node that counts (`counting` of them): none if
    /// one runs none.
    fn fewest(&self, workload: &WorkloadRef, counting: usize, rules: &Rules<'_>) -> u32 {
        let on_nodes = self.pods_of.get(workload).into_iter().flat_map(|p| p.values());
        let running: Vec<u32> = on_nodes.filter(|p| rules.counts(p.place)).map(|p| p.pods).collect();
        if running.len() < counting { 0 } else { running.into_iter().min().unwrap_or(0) }
    }

    /// Every node that counts for `workload`, with its pods of it and its room for more.
    fn domains(&self, workload: &WorkloadRef, wait: &Waiting, rules: &Rules<'_>) -> Vec<Domain> {
        let pods_of = self.pods_of.get(workload);
        let mut domains = Vec::new();
        for (&place, views) in self.by_place.iter().filter(|&(&p, _)| rules.counts(p)) {
            let admitted = rules.admits(place.group);
            for view in views {
                let pods = pods_of.and_then(|p| p.get(&*view.name)).map_or(0, |p| p.pods);
                // A node still booting is counted by the scheduler (its not-ready taint aside)
                // and takes pods once Ready: the waiting pods will fill it.
                let booting = !view.ready && !was_ready_once(view);
                let room = if admitted && (view.ready || booting) && !view.cordoned { room_for(view, wait) } else { 0 };
                domains.push(Domain { pods, room });
            }
        }
        domains
    }
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

/// Where a spread workload's waiting pods leave it once they have gone where they may.
#[derive(Default)]
struct Fill {
    /// The fewest of its pods on a node that counts.
    fewest: u32,
    /// How many of the waiting pods went to room a node has.
    placed: u32,
}

/// The fewest of the workload's pods on a node once `pods` more have gone, each to a node
/// with the fewest that has room (the scheduler's spread scoring leans so), none to one the
/// skew keeps them from; and how many went.
fn filled(domains: Vec<Domain>, pods: u32, skew: u32) -> Fill {
    if domains.is_empty() {
        return Fill::default();
    }
    let waiting = pods;
    let mut pods = pods;
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
    Fill { fewest: full.min(open.peek().map_or(u32::MAX, |Reverse((on, _))| *on)), placed: waiting - pods }
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
fn waiting<'a>(
    cluster: &'a ClusterView,
    spreads: &BTreeMap<&WorkloadRef, Spread>,
) -> HashMap<&'a WorkloadRef, Waiting> {
    let mut waiting: HashMap<&WorkloadRef, Waiting> = HashMap::new();
    for pod in &cluster.pending {
        if let Some(owner) = pod.shape.owner.as_deref().filter(|o| spreads.contains_key(o)) {
            waiting.entry(owner).or_insert(Waiting { pods: 0, requests: pod.shape.requests }).pods += 1;
        }
    }
    waiting
}

/// Which nodes count for one workload's spread, and which its pods may go to.
struct Rules<'a> {
    groups: &'a HashMap<&'a str, &'a NodeGroup>,
    /// Its pods' template, if any of them is seen.
    template: Option<&'a PodTemplate>,
    inclusion: NodeInclusion,
}

impl Rules<'_> {
    /// A node at `place` counts for the spread: as the scheduler's defaults have it, its
    /// group is unknown or its labels admit the pods, whatever its taints; a spread that
    /// honours taints does not count a node whose taints the pods do not tolerate (nor a
    /// cordoned or unready one), and one that ignores node affinity counts it whatever its
    /// labels.
    fn counts(&self, place: Place<'_>) -> bool {
        let inclusion = self.inclusion;
        if inclusion.honors_taints && place.held {
            return false;
        }
        match (place.group.and_then(|g| self.groups.get(g)), self.template) {
            (Some(group), Some(template)) => {
                let labels = !matches!(group.refusal(template), Some(Refusal::Label { .. } | Refusal::AffinityKey(_)));
                (labels || inclusion.ignores_affinity)
                    && !(inclusion.honors_taints && group.untolerated_taint(template).is_some())
            }
            _ => true,
        }
    }

    /// A node of `group` may take the pods, taints included: its group is known and admits
    /// them.
    fn admits(&self, group: Option<&str>) -> bool {
        match (group.and_then(|g| self.groups.get(g)), self.template) {
            (Some(group), Some(template)) => group.admits(template),
            _ => false,
        }
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

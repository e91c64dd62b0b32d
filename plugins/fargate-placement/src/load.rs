//! Each Auto Scaling group's load by owner: what its Ready nodes run and what waits for it.
//! What a workload costs on EC2 is what it changes in the nodes that load keeps
//! ([`Ec2Group::kept`]).

use std::collections::{HashMap, HashSet};

use ballast_sdk::prelude::*;

use crate::asks::{Asks, of_pod};
use crate::recent::Recent;

/// An Auto Scaling group as this policy weighs it. Worked out once per evaluation, not once
/// per workload.
pub struct Ec2Group<'a> {
    pub group: &'a NodeGroup,
    /// What a new node offers: its launch type's allocatable.
    pub template: Resources,
    pub price: f64,
    load: Vec<Owned>,
    /// The pods waiting for the group, by owner (their requests are also in `load`).
    waiting: Vec<Waiting>,
    /// At its max-size with nodes still on their way ([`Snapshot::booting`]; read only for
    /// a group at its max, the one case [`Ec2Group::full`] asks).
    booting_at_max: bool,
    /// What the workloads brought back from Fargate in this evaluation, priced in this
    /// group, request: not yet on its nodes, but the ones weighed after them run beside it.
    coming: Resources,
}

/// What the pods of one owner request in all (no owner: what nodes request beyond the pods
/// they list with one, DaemonSet pods included).
struct Owned {
    owner: Option<WorkloadRef>,
    requests: Resources,
}

/// The pods of one owner that wait for a group, and how long the first of them has waited.
struct Waiting {
    owner: Option<WorkloadRef>,
    pods: u32,
    oldest_age_seconds: u64,
}

impl Ec2Group<'_> {
    /// Whether pods of `workload` run on the group's Ready nodes or wait for it.
    pub fn holds(&self, workload: &WorkloadRef) -> bool {
        self.load.iter().any(|o| o.owner.as_ref() == Some(workload))
    }

    /// What the group's load requests without the pods of `workload` it is known to hold.
    pub fn without(&self, workload: &WorkloadRef) -> Resources {
        sum(self.load.iter().filter(|o| o.owner.as_ref() != Some(workload))).saturating_add(&self.coming)
    }

    /// Takes the pods of `workload` out of the load: it leaves for Fargate in this
    /// evaluation, so what another workload's leaving would free is counted without it.
    pub fn forget(&mut self, workload: &WorkloadRef) {
        self.load.retain(|o| o.owner.as_ref() != Some(workload));
        self.waiting.retain(|w| w.owner.as_ref() != Some(workload));
    }

    /// How many pods of `workload` the group leaves waiting (pods it admits and that fit a
    /// new node): all that wait for it when one of them has waited `seconds` or longer and
    /// the group is full at `efficiency` ([`Ec2Group::full`]); else none.
    pub fn left_waiting(&self, workload: &WorkloadRef, seconds: u64, efficiency: f64) -> u32 {
        let waited =
            self.waiting.iter().find(|w| w.owner.as_ref() == Some(workload) && w.oldest_age_seconds >= seconds);
        waited.filter(|_| self.full(efficiency)).map_or(0, |w| w.pods)
    }

    /// Whether the group has no room to give the pods that wait for it: at its max-size,
    /// no node it asked for still booting that they could land on, and its load,
    /// the waiting pods included, more than its max-size holds at `efficiency`. Its pods
    /// that wait will go on waiting, whatever EC2 costs.
    ///
    /// # Caveats
    /// Pods that wait because the room left is split into gaps too small for them, in a
    /// group whose load its max-size holds at `efficiency`, are not seen: the group is
    /// not full by this count.
    pub fn full(&self, efficiency: f64) -> bool {
        let g = self.group;
        g.desired_size >= g.max_size
            && !self.booting_at_max
            && self.kept(&self.total(), efficiency) > f64::from(g.max_size)
    }

    /// Adds `requests` of a workload brought back from Fargate in this evaluation, priced
    /// in this group, to its load: the workloads after it are weighed beside it, as they
    /// are weighed without one that leaves ([`Ec2Group::forget`]).
    pub fn expect(&mut self, requests: &Resources) {
        self.coming = self.coming.saturating_add(requests);
    }

    /// What the group's load requests in all.
    pub fn total(&self) -> Resources {
        sum(self.load.iter()).saturating_add(&self.coming)
    }

    /// The least load of the group lately ([`Recent::low`]) and what is coming to it in
    /// this evaluation; its load now when there is no such figure.
    pub fn least(&self, recent: &Recent) -> Resources {
        recent.low(&self.group.id).map_or_else(|| self.total(), |low| low.saturating_add(&self.coming))
    }

    /// A new node's allocatable as far as bin-packing fills it.
    pub fn room(&self, efficiency: f64) -> Resources {
        Resources {
            cpu_millis: (self.template.cpu_millis as f64 * efficiency) as u64,
            memory_bytes: (self.template.memory_bytes as f64 * efficiency) as u64,
            ..self.template
        }
    }

    /// The nodes the group keeps for `load`: as many as its binding resource fills at
    /// `efficiency`, fractionally, and never fewer than its min-size (those are paid for
    /// either way). A workload's leaving frees the difference it makes, and its coming adds
    /// it: never more than the workload's own share of such nodes, and little where the
    /// group is bound by a resource it hardly asks for.
    ///
    /// # Caveats
    /// Fractional, not whole nodes: whole nodes depend on how the pods left behind pack.
    /// Counted in whole pods (first-fit decreasing, tried in session 31) the estimate jumped
    /// by a node from one tick to the next, and two workloads that shared a node's room each
    /// claimed it: flash-sale's storefront and cart went to Fargate together and its cost
    /// rose from $3.40 to $3.66.
    pub fn kept(&self, load: &Resources, efficiency: f64) -> f64 {
        load.utilisation_of(&self.room(efficiency)).max(f64::from(self.group.min_size))
    }
}

/// Every Auto Scaling group with its load, and what the pods read for it ask, by owner.
pub struct Loads<'a> {
    pub groups: Vec<Ec2Group<'a>>,
    pub asks: HashMap<WorkloadRef, Asks>,
}

/// Whether [`loads`] read the node's pods: a Ready node of an Auto Scaling group.
pub fn read(node: &Node, snapshot: &dyn Snapshot) -> bool {
    node.ready
        && node.group.as_deref().and_then(|g| snapshot.node_group(g)).is_some_and(|g| g.kind == NodeGroupKind::Asg)
}

/// Every Auto Scaling group with its load. Reads each Ready node's pods (`pods-on-node`) to
/// tell whose they are; what a node requests beyond the pods it lists with an owner (its
/// DaemonSet pods; everything, from a host without `pods-on-node`) has none.
///
/// # Caveats
/// One `pods-on-node` call per Ready node of a group, each evaluation.
pub fn loads(snapshot: &dyn Snapshot) -> Loads<'_> {
    let on_fargate: HashSet<&WorkloadRef> =
        snapshot.workloads().iter().filter(|w| matches!(w.placement, Placement::Fargate)).map(|w| &w.id).collect();
    let pending: Vec<&PendingShape> =
        snapshot.pending_shapes().iter().filter(|s| s.owner.as_ref().is_none_or(|o| !on_fargate.contains(o))).collect();
    // Ready nodes by group, in snapshot order: one pass over the nodes, not one a group.
    let mut ready: HashMap<&str, Vec<&Node>> = HashMap::new();
    for node in snapshot.nodes().iter().filter(|n| n.ready) {
        if let Some(group) = node.group.as_deref() {
            ready.entry(group).or_default().push(node);
        }
    }
    let mut asks = HashMap::new();
    let groups = snapshot
        .node_groups()
        .iter()
        .filter(|g| g.kind == NodeGroupKind::Asg)
        .map(|g| {
            let template = g.launch_allocatable();
            let (mut load, mut waiting) = (Vec::new(), Vec::new());
            for node in ready.get(g.id.as_str()).into_iter().flatten() {
                on_node(snapshot, node, &mut load, &mut asks);
            }
            // When a cluster starts or a burst arrives, much of a group's load still waits.
            for shape in pending.iter().filter(|s| g.admits(**s)) {
                let one = Resources { pods: 1, ..shape.requests };
                if template.fits(&one) {
                    add(&mut load, shape.owner.as_ref(), one.times(shape.count));
                    wait(&mut waiting, shape);
                }
            }
            let (price, booting_at_max) =
                (g.launch_price_per_hour(), g.desired_size >= g.max_size && snapshot.booting(g) > 0);
            Ec2Group { group: g, template, price, load, waiting, booting_at_max, coming: Resources::ZERO }
        })
        .collect();
    Loads { groups, asks }
}

/// Adds what `node` runs to `load`: its pods that have an owner, by owner, and the rest of
/// what it requests without one. Keeps what the first pod read of each owner asks.
fn on_node(snapshot: &dyn Snapshot, node: &Node, load: &mut Vec<Owned>, asks: &mut HashMap<WorkloadRef, Asks>) {
    let mut owned = Resources::ZERO;
    for shape in snapshot.pods_on_node(&node.name) {
        if let Some(owner) = shape.owner.as_ref().filter(|_| shape.moves_on_drain) {
            let requests = Resources { pods: 1, ..shape.requests }.times(shape.count);
            owned = owned.saturating_add(&requests);
            add(load, Some(owner), requests);
            if !asks.contains_key(owner) {
                asks.insert(owner.clone(), of_pod(&shape));
            }
        }
    }
    add(load, None, node.requested.saturating_sub(&owned));
}

/// Counts the pods of `shape` as waiting for the group, with their owner's others.
fn wait(waiting: &mut Vec<Waiting>, shape: &PendingShape) {
    match waiting.iter_mut().find(|w| w.owner == shape.owner) {
        Some(same) => {
            same.pods += shape.count;
            same.oldest_age_seconds = same.oldest_age_seconds.max(shape.oldest_age_seconds);
        }
        None => waiting.push(Waiting {
            owner: shape.owner.clone(),
            pods: shape.count,
            oldest_age_seconds: shape.oldest_age_seconds,
        }),
    }
}

fn sum<'o>(owned: impl Iterator<Item = &'o Owned>) -> Resources {
    owned.fold(Resources::ZERO, |sum, o| sum.saturating_add(&o.requests))
}

fn add(load: &mut Vec<Owned>, owner: Option<&WorkloadRef>, requests: Resources) {
    match load.iter_mut().find(|o| o.owner.as_ref() == owner) {
        Some(same) => same.requests = same.requests.saturating_add(&requests),
        None => load.push(Owned { owner: owner.cloned(), requests }),
    }
}

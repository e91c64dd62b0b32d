//! Pods kept spread over more zones than they can ever run in: a zone spread's `minDomains`
//! asks that many zones, and while fewer count the scheduler takes the zone with the fewest
//! as holding none, so each zone holds at most `maxSkew` of the workload's pods. Where the
//! nodes its pods may run on, and the groups that would launch more, are in fewer zones than
//! that, the pods past what those zones hold wait however many nodes are bought: they are
//! passed over as unplaceable, with a reason that says so, and no policy buys for them
//! (Cluster Autoscaler's simulation finds no group that helps them either). So are the pods
//! of a workload kept to so many a zone (a required pod anti-affinity on the zone against
//! its own pods: one a zone, as quorum charts set) past what those zones still hold: a
//! rollout's surge pod, say, waits for an old pod to go, not for a node. Where one zone alone
//! has room for such a workload (its pod there lost with its node), its waiting pods select
//! that zone, so no node is bought in a zone that holds one already.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ballast_sdk::{Node, NodeGroup, NodeGroupKind, PendingPod, WorkloadRef};

use super::placement_rules::PodsByZone;
use super::ports::{PassOver, PassedOverPod, WorkloadView};
use super::unplaceable::FargateFallback;

/// Takes out of `pending` the pods of each workload that the zones its pods may run in cannot
/// hold: those zones (of the nodes whose group admits its pods, or is not known, and of the
/// Auto Scaling groups that admit them and may grow) are fewer than its zone spread's
/// `minDomains`, so at most `maxSkew` a zone run; or each holds as many as it keeps to a zone.
/// `by_zone`: its pods by zone now. A workload placed on Fargate (`fargate`) is left alone:
/// its pods go there. One Fargate could take but that runs on EC2 is not: its pods wait for a
/// zone there whatever nodes are bought, and a policy that reads the groups' labels alone
/// bought them (scenario 150 of the rules hunt grew a group to its max).
///
/// # Guarantees
/// A pod is taken out only when no node of any group could ever let it run while the rule,
/// the groups and the workload's running pods stay as they are; the first waiting pods, up
/// to what the zones still hold, stay pending.
pub fn too_few_zones(
    pending: Vec<PendingPod>,
    views: &[WorkloadView],
    by_zone: &PodsByZone,
    groups: &[NodeGroup],
    nodes: &[Node],
    fargate: &FargateFallback<'_>,
) -> (Vec<PendingPod>, Vec<PassedOverPod>) {
    let asked: HashMap<&WorkloadRef, Asked> = (views.iter())
        .filter_map(|w| Some((&w.id, Asked::of(w)?)))
        .filter(|(id, _)| !fargate.placed_there(id))
        .collect();
    if asked.is_empty() {
        return (pending, Vec::new());
    }
    let mut left: HashMap<&WorkloadRef, Left> = HashMap::new();
    let mut passed = Vec::new();
    let mut waiting = Vec::with_capacity(pending.len());
    for pod in pending {
        let Some((owner, &spread)) = pod.owner.as_ref().and_then(|o| asked.get_key_value(o)) else {
            waiting.push(pod);
            continue;
        };
        let running = by_zone.get(owner);
        let left = left.entry(owner).or_insert_with(|| Left::new(&pod, spread, running, groups, nodes));
        match (left.room, &left.why) {
            (0, Some(why)) => passed.push(PassedOverPod::taken_out(&pod, PassOver::TooFewZones, why.clone())),
            _ => {
                left.room = left.room.saturating_sub(1);
                let mut pod = pod;
                if let Some(zone) = &left.only_zone {
                    crate::zone_affinity::select_zone(&mut pod.node_selector, zone);
                }
                waiting.push(pod);
            }
        }
    }
    (waiting, passed)
}

/// What a workload's rules ask of zones.
#[derive(Clone, Copy)]
enum Asked {
    /// A zone spread's `minDomains` zones, `maxSkew` a zone while fewer count.
    Domains { min_domains: u32, max_skew: u32 },
    /// At most this many of its pods in any zone.
    PerZone(u32),
}

impl Asked {
    fn of(w: &WorkloadView) -> Option<Asked> {
        match (w.min_zone_domains.zip(w.max_zone_skew), w.max_per_zone) {
            (Some((min_domains, max_skew)), _) => Some(Asked::Domains { min_domains, max_skew }),
            (None, Some(max)) => Some(Asked::PerZone(max)),
            (None, None) => None,
        }
    }
}

/// What is left for one workload's waiting pods: how many more the zones hold, and, when
/// they are too few, why the rest wait for ever.
struct Left {
    room: u32,
    why: Option<Arc<str>>,
    /// The one zone with room left for a workload kept to so many a zone, if one alone has.
    only_zone: Option<String>,
}

impl Left {
    /// `running`: the workload's pods by zone now.
    fn new(
        pod: &PendingPod,
        asked: Asked,
        running: Option<&BTreeMap<String, u32>>,
        groups: &[NodeGroup],
        nodes: &[Node],
    ) -> Self {
        let zones = zones_for(pod, groups, nodes);
        let named: Vec<&str> = zones.iter().copied().collect();
        let named = if named.is_empty() { "none".to_string() } else { named.join(", ") };
        let in_zone = |zone: &str| running.and_then(|r| r.get(zone)).copied().unwrap_or(0);
        match asked {
            Asked::Domains { min_domains, .. } if zones.len() >= min_domains as usize => {
                Left { room: u32::MAX, why: None, only_zone: None }
            }
            Asked::Domains { min_domains, max_skew: skew } => {
                let most = skew.saturating_mul(zones.len() as u32);
                let why = Arc::from(format!(
                    "kept spread over at least {min_domains} zones (minDomains), but the nodes and groups its pods \
                     may run on are in {} ({named}): until {min_domains} count the scheduler puts at most {skew} in \
                     a zone, so at most {most} run; add a group in another zone or lower minDomains",
                    zones.len(),
                ));
                let all: u32 = running.into_iter().flat_map(|r| r.values()).sum();
                Left { room: most.saturating_sub(all), why: Some(why), only_zone: None }
            }
            Asked::PerZone(max) => {
                let room = zones.iter().map(|z| max.saturating_sub(in_zone(z))).sum();
                let why = Arc::from(format!(
                    "kept to at most {max} a zone (required pod anti-affinity on topology.kubernetes.io/zone against \
                     its own pods), and each zone its pods may run in ({named}) holds that many already: it waits \
                     for one of them to go, not for a node; add a group in another zone or run fewer replicas"
                ));
                let open: Vec<&str> = zones.iter().copied().filter(|z| in_zone(z) < max).collect();
                let only_zone = match open[..] {
                    [zone] => Some(zone.to_string()),
                    _ => None,
                };
                Left { room, why: Some(why), only_zone }
            }
        }
    }
}

/// The zones `pod` may run in: those of the nodes whose group admits it (or is not known),
/// and of the Auto Scaling groups that admit it and may grow.
fn zones_for<'a>(pod: &PendingPod, groups: &'a [NodeGroup], nodes: &'a [Node]) -> BTreeSet<&'a str> {
    let by_id: HashMap<&str, &NodeGroup> = groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let growable = groups.iter().filter(|g| g.kind == NodeGroupKind::Asg && g.max_size > 0 && g.admits(pod));
    let from_nodes = nodes.iter().filter(|n| match n.group.as_deref().and_then(|g| by_id.get(g)) {
        Some(group) => group.kind == NodeGroupKind::Asg && group.admits(pod),
        None => true,
    });
    (growable.flat_map(|g| g.zones.iter().map(String::as_str)))
        .chain(from_nodes.map(|n| n.zone.as_str()))
        .filter(|zone| !zone.is_empty())
        .collect()
}

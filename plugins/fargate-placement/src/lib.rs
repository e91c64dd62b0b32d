//! `fargate-placement`: per workload, Fargate or EC2, whichever costs less at its replica
//! count now.
//!
//! Fargate bills each replica at its rounded size (requests plus 256 MiB, rounded up to an
//! allowed vCPU/memory pair), so its cost grows replica by replica. EC2 is bought a node at a
//! time, each filled to `packing-efficiency`:
//! - a workload not placed yet costs the whole nodes of the cheapest admitting group that
//!   must be added for what spare room on running nodes cannot hold (nothing if it all fits);
//! - a workload on Fargate costs the whole nodes a group's load would need for the most
//!   replicas it ran within `peak-window-seconds`, beyond those the least load of the group
//!   in that time needs ([`recent`]), and never less than the share of them its leaving
//!   would free (else the slack of the low load's last node calls back, the tick after,
//!   what just left). Spare room is not free to it (that room is often the room it left,
//!   which scale-down will reclaim), but what a group keeps all along for a resource it
//!   hardly asks for is: CPU-heavy pods come back beside memory-heavy ones. A workload
//!   whose bursts are dear on EC2, or that fits only while short batch runs keep a group's
//!   nodes, does not come back only to leave again;
//! - a workload on EC2 costs what its leaving would free of its group's nodes, counted
//!   fractionally in the resource that binds the group (nothing if it fits in spare room
//!   again). A CPU-heavy workload beside memory-heavy ones in a group short of memory frees
//!   little: the nodes stay for the memory, and its CPU there was nearly free. The group's
//!   load is what its Ready nodes' pods request and what the pods waiting for it request,
//!   by owner ([`load`]), so a workload spread over two groups is taken out of each rather
//!   than counted again on top of the half a group runs; nodes its min-size keeps are paid
//!   for either way, so leaving frees none of them. This
//!   is never more than its share of such nodes, which is what it costs when that load does
//!   not account for it. EC2 is taken at its cheapest: the group it runs in, or a cheaper
//!   one that would take it and can grow by what it needs: not one whose desired size plus
//!   the nodes it was priced at passes its max (a group at its max, busy now though its
//!   load was low lately, would leave the pods that came waiting). A group
//!   takes it when it admits what its pods ask (selectors, affinity keys, tolerations: a
//!   tainted spot group its pods tolerate counts), read from one of its pods ([`asks`]); a
//!   workload none of whose pods can be read is weighed against the untainted groups;
//! - a group its pods wait for is no option when the group has no room to give them (at
//!   its max-size, no node it asked for still booting, its load past what that many nodes hold
//!   at `packing-efficiency`: [`load::Ec2Group::full`]) and one of them has waited
//!   `full-group-wait-seconds`: the replicas it runs there cost little, but the ones that
//!   wait would wait for as long as the load stays. Unless moving all its replicas costs
//!   more over EC2 than the waiting ones would on Fargate (a pod or two a spike's peak
//!   leaves waiting, [`worth_leaving`]), it goes to Fargate with no other group to grow,
//!   and the workloads weighed after it see the room it leaves: of several whose pods
//!   wait for the same full group, only as many go as it takes to make room.
//!
//! Workloads are weighed one after another, in snapshot order, each on the groups the
//! ones sent to Fargate before it leave and beside the ones brought back before it: a
//! workload's leaving frees what it frees beside the others that stay, and where two share
//! a group's binding resource only the first leaves (the second, beside a group bound by
//! another resource, frees little). The same holds coming back: two memory-heavy workloads
//! that each fit in the memory a CPU-bound group keeps do not both come back, to make
//! memory bind and each be worth sending off again. What one brought back requests counts
//! in its group's least load from then on ([`recent::Recent::brought`]), so the next tick,
//! while its pods still wait, does not weigh the other beside the room it takes.
//!
//! A workload sent to EC2 is sent to EC2, not to the group it was priced in: where its pods
//! land is the scheduler's and the scale-up policy's choice, as for any workload that never
//! went to Fargate. Pinned to that group (a nodeSelector), it could not follow a cheaper
//! group later, nor fall back to another when a spot group cannot launch.
//!
//! So a workload on Fargate follows its replica count: a few replicas would cost a whole
//! node on EC2 and stay on Fargate; a peak that fills nodes moves to EC2 when that is cheaper
//! per replica, as does a workload whose group comes to keep room it can use. A workload
//! moves only when the saving beats `hysteresis` (and the host holds it for its placement
//! cooldown), so placements do not flap; a workload Fargate cannot run (DaemonSet, EBS
//! volume, GPU, ...) is never proposed for it.
//!
//! # Caveats
//! What leaving frees is counted fractionally over the group's load, not in whole nodes:
//! whole nodes depend on how the pods left behind pack. Counting the nodes a workload holds
//! alone (session 17) freed nodes that consolidation then could not remove (small pods fill
//! the gaps beside big ones), and cost rose; counting whole pods packed first-fit
//! decreasing (session 31) made the estimate jump a node from tick to tick
//! ([`load::Ec2Group::kept`]). So a workload whose pods fill the gaps whole pods of others
//! leave (3 GiB beside 4 GiB on 8 GiB nodes) is priced at its share and may go to Fargate
//! for room that was free.
//!
//! It proposes nothing the host would refuse for a standing reason: no Fargate target when
//! the cluster has no Fargate profile, nothing for a workload with no replicas (there is
//! no cost to compare until it has some), and nothing for a workload the host's placement
//! cooldown still holds (the snapshot's `placement-cooldowns`, contract 0.1.8).

mod asks;
mod load;
mod recent;

use asks::Asks;
use ballast_sdk::prelude::*;
use load::{Ec2Group, Loads};
use recent::Recent;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    /// Fraction of a node's allocatable that bin-packing actually fills.
    pub packing_efficiency: f64,
    /// Minimum relative saving before moving a placed workload.
    pub hysteresis: f64,
    /// Only these namespaces are considered; empty means all.
    pub namespaces: Vec<String>,
    /// A workload on Fargate is priced on EC2 at the most replicas it ran within this
    /// window, beside the least load its group had in it, so one whose bursts are dear on
    /// EC2, or that fits only while batch runs keep nodes, stays there.
    pub peak_window_seconds: u64,
    /// How long pods must have waited for a group at its max-size that has no room for
    /// them before their workload goes to Fargate though EC2 is cheaper
    /// ([`load::Ec2Group::full`]): pods a spike's peak or a repacking leaves waiting for a
    /// few minutes do not move a whole workload.
    pub full_group_wait_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            packing_efficiency: 0.8,
            hysteresis: 0.1,
            namespaces: Vec::new(),
            peak_window_seconds: 1800,
            full_group_wait_seconds: 300,
        }
    }
}

pub struct FargatePlacement;

impl Policy for FargatePlacement {
    type Settings = Settings;
    type State = Recent;

    fn validate(settings: &Settings) -> Result<(), String> {
        if !(settings.packing_efficiency > 0.0 && settings.packing_efficiency <= 1.0) {
            return Err(format!("packing-efficiency must be in (0, 1], got {}", settings.packing_efficiency));
        }
        if !(0.0..1.0).contains(&settings.hysteresis) {
            return Err(format!("hysteresis must be in [0, 1), got {}", settings.hysteresis));
        }
        if settings.peak_window_seconds > 7 * 86_400 {
            return Err(format!(
                "peak-window-seconds must be at most 604800 (a week), got {}",
                settings.peak_window_seconds
            ));
        }
        if settings.full_group_wait_seconds > 86_400 {
            return Err(format!(
                "full-group-wait-seconds must be at most 86400 (a day), got {}",
                settings.full_group_wait_seconds
            ));
        }
        Ok(())
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, recent: &mut Recent) -> Result<Vec<Decision>, String> {
        // Without a Fargate profile there is no choice to make.
        if !snapshot.node_groups().iter().any(|g| g.kind == NodeGroupKind::Fargate) {
            return Ok(Vec::new());
        }
        let pricing = snapshot.fargate_pricing();
        let Loads { mut groups, asks: seen } = load::loads(snapshot);
        let (now, window_ms) = (snapshot.taken_at_millis(), settings.peak_window_seconds.saturating_mul(1000));
        let on_fargate = snapshot.workloads().iter().filter(|w| w.placement == Placement::Fargate);
        let loads = groups.iter().map(|g| (g.group.id.as_str(), g.total()));
        recent.observe(on_fargate, loads, now, window_ms);
        let mut spare = spare_ec2_room(snapshot);
        let weighed: Vec<&Workload> = snapshot
            .workloads()
            .iter()
            .filter(|w| settings.namespaces.is_empty() || settings.namespaces.contains(&w.id.namespace))
            .filter(|w| w.replicas > 0)
            // Moved lately: the host's placement cooldown would refuse another move.
            .filter(|w| snapshot.may_place(&w.id))
            .collect();
        let asks = asks::of(snapshot, &weighed, seen, |node| load::read(node, snapshot));
        let mut decisions = Vec::new();
        let (mut sent, mut brought) = (Vec::new(), Vec::new());
        for workload in weighed {
            let candidates = Candidates { groups: &groups, asks: asks.get(&workload.id), recent: &*recent };
            let Some(choice) = choose(&candidates, settings, pricing, &spare, workload) else { continue };
            // A workload coming to EC2 takes spare room from the ones after it; one already
            // there holds its own room, not spare room.
            if matches!(choice.target, PlacementTarget::Ec2(_)) && !matches!(workload.placement, Placement::Ec2(_)) {
                spare = spare.saturating_sub(&total(workload));
            }
            let current = match &workload.placement {
                Placement::Fargate => Some(PlacementTarget::Fargate),
                Placement::Ec2(group) => Some(PlacementTarget::Ec2(group.clone())),
                Placement::Unplaced => None,
            };
            let same_kind = matches!(
                (&current, &choice.target),
                (Some(PlacementTarget::Fargate), PlacementTarget::Fargate)
                    | (Some(PlacementTarget::Ec2(_)), PlacementTarget::Ec2(_))
            );
            if same_kind || (current.is_some() && !choice.beats_hysteresis) {
                continue;
            }
            let to_fargate = choice.target == PlacementTarget::Fargate;
            decisions.push(Decision::new(
                Action::Place { workload: workload.id.clone(), target: choice.target },
                (choice.reason)(),
            ));
            if to_fargate {
                // The workloads after it are weighed on the groups it leaves: each counted
                // against the others staying, workloads that share a group's binding
                // resource would all leave at once, and each would then be cheap to bring
                // back beside a group the others left.
                groups.iter_mut().for_each(|g| g.forget(&workload.id));
                sent.push(workload);
            } else if let (Placement::Fargate, Some(back)) = (&workload.placement, choice.coming) {
                // Weighed beside the least load alone, two workloads that each fit in room
                // the group keeps for another resource would both come back, make that
                // resource bind, and each be worth sending off again.
                groups.iter_mut().filter(|g| g.group.id == back.group).for_each(|g| g.expect(&back.requests));
                brought.push(back);
            }
        }
        for workload in sent {
            recent.sent(workload, now, window_ms);
        }
        for back in brought {
            recent.brought(back.group, &back.requests);
        }
        Ok(decisions)
    }
}

/// A placement and, built only if it becomes a decision, its reason: formatting prices for
/// every workload on every tick would cost more than the choice itself.
struct Choice<'a> {
    target: PlacementTarget,
    reason: Box<dyn FnOnce() -> String + 'a>,
    beats_hysteresis: bool,
    /// For EC2: the group it was priced in and what it was priced at.
    coming: Option<Coming<'a>>,
}

/// What a workload sent to EC2 adds to the group it was priced in.
struct Coming<'a> {
    group: &'a str,
    requests: Resources,
}

fn choose<'a>(
    groups: &Candidates<'_, 'a>,
    settings: &'a Settings,
    pricing: &FargatePricing,
    spare: &Resources,
    workload: &'a Workload,
) -> Option<Choice<'a>> {
    let requests = &workload.requests_per_replica;
    if let Some(blocker) = &workload.fargate_blocker {
        // Only move it off Fargate if it is somehow there; otherwise nothing to decide.
        return matches!(workload.placement, Placement::Fargate).then(|| Choice {
            target: PlacementTarget::Ec2(None),
            reason: Box::new(move || format!("{} cannot run on Fargate: {blocker}", workload.id)),
            beats_hysteresis: true,
            coming: None,
        });
    }
    let fargate = pricing.billed_size(requests).map(|size| (size, pricing.hourly_price(&size)));
    let ec2 = ec2_cost(groups, settings, spare, workload, fargate.map(|(_, price)| price));
    let replicas = workload.replicas.max(1) as f64;
    match (fargate, ec2) {
        (None, None) => None,
        (None, Some(ec2)) => Some(Choice {
            target: PlacementTarget::Ec2(None),
            coming: Some(ec2.coming(workload)),
            reason: Box::new(move || {
                format!(
                    "{}: no Fargate size fits {requests} per replica; EC2, cheapest in group {}",
                    workload.id, ec2.group
                )
            }),
            beats_hysteresis: true,
        }),
        (Some((size, price)), None) => {
            let stuck = groups.stuck(workload, settings);
            Some(Choice {
                target: PlacementTarget::Fargate,
                coming: None,
                reason: Box::new(move || {
                    let why = match stuck {
                        Some(Stuck { group, pods }) => format!(
                            "{pods} of its pods {} for group {} at its max-size of {}, every node Ready, and no other EC2 group admits them or can grow for them",
                            if pods == 1 { "waits" } else { "wait" },
                            group.id,
                            group.max_size
                        ),
                        None => "no EC2 group admits it or can grow for it".to_string(),
                    };
                    format!("{}: {why}; Fargate {size} at ${price:.4}/h per replica", workload.id)
                }),
                beats_hysteresis: true,
            })
        }
        (Some((size, fargate_price)), Some(ec2)) => {
            let ec2_price = ec2.per_replica();
            let fargate_wins = fargate_price < ec2_price;
            let (cheap, dear) = if fargate_wins { (fargate_price, ec2_price) } else { (ec2_price, fargate_price) };
            let saving = (dear - cheap) * replicas;
            let target = if fargate_wins { PlacementTarget::Fargate } else { PlacementTarget::Ec2(None) };
            let coming = (!fargate_wins).then(|| ec2.coming(workload));
            let reason = move || {
                format!(
                    "{}: Fargate {size} at ${fargate_price:.4}/h per replica vs {}; {} saves ${saving:.4}/h for {} replicas",
                    workload.id,
                    ec2.describe(settings),
                    if fargate_wins { "Fargate" } else { "EC2" },
                    workload.replicas
                )
            };
            Some(Choice {
                target,
                reason: Box::new(reason),
                beats_hysteresis: dear > 0.0 && (dear - cheap) / dear > settings.hysteresis,
                coming,
            })
        }
    }
}

/// The groups a workload may run in: those that admit what its pods ask (selectors, affinity
/// keys, tolerations), or the untainted ones when none of its pods can be read; and what
/// it and they reached lately.
struct Candidates<'g, 'a> {
    groups: &'g [Ec2Group<'a>],
    asks: Option<&'g Asks>,
    recent: &'g Recent,
}

impl<'g, 'a> Candidates<'g, 'a> {
    fn admitting(&self, one: &Resources) -> impl Iterator<Item = &'g Ec2Group<'a>> + Clone {
        let asks = self.asks;
        self.groups.iter().filter(move |g| {
            g.template.fits(one) && asks.map_or(g.group.taints.is_empty(), |asks| g.group.admits(asks))
        })
    }

    /// The first group that admits `workload` where pods of it wait and that has no room
    /// to give them ([`Ec2Group::full`]).
    fn stuck(&self, workload: &Workload, settings: &Settings) -> Option<Stuck<'a>> {
        self.admitting(&one_replica(workload)).find_map(|g| {
            let pods = g.left_waiting(&workload.id, settings.full_group_wait_seconds, settings.packing_efficiency);
            (pods > 0).then_some(Stuck { group: g.group, pods })
        })
    }
}

/// A group pods of a workload wait for, at its max-size and full.
#[derive(Clone, Copy)]
struct Stuck<'a> {
    group: &'a NodeGroup,
    pods: u32,
}

/// What a workload's replicas cost on EC2 at their count now, in nodes of one group.
struct Ec2Cost<'a> {
    group: &'a str,
    nodes: f64,
    node_price: f64,
    /// The replicas those nodes are for: its count now, or its recent peak ([`Basis::Grown`]).
    replicas: u32,
    basis: Basis,
}

/// How [`Ec2Cost::nodes`] was counted.
enum Basis {
    /// It all fits in room already paid for.
    Spare,
    /// Whole nodes to add for what spare room cannot hold: a workload not placed yet.
    NewNodes,
    /// Whole nodes the group's load would need for the most replicas the workload ran
    /// lately, beyond those the least load of the group in that time needs, and no fewer
    /// than its share of them: a workload on Fargate. Spare room is not free to it (often
    /// the room it left, which scale-down reclaims), but room its group keeps all along for
    /// a resource it hardly asks for is.
    Grown,
    /// What its leaving would free of the nodes of a group that holds it: the nodes the
    /// group's load keeps with it less those it keeps without ([`Ec2Group::kept`]).
    Freed,
    /// What its coming would add to the nodes of a group that does not hold it, counted the
    /// same way: a workload on EC2 weighed in another group.
    Added,
}

impl<'a> Ec2Cost<'a> {
    fn total(&self) -> f64 {
        self.nodes * self.node_price
    }

    fn per_replica(&self) -> f64 {
        self.total() / self.replicas.max(1) as f64
    }

    /// What `workload` adds to the group if it comes: the replicas it was priced at.
    fn coming(&self, workload: &Workload) -> Coming<'a> {
        Coming { group: self.group, requests: one_replica(workload).times(self.replicas) }
    }

    fn describe(&self, settings: &Settings) -> String {
        let (price, group, replicas) = (self.per_replica(), self.group, self.replicas);
        let (nodes, packing) = (self.nodes, settings.packing_efficiency * 100.0);
        match self.basis {
            Basis::Spare => "EC2 $0/h (fits in spare room on running nodes)".to_string(),
            Basis::NewNodes => format!(
                "EC2 ${price:.4}/h per replica in group {group} ({nodes} new node{} at ${:.4}/h for what spare room cannot hold)",
                if nodes == 1.0 { "" } else { "s" },
                self.node_price
            ),
            Basis::Grown => format!(
                "EC2 ${price:.4}/h per replica in group {group} ({} new node{} at ${:.4}/h for {replicas} replicas, the most it ran within {}s, beside the group's least load then)",
                if nodes.fract() == 0.0 { format!("{nodes}") } else { format!("{nodes:.2}") },
                if nodes == 1.0 { "" } else { "s" },
                self.node_price,
                settings.peak_window_seconds
            ),
            Basis::Freed => format!(
                "EC2 ${price:.4}/h per replica in group {group} ({nodes:.2} of its nodes at {packing:.0}% packing freed if it left)"
            ),
            Basis::Added => format!(
                "EC2 ${price:.4}/h per replica in group {group} ({nodes:.2} of its nodes at {packing:.0}% packing added if it came)"
            ),
        }
    }
}

/// The workload's EC2 cost in the cheapest group that admits one replica: the group it is
/// on when none is cheaper, else the first of equally cheap ones, in snapshot order. A
/// workload running in a dear group is not sent to Fargate when a cheaper group would take
/// it: Fargate must beat EC2 at its best.
///
/// Spare room is free only to a workload not on Fargate: for one on Fargate it is transient,
/// often the room it left behind, which scale-down will reclaim; counting it as free would
/// move the workload back and forth. One on Fargate is priced in whole nodes its group's
/// load would need for its recent peak ([`Basis::Grown`]).
fn ec2_cost<'a>(
    groups: &Candidates<'_, 'a>,
    settings: &Settings,
    spare: &Resources,
    workload: &Workload,
    fargate_price: Option<f64>,
) -> Option<Ec2Cost<'a>> {
    let one = one_replica(workload);
    let all = total(workload);
    let fits_spare = !matches!(workload.placement, Placement::Fargate) && spare.fits(&all);
    let efficiency = settings.packing_efficiency;
    // Read once, not once a group: the most replicas a workload on Fargate ran lately.
    let peak = (workload.placement == Placement::Fargate).then(|| groups.recent.peak(workload));
    let cost = |g: &Ec2Group<'a>| {
        // The nodes the group would run with it, when it needs more than it has.
        let (nodes, basis, would_run, replicas) = match &workload.placement {
            _ if fits_spare => (0.0, Basis::Spare, None, workload.replicas),
            Placement::Ec2(on) => {
                let (without, held) = load_without(g, workload, on.as_deref());
                let with = g.kept(&without.saturating_add(&all), efficiency);
                let nodes = with - g.kept(&without, efficiency);
                let basis = if held { Basis::Freed } else { Basis::Added };
                (nodes, basis, (!held).then(|| grown_to(g, with, nodes)), workload.replicas)
            }
            Placement::Fargate => {
                let low = g.least(groups.recent);
                let peak = peak.unwrap_or(workload.replicas);
                let (low_kept, with) =
                    (g.kept(&low, efficiency), g.kept(&low.saturating_add(&one.times(peak)), efficiency));
                // Never less than the share its leaving would free: else the slack of the
                // low load's last node would call it back the tick after it left.
                let nodes = (with.ceil() - low_kept.ceil()).max(with - low_kept);
                (nodes, Basis::Grown, Some(grown_to(g, with, nodes)), peak)
            }
            Placement::Unplaced => {
                let nodes = nodes_for(&all.saturating_sub(spare), &g.room(efficiency));
                (nodes, Basis::NewNodes, Some(grown_to(g, 0.0, nodes)), workload.replicas)
            }
        };
        // A group that cannot grow that far (at its max) is no option: its pods would spill
        // to a dearer group, or wait.
        let grows = would_run.is_none_or(|n| n.ceil() <= f64::from(g.group.max_size));
        if !grows {
            return None;
        }
        let cost = Ec2Cost { group: &g.group.id, nodes: nodes.max(0.0), node_price: g.price, replicas, basis };
        // Its pods wait for a group that has no room to give them: they would wait for as
        // long as the group's load stays (a group at its max grows no more). The group is
        // no option unless moving all its replicas costs more over EC2 than those pods
        // would on Fargate.
        let waiting = g.left_waiting(&workload.id, settings.full_group_wait_seconds, efficiency);
        let stuck = waiting > 0
            && fargate_price.is_some_and(|f| worth_leaving(f, cost.per_replica(), workload.replicas, waiting));
        (!stuck).then_some(cost)
    };
    let admitting = groups.admitting(&one);
    let on = match &workload.placement {
        Placement::Ec2(Some(on)) => admitting.clone().find(|g| g.group.id == *on),
        _ => None,
    };
    // `min_by` keeps the first of equal ones: the group it is on, then snapshot order.
    on.into_iter().chain(admitting).filter_map(cost).min_by(|a, b| a.total().total_cmp(&b.total()))
}

/// Whether a workload some of whose pods a full group leaves waiting ([`Ec2Group::full`])
/// is worth sending to Fargate at `fargate` per replica against `ec2`: what moving all its
/// `replicas` costs over EC2 is no more than its `waiting` pods would cost on Fargate. So
/// the share of its replicas that wait must be at least the share of Fargate's price EC2
/// saves: half of them where EC2 costs half as much, a fifth where it costs 80%. A pod or
/// two a spike's peak leaves waiting do not move a whole workload much cheaper on EC2.
fn worth_leaving(fargate: f64, ec2: f64, replicas: u32, waiting: u32) -> bool {
    (fargate - ec2) * f64::from(replicas) <= fargate * f64::from(waiting)
}

/// The size `g` would grow to for a workload coming to it that `nodes` more nodes were
/// priced at: its desired size plus those nodes, or the nodes its load would need with it
/// (`with`), whichever is more. The load alone is not enough: a group whose nodes pack
/// looser than `packing-efficiency`, or whose load is past the least one a workload on
/// Fargate is priced beside, runs more nodes than it would need, and at its max it has no
/// room to grow into, so the pods that came would wait.
fn grown_to(g: &Ec2Group<'_>, with: f64, nodes: f64) -> f64 {
    with.max(f64::from(g.group.desired_size) + nodes.max(0.0).ceil())
}

/// The load of `g` without `workload`'s pods, and whether `g` holds any of them. Its pods
/// are known by owner wherever they run, so a workload spread over groups is taken out of
/// each; from a host that lists no pods, the group it is on holds it (not knowing which, any
/// whose load could hold it) and its total is taken out.
fn load_without(g: &Ec2Group<'_>, workload: &Workload, on: Option<&str>) -> (Resources, bool) {
    let without = g.without(&workload.id);
    if g.holds(&workload.id) {
        return (without, true);
    }
    let all = total(workload);
    let held = on.map_or(without.fits(&all), |on| on == g.group.id);
    (if held { without.saturating_sub(&all) } else { without }, held)
}

/// Whole nodes of `room` needed to hold `need`: the largest ratio over the dimensions the
/// node has, rounded up.
fn nodes_for(need: &Resources, room: &Resources) -> f64 {
    let ratio = |n: u64, r: u64| if r > 0 { n as f64 / r as f64 } else { 0.0 };
    ratio(need.cpu_millis, room.cpu_millis)
        .max(ratio(need.memory_bytes, room.memory_bytes))
        .max(ratio(need.pods.into(), room.pods.into()))
        .max(ratio(need.gpus.into(), room.gpus.into()))
        .ceil()
}

/// Free room on ready, schedulable EC2 nodes.
fn spare_ec2_room(snapshot: &dyn Snapshot) -> Resources {
    let asg: std::collections::HashSet<&str> =
        snapshot.node_groups().iter().filter(|g| g.kind == NodeGroupKind::Asg).map(|g| g.id.as_str()).collect();
    snapshot
        .nodes()
        .iter()
        .filter(|n| n.ready && !n.cordoned)
        .filter(|n| n.group.as_deref().is_some_and(|g| asg.contains(g)))
        .fold(Resources::ZERO, |acc, n| acc.saturating_add(&n.allocatable.saturating_sub(&n.requested)))
}

/// All of a workload's replicas' requests, a pod slot each.
fn total(workload: &Workload) -> Resources {
    one_replica(workload).times(workload.replicas)
}

/// One replica's requests and its pod slot.
fn one_replica(workload: &Workload) -> Resources {
    Resources { pods: 1, ..workload.requests_per_replica }
}

ballast_sdk::export_policy!(FargatePlacement);

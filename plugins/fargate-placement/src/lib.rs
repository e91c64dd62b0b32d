//! `fargate-placement`: per workload, Fargate or EC2, whichever costs less.
//!
//! Fargate bills each replica at its rounded size (requests plus 256 MiB, rounded up to an
//! allowed vCPU/memory pair). EC2's cost for a replica is marginal: zero while the existing
//! nodes have spare room for the whole workload (it is already paid for), otherwise the
//! replica's share of a new node of the cheapest admitting group, divided by the packing
//! efficiency actually reached (for a workload already on Fargate, always the latter: the
//! room it left behind is not free). A workload moves only when the saving beats `hysteresis`, so
//! placements do not flap; a workload Fargate cannot run (DaemonSet, EBS volume, GPU, ...)
//! is never proposed for it.
//!
//! It proposes nothing the host would refuse for a standing reason: no Fargate target when
//! the cluster has no Fargate profile, and nothing for a workload with no replicas (there is
//! no cost to compare until it has some).

use ballast_sdk::prelude::*;
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings { packing_efficiency: 0.8, hysteresis: 0.1, namespaces: Vec::new() }
    }
}

pub struct FargatePlacement;

impl Policy for FargatePlacement {
    type Settings = Settings;
    type State = ();

    fn validate(settings: &Settings) -> Result<(), String> {
        if !(settings.packing_efficiency > 0.0 && settings.packing_efficiency <= 1.0) {
            return Err(format!("packing-efficiency must be in (0, 1], got {}", settings.packing_efficiency));
        }
        if !(0.0..1.0).contains(&settings.hysteresis) {
            return Err(format!("hysteresis must be in [0, 1), got {}", settings.hysteresis));
        }
        Ok(())
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, _: &mut ()) -> Result<Vec<Decision>, String> {
        // Without a Fargate profile there is no choice to make.
        if !snapshot.node_groups().iter().any(|g| g.kind == NodeGroupKind::Fargate) {
            return Ok(Vec::new());
        }
        let pricing = snapshot.fargate_pricing();
        let groups = ec2_groups(snapshot);
        let mut spare = spare_ec2_room(snapshot);
        let mut decisions = Vec::new();
        for workload in snapshot.workloads() {
            if !settings.namespaces.is_empty() && !settings.namespaces.contains(&workload.id.namespace) {
                continue;
            }
            if workload.replicas == 0 {
                continue;
            }
            let Some(choice) = choose(&groups, settings, pricing, &spare, workload) else { continue };
            if let PlacementTarget::Ec2(_) = choice.target {
                let total = scale(&workload.requests_per_replica, workload.replicas);
                spare = spare.saturating_sub(&total);
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
            decisions.push(Decision::new(
                Action::Place { workload: workload.id.clone(), target: choice.target },
                (choice.reason)(),
            ));
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
}

fn choose<'a>(
    groups: &[Ec2Group<'_>],
    settings: &'a Settings,
    pricing: &FargatePricing,
    spare: &Resources,
    workload: &'a Workload,
) -> Option<Choice<'a>> {
    let requests = &workload.requests_per_replica;
    let ec2 = cheapest_ec2_share(groups, settings, requests);
    if let Some(blocker) = &workload.fargate_blocker {
        // Only move it off Fargate if it is somehow there; otherwise nothing to decide.
        return matches!(workload.placement, Placement::Fargate).then(|| Choice {
            target: PlacementTarget::Ec2(ec2.as_ref().map(|(g, _)| g.clone())),
            reason: Box::new(move || format!("{} cannot run on Fargate: {blocker}", workload.id)),
            beats_hysteresis: true,
        });
    }
    let fargate = pricing.billed_size(requests).map(|size| (size, pricing.hourly_price(&size)));
    let total = scale(requests, workload.replicas);
    // Spare EC2 room is free only to a workload already on EC2 (or not yet placed). For one on
    // Fargate it is transient, often the room it left behind, which scale-down will reclaim:
    // counting it as free would move the workload back and forth on every tick.
    let on_fargate = matches!(workload.placement, Placement::Fargate);
    let fits_spare = !on_fargate && spare.fits(&total) && total.cpu_millis > 0;
    let ec2_cost = if fits_spare { Some(0.0) } else { ec2.as_ref().map(|(_, c)| *c) };
    let replicas = workload.replicas.max(1) as f64;
    match (fargate, ec2_cost) {
        (None, None) => None,
        (None, Some(_)) => Some(Choice {
            target: PlacementTarget::Ec2(ec2.map(|(g, _)| g)),
            reason: Box::new(move || format!("{}: no Fargate size fits {requests} per replica", workload.id)),
            beats_hysteresis: true,
        }),
        (Some((size, price)), None) => Some(Choice {
            target: PlacementTarget::Fargate,
            reason: Box::new(move || {
                format!(
                    "{}: no EC2 group admits it; Fargate {} vCPU / {} GiB at ${price:.4}/h per replica",
                    workload.id,
                    size.cpu_millis as f64 / 1000.0,
                    size.memory_mib as f64 / 1024.0
                )
            }),
            beats_hysteresis: true,
        }),
        (Some((size, fargate_price)), Some(ec2_price)) => {
            let fargate_wins = fargate_price < ec2_price;
            let (cheap, dear) = if fargate_wins { (fargate_price, ec2_price) } else { (ec2_price, fargate_price) };
            let saving = (dear - cheap) * replicas;
            let group = ec2.as_ref().map(|(g, _)| g.clone());
            let reason = move || {
                let ec2_text = if fits_spare {
                    "EC2 $0/h (fits in spare room on running nodes)".to_string()
                } else {
                    format!(
                        "EC2 ${ec2_price:.4}/h per replica in group {} (its share of a node at {:.0}% packing)",
                        group.as_deref().unwrap_or("?"),
                        settings.packing_efficiency * 100.0
                    )
                };
                format!(
                    "{}: Fargate {} vCPU / {} GiB at ${fargate_price:.4}/h per replica vs {ec2_text}; {} saves ${saving:.4}/h for {} replicas",
                    workload.id,
                    size.cpu_millis as f64 / 1000.0,
                    size.memory_mib as f64 / 1024.0,
                    if fargate_wins { "Fargate" } else { "EC2" },
                    workload.replicas
                )
            };
            Some(Choice {
                target: if fargate_wins { PlacementTarget::Fargate } else { PlacementTarget::Ec2(ec2.map(|(g, _)| g)) },
                reason: Box::new(reason),
                beats_hysteresis: dear > 0.0 && (dear - cheap) / dear > settings.hysteresis,
            })
        }
    }
}

/// An untainted Auto Scaling group: what a new node of it surely offers, and costs at most.
/// Worked out once per evaluation, not once per workload.
struct Ec2Group<'a> {
    id: &'a str,
    template: Resources,
    price: f64,
}

fn ec2_groups(snapshot: &dyn Snapshot) -> Vec<Ec2Group<'_>> {
    snapshot
        .node_groups()
        .iter()
        .filter(|g| g.kind == NodeGroupKind::Asg && g.taints.is_empty())
        .map(|g| Ec2Group { id: &g.id, template: g.guaranteed_allocatable(), price: g.max_price_per_hour() })
        .collect()
}

/// The cheapest EC2 group for one replica and that replica's share of a node's price (the
/// first of equally cheap ones, in snapshot order).
fn cheapest_ec2_share(groups: &[Ec2Group<'_>], settings: &Settings, requests: &Resources) -> Option<(String, f64)> {
    let one = Resources { pods: 1, ..*requests };
    groups
        .iter()
        .filter(|g| g.template.fits(&one))
        .map(|g| (g, requests.utilisation_of(&g.template) / settings.packing_efficiency * g.price))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(g, cost)| (g.id.to_string(), cost))
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

fn scale(r: &Resources, n: u32) -> Resources {
    Resources {
        cpu_millis: r.cpu_millis * n as u64,
        memory_bytes: r.memory_bytes * n as u64,
        pods: n,
        gpus: r.gpus * n,
    }
}

ballast_sdk::export_policy!(FargatePlacement);

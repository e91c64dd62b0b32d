//! Room for a workload kept spread over zones (contract 0.1.13 `zone-spreads`): the
//! scheduler puts its next pods in the zones that have the fewest, so room made in a zone
//! that is ahead stays empty while they wait. A need for such a workload's pods is split
//! over the zones of the groups that admit it as the scheduler will fill them
//! ([`ZoneSpread::shares`]), each part counted and made in the groups of its own zone. Where
//! a group that admits the pods launches in several zones the need stays whole: which zone
//! EC2 picks is not known ahead.

use std::rc::Rc;

use ballast_sdk::prelude::*;

use crate::slots::Need;

/// `need` as the parts its zones will take, or whole when its pods are not kept spread.
pub fn split<'a>(snapshot: &'a dyn Snapshot, need: Need<'a>) -> Vec<Need<'a>> {
    let Some(spread) = need.owner.and_then(|o| snapshot.zone_spread(o)) else { return vec![need] };
    let admitting: Vec<&NodeGroup> =
        (snapshot.node_groups().iter()).filter(|g| g.kind == NodeGroupKind::Asg && (need.admits)(g)).collect();
    if admitting.is_empty() || admitting.iter().any(|g| g.zones.len() != 1) {
        return vec![need];
    }
    let zones = admitting.iter().flat_map(|g| g.zones.iter().map(String::as_str));
    (spread.shares(zones, need.count).into_iter())
        .filter(|(_, count)| *count > 0)
        .map(|(zone, count)| {
            let admits = need.admits.clone();
            Need {
                what: format!("{} ({count} of them in {zone}, where the spread puts them)", need.what),
                count,
                admits: Rc::new(move |g: &NodeGroup| {
                    matches!(g.zones.as_slice(), [only] if *only == zone) && admits(g)
                }),
                ..need.clone()
            }
        })
        .collect()
}

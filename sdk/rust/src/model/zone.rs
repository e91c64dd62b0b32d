//! Workloads the scheduler keeps spread over zones (interface 0.1.13 `zone-spreads`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::WorkloadRef;

/// A workload the scheduler keeps spread over zones (interface 0.1.13): a topology spread on
/// `topology.kubernetes.io/zone` with `whenUnsatisfiable: DoNotSchedule` over its own pods. A
/// pod goes to a zone only if that zone then holds at most `max_skew` more of them than the
/// zone with the fewest, among the zones with a node its pods may run on. `pods_by_zone`: its
/// pods on nodes now, by zone, zones with none left out. What
/// [`crate::Snapshot::zone_spreads`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ZoneSpread {
    pub workload: WorkloadRef,
    pub max_skew: u32,
    pub pods_by_zone: Vec<ZonePods>,
}

/// How many of a workload's pods run on nodes in one zone (interface 0.1.13).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ZonePods {
    pub zone: String,
    pub pods: u32,
}

impl ZoneSpread {
    /// Where `pods` more of the workload go, by zone, as the scheduler fills them: each next
    /// pod to the zone with the fewest (those there now and those already given), ties to the
    /// first by name, over `zones` (where room could be made) and the zones where it runs.
    /// Every such zone is listed, with 0 when it gets none.
    pub fn shares<'z>(&self, zones: impl IntoIterator<Item = &'z str>, pods: u32) -> BTreeMap<String, u32> {
        let mut now: BTreeMap<&str, u32> = self.pods_by_zone.iter().map(|z| (z.zone.as_str(), z.pods)).collect();
        for zone in zones {
            now.entry(zone).or_default();
        }
        let mut level: Vec<(u32, &str)> = now.iter().map(|(zone, pods)| (*pods, *zone)).collect();
        let mut given: BTreeMap<String, u32> = now.keys().map(|zone| (zone.to_string(), 0)).collect();
        for _ in 0..pods {
            let Some(fewest) = level.iter_mut().min() else { break };
            fewest.0 += 1;
            *given.entry(fewest.1.to_string()).or_default() += 1;
        }
        given
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pod_goes_to_the_zone_with_the_fewest() {
        let pods = |zone: &str, pods| ZonePods { zone: zone.into(), pods };
        let spread = ZoneSpread { pods_by_zone: vec![pods("a", 3), pods("b", 3)], ..ZoneSpread::default() };
        let shares = |zones: &[&'static str], n| spread.shares(zones.iter().copied(), n);
        let given = |a, b, c| BTreeMap::from([("a".into(), a), ("b".into(), b), ("c".into(), c)]);
        assert_eq!(shares(&["c"], 9), given(2, 2, 5));
        assert_eq!(shares(&["c", "a"], 2), given(0, 0, 2));
        assert_eq!(shares(&[], 3), BTreeMap::from([("a".into(), 2), ("b".into(), 1)]), "where it runs, ties by name");
        assert!(ZoneSpread::default().shares([], 4).is_empty(), "no zone to give to");
    }
}

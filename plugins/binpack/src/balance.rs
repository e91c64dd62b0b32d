//! Balancing similar groups (Cluster Autoscaler's `--balance-similar-node-groups`): groups
//! whose nodes differ only in their zone, one group per zone as clusters with EBS volumes run
//! them, grow together. A scale-up of `n` nodes into one of them is spread over all, each
//! taking the next node while it is the smallest, so a zone's loss takes a share of the
//! capacity instead of all of it, and pods spread across zones find room in each. The price
//! is the same: the nodes are alike.

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Labels that name a group or its zone: groups alike in all others are similar. (Cluster
/// Autoscaler ignores the same for AWS, and `ignore-labels` adds more.)
const NAMING: &[&str] = &[
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.ebs.csi.aws.com/zone",
    "eks.amazonaws.com/nodegroup",
    "eks.amazonaws.com/sourceLaunchTemplateId",
    "eks.amazonaws.com/sourceLaunchTemplateVersion",
    "alpha.eksctl.io/nodegroup-name",
    "kops.k8s.io/instancegroup",
];

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Balance {
    /// Spread scale-ups over similar groups.
    pub enabled: bool,
    /// More label keys that tell similar groups apart (`--balancing-ignore-label`).
    pub ignore_labels: Vec<String>,
}

impl Balance {
    /// What makes new nodes of a group alike for any pod but one that selects a zone or a
    /// group: its instance types (in order, with their allocatable), capacity type, taints
    /// and labels, but those naming the group or its zone. Groups of one key are similar.
    pub fn key(&self, group: &NodeGroup) -> String {
        let named = |k: &String| NAMING.contains(&k.as_str()) || self.ignore_labels.contains(k);
        let labels: Vec<_> = group.labels.iter().filter(|(k, _)| !named(k)).collect();
        let types: Vec<_> = group.instance_types.iter().map(|t| (&t.name, t.allocatable)).collect();
        format!("{:?}|{types:?}|{:?}|{labels:?}", group.kind, group.taints)
    }

    /// The groups `chosen` is grown with: itself first, then, when enabled, each of
    /// `candidates` similar to it that `admits` (every pod the scale-up is for).
    pub fn set<'a>(
        &self,
        chosen: &'a NodeGroup,
        candidates: impl Iterator<Item = &'a NodeGroup>,
        admits: impl Fn(&NodeGroup) -> bool,
    ) -> Vec<&'a NodeGroup> {
        let mut set = vec![chosen];
        if self.enabled {
            let key = self.key(chosen);
            set.extend(candidates.filter(|g| g.id != chosen.id && admits(g) && self.key(g) == key));
        }
        set
    }

    /// Each group's booting nodes, pooled over similar groups when enabled: a scale-up spread
    /// over them is room for the pods it was for in any of them, so none asks again.
    ///
    /// # Caveats
    /// A pod only one of them admits (it selects a zone) counts the others' booting nodes as
    /// its room too, and may wait for them to be Ready before its own group grows.
    pub fn pool(&self, groups: &mut [(&NodeGroup, u32)]) {
        if !self.enabled {
            return;
        }
        let keys: Vec<String> = groups.iter().map(|(g, _)| self.key(g)).collect();
        let mut totals: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        for (key, (_, booting)) in keys.iter().zip(groups.iter()) {
            *totals.entry(key).or_default() += booting;
        }
        for (key, (_, booting)) in keys.iter().zip(groups.iter_mut()) {
            *booting = totals[key.as_str()];
        }
    }
}

/// How many of `nodes` each of `set` gets: each node to the group smallest with it (its
/// desired size and what it got so far), the first of equals, within its max-size. Nodes no
/// group has room for are not given.
pub fn spread(set: &[&NodeGroup], nodes: u32) -> Vec<u32> {
    let mut added = vec![0u32; set.len()];
    for _ in 0..nodes {
        let next = (0..set.len())
            .filter(|&i| set[i].desired_size + added[i] < set[i].max_size)
            .min_by_key(|&i| set[i].desired_size + added[i]);
        match next {
            Some(i) => added[i] += 1,
            None => break,
        }
    }
    added
}

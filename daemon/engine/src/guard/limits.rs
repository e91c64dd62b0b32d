//! Cluster-wide limits ([`crate::config::ClusterLimits`]): what the managed groups come to,
//! and how many more nodes of a group fit under each limit.

use ballast_sdk::{NodeGroupKind, Resources};

use super::{Guard, refused};
use crate::observe::GroupFacts;
use crate::record::GuardOutcome;
use crate::rule::{Rule, Why};

const GIB: f64 = (1u64 << 30) as f64;

/// What the managed Auto Scaling groups come to at their desired sizes, each node as its
/// group's launch type's capacity.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ClusterSize {
    nodes: u64,
    cpu_millis: u64,
    memory_bytes: u64,
}

impl ClusterSize {
    pub(super) fn add(&mut self, nodes: u32, node: &Resources) {
        let nodes = u64::from(nodes);
        self.nodes = self.nodes.saturating_add(nodes);
        self.cpu_millis = self.cpu_millis.saturating_add(node.cpu_millis.saturating_mul(nodes));
        self.memory_bytes = self.memory_bytes.saturating_add(node.memory_bytes.saturating_mul(nodes));
    }
}

/// One limit as it stands for one group's growth.
struct Limit {
    /// Its name under `guardrails.limits`.
    name: &'static str,
    limit: Option<u64>,
    used: u64,
    /// What one more node of the group takes of it.
    per_node: u64,
}

impl Limit {
    /// How many more nodes of the group it lets in.
    fn room(&self) -> u64 {
        match self.limit {
            Some(limit) if self.per_node > 0 => limit.saturating_sub(self.used) / self.per_node,
            _ => u64::MAX,
        }
    }

    fn shown(&self, value: u64) -> String {
        match self.name {
            "cpu" if value.is_multiple_of(1000) => format!("{} CPU", value / 1000),
            "cpu" => format!("{value}m CPU"),
            "memory" => format!("{:.1} GiB", value as f64 / GIB),
            _ => format!("{value} nodes"),
        }
    }

    /// What the refusal or the change says: the setting and its value, what the groups come
    /// to, and what a node of `group` adds.
    fn explained(&self, group: &str) -> String {
        format!(
            "guardrails.limits.{} = {}: the managed groups come to {} at their desired sizes, a node of group {group} adds {}",
            self.name,
            self.shown(self.limit.unwrap_or_default()),
            self.shown(self.used),
            self.shown(self.per_node)
        )
    }
}

impl Guard<'_> {
    /// The capacity a new node of `group` brings: its launch type's (nothing when unknown).
    pub(super) fn node_capacity(&self, group: &str) -> Resources {
        let groups = &self.obs.snapshot.node_groups;
        let launched = groups.iter().find(|g| g.id == group).and_then(|g| g.launch_type());
        launched.map_or(Resources::ZERO, |t| t.capacity)
    }

    /// What the managed Auto Scaling groups come to now; not counted (zero) when no limit is
    /// set, as then nothing reads it.
    pub(super) fn cluster_size(&self) -> ClusterSize {
        let mut size = ClusterSize::default();
        if self.config.limits.is_unset() {
            return size;
        }
        for (id, facts) in self.obs.groups.iter().filter(|(_, f)| f.kind == NodeGroupKind::Asg) {
            size.add(facts.desired, &self.node_capacity(id));
        }
        size
    }

    /// `size` for `group`, growing from its desired size, lowered to what the cluster-wide
    /// limits leave room for (the tightest added to `why`), or refused when they leave none.
    pub(super) fn within_limits(
        &self,
        group: &str,
        facts: &GroupFacts,
        size: u32,
        cluster: &ClusterSize,
        why: &mut Vec<Why>,
    ) -> Result<u32, GuardOutcome> {
        let limits = &self.config.limits;
        if limits.is_unset() {
            return Ok(size);
        }
        let node = self.node_capacity(group);
        let checks = [
            Limit { name: "nodes", limit: limits.nodes.map(u64::from), used: cluster.nodes, per_node: 1 },
            Limit { name: "cpu", limit: limits.cpu_millis, used: cluster.cpu_millis, per_node: node.cpu_millis },
            Limit {
                name: "memory",
                limit: limits.memory_bytes,
                used: cluster.memory_bytes,
                per_node: node.memory_bytes,
            },
        ];
        let wanted = u64::from(size.saturating_sub(facts.desired));
        let Some(tightest) = checks.iter().filter(|c| c.room() < wanted).min_by_key(|c| c.room()) else {
            return Ok(size);
        };
        let room = tightest.room();
        if room == 0 {
            return Err(refused(Rule::ClusterLimit, format!("at the cluster's limit, {}", tightest.explained(group))));
        }
        why.push(Why::new(Rule::ClusterLimit, format!("limited to +{room} nodes by {}", tightest.explained(group))));
        Ok(facts.desired.saturating_add(u32::try_from(room).unwrap_or(u32::MAX)))
    }
}

//! What the capacity a snapshot shows costs per hour: each node group's running nodes at
//! their instance type's price, and the workloads placed on Fargate at their billed size.
//! Read by `/metrics`, CloudWatch publishing and the control API's NodeGroups.

use std::collections::BTreeMap;

use ballast_sdk::{NodeGroup, Placement, SnapshotData};

/// US dollars per hour.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostPerHour {
    /// By node group id; a group with no priced node is at 0.
    pub groups: BTreeMap<String, f64>,
    pub fargate: f64,
}

impl CostPerHour {
    pub fn total(&self) -> f64 {
        self.groups.values().sum::<f64>() + self.fargate
    }
}

/// The cost of `snapshot`'s capacity.
///
/// # Caveats
/// A node whose instance type is not among its group's types (a type removed from a mixed
/// group) counts at 0; Fargate pods count at their workload's requests, replicas as running.
pub fn cost_per_hour(snapshot: &SnapshotData) -> CostPerHour {
    let groups = snapshot.node_groups.iter().map(|g| (g.id.clone(), group_cost(g, snapshot))).collect();
    let pricing = &snapshot.fargate_pricing;
    let fargate = snapshot
        .workloads
        .iter()
        .filter(|w| w.placement == Placement::Fargate)
        .filter_map(|w| pricing.pod_price_per_hour(&w.requests_per_replica).map(|p| p * f64::from(w.replicas)))
        .sum();
    CostPerHour { groups, fargate }
}

/// The running nodes of `group` at their instance type's price.
pub fn group_cost(group: &NodeGroup, snapshot: &SnapshotData) -> f64 {
    snapshot
        .nodes
        .iter()
        .filter(|n| n.group.as_deref() == Some(group.id.as_str()))
        .filter_map(|n| group.instance_types.iter().find(|t| t.name == n.instance_type))
        .map(|t| t.price_per_hour)
        .sum()
}

#[cfg(test)]
mod tests {
    use ballast_sdk::{InstanceType, Node, Resources, Workload};

    use super::*;

    #[test]
    fn nodes_count_at_their_type_and_fargate_pods_at_their_billed_size() {
        let group = NodeGroup {
            id: "general".into(),
            instance_types: vec![InstanceType { name: "m5.large".into(), price_per_hour: 0.096, ..Default::default() }],
            ..Default::default()
        };
        let node = |name: &str, t: &str| Node {
            name: name.into(),
            group: Some("general".into()),
            instance_type: t.into(),
            ..Default::default()
        };
        let workload = Workload {
            replicas: 2,
            requests_per_replica: workload_requests(),
            placement: Placement::Fargate,
            ..Default::default()
        };
        let snapshot = SnapshotData {
            node_groups: vec![group],
            nodes: vec![node("a", "m5.large"), node("b", "m5.large"), node("c", "unknown.type")],
            workloads: vec![workload],
            ..Default::default()
        };
        let cost = cost_per_hour(&snapshot);
        assert!((cost.groups["general"] - 0.192).abs() < 1e-9, "{cost:?}");
        let one = snapshot.fargate_pricing.pod_price_per_hour(&workload_requests()).unwrap();
        assert!(one > 0.0);
        assert!((cost.fargate - 2.0 * one).abs() < 1e-9, "{cost:?}");
        assert!((cost.total() - 0.192 - 2.0 * one).abs() < 1e-9);
    }

    fn workload_requests() -> Resources {
        Resources { cpu_millis: 250, memory_bytes: 512 << 20, ..Default::default() }
    }
}

//! The cluster as the engine sees it, assembled from the cache on demand: nodes with their
//! counted pods, the pending pods, the workloads with their placement, the disruption
//! budgets, the CronJobs' next runs, the autoscalers' bounds and the CapacityBuffers.

use ballast_engine::ports::{ClusterView, DisruptionBudgetView, NodeView, WorkloadView};
use ballast_sdk::Placement;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::ClusterStore;
use crate::pod_index::OwnerPods;

impl ClusterStore {
    /// The cluster as the engine sees it at `now_millis`, from the cache alone: nodes with
    /// their counted pods, the pending pods, the workloads, the CronJobs' next runs and the
    /// autoscalers' bounds.
    /// Never walks the running pods.
    pub fn view(&self, now_millis: u64) -> ClusterView {
        let nodes: Vec<NodeView> =
            self.nodes.values().map(|n| NodeView { pods: self.pods.on_node(&n.name), ..n.clone() }).collect();
        let workloads = self
            .workloads
            .iter()
            .map(|(id, w)| {
                let owned = self.pods.owner(id);
                WorkloadView {
                    id: id.clone(),
                    replicas: w.replicas,
                    requests_per_replica: w.requests,
                    placement: self.placement(&w.template, owned),
                    fargate_traits: w.traits.clone(),
                    usage_per_replica: owned.filter(|o| o.measured > 0).map(OwnerPods::mean_usage),
                    max_per_node: w.max_per_node,
                    max_zone_skew: w.max_zone_skew,
                    min_zone_domains: w.min_zone_domains,
                    max_node_skew: w.max_node_skew,
                    min_node_domains: w.min_node_domains,
                    node_inclusion: w.node_inclusion,
                    kept_away: w.kept_away.workloads.clone(),
                    zone_affinity: w.zone_affinity.workloads.clone(),
                    kept_beside: w.kept_beside.workloads.clone(),
                    max_per_zone: w.max_per_zone,
                }
            })
            .collect();
        let disruption_budgets = self
            .budgets
            .iter()
            .map(|((ns, name), b)| DisruptionBudgetView {
                namespace: ns.as_str().into(),
                name: name.as_str().into(),
                disruptions_allowed: b.allowed,
            })
            .collect();
        ClusterView {
            nodes,
            pending: self.pods.pending(),
            passed_over: self.pods.passed_over(),
            workloads,
            disruption_budgets,
            scheduled_runs: self.scheduled_runs(now_millis),
            horizontal_autoscalers: self.autoscalers.values().cloned().collect(),
            capacity_buffers: self.capacity_buffers(),
        }
    }

    pub(super) fn placement(&self, template: &PodTemplateSpec, pods: Option<&OwnerPods>) -> Placement {
        let s = &self.settings;
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        let label = labels.and_then(|l| l.get(&s.placement_label));
        let group =
            template.spec.as_ref().and_then(|t| t.node_selector.as_ref()).and_then(|n| n.get(&s.group_selector_label));
        if label == Some(&s.fargate_value) {
            Placement::Fargate
        } else if let Some(group) = group {
            Placement::Ec2(Some(group.clone()))
        } else if label == Some(&s.ec2_value) || pods.is_some_and(|p| p.on_ec2 > 0) {
            Placement::Ec2(None)
        } else if pods.is_some_and(|p| p.on_fargate > 0) {
            Placement::Fargate
        } else {
            Placement::Unplaced
        }
    }
}

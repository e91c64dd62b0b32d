//! The sim adapters: the engine's cluster, capacity and clock traits over a shared [`World`].
//! They behave like the real APIs where it matters to the engine: an eviction a budget
//! forbids is refused, a size outside min/max is a validation error, a terminated instance
//! lowers desired capacity.

use std::sync::{Arc, Mutex, MutexGuard};

use ballast_sdk::{
    CapacityBuffer, FargatePricing, HorizontalAutoscaler, Placement, PlacementTarget, ScheduledRun, WorkloadKind,
    WorkloadRef,
};

use super::scenario::NODE_GROUP_LABEL;
use super::world::{SimNode, SimWorkload, World, disruptions_allowed};
use crate::engine::ports::{
    AdapterError, AdapterErrorKind, AdapterResult, Capacity, Clock, Cluster, ClusterView, DisruptionBudgetView,
    Eviction, GroupView, InstanceLifecycle, InstanceView, Interruption, MetricPoint, MetricQuery, NodeView,
    PendingPodView, PodShape, PodTemplate, WorkloadView,
};

/// A handle on the world, shared by the three adapters and the driver.
#[derive(Clone)]
pub struct SimHandle(Arc<Mutex<World>>);

impl SimHandle {
    pub fn new(world: World) -> Self {
        SimHandle(Arc::new(Mutex::new(world)))
    }

    /// The world; a panic while it was held cannot leave it half-updated in a way that
    /// matters to a report, so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn not_found(operation: String, what: String) -> AdapterError {
    AdapterError::new(AdapterErrorKind::NotFound, operation, format!("{what} not found"))
}

impl Clock for SimHandle {
    fn now_millis(&self) -> u64 {
        self.lock().now()
    }
}

impl Cluster for SimHandle {
    /// The simulator has no one to tell; decisions are in its records.
    async fn announce(&self, _announcement: crate::engine::ports::Announcement) {}

    async fn observe(&self) -> AdapterResult<ClusterView> {
        Ok(self.lock().cluster_view())
    }

    async fn mark_for_removal(&self, node: &str, mark: &crate::engine::ports::RemovalMark) -> AdapterResult<()> {
        let mut world = self.lock();
        let id = world.node_index.get(node).copied().ok_or_else(|| not_found(format!("cordon {node}"), node.into()))?;
        if let Some(n) = world.nodes[id].as_mut() {
            n.cordoned = true;
            n.removal_mark = Some(mark.clone());
        }
        Ok(())
    }

    async fn clear_removal(&self, node: &str) -> AdapterResult<()> {
        let mut world = self.lock();
        let id =
            world.node_index.get(node).copied().ok_or_else(|| not_found(format!("uncordon {node}"), node.into()))?;
        if let Some(n) = world.nodes[id].as_mut() {
            n.cordoned = false;
            n.removal_mark = None;
        }
        world.mark_schedule_dirty();
        Ok(())
    }

    async fn claim_replacement(&self, node: &str, replaced: &str) -> AdapterResult<()> {
        let mut world = self.lock();
        let id = world.node_index.get(node).copied().ok_or_else(|| not_found(format!("claim {node}"), node.into()))?;
        if let Some(n) = world.nodes[id].as_mut() {
            n.replaces = Some(replaced.to_string());
        }
        Ok(())
    }

    async fn evict(&self, namespace: &str, pod: &str) -> AdapterResult<Eviction> {
        let mut world = self.lock();
        let Some(&id) = world.pod_index.get(pod) else { return Ok(Eviction::Gone) };
        let Some(p) = world.pods[id].as_ref() else { return Ok(Eviction::Gone) };
        let w = &world.workloads[p.workload];
        if &*w.namespace != namespace {
            return Ok(Eviction::Gone);
        }
        if let Some(budget) = &w.spec.disruption_budget {
            let healthy = world.healthy(p.workload);
            if disruptions_allowed(budget, w.wanted, healthy) == 0 {
                return Ok(Eviction::Blocked {
                    reason: format!(
                        "Cannot evict pod as it would violate the pod's disruption budget {namespace}/{}",
                        w.spec.name
                    ),
                });
            }
        }
        // A DaemonSet's pod asked to leave before its node goes would go with the node: no
        // workload is disrupted, so none is counted.
        let daemon = w.spec.kind == WorkloadKind::DaemonSet;
        world.delete_pod(id);
        if !daemon {
            world.meter.pods_evicted += 1;
        }
        Ok(Eviction::Evicted)
    }

    async fn place(&self, workload: &WorkloadRef, target: &PlacementTarget) -> AdapterResult<()> {
        let mut world = self.lock();
        let operation = || format!("place {workload}");
        let Some(w) = world.workloads.iter_mut().find(|w| *w.id == *workload) else {
            return Err(not_found(operation(), workload.to_string()));
        };
        w.fargate = *target == PlacementTarget::Fargate;
        // As the Kubernetes adapter's patch does: the group selector set for one EC2 group,
        // removed otherwise, and Ballast's to change from then on.
        w.fargate_traits.pinned_by_owner = None;
        let mut template: PodTemplate = (*w.template).clone();
        match target {
            PlacementTarget::Ec2(Some(group)) => template.node_selector.insert(NODE_GROUP_LABEL.into(), group.clone()),
            _ => template.node_selector.remove(NODE_GROUP_LABEL),
        };
        w.template = Arc::new(template);
        w.shape = Arc::new(PodShape { template: w.template.clone(), ..(*w.shape).clone() });
        w.dirty = true;
        Ok(())
    }
}

impl Capacity for SimHandle {
    async fn node_groups(&self) -> AdapterResult<Vec<GroupView>> {
        let world = self.lock();
        Ok(world
            .groups
            .iter()
            .map(|g| GroupView {
                id: g.id.clone(),
                min_size: g.min,
                max_size: g.max,
                desired_size: g.desired,
                instance_types: g.types.clone(),
                labels: g.labels.clone(),
                taints: g.taints.clone(),
                zones: g.zones.clone(),
                instances: g
                    .instances
                    .iter()
                    .filter_map(|&n| world.nodes[n].as_ref())
                    .map(|n| InstanceView {
                        id: n.instance_id.clone().unwrap_or_default(),
                        zone: n.zone.clone(),
                        instance_type: n.instance_type.clone(),
                        lifecycle: if n.ready { InstanceLifecycle::InService } else { InstanceLifecycle::Pending },
                        image: g.image_name(n.image),
                        template: None,
                    })
                    .collect(),
                last_launch_failure: g.last_failure.clone(),
                options: Default::default(),
                image: g.image_name(g.image_at(world.elapsed_ms())),
                launched_types: None,
                template: None,
                updates_itself: false,
            })
            .collect())
    }

    async fn set_desired_size(&self, group: &str, size: u32) -> AdapterResult<()> {
        let mut world = self.lock();
        let operation = || format!("set desired size of {group} to {size}");
        let Some(g) = world.groups.iter_mut().find(|g| g.id == group) else {
            return Err(not_found(operation(), format!("group {group}")));
        };
        if size < g.min || size > g.max {
            return Err(AdapterError::new(
                AdapterErrorKind::Refused,
                operation(),
                format!("ValidationError: new desired capacity {size} is outside {}..={}", g.min, g.max),
            ));
        }
        let before = g.desired;
        g.desired = size;
        let now = world.now();
        if size != before {
            world.meter.group_changed(group, size > before, now);
        }
        Ok(())
    }

    async fn replace_instance(&self, group: &str, instance_id: &str) -> AdapterResult<()> {
        let mut world = self.lock();
        let operation = || format!("replace {instance_id} in {group}");
        let Some(node) = world.node_of_instance(group, instance_id) else {
            return Err(not_found(operation(), format!("instance {instance_id} in group {group}")));
        };
        // The group's desired size stays: it launches a replacement on its next step.
        world.destroy_node(node);
        Ok(())
    }

    async fn terminate_instance(&self, group: &str, instance_id: &str) -> AdapterResult<()> {
        let mut world = self.lock();
        let operation = || format!("terminate {instance_id} in {group}");
        let Some(g) = world.groups.iter().position(|g| g.id == group) else {
            return Err(not_found(operation(), format!("group {group}")));
        };
        let Some(node) = world.node_of_instance(group, instance_id) else {
            return Err(not_found(operation(), format!("instance {instance_id}")));
        };
        if world.groups[g].desired <= world.groups[g].min {
            return Err(AdapterError::new(
                AdapterErrorKind::Refused,
                operation(),
                "ValidationError: desired capacity would go below the group's min size".to_string(),
            ));
        }
        world.groups[g].desired -= 1;
        world.destroy_node(node);
        world.meter.nodes_removed += 1;
        let now = world.now();
        world.meter.group_changed(group, false, now);
        Ok(())
    }

    async fn fargate_pricing(&self) -> AdapterResult<FargatePricing> {
        Ok(self.lock().pricing.clone())
    }

    async fn interruptions(&self) -> AdapterResult<Vec<Interruption>> {
        Ok(self.lock().take_interruptions())
    }

    async fn query_metric(&self, query: &MetricQuery) -> AdapterResult<Vec<MetricPoint>> {
        let world = self.lock();
        if query.namespace != super::METRIC_NAMESPACE {
            return Ok(Vec::new());
        }
        let pick: fn(&super::meter::Sample) -> f64 = match query.name.as_str() {
            "PendingPods" => |s| s.pending_pods as f64,
            "CostPerHour" => |s| s.cost_per_hour,
            "DemandVcpu" => |s| s.demand_vcpu,
            "CapacityVcpu" => |s| s.capacity_vcpu,
            "Nodes" => |s| s.nodes as f64,
            other => {
                return Err(AdapterError::new(
                    AdapterErrorKind::NotFound,
                    format!("query {}/{other}", query.namespace),
                    "no such metric; known: PendingPods, CostPerHour, DemandVcpu, CapacityVcpu, Nodes",
                ));
            }
        };
        let start = world.start;
        Ok(world
            .meter
            .samples
            .iter()
            .map(|s| MetricPoint { at_millis: start + (s.minute * 60_000.0) as u64, value: pick(s) })
            .filter(|p| p.at_millis >= query.start_millis && p.at_millis <= query.end_millis)
            .collect())
    }
}

impl World {
    /// Running pods of a workload.
    pub(super) fn healthy(&self, w: usize) -> u32 {
        self.workloads[w].running
    }

    /// What the Kubernetes API would show now: nodes with the pods they run as counted at
    /// bind time, and the pods waiting for capacity. Never walks the running pods.
    pub(super) fn cluster_view(&self) -> ClusterView {
        let mut view = ClusterView::default();
        let shown = self.nodes.iter().flatten().filter(|n| n.ready || n.lost_at.is_some());
        view.nodes = shown.map(node_view).collect();
        for pod in self.pending.iter().filter_map(|&p| self.pods[p].as_ref()) {
            if pod.unschedulable {
                view.pending.push(PendingPodView {
                    shape: self.workloads[pod.workload].shape.clone(),
                    name: pod.name.clone(),
                    created_at_millis: pod.created_at,
                });
            }
        }
        for (i, w) in self.workloads.iter().enumerate() {
            self.show_workload(&mut view, i, w);
        }
        view
    }

    /// The workloads of these names.
    fn named(&self, names: &[String]) -> Vec<WorkloadRef> {
        (names.iter())
            .filter_map(|name| self.workloads.iter().find(|o| &o.spec.name == name))
            .map(|o| (*o.id).clone())
            .collect()
    }

    /// A workload as the API shows it, with its autoscaler, its CronJob's next run and its
    /// disruption budget, each where it has one.
    fn show_workload(&self, view: &mut ClusterView, i: usize, w: &SimWorkload) {
        let live = w.pods.len() as u32;
        let replicas = if w.curve.is_some() { w.wanted } else { live };
        let placement = if w.fargate {
            Placement::Fargate
        } else {
            let mut groups = w.running_in_group.keys();
            match (groups.next(), groups.next()) {
                (Some(&only), None) => Placement::Ec2(Some(self.groups[only].id.clone())),
                _ => Placement::Ec2(None),
            }
        };
        view.workloads.push(WorkloadView {
            id: (*w.id).clone(),
            replicas,
            requests_per_replica: w.requests,
            placement,
            fargate_traits: w.fargate_traits.clone(),
            usage_per_replica: Some(super::world::scale(&w.requests, w.spec.usage)),
            max_per_node: w.spec.max_per_node,
            max_zone_skew: w.spec.max_zone_skew,
            min_zone_domains: w.spec.min_zone_domains,
            max_node_skew: w.spec.max_node_skew,
            min_node_domains: w.spec.min_node_domains,
            node_inclusion: Default::default(),
            kept_away: self.named(&w.spec.kept_away),
            zone_affinity: self.named(&w.spec.zone_affinity),
            kept_beside: self.named(&w.spec.kept_beside),
            max_per_zone: w.spec.max_per_zone,
        });
        if let Some(bounds) = &w.spec.autoscaler {
            view.horizontal_autoscalers.push(HorizontalAutoscaler {
                target: (*w.id).clone(),
                min_replicas: bounds.min_replicas,
                max_replicas: bounds.max_replicas,
            });
        }
        if let (Some(&next), Some(batches)) = (w.batch_times.first(), &w.spec.batches) {
            view.scheduled_runs.push(ScheduledRun {
                owner: (*w.id).clone(),
                due_at_millis: self.start + next,
                pods: batches.pods,
                requests: w.requests,
                node_selector: w.template.node_selector.clone(),
                affinity_keys: w.template.affinity_keys.clone(),
                tolerations: w.template.tolerations.clone(),
                on_fargate: w.fargate,
            });
        }
        view.capacity_buffers.extend(capacity_buffer(w, replicas));
        if let (Some(budget), Some(name)) = (&w.spec.disruption_budget, &w.budget_name)
            && w.spec.kind != WorkloadKind::DaemonSet
        {
            view.disruption_budgets.push(DisruptionBudgetView {
                namespace: w.namespace.clone(),
                name: name.clone(),
                disruptions_allowed: disruptions_allowed(budget, w.wanted, self.healthy(i)),
            });
        }
    }
}

/// The CapacityBuffer a workload's scenario gives it, sized for its `replicas` now.
fn capacity_buffer(w: &SimWorkload, replicas: u32) -> Option<CapacityBuffer> {
    let size = w.spec.capacity_buffer.as_ref()?;
    Some(CapacityBuffer {
        namespace: w.namespace.to_string(),
        name: w.spec.name.clone(),
        pods: size.pods(&w.requests, Some(replicas)),
        requests: w.requests,
        node_selector: w.template.node_selector.clone(),
        affinity_keys: w.template.affinity_keys.clone(),
        tolerations: w.template.tolerations.clone(),
    })
}

/// A node as the API shows it, with the pods it runs as counted at bind time.
fn node_view(node: &SimNode) -> NodeView {
    NodeView {
        name: node.name.clone(),
        instance_id: node.instance_id.clone(),
        instance_type: node.instance_type.clone(),
        zone: node.zone.clone(),
        allocatable: node.allocatable,
        usage: Some(node.used),
        ready: node.ready,
        unready_since_millis: node.lost_at,
        cordoned: node.cordoned,
        created_at_millis: node.ready_at,
        fargate: node.fargate,
        kept_by: None,
        group_label: None,
        removal_mark: node.removal_mark.clone(),
        replaces: node.replaces.clone(),
        pods: node.tally.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sim::scenario::Scenario;

    const TWO_GROUPS: &str = r#"
name: two-groups
duration: 1h
node-groups:
  - {id: a, instance-types: [m5.large], min-size: 0, max-size: 4, desired-size: 1}
  - {id: b, instance-types: [m5.large], min-size: 0, max-size: 4, desired-size: 1}
workloads:
  - {name: agent, namespace: kube-system, kind: daemon-set, requests: {cpu: 100m, memory: 128Mi}}
  - {name: web, namespace: shop, requests: {cpu: 1500m, memory: 1Gi}, replicas: {constant: 2}}
"#;

    /// Both groups list a large type first and a cheaper, smaller one after it.
    const MIXED: &str = r#"
name: mixed
duration: 1h
node-groups:
  - {id: od, instance-types: [m5.xlarge, m5a.large], min-size: 0, max-size: 4, desired-size: 2}
  - {id: spot, instance-types: [m5.xlarge, m5a.large], capacity-type: spot, min-size: 0, max-size: 4, desired-size: 2}
workloads:
  - {name: web, namespace: shop, requests: {cpu: 500m, memory: 1Gi}, replicas: {constant: 2}}
"#;

    /// A percentage rounds up against the workload's replicas, as the disruption controller
    /// rounds both fields: 34% of 3 is 2 pods.
    #[test]
    fn a_budget_in_percent_counts_against_the_workloads_replicas() {
        use crate::sim::scenario::{Budget, Pods};
        use crate::sim::world::disruptions_allowed;
        assert_eq!(disruptions_allowed(&Budget::MaxUnavailable(Pods::Percent(34)), 3, 3), 2);
        assert_eq!(disruptions_allowed(&Budget::MaxUnavailable(Pods::Percent(34)), 3, 2), 1);
        assert_eq!(disruptions_allowed(&Budget::MinAvailable(Pods::Percent(50)), 3, 3), 1);
        assert_eq!(disruptions_allowed(&Budget::MinAvailable(Pods::Count(2)), 3, 3), 1);
        assert_eq!(disruptions_allowed(&Budget::MaxUnavailable(Pods::Percent(0)), 3, 3), 0);
    }

    #[test]
    fn a_mixed_instances_group_launches_the_type_ec2_would() {
        let scenario = Scenario::parse(Path::new("mixed"), MIXED).unwrap();
        let world = World::new(&scenario, 1);
        let view = world.cluster_view();
        let types = |group: &str| -> Vec<String> {
            view.nodes.iter().filter(|n| n.name.starts_with(group)).map(|n| n.instance_type.clone()).collect()
        };
        assert_eq!(types("od-"), ["m5.xlarge", "m5.xlarge"], "on-demand: the first type, as `prioritized` launches");
        assert_eq!(types("spot-"), ["m5a.large", "m5a.large"], "spot: the cheapest per instance");
    }

    /// As the Kubernetes adapter's template patch: a placement in one EC2 group selects it,
    /// any other placement clears that selector, so a workload once placed in a group is not
    /// held there after it moves to Fargate or to EC2 at large.
    #[tokio::test]
    async fn a_placement_sets_the_group_selector_only_for_one_group() {
        let scenario = Scenario::parse(Path::new("two-groups"), TWO_GROUPS).unwrap();
        let sim = SimHandle::new(World::new(&scenario, 1));
        let web = sim.lock().workloads.iter().find(|w| w.id.name == "web").map(|w| (*w.id).clone()).unwrap();
        let selected = |sim: &SimHandle| {
            let world = sim.lock();
            let w = world.workloads.iter().find(|w| w.id.name == "web").unwrap();
            w.template.node_selector.get(NODE_GROUP_LABEL).cloned()
        };
        for (target, group) in [
            (PlacementTarget::Ec2(Some("a".into())), Some("a".to_string())),
            (PlacementTarget::Ec2(None), None),
            (PlacementTarget::Ec2(Some("b".into())), Some("b".to_string())),
            (PlacementTarget::Fargate, None),
        ] {
            sim.place(&web, &target).await.unwrap();
            assert_eq!(selected(&sim), group, "after {target:?}");
        }
    }

    fn placement(world: &World, name: &str) -> Placement {
        let view = world.cluster_view();
        view.workloads.into_iter().find(|w| w.id.name == name).map(|w| w.placement).unwrap_or(Placement::Unplaced)
    }

    #[test]
    fn counts_follow_pods_when_their_node_goes_first() {
        let scenario = Scenario::parse(Path::new("two-groups"), TWO_GROUPS).unwrap();
        let mut world = World::new(&scenario, 1);
        assert_eq!(placement(&world, "web"), Placement::Ec2(None), "one web pod per group");
        let view = world.cluster_view();
        assert_eq!(view.nodes.iter().map(|n| n.pods.count).sum::<u32>(), 4, "two agents, two web pods");

        // Group b's node goes with its pods (as a termination does); until the controller
        // replaces the web pod, every running one is in group a.
        let b = world.groups[1].instances[0];
        world.destroy_node(b);
        assert_eq!(placement(&world, "web"), Placement::Ec2(Some("a".into())));
        let view = world.cluster_view();
        assert_eq!(view.nodes.iter().map(|n| n.pods.count).sum::<u32>(), 2);
        assert_eq!(world.healthy(1), 1, "one web pod still runs");
    }
}

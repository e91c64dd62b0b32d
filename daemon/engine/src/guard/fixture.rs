//! A small cluster as plain data, for judging proposals without plugins or adapters.
//!
//! Group `web` (min 1, max 10, desired 4) runs nodes `w1`..`w4`, least to most used; group
//! `batch` (min 0, max 5) is empty. Workloads: `shop/web` (Deployment, on EC2), `shop/db`
//! (StatefulSet on EBS) and `kube-system/agent` (DaemonSet). The clock reads 100 h, every
//! node is old, and the cluster has a Fargate profile.
//!
//! Built for this crate's tests and, with the `fixture` feature, for the tests of crates
//! that build on the engine.

#![allow(clippy::expect_used)] // a fixture fails loudly on a name it does not have

use std::sync::Arc;

use ballast_sdk::{Action, Decision, InstanceType, Placement, Resources, WorkloadKind, WorkloadRef};

use super::{Guard, Plan};
use crate::config::Guardrails;
use crate::observe::{self, Observation, ObserveContext};
use crate::policies::Proposed;
use crate::ports::{
    ClusterView, DisruptionBudgetView, FargateTraits, GroupView, InstanceLifecycle, InstanceView, NodeView,
    PodTemplate, PodView, WorkloadView,
};
use crate::record::GuardOutcome;
use crate::state::{Drain, EngineState};

pub const NOW: u64 = 100 * 3_600_000;
const GIB: u64 = 1 << 30;

pub struct World {
    pub groups: Vec<GroupView>,
    /// The cluster without its pods: [`World::observe`] counts `pods` onto it.
    pub cluster: ClusterView,
    pub pods: Vec<PodView>,
    pub config: Guardrails,
    pub state: EngineState,
    pub fargate: bool,
}

pub fn workload(kind: WorkloadKind, namespace: &str, name: &str) -> WorkloadRef {
    WorkloadRef { kind, namespace: namespace.into(), name: name.into() }
}

pub fn web() -> WorkloadRef {
    workload(WorkloadKind::Deployment, "shop", "web")
}

pub fn db() -> WorkloadRef {
    workload(WorkloadKind::StatefulSet, "shop", "db")
}

pub fn group(id: &str, min: u32, max: u32, desired: u32) -> GroupView {
    GroupView {
        id: id.into(),
        min_size: min,
        max_size: max,
        desired_size: desired,
        instance_types: vec![InstanceType {
            name: "m5.large".into(),
            capacity: Resources { cpu_millis: 2000, memory_bytes: 8 * GIB, pods: 29, gpus: 0, ..Resources::ZERO },
            allocatable: Resources { cpu_millis: 1930, memory_bytes: 7 * GIB, pods: 29, gpus: 0, ..Resources::ZERO },
            price_per_hour: 0.096,
        }],
        labels: Default::default(),
        taints: Vec::new(),
        zones: vec!["us-east-1a".into()],
        instances: Vec::new(),
        last_launch_failure: None,
        options: Default::default(),
        image: None,
        launched_types: None,
        template: None,
        updates_itself: false,
    }
}

pub fn node(name: &str, instance: Option<&str>, group: Option<&str>) -> NodeView {
    NodeView {
        name: name.into(),
        instance_id: instance.map(str::to_string),
        instance_type: "m5.large".into(),
        zone: "us-east-1a".into(),
        allocatable: Resources { cpu_millis: 2000, memory_bytes: 8 * GIB, pods: 29, gpus: 0, ..Resources::ZERO },
        usage: None,
        ready: true,
        unready_since_millis: None,
        cordoned: false,
        created_at_millis: 0,
        fargate: false,
        kept_by: None,
        group_label: group.map(str::to_string),
        removal_mark: None,
        replaces: None,
        pods: Default::default(),
    }
}

pub fn pod(name: &str, node: Option<&str>, owner: Option<WorkloadRef>, cpu_millis: u64) -> PodView {
    PodView {
        namespace: owner.as_ref().map_or("shop", |o| o.namespace.as_str()).into(),
        name: name.into(),
        node: node.map(Into::into),
        requests: Resources { cpu_millis, memory_bytes: GIB / 4, pods: 1, gpus: 0, ..Resources::ZERO },
        owner: owner.map(Arc::new),
        template: Arc::new(PodTemplate::default()),
        unschedulable: node.is_none(),
        created_at_millis: 0,
        disruption_budget: None,
        mirror: false,
        unreadable: None,
        expendable: false,
    }
}

fn workload_view(id: WorkloadRef, traits: FargateTraits) -> WorkloadView {
    WorkloadView {
        id,
        replicas: 2,
        requests_per_replica: Resources { cpu_millis: 250, memory_bytes: GIB / 4, pods: 1, gpus: 0, ..Resources::ZERO },
        placement: Placement::Ec2(None),
        fargate_traits: traits,
        usage_per_replica: None,
        max_per_node: None,
        max_zone_skew: None,
        min_zone_domains: None,
        min_node_domains: None,
        max_node_skew: None,
        node_inclusion: Default::default(),
        kept_away: Vec::new(),
        zone_affinity: Vec::new(),
        kept_beside: Vec::new(),
        max_per_zone: None,
    }
}

impl Default for World {
    fn default() -> Self {
        let mut web_group = group("web", 1, 10, 4);
        let mut cluster = ClusterView::default();
        let mut pods = Vec::new();
        for (i, cpu) in [250, 500, 1000, 1500].into_iter().enumerate() {
            let (name, instance) = (format!("w{}", i + 1), format!("i-w{}", i + 1));
            web_group.instances.push(InstanceView {
                id: instance.clone(),
                zone: "us-east-1a".into(),
                instance_type: "m5.large".into(),
                lifecycle: InstanceLifecycle::InService,
                image: None,
                template: None,
            });
            cluster.nodes.push(node(&name, Some(&instance), Some("web")));
            pods.push(pod(&format!("web-{}", i + 1), Some(&name), Some(web()), cpu));
        }
        cluster.workloads = vec![
            workload_view(web(), FargateTraits::default()),
            workload_view(db(), FargateTraits { ebs_volume: true, ..FargateTraits::default() }),
            workload_view(workload(WorkloadKind::DaemonSet, "kube-system", "agent"), FargateTraits::default()),
        ];
        World {
            groups: vec![web_group, group("batch", 0, 5, 0)],
            cluster,
            pods,
            config: Guardrails::default(),
            state: EngineState::default(),
            fargate: true,
        }
    }
}

impl World {
    pub fn group_mut(&mut self, id: &str) -> &mut GroupView {
        self.groups.iter_mut().find(|g| g.id == id).expect("a fixture group")
    }

    pub fn pod_mut(&mut self, name: &str) -> &mut PodView {
        self.pods.iter_mut().find(|p| &*p.name == name).expect("a fixture pod")
    }

    pub fn node_mut(&mut self, name: &str) -> &mut NodeView {
        self.cluster.nodes.iter_mut().find(|n| &*n.name == name).expect("a fixture node")
    }

    /// Marks `node` (of group `web`) as being drained since now.
    pub fn draining(&mut self, node: &str) {
        self.state.drains.insert(node.into(), drain_since_now("web", &format!("i-{node}")));
    }

    /// Puts `pod` under a PodDisruptionBudget that allows `allowed` disruptions now.
    pub fn budget(&mut self, pod: &str, allowed: u32) {
        let namespace = self.pod_mut(pod).namespace.clone();
        self.pod_mut(pod).disruption_budget = Some(format!("{pod}-pdb").into());
        self.cluster.disruption_budgets.push(DisruptionBudgetView {
            namespace,
            name: format!("{pod}-pdb").into(),
            disruptions_allowed: allowed,
        });
    }

    pub fn template_mut(&mut self, pod: &str) -> &mut PodTemplate {
        Arc::make_mut(&mut self.pod_mut(pod).template)
    }

    pub fn observe(&self) -> Observation {
        let drains = &self.state.drains;
        let being_removed = |n: &str| drains.contains_key(n);
        let backoff = |g: &str| self.state.groups.get(g).is_some_and(|s| s.backing_off(NOW).is_some());
        let cooldown = |g: &str| self.state.cooldown(g, &self.config.cooldown);
        let cx = ObserveContext {
            now_millis: NOW,
            guardrails: &self.config,
            fargate: self.fargate,
            fargate_pricing: Default::default(),
            backoff: &backoff,
            being_removed: &being_removed,
            removals_under_way: drains.len(),
            cooldown: &cooldown,
            placement_cooldowns: self.state.placement_cooldowns(NOW, self.config.cooldown.placement),
            metrics: Vec::new(),
        };
        observe::observe(self.view(), self.groups.clone(), &cx)
    }

    /// The cluster as an adapter would show it: `cluster` with `pods` counted onto it.
    pub fn view(&self) -> ClusterView {
        let mut cluster = self.cluster.clone();
        cluster.count_pods(&self.pods);
        cluster
    }

    /// Judges `actions`, each proposed by its own plugin (`p0`, `p1`, ...).
    pub fn judge(&self, actions: &[Action]) -> (Plan, Vec<GuardOutcome>) {
        self.judge_observed(&self.observe(), actions)
    }

    pub fn judge_observed(&self, obs: &Observation, actions: &[Action]) -> (Plan, Vec<GuardOutcome>) {
        let proposals: Vec<Proposed> = actions
            .iter()
            .enumerate()
            .map(|(i, a)| Proposed {
                plugin: format!("p{i}").into(),
                decision: Decision::new(a.clone(), "test"),
                shadow: false,
            })
            .collect();
        Guard { obs, config: &self.config, state: &self.state, now: NOW }.run(&proposals)
    }
}

/// A drain of `instance_id` in `group` begun now, at tick 1, nothing evicted yet.
pub fn drain_since_now(group: &str, instance_id: &str) -> Drain {
    Drain {
        group: group.into(),
        instance_id: instance_id.into(),
        started_at: NOW,
        started_tick: 1,
        evicted: 0,
        interrupted: false,
        hold: None,
        released_by: None,
        cause: None,
        occupied: false,
        daemons_asked: false,
    }
}

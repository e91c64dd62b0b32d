//! Shared by the tests that run against the Kubernetes API stand-in: a client for it,
//! objects to seed it with, and a capacity side that records what it is asked.
#![allow(dead_code)]

pub mod daemon;
pub mod moto;
pub mod sim;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast::engine::ports::{
    AdapterResult, Capacity, GroupView, InstanceLifecycle, InstanceView, MetricPoint, MetricQuery,
};
use ballast::kubernetes::{KubeCluster, KubeSettings};
use ballast::policy::{HostConfig, PluginLimits, PluginSpec, PolicyHost};
use ballast_sdk::{FargatePricing, InstanceType, Resources};
use kube_standin::StandIn;
use serde_json::{Value, json};

pub fn config(standin: &StandIn) -> kube::Config {
    kube::Config::new(standin.url().parse().expect("the stand-in's URL"))
}

/// The Kubernetes adapter against `standin`, its caches synced.
pub async fn started(standin: &StandIn, settings: KubeSettings) -> KubeCluster {
    let cluster = KubeCluster::start(config(standin), settings).expect("the adapter starts");
    tokio::time::timeout(Duration::from_secs(10), cluster.synced()).await.expect("caches sync");
    cluster
}

pub fn client(standin: &StandIn) -> kube::Client {
    kube::Client::try_from(config(standin)).expect("a client for the stand-in")
}

/// A time long enough ago that nodes are past the minimum node age.
pub const LONG_AGO: &str = "2026-01-01T00:00:00Z";

pub fn node(name: &str, instance: &str, group: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "creationTimestamp": LONG_AGO,
            "labels": {"eks.amazonaws.com/nodegroup": group, "node.kubernetes.io/instance-type": "m5.large",
                       "topology.kubernetes.io/zone": "us-east-1a"}},
        "spec": {"providerID": format!("aws:///us-east-1a/{instance}")},
        "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"},
                   "conditions": [{"type": "Ready", "status": "True"}]}})
}

/// The Node the kubelet of `instance` (group `general`) registers now.
pub fn registered_now(name: &str, instance: &str) -> Value {
    let mut n = node(name, instance, "general");
    n["metadata"]["creationTimestamp"] =
        json!(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    n
}

/// A running, ready pod on `node` controlled by `owner` (kind, name).
pub fn running_pod(name: &str, node: &str, owner: Option<(&str, &str)>, labels: Value) -> Value {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                 "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    if let Some((kind, owner)) = owner {
        let api_version = if kind == "Job" { "batch/v1" } else { "apps/v1" };
        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": api_version, "kind": kind, "name": owner, "uid": format!("uid-{owner}"), "controller": true}]);
    }
    pod
}

/// A pod the scheduler could not place.
pub fn pending_pod(name: &str, owner: Option<(&str, &str)>) -> Value {
    let mut pod = running_pod(name, "", owner, json!({"app": "web"}));
    pod["spec"].as_object_mut().map(|s| s.remove("nodeName"));
    pod["status"] = json!({"phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]});
    pod
}

pub fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "x",
                                       "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}]}}}})
}

pub fn replica_set(name: &str, deployment: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment, "uid": format!("uid-{deployment}"), "controller": true}]},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": deployment}},
                 "template": {"metadata": {"labels": {"app": deployment}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
}

/// A PodDisruptionBudget over pods labelled `app: <app>`.
pub fn budget(app: &str, min_available: u32) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": app, "namespace": "default"},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}}})
}

pub fn daemon_set(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
}

/// Polls `check` every 5 ms until it holds or `limit` passes; returns how long it took.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

pub fn host() -> PolicyHost {
    PolicyHost::new(HostConfig { deterministic: true, cache_dir: None, ..HostConfig::default() })
        .expect("a policy host")
}

pub fn scripted(decisions: Value) -> PluginSpec {
    let path = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("scripted_policy.wasm");
    let bytes: Arc<[u8]> = std::fs::read(&path).expect("scripted plugin built by build.rs").into();
    PluginSpec {
        name: "scripted".into(),
        bytes,
        settings: json!({ "decisions": decisions }),
        limits: PluginLimits::default(),
    }
}

/// One call the capacity side received, with who received it and when.
#[derive(Clone, Debug)]
pub struct Call {
    pub by: String,
    pub what: String,
    pub at: Instant,
}

/// A capacity side with one group, `general`, of m5.large: it records every call and
/// changes nothing, so a policy that asks for a size asks again each tick.
#[derive(Clone)]
pub struct RecordingCapacity {
    pub name: String,
    pub instances: Vec<String>,
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl RecordingCapacity {
    pub fn new(name: &str, instances: &[&str], calls: Arc<Mutex<Vec<Call>>>) -> Self {
        RecordingCapacity { name: name.into(), instances: instances.iter().map(|s| s.to_string()).collect(), calls }
    }

    fn record(&self, what: String) {
        self.calls.lock().unwrap().push(Call { by: self.name.clone(), what, at: Instant::now() });
    }
}

impl Capacity for RecordingCapacity {
    async fn node_groups(&self) -> AdapterResult<Vec<GroupView>> {
        let capacity = Resources { cpu_millis: 2000, memory_bytes: 8 << 30, pods: 29, gpus: 0, ..Resources::ZERO };
        Ok(vec![GroupView {
            id: "general".into(),
            min_size: 0,
            max_size: 10,
            desired_size: self.instances.len() as u32,
            instance_types: vec![InstanceType {
                name: "m5.large".into(),
                capacity,
                allocatable: capacity,
                price_per_hour: 0.096,
            }],
            labels: Default::default(),
            taints: Vec::new(),
            zones: vec!["us-east-1a".into()],
            instances: self
                .instances
                .iter()
                .map(|id| InstanceView {
                    id: id.clone(),
                    zone: "us-east-1a".into(),
                    instance_type: "m5.large".into(),
                    lifecycle: InstanceLifecycle::InService,
                    image: None,
                    template: None,
                })
                .collect(),
            last_launch_failure: None,
            options: Default::default(),
            image: None,
            launched_types: None,
            template: None,
            updates_itself: false,
        }])
    }

    async fn set_desired_size(&self, group: &str, size: u32) -> AdapterResult<()> {
        self.record(format!("set {group} to {size}"));
        Ok(())
    }

    async fn terminate_instance(&self, group: &str, instance_id: &str) -> AdapterResult<()> {
        self.record(format!("terminate {instance_id} in {group}"));
        Ok(())
    }

    async fn replace_instance(&self, group: &str, instance_id: &str) -> AdapterResult<()> {
        self.record(format!("replace {instance_id} in {group}"));
        Ok(())
    }

    async fn fargate_pricing(&self) -> AdapterResult<FargatePricing> {
        Ok(FargatePricing::default())
    }

    async fn query_metric(&self, _query: &MetricQuery) -> AdapterResult<Vec<MetricPoint>> {
        Ok(Vec::new())
    }
}

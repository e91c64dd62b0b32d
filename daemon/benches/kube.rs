//! The Kubernetes adapter's figures, against the API stand-in in-process (release build):
//!
//! - initial sync: 5,000 nodes and 150,000 pods listed and folded into the cache;
//! - view build: the cluster view a tick observes, assembled from the cache at that size;
//! - watch ingestion: pod creations streamed over a watch and applied, per second.
//!
//! `cargo bench -p ballast --bench kube` prints them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::time::{Duration, Instant};

use ballast::engine::ports::Cluster;
use ballast::kubernetes::{KubeCluster, KubeSettings};
use kube_standin::{Config, StandIn};
use serde_json::{Value, json};

const NODES: usize = 5_000;
const PODS: usize = 150_000;
const STREAMED: usize = 50_000;

fn node(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i:05}"), "labels": {"eks.amazonaws.com/nodegroup": format!("group-{}", i % 100),
            "node.kubernetes.io/instance-type": "m5.2xlarge", "topology.kubernetes.io/zone": "us-east-1a"}},
        "spec": {"providerID": format!("aws:///us-east-1a/i-{i:017x}")},
        "status": {"allocatable": {"cpu": "7910m", "memory": "30Gi", "pods": "58"},
                   "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn pod(i: usize) -> Value {
    let workload = i % 1_000;
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("w{workload}-{i}"), "namespace": format!("ns-{}", workload % 20),
            "labels": {"app": format!("w{workload}")},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("w{workload}-rs"), "uid": "u", "controller": true}]},
        "spec": {"nodeName": format!("node-{:05}", i % NODES),
                 "containers": [{"name": "app", "image": "app:1", "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}}}],
                 "tolerations": [{"key": "dedicated", "operator": "Exists"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let standin =
        rt.block_on(StandIn::start_with(Config { history_limit: 2 * STREAMED, ..Config::default() })).unwrap();
    for i in 0..NODES {
        standin.create(node(i)).unwrap();
    }
    for i in 0..PODS {
        standin.create(pod(i)).unwrap();
    }
    let config = kube::Config::new(standin.url().parse().unwrap());

    rt.block_on(async {
        let start = Instant::now();
        let cluster = KubeCluster::start(config, KubeSettings::default()).unwrap();
        cluster.synced().await;
        let sync = start.elapsed();
        println!("initial sync, {NODES} nodes / {PODS} pods: {:.2} s ({:.0} objects/s)", sync.as_secs_f64(), (NODES + PODS) as f64 / sync.as_secs_f64());

        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let view = cluster.observe().await.unwrap();
            times.push(t.elapsed());
            assert_eq!(view.nodes.iter().map(|n| n.pods.count as usize).sum::<usize>(), PODS);
        }
        times.sort();
        println!(
            "view build from the cache, {NODES} nodes / {PODS} pods: median {:.1} ms, max {:.1} ms",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3
        );

        let before = cluster.status().pods;
        let start = Instant::now();
        let writer = {
            let creations: Vec<Value> = (PODS..PODS + STREAMED).map(pod).collect();
            let standin = &standin;
            async move {
                for p in creations {
                    standin.create(p).unwrap();
                }
            }
        };
        writer.await;
        let written = start.elapsed();
        while cluster.status().pods < before + STREAMED {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = start.elapsed();
        println!(
            "watch events ingested: {STREAMED} pod creations in {:.2} s = {:.0} events/s (the stand-in took {:.2} s to make them)",
            took.as_secs_f64(),
            STREAMED as f64 / took.as_secs_f64(),
            written.as_secs_f64()
        );
        let status = cluster.status();
        println!("watch errors: {}, events applied: {}", status.watch_errors, status.events_applied);
    });
}

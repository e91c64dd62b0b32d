//! BestOptions latency as Cluster Autoscaler sees it: the real `ballast expander` (this
//! build) over TLS on loopback, the default chain (binpack by price), 20 options (one per
//! group, 20 instance types) each carrying the same 1,000 pending pods of 20 shapes in the
//! `podBytes` encoding CA 1.35 uses. One call at a time, as CA makes them; 30 warm-up calls,
//! then 300 timed. The request is encoded once, outside the timing.
//!
//! `cargo bench -p ballast --bench expander` (prints figures; not a criterion benchmark).

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks fail loudly

#[path = "../tests/support/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ballast_proto::grpcplugin::{self as ca, expander_client::ExpanderClient};
use ballast_proto::k8s::io::api::core::v1 as k8s;
use ballast_proto::k8s::io::apimachinery::pkg::api::resource::Quantity;
use ballast_proto::k8s::io::apimachinery::pkg::apis::meta::v1 as meta;
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const OPTIONS: usize = 20;
const PODS: usize = 1_000;
const WARM_UP: usize = 30;
const CALLS: usize = 300;
/// (type, vCPUs, memory GiB) from the bundled price table.
const TYPES: [(&str, u32, u32); 10] = [
    ("m5.large", 2, 8),
    ("m5.xlarge", 4, 16),
    ("m5.2xlarge", 8, 32),
    ("m6i.large", 2, 8),
    ("m6i.xlarge", 4, 16),
    ("c5.large", 2, 4),
    ("c5.xlarge", 4, 8),
    ("c5.2xlarge", 8, 16),
    ("r5.large", 2, 16),
    ("r5.xlarge", 4, 32),
];

fn quantities(list: &[(&str, String)]) -> HashMap<String, Quantity> {
    list.iter().map(|(k, v)| (k.to_string(), Quantity { string: Some(v.clone()) })).collect()
}

fn template(i: usize) -> k8s::Node {
    let (instance, cpus, gib) = TYPES[i % TYPES.len()];
    let spot = i >= TYPES.len();
    let mut labels: HashMap<String, String> = [
        ("node.kubernetes.io/instance-type", instance),
        ("topology.kubernetes.io/zone", if i.is_multiple_of(2) { "us-east-1a" } else { "us-east-1b" }),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if spot {
        labels.insert("eks.amazonaws.com/capacityType".into(), "SPOT".into());
    }
    let resources =
        |cpu: String, memory: String| quantities(&[("cpu", cpu), ("memory", memory), ("pods", "58".into())]);
    k8s::Node {
        metadata: Some(meta::ObjectMeta { name: Some(format!("template-{i}")), labels, ..Default::default() }),
        spec: Some(k8s::NodeSpec::default()),
        status: Some(k8s::NodeStatus {
            capacity: resources(cpus.to_string(), format!("{gib}Gi")),
            allocatable: resources(format!("{}m", cpus * 1000 - 90), format!("{}Mi", gib * 1024 - 800)),
        }),
    }
}

fn pod(i: usize) -> Vec<u8> {
    let shape = i % 20;
    let pod = k8s::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some(format!("w{shape}-{i}")),
            namespace: Some(format!("team-{}", shape % 4)),
            owner_references: vec![meta::OwnerReference {
                kind: Some("ReplicaSet".into()),
                name: Some(format!("w{shape}-rs")),
                controller: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        }),
        spec: Some(k8s::PodSpec {
            containers: vec![k8s::Container {
                name: Some("app".into()),
                resources: Some(k8s::ResourceRequirements {
                    requests: quantities(&[
                        ("cpu", format!("{}m", 100 + 50 * shape)),
                        ("memory", format!("{}Mi", 128 + 64 * shape)),
                    ]),
                    ..Default::default()
                }),
                restart_policy: None,
            }],
            ..Default::default()
        }),
    };
    pod.encode_to_vec()
}

fn request() -> ca::BestOptionsRequest {
    let pods: Vec<Vec<u8>> = (0..PODS).map(pod).collect();
    let mut request = ca::BestOptionsRequest::default();
    for i in 0..OPTIONS {
        let group = format!("group-{i}");
        request.node_bytes_map.insert(group.clone(), template(i).encode_to_vec());
        request.options.push(ca::Option {
            node_group_id: group,
            node_count: 50,
            pod_bytes: pods.clone(),
            ..Default::default()
        });
    }
    request
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    tls::certificates(dir.path());
    let d = dir.path().display();
    let config = format!("listen: 127.0.0.1:0\ntls: {{cert: {d}/server.pem, key: {d}/server.key}}\n");
    std::fs::write(dir.path().join("expander.yaml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["expander", "--config"])
        .arg(dir.path().join("expander.yaml"))
        .env("BALLAST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    let line = lines.find(|l| l.contains("expander on https://")).unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let port = line.rsplit(':').next().unwrap().to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (bytes, times) = runtime.block_on(async {
        rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(dir.path().join("ca.pem")).unwrap()))
            .domain_name("localhost");
        let channel = Channel::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = ExpanderClient::new(channel).max_encoding_message_size(128 << 20);
        let request = request();
        let bytes = request.encoded_len();
        let mut times = Vec::with_capacity(CALLS);
        for i in 0..WARM_UP + CALLS {
            let started = Instant::now();
            let answer = client.best_options(request.clone()).await.unwrap().into_inner();
            if i >= WARM_UP {
                times.push(started.elapsed());
            }
            assert!(!answer.options.is_empty(), "the chain chose no option");
        }
        (bytes, times)
    });
    let _ = child.kill();
    let _ = child.wait();
    let mut sorted = times;
    sorted.sort();
    println!(
        "BestOptions, {OPTIONS} options x {PODS} pending pods ({:.1} MiB request), {CALLS} calls: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        bytes as f64 / (1 << 20) as f64,
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().unwrap().as_secs_f64() * 1e3,
    );
}

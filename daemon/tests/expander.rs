//! `ballast expander` end to end: the real binary over TLS, called as Cluster Autoscaler calls
//! it, by a tonic client generated from `proto/grpcplugin/expander.proto` and by Python's
//! grpcio generated from the same file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ballast_proto::grpcplugin::{self as ca, expander_client::ExpanderClient};
use ballast_proto::k8s::io::api::core::v1 as k8s;
use ballast_proto::k8s::io::apimachinery::pkg::api::resource::Quantity;
use ballast_proto::k8s::io::apimachinery::pkg::apis::meta::v1 as meta;
use ballast_proto::v1 as pb;
use prost::Message;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `ballast expander` with `policies` (a YAML list), TLS from a test CA, a journal.
struct Expander {
    child: Child,
    dir: tempfile::TempDir,
    address: String,
}

impl Expander {
    fn start(policies: &str) -> Expander {
        let dir = tempfile::tempdir().unwrap();
        tls::certificates(dir.path());
        let d = dir.path().display();
        let config = format!(
            "listen: 127.0.0.1:0\ntls: {{cert: {d}/server.pem, key: {d}/server.key}}\njournal: {d}/expander.jsonl\n{policies}"
        );
        std::fs::write(dir.path().join("expander.yaml"), config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["expander", "--config"])
            .arg(dir.path().join("expander.yaml"))
            .env("BALLAST_CACHE_DIR", root().join("target/test-component-cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
        let line = lines.find(|l| l.contains("expander on https://")).expect("the address announced");
        std::thread::spawn(move || lines.for_each(drop));
        let address = line.rsplit("https://").next().unwrap().to_string();
        Expander { child, dir, address }
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A channel as CA opens one: TLS, trusting the server's certificate chain.
    async fn channel(&self) -> Channel {
        rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
        let port = self.address.rsplit(':').next().unwrap();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(self.ca_pem()).unwrap()))
            .domain_name("localhost");
        Channel::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// BestOptions with CA's deadline.
    async fn best(&self, request: ca::BestOptionsRequest) -> Result<Vec<String>, tonic::Status> {
        let mut call = tonic::Request::new(request);
        call.set_timeout(Duration::from_secs(5));
        let answer = ExpanderClient::new(self.channel().await).best_options(call).await?.into_inner();
        Ok(answer.options.into_iter().map(|o| o.node_group_id).collect())
    }

    /// `ballast decisions` on the journal.
    fn decisions(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["decisions", "--journal"])
            .arg(self.dir.path().join("expander.jsonl"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into()
    }
}

impl Drop for Expander {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn quantities(list: &[(&str, &str)]) -> HashMap<String, Quantity> {
    list.iter().map(|(k, v)| (k.to_string(), Quantity { string: Some(v.to_string()) })).collect()
}

fn strings(list: &[(&str, &str)]) -> HashMap<String, String> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A template node as CA builds one for a group: its type's labels and resources, the
/// group's taints.
fn template(group: &str, instance: &str, allocatable: (&str, &str), spot: bool) -> k8s::Node {
    let mut labels = vec![
        ("node.kubernetes.io/instance-type", instance),
        ("topology.kubernetes.io/zone", "us-east-1a"),
        ("kubernetes.io/os", "linux"),
    ];
    let mut taints = Vec::new();
    if spot {
        labels.push(("eks.amazonaws.com/capacityType", "SPOT"));
        taints.push(k8s::Taint {
            key: Some("spot".into()),
            value: Some("true".into()),
            effect: Some("NoSchedule".into()),
        });
    }
    k8s::Node {
        metadata: Some(meta::ObjectMeta {
            name: Some(format!("template-node-for-{group}-123")),
            labels: strings(&labels),
            ..Default::default()
        }),
        spec: Some(k8s::NodeSpec { taints, ..Default::default() }),
        status: Some(k8s::NodeStatus {
            capacity: quantities(&[("cpu", "4"), ("memory", "16Gi"), ("pods", "58")]),
            allocatable: quantities(&[("cpu", allocatable.0), ("memory", allocatable.1), ("pods", "29")]),
        }),
    }
}

/// A pending pod of Deployment web's ReplicaSet asking 500m and 1Gi.
fn pod(name: &str, tolerates_spot: bool) -> k8s::Pod {
    let tolerations = match tolerates_spot {
        true => vec![k8s::Toleration {
            key: Some("spot".into()),
            operator: Some("Equal".into()),
            value: Some("true".into()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        }],
        false => Vec::new(),
    };
    k8s::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            owner_references: vec![meta::OwnerReference {
                kind: Some("ReplicaSet".into()),
                name: Some("web-7d9f8c".into()),
                controller: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        }),
        spec: Some(k8s::PodSpec {
            containers: vec![k8s::Container {
                name: Some("web".into()),
                resources: Some(k8s::ResourceRequirements {
                    requests: quantities(&[("cpu", "500m"), ("memory", "1Gi")]),
                    ..Default::default()
                }),
                restart_policy: None,
            }],
            tolerations,
            ..Default::default()
        }),
    }
}

/// How CA encodes the Kubernetes objects.
#[derive(Clone, Copy)]
enum Form {
    /// `nodeBytesMap` and `podBytes` (CA 1.35).
    Bytes,
    /// The deprecated `nodeMap` and `pod`.
    Messages,
    /// Bytes in Kubernetes' wire envelope (`k8s\0` + runtime.Unknown).
    Enveloped,
}

fn enveloped(kind: &str, raw: Vec<u8>) -> Vec<u8> {
    use ballast_proto::k8s::io::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some("v1".into()), kind: Some(kind.into()) }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some("application/vnd.kubernetes.protobuf".into()),
    };
    [b"k8s\0".to_vec(), unknown.encode_to_vec()].concat()
}

/// Three groups CA could grow for three pending pods: on-demand m5.large (`general`),
/// on-demand c5.xlarge (`compute`), tainted spot m5.large (`spot`).
fn three_groups(tolerate_spot: bool, form: Form) -> ca::BestOptionsRequest {
    let pods: Vec<k8s::Pod> = (0..3).map(|i| pod(&format!("web-7d9f8c-{i}"), tolerate_spot)).collect();
    let groups = [
        ("general", template("general", "m5.large", ("1930m", "7Gi"), false), 1),
        ("compute", template("compute", "c5.xlarge", ("3920m", "6Gi"), false), 1),
        ("spot", template("spot", "m5.large", ("1930m", "7Gi"), true), 1),
    ];
    let mut request = ca::BestOptionsRequest::default();
    for (group, node, count) in groups {
        let mut option = ca::Option {
            node_group_id: group.into(),
            node_count: count,
            debug: format!("{group}: {count} node(s)"),
            ..Default::default()
        };
        match form {
            Form::Messages => {
                option.pod = pods.clone();
                request.node_map.insert(group.into(), node);
            }
            Form::Bytes => {
                option.pod_bytes = pods.iter().map(Message::encode_to_vec).collect();
                request.node_bytes_map.insert(group.into(), node.encode_to_vec());
            }
            Form::Enveloped => {
                option.pod_bytes = pods.iter().map(|p| enveloped("Pod", p.encode_to_vec())).collect();
                request.node_bytes_map.insert(group.into(), enveloped("Node", node.encode_to_vec()));
            }
        }
        request.options.push(option);
    }
    request
}

const DEFAULT_POLICIES: &str = "";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_three_groups_the_answer_names_the_cheapest_one_the_pods_may_use_and_the_record_says_why() {
    let expander = Expander::start(DEFAULT_POLICIES);
    // The pods do not tolerate the spot taint: m5.large on demand holds three for less than
    // a c5.xlarge.
    assert_eq!(expander.best(three_groups(false, Form::Bytes)).await.unwrap(), ["general"]);
    // Tolerating it, the spot m5.large costs 35% of the same.
    assert_eq!(expander.best(three_groups(true, Form::Bytes)).await.unwrap(), ["spot"]);

    let table = expander.decisions();
    assert!(table.contains("(expander) binpack"), "{table}");
    assert!(table.contains("chose general") && table.contains("chose spot"), "{table}");
    for offered in ["general +1 (3 pods)", "compute", "+1 (3 pods), spot +1 (3 pods)"] {
        assert!(table.contains(offered), "{offered} in {table}");
    }

    // The same records over the control API's Decisions, on the expander's listener.
    let records = pb::decisions_client::DecisionsClient::new(expander.channel().await)
        .list(pb::ListDecisionsRequest {
            filter: Some(pb::DecisionFilter { group: "spot".into(), ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(records.len(), 2, "both calls offered spot");
    let Some(pb::record::Kind::Expander(newest)) = &records[0].kind else { panic!("{:?}", records[0]) };
    assert_eq!(newest.chosen.len(), 1);
    assert_eq!((newest.chosen[0].group.as_str(), newest.chosen[0].plugin.as_str()), ("spot", "binpack"));
    let reason = &newest.chosen[0].reason;
    assert!(reason.contains("$0.0336/h") && reason.contains("cheapest of 3 groups"), "the plugin's reason: {reason}");
    assert_eq!(newest.offered.len(), 3);
    assert_eq!(records[0].tick, 2, "the second call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_encoded_objects_enveloped_or_not_and_the_deprecated_fields_get_the_same_answer() {
    let expander = Expander::start(DEFAULT_POLICIES);
    for tolerate in [false, true] {
        let bytes = expander.best(three_groups(tolerate, Form::Bytes)).await.unwrap();
        assert_eq!(expander.best(three_groups(tolerate, Form::Messages)).await.unwrap(), bytes);
        assert_eq!(expander.best(three_groups(tolerate, Form::Enveloped)).await.unwrap(), bytes);
    }
}

/// A native sidecar (an init container with `restartPolicy: Always`, as Istio runs its proxy)
/// runs beside the app, so each pod asks 500m + 1500m: more than an m5.large's 1930m, and
/// the answer is the c5.xlarge. Counted as an init container (the larger of 500m and
/// 1500m), an m5.large would seem to hold one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_native_sidecar_counts_beside_its_containers() {
    let expander = Expander::start(DEFAULT_POLICIES);
    let mut request = three_groups(false, Form::Messages);
    let sidecar = k8s::Container {
        name: Some("proxy".into()),
        resources: Some(k8s::ResourceRequirements {
            requests: quantities(&[("cpu", "1500m"), ("memory", "128Mi")]),
            ..Default::default()
        }),
        restart_policy: Some("Always".into()),
    };
    for pod in request.options.iter_mut().flat_map(|o| o.pod.iter_mut()) {
        pod.spec.as_mut().unwrap().init_containers.push(sidecar.clone());
    }
    assert_eq!(expander.best(request).await.unwrap(), ["compute"]);
}

/// Three pods of 1200m: a c5.xlarge holds all three, an m5.large one, so the c5.xlarge is
/// the cheaper answer. Kept one to a node by required pod anti-affinity, each option's one
/// node holds one pod either way: the m5.large, the cheaper node, comes first, then the
/// c5.xlarge for one more. CA 1.35's bytes and the deprecated messages read alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kept_apart_by_anti_affinity_are_priced_one_to_a_node() {
    let expander = Expander::start(DEFAULT_POLICIES);
    let request = |apart: bool, form: Form| {
        let mut request = three_groups(false, Form::Messages);
        for pod in request.options.iter_mut().flat_map(|o| o.pod.iter_mut()) {
            let spec = pod.spec.as_mut().unwrap();
            let requests = &mut spec.containers[0].resources.as_mut().unwrap().requests;
            requests.insert("cpu".into(), Quantity { string: Some("1200m".into()) });
            pod.metadata.as_mut().unwrap().labels = strings(&[("app", "web")]);
            if apart {
                let term = k8s::PodAffinityTerm {
                    label_selector: Some(meta::LabelSelector {
                        match_labels: strings(&[("app", "web")]),
                        ..Default::default()
                    }),
                    topology_key: Some("kubernetes.io/hostname".into()),
                    ..Default::default()
                };
                let anti = k8s::PodAntiAffinity { required_during_scheduling_ignored_during_execution: vec![term] };
                spec.affinity = Some(k8s::Affinity { pod_anti_affinity: Some(anti), ..Default::default() });
            }
        }
        if let Form::Bytes = form {
            for option in &mut request.options {
                option.pod_bytes = option.pod.drain(..).map(|p| p.encode_to_vec()).collect();
            }
        }
        request
    };
    assert_eq!(expander.best(request(false, Form::Messages)).await.unwrap(), ["compute"]);
    for form in [Form::Messages, Form::Bytes] {
        assert_eq!(expander.best(request(true, form)).await.unwrap(), ["general", "compute"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_be_read_is_refused_naming_the_field_and_recorded() {
    let expander = Expander::start(DEFAULT_POLICIES);
    let mut request = three_groups(false, Form::Bytes);
    request.options[1].pod_bytes[2] = vec![0xff, 0xff, 0xff];
    let status = expander.best(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("options[1].podBytes[2]: not a protobuf v1.Pod"), "{}", status.message());

    let mut request = three_groups(false, Form::Bytes);
    request.node_bytes_map.remove("compute");
    let status = expander.best(request).await.unwrap_err();
    assert!(status.message().contains("'compute' has no template node"), "{}", status.message());
    assert!(expander.decisions().contains("failed: options[1].podBytes[2]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_is_an_error_well_within_cas_deadline_so_ca_keeps_its_own_choice() {
    let plugin = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("hostile_policy.wasm");
    let policies = format!(
        "policies:\n- {{plugin: binpack, settings: {{expander: price}}}}\n\
         - {{plugin: {}, settings: {{mode: endless-loop}}, limits: {{deadline-ms: 300}}}}\n",
        plugin.display()
    );
    let expander = Expander::start(&policies);
    let status = expander.best(three_groups(false, Form::Bytes)).await.unwrap_err();
    // Not CANCELLED or the client's DEADLINE_EXCEEDED: the server answered inside CA's 5 s.
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("plugin hostile_policy failed (deadline"), "{}", status.message());
    let table = expander.decisions();
    assert!(table.contains("failed: plugin") && table.contains("hostile_policy failed"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_generated_from_the_same_proto_gets_the_same_answers() {
    let expander = Expander::start(DEFAULT_POLICIES);
    let python = root().join("target/tools/venv/bin/python");
    assert!(python.exists(), "{} is missing: run tests/setup.sh", python.display());
    let out = Command::new(python)
        .arg(root().join("tests/grpc/expander_client.py"))
        .arg(&expander.address)
        .arg(expander.ca_pem())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "bytes, intolerant: general",
        "messages, intolerant: general",
        "bytes, tolerant: spot",
        "messages, tolerant: spot",
    ] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
}

#[test]
fn the_binary_refuses_to_start_without_tls_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("expander.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ballast")).args(["expander", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success(), "it must not serve without TLS");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expander.yaml: tls: required"), "{stderr}");
}

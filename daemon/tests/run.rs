//! `ballast run` end to end: the daemon against the Kubernetes API stand-in and moto. Pending
//! pods appear; the bundled binpack policy asks for a node; the Auto Scaling group grows; the
//! decision is in the journal; SIGTERM stops it cleanly and frees the Lease.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use kube_standin::StandIn;
use support::moto::{Moto, sdk_config};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_scales_a_group_for_pending_pods_and_stops_cleanly() {
    let standin = StandIn::start().await.unwrap();
    let moto = Moto::start().await;
    let aws = sdk_config(&moto.url).await;
    aws_sdk_ec2::Client::new(&aws)
        .create_launch_template()
        .launch_template_name("general-lt")
        .launch_template_data(
            RequestLaunchTemplateData::builder().image_id("ami-12c6146b").instance_type(InstanceType::M5Large).build(),
        )
        .send()
        .await
        .unwrap();
    let mut create = aws_sdk_autoscaling::Client::new(&aws)
        .create_auto_scaling_group()
        .auto_scaling_group_name("general")
        .min_size(0)
        .max_size(10)
        .desired_capacity(0)
        .availability_zones("us-east-1a")
        .launch_template(
            LaunchTemplateSpecification::builder().launch_template_name("general-lt").version("$Latest").build(),
        );
    for (k, v) in [("k8s.io/cluster-autoscaler/enabled", "true"), ("k8s.io/cluster-autoscaler/e2e", "owned")] {
        create = create
            .tags(Tag::builder().key(k).value(v).resource_id("general").resource_type("auto-scaling-group").build());
    }
    create.send().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), standin.kubeconfig()).unwrap();
    let journal = dir.path().join("decisions.jsonl");
    let config = format!(
        "engine: {{tick-interval: 1s}}\n\
         policies: [{{plugin: binpack}}]\n\
         kubernetes: {{leader: {{lease-duration: 3s, renew-deadline: 2s, retry-period: 500ms}}}}\n\
         aws: {{cluster-name: e2e, region: us-east-1, endpoint-url: \"{}\", max-calls-per-second: 100}}\n\
         journal: {}\n",
        moto.url,
        journal.display()
    );
    std::fs::write(dir.path().join("ballast.yaml"), config).unwrap();

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["run", "--config"])
        .arg(dir.path().join("ballast.yaml"))
        .args(["--identity", "e2e-replica"])
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BALLAST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("ballast runs");

    for i in 0..3 {
        standin.create(pending_pod(&format!("web-{i}"), None)).unwrap();
    }
    let asg = aws_sdk_autoscaling::Client::new(&aws);
    let grew = eventually(Duration::from_secs(40), async || {
        let out = asg.describe_auto_scaling_groups().auto_scaling_group_names("general").send().await.unwrap();
        out.auto_scaling_groups()[0].desired_capacity().unwrap_or(0) > 0
    })
    .await;
    if grew.is_none() {
        let _ = daemon.kill();
        let output = daemon.wait_with_output().unwrap();
        panic!("the group never grew; daemon log:\n{}", String::from_utf8_lossy(&output.stderr));
    }

    Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    let output = daemon.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}:\n{log}", output.status);
    let lease = standin.get("coordination.k8s.io/v1", "Lease", "kube-system", "ballast-leader").expect("a lease");
    assert!(lease["spec"].get("holderIdentity").is_none_or(|h| h.is_null()), "released on shutdown: {lease}");

    let records = std::fs::read_to_string(&journal).unwrap();
    let decision = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["plugin"] == "binpack" && r["result"]["result"] == "done")
        .unwrap_or_else(|| panic!("a done binpack decision in the journal:\n{records}"));
    assert!(
        decision["proposed"]["scale-to"]["group"] == "general"
            || decision["proposed"]["scale-by"]["group"] == "general",
        "{decision}"
    );
}

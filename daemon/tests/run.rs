//! `ballast run` end to end: the daemon against the Kubernetes API stand-in and moto. Pending
//! pods appear; the bundled binpack policy asks for a node; the Auto Scaling group grows; the
//! decision is in the journal; SIGTERM stops it cleanly and frees the Lease.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::process::Command;
use std::time::Duration;

use kube_standin::StandIn;
use support::moto::{Moto, sdk_config};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_scales_a_group_for_pending_pods_and_stops_cleanly() {
    let standin = StandIn::start().await.unwrap();
    let moto = Moto::start().await;
    let aws = sdk_config(&moto.url).await;
    daemon::general_group(&aws, 0).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), standin.kubeconfig()).unwrap();
    let journal = dir.path().join("decisions.jsonl");
    let config = daemon::config("  tick-interval: 1s\n", "  - {plugin: binpack}\n", &moto.url, &journal);
    std::fs::write(dir.path().join("ballast.yaml"), config).unwrap();
    let mut daemon = daemon::start(&dir.path().join("ballast.yaml"), "e2e-replica", &dir.path().join("kubeconfig"));

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

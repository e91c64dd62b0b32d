//! `ballast run` end to end: the daemon against the Kubernetes API stand-in and moto. Pending
//! pods appear; the bundled binpack policy asks for a node; the Auto Scaling group grows; the
//! decision is in the journal; SIGTERM stops it cleanly and frees the Lease.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_scales_a_group_for_pending_pods_and_stops_cleanly() {
    let site = daemon::Site::start(0).await;
    let (standin, journal) = (&site.standin, site.journal());
    let mut daemon = site.replica("e2e-replica", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");

    for i in 0..3 {
        standin.create(pending_pod(&format!("web-{i}"), None)).unwrap();
    }
    let grew = eventually(Duration::from_secs(40), async || site.group().await.0 > 0).await;
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

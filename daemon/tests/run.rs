//! `ballast run` end to end: the daemon against the Kubernetes API stand-in and moto. Pending
//! pods appear; the bundled binpack policy asks for a node; the Auto Scaling group grows; the
//! decision is in the journal; SIGTERM stops it cleanly and frees the Lease; the policy's
//! state was saved and a restart takes it back, unless it is too old. Two replicas:
//! `ballast ctl status` on the standby names the one that leads. A ClusterRole that forbids
//! HorizontalPodAutoscalers does not stop it. A weighted group is left alone and named in
//! `ballast ctl status`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::process::{Child, Command};
use std::time::Duration;

use support::daemon::{announced, announced_each, get, sample};
use support::moto::mixed_group;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_scales_a_group_for_pending_pods_and_stops_cleanly() {
    let site = daemon::Site::start(0).await;
    let (standin, journal) = (&site.standin, site.journal());
    let state_file = journal.with_file_name("policy-state.json");
    let extra = format!("policy-state: {}\n", state_file.display());
    let mut daemon = site.replica("e2e-replica", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", &extra);

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

    // What the next leader needs was left in the ConfigMap beside the Lease: the group's
    // cooldown and binpack's state.
    let map = standin.get("v1", "ConfigMap", "kube-system", "ballast-handover").expect("a handover");
    let handover: serde_json::Value = serde_json::from_str(map["data"]["handover.json"].as_str().unwrap()).unwrap();
    assert!(handover["groups"]["general"]["last-scale-up"].as_u64().is_some(), "{handover}");
    assert_eq!(handover["left-by"], "e2e-replica");
    assert!(handover["policies"]["policies"]["binpack"]["state"].is_string(), "{handover}");

    // What binpack remembers was saved, and a restart takes it back.
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert!(saved["policies"]["binpack"]["state"].as_str().is_some_and(|s| !s.is_empty()), "{saved}");
    let mut restarted = site.replica("e2e-replica", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", &extra);
    announced(&mut restarted, "control API");
    Command::new("kill").args(["-TERM", &restarted.id().to_string()]).status().unwrap();
    let output = restarted.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("policy states taken back") && log.contains("[\"binpack\"]"), "{log}");

    // A state saved long ago is taken back but not handed to binpack: its first evaluation
    // drops it (policy-state-max-age, 5m by default) and saves afresh. (No handover in the
    // cluster, or its newer states would be taken instead.)
    standin.delete("v1", "ConfigMap", "kube-system", "ballast-handover").unwrap();
    let mut saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    saved["at-millis"] = serde_json::json!(0);
    std::fs::write(&state_file, saved.to_string()).unwrap();
    let stale = site.replica("e2e-replica", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", &extra);
    let evaluated = async || {
        let text = std::fs::read(&state_file).unwrap_or_default();
        serde_json::from_slice::<serde_json::Value>(&text).is_ok_and(|v| v["at-millis"].as_u64() > Some(0))
    };
    let saved_again = eventually(Duration::from_secs(40), evaluated).await;
    Command::new("kill").args(["-TERM", &stale.id().to_string()]).status().unwrap();
    let output = stale.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(saved_again.is_some(), "never evaluated:\n{log}");
    assert!(log.contains("policy states too old to hand back"), "{log}");
}

/// What `ballast ctl status` prints for the control API at `address`.
fn ctl_status(address: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["ctl", "--server", &format!("http://{address}"), "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ctl status: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stop(child: &mut Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_status_on_a_standby_names_the_replica_that_leads() {
    let site = daemon::Site::start(0).await;
    let engine = "  tick-interval: 1s\n";
    let mut first = site.replica("replica-a", engine, "  - {plugin: binpack}\n", "");
    let at_first = announced(&mut first, "control API");
    let holder = || {
        let lease = site.standin.get("coordination.k8s.io/v1", "Lease", "kube-system", "ballast-leader");
        lease.and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    let led = eventually(Duration::from_secs(30), async || holder().as_deref() == Some("replica-a")).await;
    assert!(led.is_some(), "replica-a never took the Lease: {:?}", holder());

    let mut second = site.replica("replica-b", engine, "  - {plugin: binpack}\n", "");
    let at_second = announced(&mut second, "control API");
    let named = eventually(Duration::from_secs(20), async || ctl_status(&at_second).contains("replica-a leads")).await;
    let (standby, leader) = (ctl_status(&at_second), ctl_status(&at_first));
    stop(&mut first);
    stop(&mut second);
    assert!(named.is_some(), "the standby does not name the leader:\n{standby}");
    assert!(standby.contains("replica:   replica-b (standby; replica-a leads)"), "{standby}");
    assert!(leader.contains("replica:   replica-a (leading since"), "{leader}");
}

/// A ClusterRole from before HorizontalPodAutoscalers were read forbids listing them for the
/// whole run: `ballast run` still syncs, scales a group for pending pods, and says why it
/// sees no autoscalers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_role_that_forbids_autoscalers_does_not_stop_scaling() {
    let site = daemon::Site::start(0).await;
    site.standin.inject(Some("GET"), "horizontalpodautoscalers", 403, 100_000);
    let daemon = site.replica("old-role", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    for i in 0..3 {
        site.standin.create(pending_pod(&format!("web-{i}"), None)).unwrap();
    }
    let grew = eventually(Duration::from_secs(40), async || site.group().await.0 > 0).await;
    Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    let log = String::from_utf8_lossy(&daemon.wait_with_output().unwrap().stderr).into_owned();
    assert!(grew.is_some(), "the group never grew; daemon log:\n{log}");
    assert!(log.contains("horizontalpodautoscalers") && log.contains("cannot list"), "{log}");
}

/// A mixed instances group with weights (its desired capacity counts units, not instances)
/// beside `general`, and cheaper (m5a.large): `ballast run` scales `general` for pending pods
/// and never the weighted group; `ballast ctl status` names the group, the field and the
/// value, and `/metrics` counts it under the AWS adapter, so an operator sees why it is not
/// managed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_group_is_left_alone_and_named_in_ctl_status() {
    let site = daemon::Site::start(0).await;
    let tags = [("k8s.io/cluster-autoscaler/enabled", "true"), ("k8s.io/cluster-autoscaler/e2e", "owned")];
    mixed_group(&site.aws, "weighted", &[("m5a.large", Some("2")), ("m5.xlarge", Some("4"))], None, &tags).await;
    let mut daemon = site.replica("weighted", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    let [control, admin] = <[String; 2]>::try_from(announced_each(&mut daemon, &["control API", "metrics and health"]))
        .expect("both addresses");
    for i in 0..3 {
        site.standin.create(pending_pod(&format!("web-{i}"), None)).unwrap();
    }
    let grew = eventually(Duration::from_secs(40), async || site.group().await.0 > 0).await;
    let status = ctl_status(&control);
    let metrics = get(&admin, "/metrics", None).2;
    let weighted = site.group_named("weighted").await.0;
    Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    let log = String::from_utf8_lossy(&daemon.wait_with_output().unwrap().stderr).into_owned();
    assert!(grew.is_some(), "general never grew; daemon log:\n{log}");
    assert_eq!(weighted, 0, "the weighted group was scaled");
    let line = status.lines().find(|l| l.starts_with("unreadable:")).unwrap_or_else(|| panic!("{status}"));
    for needle in ["Auto Scaling group weighted", "Overrides[0].WeightedCapacity", "\"2\"", "counts units"] {
        assert!(line.contains(needle), "{needle:?} not in {line}");
    }
    let counted = sample(&metrics, "ballast_unreadable_values_total{adapter=\"aws\"}").unwrap_or_default();
    assert!(counted >= 1.0, "the weighted group is not counted:\n{metrics}");
    assert_eq!(sample(&metrics, "ballast_unreadable_values_total{adapter=\"kubernetes\"}"), Some(0.0), "{metrics}");
}

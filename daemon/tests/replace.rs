//! Replacement through `ballast run`, Karpenter's way round: the real binary against the
//! Kubernetes API stand-in and moto. A node whose pods would fit on one node of a group at
//! least 20% cheaper is replaced: the cheaper group grows first, and only once its new node
//! is Ready is the old node cordoned, drained through the Eviction API and terminated with a
//! decrement of its group. Merges (several nodes into one cheaper new node) go the same way,
//! and so do rotations of nodes past their age (`expiry`) and a node an operator asks to
//! replace (`ballast ctl replace node`). Group rolls and drift: `rolls.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::process::Child;
use std::time::Duration;

use aws_sdk_ec2::types::InstanceType;
use serde_json::{Value, json};
use support::daemon::{Site, fail, node_group, records, stop};
use support::*;

/// The Node a kubelet on an instance of `group` registers: its type and allocatable.
fn typed_node(name: &str, instance: &str, group: &str, instance_type: &str, allocatable: Value) -> Value {
    let mut n = node(name, instance, group);
    n["metadata"]["labels"]["node.kubernetes.io/instance-type"] = json!(instance_type);
    n["status"]["allocatable"] = allocatable;
    n
}

/// An engine free to act at once: 1 s ticks, no minimum node age, no cooldowns.
const AT_ONCE: &str = "  tick-interval: 1s\n  guardrails:\n    min-node-age: 0s\n    \
                       cooldown: {scale-down-after-scale-up: 0s, after-scale-down: 0s}\n";

/// A replica running consolidation alone, free to act at once.
fn consolidating(site: &Site, name: &str) -> Child {
    site.replica(name, AT_ONCE, "  - {plugin: consolidation}\n", "")
}

/// Node `n0` of `general` running two pods of Deployment `web`.
fn web_on_n0(site: &Site, instance: &str) {
    site.standin.create(node("n0", instance, "general")).unwrap();
    site.standin.create(deployment("web")).unwrap();
    site.standin.create(replica_set("web-rs", "web")).unwrap();
    for i in 0..2 {
        site.standin
            .create(running_pod(&format!("web-{i}"), "n0", Some(("ReplicaSet", "web-rs")), json!({"app": "web"})))
            .unwrap();
    }
}

/// The two pods `web`'s ReplicaSet makes again for those evicted, bound to c0 as the
/// scheduler would.
fn web_new_on_c0(site: &Site) {
    for i in 0..2 {
        let pod = running_pod(&format!("web-new-{i}"), "c0", Some(("ReplicaSet", "web-rs")), json!({"app": "web"}));
        site.standin.create(pod).unwrap();
    }
}

/// consolidation's first decision proposing `what` (`scale-to`, `remove-nodes`).
fn decision<'a>(journal: &'a [Value], what: &str) -> &'a Value {
    journal
        .iter()
        .find(|r| r["record"] == "decision" && r["plugin"] == "consolidation" && r["proposed"][what].is_object())
        .unwrap_or_else(|| panic!("a consolidation {what} decision in:\n{journal:#?}"))
}

/// The Node a kubelet on a t3.medium of group `cheap` registers.
fn cheap_node(name: &str, instance: &str) -> Value {
    typed_node(name, instance, "cheap", "t3.medium", json!({"cpu": "1930m", "memory": "3300Mi", "pods": "17"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_replaced_by_a_cheaper_one_launched_before_it_is_drained() {
    let site = Site::start(1).await;
    node_group(&site.aws, "cheap", InstanceType::T3Medium, 0).await;
    let old = site.group().await.1;
    web_on_n0(&site, &old[0]);
    let daemon = consolidating(&site, "replacer");

    // The cheaper group grows first; the old node keeps its pods meanwhile.
    let launched = eventually(Duration::from_secs(40), async || site.group_named("cheap").await.1.len() == 1).await;
    if launched.is_none() {
        fail(daemon, &format!("the cheaper group never grew: {:?}", site.group_named("cheap").await));
    }
    let n0 = site.standin.get("v1", "Node", "", "n0").unwrap();
    assert_ne!(n0["spec"]["unschedulable"], true, "n0 cordoned before its replacement was Ready: {n0}");
    assert_eq!(site.group().await.0, 1, "the old node's group shrank before its replacement was Ready");

    // The new instance's kubelet registers; then the old node goes.
    let new = site.group_named("cheap").await.1;
    site.standin.create(cheap_node("c0", &new[0])).unwrap();
    let replaced = eventually(Duration::from_secs(60), async || site.group().await == (0, Vec::new())).await;
    if replaced.is_none() {
        fail(daemon, &format!("n0 was not removed: general {:?}", site.group().await));
    }
    let n0 = site.standin.get("v1", "Node", "", "n0").unwrap();
    assert_eq!(n0["spec"]["unschedulable"], true, "cordoned before termination: {n0}");
    assert!(site.standin.get("v1", "Pod", "default", "web-0").is_none(), "web-0 evicted from n0");
    assert_eq!(site.group_named("cheap").await.0, 1, "the replacement stays");

    let journal = records(&site.journal());
    let (grow, remove) = (decision(&journal, "scale-to"), decision(&journal, "remove-nodes"));
    assert_eq!(grow["proposed"]["scale-to"], json!({"group": "cheap", "size": 1}), "{grow}");
    let reason = grow["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("replace n0 (m5.large in general at $0.0960/h) by a new t3.medium in cheap"),
        "{reason}"
    );
    assert_eq!(remove["proposed"]["remove-nodes"]["nodes"], json!(["n0"]), "{remove}");
    assert!(grow["tick"].as_u64() < remove["tick"].as_u64(), "launch first, then drain: {grow} {remove}");
    stop(daemon);
}

/// The Node a kubelet on a c5.xlarge of group `big` registers.
fn big_node(name: &str, instance: &str) -> Value {
    typed_node(name, instance, "big", "c5.xlarge", json!({"cpu": "3920m", "memory": "7Gi", "pods": "58"}))
}

/// A merge through `ballast run`: two m5.large ($0.192/h together), each too full to take
/// the other's pods, become one c5.xlarge ($0.17/h). The c5.xlarge is launched first; only
/// once it is Ready are the two drained and their group shrunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_are_merged_into_one_cheaper_node_launched_before_they_are_drained() {
    let site = Site::start(2).await;
    node_group(&site.aws, "big", InstanceType::C5Xlarge, 0).await;
    let old = site.group().await.1;
    site.standin.create(deployment("web")).unwrap();
    site.standin.create(replica_set("web-rs", "web")).unwrap();
    for (n, instance) in ["n0", "n1"].iter().zip(&old) {
        site.standin.create(node(n, instance, "general")).unwrap();
        // Seven 250m pods: 180m left, too little for the other node's.
        for i in 0..7 {
            let pod = running_pod(&format!("web-{n}-{i}"), n, Some(("ReplicaSet", "web-rs")), json!({"app": "web"}));
            site.standin.create(pod).unwrap();
        }
    }
    let daemon = consolidating(&site, "merger");

    let launched = eventually(Duration::from_secs(40), async || site.group_named("big").await.1.len() == 1).await;
    if launched.is_none() {
        fail(daemon, &format!("the c5.xlarge group never grew: {:?}", site.group_named("big").await));
    }
    for n in ["n0", "n1"] {
        let node = site.standin.get("v1", "Node", "", n).unwrap();
        assert_ne!(node["spec"]["unschedulable"], true, "{n} cordoned before the new node was Ready: {node}");
    }
    assert_eq!(site.group().await.0, 2, "general shrank before the new node was Ready");

    let new = site.group_named("big").await.1;
    site.standin.create(big_node("b0", &new[0])).unwrap();
    // The cloud's node controller deletes the Node of each terminated instance.
    let merged = eventually(Duration::from_secs(60), async || {
        let (desired, instances) = site.group().await;
        for (n, instance) in ["n0", "n1"].iter().zip(&old) {
            if !instances.contains(instance) {
                let _ = site.standin.delete("v1", "Node", "", n);
            }
        }
        (desired, instances.len()) == (0, 0)
    })
    .await;
    if merged.is_none() {
        fail(daemon, &format!("n0 and n1 were not removed: general {:?}", site.group().await));
    }
    assert!(site.standin.get("v1", "Pod", "default", "web-n1-0").is_none(), "n1's pods were evicted");
    assert_eq!(site.group_named("big").await.0, 1, "the merged node stays");

    let journal = records(&site.journal());
    let grow = decision(&journal, "scale-to");
    let reason = grow["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("merge n0, n1 ($0.1920/h together) into a new c5.xlarge in big at $0.1700/h, 11% less"),
        "{reason}"
    );
    stop(daemon);
}

/// Node rotation through `ballast run` (`expiry`, then `consolidation`): n0, registered long
/// ago, is past `expire-after-seconds`. Its group grows first; while the successor's kubelet
/// has not registered, n0 keeps its pods. Once the successor is Ready, n0 is cordoned,
/// drained and terminated with a decrement, and the successor, empty until then, is never
/// taken by consolidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_node_is_rotated_its_successor_launched_and_ready_before_it_is_drained() {
    let site = Site::start(1).await;
    let old = site.group().await.1;
    web_on_n0(&site, &old[0]);
    let policies = "  - {plugin: expiry, settings: {expire-after-seconds: 3600}}\n  - {plugin: consolidation}\n";
    let daemon = site.replica("rotator", AT_ONCE, policies, "");

    let grown = eventually(Duration::from_secs(40), async || site.group().await.1.len() == 2).await;
    if grown.is_none() {
        fail(daemon, &format!("no successor was launched: {:?}", site.group().await));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n0 = site.standin.get("v1", "Node", "", "n0").unwrap();
    assert_ne!(n0["spec"]["unschedulable"], true, "n0 cordoned before its successor registered: {n0}");

    let successor = site.group().await.1.into_iter().find(|i| *i != old[0]).unwrap();
    site.standin.create(registered_now("c0", &successor)).unwrap();
    // The drain begins; the ReplicaSet's new pods land on c0, as the scheduler would put them.
    let cordoned = async || site.standin.get("v1", "Node", "", "n0").unwrap()["spec"]["unschedulable"] == true;
    if eventually(Duration::from_secs(30), cordoned).await.is_none() {
        fail(daemon, "n0 was never cordoned once its successor was Ready");
    }
    web_new_on_c0(&site);
    let rotated =
        eventually(Duration::from_secs(60), async || site.group().await == (1, vec![successor.clone()])).await;
    if rotated.is_none() {
        fail(daemon, &format!("n0 was not rotated out: general {:?}", site.group().await));
    }
    let n0 = site.standin.get("v1", "Node", "", "n0").unwrap();
    assert_eq!(n0["spec"]["unschedulable"], true, "cordoned before termination: {n0}");
    assert!(site.standin.get("v1", "Pod", "default", "web-0").is_none(), "web-0 evicted from n0");
    let c0 = site.standin.get("v1", "Node", "", "c0").unwrap();
    assert_ne!(c0["spec"]["unschedulable"], true, "the successor stays: {c0}");

    let journal = records(&site.journal());
    let by_expiry = |what: &str| {
        journal
            .iter()
            .find(|r| r["record"] == "decision" && r["plugin"] == "expiry" && r["proposed"][what].is_object())
            .unwrap_or_else(|| panic!("an expiry {what} decision in:\n{journal:#?}"))
    };
    let (grow, remove) = (by_expiry("scale-to"), by_expiry("remove-nodes"));
    assert_eq!(grow["proposed"]["scale-to"], json!({"group": "general", "size": 2}), "{grow}");
    assert!(grow["reason"].as_str().unwrap().contains("node n0 is"), "{grow}");
    assert_eq!(remove["proposed"]["remove-nodes"]["nodes"], json!(["n0"]), "{remove}");
    assert!(remove["reason"].as_str().unwrap().contains("its successor is Ready"), "{remove}");
    stop(daemon);
}

/// `ballast ctl ARGS` against the control API at `control`, with the operator's write token.
/// An operator asks for n0's replacement through the control API, with the real CLI
/// (`ballast ctl replace node`). The answer is the tick's decision record, naming who asked
/// and why. n0's group grows first and n0 is cordoned at once, but its pods stay while the
/// replacement boots; once the replacement is Ready they are evicted and n0 is terminated
/// with a decrement. consolidation, running beside it, does not take the empty replacement.
/// Before that: an unknown node is NOT_FOUND, n0 is refused while it runs a pod annotated
/// `karpenter.sh/do-not-disrupt`, and a dry run launches and cordons nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_an_operator_asks_to_replace_gets_its_replacement_before_its_pods_are_evicted() {
    let site = Site::start(1).await;
    let old = site.group().await.1;
    web_on_n0(&site, &old[0]);
    // The host's cooldowns at their defaults: the replacement's growth holds the group.
    let engine = "  tick-interval: 1s\n  guardrails:\n    min-node-age: 0s\n";
    let mut daemon = site.replica("operated", engine, "  - {plugin: consolidation}\n", "");
    let control = support::daemon::announced(&mut daemon, "control API");
    let ctl = |args: &[&str]| site.ctl(&control, args);
    if !site.leading_with(1).await {
        fail(daemon, "the daemon never saw n0");
    }

    let unknown = ctl(&["replace", "node", "n9", "--reason", "typo"]);
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success() && said.contains("NOT_FOUND") && said.contains("node n9"), "{said}");
    // A pod that must not be disrupted keeps its node, asked or not; once it is gone, n0 may go.
    let mut pinned = running_pod("pinned", "n0", Some(("ReplicaSet", "web-rs")), json!({"app": "web"}));
    pinned["metadata"]["annotations"] = json!({"karpenter.sh/do-not-disrupt": "true"});
    site.standin.create(pinned).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // two ticks: the pod is in the snapshot
    let kept = ctl(&["replace", "node", "n0", "--reason", "kernel patch"]);
    let said = String::from_utf8_lossy(&kept.stderr);
    assert!(!kept.status.success() && said.contains("FAILED_PRECONDITION"), "{said}");
    assert!(said.contains("pod default/pinned is annotated karpenter.sh/do-not-disrupt=true"), "{said}");
    assert_eq!(site.group().await.0, 1, "nothing launched for a kept node");
    site.standin.delete("v1", "Pod", "default", "pinned").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dry = ctl(&["replace", "node", "n0", "--reason", "kernel patch", "--dry-run"]);
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success() && said.contains("dry-run") && said.contains("would cordon n0"), "{said}");
    assert_eq!(site.group().await.0, 1, "a dry run launches nothing");
    let n0 = site.standin.get("v1", "Node", "", "n0").unwrap();
    assert_ne!(n0["spec"]["unschedulable"], true, "a dry run cordons nothing: {n0}");
    let asked = ctl(&["replace", "node", "n0", "--reason", "kernel patch"]);
    let answer = String::from_utf8_lossy(&asked.stdout);
    assert!(asked.status.success(), "{answer}{}", String::from_utf8_lossy(&asked.stderr));
    assert!(
        answer.contains("replacement asked by operator (kernel patch): cordoned n0; its replacement started at once (general 1 -> 2)"),
        "{answer}"
    );
    assert_eq!(site.group().await.0, 2, "the replacement is launched at once");
    let n0 = site.standin.get("v1", "Node", "", "n0").unwrap();
    assert_eq!(n0["spec"]["unschedulable"], true, "n0 cordoned at once: {n0}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(site.standin.get("v1", "Pod", "default", "web-0").is_some(), "web-0 evicted before a replacement is Ready");

    let successor = site.group().await.1.into_iter().find(|i| *i != old[0]).unwrap();
    site.standin.create(registered_now("c0", &successor)).unwrap();
    let evicted = async || site.standin.get("v1", "Pod", "default", "web-0").is_none();
    if eventually(Duration::from_secs(30), evicted).await.is_none() {
        fail(daemon, "n0's pods were never evicted once its replacement was Ready");
    }
    web_new_on_c0(&site);
    let replaced =
        eventually(Duration::from_secs(60), async || site.group().await == (1, vec![successor.clone()])).await;
    if replaced.is_none() {
        fail(daemon, &format!("n0 was not terminated with a decrement: general {:?}", site.group().await));
    }
    let c0 = site.standin.get("v1", "Node", "", "c0").unwrap();
    assert_ne!(c0["spec"]["unschedulable"], true, "the replacement stays: {c0}");
    let journal = records(&site.journal());
    let asked: Vec<(&Value, &Value)> =
        journal.iter().filter(|r| r["record"] == "control").map(|r| (&r["caller"], &r["change"])).collect();
    let (operator, n9, n0) = (json!("operator"), json!("replace node n9"), json!("replace node n0"));
    let n0_dry = json!("replace node n0 (dry-run)");
    let each = [(&operator, &n9), (&operator, &n0), (&operator, &n0_dry), (&operator, &n0)];
    assert_eq!(asked, each, "each request is a control record");
    let refused: Vec<&Value> =
        journal.iter().filter(|r| r["guard"]["outcome"] == "refused").map(|r| &r["guard"]["why"][0]["rule"]).collect();
    assert_eq!(refused, [&json!("unknown-node"), &json!("removal-blocked")], "the refusals are recorded");
    stop(daemon);
}

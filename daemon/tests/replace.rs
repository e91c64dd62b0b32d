//! Replacement through `ballast run`, Karpenter's way round: the real binary against the
//! Kubernetes API stand-in and moto. A node whose pods would fit on one node of a group at
//! least 20% cheaper is replaced: the cheaper group grows first, and only once its new node
//! is Ready is the old node cordoned, drained through the Eviction API and terminated with a
//! decrement of its group. Merges (several nodes into one cheaper new node) go the same way,
//! and so do rotations of nodes past their age (`expiry`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use aws_sdk_ec2::types::InstanceType;
use serde_json::{Value, json};
use support::daemon::{Site, node_group};
use support::*;

fn records(journal: &Path) -> Vec<Value> {
    std::fs::read_to_string(journal).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn stop(child: Child) -> String {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn fail(child: Child, what: &str) -> ! {
    panic!("{what}; daemon log:\n{}", stop(child));
}

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

/// The Node the kubelet of `instance` (group `general`) registers now.
fn registered_now(name: &str, instance: &str) -> Value {
    let mut n = node(name, instance, "general");
    n["metadata"]["creationTimestamp"] =
        json!(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    n
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
fn ctl(site: &Site, control: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command.args(["ctl", "--server", &format!("http://{control}"), "--token-file"]);
    command.arg(site.operator_token()).args(args).output().unwrap()
}

/// Waits for a tick of the leader that saw `nodes` nodes.
async fn leading_with(site: &Site, nodes: usize) -> bool {
    let leading = |r: &Value| r["record"] == "tick" && r["standby"] != true && r["saw"]["nodes"] == nodes;
    eventually(Duration::from_secs(30), async || records(&site.journal()).iter().any(leading)).await.is_some()
}

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
    let ctl = |args: &[&str]| ctl(&site, &control, args);
    if !leading_with(&site, 1).await {
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
    assert!(dry.status.success() && said.contains("dry-run") && said.contains("cordoned n0"), "{said}");
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

/// What the test plays besides Ballast while group `general` (n0 and n1, each running a
/// pod of `web`) is replaced: the kubelet of each new instance registers its node once the
/// instance has booted (1.5 s: a creation time, to the second, after the launch), and the
/// ReplicaSet brings each evicted pod back on the newest node.
struct Kubelets<'a> {
    site: &'a Site,
    old: Vec<String>,
    /// New instances, and when each was first seen.
    booting: Vec<(String, std::time::Instant)>,
    registered: Vec<String>,
}

impl<'a> Kubelets<'a> {
    async fn start(site: &'a Site) -> Kubelets<'a> {
        let old = site.group().await.1;
        site.standin.create(deployment("web")).unwrap();
        site.standin.create(replica_set("web-rs", "web")).unwrap();
        for (i, instance) in old.iter().enumerate() {
            site.standin.create(node(&format!("n{i}"), instance, "general")).unwrap();
            let pod = running_pod(&format!("web-{i}"), &format!("n{i}"), Some(("ReplicaSet", "web-rs")), web());
            site.standin.create(pod).unwrap();
        }
        Kubelets { site, old, booting: Vec::new(), registered: Vec::new() }
    }

    /// Registers the new instances' nodes and brings evicted pods back; returns the group.
    async fn step(&mut self) -> (i32, Vec<String>) {
        let (desired, instances) = self.site.group().await;
        let known = |i: &String| self.old.contains(i) || self.booting.iter().any(|(b, _)| b == i);
        let launched: Vec<String> = instances.iter().filter(|i| !known(i)).cloned().collect();
        self.booting.extend(launched.into_iter().map(|i| (i, std::time::Instant::now())));
        let booted = |(i, at): &(String, std::time::Instant)| {
            (at.elapsed() > Duration::from_millis(1_500) && !self.registered.contains(i)).then(|| i.clone())
        };
        let new: Vec<String> = self.booting.iter().filter_map(booted).collect();
        for instance in new {
            let name = format!("r{}", self.registered.len());
            self.site.standin.create(registered_now(&name, &instance)).unwrap();
            self.registered.push(instance);
        }
        let pod = |name: &str| self.site.standin.get("v1", "Pod", "default", name);
        for i in 0..2 {
            if pod(&format!("web-{i}")).is_none() && pod(&format!("web-again-{i}")).is_none() {
                let newest = format!("r{}", self.registered.len() - 1);
                let again = running_pod(&format!("web-again-{i}"), &newest, Some(("ReplicaSet", "web-rs")), web());
                self.site.standin.create(again).unwrap();
            }
        }
        (desired, instances)
    }

    /// The old nodes still in the group and cordoned.
    fn old_cordoned(&self, instances: &[String]) -> usize {
        let cordoned = |i: usize| {
            self.site.standin.get("v1", "Node", "", &format!("n{i}")).unwrap()["spec"]["unschedulable"] == true
        };
        (0..2).filter(|i| instances.contains(&self.old[*i]) && cordoned(*i)).count()
    }

    /// Every old node replaced, the group back at its size.
    fn rolled(&self, (desired, instances): &(i32, Vec<String>)) -> bool {
        *desired == 2 && instances.len() == 2 && !instances.iter().any(|i| self.old.contains(i))
    }
}

fn web() -> Value {
    json!({"app": "web"})
}

/// The control record that ends the replacement of `general`, once it is in the journal.
async fn roll_ended(site: &Site) -> bool {
    let ended = |r: &Value| r["record"] == "control" && r["change"] == "replace group general: done, 2 replaced";
    eventually(Duration::from_secs(10), async || records(&site.journal()).iter().any(ended)).await.is_some()
}

const ROLLING: (&str, &str) = (
    "  tick-interval: 1s\n  guardrails:\n    min-node-age: 0s\n",
    "  - {plugin: binpack, settings: {scale-down: false}}\n",
);

/// An operator replaces group `general` after a new AMI (`ballast ctl replace group`): n0
/// and n1 are replaced one at a time, oldest first: each is cordoned as its replacement is
/// launched, and at no moment are both old nodes leaving. The nodes launched for the roll
/// are not replaced, `/metrics` shows it under way, and it ends with a control record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_an_operator_asks_to_replace_is_rolled_one_node_at_a_time_replacements_first() {
    let site = Site::start(2).await;
    let mut kubelets = Kubelets::start(&site).await;
    let mut daemon = site.replica("rolling", ROLLING.0, ROLLING.1, "");
    let [control, admin] =
        support::daemon::announced_each(&mut daemon, &["control API", "metrics and health"]).try_into().unwrap();
    if !leading_with(&site, 2).await {
        fail(daemon, "the daemon never saw n0 and n1");
    }
    let asked = ctl(&site, &control, &["replace", "group", "general", "--reason", "AMI 2026.11"]);
    let answer = String::from_utf8_lossy(&asked.stdout);
    assert!(asked.status.success(), "{answer}{}", String::from_utf8_lossy(&asked.stderr));
    assert!(answer.contains("replace group general: 2 node(s), 1 at a time, oldest first: n0, n1"), "{answer}");

    let mut both_cordoned = false;
    let mut started_seen = 0.0_f64;
    let rolled = eventually(Duration::from_secs(90), async || {
        let group = kubelets.step().await;
        both_cordoned |= kubelets.old_cordoned(&group.1) > 1;
        let series = "ballast_node_group_replacement_started{node_group=\"general\"}";
        let scrape = support::daemon::get(&admin, "/metrics", None).2;
        started_seen = started_seen.max(support::daemon::sample(&scrape, series).unwrap_or(0.0));
        kubelets.rolled(&group)
    })
    .await;
    if rolled.is_none() {
        fail(
            daemon,
            &format!("general was not rolled: {:?}, registered {:?}", site.group().await, kubelets.registered),
        );
    }
    assert!(!both_cordoned, "both old nodes were leaving at once");
    assert!(started_seen >= 1.0, "/metrics showed the roll under way");
    assert_eq!(kubelets.registered.len(), 2, "one replacement each, none for the roll's own nodes");
    if !roll_ended(&site).await {
        fail(daemon, "the roll did not end with a control record");
    }
    let gone = async || !support::daemon::get(&admin, "/metrics", None).2.contains("replacement_started{");
    assert!(eventually(Duration::from_secs(10), gone).await.is_some(), "the series goes with the roll");
    stop(daemon);
}

/// A group replacement survives a restart: the daemon is stopped once n0's replacement has
/// launched, and started again; reading the handover it left (and n0's removal mark), it
/// carries the roll on to n1 and to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_replacement_goes_on_after_the_daemon_restarts() {
    let site = Site::start(2).await;
    let mut kubelets = Kubelets::start(&site).await;
    let mut first = site.replica("first", ROLLING.0, ROLLING.1, "");
    let control = support::daemon::announced(&mut first, "control API");
    if !leading_with(&site, 2).await {
        fail(first, "the daemon never saw n0 and n1");
    }
    let asked = ctl(&site, &control, &["replace", "group", "general", "--reason", "AMI 2026.11"]);
    assert!(asked.status.success(), "{}", String::from_utf8_lossy(&asked.stderr));
    if eventually(Duration::from_secs(30), async || site.group().await.0 == 3).await.is_none() {
        fail(first, "n0's replacement was never launched");
    }
    stop(first);

    let second = site.replica("second", ROLLING.0, ROLLING.1, "");
    let rolled = eventually(Duration::from_secs(90), async || {
        let group = kubelets.step().await;
        kubelets.rolled(&group)
    })
    .await;
    if rolled.is_none() {
        fail(second, &format!("the restarted daemon did not finish the roll: {:?}", site.group().await));
    }
    assert_eq!(kubelets.registered.len(), 2, "one replacement each, none twice");
    if !roll_ended(&site).await {
        fail(second, "the roll did not end with a control record");
    }
    stop(second);
}

/// A group replacement is a voluntary disruption: under a disruption window that lets no node
/// leave (a change freeze), the asked roll starts nothing, however long it waits, while
/// `ctl groups` shows it asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_freeze_holds_a_group_replacement_in_the_running_daemon() {
    let site = Site::start(2).await;
    let _kubelets = Kubelets::start(&site).await;
    let frozen = format!(
        "{}    disruption-budget: {{windows: [{{schedule: '* * * * *', duration: 2m, nodes: 0}}]}}\n",
        ROLLING.0
    );
    let mut daemon = site.replica("frozen", &frozen, ROLLING.1, "");
    let control = support::daemon::announced(&mut daemon, "control API");
    if !leading_with(&site, 2).await {
        fail(daemon, "the daemon never saw n0 and n1");
    }
    let asked = ctl(&site, &control, &["replace", "group", "general", "--reason", "AMI 2026.11"]);
    assert!(asked.status.success(), "{}", String::from_utf8_lossy(&asked.stderr));
    let ticks = |journal: &[Value]| journal.iter().filter(|r| r["record"] == "tick").count();
    let from = ticks(&records(&site.journal()));
    if eventually(Duration::from_secs(30), async || ticks(&records(&site.journal())) >= from + 6).await.is_none() {
        fail(daemon, "six more ticks were never recorded");
    }
    assert_eq!(site.group().await.0, 2, "nothing launched during the freeze");
    for i in 0..2 {
        let node = site.standin.get("v1", "Node", "", &format!("n{i}")).unwrap();
        assert_ne!(node["spec"]["unschedulable"], true, "nothing cordoned during the freeze: {node}");
    }
    let groups = String::from_utf8_lossy(&ctl(&site, &control, &["groups"]).stdout).into_owned();
    assert!(groups.contains("general: replacing its nodes from before") && groups.contains("0 started"), "{groups}");
    stop(daemon);
}

/// A new `$Latest` version of general's launch template, launching `image`.
async fn new_image(site: &Site, image: &str) {
    let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder().image_id(image).build();
    let new = aws_sdk_ec2::Client::new(&site.aws).create_launch_template_version();
    new.launch_template_name("general-lt").source_version("1").launch_template_data(data).send().await.unwrap();
}

/// The value of `series` on the daemon's `/metrics` at `admin`.
fn sampled(admin: &str, series: &str) -> Option<f64> {
    support::daemon::sample(&support::daemon::get(admin, "/metrics", None).2, series)
}

/// A new AMI in the launch template (its `$Latest` version): n0 and n1, launched from the old
/// image, have drifted. With drift replacement off (the default) they are only reported (`ctl
/// groups`, `/metrics`) and nothing is launched; once `engine.guardrails.drift.replace` is
/// set in the configuration file (reloaded, no restart), nobody asks, yet they are replaced
/// one at a time, each successor (from the new image) launched first, through a disruption
/// window that holds group replacements only; the count falls back to 0, the decision
/// records and the nodes' Events say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drifted_nodes_are_reported_and_once_drift_replacement_is_on_replaced_one_at_a_time() {
    let site = Site::start(2).await;
    let mut kubelets = Kubelets::start(&site).await;
    let (aws, reload) = (", image-ttl: 0s", "reload-interval: 500ms\n");
    let mut daemon = site.replica_with_aws("drift", ROLLING.0, ROLLING.1, aws, reload);
    let [control, admin] =
        support::daemon::announced_each(&mut daemon, &["control API", "metrics and health"]).try_into().unwrap();
    if !leading_with(&site, 2).await {
        fail(daemon, "the daemon never saw n0 and n1");
    }
    let drifted = || sampled(&admin, "ballast_node_group_drifted_nodes{node_group=\"general\"}");
    assert_eq!(drifted(), Some(0.0), "nothing drifted before the new image");
    new_image(&site, "ami-1234abcd").await;
    if eventually(Duration::from_secs(30), async || drifted() == Some(2.0)).await.is_none() {
        fail(daemon, "/metrics never counted n0 and n1 drifted");
    }
    let said = |args: &[&str]| String::from_utf8_lossy(&ctl(&site, &control, args).stdout).into_owned();
    let summary = said(&["groups"]);
    assert!(summary.contains("general: 2 node(s) of an image or instance type it no longer launches"), "{summary}");
    let listed = said(&["groups", "--nodes"]);
    let why = "drifted: launched from ami-12c6146b; its group now launches ami-1234abcd";
    assert!(listed.contains(&format!("n0 {why}")) && listed.contains(&format!("n1 {why}")), "{listed}");
    let explained = said(&["explain", "node", "n0"]);
    assert!(explained.contains("it stays: drift replacement is off"), "{explained}");
    assert_eq!(site.group().await.0, 2, "reported only: nothing launched");

    // With a change freeze for group replacements only: drift is not held by it.
    let freeze = "{schedule: '* * * * *', duration: 2m, nodes: 0, reasons: [group-replacement]}";
    let engine = format!("{}    drift: {{replace: true}}\n    disruption-budget: {{windows: [{freeze}]}}\n", ROLLING.0);
    site.write_config(&engine, ROLLING.1, aws, reload);
    let (mut both_cordoned, mut drifted_left) = (false, 2.0_f64);
    let rolled = eventually(Duration::from_secs(90), async || {
        let group = kubelets.step().await;
        both_cordoned |= kubelets.old_cordoned(&group.1) > 1;
        drifted_left = drifted().unwrap_or(drifted_left);
        kubelets.rolled(&group) && drifted_left == 0.0
    })
    .await;
    if rolled.is_none() {
        fail(daemon, &format!("the drifted nodes were not replaced: {:?}, {drifted_left} left", site.group().await));
    }
    assert!(!both_cordoned, "both old nodes were leaving at once");
    assert_eq!(kubelets.registered.len(), 2, "one replacement each: the new nodes run the new image");
    let journal = records(&site.journal());
    for node in ["n0", "n1"] {
        let why = format!("drifted (launched from ami-12c6146b; its group now launches ami-1234abcd): cordoned {node}");
        assert!(journal.iter().any(|r| r["reason"].as_str().is_some_and(|s| s.starts_with(&why))), "{why}");
        let events = site.standin.list("events.k8s.io/v1", "Event", None);
        let told = |e: &Value| e["regarding"]["name"] == node && e["reason"] == "Drifted";
        let event = events.iter().find(|e| told(e)).unwrap_or_else(|| panic!("no Drifted event on {node}: {events:?}"));
        assert!(event["note"].as_str().is_some_and(|n| n.starts_with(&why)), "{event}");
    }
    let window = "ballast_disruption_window_open{schedule=\"* * * * *\",duration=\"2m\",reasons=\"group-replacement\"}";
    assert_eq!(sampled(&admin, window), Some(1.0), "the freeze of group replacements is open");
    let removed = || sampled(&admin, "ballast_nodes_removed_total{node_group=\"general\",reason=\"drifted\"}");
    let counted = eventually(Duration::from_secs(10), async || removed() == Some(2.0)).await;
    assert!(counted.is_some(), "both removals counted as drifted: {:?}", removed());
    stop(daemon);
}

/// Drift replacement never takes a node running a pod annotated `karpenter.sh/do-not-disrupt`,
/// in the running daemon: of two drifted nodes, n1 is replaced and n0, running the pinned
/// pod, stays, never cordoned, its pod never evicted, and still counted drifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_replacement_leaves_a_node_running_a_do_not_disrupt_pod() {
    let site = Site::start(2).await;
    let mut kubelets = Kubelets::start(&site).await;
    let pinned = json!({"metadata": {"annotations": {"karpenter.sh/do-not-disrupt": "true"}}});
    site.standin.patch("v1", "Pod", "default", "web-0", &pinned).unwrap();
    let engine = format!("{}    drift: {{replace: true}}\n", ROLLING.0);
    let mut daemon = site.replica_with_aws("drift", &engine, ROLLING.1, ", image-ttl: 0s", "");
    let admin = support::daemon::announced(&mut daemon, "metrics and health");
    if !leading_with(&site, 2).await {
        fail(daemon, "the daemon never saw n0 and n1");
    }
    new_image(&site, "ami-1234abcd").await;
    let n0_cordoned = || site.standin.get("v1", "Node", "", "n0").unwrap()["spec"]["unschedulable"] == true;
    let mut ever_cordoned = false;
    let replaced = eventually(Duration::from_secs(60), async || {
        let (_, instances) = kubelets.step().await;
        ever_cordoned |= n0_cordoned();
        !instances.contains(&kubelets.old[1]) && kubelets.registered.len() == 1
    })
    .await;
    if replaced.is_none() {
        fail(daemon, &format!("n1 was not replaced: {:?}", site.group().await));
    }
    let drifted = || sampled(&admin, "ballast_node_group_drifted_nodes{node_group=\"general\"}");
    assert!(eventually(Duration::from_secs(10), async || drifted() == Some(1.0)).await.is_some(), "{:?}", drifted());
    assert!(!ever_cordoned && !n0_cordoned(), "n0 runs a do-not-disrupt pod: never cordoned");
    assert!(site.standin.get("v1", "Pod", "default", "web-0").is_some(), "its pod never evicted");
    assert!(site.group().await.1.contains(&kubelets.old[0]), "n0 stays");
    stop(daemon);
}

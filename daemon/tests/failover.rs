//! A drain that outlives its replica: `ballast run` (the real binary, against the stand-in
//! and moto) begins removing a node that a PodDisruptionBudget holds, is killed with
//! SIGKILL, and a second replica takes the Lease, adopts the node from its mark and either
//! finishes the removal with exactly one decrement or, past `drain-timeout`, uncordons it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

struct Cluster {
    site: daemon::Site,
    /// The group's two instances, behind nodes n1 and n2.
    instances: Vec<String>,
}

/// Group `general` with two instances; n1 holds web-1 and web-2, n2 holds web-3, and a
/// budget keeps two web pods available: one eviction from n1 goes through, the second waits.
async fn cluster() -> Cluster {
    let site = daemon::Site::start(2).await;
    let mut instances = site.group().await.1;
    instances.sort();
    assert_eq!(instances.len(), 2);
    let standin = &site.standin;
    standin.create(node("n1", &instances[0], "general")).unwrap();
    standin.create(node("n2", &instances[1], "general")).unwrap();
    standin.create(deployment("web")).unwrap();
    standin.create(replica_set("web-5d8f", "web")).unwrap();
    let rs = Some(("ReplicaSet", "web-5d8f"));
    for (pod, on) in [("web-1", "n1"), ("web-2", "n1"), ("web-3", "n2")] {
        standin.create(running_pod(pod, on, rs, json!({"app": "web"}))).unwrap();
    }
    standin.create(budget("web", 2)).unwrap();
    Cluster { site, instances }
}

impl Cluster {
    /// Starts one replica with the configuration both share (the journal too, as a
    /// restarted pod with its volume would).
    fn replica(&self, identity: &str, drain_timeout: &str) -> Child {
        let scripted = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("scripted_policy.wasm");
        let decisions = json!([
            {"action": {"remove-nodes": {"nodes": ["n1"]}}, "reason": "n1 is under-used"},
            {"action": {"remove-nodes": {"nodes": ["n2"]}}, "reason": "n2 is under-used"},
        ]);
        let engine = format!(
            "  tick-interval: 1s\n  guardrails:\n    min-node-age: 0s\n    drain-timeout: {drain_timeout}\n    \
             disruption-budget: {{percent: 0, min: 1}}\n    \
             cooldown: {{scale-down-after-scale-up: 0s, after-scale-down: 10m}}\n"
        );
        let policies = format!("  - {{plugin: \"{}\", settings: {{decisions: {decisions}}}}}\n", scripted.display());
        self.site.replica(identity, &engine, &policies, "")
    }

    fn journal(&self) -> PathBuf {
        self.site.journal()
    }

    fn node(&self, name: &str) -> Value {
        self.site.standin.get("v1", "Node", "", name).expect("the node")
    }

    fn pods_on(&self, node: &str) -> usize {
        self.site.standin.list("v1", "Pod", Some("default")).iter().filter(|p| p["spec"]["nodeName"] == node).count()
    }

    async fn group(&self) -> (i32, Vec<String>) {
        self.site.group().await
    }
}

fn records(journal: &Path) -> Vec<Value> {
    std::fs::read_to_string(journal).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn marked(node: &Value) -> bool {
    let tainted =
        node["spec"]["taints"].as_array().is_some_and(|t| t.iter().any(|t| t["key"] == "ballast.dev/removal"));
    tainted
        && node["metadata"]["annotations"]["ballast.dev/removal"].is_string()
        && node["spec"]["unschedulable"] == true
}

fn log(child: Child) -> String {
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned()
}

/// Starts replica a, waits until n1 is marked and one of its pods evicted, and kills it.
async fn begin_and_kill(c: &Cluster, drain_timeout: &str) {
    let mut a = c.replica("replica-a", drain_timeout);
    let begun = eventually(Duration::from_secs(30), async || marked(&c.node("n1")) && c.pods_on("n1") == 1).await;
    if begun.is_none() {
        let _ = a.kill();
        panic!("replica a never began the removal:\n{}", log(a));
    }
    let mark: Value =
        serde_json::from_str(c.node("n1")["metadata"]["annotations"]["ballast.dev/removal"].as_str().unwrap()).unwrap();
    assert_eq!((mark["owner"].as_str(), mark["group"].as_str()), (Some("replica-a"), Some("general")), "{mark}");
    assert_eq!(mark["instance-id"], c.instances[0]);
    Command::new("kill").args(["-KILL", &a.id().to_string()]).status().unwrap();
    let _ = a.wait();
    assert!(marked(&c.node("n1")), "the node stays marked after the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_adopts_a_drain_held_by_a_budget_and_finishes_it_with_one_decrement() {
    let c = cluster().await;
    begin_and_kill(&c, "10m").await;

    let mut b = c.replica("replica-b", "10m");
    let adopted = eventually(Duration::from_secs(30), async || {
        records(&c.journal()).iter().any(|r| {
            r["plugin"] == "ballast"
                && r["reason"]
                    .as_str()
                    .is_some_and(|s| s.contains("adopting the removal of node n1 that replica-a began"))
        })
    })
    .await;
    if adopted.is_none() {
        let _ = b.kill();
        panic!("replica b never adopted n1:\n{}", log(b));
    }
    // The budget still holds the last pod: nothing is terminated yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.group().await.0, 2, "no termination while the budget holds a pod");
    assert_eq!(c.pods_on("n1"), 1);

    // A replacement runs elsewhere: the budget allows the eviction, then the instance goes.
    c.site.standin.create(running_pod("web-4", "n2", Some(("ReplicaSet", "web-5d8f")), json!({"app": "web"}))).unwrap();
    let removed = eventually(Duration::from_secs(30), async || !c.group().await.1.contains(&c.instances[0])).await;
    if removed.is_none() {
        let _ = b.kill();
        panic!("replica b never terminated n1's instance:\n{}", log(b));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (desired, instances) = c.group().await;
    assert_eq!(desired, 1, "exactly one decrement: {instances:?}");
    assert_eq!(instances, vec![c.instances[1].clone()]);

    // The scale-down cooldown began with a's removal and holds after the restart: with the
    // budget gone, nothing but the cooldown keeps n2.
    let completed = records(&c.journal())
        .iter()
        .any(|r| r["record"] == "removal" && r["node"] == "n1" && r["outcome"] == "completed");
    assert!(completed, "the removal of n1 is recorded as completed");
    c.site.standin.delete("policy/v1", "PodDisruptionBudget", "default", "web").unwrap();
    let after = records(&c.journal()).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let records = records(&c.journal());
    let n2_refusals: Vec<&Value> = records[after..]
        .iter()
        .filter(|r| r["proposed"]["remove-nodes"]["nodes"][0] == "n2" && r["plugin"] == "scripted_policy")
        // A closing record folds ticks from before the budget went.
        .filter(|r| r["repeated"].is_null())
        .collect();
    assert!(!n2_refusals.is_empty(), "n2 was proposed again after n1 went");
    for r in n2_refusals {
        let rules: Vec<&str> =
            r["guard"]["why"].as_array().unwrap().iter().filter_map(|w| w["rule"].as_str()).collect();
        assert!(rules.contains(&"scale-down-cooldown"), "{r}");
    }
    Command::new("kill").args(["-TERM", &b.id().to_string()]).status().unwrap();
    let b_log = log(b);
    assert!(b_log.contains("adopting a removal in progress"), "{b_log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_drain_timeout_a_new_replica_uncordons_and_clears_the_marks() {
    let c = cluster().await;
    begin_and_kill(&c, "6s").await;

    let b = c.replica("replica-b", "6s");
    let cleared = eventually(Duration::from_secs(40), async || {
        let n1 = c.node("n1");
        !marked(&n1) && n1["spec"]["unschedulable"] != true
    })
    .await;
    Command::new("kill").args(["-TERM", &b.id().to_string()]).status().unwrap();
    let b_log = log(b);
    let n1 = c.node("n1");
    assert!(cleared.is_some(), "n1 is still cordoned or marked: {n1}\n{b_log}");
    let taints = n1["spec"]["taints"].as_array().cloned().unwrap_or_default();
    assert!(taints.iter().all(|t| t["key"] != "ballast.dev/removal"), "{n1}");
    assert!(n1["metadata"]["annotations"].get("ballast.dev/removal").is_none_or(Value::is_null), "{n1}");
    assert_eq!(c.group().await.0, 2, "nothing terminated");
    let abandoned = records(&c.journal())
        .iter()
        .any(|r| r["record"] == "removal" && r["node"] == "n1" && r["outcome"] == "abandoned");
    assert!(abandoned, "the abandonment is recorded");
}

/// Replica a removes empty node n1 and is killed; replica b, on a volume of its own (the
/// chart's emptyDir on another pod: none of a's journal), takes the Lease with a plugin that
/// asks to remove n2 every tick. The scale-down cooldown a's removal began holds in b,
/// through the handover a left in the ConfigMap beside the Lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_on_another_pod_keeps_the_cooldown_the_last_one_began() {
    let site = daemon::Site::start(2).await;
    let mut instances = site.group().await.1;
    instances.sort();
    site.standin.create(node("n1", &instances[0], "general")).unwrap();
    site.standin.create(node("n2", &instances[1], "general")).unwrap();
    let engine = "  tick-interval: 1s\n  guardrails:\n    min-node-age: 0s\n    \
                  cooldown: {scale-down-after-scale-up: 0s, after-scale-down: 10m}\n";
    let removing = |node: &str| {
        let scripted = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("scripted_policy.wasm");
        let decisions = json!([{"action": {"remove-nodes": {"nodes": [node]}}, "reason": format!("{node} is empty")}]);
        format!("  - {{plugin: \"{}\", settings: {{decisions: {decisions}}}}}\n", scripted.display())
    };

    let mut a = site.replica_on_own_volume("replica-a", engine, &removing("n1"));
    let left = async || {
        let map = site.standin.get("v1", "ConfigMap", "kube-system", "ballast-handover");
        map.is_some_and(|m| m["data"]["handover.json"].as_str().is_some_and(|h| h.contains("\"last-scale-down\"")))
    };
    let removed = eventually(Duration::from_secs(30), async || {
        site.group().await == (1, vec![instances[1].clone()]) && left().await
    })
    .await;
    if removed.is_none() {
        let _ = a.kill();
        panic!("replica a never removed n1, or left no handover of it:\n{}", log(a));
    }
    Command::new("kill").args(["-KILL", &a.id().to_string()]).status().unwrap();
    let _ = a.wait();
    // The cloud controller deletes the node of a terminated instance.
    site.standin.delete("v1", "Node", "", "n1").unwrap();

    // The API server fails b's first three reads of the handover: b acts on nothing until
    // it has read it.
    site.standin.inject(Some("GET"), "/api/v1/namespaces/kube-system/configmaps/ballast-handover", 500, 3);
    let mut b = site.replica_on_own_volume("replica-b", engine, &removing("n2"));
    let control = daemon::announced(&mut b, "control API");
    let n2_proposed = |r: &Value| r["plugin"] == "scripted_policy" && r["proposed"]["remove-nodes"]["nodes"][0] == "n2";
    let journal = site.own_journal("replica-b");
    eventually(Duration::from_secs(30), async || records(&journal).iter().any(n2_proposed)).await;
    let status = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["ctl", "--server", &format!("http://{control}"), "status"])
        .output()
        .unwrap();
    Command::new("kill").args(["-TERM", &b.id().to_string()]).status().unwrap();
    let b_log = log(b);
    let refused = records(&journal).into_iter().find(n2_proposed);
    let refused = refused.unwrap_or_else(|| panic!("replica b never led:\n{b_log}"));
    let rules: Vec<&str> =
        refused["guard"]["why"].as_array().into_iter().flatten().filter_map(|w| w["rule"].as_str()).collect();
    assert_eq!(rules, ["scale-down-cooldown"], "{refused}\n{b_log}");
    assert_eq!(site.group().await.0, 1, "n2 stays");
    assert!(b_log.contains("taken over from the last leader from=replica-a"), "{b_log}");
    let records = records(&journal);
    let unread = records.iter().position(|r| {
        r["record"] == "tick" && r["error"].as_str().is_some_and(|e| e.contains("handover could not be read"))
    });
    let first_decision = records.iter().position(|r| r["record"] == "decision");
    assert!(unread.is_some() && unread < first_decision, "b decided before it read the handover:\n{b_log}");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("handover:  taken from replica-a at "), "ballast ctl status:\n{status}");
}

//! Group replacements through `ballast run`, against the Kubernetes API stand-in and moto:
//! a roll an operator asks for (`ballast ctl replace group`), and drift replacement, which
//! nobody asks for. Either way each node's successor is launched and Ready before its pods
//! move, at most `at-once` of a group's nodes leave at a time, and disruption windows hold
//! what they name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::daemon::{Site, fail, records, stop};
use support::*;

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
    if !site.leading_with(2).await {
        fail(daemon, "the daemon never saw n0 and n1");
    }
    let asked = site.ctl(&control, &["replace", "group", "general", "--reason", "AMI 2026.11"]);
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
    if !site.leading_with(2).await {
        fail(first, "the daemon never saw n0 and n1");
    }
    let asked = site.ctl(&control, &["replace", "group", "general", "--reason", "AMI 2026.11"]);
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
    if !site.leading_with(2).await {
        fail(daemon, "the daemon never saw n0 and n1");
    }
    let asked = site.ctl(&control, &["replace", "group", "general", "--reason", "AMI 2026.11"]);
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
    let groups = String::from_utf8_lossy(&site.ctl(&control, &["groups"]).stdout).into_owned();
    assert!(groups.contains("general: replacing its nodes from before") && groups.contains("0 started"), "{groups}");
    stop(daemon);
}

/// A new `$Latest` version of general's launch template, launching `image`; made the default
/// too, as moto tags an instance with its template's default version where EC2 tags it with
/// the version it was launched from (`$Latest` here).
async fn new_image(site: &Site, image: &str) {
    let ec2 = aws_sdk_ec2::Client::new(&site.aws);
    let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder().image_id(image).build();
    let new = ec2.create_launch_template_version().launch_template_name("general-lt").source_version("1");
    new.launch_template_data(data).send().await.unwrap();
    ec2.modify_launch_template().launch_template_name("general-lt").default_version("2").send().await.unwrap();
}

/// The value of `series` on the daemon's `/metrics` at `admin`.
fn sampled(admin: &str, series: &str) -> Option<f64> {
    support::daemon::sample(&support::daemon::get(admin, "/metrics", None).2, series)
}

/// A new AMI in the launch template (its `$Latest` version): n0 and n1, launched from the old
/// image, have drifted. With drift replacement off (the default) they are only reported (`ctl
/// groups`, `/metrics`) and nothing is launched; in dry-run with it on, the would-be
/// replacement is recorded and nothing done; once `engine.guardrails.drift.replace` is
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
    if !site.leading_with(2).await {
        fail(daemon, "the daemon never saw n0 and n1");
    }
    let drifted = || sampled(&admin, "ballast_node_group_drifted_nodes{node_group=\"general\"}");
    assert_eq!(drifted(), Some(0.0), "nothing drifted before the new image");
    new_image(&site, "ami-1234abcd").await;
    if eventually(Duration::from_secs(30), async || drifted() == Some(2.0)).await.is_none() {
        fail(daemon, "/metrics never counted n0 and n1 drifted");
    }
    let said = |args: &[&str]| String::from_utf8_lossy(&site.ctl(&control, args).stdout).into_owned();
    let summary = said(&["groups"]);
    assert!(
        summary.contains("general: 2 drifted node(s): of an image, type or template version it no longer launches"),
        "{summary}"
    );
    let listed = said(&["groups", "--nodes"]);
    let why = "drifted: launched from ami-12c6146b; its group now launches ami-1234abcd";
    assert!(listed.contains(&format!("n0 {why}")) && listed.contains(&format!("n1 {why}")), "{listed}");
    let explained = said(&["explain", "node", "n0"]);
    assert!(explained.contains("it stays: drift replacement is off"), "{explained}");

    // Rehearsed first: in dry-run (set through the control API) with drift replacement on,
    // n0's replacement is recorded in its turn, and nothing is launched or cordoned.
    let dry = site.ctl(&control, &["mode", "set", "dry-run", "--reason", "rehearse drift"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let on = format!("{}    drift: {{replace: true}}\n", ROLLING.0);
    site.write_config(&on, ROLLING.1, aws, reload);
    let would = |r: &Value| {
        r["record"] == "decision" && r["plugin"] == "ballast" && r["proposed"]["remove-nodes"]["nodes"][0] == "n0"
    };
    if eventually(Duration::from_secs(30), async || records(&site.journal()).iter().any(would)).await.is_none() {
        fail(daemon, "dry-run never recorded n0's would-be replacement");
    }
    let rehearsed = records(&site.journal()).into_iter().find(would).unwrap();
    assert_eq!(rehearsed["result"]["result"], "dry-run", "{rehearsed}");
    let reason = rehearsed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("drifted (launched from ami-12c6146b") && reason.contains("would cordon n0"),
        "{reason}"
    );
    let explained = said(&["explain", "node", "n0"]);
    assert!(explained.contains("dry-run: its replacement is recorded in its turn"), "{explained}");
    assert_eq!(site.group().await.0, 2, "a rehearsal launches nothing");
    let n0 = site.standin.get("v1", "Node", "", "n0").unwrap();
    assert_ne!(n0["spec"]["unschedulable"], true, "a rehearsal cordons nothing: {n0}");
    let enforce = site.ctl(&control, &["mode", "set", "enforce", "--reason", "rehearsed"]);
    assert!(enforce.status.success(), "{}", String::from_utf8_lossy(&enforce.stderr));
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
    if !site.leading_with(2).await {
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

//! Running Ballast as a cluster operator would: the real binary against the Kubernetes API
//! stand-in and moto, watched through `/metrics`, `/healthz` and `/readyz`. Reloads without a
//! restart: `reload.rs`.
//!
//! promtool (Debian's prometheus, unpacked by `tests/setup.sh`) lints a scrape; without it
//! the test fails rather than skips.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::daemon::{Site, announced, fail, get, records, sample, stop};
use support::*;

fn promtool_check(metrics: &str) {
    let promtool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/prometheus/usr/bin/promtool");
    assert!(promtool.exists(), "promtool not found at {}: run tests/setup.sh", promtool.display());
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_decisions_and_group_sizes_and_pass_promtool() {
    let site = Site::start(0).await;
    let mut daemon = site.replica("ops", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    let admin = announced(&mut daemon, "metrics and health");
    for i in 0..3 {
        site.standin.create(pending_pod(&format!("web-{i}"), None)).unwrap();
    }
    let grew = eventually(Duration::from_secs(40), async || site.group().await.0 > 0).await;
    if grew.is_none() {
        fail(daemon, "the group never grew");
    }
    let desired = f64::from(site.group().await.0);
    let decided = "ballast_decisions_total{plugin=\"binpack\",action=\"scale-to\",guard=\"accepted\",result=\"done\"}";
    let size = "ballast_node_group_desired_size{node_group=\"general\"}";
    let mut scrape = String::new();
    let shown = eventually(Duration::from_secs(20), async || {
        scrape = get(&admin, "/metrics", None).2;
        sample(&scrape, decided).is_some_and(|n| n >= 1.0) && sample(&scrape, size) == Some(desired)
    })
    .await;
    if shown.is_none() {
        fail(daemon, &format!("/metrics never showed the decision and the size {desired}:\n{scrape}"));
    }
    let set_desired = "ballast_aws_calls_total{service=\"AutoScaling\",operation=\"SetDesiredCapacity\"}";
    assert!(sample(&scrape, set_desired).is_some_and(|n| n >= 1.0), "{scrape}");
    // The nodes it asked for join, Ready: each delivery is timed, from the tick that asked to
    // the tick that saw it, and shows in the histogram (which promtool lints below).
    for (i, instance) in site.group().await.1.iter().enumerate() {
        site.standin.create(node(&format!("n{i}"), instance, "general")).unwrap();
    }
    let delivered = "ballast_node_group_provisioning_duration_seconds_count{node_group=\"general\"}";
    let timed = eventually(Duration::from_secs(20), async || {
        scrape = get(&admin, "/metrics", None).2;
        sample(&scrape, delivered).is_some_and(|n| n >= 1.0)
    })
    .await;
    if timed.is_none() {
        fail(daemon, &format!("/metrics never showed a delivery timed:\n{scrape}"));
    }
    assert_eq!(sample(&scrape, "ballast_leader"), Some(1.0));
    assert_eq!(sample(&scrape, "ballast_mode{mode=\"enforce\"}"), Some(1.0));
    assert_eq!(sample(&scrape, "ballast_kube_caches_synced"), Some(1.0));
    let handovers = |result: &str| sample(&scrape, &format!("ballast_handover_writes_total{{result=\"{result}\"}}"));
    assert!(handovers("written").is_some_and(|n| n >= 1.0), "{scrape}");
    assert_eq!(handovers("failed"), Some(0.0));
    promtool_check(&scrape);
    published(&site, &admin).await;

    let (status, content_type, body) = get(&admin, "/metrics", Some("application/openmetrics-text;version=1.0.0"));
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let (health, _, said) = get(&admin, "/healthz", None);
    assert_eq!(health, 200, "{said}");
    let (ready, _, said) = get(&admin, "/readyz", None);
    assert_eq!(ready, 200, "{said}");
    assert!(
        said.contains("[+] kubernetes") && said.contains("[+] observed") && said.contains("[+] policies"),
        "{said}"
    );
    stop(daemon);
}

/// A pending pod asking one CPU, with `constraints` merged into its spec.
fn pending_with(name: &str, constraints: Value) -> Value {
    let mut pod = pending_pod(name, None);
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("1");
    for (key, value) in constraints.as_object().into_iter().flatten() {
        pod["spec"][key] = value.clone();
    }
    pod
}

/// Pods that select labels every node registers with scale the group whose nodes will carry
/// them, in the real process: moto's `general` is one zone of m5.large, so pods selecting
/// `kubernetes.io/os: linux` (many charts' default) and required by node affinity to be in
/// us-east-1a (as a zonal volume requires) get a node each, and pods selecting arm64 get none:
/// each is told why by a `NotTriggerScaleUp` event, and `/metrics` counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_selecting_a_nodes_well_known_labels_scale_the_group_that_carries_them() {
    let site = Site::start(0).await;
    let mut daemon = site.replica("labels", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    let admin = announced(&mut daemon, "metrics and health");
    for i in 0..2 {
        let arm = json!({"nodeSelector": {"kubernetes.io/arch": "arm64"}});
        site.standin.create(pending_with(&format!("arm-{i}"), arm)).unwrap();
    }
    let journal = site.journal();
    let ticks_saw = |pending: u64| {
        records(&journal).iter().filter(|r| r["record"] == "tick" && r["saw"]["pending-pods"] == pending).count()
    };
    if eventually(Duration::from_secs(30), async || ticks_saw(2) >= 3).await.is_none() {
        fail(daemon, "no three ticks saw the arm64 pods");
    }
    assert_eq!(site.group().await.0, 0, "an m5.large group does not grow for arm64 pods");
    let unplaceable = sample(&get(&admin, "/metrics", None).2, "ballast_unplaceable_pods");
    assert_eq!(unplaceable, Some(2.0), "both arm64 pods counted");
    let told = |pod: &str| {
        let events = site.standin.list("events.k8s.io/v1", "Event", None);
        events
            .into_iter()
            .filter(|e| e["regarding"]["name"] == pod && e["reason"] == "NotTriggerScaleUp")
            .collect::<Vec<_>>()
    };
    let events = told("arm-0");
    assert_eq!(events.len(), 1, "told once, however many ticks saw it: {events:?}");
    let note = events[0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("general: its nodes do not carry kubernetes.io/arch=arm64"),
        "the event names the group and the label: {note}"
    );

    let zone = json!({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]});
    let linux_in_zone = json!({"nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [zone]}]}}}});
    for i in 0..3 {
        site.standin.create(pending_with(&format!("web-{i}"), linux_in_zone.clone())).unwrap();
    }
    if eventually(Duration::from_secs(30), async || site.group().await.0 > 0).await.is_none() {
        fail(daemon, "the group never grew for the linux pods");
    }
    if eventually(Duration::from_secs(30), async || ticks_saw(5) >= 3).await.is_none() {
        fail(daemon, "no three ticks saw all five pods");
    }
    assert_eq!(site.group().await.0, 3, "a node for each linux pod (one CPU each), none for the arm64 ones");
    assert!(told("web-0").is_empty(), "a pod a group can hold is not told it cannot");
    stop(daemon);
}

/// The pods Cluster Autoscaler passes over, in the real process: an expendable pod
/// (priority -20, under the cutoff of -10), a pod the scheduler nominated to a node after
/// preempting there, and a DaemonSet's pod that its node has no room for (a new node runs
/// its own: sized for, it grew the group by a node it cannot use) grow no group, while a plain
/// pod beside them gets its node (one CPU each: an m5.large holds one); `ballast ctl explain
/// pod` says why each of the others waits, and `/metrics` counts them by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_cluster_autoscaler_passes_over_grow_no_group_and_explain_says_why() {
    let site = Site::start(0).await;
    site.standin.create(pending_with("filler-0", json!({"priority": -20}))).unwrap();
    let mut nominated = pending_with("urgent-0", json!({"priority": 1000}));
    nominated["status"]["nominatedNodeName"] = json!("n9");
    site.standin.create(nominated).unwrap();
    site.standin.create(daemon_set("agent")).unwrap();
    let mut agent = pending_pod("agent-n9", Some(("DaemonSet", "agent")));
    agent["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("1");
    site.standin.create(agent).unwrap();
    site.standin.create(pending_with("web-0", json!({}))).unwrap();
    let mut daemon = site.replica("priority", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    let [control, admin] =
        support::daemon::announced_each(&mut daemon, &["control API", "metrics and health"]).try_into().unwrap();
    if eventually(Duration::from_secs(30), async || site.group().await.0 > 0).await.is_none() {
        fail(daemon, "the group never grew for web-0");
    }
    let journal = site.journal();
    let grown = records(&journal).iter().filter(|r| r["record"] == "tick").count();
    let ticks = || records(&journal).iter().filter(|r| r["record"] == "tick").count();
    if eventually(Duration::from_secs(30), async || ticks() >= grown + 3).await.is_none() {
        fail(daemon, "three more ticks were never recorded");
    }
    assert_eq!(site.group().await.0, 1, "one node, for web-0 alone");
    let explained =
        |pod: &str| String::from_utf8_lossy(&site.ctl(&control, &["explain", "pod", pod]).stdout).into_owned();
    let filler = explained("default/filler-0");
    assert!(
        filler.contains("is pending, and no group grows for it: its priority -20 is below kubernetes.expendable-pods-priority-cutoff (-10)"),
        "{filler}"
    );
    let urgent = explained("default/urgent-0");
    assert!(urgent.contains("the scheduler nominated node n9 for it"), "{urgent}");
    let agent = explained("default/agent-n9");
    assert!(agent.contains("a DaemonSet's pod runs only on the node it was made for"), "{agent}");
    let metrics = get(&admin, "/metrics", None).2;
    for reason in ["daemon-set", "expendable", "nominated"] {
        let series = format!("ballast_passed_over_pods{{reason=\"{reason}\"}}");
        assert_eq!(sample(&metrics, &series), Some(1.0), "{series}");
    }
    stop(daemon);
}

/// Pods asking more ephemeral storage than a group's nodes offer grow no group, in the real
/// process: `general`'s node reports what a 20 GiB root volume leaves pods (16.99Gi), and no
/// tag says otherwise, so a CI runner asking 50Gi is told why by a `NotTriggerScaleUp` event
/// and `ballast ctl explain pod`, and counted in `/metrics`, while a pod asking 5Gi beside it
/// gets its node. Told nothing of the disk, binpack would buy a node the runner cannot use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_asking_more_disk_than_the_groups_nodes_offer_grow_no_group() {
    let site = Site::start(1).await;
    let instance = site.group().await.1[0].clone();
    let mut n0 = node("n0", &instance, "general");
    n0["status"]["allocatable"]["ephemeral-storage"] = json!("18242267924");
    site.standin.create(n0).unwrap();
    for (name, disk) in [("runner-0", "50Gi"), ("web-0", "5Gi")] {
        let mut pod = pending_with(name, json!({}));
        pod["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = json!(disk);
        site.standin.create(pod).unwrap();
    }
    let mut daemon = site.replica("disk", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    let [control, admin] =
        support::daemon::announced_each(&mut daemon, &["control API", "metrics and health"]).try_into().unwrap();
    let (daemon, _) = grown_past_and_settled(&site, daemon, 1).await;
    assert_eq!(site.group().await.0, 2, "one node more, for web-0 alone");
    let events = site.standin.list("events.k8s.io/v1", "Event", None);
    let told: Vec<&Value> =
        events.iter().filter(|e| e["regarding"]["name"] == "runner-0" && e["reason"] == "NotTriggerScaleUp").collect();
    assert_eq!(told.len(), 1, "told once: {told:?}");
    let note = told[0]["note"].as_str().unwrap_or_default();
    let why = "it asks 50Gi of ephemeral storage and no group's new node offers that much (general 16.99Gi)";
    assert!(note.contains(why), "the event names the disk and the group: {note}");
    let explained = site.ctl(&control, &["explain", "pod", "default/runner-0"]);
    let explained = String::from_utf8_lossy(&explained.stdout);
    assert!(explained.contains(&format!("is pending, and no group grows for it: {why}")), "{explained}");
    let metrics = get(&admin, "/metrics", None).2;
    assert_eq!(sample(&metrics, "ballast_passed_over_pods{reason=\"ephemeral-storage\"}"), Some(1.0));
    assert_eq!(sample(&metrics, "ballast_unplaceable_pods"), Some(1.0));
    stop(daemon);
}

/// A pod asking more disk than the cheaper group's nodes offer gets a node of the group whose
/// disk holds it, in the real process: `general`'s node reports 16.99Gi, `builders`
/// (m5.xlarge, at zero) says 100Gi in its node-template tag (89Gi less the EKS reserve), and a
/// CI runner asks 30Gi. Told nothing of the disks, binpack would grow `general`, its node
/// the cheaper, and the runner would wait there for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_asking_more_disk_than_the_cheaper_group_offers_gets_the_group_whose_disk_holds_it() {
    let site = Site::start(1).await;
    let tags = [
        ("k8s.io/cluster-autoscaler/enabled", "true"),
        ("k8s.io/cluster-autoscaler/e2e", "owned"),
        ("k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage", "100Gi"),
    ];
    support::moto::template_group(&site.aws, "builders", "m5.xlarge", &tags, 0).await;
    let instance = site.group().await.1[0].clone();
    let mut n0 = node("n0", &instance, "general");
    n0["status"]["allocatable"]["ephemeral-storage"] = json!("18242267924");
    site.standin.create(n0).unwrap();
    let mut runner = pending_with("runner-0", json!({}));
    runner["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = json!("30Gi");
    site.standin.create(runner).unwrap();
    binpack_grows_only(&site, "builders", "builders never grew for the runner").await;
}

/// Runs binpack until `group` grows, then three more ticks: `group` has grown by one node and
/// `general` kept its one. Fails with `never` and the daemon's log if `group` never grows.
async fn binpack_grows_only(site: &Site, group: &str, never: &str) {
    let daemon = site.replica(group, "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    if eventually(Duration::from_secs(30), async || site.group_named(group).await.0 > 0).await.is_none() {
        fail(daemon, never);
    }
    let daemon = three_more_ticks(site, daemon).await;
    let journal = site.journal();
    assert_eq!(site.group_named(group).await.0, 1, "{:#?}", records(&journal));
    assert_eq!(site.group().await.0, 1, "general keeps its one node: {:#?}", records(&journal));
    stop(daemon);
}

/// Waits for `general` to grow and then for three more ticks, so that its size is where the
/// policies and guardrails leave it; fails with the daemon's log otherwise. The daemon and
/// the journal's path, to go on with.
async fn grown_and_settled(site: &Site, daemon: std::process::Child) -> (std::process::Child, std::path::PathBuf) {
    grown_past_and_settled(site, daemon, 0).await
}

/// As [`grown_and_settled`], `general` growing past `size`.
async fn grown_past_and_settled(
    site: &Site,
    daemon: std::process::Child,
    size: i32,
) -> (std::process::Child, std::path::PathBuf) {
    if eventually(Duration::from_secs(30), async || site.group().await.0 > size).await.is_none() {
        fail(daemon, "the group never grew");
    }
    let journal = site.journal();
    let ticks = || records(&journal).iter().filter(|r| r["record"] == "tick").count();
    let grown = ticks();
    if eventually(Duration::from_secs(30), async || ticks() >= grown + 3).await.is_none() {
        fail(daemon, "three more ticks were never recorded");
    }
    (daemon, journal)
}

/// A PodTemplate `spare` of pods asking one CPU and 1Gi, and a CapacityBuffer `name` of the
/// active-capacity strategy keeping room for `replicas` of them, in `default`.
fn spare_room(site: &Site, name: &str, replicas: u32) {
    let template = json!({"apiVersion": "v1", "kind": "PodTemplate",
        "metadata": {"name": "spare", "namespace": "default"},
        "template": {"spec": {"containers": [{"name": "pause", "image": "pause",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}});
    site.standin.create(template).unwrap();
    site.standin
        .create(json!({"apiVersion": "autoscaling.x-k8s.io/v1beta1", "kind": "CapacityBuffer",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"provisioningStrategy": "buffer.x-k8s.io/active-capacity",
                "podTemplateRef": {"name": "spare"}, "replicas": replicas}}))
        .unwrap();
}

/// A CapacityBuffer written for Cluster Autoscaler or Karpenter keeps its room under Ballast,
/// in the real process: a buffer of 3 pods of one CPU from a PodTemplate grows moto's
/// `general` (m5.large: one such pod a node, its allocatable less what the system reserves)
/// by three nodes with no pod pending, headroom's decision names the buffer, the group grows
/// no further once the room is on its way, and `/metrics` shows the buffer's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_buffer_grows_the_group_for_room_no_pod_asks_for_yet() {
    let site = Site::start(0).await;
    spare_room(&site, "web-headroom", 3);
    let policies = "  - {plugin: binpack}\n  - {plugin: headroom}\n";
    let mut daemon = site.replica("buffers", "  tick-interval: 1s\n", policies, "");
    let admin = announced(&mut daemon, "metrics and health");
    let (daemon, journal) = grown_and_settled(&site, daemon).await;
    assert_eq!(site.group().await.0, 3, "room for three pods of one CPU: three m5.large, and no more");
    let asked = records(&journal)
        .into_iter()
        .find(|r| r["record"] == "decision" && r["plugin"] == "headroom")
        .expect("headroom's decision is recorded");
    let reason = asked["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("CapacityBuffer default/web-headroom (3 pods of 1 cpu"), "{reason}");
    let series = "ballast_capacity_buffer_pods{namespace=\"default\",name=\"web-headroom\"}";
    assert_eq!(sample(&get(&admin, "/metrics", None).2, series), Some(3.0), "{series}");
    // The buffer is told what is kept for it, as Cluster Autoscaler's controller tells it.
    let status = buffer_status(&site, "web-headroom");
    assert_eq!(status["replicas"], 3, "{status}");
    assert_eq!(status["conditions"][0]["type"], "ReadyForProvisioning", "{status}");
    assert_eq!(status["conditions"][0]["status"], "True", "{status}");
    stop(daemon);
}

/// A cluster-wide limit holds in the process users run, whatever binpack asks: five pods of
/// one CPU (one a node on moto's m5.large) under `limits: {nodes: 2}` grow `general` to two
/// nodes and no further, and the decision records the limit that spoke, naming its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_wide_node_limit_caps_the_groups_whatever_the_policies_ask() {
    let site = Site::start(0).await;
    for i in 0..5 {
        site.standin.create(pending_with(&format!("web-{i}"), json!({}))).unwrap();
    }
    let engine = "  tick-interval: 1s\n  guardrails:\n    limits: {nodes: 2}\n";
    let mut daemon = site.replica("limited", engine, "  - {plugin: binpack}\n", "");
    announced(&mut daemon, "metrics and health");
    let (daemon, journal) = grown_and_settled(&site, daemon).await;
    assert_eq!(site.group().await.0, 2, "five pods wait, but the cluster may have two nodes");
    let limited = records(&journal)
        .into_iter()
        .find(|r| r["record"] == "decision" && r.to_string().contains("cluster-limit"))
        .unwrap_or_else(|| panic!("no decision names the limit:\n{:#?}", records(&journal)));
    assert!(limited.to_string().contains("guardrails.limits.nodes = 2 nodes"), "{limited}");
    stop(daemon);
}

/// Deployment `name` whose pods are kept one to a node by a required pod anti-affinity on the
/// hostname against its own pods (labelled `app: <name>`).
fn kept_one_to_a_node(name: &str) -> Value {
    let mut deployment = deployment(name);
    deployment["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": name}}}]}});
    deployment
}

/// A Deployment kept one pod to a node by required pod anti-affinity gets a node per pod in
/// the real process: three of its small pods, which one m5.large would hold by their
/// requests, grow moto's `general` to three nodes in one step, as the scheduler will place
/// them (one node would leave two waiting for another round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kept_apart_by_anti_affinity_get_a_node_each() {
    let site = Site::start(0).await;
    site.standin.create(kept_one_to_a_node("web")).unwrap();
    site.standin.create(replica_set("web-1", "web")).unwrap();
    for i in 0..3 {
        site.standin.create(pending_pod(&format!("web-1-{i}"), Some(("ReplicaSet", "web-1")))).unwrap();
    }
    let mut daemon = site.replica("apart", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    announced(&mut daemon, "metrics and health");
    let (daemon, journal) = grown_and_settled(&site, daemon).await;
    assert_eq!(site.group().await.0, 3, "one node a web pod:\n{:#?}", records(&journal));
    stop(daemon);
}

/// Waits until the daemon has recorded three more ticks (failing, with its log, if it does not).
async fn three_more_ticks(site: &Site, daemon: std::process::Child) -> std::process::Child {
    let journal = site.journal();
    let ticks = |journal: &[Value]| journal.iter().filter(|r| r["record"] == "tick").count();
    let settled = ticks(&records(&journal)) + 3;
    if eventually(Duration::from_secs(30), async || ticks(&records(&journal)) >= settled).await.is_none() {
        fail(daemon, "three more ticks were never recorded");
    }
    daemon
}

/// A Deployment whose pods the scheduler keeps within one of even over the domains of `key`
/// (a topology spread that may not be broken).
fn spread_over(name: &str, key: &str) -> Value {
    let mut deployment = deployment(name);
    deployment["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{
        "topologyKey": key, "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": name}}}]);
    deployment
}

/// moto's `general` (one m5.large node, n0, in us-east-1a) and an empty `east-b` (m5.xlarge,
/// in us-east-1b).
async fn beside_east_b() -> Site {
    let site = Site::start(1).await;
    support::daemon::node_group(&site.aws, "east-b", aws_sdk_ec2::types::InstanceType::M5Xlarge, 0).await;
    let autoscaling = aws_sdk_autoscaling::Client::new(&site.aws);
    let east_b = autoscaling.update_auto_scaling_group().auto_scaling_group_name("east-b");
    east_b.availability_zones("us-east-1b").send().await.unwrap();
    let instance = site.group().await.1[0].clone();
    site.standin.create(node("n0", &instance, "general")).unwrap();
    site
}

/// Pods kept spread over zones get their node in the zone short of them, in the real process:
/// web runs two pods in us-east-1a (moto's `general`, one node with room to spare) and none
/// in us-east-1b, so its two waiting pods may only go to us-east-1b. `east-b` (m5.xlarge, in
/// us-east-1b) grows for them, though a node of `general` costs less and would hold them:
/// one there would stand empty while they wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kept_spread_over_zones_get_a_node_in_the_zone_short_of_them() {
    let site = beside_east_b().await;
    site.standin.create(spread_over("web", "topology.kubernetes.io/zone")).unwrap();
    site.standin.create(replica_set("web-1", "web")).unwrap();
    for i in 0..2 {
        let owner = Some(("ReplicaSet", "web-1"));
        site.standin.create(running_pod(&format!("web-1-{i}"), "n0", owner, json!({"app": "web"}))).unwrap();
        site.standin.create(pending_pod(&format!("web-1-{}", i + 2), owner)).unwrap();
    }
    binpack_grows_only(&site, "east-b", "east-b never grew for the pods us-east-1a may not take").await;
}

/// Pods kept in the zone of another workload's pods get their node in that zone, in the real
/// process: db's pod runs on a node in us-east-1b, and two api pods, kept in db's zone by a
/// required pod affinity on the zone, wait. `east-b` (m5.xlarge, in us-east-1b) grows for
/// them, though a node of `general` (us-east-1a) costs less and would hold them: one there
/// would stand empty while they wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kept_in_anothers_zone_get_a_node_in_that_zone() {
    let site = beside_east_b().await;
    let mut db_node = node("db-node", "i-0db", "databases");
    db_node["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!("us-east-1b");
    db_node["spec"]["providerID"] = json!("aws:///us-east-1b/i-0db");
    site.standin.create(db_node).unwrap();
    site.standin.create(deployment("db")).unwrap();
    site.standin.create(replica_set("db-1", "db")).unwrap();
    site.standin.create(running_pod("db-1-0", "db-node", Some(("ReplicaSet", "db-1")), json!({"app": "db"}))).unwrap();
    site.standin.create(kept_near("api", "topology.kubernetes.io/zone", "db")).unwrap();
    site.standin.create(replica_set("api-1", "api")).unwrap();
    for i in 0..2 {
        site.standin.create(pending_pod(&format!("api-1-{i}"), Some(("ReplicaSet", "api-1")))).unwrap();
    }
    binpack_grows_only(&site, "east-b", "east-b never grew for the pods kept in db's zone").await;
}

/// Pods kept spread over nodes get as many nodes as the scheduler will fill, in the real
/// process: n1, full with a batch pod beside it, runs one web pod and n0 two, so no node may
/// run more than two until n1 runs more. Four web pods wait: `general` grows by two nodes,
/// two pods each. Told nothing of the spread, binpack bought one node for all four (they fit
/// by their requests), on which the scheduler would bind two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kept_spread_over_nodes_get_as_many_nodes_as_the_scheduler_will_fill() {
    let site = Site::start(2).await;
    for (i, instance) in site.group().await.1.iter().enumerate() {
        site.standin.create(node(&format!("n{i}"), instance, "general")).unwrap();
    }
    site.standin.create(spread_over("web", "kubernetes.io/hostname")).unwrap();
    site.standin.create(replica_set("web-1", "web")).unwrap();
    site.standin.create(deployment("batch")).unwrap();
    site.standin.create(replica_set("batch-1", "batch")).unwrap();
    let web = Some(("ReplicaSet", "web-1"));
    for (pod, on) in [("web-1-0", "n0"), ("web-1-1", "n0"), ("web-1-2", "n1")] {
        site.standin.create(running_pod(pod, on, web, json!({"app": "web"}))).unwrap();
    }
    let mut batch = running_pod("batch-1-0", "n1", Some(("ReplicaSet", "batch-1")), json!({"app": "batch"}));
    batch["spec"]["containers"][0]["resources"]["requests"] = json!({"cpu": "1500m", "memory": "1Gi"});
    site.standin.create(batch).unwrap();
    for i in 3..7 {
        site.standin.create(pending_pod(&format!("web-1-{i}"), web)).unwrap();
    }
    let daemon = site.replica("nodes", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    if eventually(Duration::from_secs(30), async || site.group().await.0 > 3).await.is_none() {
        fail(daemon, "general never grew by a node for each two waiting web pods");
    }
    let daemon = three_more_ticks(&site, daemon).await;
    assert_eq!(site.group().await.0, 4, "no more while they boot: {:#?}", records(&site.journal()));
    stop(daemon);
}

/// A Deployment kept on at least three nodes (a spread over nodes with `minDomains: 3`) gets
/// them, in the real process: `general` runs one node, n0, with room for all three web pods
/// and one of them, but until three nodes count the scheduler binds no second one there.
/// `general` grows by two nodes, one waiting pod each, and no more while they boot. Told
/// nothing of minDomains, binpack bought one node for both, where the scheduler would bind
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kept_on_at_least_min_domains_nodes_get_that_many_nodes() {
    let site = Site::start(1).await;
    one_running_two_waiting(&site, "kubernetes.io/hostname", 3).await;
    let daemon = site.replica("domains", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    let (daemon, journal) = grown_past_and_settled(&site, daemon, 1).await;
    assert_eq!(site.group().await.0, 3, "a node each for the two waiting: {:#?}", records(&journal));
    stop(daemon);
}

/// `general`'s one node, n0, running web-1-0 of a Deployment spread over `key` with
/// `minDomains: min_domains`, and two more of its pods waiting.
async fn one_running_two_waiting(site: &Site, key: &str, min_domains: u32) {
    let instance = site.group().await.1[0].clone();
    site.standin.create(node("n0", &instance, "general")).unwrap();
    let mut web = spread_over("web", key);
    web["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["minDomains"] = json!(min_domains);
    site.standin.create(web).unwrap();
    site.standin.create(replica_set("web-1", "web")).unwrap();
    let owner = Some(("ReplicaSet", "web-1"));
    site.standin.create(running_pod("web-1-0", "n0", owner, json!({"app": "web"}))).unwrap();
    for i in 1..3 {
        site.standin.create(pending_pod(&format!("web-1-{i}"), owner)).unwrap();
    }
}

/// Pods kept spread over more zones than any group launches in grow no group, in the real
/// process: web asks for at least two zones (`minDomains: 2`, `maxSkew: 1`) and runs one pod
/// in us-east-1a, the only zone of moto's `general`. Until a second zone counts the
/// scheduler puts no second web pod there, so its two waiting pods wait however many nodes
/// are bought: `general` keeps its one node, and a `NotTriggerScaleUp` event, `ballast ctl
/// explain pod` and `/metrics` say why. Told nothing of minDomains, binpack bought a node
/// that would have stood empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kept_spread_over_more_zones_than_the_groups_have_grow_no_group() {
    let site = Site::start(1).await;
    one_running_two_waiting(&site, "topology.kubernetes.io/zone", 2).await;
    let mut daemon = site.replica("zones", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    let [control, admin] =
        support::daemon::announced_each(&mut daemon, &["control API", "metrics and health"]).try_into().unwrap();
    let daemon = three_more_ticks(&site, three_more_ticks(&site, daemon).await).await;
    assert_eq!(site.group().await.0, 1, "no node for pods no node can run: {:#?}", records(&site.journal()));
    let why = "kept spread over at least 2 zones (minDomains), but the nodes and groups its pods may run on are in 1 \
               (us-east-1a): until 2 count the scheduler puts at most 1 in a zone, so at most 1 run";
    let events = site.standin.list("events.k8s.io/v1", "Event", None);
    let told = events.iter().filter(|e| e["regarding"]["name"] == "web-1-1" && e["reason"] == "NotTriggerScaleUp");
    let notes: Vec<&str> = told.filter_map(|e| e["note"].as_str()).collect();
    assert!(notes.len() == 1 && notes[0].contains(why), "told once, why: {notes:?}");
    let explained = site.ctl(&control, &["explain", "pod", "default/web-1-2"]);
    let explained = String::from_utf8_lossy(&explained.stdout);
    assert!(explained.contains(&format!("no group grows for it: {why}")), "{explained}");
    let metrics = get(&admin, "/metrics", None).2;
    assert_eq!(sample(&metrics, "ballast_passed_over_pods{reason=\"too-few-zones\"}"), Some(2.0), "{metrics}");
    assert_eq!(sample(&metrics, "ballast_unplaceable_pods"), Some(2.0), "{metrics}");
    stop(daemon);
}

/// A pod kept spread over nodes that waits only for a drained node to go is not bought a
/// node, in the real process. A scripted policy removes n1; its drain evicts web's pod there
/// and then waits on a PodDisruptionBudget for the second of two db pods. web's replacement
/// pod waits: the scheduler counts n1, cordoned and running none of web's pods, as the node
/// with the fewest, so n0 (running one) may not take it until n1 is gone; then it may. Over
/// the ticks that follow, `general` does not grow; `/metrics` counts the pod as passed over
/// (`awaits-removal`) and `ballast ctl explain pod` says why. Before, binpack bought a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_pod_waiting_for_a_drained_node_to_go_is_not_bought_a_node() {
    let site = Site::start(2).await;
    let mut instances = site.group().await.1;
    instances.sort();
    for (i, instance) in instances.iter().enumerate() {
        site.standin.create(node(&format!("n{i}"), instance, "general")).unwrap();
    }
    site.standin.create(spread_over("web", "kubernetes.io/hostname")).unwrap();
    site.standin.create(replica_set("web-1", "web")).unwrap();
    site.standin.create(deployment("db")).unwrap();
    site.standin.create(replica_set("db-1", "db")).unwrap();
    let web = Some(("ReplicaSet", "web-1"));
    for (pod, on) in [("web-1-0", "n0"), ("web-1-1", "n1")] {
        site.standin.create(running_pod(pod, on, web, json!({"app": "web"}))).unwrap();
    }
    for pod in ["db-1-0", "db-1-1"] {
        site.standin.create(running_pod(pod, "n1", Some(("ReplicaSet", "db-1")), json!({"app": "db"}))).unwrap();
    }
    site.standin.create(budget("db", 1)).unwrap();
    let scripted = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("scripted_policy.wasm");
    let remove = json!([{"action": {"remove-nodes": {"nodes": ["n1"]}}, "reason": "n1 is under-used"}]);
    let policies = format!(
        "  - {{plugin: \"{}\", settings: {{decisions: {remove}, ticks: 1}}}}\n  - {{plugin: binpack}}\n",
        scripted.display()
    );
    let engine = "  tick-interval: 1s\n  guardrails:\n    min-node-age: 0s\n    drain-timeout: 10m\n";
    let mut daemon = site.replica("awaits", engine, &policies, "");
    let [control, admin] =
        support::daemon::announced_each(&mut daemon, &["control API", "metrics and health"]).try_into().unwrap();
    let pods = || site.standin.list("v1", "Pod", Some("default"));
    let evicted = async || !pods().iter().any(|p| p["metadata"]["name"] == "web-1-1");
    if eventually(Duration::from_secs(30), evicted).await.is_none() {
        fail(daemon, "the drain of n1 never evicted web-1-1");
    }
    // Its ReplicaSet makes another, which the scheduler cannot place while n1 stands.
    site.standin.create(pending_pod("web-1-2", web)).unwrap();
    let daemon = three_more_ticks(&site, three_more_ticks(&site, daemon).await).await;
    let journal = site.journal();
    assert_eq!(site.group().await.0, 2, "no node bought for web-1-2: {:#?}", records(&journal));
    let metrics = get(&admin, "/metrics", None).2;
    assert_eq!(sample(&metrics, "ballast_passed_over_pods{reason=\"awaits-removal\"}"), Some(1.0), "{metrics}");
    let explained = site.ctl(&control, &["explain", "pod", "default/web-1-2"]);
    let explained = String::from_utf8_lossy(&explained.stdout);
    assert!(
        explained.contains("no group grows for it: kept spread over nodes, it waits for a node being removed to go"),
        "{explained}"
    );
    stop(daemon);
}

/// The status of CapacityBuffer `name` in `default`, as `kubectl get cb -o yaml` shows it.
fn buffer_status(site: &Site, name: &str) -> Value {
    let buffer = site.standin.get("autoscaling.x-k8s.io/v1beta1", "CapacityBuffer", "default", name);
    buffer.map(|b| b["status"].clone()).unwrap_or_default()
}

/// Each tick's figures reach CloudWatch (moto's), under `Ballast` by cluster.
async fn published(site: &Site, admin: &str) {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&site.aws);
    let listed = eventually(Duration::from_secs(20), async || {
        let out = cloudwatch.list_metrics().namespace("Ballast").send().await.unwrap();
        let names: Vec<&str> = out.metrics().iter().filter_map(|m| m.metric_name()).collect();
        ["PendingPods", "Decisions", "CostPerHour"].iter().all(|n| names.contains(n))
    })
    .await;
    assert!(listed.is_some(), "Ballast's figures never reached CloudWatch");
    let counted = sample(&get(admin, "/metrics", None).2, "ballast_cloudwatch_publishes_total{result=\"published\"}");
    assert!(counted.is_some_and(|n| n >= 1.0), "publications counted: {counted:?}");
}

/// Two empty nodes of `general`, and an engine that removes them once binpack has found them
/// unneeded for 4 s, with the disruption budget's `windows` as given.
async fn two_empty_nodes(windows: &str) -> (Site, String) {
    let site = Site::start(2).await;
    let instances = site.group().await.1;
    assert_eq!(instances.len(), 2);
    for (i, instance) in instances.iter().enumerate() {
        site.standin.create(node(&format!("n{i}"), instance, "general")).unwrap();
    }
    let engine = format!(
        "  tick-interval: 1s\n  guardrails:\n    min-node-age: 0s\n    \
         disruption-budget: {{percent: 100, min: 2, windows: [{windows}]}}\n    \
         cooldown: {{scale-down-after-scale-up: 0s, after-scale-down: 0s}}\n"
    );
    (site, engine)
}

const UNNEEDED_AFTER_4S: &str = "  - {plugin: binpack, settings: {unneeded-seconds: 4}}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_left_empty_are_drained_and_terminated_after_the_unneeded_time() {
    let (site, engine) = two_empty_nodes("").await;
    // An agent of a DaemonSet on n0 needs no room elsewhere, so n0 goes too; it had no pod
    // to move, so the agent is not asked to leave (Cluster Autoscaler's
    // `--daemonset-eviction-for-empty-nodes`, off).
    site.standin.create(daemon_set("agent")).unwrap();
    site.standin.create(running_pod("agent-n0", "n0", Some(("DaemonSet", "agent")), json!({"app": "agent"}))).unwrap();
    let mut daemon = site.replica("ops", &engine, UNNEEDED_AFTER_4S, "");
    let admin = announced(&mut daemon, "metrics and health");
    let emptied = eventually(Duration::from_secs(60), async || site.group().await == (0, Vec::new())).await;
    if emptied.is_none() {
        fail(daemon, &format!("the empty nodes were not removed: {:?}", site.group().await));
    }
    for i in 0..2 {
        let node = site.standin.get("v1", "Node", "", &format!("n{i}")).unwrap();
        assert_eq!(node["spec"]["unschedulable"], true, "cordoned before termination: {node}");
    }
    assert!(site.standin.get("v1", "Pod", "default", "agent-n0").is_some(), "an empty node's agent is not evicted");
    // Each removal's record is written after the call that terminated its instance returns.
    let path = site.journal();
    let completed =
        |journal: &[Value]| journal.iter().filter(|r| r["record"] == "removal" && r["outcome"] == "completed").count();
    if eventually(Duration::from_secs(10), async || completed(&records(&path)) >= 2).await.is_none() {
        fail(daemon, &format!("the removals were not recorded as completed:\n{:#?}", records(&path)));
    }
    let journal = records(&path);
    let first_tick = journal.iter().find(|r| r["record"] == "tick").unwrap()["at-millis"].as_u64().unwrap();
    let removal = journal
        .iter()
        .find(|r| r["record"] == "decision" && r["proposed"]["remove-nodes"].is_object())
        .expect("a removal decision");
    let waited = removal["at-millis"].as_u64().unwrap() - first_tick;
    assert!(waited >= 4_000, "proposed after {waited} ms, before the 4 s unneeded time");
    assert_eq!(completed(&journal), 2, "{journal:#?}");
    let removed = "ballast_nodes_removed_total{node_group=\"general\",reason=\"empty\"}";
    let counted =
        eventually(Duration::from_secs(10), async || sample(&get(&admin, "/metrics", None).2, removed) == Some(2.0));
    assert!(counted.await.is_some(), "{}", get(&admin, "/metrics", None).2);
    stop(daemon);
}

/// A CapacityBuffer's promise about removal, in the running daemon, on the same two empty
/// nodes: while a buffer wants room for two pods of one CPU (one a node), `consolidation`
/// removes neither, since `headroom` holds the group; once the buffer is deleted, both go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_buffers_room_is_not_consolidated_away_and_goes_with_the_buffer() {
    let (site, engine) = two_empty_nodes("").await;
    spare_room(&site, "spare", 2);
    let policies = "  - {plugin: headroom}\n  - {plugin: consolidation}\n";
    let mut daemon = site.replica("buffered", &engine, policies, "");
    announced(&mut daemon, "metrics and health");
    let journal = site.journal();
    let ticks = || records(&journal).iter().filter(|r| r["record"] == "tick").count();
    if eventually(Duration::from_secs(30), async || ticks() >= 6).await.is_none() {
        fail(daemon, "six ticks were never recorded");
    }
    assert_eq!(site.group().await.0, 2, "the buffer's room stays");
    for i in 0..2 {
        let node = site.standin.get("v1", "Node", "", &format!("n{i}")).unwrap();
        assert!(node["spec"]["unschedulable"].is_null(), "never cordoned: {node}");
    }
    site.standin.delete("autoscaling.x-k8s.io/v1beta1", "CapacityBuffer", "default", "spare").unwrap();
    let emptied = eventually(Duration::from_secs(60), async || site.group().await == (0, Vec::new())).await;
    if emptied.is_none() {
        fail(daemon, &format!("the empty nodes were not removed once the buffer went: {:?}", site.group().await));
    }
    stop(daemon);
}

/// Pod priority's two promises about removal, in the running daemon, on the same two empty
/// nodes: a pod the scheduler nominated to n0 after preempting there keeps n0 (never
/// cordoned), while n1, running only an expendable pod (priority -20) under a budget that
/// allows it no disruption, is drained and its instance terminated without waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nominated_pod_keeps_its_node_and_an_expendable_pod_keeps_none_in_the_running_daemon() {
    let (site, engine) = two_empty_nodes("").await;
    let instances = site.group().await.1;
    let mut urgent = pending_with("urgent-0", json!({"priority": 1000}));
    urgent["status"]["nominatedNodeName"] = json!("n0");
    site.standin.create(urgent).unwrap();
    let mut filler = running_pod("filler-0", "n1", Some(("ReplicaSet", "filler-rs")), json!({"app": "filler"}));
    filler["spec"]["priority"] = json!(-20);
    site.standin.create(filler).unwrap();
    site.standin.create(budget("filler", 1)).unwrap();
    let daemon = site.replica("ops", &engine, UNNEEDED_AFTER_4S, "");
    if eventually(Duration::from_secs(60), async || site.group().await.1 == instances[..1]).await.is_none() {
        fail(daemon, &format!("n1 alone was not removed: {:?}", site.group().await));
    }
    let path = site.journal();
    let ticks = |journal: &[Value]| journal.iter().filter(|r| r["record"] == "tick").count();
    let later = ticks(&records(&path)) + 8;
    if eventually(Duration::from_secs(30), async || ticks(&records(&path)) >= later).await.is_none() {
        fail(daemon, "eight more ticks were never recorded");
    }
    assert_eq!(site.group().await.1, instances[..1], "n0 is still there");
    let n0 = site.standin.get("v1", "Node", "", "n0").expect("n0");
    assert_ne!(n0["spec"]["unschedulable"], true, "n0 never cordoned: {n0}");
    stop(daemon);
}

/// The same two empty nodes under a disruption window that is always open and lets no node
/// leave (a change freeze): twelve ticks on, three times the unneeded time, both nodes are
/// still there, neither cordoned, any removal a policy proposed was refused for the window,
/// and `/metrics` shows the window open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_disruption_window_that_lets_no_node_leave_keeps_empty_nodes() {
    let (site, engine) = two_empty_nodes("{schedule: '* * * * *', duration: 2m, nodes: 0}").await;
    let mut daemon = site.replica("ops", &engine, UNNEEDED_AFTER_4S, "");
    let admin = announced(&mut daemon, "metrics and health");
    let path = site.journal();
    let ticks = |journal: &[Value]| journal.iter().filter(|r| r["record"] == "tick").count();
    if eventually(Duration::from_secs(60), async || ticks(&records(&path)) >= 12).await.is_none() {
        fail(daemon, "twelve ticks were never recorded");
    }
    let (desired, instances) = site.group().await;
    assert_eq!((desired, instances.len()), (2, 2), "the window kept both nodes");
    for i in 0..2 {
        let node = site.standin.get("v1", "Node", "", &format!("n{i}")).unwrap();
        assert_ne!(node["spec"]["unschedulable"], true, "never cordoned: {node}");
    }
    let journal = records(&path);
    assert!(!journal.iter().any(|r| r["record"] == "removal"), "no removal began: {journal:#?}");
    for decision in journal.iter().filter(|r| r["record"] == "decision") {
        assert_eq!(decision["result"], "not-applied", "{decision:#}");
        assert!(decision.to_string().contains("disruption-window"), "refused for the window: {decision:#}");
    }
    let metrics = get(&admin, "/metrics", None).2;
    let open =
        sample(&metrics, "ballast_disruption_window_open{schedule=\"* * * * *\",duration=\"2m\",reasons=\"all\"}");
    assert_eq!(open, Some(1.0), "{metrics}");
    promtool_check(&metrics);
    stop(daemon);
}

/// A change freeze lifted while the daemon runs: the same two empty nodes, kept by a window
/// that lets none leave, go within seconds once the configuration file is written again
/// without it (as a ConfigMap update is), with no restart; the reload is a control record
/// naming the field that changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifting_a_change_freeze_in_the_configuration_file_lets_empty_nodes_go_without_a_restart() {
    let window = "{schedule: '* * * * *', duration: 2m, nodes: 0}";
    let (site, engine) = two_empty_nodes(window).await;
    let reload = "reload-interval: 1s\n";
    let daemon = site.replica("ops", &engine, UNNEEDED_AFTER_4S, reload);
    let path = site.journal();
    let ticks = |journal: &[Value]| journal.iter().filter(|r| r["record"] == "tick").count();
    if eventually(Duration::from_secs(60), async || ticks(&records(&path)) >= 8).await.is_none() {
        fail(daemon, "eight ticks were never recorded");
    }
    assert_eq!(site.group().await.0, 2, "the freeze keeps both past the unneeded time");

    let lifted = engine.replace(&format!("windows: [{window}]"), "windows: []");
    site.write_config(&lifted, UNNEEDED_AFTER_4S, "", reload);
    let emptied = eventually(Duration::from_secs(60), async || site.group().await == (0, Vec::new())).await;
    if emptied.is_none() {
        fail(daemon, &format!("the nodes stayed after the freeze was lifted: {:?}", site.group().await));
    }
    let journal = records(&path);
    let reloaded = journal.iter().find(|r| r["record"] == "control" && r["caller"] == "config-reload");
    let reloaded = reloaded.unwrap_or_else(|| panic!("no reload recorded: {journal:#?}"));
    assert_eq!(reloaded["change"], "guardrails: disruption-budget.windows changed", "{reloaded}");
    stop(daemon);
}

/// The same two nodes, both under-used: n0 runs one pod annotated
/// `karpenter.sh/do-not-disrupt: "true"` (of a ReplicaSet: nothing else would keep it), n1
/// two plain ones. The lighter n0 would go; n1 goes instead, n0 is never cordoned and its
/// pod never evicted (without the annotation, n0 is drained and the test fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_annotated_do_not_disrupt_keeps_its_node_in_the_running_daemon() {
    let mut pod = running_pod("web-0", "n0", Some(("ReplicaSet", "web-rs")), json!({"app": "web"}));
    pod["metadata"]["annotations"] = json!({"karpenter.sh/do-not-disrupt": "true"});
    keeps_its_node(pod).await;
}

/// The same with a pod of a custom controller (a KubeVirt VirtualMachineInstance, Cluster
/// Autoscaler's `--skip-nodes-with-custom-controller-pods`, on by default): evicted, it may
/// not come back, so n0 stays and n1 goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_of_a_custom_controller_keeps_its_node_in_the_running_daemon() {
    let mut pod = running_pod("web-0", "n0", None, json!({"app": "vm"}));
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "name": "vm-0", "uid": "uid-vm-0", "controller": true}]);
    keeps_its_node(pod).await;
}

/// On two empty nodes, n0 runs `pod` (named web-0) and n1 two plain pods of a ReplicaSet: n1
/// goes, n0 is never cordoned and web-0 never evicted.
async fn keeps_its_node(pod: Value) {
    let (site, engine) = two_empty_nodes("").await;
    site.standin.create(deployment("web")).unwrap();
    site.standin.create(replica_set("web-rs", "web")).unwrap();
    site.standin.create(pod).unwrap();
    for i in 1..3 {
        let other = running_pod(&format!("web-{i}"), "n1", Some(("ReplicaSet", "web-rs")), json!({"app": "web"}));
        site.standin.create(other).unwrap();
    }
    let daemon = site.replica("ops", &engine, UNNEEDED_AFTER_4S, "");
    if eventually(Duration::from_secs(60), async || site.group().await.1.len() == 1).await.is_none() {
        fail(daemon, &format!("neither under-used node was removed: {:?}", site.group().await));
    }
    let path = site.journal();
    let ticks = |journal: &[Value]| journal.iter().filter(|r| r["record"] == "tick").count();
    let later = ticks(&records(&path)) + 8;
    if eventually(Duration::from_secs(30), async || ticks(&records(&path)) >= later).await.is_none() {
        fail(daemon, "eight more ticks were never recorded");
    }
    let n0 = site.standin.get("v1", "Node", "", "n0").expect("n0 is still there");
    assert_ne!(n0["spec"]["unschedulable"], true, "n0 never cordoned: {n0}");
    assert!(site.standin.get("v1", "Pod", "default", "web-0").is_some(), "web-0 never evicted");
    stop(daemon);
}

/// Runs binpack (unneeded after 4 s) on [`two_empty_nodes`] for ten ticks, and asserts that
/// neither n0 nor n1 was cordoned or terminated.
async fn both_nodes_stay(site: &Site, engine: &str) {
    let daemon = site.replica("ops", engine, UNNEEDED_AFTER_4S, "");
    let path = site.journal();
    let ticks = |journal: &[Value]| journal.iter().filter(|r| r["record"] == "tick").count();
    if eventually(Duration::from_secs(30), async || ticks(&records(&path)) >= 10).await.is_none() {
        fail(daemon, "ten ticks were never recorded");
    }
    assert_eq!(site.group().await.1.len(), 2, "{:#?}", records(&path));
    for i in 0..2 {
        let node = site.standin.get("v1", "Node", "", &format!("n{i}")).unwrap();
        assert_ne!(node["spec"]["unschedulable"], true, "n{i} never cordoned: {node}");
    }
    stop(daemon);
}

/// Two under-used nodes, each running one pod of a Deployment kept one to a node by
/// anti-affinity: by room either pod fits beside the other, but the scheduler would not put
/// it there, so in the real process neither node is cordoned, drained or terminated (with the
/// limit withheld from the policies, one goes within the unneeded time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_pod_is_kept_apart_from_the_others_is_not_removed() {
    let (site, engine) = two_empty_nodes("").await;
    site.standin.create(kept_one_to_a_node("web")).unwrap();
    site.standin.create(replica_set("web-rs", "web")).unwrap();
    for i in 0..2 {
        let pod =
            running_pod(&format!("web-{i}"), &format!("n{i}"), Some(("ReplicaSet", "web-rs")), json!({"app": "web"}));
        site.standin.create(pod).unwrap();
    }
    both_nodes_stay(&site, &engine).await;
}

/// Two under-used nodes, a web pod on one and an indexer pod on the other, the indexer's
/// template keeping its pods off the web tier's nodes (a required pod anti-affinity on the
/// hostname against `app: web`): by room either pod fits beside the other, but the scheduler
/// would not put it there, so in the real process neither node is cordoned, drained or
/// terminated (with the rule withheld from the policies, one goes within the unneeded time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_pod_is_kept_off_anothers_nodes_is_not_removed() {
    let (site, engine) = two_empty_nodes("").await;
    let mut indexer = deployment("indexer");
    indexer["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}});
    site.standin.create(indexer).unwrap();
    site.standin.create(deployment("web")).unwrap();
    for (i, app) in ["web", "indexer"].into_iter().enumerate() {
        let owner = format!("{app}-rs");
        site.standin.create(replica_set(&owner, app)).unwrap();
        let pod = running_pod(&format!("{app}-0"), &format!("n{i}"), Some(("ReplicaSet", &owner)), json!({"app": app}));
        site.standin.create(pod).unwrap();
    }
    both_nodes_stay(&site, &engine).await;
}

/// A Deployment `name` whose template keeps its pods in the domain of `key` (the hostname, a
/// zone) of `app: <app>`'s pods (a required pod affinity).
fn kept_near(name: &str, key: &str, app: &str) -> Value {
    let mut deployment = deployment(name);
    deployment["spec"]["template"]["spec"]["affinity"] = json!({"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": key, "labelSelector": {"matchLabels": {"app": app}}}]}});
    deployment
}

/// A Deployment `cache` whose template keeps its pods on the nodes of `app: web`'s pods (a
/// required pod affinity on the hostname), with its ReplicaSet `cache-rs`.
fn cache_kept_beside_web(site: &Site) {
    site.standin.create(kept_near("cache", "kubernetes.io/hostname", "web")).unwrap();
    site.standin.create(replica_set("cache-rs", "cache")).unwrap();
}

/// A cache pod waits for room beside the web tier's pods, in the real process: its template
/// keeps it on their nodes, and n0, the one node running them, is full for it. A new node
/// would run no web pod, so `general` keeps its one node, and a `NotTriggerScaleUp` event
/// and `/metrics` say why (told nothing of the rule, binpack bought a node that would have
/// stood empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_kept_on_anothers_nodes_is_bought_no_node() {
    let site = Site::start(1).await;
    let instance = site.group().await.1[0].clone();
    site.standin.create(node("n0", &instance, "general")).unwrap();
    site.standin.create(deployment("web")).unwrap();
    site.standin.create(replica_set("web-rs", "web")).unwrap();
    let mut web = running_pod("web-0", "n0", Some(("ReplicaSet", "web-rs")), json!({"app": "web"}));
    web["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("1800m");
    site.standin.create(web).unwrap();
    cache_kept_beside_web(&site);
    let mut waiting = pending_pod("cache-0", Some(("ReplicaSet", "cache-rs")));
    waiting["metadata"]["labels"] = json!({"app": "cache"});
    site.standin.create(waiting).unwrap();
    let mut daemon = site.replica("beside", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", "");
    let admin = announced(&mut daemon, "metrics and health");
    let daemon = three_more_ticks(&site, three_more_ticks(&site, daemon).await).await;
    assert_eq!(site.group().await.0, 1, "no node for a pod no new node can run: {:#?}", records(&site.journal()));
    let why = "kept on a node running pods of deployment/default/web (a required pod affinity on \
               kubernetes.io/hostname): every node running them is full for it, and a new node would run none of them";
    let events = site.standin.list("events.k8s.io/v1", "Event", None);
    let told = events.iter().filter(|e| e["regarding"]["name"] == "cache-0" && e["reason"] == "NotTriggerScaleUp");
    let notes: Vec<&str> = told.filter_map(|e| e["note"].as_str()).collect();
    assert!(notes.len() == 1 && notes[0].contains(why), "told once, why: {notes:?}");
    let metrics = get(&admin, "/metrics", None).2;
    assert_eq!(sample(&metrics, "ballast_passed_over_pods{reason=\"pod-affinity\"}"), Some(1.0), "{metrics}");
    stop(daemon);
}

/// Two under-used nodes: n0 held by a pod annotated safe-to-evict=false, n1 running only a
/// cache pod whose template keeps it on the nodes of the web tier's pods, which run nowhere
/// now. By room the cache pod fits on n0, but there it would wait for a web pod, so in the
/// real process n1 is never cordoned, drained or terminated (with the hold withheld, binpack
/// removes it within the unneeded time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_running_a_pod_kept_on_anothers_nodes_is_not_removed() {
    let (site, engine) = two_empty_nodes("").await;
    site.standin.create(deployment("web")).unwrap();
    cache_kept_beside_web(&site);
    site.standin
        .create(running_pod("cache-0", "n1", Some(("ReplicaSet", "cache-rs")), json!({"app": "cache"})))
        .unwrap();
    site.standin.create(deployment("pinned")).unwrap();
    site.standin.create(replica_set("pinned-rs", "pinned")).unwrap();
    let mut pinned = running_pod("pinned-0", "n0", Some(("ReplicaSet", "pinned-rs")), json!({"app": "pinned"}));
    pinned["metadata"]["annotations"] = json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"});
    site.standin.create(pinned).unwrap();
    both_nodes_stay(&site, &engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fargate_ineligible_workload_is_never_steered_to_fargate() {
    let site = Site::start(1).await;
    let instance = site.group().await.1[0].clone();
    site.standin.create(node("n1", &instance, "general")).unwrap();
    let mut agent = deployment("agent");
    agent["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    site.standin.create(agent).unwrap();
    site.standin.create(replica_set("agent-7c9", "agent")).unwrap();
    let mut pod = running_pod("agent-1", "n1", Some(("ReplicaSet", "agent-7c9")), json!({"app": "agent"}));
    pod["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    site.standin.create(pod).unwrap();
    // Pinned to its group by its owner's nodeSelector: that pin is kept, so no Fargate.
    let mut payments = deployment("payments");
    payments["spec"]["template"]["spec"]["nodeSelector"] = json!({"eks.amazonaws.com/nodegroup": "general"});
    site.standin.create(payments).unwrap();
    // More disk than Fargate gives a pod (175 GiB): its pods would never start there.
    let mut cache = deployment("cache");
    cache["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = json!("200Gi");
    site.standin.create(cache).unwrap();

    let scripted = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("scripted_policy.wasm");
    let to_fargate = json!([
        {"action": {"place": {"workload": {"kind": "deployment", "namespace": "default", "name": "agent"},
            "target": "fargate"}}, "reason": "cheaper on Fargate"},
        {"action": {"place": {"workload": {"kind": "deployment", "namespace": "default", "name": "payments"},
            "target": "fargate"}}, "reason": "cheaper on Fargate"},
        {"action": {"place": {"workload": {"kind": "deployment", "namespace": "default", "name": "cache"},
            "target": "fargate"}}, "reason": "cheaper on Fargate"},
    ]);
    let policies = format!("  - {{plugin: \"{}\", settings: {{decisions: {to_fargate}}}}}\n", scripted.display());
    let daemon = site.replica("ops", "  tick-interval: 1s\n", &policies, "fargate: true\n");
    let journal = site.journal();
    let refused = |name: &'static str| {
        move |r: &Value| {
            r["record"] == "decision"
                && r["plugin"] == "scripted_policy"
                && r["guard"]["outcome"] == "refused"
                && r["proposed"]["place"]["workload"]["name"] == name
        }
    };
    let both = eventually(Duration::from_secs(40), async || {
        let journal = records(&journal);
        ["agent", "payments", "cache"].into_iter().all(|name| journal.iter().any(refused(name)))
    });
    if both.await.is_none() {
        fail(daemon, &format!("no refused placements:\n{:#?}", records(&journal)));
    }
    let decision = records(&journal).into_iter().find(refused("agent")).unwrap();
    let why = decision["guard"]["why"].to_string();
    assert!(why.contains("privileged"), "the refusal names the blocker: {why}");
    assert_eq!(decision["result"]["result"], "not-applied");
    let template = &site.standin.get("apps/v1", "Deployment", "default", "agent").unwrap()["spec"]["template"];
    assert!(template["spec"]["nodeSelector"].is_null(), "the pod template was not steered: {template}");
    let pinned = records(&journal).into_iter().find(refused("payments")).unwrap();
    let why = pinned["guard"]["why"].to_string();
    assert!(why.contains("pinned to node group `general` by its own nodeSelector"), "{why}");
    let template = &site.standin.get("apps/v1", "Deployment", "default", "payments").unwrap()["spec"]["template"];
    assert_eq!(template["spec"]["nodeSelector"], json!({"eks.amazonaws.com/nodegroup": "general"}), "the pin is kept");
    let too_large = records(&journal).into_iter().find(refused("cache")).unwrap();
    let why = too_large["guard"]["why"].to_string();
    assert!(why.contains("asks 200Gi of ephemeral storage a pod, more than Fargate's 175Gi"), "{why}");
    let template = &site.standin.get("apps/v1", "Deployment", "default", "cache").unwrap()["spec"]["template"];
    assert!(template["spec"]["nodeSelector"].is_null(), "the pod template was not steered: {template}");
    stop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_records_everything() {
    let site = Site::start(0).await;
    spare_room(&site, "web-headroom", 2);
    let mut daemon = site.replica("ops", "  tick-interval: 1s\n  mode: dry-run\n", "  - {plugin: binpack}\n", "");
    let admin = announced(&mut daemon, "metrics and health");
    for i in 0..3 {
        site.standin.create(pending_pod(&format!("web-{i}"), None)).unwrap();
    }
    let journal = site.journal();
    let dry = |r: &Value| r["record"] == "decision" && r["result"]["result"] == "dry-run";
    let recorded = eventually(Duration::from_secs(40), async || records(&journal).iter().any(dry));
    if recorded.await.is_none() {
        fail(daemon, &format!("no dry-run decisions:\n{:#?}", records(&journal)));
    }
    let decision = records(&journal).into_iter().find(dry).unwrap();
    assert!(decision["proposed"]["scale-to"]["size"].as_u64().unwrap() > 0, "{decision}");
    assert!(!decision["reason"].as_str().unwrap().is_empty(), "the plugin's reason is recorded");
    let saw_all = |r: &Value| r["record"] == "tick" && r["saw"]["pending-pods"] == 3;
    let seen = eventually(Duration::from_secs(20), async || records(&journal).iter().any(saw_all)).await;
    assert!(seen.is_some(), "the tick records what it saw");
    assert_eq!(site.group().await.0, 0, "the group was not changed");
    let metrics = get(&admin, "/metrics", None).2;
    assert_eq!(sample(&metrics, "ballast_mode{mode=\"dry-run\"}"), Some(1.0));
    let counted =
        "ballast_decisions_total{plugin=\"binpack\",action=\"scale-to\",guard=\"accepted\",result=\"dry-run\"}";
    assert!(sample(&metrics, counted).is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(!metrics.contains("operation=\"SetDesiredCapacity\""), "no SetDesiredCapacity call: {metrics}");
    let status = buffer_status(&site, "web-headroom");
    assert!(status.is_null(), "a dry run writes no buffer status (another autoscaler may): {status}");
    // The same dry-run decision tick after tick is one record while it lasts; stopping ends
    // the run, and its closing record says how many ticks it was made on.
    let first = decision["tick"].as_u64().unwrap();
    let later = |r: &Value| r["record"] == "tick" && r["tick"].as_u64().is_some_and(|t| t >= first + 2);
    if eventually(Duration::from_secs(20), async || records(&journal).iter().any(later)).await.is_none() {
        fail(daemon, "no ticks after the first dry-run decision");
    }
    stop(daemon);
    let closing = records(&journal).into_iter().find(|r| dry(r) && r["repeated"]["count"].as_u64().is_some());
    let closing = closing.unwrap_or_else(|| panic!("no closing record:\n{:#?}", records(&journal)));
    assert!(closing["repeated"]["count"].as_u64().unwrap() >= 2, "{closing}");
}

/// A spot interruption warning on the queue EventBridge feeds, read by `ballast run` itself:
/// the warned node is cordoned at once, its replacement asked for in the same tick, and the
/// drained instance (empty, so nothing waits for the replacement) terminated with a decrement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_warning_on_the_queue_drains_the_node_and_starts_its_replacement_at_once() {
    let site = Site::start(2).await;
    let instances = site.group().await.1;
    for (i, instance) in instances.iter().enumerate() {
        site.standin.create(node(&format!("n{i}"), instance, "general")).unwrap();
    }
    let sqs = aws_sdk_sqs::Client::new(&site.aws);
    let queue = sqs.create_queue().queue_name("ballast-interruptions").send().await.unwrap();
    let queue = queue.queue_url().unwrap().to_string();
    let aws = ", interruption-queue: ballast-interruptions";
    let daemon = site.replica_with_aws("ops", "  tick-interval: 1s\n", "  - {plugin: binpack}\n", aws, "");
    let journal = site.journal();
    let ticked = eventually(Duration::from_secs(40), async || records(&journal).iter().any(|r| r["record"] == "tick"));
    if ticked.await.is_none() {
        fail(daemon, "no tick");
    }
    let warning = json!({"version": "0", "id": "1", "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2", "account": "123456789012", "time": "2026-01-05T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {"instance-id": instances[0], "instance-action": "terminate"}});
    sqs.send_message().queue_url(&queue).message_body(warning.to_string()).send().await.unwrap();

    let warned = |r: &Value| {
        r["record"] == "decision"
            && r["plugin"] == "ballast"
            && r["reason"].as_str().is_some_and(|s| s.contains("spot"))
    };
    if eventually(Duration::from_secs(30), async || records(&journal).iter().any(warned)).await.is_none() {
        fail(daemon, &format!("the warning was not acted on:\n{:#?}", records(&journal)));
    }
    let decision = records(&journal).into_iter().find(warned).unwrap();
    assert_eq!(decision["proposed"]["remove-nodes"]["nodes"][0], "n0", "{decision}");
    assert_eq!(decision["result"]["result"], "started", "{decision}");
    assert!(decision["reason"].as_str().unwrap().contains("general 2 -> 3"), "replacement asked for: {decision}");
    // n0 is empty: drained, and its instance terminated with a decrement, so the group keeps
    // its size with the replacement in place of the warned instance.
    let replaced = eventually(Duration::from_secs(30), async || {
        let (desired, ids) = site.group().await;
        desired == 2 && !ids.contains(&instances[0])
    });
    if replaced.await.is_none() {
        let group = site.group().await;
        fail(daemon, &format!("the warned instance is still there: {group:?}"));
    }
    stop(daemon);
}

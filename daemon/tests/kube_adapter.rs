//! The Kubernetes adapter against the API stand-in: what it sees, how fast, and what it does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast::engine::ports::SystemClock;
use ballast::engine::ports::{Cluster, Eviction};
use ballast::engine::record::{Recorder, Trigger};
use ballast::engine::{Clock, Engine, EngineConfig};
use ballast::kubernetes::{KubeSettings, MetricsStatus};
use ballast::policy::PolicyChain;
use ballast_sdk::{Placement, PlacementTarget, WorkloadKind, WorkloadRef};
use kube_standin::{Config, StandIn};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pods_reach_the_snapshot_with_their_deployment_as_owner() {
    let standin = StandIn::start().await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    standin.create(deployment("web")).unwrap();
    standin.create(replica_set("web-5d8f", "web")).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    let mut arrivals = cluster.arrivals();
    arrivals.borrow_and_update();

    standin.create(pending_pod("web-5d8f-x1", Some(("ReplicaSet", "web-5d8f")))).unwrap();
    // How fast is a figure of `cargo bench --bench latency` ("watch"), not asserted here.
    eventually(Duration::from_secs(10), async || {
        let view = cluster.observe().await.unwrap();
        view.pending.iter().any(|p| &*p.name == "web-5d8f-x1")
    })
    .await
    .expect("the pending pod appears");
    assert!(arrivals.has_changed().unwrap(), "a pending pod opens a tick batch");

    let view = cluster.observe().await.unwrap();
    let pod = view.pending.iter().find(|p| &*p.name == "web-5d8f-x1").unwrap();
    let owner = pod.shape.owner.as_deref().unwrap();
    assert_eq!((owner.kind, owner.name.as_str()), (WorkloadKind::Deployment, "web"));
    assert_eq!(pod.shape.requests.cpu_millis, 250);
    let node = &view.nodes[0];
    assert_eq!((node.instance_id.as_deref(), node.group_label.as_deref()), (Some("i-1"), Some("general")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_usage_comes_from_metrics_when_served_and_its_absence_is_reported() {
    let standin = StandIn::start_with(Config { metrics: false, ..Config::default() }).await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    let settings = KubeSettings { metrics_interval: Duration::from_millis(50), ..KubeSettings::default() };
    let cluster = started(&standin, settings).await;

    eventually(Duration::from_secs(2), async || matches!(cluster.status().metrics, MetricsStatus::Absent(_)))
        .await
        .expect("absence reported");
    let MetricsStatus::Absent(why) = cluster.status().metrics else { unreachable!() };
    assert!(why.contains("metrics.k8s.io is not served"), "{why}");
    assert_eq!(cluster.observe().await.unwrap().nodes[0].usage, None, "still observes, without usage");

    standin.set_metrics(true);
    standin
        .create(json!({"apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetrics",
            "metadata": {"name": "n1"}, "timestamp": LONG_AGO, "window": "30s",
            "usage": {"cpu": "1500123456n", "memory": "3145728Ki"}}))
        .unwrap();
    eventually(Duration::from_secs(2), async || {
        cluster.observe().await.unwrap().nodes[0]
            .usage
            .is_some_and(|u| u.cpu_millis == 1501 && u.memory_bytes == 3 << 30)
    })
    .await
    .expect("usage in nanocores, as metrics-server reports it, reads as 1501m (rounded up), not 0");
    assert_eq!(cluster.status().metrics, MetricsStatus::Available);
    assert_eq!(cluster.status().unreadable_values, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_quantity_is_counted_and_named_and_its_object_treated_as_unknown() {
    let standin = StandIn::start().await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    standin.create(node("n2", "i-2", "general")).unwrap();
    let mut garbage = node("n3", "i-3", "general");
    garbage["status"]["allocatable"]["memory"] = json!("lots");
    standin.create(garbage).unwrap();
    standin.create(running_pod("web-1", "n1", Some(("Deployment", "web")), json!({"app": "web"}))).unwrap();
    let mut odd = running_pod("odd", "n2", Some(("Deployment", "web")), json!({"app": "web"}));
    odd["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("12x");
    standin.create(odd).unwrap();
    for (name, cpu) in [("n1", "576285n"), ("n2", "a-lot")] {
        standin
            .create(json!({"apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetrics",
                "metadata": {"name": name}, "timestamp": LONG_AGO, "window": "30s",
                "usage": {"cpu": cpu, "memory": "1Gi"}}))
            .unwrap();
    }
    let settings = KubeSettings { metrics_interval: Duration::from_millis(50), ..KubeSettings::default() };
    let cluster = started(&standin, settings).await;
    eventually(Duration::from_secs(2), async || {
        cluster.observe().await.unwrap().nodes.iter().any(|n| &*n.name == "n1" && n.usage.is_some())
    })
    .await
    .expect("usage read");

    let view = cluster.observe().await.unwrap();
    let names: Vec<&str> = view.nodes.iter().map(|n| &*n.name).collect();
    assert_eq!(names, ["n1", "n2"], "n3's capacity is unknown: it is left out, not seen as an empty node");
    let n1 = &view.nodes[0];
    assert_eq!(n1.usage.map(|u| u.cpu_millis), Some(1), "576285 nanocores round up to 1m");
    assert_eq!(view.nodes[1].usage, None, "n2's CPU usage cannot be read: unknown, not 0");
    let odd = view.pods().find(|p| &**p.name == "odd").expect("the pod is still seen");
    assert_eq!(odd.node.map(|n| &**n), Some("n2"));
    let unreadable = odd.shape.unreadable.as_deref().expect("its requests are marked unreadable");
    assert!(
        unreadable.contains("spec.containers[c].resources.requests.cpu") && unreadable.contains("\"12x\""),
        "{unreadable}"
    );

    let status = cluster.status();
    assert!(status.unreadable_values >= 3, "{status:?}");
    let named = status.last_unreadable.expect("the last one named");
    assert!(named.contains("cannot be read"), "{named}");

    // The engine's view: the node with the unreadable pod is not removable, and says why.
    let general = ballast::engine::ports::GroupView {
        id: "general".into(),
        min_size: 0,
        max_size: 10,
        desired_size: 2,
        instance_types: Vec::new(),
        labels: Default::default(),
        taints: Vec::new(),
        zones: Vec::new(),
        instances: Vec::new(),
        last_launch_failure: None,
        options: Default::default(),
        image: None,
        launched_types: None,
        template: None,
        updates_itself: false,
    };
    let obs = ballast::engine::observe::observe(
        view,
        vec![general],
        &ballast::engine::observe::ObserveContext {
            now_millis: SystemClock.now_millis(),
            guardrails: &Default::default(),
            fargate: false,
            fargate_pricing: Default::default(),
            backoff: &|_| false,
            being_removed: &|_| false,
            removals_under_way: 0,
            cooldown: &|g| ballast_sdk::GroupCooldown { group: g.into(), ..Default::default() },
            placement_cooldowns: Vec::new(),
            metrics: Vec::new(),
        },
    );
    let n2 = obs.snapshot.nodes.iter().find(|n| n.name == "n2").unwrap();
    assert!(n2.removal_blocker.as_deref().is_some_and(|b| b.contains("12x")), "{:?}", n2.removal_blocker);
    // Policies read a node's pods by shape (contract 0.1.4) as the adapter counted them.
    let on_n1 = ballast_sdk::Snapshot::pods_on_node(&*obs.snapshot, "n1");
    assert_eq!(on_n1.len(), 1, "{on_n1:?}");
    assert_eq!((on_n1[0].count, on_n1[0].moves_on_drain), (1, true), "{on_n1:?}");
    assert_eq!(on_n1[0].owner.as_ref().map(|o| o.name.as_str()), Some("web"), "{on_n1:?}");
    assert!(ballast_sdk::Snapshot::pods_on_node(&*obs.snapshot, "n3").is_empty(), "n3 is not in the snapshot");
}

/// A Deployment's zone and hostname spreads, read from its template through the real watch:
/// each skew reaches the view as the one it is, the hostname spread with the nodes it counts
/// (`nodeTaintsPolicy: Honor`); a skew of 0 (which a real API server refuses)
/// is counted and named, and the workload is taken as not spread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_is_read_from_the_template_and_a_bad_skew_is_named() {
    let standin = StandIn::start().await.unwrap();
    let spread = |name: &str, key: &str, skew: i32| {
        let mut d = deployment(name);
        d["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{
            "topologyKey": key, "maxSkew": skew, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": name}}}]);
        d
    };
    let mut web = spread("web", "topology.kubernetes.io/zone", 2);
    web["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["minDomains"] = json!(3);
    standin.create(web).unwrap();
    let mut cache = spread("cache", "kubernetes.io/hostname", 3);
    cache["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["nodeTaintsPolicy"] = json!("Honor");
    cache["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["minDomains"] = json!(4);
    standin.create(cache).unwrap();
    standin.create(spread("api", "topology.kubernetes.io/zone", 0)).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    let skew = |view: &ballast::engine::ports::ClusterView, name: &str| {
        view.workloads.iter().find(|w| w.id.name == name).map(|w| (w.max_zone_skew, w.max_node_skew))
    };
    let view = cluster.observe().await.unwrap();
    assert_eq!(skew(&view, "web"), Some((Some(2), None)));
    assert_eq!(skew(&view, "cache"), Some((None, Some(3))));
    let cache = view.workloads.iter().find(|w| w.id.name == "cache").map(|w| w.node_inclusion);
    assert!(cache.is_some_and(|c| c.honors_taints && !c.ignores_affinity), "{cache:?}");
    let domains = |name: &str| {
        view.workloads.iter().find(|w| w.id.name == name).map(|w| (w.min_zone_domains, w.min_node_domains))
    };
    assert_eq!((domains("web"), domains("cache")), (Some((Some(3), None)), Some((None, Some(4)))), "minDomains");
    assert_eq!(skew(&view, "api"), Some((None, None)));
    let status = cluster.status();
    assert_eq!(status.unreadable_values, 1, "{status:?}");
    let named = status.last_unreadable.unwrap_or_default();
    assert!(
        named.contains("Deployment default/api: spec.template.spec.topologySpreadConstraints[0].maxSkew = \"0\""),
        "{named}"
    );
}

/// A Deployment kept off another's nodes by a required pod anti-affinity on the hostname,
/// read through the real watch: the view names the workload it is kept from, and no other (a
/// zone-wide rule against a third keeps no node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_kept_off_anothers_nodes_names_it() {
    let standin = StandIn::start().await.unwrap();
    let mut indexer = deployment("indexer");
    indexer["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}},
            {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": "batch"}}}]}});
    standin.create(indexer).unwrap();
    standin.create(deployment("web")).unwrap();
    standin.create(deployment("batch")).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    let view = cluster.observe().await.unwrap();
    let kept_away = |name: &str| {
        let w = view.workloads.iter().find(|w| w.id.name == name);
        w.map(|w| w.kept_away.iter().map(|o| o.name.clone()).collect::<Vec<_>>())
    };
    assert_eq!(kept_away("indexer"), Some(vec!["web".to_string()]));
    assert_eq!(kept_away("web"), Some(vec![]), "the engine pairs them both ways; the adapter reads each side's own");
    assert_eq!(kept_away("batch"), Some(vec![]));
}

/// A Deployment kept in the zones of another's pods by a required pod affinity on the zone,
/// read through the real watch: the view names the workload whose zones it keeps to, and
/// apart the one a hostname affinity keeps it on the nodes of; one kept one pod a zone by a
/// required anti-affinity on the zone against its own pods reads as at most 1 a zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_kept_in_anothers_zones_names_it() {
    let standin = StandIn::start().await.unwrap();
    let mut api = deployment("api");
    api["spec"]["template"]["spec"]["affinity"] = json!({"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": "db"}}},
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "cache"}}}]}});
    standin.create(api).unwrap();
    standin.create(deployment("db")).unwrap();
    standin.create(deployment("cache")).unwrap();
    let mut quorum = deployment("quorum");
    quorum["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": "quorum"}}}]}});
    standin.create(quorum).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    let view = cluster.observe().await.unwrap();
    let near = |name: &str| {
        let w = view.workloads.iter().find(|w| w.id.name == name);
        w.map(|w| w.zone_affinity.iter().map(|o| o.name.clone()).collect::<Vec<_>>())
    };
    assert_eq!(near("api"), Some(vec!["db".to_string()]));
    assert_eq!(near("db"), Some(vec![]));
    let beside = |name: &str| {
        let w = view.workloads.iter().find(|w| w.id.name == name);
        w.map(|w| w.kept_beside.iter().map(|o| o.name.clone()).collect::<Vec<_>>())
    };
    assert_eq!((beside("api"), beside("cache")), (Some(vec!["cache".to_string()]), Some(vec![])));
    let per_zone = |name: &str| view.workloads.iter().find(|w| w.id.name == name).map(|w| w.max_per_zone);
    assert_eq!((per_zone("api"), per_zone("quorum")), (Some(None), Some(Some(1))), "one quorum pod a zone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_drains_waits_at_the_budget_asks_daemonset_pods_last_and_records_events() {
    let standin = StandIn::start().await.unwrap();
    for (n, i) in [("n1", "i-1"), ("n2", "i-2")] {
        standin.create(node(n, i, "general")).unwrap();
    }
    standin.create(deployment("web")).unwrap();
    standin.create(replica_set("web-5d8f", "web")).unwrap();
    let rs = Some(("ReplicaSet", "web-5d8f"));
    standin.create(running_pod("web-1", "n1", rs, json!({"app": "web"}))).unwrap();
    standin.create(running_pod("web-2", "n1", rs, json!({"app": "web"}))).unwrap();
    standin.create(running_pod("web-3", "n2", rs, json!({"app": "web"}))).unwrap();
    standin.create(budget("web", 2)).unwrap();
    standin.create(daemon_set("agent")).unwrap();
    standin.create(running_pod("agent-n1", "n1", Some(("DaemonSet", "agent")), json!({"app": "agent"}))).unwrap();
    // A DaemonSet whose pods decline to be asked (Cluster Autoscaler's annotation).
    standin.create(daemon_set("logs")).unwrap();
    let mut logs = running_pod("logs-n1", "n1", Some(("DaemonSet", "logs")), json!({"app": "logs"}));
    logs["metadata"]["annotations"] = json!({"cluster-autoscaler.kubernetes.io/enable-ds-eviction": "false"});
    standin.create(logs).unwrap();

    let cluster = started(&standin, KubeSettings::default()).await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let capacity = RecordingCapacity::new("only", &["i-1", "i-2"], calls.clone());
    let plugin = host()
        .load(scripted(json!([{"action": {"remove-nodes": {"nodes": ["n1"]}}, "reason": "n1 is 26% used"}])))
        .unwrap();
    let mut engine = Engine::new(
        cluster.clone(),
        capacity,
        PolicyChain::new(vec![plugin]),
        EngineConfig::default(),
        Recorder::new(100, None),
    );
    let pods = || {
        standin
            .list("v1", "Pod", Some("default"))
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let allowed = async |n: u32| {
        eventually(Duration::from_secs(2), async || {
            cluster.observe().await.unwrap().disruption_budgets.iter().any(|b| b.disruptions_allowed == n)
        })
        .await
        .expect("the budget's status reaches the cache");
    };
    allowed(1).await;

    // Tick 1: cordon n1; the budget allows one eviction and refuses the second.
    engine.tick(SystemClock.now_millis(), Trigger::Manual).await;
    assert_eq!(standin.get("v1", "Node", "", "n1").unwrap()["spec"]["unschedulable"], json!(true));
    assert_eq!(pods(), ["agent-n1", "logs-n1", "web-2", "web-3"], "one web pod evicted, the DaemonSet pods left");
    assert_eq!(cluster.evict("default", "web-2").await.unwrap(), Eviction::Blocked {
        reason: "Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget web needs 2 healthy pods and has 2 currently)".into()
    });

    // Tick 2: still blocked; nothing is terminated while a pod remains.
    allowed(0).await;
    engine.tick(SystemClock.now_millis(), Trigger::Manual).await;
    assert_eq!(pods(), ["agent-n1", "logs-n1", "web-2", "web-3"]);
    assert!(calls.lock().unwrap().is_empty());

    // The Deployment's replacement runs elsewhere: the budget allows one more.
    standin.create(running_pod("web-4", "n2", rs, json!({"app": "web"}))).unwrap();
    allowed(1).await;
    engine.tick(SystemClock.now_millis(), Trigger::Manual).await;
    assert_eq!(pods(), ["agent-n1", "logs-n1", "web-3", "web-4"]);

    // Once the cache shows the node empty, its DaemonSet pods are asked to leave (those that
    // do not decline) and its instance goes with a decrement.
    eventually(Duration::from_secs(2), async || !cluster.observe().await.unwrap().pods().any(|p| &**p.name == "web-2"))
        .await
        .unwrap();
    engine.tick(SystemClock.now_millis(), Trigger::Manual).await;
    let calls: Vec<String> = calls.lock().unwrap().iter().map(|c| c.what.clone()).collect();
    assert_eq!(calls, ["terminate i-1 in general"]);
    assert_eq!(pods(), ["logs-n1", "web-3", "web-4"], "the agent asked to stop before its node went");

    let events = standin.list("events.k8s.io/v1", "Event", None);
    let about = |kind: &str, name: &str, reason: &str| {
        events
            .iter()
            .find(|e| e["regarding"]["kind"] == kind && e["regarding"]["name"] == name && e["reason"] == reason)
    };
    let started = about("Node", "n1", "ScaleDown").expect("an Event on the node");
    assert!(started["note"].as_str().unwrap().contains("for policy scripted: n1 is 26% used"), "{started}");
    assert_eq!(started["reportingController"], "ballast");
    assert!(about("Pod", "web-1", "Evicted").is_some() && about("Pod", "web-2", "Evicted").is_some());
    assert!(about("Node", "n1", "NodeRemoved").is_some());
    assert!(about("Pod", "agent-n1", "Evicted").is_none());
}

/// The claim a spot replacement carries outlives the node it replaced: it is on the
/// replacement itself, and reads back on the next observation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_claim_is_written_on_the_node_and_read_back() {
    let standin = StandIn::start().await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    cluster.claim_replacement("n1", "n0").await.unwrap();
    let written = standin.get("v1", "Node", "", "n1").unwrap();
    assert_eq!(written["metadata"]["annotations"]["ballast.dev/replaces"], "n0", "{written}");
    eventually(Duration::from_secs(2), async || {
        let view = cluster.observe().await.unwrap();
        view.nodes.iter().any(|n| &*n.name == "n1" && n.replaces.as_deref() == Some("n0"))
    })
    .await
    .expect("the cache reads the claim");
    let missing = cluster.claim_replacement("ghost", "n0").await.unwrap_err();
    assert!(missing.to_string().contains("claim ghost"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_patches_the_deployment_template_and_refuses_jobs() {
    let standin = StandIn::start().await.unwrap();
    standin.create(deployment("web")).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "default".into(), name: "web".into() };
    let template = || standin.get("apps/v1", "Deployment", "default", "web").unwrap()["spec"]["template"].clone();

    cluster.place(&web, &PlacementTarget::Fargate).await.unwrap();
    assert_eq!(template()["metadata"]["labels"], json!({"app": "web", "ballast.dev/compute": "fargate"}));
    assert!(template()["spec"].get("nodeSelector").is_none_or(|s| s.get("eks.amazonaws.com/nodegroup").is_none()));
    eventually(Duration::from_secs(2), async || {
        cluster.observe().await.unwrap().workloads.iter().any(|w| w.id == web && w.placement == Placement::Fargate)
    })
    .await
    .expect("the cache sees the new placement");

    cluster.place(&web, &PlacementTarget::Ec2(Some("general".into()))).await.unwrap();
    assert_eq!(template()["metadata"]["labels"]["ballast.dev/compute"], "ec2");
    assert_eq!(template()["spec"]["nodeSelector"], json!({"eks.amazonaws.com/nodegroup": "general"}));
    assert_eq!(template()["spec"]["containers"][0]["name"], "c", "the rest of the template is untouched");

    let job = WorkloadRef { kind: WorkloadKind::Job, namespace: "default".into(), name: "report".into() };
    let refused = cluster.place(&job, &PlacementTarget::Fargate).await.unwrap_err();
    assert!(refused.message.contains("cannot change after creation"), "{refused}");
}

/// A Job's replicas are the pods it runs now, as the simulator counts them: its parallelism
/// until the Job controller starts it, its active pods while it runs, none once it finished
/// (a finished Job keeps its object, and its parallelism, until it is cleaned up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_replicas_are_the_pods_it_runs_and_none_once_it_finished() {
    let standin = StandIn::start().await.unwrap();
    let pod = json!({"containers": [{"name": "c", "image": "etl", "resources": {"requests": {"cpu": "1"}}}],
                     "restartPolicy": "Never"});
    standin
        .create(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "etl-29412360", "namespace": "data"},
                       "spec": {"parallelism": 5, "template": {"spec": pod}}}),
        )
        .unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    let replicas = async || {
        let view = cluster.observe().await.unwrap();
        view.workloads.iter().find(|w| w.id.name == "etl-29412360").map(|w| w.replicas)
    };
    assert_eq!(replicas().await, Some(5), "not started yet: its parallelism");
    let patch = |status: serde_json::Value| {
        standin.patch("batch/v1", "Job", "data", "etl-29412360", &json!({"status": status})).unwrap();
    };
    patch(json!({"startTime": "2026-11-27T01:00:00Z", "active": 3}));
    eventually(Duration::from_secs(2), async || replicas().await == Some(3)).await.expect("three pods active");
    patch(json!({"active": null, "succeeded": 5, "completionTime": "2026-11-27T01:12:00Z",
                 "conditions": [{"type": "Complete", "status": "True"}]}));
    eventually(Duration::from_secs(2), async || replicas().await == Some(0)).await.expect("finished: no pods");
}

/// A StatefulSet's pod whose claim is bound to an EBS volume runs only in the volume's zone:
/// waiting, it selects that zone, so a scale-up for it goes to a group there. Whichever
/// arrives last (the pod, its claim's binding, the volume), the pod reads the zone, each pod
/// its own volume's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_pod_bound_to_a_zonal_volume_selects_the_volumes_zone() {
    let standin = StandIn::start().await.unwrap();
    let volume = |name: &str, zone: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": format!("vol-{name}")},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": [zone]}]}]}}}})
    };
    let claim = |name: &str, volume: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
                "volumeName": volume}})
    };
    let db_pod = |n: u32| {
        let mut pod = pending_pod(&format!("db-{n}"), Some(("StatefulSet", "db")));
        pod["spec"]["volumes"] =
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-db-{n}")}}]);
        pod
    };
    // db-1's volume and claim are there before it; db-0 comes before its claim and volume.
    standin.create(volume("pv-db-1", "us-east-1c")).unwrap();
    standin.create(claim("data-db-1", "pv-db-1")).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    standin.create(db_pod(0)).unwrap();
    standin.create(db_pod(1)).unwrap();
    let zone_of = async |pod: &str| {
        let view = cluster.observe().await.unwrap();
        let waiting = view.pending.iter().find(|p| &*p.name == pod)?;
        waiting.shape.template.node_selector.get("topology.kubernetes.io/zone").cloned()
    };
    eventually(Duration::from_secs(10), async || zone_of("db-1").await.is_some()).await.expect("db-1 waits");
    assert_eq!(zone_of("db-1").await.as_deref(), Some("us-east-1c"));
    assert_eq!(zone_of("db-0").await, None, "no claim yet: any zone will do");

    standin.create(claim("data-db-0", "pv-db-0")).unwrap();
    standin.create(volume("pv-db-0", "us-east-1b")).unwrap();
    eventually(Duration::from_secs(10), async || zone_of("db-0").await.as_deref() == Some("us-east-1b"))
        .await
        .expect("db-0 reads its volume's zone once both are seen");
    assert_eq!(zone_of("db-1").await.as_deref(), Some("us-east-1c"), "each pod its own volume's zone");
}

/// A nodeSelector its owner wrote on the group label pins the workload: it is no candidate
/// for Fargate, and the blocker names the group. One Ballast wrote for a placement carries
/// the `ballast.dev/placed-group` annotation and stays Ballast's to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_group_pin_is_kept_and_a_placement_is_told_from_it() {
    let standin = StandIn::start().await.unwrap();
    let mut pinned = deployment("payments");
    pinned["spec"]["template"]["spec"]["nodeSelector"] = json!({"eks.amazonaws.com/nodegroup": "on-demand"});
    standin.create(pinned).unwrap();
    standin.create(deployment("web")).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    let pin_of = async |name: &str| {
        let view = cluster.observe().await.unwrap();
        let w = view.workloads.into_iter().find(|w| w.id.name == name).expect("the workload is seen");
        (w.placement, w.fargate_traits.pinned_by_owner)
    };
    let pin = Some("on-demand".to_string());
    assert_eq!(pin_of("payments").await, (Placement::Ec2(pin.clone()), pin.clone()), "the owner's pin");
    assert_eq!(pin_of("web").await.1, None, "no selector, no pin");

    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "default".into(), name: "web".into() };
    let annotations =
        || standin.get("apps/v1", "Deployment", "default", "web").unwrap()["metadata"]["annotations"].clone();
    cluster.place(&web, &PlacementTarget::Ec2(Some("spot".into()))).await.unwrap();
    assert_eq!(annotations()["ballast.dev/placed-group"], "spot");
    let placed =
        eventually(Duration::from_secs(2), async || pin_of("web").await.0 == Placement::Ec2(Some("spot".into())));
    placed.await.expect("the cache sees the placement");
    assert_eq!(pin_of("web").await.1, None, "a selector Ballast wrote is not the owner's pin");

    cluster.place(&web, &PlacementTarget::Fargate).await.unwrap();
    assert!(annotations().get("ballast.dev/placed-group").is_none(), "{}", annotations());

    // The owner moves the pin by hand: the annotation no longer matches, so it is theirs.
    standin
        .patch(
            "apps/v1",
            "Deployment",
            "default",
            "web",
            &json!({"metadata": {"annotations": {"ballast.dev/placed-group": "spot"}},
            "spec": {"template": {"metadata": {"labels": {"ballast.dev/compute": null}},
                "spec": {"nodeSelector": {"eks.amazonaws.com/nodegroup": "on-demand"}}}}}),
        )
        .unwrap();
    let repinned = eventually(Duration::from_secs(2), async || pin_of("web").await.1 == pin);
    repinned.await.expect("a selector the owner changed is the owner's pin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_recover_from_dropped_connections_and_410_without_losing_an_update() {
    let standin = StandIn::start().await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    for i in 0..10 {
        standin.create(running_pod(&format!("p{i}"), "n1", None, json!({"app": "x"}))).unwrap();
    }
    let cluster = started(&standin, KubeSettings::default()).await;

    // Connections dropped: the watch resumes from the last version it saw.
    standin.drop_watches();
    for i in 10..20 {
        standin.create(running_pod(&format!("p{i}"), "n1", None, json!({"app": "x"}))).unwrap();
    }
    for i in 0..3 {
        standin.delete("v1", "Pod", "default", &format!("p{i}")).unwrap();
    }
    standin.patch("v1", "Pod", "default", "p5", &json!({"status": {"phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}, "spec": {"nodeName": null}})).unwrap();

    // The server refuses watches for a while and forgets its history meanwhile: the watch
    // comes back to 410 Gone and must relist, learning of deletions it never saw.
    standin.inject(Some("GET"), "/api/v1/pods", 503, 3);
    standin.drop_watches();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 3..6 {
        standin.delete("v1", "Pod", "default", &format!("p{i}")).unwrap();
    }
    standin.create(running_pod("p30", "n1", None, json!({"app": "x"}))).unwrap();
    standin.compact();

    let expected = || {
        let mut names: Vec<String> = standin
            .list("v1", "Pod", None)
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let converged = eventually(Duration::from_secs(15), async || {
        let mut seen: Vec<String> = cluster.observe().await.unwrap().pods().map(|p| p.name.to_string()).collect();
        seen.sort();
        seen == expected()
    })
    .await;
    assert!(
        converged.is_some(),
        "the cache matches the server: {:?} vs {:?}",
        cluster.observe().await.unwrap().pods().count(),
        expected().len()
    );
    assert!(cluster.status().watch_errors > 0, "the refused watches were seen as errors");
    assert_eq!(expected().len(), 15);
}

/// Pod priority as Cluster Autoscaler reads it. A pod below the cutoff (-10) and a pod the
/// scheduler nominated to a node after preempting there are not waiting for capacity, so no
/// policy sizes for them; the nominated pod keeps its node until it runs there (or goes). An
/// expendable pod on a node holds no room and keeps no node, even under a budget that allows
/// it no disruption: the drain asks it to leave and the instance goes without waiting for
/// it. A pause pod at -1 (the usual overprovisioning) still counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expendable_and_nominated_pods_cause_no_scale_up_and_keep_no_node() {
    let standin = StandIn::start().await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    let mut filler = running_pod("filler-1", "n1", Some(("ReplicaSet", "filler-5d8f")), json!({"app": "filler"}));
    filler["spec"]["priority"] = json!(-20);
    standin.create(filler).unwrap();
    standin.create(budget("filler", 1)).unwrap();
    let pending = |name: &str, priority: Option<i32>, nominated: Option<&str>| {
        let mut pod = pending_pod(name, None);
        pod["spec"]["priority"] = json!(priority);
        pod["status"]["nominatedNodeName"] = json!(nominated);
        pod
    };
    standin.create(pending("batch-1", Some(-20), None)).unwrap();
    standin.create(pending("web-1", Some(1000), Some("n1"))).unwrap();
    standin.create(pending("pause-1", Some(-1), None)).unwrap();
    standin.create(pending("web-2", None, None)).unwrap();

    let cluster = started(&standin, KubeSettings::default()).await;
    eventually(Duration::from_secs(10), async || cluster.observe().await.unwrap().pending.len() >= 2)
        .await
        .expect("the pending pods appear");
    eventually(Duration::from_secs(2), async || {
        cluster.observe().await.unwrap().disruption_budgets.iter().any(|b| b.disruptions_allowed == 0)
    })
    .await
    .expect("the budget's status reaches the cache");
    let view = cluster.observe().await.unwrap();
    let waiting: Vec<&str> = view.pending.iter().map(|p| &*p.name).collect();
    assert_eq!(waiting, ["pause-1", "web-2"]);
    let passed_over: Vec<(&str, &str)> = view.passed_over.iter().map(|p| (&*p.name, &*p.passed_over.why)).collect();
    assert_eq!(
        passed_over,
        [
            (
                "batch-1",
                "its priority -20 is below kubernetes.expendable-pods-priority-cutoff (-10): an expendable pod causes no scale-up"
            ),
            (
                "web-1",
                "the scheduler nominated node n1 for it, where it preempts lower-priority pods: it runs there once they leave"
            ),
        ]
    );
    let n1 = &view.nodes[0].pods;
    assert_eq!((n1.count, n1.requested.cpu_millis), (0, 0), "the filler's 250m counts as free room");

    let calls = Arc::new(Mutex::new(Vec::new()));
    let capacity = RecordingCapacity::new("only", &["i-1"], calls.clone());
    let plugin = host()
        .load(scripted(json!([{"action": {"remove-nodes": {"nodes": ["n1"]}}, "reason": "n1 holds only filler"}])))
        .unwrap();
    let config = EngineConfig::default();
    let mut engine =
        Engine::new(cluster.clone(), capacity, PolicyChain::new(vec![plugin]), config, Recorder::new(100, None));
    let cordoned = || standin.get("v1", "Node", "", "n1").unwrap()["spec"]["unschedulable"] == json!(true);
    engine.tick(SystemClock.now_millis(), Trigger::Manual).await;
    assert!(!cordoned(), "web-1, nominated to run on n1, keeps it");
    standin.delete("v1", "Pod", "default", "web-1").unwrap();
    eventually(Duration::from_secs(2), async || cluster.observe().await.unwrap().passed_over.len() == 1)
        .await
        .expect("web-1 leaves the cache");
    engine.tick(SystemClock.now_millis(), Trigger::Manual).await;
    assert!(cordoned(), "accepted once nothing is nominated to n1");
    assert!(standin.get("v1", "Pod", "default", "filler-1").is_some(), "its budget refused the eviction");
    engine.tick(SystemClock.now_millis(), Trigger::Manual).await;
    let calls: Vec<String> = calls.lock().unwrap().iter().map(|c| c.what.clone()).collect();
    assert_eq!(calls, ["terminate i-1 in general"], "the drain does not wait for an expendable pod");
}

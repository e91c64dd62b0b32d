//! What the Kubernetes adapter reads of demand to come, against the API stand-in: each
//! CronJob's next run, each HorizontalPodAutoscaler's bounds and each CapacityBuffer's room,
//! in the snapshot policies get; and what each buffer is told in its status.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::time::Duration;

use ballast::engine::Clock;
use ballast::engine::ports::{Cluster, SystemClock};
use ballast::kubernetes::KubeSettings;
use ballast_sdk::{WorkloadKind, WorkloadRef};
use kube_standin::StandIn;
use serde_json::json;
use support::*;

/// A CronJob in `data` whose runs start `parallelism` pods of 1500m / 3Gi on the batch group.
fn cron_job(name: &str, schedule: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": "data"},
        "spec": {"schedule": schedule, "jobTemplate": {"spec": {"parallelism": 40, "template": {"spec": {
            "restartPolicy": "Never",
            "tolerations": [{"key": "workload", "operator": "Exists"}],
            "containers": [{"name": "etl", "image": "etl",
                "resources": {"requests": {"cpu": "1500m", "memory": "3Gi"}}}]}}}}}});
    if let serde_json::Value::Object(fields) = extra {
        cron["spec"].as_object_mut().unwrap().extend(fields);
    }
    cron
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjobs_next_run_reaches_the_snapshot_and_a_schedule_that_does_not_read_is_named() {
    let standin = StandIn::start().await.unwrap();
    standin.create(cron_job("etl", "*/15 * * * *", json!({}))).unwrap();
    standin.create(cron_job("paused", "*/15 * * * *", json!({"suspend": true}))).unwrap();
    standin.create(cron_job("broken", "61 * * * *", json!({}))).unwrap();
    standin.create(cron_job("berlin", "0 2 * * *", json!({"timeZone": "Europe/Berlin"}))).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;

    let before = SystemClock.now_millis();
    let view = cluster.observe().await.unwrap();
    let names: Vec<&str> = view.scheduled_runs.iter().map(|r| r.owner.name.as_str()).collect();
    assert_eq!(names, ["berlin", "etl"], "not the suspended one, nor the one whose schedule does not read");
    let etl = &view.scheduled_runs[1];
    assert_eq!(etl.owner, WorkloadRef { kind: WorkloadKind::Job, namespace: "data".into(), name: "etl".into() });
    let quarter = 15 * 60_000;
    assert_eq!(etl.due_at_millis % quarter, 0, "on a quarter hour");
    assert!(etl.due_at_millis > before - 60_000 && etl.due_at_millis <= before + quarter, "the next quarter hour");
    assert_eq!((etl.pods, etl.requests.cpu_millis, etl.requests.memory_bytes), (40, 1500, 3 << 30));
    assert_eq!(etl.tolerations.len(), 1, "{:?}", etl.tolerations);
    assert!(!etl.on_fargate);
    let berlin = view.scheduled_runs[0].due_at_millis;
    assert_eq!(berlin % 3_600_000, 0, "02:00 in Berlin is on the hour in UTC too");
    assert!(berlin > before - 60_000 && berlin <= before + 24 * 3_600_000, "within a day");

    let status = cluster.status();
    let named = status.last_unreadable.expect("the broken schedule is named");
    assert!(named.contains("CronJob data/broken") && named.contains("spec.schedule"), "{named}");
    assert!(named.contains("minute: 61 is outside 0-59"), "{named}");

    // A deleted CronJob has no more runs.
    standin.delete("batch/v1", "CronJob", "data", "etl").unwrap();
    eventually(Duration::from_secs(10), async || {
        cluster.observe().await.unwrap().scheduled_runs.iter().all(|r| r.owner.name != "etl")
    })
    .await
    .expect("etl's runs are gone");

    // A request that does not parse is named by its whole path in the CronJob.
    let mut odd = cron_job("odd", "*/15 * * * *", json!({}));
    odd["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] =
        json!("12x");
    standin.create(odd).unwrap();
    eventually(Duration::from_secs(10), async || {
        cluster.status().last_unreadable.is_some_and(|named| named.contains("CronJob data/odd"))
    })
    .await
    .expect("the odd request is reported");
    let named = cluster.status().last_unreadable.unwrap();
    assert!(named.contains("spec.jobTemplate.spec.template.spec.containers[etl].resources.requests.cpu"), "{named}");
    assert!(cluster.observe().await.unwrap().scheduled_runs.iter().all(|r| r.owner.name != "odd"), "no runs");
}

/// A HorizontalPodAutoscaler (autoscaling/v2) in `shop` on Deployment `target`.
fn autoscaler(name: &str, target: &str, min: Option<i32>, max: i32) -> serde_json::Value {
    let mut hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60}}}]}});
    if let Some(min) = min {
        hpa["spec"]["minReplicas"] = json!(min);
    }
    hpa
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscalers_bounds_reach_the_snapshot_and_bounds_that_do_not_hold_are_named() {
    let standin = StandIn::start().await.unwrap();
    standin.create(autoscaler("storefront", "storefront", Some(4), 60)).unwrap();
    standin.create(autoscaler("cart", "cart", None, 12)).unwrap();
    standin.create(autoscaler("upside-down", "search", Some(10), 3)).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;

    let view = cluster.observe().await.unwrap();
    let bounds: Vec<(&str, u32, u32)> =
        view.horizontal_autoscalers.iter().map(|a| (a.target.name.as_str(), a.min_replicas, a.max_replicas)).collect();
    assert_eq!(bounds, [("cart", 1, 12), ("storefront", 4, 60)], "minReplicas defaults to 1; not the upside-down one");
    let storefront = &view.horizontal_autoscalers[1].target;
    assert_eq!(
        *storefront,
        WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "storefront".into() }
    );
    let named = cluster.status().last_unreadable.expect("the upside-down bounds are named");
    assert!(named.contains("HorizontalPodAutoscaler shop/upside-down"), "{named}");
    assert!(named.contains("spec.maxReplicas = \"3\""), "{named}");

    // A changed max is followed; a deleted autoscaler bounds nothing.
    standin
        .patch("autoscaling/v2", "HorizontalPodAutoscaler", "shop", "storefront", &json!({"spec": {"maxReplicas": 80}}))
        .unwrap();
    standin.delete("autoscaling/v2", "HorizontalPodAutoscaler", "shop", "cart").unwrap();
    eventually(Duration::from_secs(10), async || {
        let view = cluster.observe().await.unwrap();
        view.horizontal_autoscalers.len() == 1 && view.horizontal_autoscalers[0].max_replicas == 80
    })
    .await
    .expect("the new max is read and the deleted autoscaler is gone");
}

/// A ClusterRole from before autoscalers were read forbids listing them. The adapter still
/// syncs and observes (policies see no autoscalers), and once the role allows it, the
/// autoscalers arrive without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_autoscaler_list_leaves_the_rest_working_and_is_read_once_allowed() {
    let standin = StandIn::start().await.unwrap();
    standin.create(autoscaler("storefront", "storefront", Some(4), 60)).unwrap();
    standin.inject(Some("GET"), "horizontalpodautoscalers", 403, 3);
    let cluster = started(&standin, KubeSettings::default()).await;
    let view = cluster.observe().await.expect("observes without the autoscalers");
    assert!(view.horizontal_autoscalers.is_empty(), "{:?}", view.horizontal_autoscalers);

    // The role is fixed (the injected answers run out): the watch's retry lists them.
    eventually(Duration::from_secs(30), async || {
        cluster.observe().await.is_ok_and(|v| v.horizontal_autoscalers.len() == 1)
    })
    .await
    .expect("the autoscaler is read once the list is allowed");
}

/// A PodTemplate in `default` for spare pods of 2 CPU / 4Gi on the general pool, tolerating
/// the batch taint.
fn pod_template(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name, "namespace": "default"},
        "template": {"spec": {"nodeSelector": {"pool": "general"},
            "tolerations": [{"key": "workload", "operator": "Exists"}],
            "containers": [{"name": "pause", "image": "pause",
                "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]}}})
}

/// A CapacityBuffer (autoscaling.x-k8s.io/v1beta1) in `default`.
fn capacity_buffer(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "autoscaling.x-k8s.io/v1beta1", "kind": "CapacityBuffer",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_buffers_reach_the_snapshot_sized_as_their_spec_says_and_one_that_does_not_read_is_named() {
    let standin = StandIn::start().await.unwrap();
    standin.create(pod_template("spare")).unwrap();
    standin.create(deployment("web")).unwrap();
    let template = |name: &str| json!({"podTemplateRef": {"name": name}, "replicas": 5, "limits": {"cpu": "6"}});
    standin.create(capacity_buffer("fixed", template("spare"))).unwrap();
    let web = json!({"scalableRef": {"apiGroup": "apps", "kind": "Deployment", "name": "web"}, "percentage": 50});
    standin.create(capacity_buffer("share", web)).unwrap();
    let standby = json!({"provisioningStrategy": "buffer.x-k8s.io/standby", "podTemplateRef": {"name": "spare"}});
    standin.create(capacity_buffer("standby", standby)).unwrap();
    standin.create(capacity_buffer("dangling", template("later"))).unwrap();
    standin
        .create(capacity_buffer("broken", json!({"podTemplateRef": {"name": "spare"}, "replicas": "five"})))
        .unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;

    let view = cluster.observe().await.unwrap();
    let sized: Vec<(&str, u32)> = view.capacity_buffers.iter().map(|b| (b.name.as_str(), b.pods)).collect();
    // 5 asked, but 6 CPU hold 3 pods of 2; half of web's 3 replicas, rounded up. Not another
    // strategy's, nor one whose PodTemplate is missing, nor one that does not read.
    assert_eq!(sized, [("fixed", 3), ("share", 2)]);
    let fixed = &view.capacity_buffers[0];
    assert_eq!(
        (fixed.namespace.as_str(), fixed.requests.cpu_millis, fixed.requests.memory_bytes),
        ("default", 2000, 4 << 30)
    );
    assert_eq!(fixed.node_selector.get("pool").map(String::as_str), Some("general"));
    assert_eq!(fixed.tolerations.len(), 1, "{:?}", fixed.tolerations);
    assert_eq!(view.capacity_buffers[1].requests.cpu_millis, 250, "web's pods");
    let named = cluster.status().last_unreadable.expect("the broken buffer is named");
    assert!(named.contains("CapacityBuffer default/broken") && named.contains("spec.replicas = \"five\""), "{named}");

    // Web scaled to 10 takes its buffer to 5; the missing PodTemplate arriving resolves the
    // dangling buffer; a deleted buffer keeps no room.
    standin.patch("apps/v1", "Deployment", "default", "web", &json!({"spec": {"replicas": 10}})).unwrap();
    standin.create(pod_template("later")).unwrap();
    standin.delete("autoscaling.x-k8s.io/v1beta1", "CapacityBuffer", "default", "fixed").unwrap();
    eventually(Duration::from_secs(10), async || {
        let view = cluster.observe().await.unwrap();
        let sized: Vec<(&str, u32)> = view.capacity_buffers.iter().map(|b| (b.name.as_str(), b.pods)).collect();
        sized == [("dangling", 3), ("share", 5)]
    })
    .await
    .expect("the buffers follow their workload, their template and their deletion");
}

/// Most clusters have no CapacityBuffer CRD: its list answers 404. The adapter syncs and
/// observes with no buffers, and the absence is not a watch fault: none is counted (what
/// `ballast_kube_watch_restarts_total` shows), however often the watch asks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_capacity_buffer_crd_there_are_no_buffers_and_no_watch_fault() {
    let standin = StandIn::start().await.unwrap();
    standin.inject(Some("GET"), "capacitybuffers", 404, 1000);
    let cluster = started(&standin, KubeSettings::default()).await;
    let view = cluster.observe().await.expect("observes without buffers");
    assert!(view.capacity_buffers.is_empty(), "{:?}", view.capacity_buffers);
    // Long enough for the watch's back-off (0.8 s, then doubling) to ask again twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster.status().watch_errors, 0, "a kind not served is not a watch error");
}

/// What Ballast makes of each buffer is written in its status, as Cluster Autoscaler writes
/// it: the pods room is kept for and `ReadyForProvisioning`, or why none is kept, naming the
/// field and value; nothing on another strategy's buffer; no write when nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_buffer_is_told_in_its_status_what_room_is_kept_for_it_or_why_none_is() {
    let standin = StandIn::start().await.unwrap();
    standin.create(pod_template("spare")).unwrap();
    let template = |name: &str| json!({"podTemplateRef": {"name": name}, "replicas": 5, "limits": {"cpu": "6"}});
    standin.create(capacity_buffer("fixed", template("spare"))).unwrap();
    standin.create(capacity_buffer("dangling", template("later"))).unwrap();
    let broken = json!({"podTemplateRef": {"name": "spare"}, "replicas": "five"});
    standin.create(capacity_buffer("broken", broken)).unwrap();
    let standby = json!({"provisioningStrategy": "buffer.x-k8s.io/standby", "podTemplateRef": {"name": "spare"}});
    standin.create(capacity_buffer("standby", standby)).unwrap();
    let cluster = started(&standin, KubeSettings::default()).await;
    let buffer = |name: &str| standin.get("autoscaling.x-k8s.io/v1beta1", "CapacityBuffer", "default", name).unwrap();
    let ready = |name: &str| {
        let status = buffer(name)["status"].clone();
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        let ready = conditions.into_iter().find(|c| c["type"] == "ReadyForProvisioning").unwrap_or_default();
        (status, ready)
    };

    cluster.update_status(1_764_000_000_000).await;
    let (status, condition) = ready("fixed");
    assert_eq!((status["replicas"].as_u64(), status["podTemplateRef"]["name"].as_str()), (Some(3), Some("spare")));
    assert_eq!(status["provisioningStrategy"], "buffer.x-k8s.io/active-capacity");
    assert_eq!(
        (condition["status"].as_str(), condition["reason"].as_str()),
        (Some("True"), Some("AttributesSetSuccessfully"))
    );
    assert_eq!(condition["lastTransitionTime"], "2025-11-24T16:00:00Z");
    let (status, condition) = ready("broken");
    assert_eq!((condition["status"].as_str(), condition["reason"].as_str()), (Some("False"), Some("InvalidSpec")));
    assert!(condition["message"].as_str().unwrap().starts_with(r#"spec.replicas = "five""#), "{condition}");
    assert!(status["replicas"].is_null(), "{status}");
    let (_, condition) = ready("dangling");
    assert_eq!(condition["reason"], "PodShapeUnknown");
    assert!(condition["message"].as_str().unwrap().contains("no readable PodTemplate default/later"), "{condition}");
    assert!(buffer("standby").get("status").is_none_or(|s| s.is_null()), "another strategy's buffer is not ours");

    let version = |name: &str| buffer(name)["metadata"]["resourceVersion"].clone();
    let written = version("fixed");
    cluster.update_status(1_764_000_060_000).await;
    assert_eq!(version("fixed"), written, "a status that says it already is not written again");

    // The template arriving resolves the dangling buffer: ready from the tick that sees it.
    standin.create(pod_template("later")).unwrap();
    eventually(Duration::from_secs(10), async || {
        cluster.update_status(1_764_000_120_000).await;
        ready("dangling").1["status"] == "True"
    })
    .await
    .expect("a buffer that resolves is told so");
    let (status, condition) = ready("dangling");
    assert_eq!(status["replicas"], 3);
    assert_eq!(condition["lastTransitionTime"], "2025-11-24T16:02:00Z", "not ready to ready is a transition");

    // Not allowed to write status (a ClusterRole from before it was granted): the room
    // follows the spec all the same, and the status is left as it was.
    standin.inject(Some("PATCH"), "capacitybuffers/fixed/status", 403, 100);
    let fewer = json!({"spec": {"replicas": 2}});
    standin.patch("autoscaling.x-k8s.io/v1beta1", "CapacityBuffer", "default", "fixed", &fewer).unwrap();
    eventually(Duration::from_secs(10), async || {
        cluster.update_status(1_764_000_180_000).await;
        cluster.observe().await.unwrap().capacity_buffers.iter().any(|b| b.name == "fixed" && b.pods == 2)
    })
    .await
    .expect("the buffer's room follows its spec");
    assert_eq!(ready("fixed").0["replicas"], 3, "the refused write changed nothing");
}

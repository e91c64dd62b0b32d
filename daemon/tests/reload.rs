//! Reloading without a restart, through `ballast run` against the Kubernetes API stand-in
//! and moto: a policy file swapped the way a ConfigMap update swaps it (a broken one keeps
//! the old), and a policy's settings changed in the configuration file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::daemon::{Site, announced, fail, get, records, sample, stop};
use support::*;

/// A directory laid out as the kubelet mounts a ConfigMap: `policy.wasm` -> `..data/policy.wasm`,
/// `..data` -> `..<version>`; a new version is swapped in by renaming a new `..data` link.
struct ConfigMapDir(PathBuf);

impl ConfigMapDir {
    fn new(dir: &Path, component: &Path) -> Self {
        let root = dir.join("policies");
        std::fs::create_dir_all(&root).unwrap();
        let mounted = ConfigMapDir(root);
        mounted.swap_in("v1", &std::fs::read(component).unwrap());
        std::os::unix::fs::symlink("..data/policy.wasm", mounted.0.join("policy.wasm")).unwrap();
        mounted
    }

    fn swap_in(&self, version: &str, bytes: &[u8]) {
        let versioned = self.0.join(format!("..{version}"));
        std::fs::create_dir_all(&versioned).unwrap();
        std::fs::write(versioned.join("policy.wasm"), bytes).unwrap();
        let staged = self.0.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..{version}"), &staged).unwrap();
        std::fs::rename(&staged, self.0.join("..data")).unwrap();
    }

    fn path(&self) -> PathBuf {
        self.0.join("policy.wasm")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_policy_file_takes_effect_without_a_restart_and_a_broken_one_keeps_the_old() {
    let site = Site::start(0).await;
    let plugins = PathBuf::from(env!("BALLAST_PLUGIN_DIR"));
    let mounted = ConfigMapDir::new(site.dir.path(), &plugins.join("static_size.wasm"));
    let policies = format!("  - {{plugin: \"{}\"}}\n", mounted.path().display());
    let mut daemon = site.replica("ops", "  tick-interval: 1s\n", &policies, "reload-interval: 200ms\n");
    let admin = announced(&mut daemon, "metrics and health");
    for i in 0..3 {
        site.standin.create(pending_pod(&format!("web-{i}"), None)).unwrap();
    }
    // static-size holds the group at its min-size (0) whatever waits.
    let journal = site.journal();
    let ticks = |n: usize| {
        let journal = journal.clone();
        async move || {
            records(&journal).iter().filter(|r| r["record"] == "tick" && r["saw"]["pending-pods"] == 3).count() >= n
        }
    };
    if eventually(Duration::from_secs(40), ticks(3)).await.is_none() {
        fail(daemon, "no ticks saw the pending pods");
    }
    assert_eq!(site.group().await.0, 0, "static-size kept the group at 0");

    // The ConfigMap now holds binpack under the same file name: it scales up, same process.
    mounted.swap_in("v2", &std::fs::read(plugins.join("binpack.wasm")).unwrap());
    if eventually(Duration::from_secs(40), async || site.group().await.0 > 0).await.is_none() {
        fail(daemon, "the replaced policy never scaled the group");
    }
    let reloaded = |r: &Value| r["record"] == "control" && r["caller"] == "policy-reload";
    // The journal's writer may lag a little behind the group's size.
    if eventually(Duration::from_secs(10), async || records(&journal).iter().any(reloaded)).await.is_none() {
        fail(daemon, &format!("the reload is not recorded:\n{:#?}", records(&journal)));
    }
    let reload = records(&journal).into_iter().find(reloaded).unwrap();
    assert!(reload["reason"].as_str().unwrap().contains("policy.wasm"), "{reload}");

    // A broken replacement: the running binpack stays, a record and a metric say so.
    mounted.swap_in("v3", b"not a component");
    let kept = |r: &Value| {
        r["record"] == "control" && r["change"].as_str().is_some_and(|c| c.contains("kept the running version"))
    };
    if eventually(Duration::from_secs(20), async || records(&journal).iter().any(kept)).await.is_none() {
        fail(daemon, &format!("the failed reload was not recorded:\n{:#?}", records(&journal)));
    }
    let metrics = get(&admin, "/metrics", None).2;
    assert_eq!(
        sample(&metrics, "ballast_policy_reloads_total{plugin=\"policy\",result=\"kept-previous\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "ballast_policy_reloads_total{plugin=\"policy\",result=\"loaded\"}"),
        Some(1.0),
        "{metrics}"
    );
    let before = records(&journal).iter().filter(|r| r["record"] == "tick").count();
    let still = eventually(Duration::from_secs(20), async || {
        records(&journal).iter().filter(|r| r["record"] == "tick" && r["plugins"][0]["error"].is_null()).count()
            > before + 2
    });
    assert!(still.await.is_some(), "the old policy keeps running without errors");
    let (ready, _, said) = get(&admin, "/readyz", None);
    assert_eq!(ready, 200, "{said}");
    stop(daemon);
}

/// Puts `messages` as the depth of SQS queue `queue` into moto's CloudWatch, as of now.
async fn queue_depth(site: &Site, queue: &str, messages: f64) {
    let dimension = aws_sdk_cloudwatch::types::Dimension::builder().name("QueueName").value(queue).build();
    let depth = aws_sdk_cloudwatch::types::MetricDatum::builder()
        .metric_name("ApproximateNumberOfMessagesVisible")
        .dimensions(dimension)
        .value(messages)
        .timestamp(aws_smithy_types::DateTime::from(std::time::SystemTime::now()))
        .build();
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&site.aws);
    cloudwatch.put_metric_data().namespace("AWS/SQS").metric_data(depth).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reads_a_cloudwatch_series_holds_a_floor_from_it_and_follows_a_reloaded_query() {
    let site = Site::start(0).await;
    queue_depth(&site, "orders", 250.0).await;
    queue_depth(&site, "refunds", 650.0).await;

    let plugin = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("queue_floor.wasm");
    let policies = format!(
        "  - plugin: \"{}\"\n    settings: {{series: orders-depth, group: general, messages-per-node: 100, max: 8}}\n    \
         metrics:\n      - {{name: orders-depth, namespace: AWS/SQS, metric: ApproximateNumberOfMessagesVisible, \
         dimensions: {{QueueName: orders}}, statistic: maximum, period: 60s, window: 10m, every: 1s}}\n",
        plugin.display()
    );
    let daemon = site.replica("ops", "  tick-interval: 1s\n", &policies, "reload-interval: 1s\n");
    // 250 messages at 100 per node: a floor of 3 nodes, with no pod pending at all.
    if eventually(Duration::from_secs(40), async || site.group().await.0 == 3).await.is_none() {
        fail(daemon, &format!("the group never reached the floor of 3: {:?}", site.group().await));
    }
    // The record is written after the call that raised the group returns: wait for it too.
    let journal = site.journal();
    let floor = |r: &Value| r["record"] == "decision" && r["plugin"] == "queue_floor";
    let recorded = eventually(Duration::from_secs(10), async || records(&journal).iter().any(floor));
    if recorded.await.is_none() {
        fail(daemon, "the group reached 3 but no queue_floor decision was recorded");
    }
    let decision = records(&journal).into_iter().find(floor).unwrap();
    assert!(decision["reason"].as_str().unwrap().contains("250"), "{decision}");

    // The query now reads another queue (a ConfigMap edit): followed without a restart.
    let config = site.dir.path().join("ballast.yaml");
    let edited = std::fs::read_to_string(&config).unwrap().replace("QueueName: orders", "QueueName: refunds");
    std::fs::write(site.dir.path().join("ballast.yaml.new"), edited).unwrap();
    std::fs::rename(site.dir.path().join("ballast.yaml.new"), &config).unwrap();
    // 650 messages: a floor of 7.
    if eventually(Duration::from_secs(40), async || site.group().await.0 == 7).await.is_none() {
        fail(daemon, &format!("the reloaded query was not followed: {:?}", site.group().await));
    }
    let reloaded = |r: &Value| {
        r["record"] == "control"
            && r["caller"] == "policy-reload"
            && r["change"].as_str().is_some_and(|c| c.contains("CloudWatch queries now: orders-depth"))
    };
    // Both records may trail the group's size: the decision's is written after the call
    // that raised the group returns, and the journal's writer may lag a little.
    let raised = |r: &Value| floor(r) && r["proposed"]["scale-to"]["size"] == 7;
    let both = async || {
        let all = records(&journal);
        all.iter().any(reloaded) && all.iter().any(raised)
    };
    if eventually(Duration::from_secs(10), both).await.is_none() {
        fail(daemon, &format!("the reload or the floor of 7 is not recorded: {:#?}", records(&journal)));
    }
    let journal = records(&journal);
    let reload_at = journal.iter().position(reloaded).unwrap();
    let raised = journal.iter().position(raised);
    assert!(raised.is_some_and(|i| i > reload_at), "the floor of 7 is decided after the reload's record");
    stop(daemon);
}

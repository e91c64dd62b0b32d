//! How long a pending pod waits for its scale-up: the real `ballast` binary against the
//! Kubernetes API stand-in and moto (behind a proxy that timestamps each request), 100
//! trials. A trial creates one pod that needs a node of its own and ends when moto receives
//! the SetDesiredCapacity it causes. The daemon's JSON log (debug) splits each wait into:
//! - watch: pod created -> the watch event reaches the cache;
//! - batch: -> the batch closes and the tick starts (`batching.idle`, 1 s by default);
//! - observe+plugins: -> the chain has evaluated;
//! - guardrails: -> the adapter is asked to set the size;
//! - describe+call: -> moto receives SetDesiredCapacity (the adapter first describes the
//!   group to check its sizes; the client-side rate limit; the SDK's signing).
//!
//! `cargo bench -p ballast --bench latency` (prints figures; not a criterion benchmark).
//! Goal: p99 at most the batch idle time plus 500 ms.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use serde_json::Value;
use support::moto::{Moto, Proxy, sdk_config};

/// Trials; `BALLAST_BENCH_TRIALS` changes it for a quick look.
fn trials() -> usize {
    std::env::var("BALLAST_BENCH_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(100)
}

/// One log line: when, what, and its fields.
struct Event {
    at: SystemTime,
    message: String,
    fields: Value,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let standin = kube_standin::StandIn::start().await.unwrap();
    let moto = Moto::start().await;
    let proxy = Proxy::start(&moto.url).await;
    let aws = sdk_config(&moto.url).await;
    group(&aws).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), standin.kubeconfig()).unwrap();
    let config = format!(
        "engine: {{tick-interval: 10m, batching: {{idle: 1s, max: 10s}}}}\n\
         policies: [{{plugin: binpack}}]\n\
         leader-election: false\n\
         aws: {{cluster-name: bench, region: us-east-1, endpoint-url: \"{}\", max-calls-per-second: 100}}\n\
         control: {{enabled: false}}\nadmin: {{listen: \"127.0.0.1:0\"}}\n",
        proxy.url
    );
    std::fs::write(dir.path().join("ballast.yaml"), config).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(dir.path().join("ballast.yaml"))
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BALLAST_CACHE_DIR", root.join("target/test-component-cache"))
        .env("BALLAST_LOG", "ballast=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let events = collect(daemon.stderr.take().unwrap());
    wait_for(&events, "tick started", Duration::from_secs(120)).await;

    let mut created = Vec::new();
    let mut received = Vec::new();
    for i in 0..trials() {
        let before = proxy.arrivals("SetDesiredCapacity").len();
        created.push(SystemTime::now());
        standin.create(big_pod(i)).unwrap();
        let arrived = loop {
            if let Some(at) = proxy.arrivals("SetDesiredCapacity").get(before) {
                break *at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        received.push(arrived);
        // Let the tick finish so that the next pod opens a batch of its own.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let _ = daemon.wait();
    report(&events.lock().unwrap(), &created, &received);
}

/// Group `bench`: m5.large, 0..150, tagged for cluster `bench`.
async fn group(aws: &aws_config::SdkConfig) {
    let template = RequestLaunchTemplateData::builder().image_id("ami-12c6146b").instance_type(InstanceType::M5Large);
    let ec2 = aws_sdk_ec2::Client::new(aws);
    ec2.create_launch_template()
        .launch_template_name("bench")
        .launch_template_data(template.build())
        .send()
        .await
        .unwrap();
    let spec = LaunchTemplateSpecification::builder().launch_template_name("bench").version("$Latest").build();
    let mut create = aws_sdk_autoscaling::Client::new(aws)
        .create_auto_scaling_group()
        .auto_scaling_group_name("bench")
        .min_size(0)
        .max_size(150)
        .desired_capacity(0)
        .availability_zones("us-east-1a")
        .launch_template(spec);
    for (k, v) in [("k8s.io/cluster-autoscaler/enabled", "true"), ("k8s.io/cluster-autoscaler/bench", "owned")] {
        create = create
            .tags(Tag::builder().key(k).value(v).resource_id("bench").resource_type("auto-scaling-group").build());
    }
    create.send().await.unwrap();
}

/// A pending pod asking 1.5 CPU: an m5.large (1.93 allocatable) each.
fn big_pod(i: usize) -> Value {
    let mut pod = support::pending_pod(&format!("lat-{i}"), None);
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1500m".into();
    pod
}

/// Reads the daemon's JSON log lines as they come.
fn collect(stderr: std::process::ChildStderr) -> Arc<Mutex<Vec<Event>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
            let Some(at) = value["timestamp"].as_str().and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else {
                continue;
            };
            let message = value["fields"]["message"].as_str().unwrap_or_default().to_string();
            sink.lock().unwrap().push(Event { at, message, fields: value["fields"].clone() });
        }
    });
    events
}

async fn wait_for(events: &Mutex<Vec<Event>>, message: &str, limit: Duration) {
    let start = std::time::Instant::now();
    while !events.lock().unwrap().iter().any(|e| e.message == message) {
        assert!(start.elapsed() < limit, "the daemon never logged '{message}'");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first event with `message` at or after `after` that `matches`.
fn first<'a>(
    events: &'a [Event],
    message: &str,
    after: SystemTime,
    matches: impl Fn(&Event) -> bool,
) -> Option<&'a Event> {
    events.iter().find(|e| e.message == message && e.at >= after && matches(e))
}

fn millis(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).unwrap_or_default().as_secs_f64() * 1000.0
}

fn report(events: &[Event], created: &[SystemTime], received: &[SystemTime]) {
    let names = ["watch", "batch", "observe+plugins", "guardrails", "describe+call", "total"];
    let mut stages: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for (i, (&t0, &t5)) in created.iter().zip(received).enumerate() {
        let pod = format!("default/lat-{i}");
        let Some(arrived) = first(events, "pending pod arrived", t0, |e| e.fields["pod"] == pod.as_str()) else {
            continue;
        };
        let pending = |e: &Event| e.fields["trigger"].as_str() == Some("PendingPods");
        let Some(tick) = first(events, "tick started", arrived.at, pending) else { continue };
        let Some(evaluated) = first(events, "policies evaluated", tick.at, |_| true) else { continue };
        let Some(setting) = first(events, "setting desired size", evaluated.at, |_| true) else { continue };
        let times = [t0, arrived.at, tick.at, evaluated.at, setting.at, t5];
        for (s, pair) in times.windows(2).enumerate() {
            stages[s].push(millis(pair[0], pair[1]));
        }
        stages[5].push(millis(t0, t5));
    }
    let trials = created.len();
    println!("pending pod -> SetDesiredCapacity at moto, {} of {trials} trials broken down:", stages[5].len());
    println!("{:<17} {:>9} {:>9} {:>9}", "stage", "p50 ms", "p99 ms", "max ms");
    for (name, mut values) in names.iter().zip(stages) {
        values.sort_by(f64::total_cmp);
        let q = |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        if values.is_empty() {
            continue;
        }
        println!("{name:<17} {:>9.1} {:>9.1} {:>9.1}", q(0.5), q(0.99), values[values.len() - 1]);
    }
    let mut totals: Vec<f64> = created.iter().zip(received).map(|(&a, &b)| millis(a, b)).collect();
    totals.sort_by(f64::total_cmp);
    let p99 = totals[((0.99 * totals.len() as f64).ceil() as usize).clamp(1, totals.len()) - 1];
    println!("all {trials} trials: p50 {:.1} ms, p99 {p99:.1} ms (goal: p99 <= 1500 ms)", totals[totals.len() / 2]);
}

//! Plugin host benchmarks (issue: policy plugins).
//!
//! - binpack native versus as a wasm component on 1,000 nodes with 1,000 and 10,000 pending
//!   pods of 20 shapes, and their ratio (goal: at most 1.5);
//! - instantiate plus call of an empty policy (goal: at most 50 µs);
//! - per-call time of the Python and TypeScript policies once compiled.
//!
//! Run with `cargo bench -p ballast --bench plugin_host` after `tests/build-plugins.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast::policy::{EvaluationInput, HostConfig, Plugin, PluginSpec, PolicyHost, SharedSnapshot};
use ballast_sdk::SnapshotData;
use ballast_sdk::testing::{GroupBuilder, NodeBuilder, SnapshotBuilder};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// A cluster of `nodes` nodes over four groups, a third of them lightly used, and `pending`
/// pending pods of 20 shapes (20 Deployments, five request sizes).
fn cluster(nodes: usize, pending: usize) -> SnapshotData {
    let groups = [
        ("m5", "m5.large", "2", "8Gi", 0.096),
        ("c5", "c5.large", "2", "4Gi", 0.085),
        ("r5", "r5.large", "2", "16Gi", 0.126),
        ("m5x", "m5.xlarge", "4", "16Gi", 0.192),
    ];
    let mut builder = SnapshotBuilder::new().at_millis(1_795_392_000_000);
    for (id, ty, cpu, mem, price) in groups {
        builder = builder.group(GroupBuilder::asg(id).instance_type(ty, cpu, mem, price).sizes(
            0,
            (nodes / 4) as u32,
            (nodes / 4 + 500) as u32,
        ));
    }
    for i in 0..nodes {
        let (id, ty, cpu, mem, _) = groups[i % 4];
        let (used_cpu, used_mem) = if i % 3 == 0 { ("200m", "512Mi") } else { ("1500m", "3Gi") };
        builder = builder.node(
            NodeBuilder::new(&format!("ip-10-0-{}-{}.ec2.internal", i / 256, i % 256), id)
                .instance_type(ty)
                .allocatable(cpu, mem)
                .requested(used_cpu, used_mem, 6),
        );
    }
    let sizes = [("100m", "128Mi"), ("250m", "512Mi"), ("500m", "1Gi"), ("1", "2Gi"), ("2", "4Gi")];
    for i in 0..20 {
        let (cpu, mem) = sizes[i % sizes.len()];
        builder = builder.pending_pods("default", &format!("app-{i}"), pending / 20, cpu, mem);
    }
    builder.build()
}

fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("BALLAST_PLUGIN_DIR"))
}

fn foreign(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/foreign").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run tests/setup.sh and tests/build-plugins.sh", path.display());
    path
}

fn host() -> PolicyHost {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-component-cache");
    PolicyHost::new(HostConfig { cache_dir: Some(cache), ..HostConfig::default() }).expect("host")
}

fn load(host: &PolicyHost, path: &Path) -> Plugin {
    host.load(PluginSpec::from_file(path).expect("readable")).expect("loads")
}

/// One tick's worth of work for a plugin: a fresh shared snapshot (so conversion is paid),
/// a fresh instance, the call, output validation.
fn evaluate(plugin: &Plugin, snapshot: &Arc<SnapshotData>) {
    let input = EvaluationInput::new(Arc::new(SharedSnapshot::new(snapshot.clone())), Arc::from(plugin.settings()));
    let report = plugin.evaluate(input);
    assert!(report.result.is_ok(), "{:?}", report.result);
}

fn native(snapshot: &SnapshotData) {
    let outcome = ballast_sdk::run::<binpack::Binpack>(snapshot, "", None).expect("binpack runs");
    std::hint::black_box(outcome);
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort_unstable();
    samples[runs / 2]
}

fn binpack_native_vs_wasm(c: &mut Criterion) {
    let host = host();
    let plugin = load(&host, &plugin_dir().join("binpack.wasm"));
    let mut group = c.benchmark_group("binpack");
    let mut summary = Vec::new();
    for pending in [1_000, 10_000] {
        let snapshot = Arc::new(cluster(1_000, pending));
        group.bench_with_input(BenchmarkId::new("native", pending), &snapshot, |b, s| b.iter(|| native(s)));
        group.bench_with_input(BenchmarkId::new("wasm", pending), &snapshot, |b, s| b.iter(|| evaluate(&plugin, s)));
        let n = median(|| native(&snapshot), 31);
        let w = median(|| evaluate(&plugin, &snapshot), 31);
        summary.push((pending, n, w));
    }
    group.finish();
    println!("\nbinpack, 1,000 nodes, 20 shapes: pending pods | native median | wasm median | ratio (goal <= 1.5)");
    for (pending, n, w) in summary {
        println!("  {pending:>6} | {n:>12.2?} | {w:>12.2?} | {:.2}", w.as_secs_f64() / n.as_secs_f64());
    }
}

fn empty_policy(c: &mut Criterion) {
    let host = host();
    let plugin = load(&host, &plugin_dir().join("empty_policy.wasm"));
    let snapshot = Arc::new(SnapshotData::default());
    c.bench_function("empty policy: instantiate + call (goal <= 50 us)", |b| b.iter(|| evaluate(&plugin, &snapshot)));
}

fn foreign_policies(c: &mut Criterion) {
    let host = host();
    let snapshot = Arc::new(cluster(100, 1_000));
    let floor = host
        .load(PluginSpec {
            settings: serde_json::json!({"floors": [{"group": "m5", "min-nodes": 3, "from": "08:00", "to": "19:00"}]}),
            ..PluginSpec::from_file(&foreign("capacity_floor")).unwrap()
        })
        .expect("python policy loads");
    let threshold = load(&host, &foreign("utilisation_threshold"));
    let mut group = c.benchmark_group("per call, 100 nodes / 1,000 pending pods");
    group.sample_size(30);
    group.bench_function("python capacity-floor", |b| b.iter(|| evaluate(&floor, &snapshot)));
    group.bench_function("typescript utilisation-threshold", |b| b.iter(|| evaluate(&threshold, &snapshot)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = empty_policy, binpack_native_vs_wasm, foreign_policies
}
criterion_main!(benches);

//! Engine ticks per second with the default chain (binpack, headroom, consolidation,
//! fargate-placement, with the default set's settings) on the sim adapters: 500 nodes / 15k
//! pods / 10 groups, 5,000 nodes / 150k pods / 100 groups and 15,000 nodes / 450k pods / 300
//! groups.
//! A tick is the whole loop: observe, snapshot, the chain, guardrails, actuate, record; the
//! simulated world's step between ticks is not timed.
//! Ticks are recorded in a journal, as `ballast run --journal` does; after each size the
//! bench prints each plugin's mean time a call over every tick run (warm-up included), from
//! the `elapsed-micros` of the tick records: the wasm call with the snapshot's reads and the
//! state it carries.
//! Each tick leaves a handover for the next leader, as `ballast run` does (in memory here;
//! the ConfigMap write is off the tick); after each size the bench prints the last one's
//! size as JSON, the ConfigMap's text, and the time to encode it.
//! The last size is run again with every node drifted (each group given a new image a
//! second in, drift replacement off): what finding and showing drift costs a tick at worst;
//! and again with a tenth of the workloads kept one pod to a node (`max-per-node: 1`, as a
//! required pod anti-affinity keeps them): binpack's scale-down and consolidation then read
//! every node's pods when a candidate runs such a pod, which nearly every node does; with a
//! tenth spread over zones; and with a tenth spread over nodes (`max-node-skew: 1`), whose
//! cap per node the observation works out from every node's pods each tick.
//!
//! `cargo bench -p ballast --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast::bundled;
use ballast::engine::Mode;
use ballast::engine::handover::MemoryHandover;
use ballast::engine::record::Trigger;
use ballast::policy::{HostConfig, PluginSpec, PolicyHost};
use ballast::sim::{Simulation, synthetic};
use criterion::{Criterion, criterion_group, criterion_main};

fn policies() -> Vec<PluginSpec> {
    // A generous deadline: the large sizes are measured, not bounded.
    let mut specs = bundled::default_specs();
    specs.iter_mut().for_each(|s| s.limits.deadline_ms = 5_000);
    specs
}

/// What the synthetic cluster is given beyond its size.
#[derive(Clone, Copy, Debug)]
enum Variant {
    Plain,
    Drifted,
    KeptApart,
    KeptAway,
    Spread,
    NodeSpread,
}

fn ticks(c: &mut Criterion) {
    let host = PolicyHost::new(HostConfig { deterministic: false, ..HostConfig::default() }).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("engine tick");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    let sizes = [
        (10, 50, Variant::Plain, "500 nodes, 15k pods"),
        (100, 50, Variant::Plain, "5000 nodes, 150k pods"),
        (300, 50, Variant::Plain, "15000 nodes, 450k pods"),
        (300, 50, Variant::Drifted, "15000 nodes, 450k pods, every node drifted"),
        (300, 50, Variant::KeptApart, "15000 nodes, 450k pods, a tenth of the workloads kept apart"),
        (300, 50, Variant::KeptAway, "15000 nodes, 450k pods, a tenth of the workloads kept off the next one's nodes"),
        (300, 50, Variant::Spread, "15000 nodes, 450k pods, a tenth of the workloads spread over zones"),
        (300, 50, Variant::NodeSpread, "15000 nodes, 450k pods, a tenth of the workloads spread over nodes"),
    ];
    for (groups, nodes_per_group, variant, label) in sizes {
        let mut scenario = synthetic::scenario(groups, nodes_per_group, 30, 24).unwrap();
        match variant {
            Variant::Plain => {}
            Variant::Drifted => {
                let new_image = ballast::sim::scenario::NewImage { at: Duration::from_secs(1) };
                scenario.node_groups.iter_mut().for_each(|g| g.new_images = vec![new_image.clone()]);
            }
            Variant::KeptApart => {
                scenario.workloads.iter_mut().skip(1).step_by(10).for_each(|w| w.max_per_node = Some(1));
            }
            Variant::KeptAway => {
                let names: Vec<String> = scenario.workloads.iter().map(|w| w.name.clone()).collect();
                for (i, w) in scenario.workloads.iter_mut().enumerate().skip(1).step_by(10) {
                    w.kept_away = names.get(i + 1).cloned().into_iter().collect();
                }
            }
            Variant::Spread => {
                // Groups in three zones in turn; a spread workload's pods may go to any group.
                for (i, g) in scenario.node_groups.iter_mut().enumerate() {
                    g.zones = vec![format!("us-east-1{}", ['a', 'b', 'c'][i % 3])];
                }
                for w in scenario.workloads.iter_mut().skip(1).step_by(10) {
                    (w.max_zone_skew, w.node_group) = (Some(1), None);
                }
            }
            Variant::NodeSpread => {
                scenario.workloads.iter_mut().skip(1).step_by(10).for_each(|w| w.max_node_skew = Some(1));
            }
        }
        let journal = dir.path().join(format!("{groups}-{variant:?}.jsonl"));
        let sim =
            Simulation { scenario, seed: 1, policies: policies(), mode: Mode::Enforce, journal: Some(journal.clone()) };
        let (world, engine) = sim.prepare(&host).unwrap();
        let store = MemoryHandover::default();
        let mut engine = engine.with_handover(Arc::new(store.clone()));
        // The simulated world's step (150k pods at 5,000 nodes) is outside the timing.
        group.bench_function(label, |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    let now = {
                        let mut w = world.lock();
                        w.step(10_000);
                        w.now()
                    };
                    let started = Instant::now();
                    std::hint::black_box(runtime.block_on(engine.tick(now, Trigger::Periodic)));
                    spent += started.elapsed();
                }
                spent
            })
        });
        drop(engine);
        let means: Vec<String> = plugin_means(&journal)
            .iter()
            .map(|(plugin, micros)| format!("{plugin} {:.1} ms", micros / 1000.0))
            .collect();
        println!("{label}: mean time a call: {}", means.join(", "));
        // None when a filter left this size out.
        let Some(left) = store.left() else { continue };
        let started = Instant::now();
        let text = serde_json::to_string(&left).unwrap();
        let policies = left.policies.as_ref().map_or(0, |p| p.to_string().len());
        println!(
            "{label}: handover {} KiB as JSON ({} KiB of it the policies' states), encoded in {:.1} ms",
            text.len() / 1024,
            policies / 1024,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    group.finish();
}

fn plugin_means(journal: &Path) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in std::fs::read_to_string(journal).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        for run in record["plugins"].as_array().into_iter().flatten() {
            let sum = sums.entry(run["plugin"].as_str().unwrap().to_string()).or_default();
            sum.0 += run["elapsed-micros"].as_u64().unwrap();
            sum.1 += 1;
        }
    }
    sums.into_iter().map(|(plugin, (total, calls))| (plugin, total as f64 / calls as f64)).collect()
}

criterion_group!(benches, ticks);
criterion_main!(benches);

//! Engine ticks per second with the default chain (binpack, headroom, consolidation,
//! fargate-placement, with the default set's settings) on the sim adapters: 500 nodes / 15k
//! pods / 10 groups, 5,000 nodes / 150k pods / 100 groups and 15,000 nodes / 450k pods / 300
//! groups.
//! A tick is the whole loop: observe, snapshot, the chain, guardrails, actuate, record.
//!
//! `cargo bench -p ballast --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::time::Duration;

use ballast::bundled;
use ballast::engine::Mode;
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

fn ticks(c: &mut Criterion) {
    let host = PolicyHost::new(HostConfig { deterministic: false, ..HostConfig::default() }).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut group = c.benchmark_group("engine tick");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    let sizes =
        [(10, 50, "500 nodes, 15k pods"), (100, 50, "5000 nodes, 150k pods"), (300, 50, "15000 nodes, 450k pods")];
    for (groups, nodes_per_group, label) in sizes {
        let scenario = synthetic::scenario(groups, nodes_per_group, 30, 24).unwrap();
        let sim = Simulation { scenario, seed: 1, policies: policies(), mode: Mode::Enforce, journal: None };
        let (world, mut engine) = sim.prepare(&host).unwrap();
        group.bench_function(label, |b| {
            b.iter(|| {
                let now = {
                    let mut w = world.lock();
                    w.step(10_000);
                    w.now()
                };
                runtime.block_on(engine.tick(now, Trigger::Periodic))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ticks);
criterion_main!(benches);

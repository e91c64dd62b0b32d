//! Whole-simulation figures, printed: wall time to simulate 24 h at 10 s ticks of a 500-node
//! scenario, and peak resident memory with 150k pods. Run as its own process so the peak is
//! this workload's.
//!
//! `cargo bench -p ballast --bench simulate`

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::time::Instant;

use ballast::bundled;
use ballast::engine::Mode;
use ballast::engine::record::Trigger;
use ballast::policy::{HostConfig, PluginSpec, PolicyHost};
use ballast::sim::{Simulation, synthetic};

fn policies() -> Vec<PluginSpec> {
    // A generous deadline: the large sizes are measured, not bounded.
    let mut specs: Vec<PluginSpec> = ["binpack", "fargate-placement"]
        .iter()
        .filter_map(|name| bundled::spec(name, serde_json::Value::Null))
        .collect();
    specs.iter_mut().for_each(|s| s.limits.deadline_ms = 5_000);
    specs
}

/// Peak resident set size of this process so far, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    // cargo bench passes --bench; a plain `cargo test --benches` passes nothing and must not
    // spend minutes here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let host = PolicyHost::new(HostConfig { deterministic: true, ..HostConfig::default() }).unwrap();

    let scenario = synthetic::scenario(10, 50, 30, 24).unwrap();
    let sim = Simulation { scenario, seed: 1, policies: policies(), mode: Mode::Enforce, journal: None };
    let started = Instant::now();
    let report = sim.run(&host, &mut |_, _| {}).unwrap();
    let wall = started.elapsed();
    println!(
        "simulate 24 h at 10 s ticks, 500 nodes / 15k pods: {:.2} s wall ({} ticks, {} scale-ups, {} nodes removed, peak {} nodes)",
        wall.as_secs_f64(),
        report.summary.ticks,
        report.summary.scale_ups,
        report.summary.nodes_removed,
        report.summary.peak_nodes
    );
    println!("peak RSS after the 500-node day: {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));

    for (groups, label) in
        [(100, "5,000 nodes / 150k pods / 100 groups"), (300, "15,000 nodes / 450k pods / 300 groups")]
    {
        large_ticks(&host, groups, label);
        println!("peak RSS so far (after {label}): {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));
    }
}

/// Builds a synthetic cluster of `groups` groups of 50 nodes with 30 pods each, then times 30
/// ticks, each after 10 s of world steps.
fn large_ticks(host: &PolicyHost, groups: u32, label: &str) {
    let scenario = synthetic::scenario(groups, 50, 30, 1).unwrap();
    let sim = Simulation { scenario, seed: 1, policies: policies(), mode: Mode::Enforce, journal: None };
    let built = Instant::now();
    let (world, mut engine) = sim.prepare(host).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let view = runtime.block_on(ballast::engine::ports::Cluster::observe(&world)).unwrap();
    let pods = view.pods().count();
    println!("built {} nodes / {pods} pods in {:.2} s", view.nodes.len(), built.elapsed().as_secs_f64());
    drop(view);
    let started = Instant::now();
    let ticks = 30;
    for _ in 0..ticks {
        let now = {
            let mut w = world.lock();
            for _ in 0..10 {
                w.step(1_000);
            }
            w.now()
        };
        runtime.block_on(engine.tick(now, Trigger::Periodic));
    }
    println!(
        "{label}: {:.1} ms per tick including 10 s of world steps ({ticks} ticks)",
        started.elapsed().as_secs_f64() * 1000.0 / ticks as f64
    );
}

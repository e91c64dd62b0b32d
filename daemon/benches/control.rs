//! The control API under load, client included, on the machine's cores: 64 concurrent
//! clients calling Status.Get and Decisions.List (a page of 50) over loopback while the engine
//! ticks a 500-node simulated cluster; then 100 Watch subscribers, and the time from a record
//! being made to the last subscriber receiving it.
//!
//! `cargo bench -p ballast --bench control` (prints figures; not a criterion benchmark).

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks fail loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast::bundled;
use ballast::control::auth::Credentials;
use ballast::control::{AdapterHealth, ControlSettings, ControlState, server};
use ballast::engine::Mode;
use ballast::engine::record::{ControlRecord, Record, Recorder};
use ballast::policy::{HostConfig, PluginSpec, PolicyHost};
use ballast::runner::Runner;
use ballast::sim::{Simulation, synthetic};
use ballast_proto::v1 as pb;
use tonic::transport::Channel;

const CLIENTS: usize = 64;
const LOAD_SECONDS: u64 = 10;
const SUBSCRIBERS: usize = 100;
const RECORDS: usize = 300;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let host = PolicyHost::new(HostConfig::default()).unwrap();
    let policies: Vec<PluginSpec> =
        ["binpack", "fargate-placement"].iter().filter_map(|n| bundled::spec(n, serde_json::Value::Null)).collect();
    let scenario = synthetic::scenario(10, 50, 30, 24).unwrap();
    let sim = Simulation { scenario, seed: 1, policies, mode: Mode::Enforce, journal: None };
    let (world, engine) = sim.prepare(&host).unwrap();
    let recorder = engine.recorder().clone();
    let (commands, received) = tokio::sync::mpsc::channel(16);
    let settings = ControlSettings::default();
    let state = ControlState::new(
        settings.clone(),
        Credentials::load(&settings).unwrap(),
        recorder.clone(),
        engine.live(),
        commands,
        host,
        Arc::new(AdapterHealth::default),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::serve(Arc::new(state), listener, std::future::pending()));

    // The engine ticks the 500-node world: a simulated 10 s every 100 ms of real time.
    let stepper = world.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(10));
        loop {
            every.tick().await;
            stepper.lock().step(1_000);
        }
    });
    tokio::spawn(Runner::new(engine, world).with_commands(received).run(std::future::pending()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    load(&url).await;
    fan_out(&url, &recorder).await;
}

/// 64 clients, each on its own connection, alternating Status.Get and Decisions.List.
async fn load(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let channel = Channel::from_shared(url.to_string()).unwrap().connect().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut status = pb::status_client::StatusClient::new(channel.clone());
            let mut decisions = pb::decisions_client::DecisionsClient::new(channel);
            let (mut on_status, mut on_list) = (Vec::new(), Vec::new());
            let mut n = i;
            while Instant::now() < deadline {
                let started = Instant::now();
                if n % 2 == 0 {
                    status.get(pb::GetStatusRequest {}).await.unwrap();
                    on_status.push(started.elapsed());
                } else {
                    let request = pb::ListDecisionsRequest { page_size: 50, ..Default::default() };
                    decisions.list(request).await.unwrap();
                    on_list.push(started.elapsed());
                }
                n += 1;
            }
            (on_status, on_list)
        }));
    }
    let (mut status, mut list) = (Vec::new(), Vec::new());
    for task in tasks {
        let (s, l) = task.await.unwrap();
        status.extend(s);
        list.extend(l);
    }
    let calls = status.len() + list.len();
    let mut all: Vec<Duration> = status.iter().chain(&list).copied().collect();
    all.sort();
    status.sort();
    list.sort();
    println!(
        "control load: {CLIENTS} clients, {LOAD_SECONDS} s: {:.0} calls/s; p50 {:?}, p99 {:?} \
         (Status.Get p99 {:?}, Decisions.List p99 {:?})",
        calls as f64 / LOAD_SECONDS as f64,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&status, 0.99),
        percentile(&list, 0.99),
    );
}

/// 100 subscribers Watch from now; each record's time from `record` to the last of them.
async fn fan_out(url: &str, recorder: &Recorder) {
    let mut subscribers = Vec::new();
    // Control records are the host's (`ballast`); the engine's own are skipped below.
    let filter = pb::DecisionFilter { plugin: "ballast".into(), ..Default::default() };
    for _ in 0..SUBSCRIBERS {
        let channel = Channel::from_shared(url.to_string()).unwrap().connect().await.unwrap();
        let mut client = pb::decisions_client::DecisionsClient::new(channel);
        let request = pb::WatchDecisionsRequest { filter: Some(filter.clone()), after_id: 0, from_now: true };
        let mut stream = client.watch(request).await.unwrap().into_inner();
        subscribers.push(tokio::spawn(async move {
            let mut received = Vec::with_capacity(RECORDS);
            while received.len() < RECORDS {
                let record = stream.message().await.unwrap().unwrap();
                if matches!(record.kind, Some(pb::record::Kind::Control(_))) {
                    received.push((record.id, Instant::now()));
                }
            }
            received
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut made = std::collections::HashMap::new();
    for i in 0..RECORDS {
        let at = Instant::now();
        let id = recorder.record(Record::Control(ControlRecord {
            tick: 0,
            at_millis: 0,
            caller: "bench".into(),
            change: format!("record {i}"),
            reason: String::new(),
        }));
        made.insert(id, at);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut last: std::collections::HashMap<u64, Instant> = std::collections::HashMap::new();
    for subscriber in subscribers {
        for (id, at) in subscriber.await.unwrap() {
            let latest = last.entry(id).or_insert(at);
            *latest = (*latest).max(at);
        }
    }
    let mut delays: Vec<Duration> = last.iter().map(|(id, at)| at.duration_since(made[id])).collect();
    delays.sort();
    println!(
        "watch fan-out: {SUBSCRIBERS} subscribers, {RECORDS} records: record to last subscriber p50 {:?}, p99 {:?}, max {:?}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1]
    );
}

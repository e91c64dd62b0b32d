//! Leader election against the API stand-in: of two replicas on one Lease only the leader
//! acts, the other takes over within the lease duration when the leader dies, and a leader
//! that cannot renew stops acting before its lease runs out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast::engine::ports::SystemClock;
use ballast::engine::record::Recorder;
use ballast::engine::{Engine, EngineConfig};
use ballast::kubernetes::{Elector, KubeCluster, KubeSettings, LeaderSettings, Leadership};
use ballast::policy::PolicyChain;
use ballast::runner::Runner;
use kube_standin::StandIn;
use serde_json::json;
use support::*;
use tokio::task::JoinHandle;

const LEASE: Duration = Duration::from_secs(2);

fn leader_settings() -> LeaderSettings {
    LeaderSettings {
        namespace: "kube-system".into(),
        lease_duration: LEASE,
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(250),
        ..LeaderSettings::default()
    }
}

struct Replica {
    elector: JoinHandle<()>,
    runner: JoinHandle<()>,
    leadership: Leadership,
}

impl Replica {
    /// Dies without a word: no lease release, as when its node vanishes.
    fn crash(&self) {
        self.elector.abort();
        self.runner.abort();
    }
}

/// A replica whose policy asks every tick to scale `general` to 5; the capacity side
/// records the call and changes nothing, so every tick of an acting replica shows.
async fn replica(standin: &StandIn, identity: &str, calls: Arc<Mutex<Vec<Call>>>) -> Replica {
    let cluster = KubeCluster::start(config(standin), KubeSettings::default()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), cluster.synced()).await.expect("caches sync");
    let mut direct = config(standin);
    direct.default_retry = false;
    let elector = Elector::new(kube::Client::try_from(direct).unwrap(), leader_settings(), identity).unwrap();
    let (leadership, elector) = elector.spawn(std::future::pending());
    let plugin = host()
        .load(scripted(json!([{"action": {"scale-to": {"group": "general", "size": 5}}, "reason": "demand"}])))
        .unwrap();
    let config = EngineConfig { tick_interval: Duration::from_millis(100), ..EngineConfig::default() };
    let engine = Engine::new(
        cluster.clone(),
        RecordingCapacity::new(identity, &["i-1"], calls),
        PolicyChain::new(vec![plugin]),
        config,
        Recorder::new(1000, None),
    )
    .with_gate(Arc::new({
        let leadership = leadership.clone();
        move || leadership.is_leader()
    }));
    let runner = Runner::new(engine, SystemClock).with_arrivals(cluster.arrivals());
    let runner = tokio::spawn(async move {
        runner.run(std::future::pending()).await;
    });
    Replica { elector, runner, leadership }
}

fn by(calls: &Mutex<Vec<Call>>, who: &str) -> Vec<Instant> {
    calls.lock().unwrap().iter().filter(|c| c.by == who).map(|c| c.at).collect()
}

#[test]
fn lease_timings_that_would_overlap_two_leaders_are_refused() {
    let bad = LeaderSettings { renew_deadline: Duration::from_secs(20), ..LeaderSettings::default() };
    assert_eq!(
        bad.validate().unwrap_err(),
        "leader.renew-deadline (20s) must be shorter than leader.lease-duration (15s), or a leader could still act after another took over"
    );
    assert!(LeaderSettings::default().validate().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_a_standby_takes_over_within_the_lease_duration() {
    let standin = StandIn::start().await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let a = replica(&standin, "replica-a", calls.clone()).await;
    let b = replica(&standin, "replica-b", calls.clone()).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (na, nb) = (by(&calls, "replica-a").len(), by(&calls, "replica-b").len());
    assert!(na + nb >= 5, "the leader acts every tick ({na} + {nb} calls)");
    assert!(na == 0 || nb == 0, "both replicas acted: {na} and {nb} calls");
    let (leader, standby, standby_name) = if na > 0 { (&a, &b, "replica-b") } else { (&b, &a, "replica-a") };
    let leader_name = if na > 0 { "replica-a" } else { "replica-b" };
    // What Status reports as the Lease's holder, on both replicas.
    assert_eq!(leader.leadership.holder().as_deref(), Some(leader_name));
    assert_eq!(standby.leadership.holder().as_deref(), Some(leader_name), "the standby names the leader");

    leader.crash();
    let crashed = Instant::now();
    let took = eventually(Duration::from_secs(5), async || !by(&calls, standby_name).is_empty())
        .await
        .expect("the standby takes over");
    let first = by(&calls, standby_name)[0];
    assert!(first.duration_since(crashed) <= LEASE + Duration::from_millis(600), "took over after {took:?}");
    let lease = standin.get("coordination.k8s.io/v1", "Lease", "kube-system", "ballast-leader").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], standby_name);
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(standby.leadership.holder().as_deref(), Some(standby_name), "the new leader names itself");
    standby.crash();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_acting_before_its_lease_expires() {
    let standin = StandIn::start().await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let a = replica(&standin, "replica-a", calls.clone()).await;
    eventually(Duration::from_secs(3), async || !by(&calls, "replica-a").is_empty()).await.expect("it leads");

    // The API server stops accepting lease writes (a partition, an overloaded server).
    let cut = Instant::now();
    standin.inject(Some("PUT"), "/leases/ballast-leader", 503, 1_000);
    tokio::time::sleep(LEASE + Duration::from_millis(500)).await;
    let last = *by(&calls, "replica-a").last().unwrap();
    assert!(last.duration_since(cut) < LEASE, "acted {:?} after the cut, past the lease", last.duration_since(cut));
    let quiet = by(&calls, "replica-a").into_iter().filter(|t| t.duration_since(cut) >= LEASE).count();
    assert_eq!(quiet, 0, "no action once the lease could have passed to another replica");

    // Writes succeed again: it renews and acts again.
    standin.clear_faults();
    let resumed = Instant::now();
    eventually(Duration::from_secs(3), async || by(&calls, "replica-a").last().is_some_and(|t| *t > resumed))
        .await
        .expect("it acts again once it renews");
    a.crash();
}

/// Wasm runs off the async runtime: with one worker thread and a plugin that computes for
/// 400 ms every tick, the Lease is still renewed within a 1 s renew deadline, throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_slow_plugin_on_a_one_worker_runtime_does_not_cost_the_lease() {
    let standin = StandIn::start().await.unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    let cluster = KubeCluster::start(config(&standin), KubeSettings::default()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), cluster.synced()).await.expect("caches sync");
    let mut direct = config(&standin);
    direct.default_retry = false;
    let settings = LeaderSettings {
        namespace: "kube-system".into(),
        lease_duration: Duration::from_millis(1500),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(200),
        ..LeaderSettings::default()
    };
    let elector = Elector::new(kube::Client::try_from(direct).unwrap(), settings, "busy").unwrap();
    let (leadership, _elector) = elector.spawn(std::future::pending());
    // Not deterministic: the 400 ms deadline, not fuel, ends each call of the endless loop.
    let host = ballast::policy::PolicyHost::new(ballast::policy::HostConfig {
        cache_dir: None,
        ..ballast::policy::HostConfig::default()
    })
    .unwrap();
    let mut slow = scripted(json!([]));
    slow.bytes =
        std::fs::read(std::path::PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("hostile_policy.wasm")).unwrap().into();
    slow.settings = json!({"mode": "endless-loop"});
    slow.limits.deadline_ms = 400;
    let plugin = host.load(slow).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let config = EngineConfig { tick_interval: Duration::from_millis(50), ..EngineConfig::default() };
    let engine = Engine::new(
        cluster.clone(),
        RecordingCapacity::new("busy", &["i-1"], calls),
        PolicyChain::new(vec![plugin]),
        config,
        Recorder::new(1000, None),
    )
    .with_gate(Arc::new({
        let leadership = leadership.clone();
        move || leadership.is_leader()
    }));
    let acquired = eventually(Duration::from_secs(5), async || leadership.is_leader()).await;
    assert!(acquired.is_some(), "leads before the plugin starts");
    let runner = Runner::new(engine, SystemClock);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(runner.run(async move {
        let _ = stopped.await;
    }));

    let started = Instant::now();
    let mut lapses = 0;
    while started.elapsed() < Duration::from_secs(5) {
        if !leadership.is_leader() {
            lapses += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let engine = running.await.unwrap();
    let ticks = engine.recorder().records().filter(|r| matches!(r, ballast::engine::record::Record::Tick(_))).count();
    let failed_by_deadline = engine
        .recorder()
        .records()
        .filter_map(|r| match r {
            ballast::engine::record::Record::Tick(t) => t.plugins.first().and_then(|p| p.error.clone()),
            _ => None,
        })
        .filter(|e| e.starts_with("deadline"))
        .count();
    assert!(failed_by_deadline >= 8, "the plugin ran for its 400 ms deadline on most of {ticks} ticks");
    assert_eq!(lapses, 0, "leadership lapsed while the plugin ran");
    let lease = standin.get("coordination.k8s.io/v1", "Lease", "kube-system", "ballast-leader").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "busy", "{lease}");
    assert!(lease["spec"]["leaseTransitions"].as_u64().unwrap_or(0) <= 1, "{lease}");
}

mod handover {
    use ballast::engine::handover::{Handover, HandoverError, HandoverStore};
    use ballast::kubernetes::ConfigMapHandover;
    use ballast::kubernetes::handover::{FlushError, KEY, MAX_BYTES};

    use super::*;

    fn store(standin: &StandIn) -> ConfigMapHandover {
        ConfigMapHandover::spawn(kube::Client::try_from(config(standin)).unwrap(), "kube-system", "ballast-handover")
    }

    fn left_at(at_millis: u64, policies: Option<serde_json::Value>) -> Handover {
        let mut state = ballast::engine::state::EngineState::default();
        state.group("general").last_scale_up = Some(at_millis);
        Handover { policies, ..state.handover(at_millis, "replica-a") }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_a_leader_leaves_in_the_configmap_another_replica_reads() {
        let standin = StandIn::start().await.unwrap();
        let (a, b) = (store(&standin), store(&standin));
        assert_eq!(b.read().await, Ok(None), "nothing left yet");
        let first = left_at(1_000, Some(json!({"at-millis": 1_000, "policies": {}})));
        a.leave(first.clone());
        a.flush(Duration::from_secs(5)).await.expect("written");
        assert_eq!(b.read().await, Ok(Some(first)));
        let map = standin.get("v1", "ConfigMap", "kube-system", "ballast-handover").unwrap();
        assert_eq!(map["metadata"]["labels"]["app.kubernetes.io/managed-by"], "ballast");

        // The next replaces it; policies' states past a ConfigMap's size are left out.
        let huge =
            json!({"at-millis": 2_000, "policies": {"binpack": {"digest": "ab", "state": "0".repeat(MAX_BYTES)}}});
        a.leave(left_at(2_000, Some(huge)));
        a.flush(Duration::from_secs(5)).await.expect("written");
        assert_eq!(b.read().await, Ok(Some(left_at(2_000, None))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_the_api_refuses_is_counted_and_reported_at_flush_and_the_next_is_written() {
        let standin = StandIn::start().await.unwrap();
        let a = store(&standin);
        let path = "/api/v1/namespaces/kube-system/configmaps";
        standin.inject(Some("POST"), path, 403, 1);
        a.leave(left_at(1_000, None));
        let flushed = a.flush(Duration::from_secs(5)).await;
        assert_eq!(flushed, Err(FlushError::Failed), "refused: said at once, not retried");
        assert_eq!((a.writes().written, a.writes().failed), (0, 1));
        a.leave(left_at(2_000, None));
        a.flush(Duration::from_secs(5)).await.expect("written");
        assert_eq!((a.writes().written, a.writes().failed), (1, 1));
        assert_eq!(store(&standin).read().await, Ok(Some(left_at(2_000, None))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handover_that_does_not_parse_is_named_and_a_server_error_is_retryable() {
        let standin = StandIn::start().await.unwrap();
        let map = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ballast-handover", "namespace": "kube-system"},
            "data": {KEY: "{\"at-millis\": \"noon\"}"},
        });
        standin.create(map).unwrap();
        let read = store(&standin).read().await;
        let Err(HandoverError::Unusable(why)) = read else { panic!("{read:?}") };
        assert!(why.starts_with("ConfigMap kube-system/ballast-handover, key handover.json: invalid type"), "{why}");

        standin.inject(Some("GET"), "/api/v1/namespaces/kube-system/configmaps/ballast-handover", 500, 10);
        let read = store(&standin).read().await;
        assert!(matches!(read, Err(HandoverError::Unavailable(_))), "{read:?}");
    }
}

//! Actuation against adapters that fail on purpose: each error kind is acted on as
//! `failure` says, and an engine whose gate closes mid-tick stops acting at once; spot
//! warnings and node repair on the same fakes, in their own modules.

mod asked;
mod daemons;
mod drain_order;
mod drift;
mod handover;
mod provisioning;
mod repair;
mod roll;
mod spot;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ballast_sdk::{FargatePricing, PlacementTarget, WorkloadRef};

use super::guard::Plan;
use super::policies::{Evaluation, PluginMode, Policies, PolicyCall, PolicyEntry, Proposed};
use super::ports::*;
use super::record::{ActionResult, FailureKind, Record, RemovalOutcome};
use super::{Engine, EngineConfig, TickOutcome};
use crate::guard::fixture::{NOW, World};

/// Answers every call of one kind with a configured error, and logs every call.
#[derive(Clone, Default)]
pub(crate) struct Faulty {
    view: Arc<Mutex<ClusterView>>,
    groups: Arc<Mutex<Vec<GroupView>>>,
    fail_terminate: Arc<Mutex<Option<AdapterErrorKind>>>,
    fail_set_size: Arc<Mutex<Option<AdapterErrorKind>>>,
    calls: Arc<Mutex<Vec<String>>>,
    interruptions: Arc<Mutex<Vec<Interruption>>>,
    /// The removal marks written, by node.
    marks: Arc<Mutex<std::collections::BTreeMap<String, RemovalMark>>>,
    /// The replacement claims written: the node each new node replaces.
    claims: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    /// What was announced (Kubernetes Events in a cluster), in order.
    announced: Arc<Mutex<Vec<Announcement>>>,
}

impl Faulty {
    fn call(&self, what: String, fail: &Mutex<Option<AdapterErrorKind>>) -> AdapterResult<()> {
        self.calls.lock().unwrap().push(what.clone());
        match *fail.lock().unwrap() {
            Some(kind) => Err(AdapterError::new(kind, what, "the server's own words")),
            None => Ok(()),
        }
    }
}

impl Cluster for Faulty {
    async fn announce(&self, announcement: Announcement) {
        self.announced.lock().unwrap().push(announcement);
    }
    async fn observe(&self) -> AdapterResult<ClusterView> {
        Ok(self.view.lock().unwrap().clone())
    }
    async fn mark_for_removal(&self, node: &str, mark: &RemovalMark) -> AdapterResult<()> {
        self.marks.lock().unwrap().insert(node.to_string(), mark.clone());
        self.call(format!("mark {node}"), &Mutex::new(None))
    }
    async fn clear_removal(&self, node: &str) -> AdapterResult<()> {
        self.call(format!("clear {node}"), &Mutex::new(None))
    }
    async fn claim_replacement(&self, node: &str, replaced: &str) -> AdapterResult<()> {
        self.claims.lock().unwrap().insert(node.to_string(), replaced.to_string());
        Ok(())
    }
    async fn evict(&self, namespace: &str, pod: &str) -> AdapterResult<Eviction> {
        self.calls.lock().unwrap().push(format!("evict {namespace}/{pod}"));
        Ok(Eviction::Evicted)
    }
    async fn place(&self, workload: &WorkloadRef, _: &PlacementTarget) -> AdapterResult<()> {
        self.call(format!("place {workload}"), &Mutex::new(None))
    }
}

impl Capacity for Faulty {
    async fn node_groups(&self) -> AdapterResult<Vec<GroupView>> {
        Ok(self.groups.lock().unwrap().clone())
    }
    async fn set_desired_size(&self, group: &str, size: u32) -> AdapterResult<()> {
        self.call(format!("set {group} to {size}"), &self.fail_set_size)
    }
    async fn terminate_instance(&self, group: &str, instance: &str) -> AdapterResult<()> {
        self.call(format!("terminate {instance} in {group}"), &self.fail_terminate)
    }
    async fn replace_instance(&self, group: &str, instance: &str) -> AdapterResult<()> {
        self.call(format!("replace {instance} in {group}"), &self.fail_terminate)
    }
    async fn fargate_pricing(&self) -> AdapterResult<FargatePricing> {
        Ok(FargatePricing::default())
    }
    async fn query_metric(&self, _: &MetricQuery) -> AdapterResult<Vec<MetricPoint>> {
        Ok(Vec::new())
    }
    async fn interruptions(&self) -> AdapterResult<Vec<Interruption>> {
        Ok(std::mem::take(&mut *self.interruptions.lock().unwrap()))
    }
}

/// Policies in plain Rust: one plugin, `scripted`, proposing the same decisions every tick.
#[derive(Clone, Default)]
struct Scripted(Vec<ballast_sdk::Decision>, Seen);

/// The snapshots the policies were handed, oldest first.
type Seen = Arc<Mutex<Vec<Arc<ballast_sdk::SnapshotData>>>>;

impl PolicyEntry for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn mode(&self) -> PluginMode {
        PluginMode::Enforce
    }
    fn digest(&self) -> &str {
        "0"
    }
    fn source(&self) -> &str {
        "test"
    }
}

impl Policies for Scripted {
    type Entry = Scripted;
    async fn evaluate(&mut self, snapshot: Arc<ballast_sdk::SnapshotData>) -> Evaluation {
        self.1.lock().unwrap().push(snapshot);
        let plugin: Arc<str> = Arc::from("scripted");
        let proposals =
            self.0.iter().map(|d| Proposed { plugin: plugin.clone(), decision: d.clone(), shadow: false }).collect();
        let call = PolicyCall { plugin, elapsed: Default::default(), decisions: self.0.len(), error: None };
        Evaluation { proposals, calls: vec![call] }
    }
    fn entries(&self) -> &[Scripted] {
        std::slice::from_ref(self)
    }
    fn insert(&mut self, entry: Scripted) -> Option<Scripted> {
        Some(std::mem::replace(self, entry))
    }
    fn remove(&mut self, _: &str) -> Option<Scripted> {
        Some(std::mem::take(self))
    }
    fn set_mode(&mut self, _: &str, _: PluginMode) -> bool {
        false
    }
    fn replace_all(&mut self, mut entries: Vec<Scripted>) {
        *self = entries.pop().unwrap_or_default();
    }
}

type TestEngine = Engine<Faulty, Faulty, Scripted>;

fn engine(world: &World) -> (Faulty, TestEngine) {
    let faulty = Faulty::default();
    *faulty.view.lock().unwrap() = world.view();
    *faulty.groups.lock().unwrap() = world.groups.clone();
    let engine = Engine::new(
        faulty.clone(),
        faulty.clone(),
        Scripted::default(),
        EngineConfig::default(),
        super::record::Recorder::new(100, None),
    );
    (faulty, engine)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

/// An empty node w9 whose drain is under way: the next tick terminates it.
fn draining(world: &mut World, engine: &mut TestEngine, faulty: &Faulty) {
    let node = crate::guard::fixture::node("w9", Some("i-w9"), Some("web"));
    world.cluster.nodes.push(node);
    *faulty.view.lock().unwrap() = world.view();
    engine.state.drains.insert("w9".into(), crate::guard::fixture::drain_since_now("web", "i-w9"));
}

fn removals(engine: &TestEngine) -> Vec<RemovalOutcome> {
    engine
        .recorder()
        .records()
        .filter_map(|r| match r {
            Record::Removal(r) => Some(r.outcome.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_instance_already_gone_completes_the_removal() {
    let mut world = World::default();
    let (faulty, mut engine) = engine(&world);
    draining(&mut world, &mut engine, &faulty);
    *faulty.fail_terminate.lock().unwrap() = Some(AdapterErrorKind::NotFound);
    block_on(engine.tick(NOW + 1000, super::record::Trigger::Manual));
    assert_eq!(removals(&engine), vec![RemovalOutcome::Completed { evicted: 0 }]);
    assert!(!engine.state.drains.contains_key("w9"));
}

#[test]
fn throttled_termination_is_counted_and_retried_next_tick() {
    let mut world = World::default();
    let (faulty, mut engine) = engine(&world);
    draining(&mut world, &mut engine, &faulty);
    *faulty.fail_terminate.lock().unwrap() = Some(AdapterErrorKind::Throttled);
    block_on(engine.tick(NOW + 1000, super::record::Trigger::Manual));
    assert!(removals(&engine).is_empty(), "not abandoned, not completed");
    assert_eq!(engine.throttled_calls(), 1);
    *faulty.fail_terminate.lock().unwrap() = None;
    block_on(engine.tick(NOW + 2000, super::record::Trigger::Manual));
    assert_eq!(removals(&engine), vec![RemovalOutcome::Completed { evicted: 0 }]);
    let terminations = faulty.calls.lock().unwrap().iter().filter(|c| c.starts_with("terminate")).count();
    assert_eq!(terminations, 2);
}

#[test]
fn a_refused_size_is_recorded_with_the_servers_message_and_kind() {
    let world = World::default();
    let (faulty, mut engine) = engine(&world);
    *faulty.fail_set_size.lock().unwrap() = Some(AdapterErrorKind::Refused);
    let obs = world.observe();
    let plan = Plan { scales: [("web".to_string(), 6)].into(), ..Plan::default() };
    let results = block_on(engine.actuate(&plan, &obs, NOW, 1));
    let result = results.for_actions(&[ballast_sdk::Action::ScaleTo { group: "web".into(), size: 6 }]);
    assert_eq!(
        result,
        ActionResult::Failed { error: "set web to 6: the server's own words".into(), kind: FailureKind::Refused }
    );
    assert!(engine.state.groups.get("web").and_then(|g| g.last_scale_up).is_none(), "no cooldown for a refusal");

    *faulty.fail_set_size.lock().unwrap() = Some(AdapterErrorKind::Throttled);
    let results = block_on(engine.actuate(&plan, &obs, NOW, 2));
    let result = results.for_actions(&[ballast_sdk::Action::ScaleTo { group: "web".into(), size: 6 }]);
    assert_eq!(result.failure_kind(), Some(FailureKind::Throttled));
    assert_eq!(engine.throttled_calls(), 1);
}

#[test]
fn a_gate_that_closes_mid_tick_stops_every_later_action() {
    let world = World::default();
    let (faulty, engine) = engine(&world);
    let allowed = Arc::new(AtomicUsize::new(1));
    let open = Arc::new(AtomicBool::new(true));
    let gate = {
        let (allowed, open) = (allowed.clone(), open.clone());
        // Leadership holds for one action, then is lost.
        Arc::new(move || {
            let left = allowed.load(Ordering::SeqCst);
            if left == 0 {
                open.store(false, Ordering::SeqCst);
                return false;
            }
            allowed.store(left - 1, Ordering::SeqCst);
            true
        })
    };
    let mut engine = engine.with_gate(gate);
    let obs = world.observe();
    let plan = Plan {
        scales: [("web".to_string(), 6), ("batch".to_string(), 2)].into(),
        removals: vec![("w1".into(), "web".into())],
        placements: vec![(crate::guard::fixture::web(), PlacementTarget::Fargate)],
    };
    let results = block_on(engine.actuate(&plan, &obs, NOW, 1));
    let calls = faulty.calls.lock().unwrap().clone();
    assert_eq!(calls, vec!["set batch to 2"], "one action while leading, none after");
    assert!(!open.load(Ordering::SeqCst));
    let stood_down = results.for_actions(&[ballast_sdk::Action::ScaleTo { group: "web".into(), size: 6 }]);
    assert!(stood_down.error().is_some_and(|e| e.contains("stopped leading")), "{stood_down:?}");
}

/// Proposes a scale-up, a removal and a move.
fn asking_for_everything() -> Scripted {
    let decisions = serde_json::json!([
        {"action": {"scale-to": {"group": "batch", "size": 2}}, "reason": "grow"},
        {"action": {"remove-nodes": {"nodes": ["w1"]}}, "reason": "shrink"},
        {"action": {"place": {"workload": {"kind": "deployment", "namespace": "shop", "name": "web"}, "target": "fargate"}}, "reason": "move"},
    ]);
    Scripted(serde_json::from_value(decisions).unwrap(), Seen::default())
}

#[test]
fn nothing_is_acted_on_in_dry_run_or_paused_not_even_a_marked_node() {
    for mode in [super::Mode::DryRun, super::Mode::Paused, super::Mode::Enforce] {
        let mut world = World::default();
        world.node_mut("w4").removal_mark = Some(RemovalMark {
            owner: "gone".into(),
            started_at_millis: NOW - 3_600_000,
            group: "web".into(),
            instance_id: "i-w4".into(),
            tick: 1,
            interrupted: false,
            hold_until_millis: None,
            released_by: None,
            cause: None,
            occupied: false,
        });
        let faulty = Faulty::default();
        *faulty.view.lock().unwrap() = world.view();
        *faulty.groups.lock().unwrap() = world.groups.clone();
        let config = EngineConfig { mode, ..EngineConfig::default() };
        let chain = asking_for_everything();
        let mut engine =
            Engine::new(faulty.clone(), faulty.clone(), chain, config, super::record::Recorder::new(100, None));
        let outcome = block_on(engine.tick(NOW, super::record::Trigger::Manual));
        let calls = faulty.calls.lock().unwrap().clone();
        match mode {
            super::Mode::Enforce => {
                assert_eq!(outcome.proposed, 3);
                assert!(calls.contains(&"set batch to 2".to_string()), "{calls:?}");
                assert!(calls.contains(&"clear w4".to_string()), "the stale mark is cleared: {calls:?}");
            }
            super::Mode::DryRun => {
                assert_eq!(outcome.proposed, 3, "evaluated and guarded");
                assert!(calls.is_empty(), "{mode}: {calls:?}");
                let results: Vec<ActionResult> = engine
                    .recorder()
                    .records()
                    .filter_map(|r| match r {
                        Record::Decision(d) => Some(d.result.clone()),
                        _ => None,
                    })
                    .collect();
                assert!(
                    results.iter().all(|r| matches!(r, ActionResult::DryRun | ActionResult::NotApplied)),
                    "{results:?}"
                );
            }
            super::Mode::Paused => {
                assert_eq!(outcome.proposed, 0, "no plugin runs while paused");
                assert!(calls.is_empty(), "{mode}: {calls:?}");
            }
        }
    }
}

/// A node of group `web` that joined at `joined`, Ready and empty.
pub(super) fn join(world: &mut World, name: &str, joined: u64) {
    let mut node = crate::guard::fixture::node(name, Some(&format!("i-{name}")), Some("web"));
    node.created_at_millis = joined;
    world.cluster.nodes.push(node);
    world.group_mut("web").instances.push(InstanceView {
        id: format!("i-{name}"),
        zone: "us-east-1a".into(),
        instance_type: "m5.large".into(),
        lifecycle: InstanceLifecycle::InService,
        image: None,
        template: None,
    });
}

/// Shows the engine the cluster and groups as `world` has them now, and forgets past calls.
/// The decisions the host (`ballast`) recorded so far, oldest first.
fn host_decisions(engine: &TestEngine) -> Vec<crate::record::DecisionRecord> {
    let decisions = engine.recorder().records().filter_map(|r| match r {
        Record::Decision(d) if d.plugin == crate::HOST => Some(d),
        _ => None,
    });
    decisions.collect()
}

fn show(world: &World, faulty: &Faulty) {
    *faulty.view.lock().unwrap() = world.view();
    *faulty.groups.lock().unwrap() = world.groups.clone();
    faulty.calls.lock().unwrap().clear();
}

fn tick_at(engine: &mut TestEngine, faulty: &Faulty, at: u64) -> Vec<String> {
    block_on(engine.tick(at, super::record::Trigger::Manual));
    faulty.calls.lock().unwrap().clone()
}

/// The placement cooldown the guard refuses a move for reaches the policies through the
/// engine's own snapshot (contract 0.1.8 `placement-cooldowns`): listed from the tick after
/// the move until the cooldown ends, and the same move refused until then.
#[test]
fn a_moved_workload_is_listed_in_the_snapshot_while_its_placement_cooldown_holds() {
    let world = World::default();
    let (faulty, engine) = engine(&world);
    let mut engine = engine.with_fargate(true);
    let decisions = serde_json::json!([
        {"action": {"place": {"workload": {"kind": "deployment", "namespace": "shop", "name": "web"}, "target": "fargate"}}, "reason": "move"},
    ]);
    let seen = Seen::default();
    engine.policies = Scripted(serde_json::from_value(decisions).unwrap(), seen.clone());
    let web = crate::guard::fixture::web();
    let cooldown = engine.config.guardrails.cooldown.placement.as_millis() as u64;
    let held = |at: u64| {
        let snapshot = seen.lock().unwrap().last().cloned().expect("the policies ran");
        assert_eq!(snapshot.taken_at_millis, at);
        snapshot.placement_cooldowns.iter().find(|c| c.workload == web).map(|c| c.allowed_at_millis)
    };
    assert_eq!(tick_at(&mut engine, &faulty, NOW), ["place deployment/shop/web"]);
    assert_eq!(held(NOW), None, "not moved before this tick");
    show(&world, &faulty);
    assert!(tick_at(&mut engine, &faulty, NOW + 60_000).is_empty(), "refused in the cooldown");
    assert_eq!(held(NOW + 60_000), Some(NOW + cooldown));
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + cooldown), ["place deployment/shop/web"]);
    assert_eq!(held(NOW + cooldown), None, "the cooldown has ended");
}

/// A group whose launch failed reaches the policies through the engine's own snapshot
/// (contract 0.1.9 `launch-failures`): listed with its back-off while that lasts, still
/// listed once it is over (the group is offered again, but failed lately), and gone once the
/// group delivers nodes it was asked for.
#[test]
fn a_group_whose_launch_failed_is_listed_until_it_delivers_nodes_asked_of_it() {
    let mut world = World::default();
    let failure =
        crate::ports::LaunchFailure { at_millis: NOW - 5_000, message: "InsufficientInstanceCapacity".into() };
    world.group_mut("web").last_launch_failure = Some(failure);
    let (faulty, mut engine) = engine(&world);
    let seen = Seen::default();
    engine.policies = Scripted(Vec::new(), seen.clone());
    let listed = |at: u64| {
        let snapshot = seen.lock().unwrap().last().cloned().expect("the policies ran");
        assert_eq!(snapshot.taken_at_millis, at);
        let failures = &snapshot.launch_failures;
        failures.iter().map(|f| (f.group.clone(), f.in_a_row, f.backing_off_until_millis)).collect::<Vec<_>>()
    };
    let initial = engine.config.guardrails.backoff.initial.as_millis() as u64;
    tick_at(&mut engine, &faulty, NOW);
    assert_eq!(listed(NOW), [("web".to_string(), 1, NOW + initial)], "counted this tick, backing off");
    let first = seen.lock().unwrap().last().cloned().unwrap().launch_failures[0].clone();
    assert_eq!(first.failed_at_millis, NOW);
    assert!(first.reason.contains("InsufficientInstanceCapacity"), "{first:?}");

    let after = NOW + initial;
    tick_at(&mut engine, &faulty, after);
    assert_eq!(listed(after), [("web".to_string(), 1, 0)], "the back-off is over; the failure is not forgotten");

    // A scale-up of one node, then that node Ready: the group delivered.
    world.group_mut("web").desired_size = 5;
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, after + 10_000);
    assert_eq!(listed(after + 10_000), [("web".to_string(), 1, 0)], "asked, not yet delivered");
    world.cluster.nodes.push(crate::guard::fixture::node("w5", Some("i-w5"), Some("web")));
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, after + 70_000);
    assert_eq!(listed(after + 70_000), [], "delivered: no longer listed");
}

//! Actuation against adapters that fail on purpose: each error kind is acted on as
//! `failure` says, and an engine whose gate closes mid-tick stops acting at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ballast_sdk::{FargatePricing, PlacementTarget, WorkloadRef};

use super::guard::Plan;
use super::policies::{Evaluation, PluginMode, Policies, PolicyCall, PolicyEntry, Proposed};
use super::ports::*;
use super::record::{ActionResult, FailureKind, Record, RemovalOutcome};
use super::state::Drain;
use super::{Engine, EngineConfig};
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
    async fn announce(&self, _: Announcement) {}
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
    let drain = Drain {
        group: "web".into(),
        instance_id: "i-w9".into(),
        started_at: NOW,
        started_tick: 1,
        evicted: 0,
        interrupted: false,
        hold: None,
        released_by: None,
    };
    engine.state.drains.insert("w9".into(), drain);
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

fn warn(id: &str, at: u64) -> Interruption {
    Interruption { instance_id: id.into(), at_millis: at, deadline_millis: at + Interruption::NOTICE_MS }
}

/// Shows the engine the cluster and groups as `world` has them now, and forgets past calls.
fn show(world: &World, faulty: &Faulty) {
    *faulty.view.lock().unwrap() = world.view();
    *faulty.groups.lock().unwrap() = world.groups.clone();
    faulty.calls.lock().unwrap().clear();
}

/// A node of group `web` that joined at `joined`, Ready and empty.
fn join(world: &mut World, name: &str, joined: u64) {
    let mut node = crate::guard::fixture::node(name, Some(&format!("i-{name}")), Some("web"));
    node.created_at_millis = joined;
    world.cluster.nodes.push(node);
    world.group_mut("web").instances.push(InstanceView {
        id: format!("i-{name}"),
        zone: "us-east-1a".into(),
        instance_type: "m5.large".into(),
        lifecycle: InstanceLifecycle::InService,
    });
}

/// EC2 took `node`'s instance: the node and its pod `pod` are gone.
fn reclaimed(world: &mut World, node: &str, pod: &str) {
    world.cluster.nodes.retain(|n| &*n.name != node);
    world.pods.retain(|p| &*p.name != pod);
}

fn tick_at(engine: &mut TestEngine, faulty: &Faulty, at: u64) -> Vec<String> {
    block_on(engine.tick(at, super::record::Trigger::Manual));
    faulty.calls.lock().unwrap().clone()
}

#[test]
fn a_spot_warning_cordons_its_node_starts_the_replacement_and_evicts_once_the_replacement_is_ready() {
    let mut world = World::default();
    // Too young for any scale-down: the guardrails do not hold an interruption back.
    world.node_mut("w2").created_at_millis = NOW - 60_000;
    let (faulty, mut engine) = engine(&world);
    faulty.interruptions.lock().unwrap().extend([warn("i-w2", NOW), warn("i-unknown", NOW)]);
    let calls = tick_at(&mut engine, &faulty, NOW);
    assert_eq!(calls, ["set web to 5", "mark w2"], "replacement and cordon; the pods stay while it boots");
    assert!(engine.state.drains.get("w2").is_some_and(|d| d.interrupted));
    let told = engine.state.cooldown("web", &engine.config.guardrails.cooldown);
    assert_eq!(told.last_scale_up_millis, Some(NOW), "the replacement is a growth the cooldowns count from");
    let records: Vec<_> = engine
        .recorder()
        .records()
        .filter_map(|r| match r {
            Record::Decision(d) if d.plugin == super::HOST => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 1, "the unknown instance is not a decision: {records:?}");
    assert_eq!(records[0].result, ActionResult::Started);
    let reason = &records[0].reason;
    assert!(reason.contains("spot interruption warning for i-w2"), "{reason}");
    assert!(reason.contains("web 4 -> 5"), "{reason}");
    assert!(reason.contains("its pods stay until the replacement is Ready, 45 s before the reclaim"), "{reason}");
    // The policies of that tick saw the replacement's growth and the warned node going.
    let seen = engine.policies.1.lock().unwrap().last().cloned().expect("the policies ran");
    let web = seen.node_groups.iter().find(|g| g.id == "web").unwrap();
    assert_eq!(web.desired_size, 5, "the raised size");
    let cooldown = seen.group_cooldowns.iter().find(|c| c.group == "web").unwrap();
    assert_eq!(cooldown.last_scale_up_millis, Some(NOW), "the growth, for the cooldowns");
    assert!(seen.nodes.iter().find(|n| n.name == "w2").is_some_and(|n| n.cordoned), "w2 is going");

    // The replacement has joined but is not Ready: still held.
    join(&mut world, "w5", NOW + 40_000);
    world.node_mut("w5").ready = false;
    world.group_mut("web").desired_size = 5;
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 60_000), Vec::<String>::new());
    // Ready: the pods go now, 15 s before the latest moment.
    world.node_mut("w5").ready = true;
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 60_000), ["mark w2", "evict shop/web-2"], "the mark loses its hold");

    // EC2 reclaims the instance before the drain could terminate it: the group, raised for
    // the replacement, would also replace the dead one, so it is lowered again.
    reclaimed(&mut world, "w2", "web-2");
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 120_000), ["set web to 4"]);
    assert_eq!(removals(&engine), vec![RemovalOutcome::Completed { evicted: 1 }]);
}

#[test]
fn held_evictions_go_at_the_margin_before_the_reclaim_when_no_replacement_is_ready() {
    let world = World::default();
    let (faulty, mut engine) = engine(&world);
    faulty.interruptions.lock().unwrap().push(warn("i-w2", NOW));
    assert_eq!(tick_at(&mut engine, &faulty, NOW), ["set web to 5", "mark w2"]);
    // A node that was there before the warning is no replacement, however empty.
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 74_000), Vec::<String>::new(), "76 s before the reclaim");
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 75_000), ["mark w2", "evict shop/web-2"], "45 s before the reclaim");
}

/// w3 warned at `NOW` and w1 ten seconds later, both held; w5 joins at `NOW + 20 s` and,
/// once Ready at `NOW + 60 s`, releases w3, the first warned.
fn two_warned_and_the_first_released(world: &mut World) -> (Faulty, TestEngine) {
    let (faulty, mut engine) = engine(world);
    faulty.interruptions.lock().unwrap().push(warn("i-w3", NOW));
    tick_at(&mut engine, &faulty, NOW);
    faulty.interruptions.lock().unwrap().push(warn("i-w1", NOW + 10_000));
    world.group_mut("web").desired_size = 5;
    show(world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 10_000), ["set web to 6", "mark w1"]);
    join(world, "w5", NOW + 20_000);
    world.group_mut("web").desired_size = 6;
    show(world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 60_000), ["mark w3", "evict shop/web-3"], "w3 was warned first");
    (faulty, engine)
}

#[test]
fn each_replacement_releases_one_held_node_in_the_order_they_were_warned() {
    let mut world = World::default();
    let (faulty, mut engine) = two_warned_and_the_first_released(&mut world);
    // w3's drain is over and its node gone: w5 still replaced it, so w1 waits for its own.
    reclaimed(&mut world, "w3", "web-3");
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 65_000), ["set web to 5"]);
    join(&mut world, "w6", NOW + 30_000);
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 70_000), ["mark w1", "evict shop/web-1"]);
}

#[test]
fn a_restarted_engine_keeps_holding_a_warned_nodes_pods_until_its_replacement_is_ready() {
    let mut world = World::default();
    let (faulty, mut first) = engine(&world);
    faulty.interruptions.lock().unwrap().push(warn("i-w2", NOW));
    assert_eq!(tick_at(&mut first, &faulty, NOW), ["set web to 5", "mark w2"]);
    drop(first);

    // A new process (or a new leader) reads the mark on the node and adopts the drain.
    world.node_mut("w2").removal_mark = faulty.marks.lock().unwrap().get("w2").cloned();
    world.node_mut("w2").cordoned = true;
    world.group_mut("web").desired_size = 5;
    let (faulty, mut restarted) = engine(&world);
    assert_eq!(tick_at(&mut restarted, &faulty, NOW + 30_000), Vec::<String>::new(), "still held");
    join(&mut world, "w5", NOW + 40_000);
    show(&world, &faulty);
    assert_eq!(tick_at(&mut restarted, &faulty, NOW + 60_000), ["mark w2", "evict shop/web-2"], "w5 replaces it");
    let released = faulty.marks.lock().unwrap().get("w2").cloned().expect("the mark written again");
    assert_eq!((released.interrupted, released.hold_until_millis), (true, None), "{released:?}");
    assert_eq!(released.released_by.as_deref(), Some("w5"), "the mark names the replacement");

    // The instance is reclaimed before the drain ends: the adopted drain still knows the
    // group was raised for the replacement, and lowers it again.
    reclaimed(&mut world, "w2", "web-2");
    show(&world, &faulty);
    assert_eq!(tick_at(&mut restarted, &faulty, NOW + 120_000), ["set web to 4"]);
}

/// A new engine on `world`, where w5 replaced w3 and w1 is held: w5 does not release w1,
/// and w6, joining after w1's warning, does.
fn restart_and_see_w1_wait_for_its_own_replacement(world: &mut World) {
    let (faulty, mut restarted) = engine(world);
    let calls = tick_at(&mut restarted, &faulty, NOW + 65_000);
    assert!(!calls.iter().any(|c| c.contains("w1")), "w5 replaced w3, not w1 as well: {calls:?}");
    join(world, "w6", NOW + 30_000);
    show(world, &faulty);
    let calls = tick_at(&mut restarted, &faulty, NOW + 70_000);
    assert!(calls.contains(&"evict shop/web-1".to_string()), "w6 replaces w1: {calls:?}");
}

#[test]
fn after_a_restart_a_replacement_that_released_one_drain_does_not_release_another() {
    let mut world = World::default();
    let (faulty, first) = two_warned_and_the_first_released(&mut world);
    let marks = faulty.marks.lock().unwrap().clone();
    drop(first);

    // A new process (or a new leader) reads both marks: w3 released by w5, w1 still held.
    for node in ["w3", "w1"] {
        world.node_mut(node).removal_mark = marks.get(node).cloned();
        world.node_mut(node).cordoned = true;
    }
    restart_and_see_w1_wait_for_its_own_replacement(&mut world);
}

#[test]
fn a_replacement_whose_drained_node_is_gone_still_releases_no_other_drain_after_a_restart() {
    let mut world = World::default();
    let (faulty, first) = two_warned_and_the_first_released(&mut world);
    assert_eq!(faulty.claims.lock().unwrap().get("w5").map(String::as_str), Some("w3"), "claimed on w5");
    let (marks, claims) = (faulty.marks.lock().unwrap().clone(), faulty.claims.lock().unwrap().clone());
    drop(first);

    // w3's instance is reclaimed, its mark gone with it; then a new process starts. Only
    // w1's mark and the claim on w5 tell it what happened.
    reclaimed(&mut world, "w3", "web-3");
    world.node_mut("w1").removal_mark = marks.get("w1").cloned();
    world.node_mut("w1").cordoned = true;
    world.node_mut("w5").replaces = claims.get("w5").cloned();
    restart_and_see_w1_wait_for_its_own_replacement(&mut world);
}

#[test]
fn with_no_replacement_or_a_margin_of_the_whole_notice_the_pods_are_evicted_at_once() {
    // The group is at its max-size: nothing will come to take the pods.
    let mut world = World::default();
    world.group_mut("web").max_size = 4;
    let (faulty, mut capped) = engine(&world);
    faulty.interruptions.lock().unwrap().push(warn("i-w2", NOW));
    assert_eq!(tick_at(&mut capped, &faulty, NOW), ["mark w2", "evict shop/web-2"]);

    let world = World::default();
    let (faulty, mut eager) = engine(&world);
    eager.config.guardrails.spot_eviction_margin = std::time::Duration::from_secs(120);
    faulty.interruptions.lock().unwrap().push(warn("i-w2", NOW));
    assert_eq!(tick_at(&mut eager, &faulty, NOW), ["set web to 5", "mark w2", "evict shop/web-2"]);
}

/// `w2` stopped being Ready `minutes` ago, long after it registered.
fn lost(world: &mut World, node: &str, minutes: u64) {
    let node = world.node_mut(node);
    node.ready = false;
    node.unready_since_millis = Some(NOW - minutes * 60_000);
}

fn host_decisions(engine: &TestEngine) -> Vec<super::record::DecisionRecord> {
    engine
        .recorder()
        .records()
        .filter_map(|r| match r {
            Record::Decision(d) if d.plugin == super::HOST => Some(d.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_not_ready_for_twenty_minutes_is_replaced_once_with_its_groups_size_kept() {
    let mut world = World::default();
    lost(&mut world, "w2", 21);
    lost(&mut world, "w3", 19);
    let (faulty, mut engine) = engine(&world);
    let calls = tick_at(&mut engine, &faulty, NOW);
    assert!(calls.contains(&"replace i-w2 in web".to_string()), "{calls:?}");
    assert!(!calls.iter().any(|c| c.contains("i-w3")), "19 minutes is not 20: {calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("set web")), "the size is kept: {calls:?}");
    let records = host_decisions(&engine);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].result, ActionResult::Done);
    let reason = &records[0].reason;
    let since =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(NOW - 21 * 60_000));
    assert!(reason.contains(&format!("node w2 has not been Ready since {since} (limit 20m)")), "{reason}");
    assert!(reason.contains("group web keeps its size, so a replacement launches"), "{reason}");
    // The node object lingers until the cloud controller deletes it: replaced once.
    faulty.calls.lock().unwrap().clear();
    let calls = tick_at(&mut engine, &faulty, NOW + 10_000);
    assert!(!calls.iter().any(|c| c.contains("i-w2")), "{calls:?}");
}

/// A replacement the cloud refuses (an IAM role without TerminateInstanceInGroup) is tried
/// again every tick, and its records fold: the first, then one closing count.
#[test]
fn a_refused_repair_is_retried_every_tick_and_recorded_once_with_a_count() {
    let mut world = World::default();
    lost(&mut world, "w2", 21);
    let (faulty, mut engine) = engine(&world);
    *faulty.fail_terminate.lock().unwrap() = Some(AdapterErrorKind::Failed);
    for n in 0..10 {
        let calls = tick_at(&mut engine, &faulty, NOW + n * 10_000);
        assert!(calls.contains(&"replace i-w2 in web".to_string()), "tick {n}: {calls:?}");
        faulty.calls.lock().unwrap().clear();
    }
    *faulty.fail_terminate.lock().unwrap() = None;
    tick_at(&mut engine, &faulty, NOW + 100_000);
    engine.recorder().close_runs(NOW + 100_000);
    let records = host_decisions(&engine);
    let results: Vec<(&str, Option<u64>)> =
        records.iter().map(|r| (r.result.name(), r.repeated.as_ref().map(|r| r.count))).collect();
    // The closing record is written when the run ends: after the tick that broke it.
    assert_eq!(results, [("failed", None), ("done", None), ("failed", Some(10))], "{records:#?}");
}

/// A group backing off cannot launch: a replacement would not come (or come up), so its
/// broken nodes go with a decrement, as Cluster Autoscaler removes a node that did not come
/// up; at min-size Auto Scaling would launch one anyway, so the rest are replaced.
#[test]
fn in_a_group_backing_off_a_broken_node_goes_without_a_replacement_down_to_min_size() {
    let mut world = World::default();
    lost(&mut world, "w2", 30);
    lost(&mut world, "w3", 30);
    world.group_mut("web").min_size = 3;
    let (faulty, mut engine) = engine(&world);
    let backoff = super::state::BackoffState { until: NOW + 600_000, reason: "launch failed".into() };
    engine.state.group("web").backoff = Some(backoff);
    let calls = tick_at(&mut engine, &faulty, NOW);
    assert!(calls.contains(&"terminate i-w2 in web".to_string()), "{calls:?}");
    assert!(calls.contains(&"replace i-w3 in web".to_string()), "at min-size: {calls:?}");
    let records = host_decisions(&engine);
    let shrunk = records.iter().find(|r| r.reason.contains("node w2")).expect("w2's record");
    assert!(shrunk.reason.contains("group web shrinks by one: it cannot launch now (backing off)"), "{shrunk:?}");
    assert_eq!(shrunk.result, ActionResult::Done);
}

/// A node that registered 16 minutes ago and never became Ready is a launch that failed:
/// once its group backs off for it (after `backoff.timeout`, 15 minutes) it goes with a
/// decrement, as Cluster Autoscaler's `max-node-provision-time` removes it, without waiting
/// for the 20 minutes a lost node gets.
#[test]
fn a_node_that_never_came_up_goes_with_a_decrement_once_its_group_backs_off() {
    let mut world = World::default();
    let node = world.node_mut("w2");
    node.ready = false;
    node.created_at_millis = NOW - 16 * 60_000;
    node.unready_since_millis = Some(NOW - 16 * 60_000 + 10_000);
    let (faulty, mut waiting) = engine(&world);
    let calls = tick_at(&mut waiting, &faulty, NOW);
    assert!(!calls.iter().any(|c| c.contains("i-w2")), "no back-off, under 20 minutes: {calls:?}");

    let (faulty, mut failed) = engine(&world);
    let backoff = super::state::BackoffState { until: NOW + 300_000, reason: "not Ready within 15m".into() };
    failed.state.group("web").backoff = Some(backoff);
    let calls = tick_at(&mut failed, &faulty, NOW);
    assert!(calls.contains(&"terminate i-w2 in web".to_string()), "{calls:?}");
}

#[test]
fn a_groups_scaledownunreadytime_tag_sets_its_own_limit_and_zero_turns_repair_off() {
    let mut world = World::default();
    lost(&mut world, "w2", 6);
    world.group_mut("web").options.scale_down_unready_seconds = Some(300);
    let (faulty, mut tagged) = engine(&world);
    assert!(tick_at(&mut tagged, &faulty, NOW).contains(&"replace i-w2 in web".to_string()));

    let mut world = World::default();
    lost(&mut world, "w2", 600);
    let (faulty, mut never) = engine(&world);
    never.config.guardrails.replace_unready_after = std::time::Duration::ZERO;
    assert!(!tick_at(&mut never, &faulty, NOW).iter().any(|c| c.starts_with("replace")));
}

#[test]
fn no_node_is_replaced_while_most_of_the_cluster_is_unready() {
    let mut world = World::default();
    for node in ["w1", "w2", "w3", "w4"] {
        lost(&mut world, node, 30);
    }
    let (faulty, mut engine) = engine(&world);
    assert!(!tick_at(&mut engine, &faulty, NOW).iter().any(|c| c.starts_with("replace")));
    assert!(host_decisions(&engine).is_empty());
}

/// A node that was Ready and is lost is not a launch that failed: its group does not back
/// off (which would stop it growing), while a node that never became Ready still backs off.
#[test]
fn a_lost_node_does_not_put_its_group_into_back_off_but_one_that_never_became_ready_does() {
    for (never_ready, backs_off) in [(false, false), (true, true)] {
        let mut world = World::default();
        lost(&mut world, "w2", 30);
        if never_ready {
            world.node_mut("w2").created_at_millis = NOW - 30 * 60_000;
        }
        let (faulty, mut engine) = engine(&world);
        engine.config.guardrails.replace_unready_after = std::time::Duration::ZERO;
        tick_at(&mut engine, &faulty, NOW);
        tick_at(&mut engine, &faulty, NOW + 16 * 60_000);
        let backing_off = engine.state.groups.get("web").is_some_and(|g| g.backing_off(NOW + 16 * 60_000).is_some());
        assert_eq!(backing_off, backs_off, "never ready: {never_ready}");
    }
}

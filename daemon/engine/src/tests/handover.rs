//! A change of leader: what one replica did constrains the next, through what it left.

use super::*;
use crate::handover::{HandoverError, MemoryHandover};

/// A replica of `world` whose one plugin proposes `decisions` every tick, leading while
/// `leads` says so, leaving and taking handovers through `store` if any.
fn replica(
    world: &World,
    decisions: serde_json::Value,
    store: Option<&MemoryHandover>,
    leads: &Arc<AtomicBool>,
) -> (Faulty, TestEngine) {
    let faulty = Faulty::default();
    *faulty.view.lock().unwrap() = world.view();
    *faulty.groups.lock().unwrap() = world.groups.clone();
    let chain = Scripted(serde_json::from_value(decisions).unwrap(), Seen::default());
    let recorder = crate::record::Recorder::new(100, None);
    let leads = leads.clone();
    let mut engine = Engine::new(faulty.clone(), faulty.clone(), chain, EngineConfig::default(), recorder)
        .with_fargate(true)
        .with_identity("replica-a")
        .with_gate(Arc::new(move || leads.load(Ordering::SeqCst)));
    if let Some(store) = store {
        engine = engine.with_handover(Arc::new(store.clone()));
    }
    (faulty, engine)
}

fn grow_and_move() -> serde_json::Value {
    serde_json::json!([
        {"action": {"scale-to": {"group": "batch", "size": 2}}, "reason": "grow"},
        {"action": {"place": {"workload": {"kind": "deployment", "namespace": "shop", "name": "web"}, "target": "fargate"}}, "reason": "move"},
    ])
}

fn shrink_and_move_back() -> serde_json::Value {
    serde_json::json!([
        {"action": {"scale-to": {"group": "batch", "size": 1}}, "reason": "shrink"},
        {"action": {"place": {"workload": {"kind": "deployment", "namespace": "shop", "name": "web"}, "target": {"ec2": null}}}, "reason": "move back"},
    ])
}

/// Replica a grows batch and moves web to Fargate, leaving a handover in `store`; the world
/// is then as a's actions made it.
fn first_leader_acts(world: &mut World, store: &MemoryHandover) {
    let leads = Arc::new(AtomicBool::new(true));
    let (faulty, mut a) = replica(world, grow_and_move(), Some(store), &leads);
    let calls = tick_at(&mut a, &faulty, NOW);
    assert!(calls.contains(&"set batch to 2".to_string()), "{calls:?}");
    assert!(calls.contains(&"place deployment/shop/web".to_string()), "{calls:?}");
    world.group_mut("batch").desired_size = 2;
    world.cluster.workloads[0].placement = ballast_sdk::Placement::Fargate;
}

/// Replica b and what its first tick as leader did.
struct SecondLeader {
    faulty: Faulty,
    engine: TestEngine,
    calls: Vec<String>,
    outcome: TickOutcome,
}

/// Replica b, standing by at `NOW + 30 s`, then leading from `NOW + 60 s` with a plugin that
/// undoes what a did.
fn second_leader(world: &World, store: Option<&MemoryHandover>) -> SecondLeader {
    let leads = Arc::new(AtomicBool::new(false));
    let (faulty, mut engine) = replica(world, shrink_and_move_back(), store, &leads);
    let standby = block_on(engine.tick(NOW + 30_000, crate::record::Trigger::Manual));
    assert!(standby.standby);
    leads.store(true, Ordering::SeqCst);
    let outcome = block_on(engine.tick(NOW + 60_000, crate::record::Trigger::Manual));
    let calls = faulty.calls.lock().unwrap().clone();
    SecondLeader { faulty, engine, calls, outcome }
}

#[test]
fn a_new_leader_keeps_the_cooldowns_the_last_one_started() {
    let mut world = World::default();
    let store = MemoryHandover::default();
    first_leader_acts(&mut world, &store);
    let left = store.left().expect("a handover left");
    assert_eq!(left.left_by, "replica-a");
    assert_eq!(left.groups["batch"].last_scale_up, Some(NOW));

    let b = second_leader(&world, Some(&store));
    assert_eq!(b.outcome.refused, 2, "a minute after a's scale-up and move: {:?}", b.outcome);
    assert!(b.calls.is_empty(), "{:?}", b.calls);

    // Without the handover, b knows of neither and undoes both at once.
    let calls = second_leader(&world, None).calls;
    assert!(calls.contains(&"set batch to 1".to_string()), "{calls:?}");
    assert!(calls.contains(&"place deployment/shop/web".to_string()), "{calls:?}");
}

/// What replica a left, in a store that answers b's first read with `error`.
fn left_then_read_fails(error: HandoverError) -> (World, MemoryHandover) {
    let mut world = World::default();
    let store = MemoryHandover::default();
    first_leader_acts(&mut world, &store);
    store.fail_reads(Some(error));
    (world, store)
}

#[test]
fn a_new_leader_that_cannot_read_the_handover_acts_on_nothing_until_it_can() {
    let (world, store) = left_then_read_fails(HandoverError::Unavailable("the API server timed out".into()));
    let mut b = second_leader(&world, Some(&store));
    assert!(b.calls.is_empty(), "{:?}", b.calls);
    let error = b.outcome.error.expect("the tick failed");
    assert!(error.contains("could not be read, retried next tick: the API server timed out"), "{error}");

    store.fail_reads(None);
    let calls = tick_at(&mut b.engine, &b.faulty, NOW + 70_000);
    assert!(calls.is_empty(), "the cooldowns a left hold: {calls:?}");
    assert!(b.engine.state.groups["batch"].last_scale_up == Some(NOW));
}

#[test]
fn a_handover_that_does_not_parse_is_passed_over_and_the_new_leader_acts() {
    let (world, store) =
        left_then_read_fails(HandoverError::Unusable("handover.json: expected value at line 1".into()));
    let b = second_leader(&world, Some(&store));
    assert!(b.outcome.error.is_none(), "{:?}", b.outcome);
    assert!(b.calls.contains(&"set batch to 1".to_string()), "{:?}", b.calls);
}

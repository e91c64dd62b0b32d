//! A group replaced node by node, asked through the control API: oldest first, at most
//! `at-once` leaving, each replacement launched before its node's pods move; carried over by
//! the handover; held while the group backs off; ended with a control record.

use super::*;
use crate::control::{Asked, Change, ChangeError};
use crate::record::ControlRecord;

fn ops() -> Asked {
    Asked { caller: "ops".into(), reason: "AMI 2026.11".into() }
}

/// Group `web` with w1 (the oldest, running web-1) and w2 (running web-2), desired 2.
pub(super) fn two_nodes() -> World {
    let mut world = World::default();
    for gone in ["w3", "w4"] {
        world.cluster.nodes.retain(|n| &*n.name != gone);
        world.group_mut("web").instances.retain(|i| i.id != format!("i-{gone}"));
    }
    world.pods.retain(|p| &*p.name == "web-1" || &*p.name == "web-2");
    world.group_mut("web").desired_size = 2;
    world.node_mut("w2").created_at_millis = 1_000;
    world
}

fn controls(engine: &TestEngine) -> Vec<ControlRecord> {
    engine
        .recorder()
        .records()
        .filter_map(|r| match r {
            Record::Control(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Replaces `node` (its replacement `new` launched at `at`): the hold is released once `new`
/// is Ready, the pod moves to it, the node is terminated with a decrement and goes.
fn replace(world: &mut World, engine: &mut TestEngine, faulty: &Faulty, node: &str, pod: &str, new: &str, at: u64) {
    join(world, new, at);
    show(world, faulty);
    let calls = tick_at(engine, faulty, at + 20_000);
    assert_eq!(calls, [format!("mark {node}"), format!("evict shop/{pod}")], "{node}'s pods move once {new} is Ready");
    world.pod_mut(pod).node = Some(new.into());
    show(world, faulty);
    let calls = tick_at(engine, faulty, at + 25_000);
    assert_eq!(calls, [format!("terminate i-{node} in web")], "emptied, {node} goes");
    world.cluster.nodes.retain(|n| &*n.name != node);
    world.group_mut("web").instances.retain(|i| i.id != format!("i-{node}"));
    world.group_mut("web").desired_size -= 1;
    show(world, faulty);
}

#[test]
fn a_group_is_replaced_oldest_node_first_one_at_a_time_each_replacement_launched_before_the_pods_move() {
    let mut world = two_nodes();
    let (faulty, mut engine) = engine(&world);
    tick_at(&mut engine, &faulty, NOW - 10_000);
    let asked =
        engine.change(Change::ReplaceGroup { group: "web".into(), at_once: 1, dry_run: false }, &ops(), NOW - 5_000);
    assert_eq!(asked, Ok("replace group web: 2 node(s), 1 at a time, oldest first: w1, w2".into()));
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW), ["set web to 3", "mark w1"], "the oldest, its replacement first");
    world.group_mut("web").desired_size = 3;
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 10_000), Vec::<String>::new(), "one at a time: w2 waits");

    replace(&mut world, &mut engine, &faulty, "w1", "web-1", "r1", NOW + 30_000);
    // w1's drain ends (terminated with a decrement) and then w2's turn comes; r1, launched
    // for the roll, is not replaced.
    let calls = tick_at(&mut engine, &faulty, NOW + 60_000);
    assert!(calls.contains(&"set web to 3".to_string()) && calls.contains(&"mark w2".to_string()), "{calls:?}");
    assert!(!calls.iter().any(|c| c == "mark r1"), "{calls:?}");
    world.group_mut("web").desired_size = 3;
    replace(&mut world, &mut engine, &faulty, "w2", "web-2", "r2", NOW + 90_000);
    tick_at(&mut engine, &faulty, NOW + 120_000);
    assert!(engine.state.rolls.is_empty(), "the roll ended");
    let last = controls(&engine).pop().unwrap();
    assert_eq!(last.change, "replace group web: done, 2 replaced", "{last:?}");
    assert_eq!(last.reason, "asked by ops: AMI 2026.11");
    let reasons: Vec<String> = host_decisions(&engine).into_iter().map(|d| d.reason).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("replacement asked by ops (replace group web: AMI 2026.11): cordoned w1"));
}

#[test]
fn a_roll_survives_a_change_of_leader_and_waits_while_its_group_backs_off() {
    let world = two_nodes();
    let (faulty, mut engine) = engine(&world);
    // Room for both in the disruption budget (10% of two nodes allows one).
    let room = |e: &mut TestEngine| e.config.guardrails.disruption_budget.percent = 100.0;
    room(&mut engine);
    tick_at(&mut engine, &faulty, NOW - 10_000);
    engine
        .change(Change::ReplaceGroup { group: "web".into(), at_once: 2, dry_run: false }, &ops(), NOW - 5_000)
        .unwrap();
    let left = engine.state.handover(NOW - 5_000, "a");
    assert_eq!(left.rolls.get("web").map(|r| (r.at_once, r.caller.as_str())), Some((2, "ops")));

    let (faulty, mut next) = super::engine(&world);
    room(&mut next);
    next.state.take_over(&left);
    next.state.group("web").backoff =
        Some(crate::state::BackoffState { until: NOW + 60_000, reason: "no capacity".into() });
    assert_eq!(tick_at(&mut next, &faulty, NOW), Vec::<String>::new(), "a replacement could not launch now");
    show(&world, &faulty);
    let calls = tick_at(&mut next, &faulty, NOW + 60_000);
    assert_eq!(calls, ["set web to 3", "mark w1", "set web to 4", "mark w2"], "two at once");
}

#[test]
fn replacing_a_group_is_refused_for_an_unknown_group_or_twice_and_can_be_cancelled() {
    let mut world = two_nodes();
    world.template_mut("web-2").do_not_disrupt = true;
    let (faulty, mut engine) = engine(&world);
    let group = |g: &str| Change::ReplaceGroup { group: g.into(), at_once: 1, dry_run: false };
    assert_eq!(engine.change(group("web"), &ops(), NOW), Err(ChangeError::NoSuchGroup("web".into())), "nothing seen");
    tick_at(&mut engine, &faulty, NOW - 10_000);
    assert_eq!(engine.change(group("nope"), &ops(), NOW), Err(ChangeError::NoSuchGroup("nope".into())));
    let asked = engine.change(group("web"), &ops(), NOW).unwrap();
    assert!(
        asked.ends_with("w1; kept: node w2: pod shop/web-2 is annotated karpenter.sh/do-not-disrupt=true"),
        "{asked}"
    );
    let twice = engine.change(group("web"), &ops(), NOW);
    assert_eq!(twice, Err(ChangeError::AlreadyReplacing { group: "web".into(), caller: "ops".into() }));
    let cancel = |e: &mut TestEngine| e.change(Change::CancelGroupReplacement("web".into()), &ops(), NOW);
    // In dry-run, asking says what would be replaced and keeps nothing.
    assert!(cancel(&mut engine).is_ok());
    engine.set_mode(crate::Mode::DryRun);
    let dry = engine.change(group("web"), &ops(), NOW).unwrap();
    assert!(dry.starts_with("dry-run, nothing started: replace group web: 1 node(s)"), "{dry}");
    assert!(engine.state.rolls.is_empty(), "a dry run keeps nothing to start later");
    engine.set_mode(crate::Mode::Enforce);
    engine.change(group("web"), &ops(), NOW).unwrap();
    assert_eq!(cancel(&mut engine), Ok("cancel replacement of group web (0 started; drains under way go on)".into()));
    assert_eq!(cancel(&mut engine), Err(ChangeError::NotReplacing("web".into())));
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 1_000), Vec::<String>::new(), "cancelled before it began");
}

#[test]
fn a_roll_waits_while_an_open_disruption_window_or_the_budget_has_no_room() {
    let world = two_nodes();
    let (faulty, mut engine) = engine(&world);
    let window = serde_yaml::from_str("{schedule: \"0 0 * * *\", duration: 24h, nodes: 0}").unwrap();
    engine.config.guardrails.disruption_budget.windows = vec![window];
    tick_at(&mut engine, &faulty, NOW - 10_000);
    engine
        .change(Change::ReplaceGroup { group: "web".into(), at_once: 2, dry_run: false }, &ops(), NOW - 5_000)
        .unwrap();
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "a change freeze holds the roll");
    engine.config.guardrails.disruption_budget.windows.clear();
    let calls = tick_at(&mut engine, &faulty, NOW + 10_000);
    assert_eq!(calls, ["set web to 3", "mark w1"], "the budget (10% of two nodes, at least one) allows one of two");
}

/// New guardrails (a configuration reload) guard the next tick: a change freeze added while
/// running holds the roll, and guardrails that do not validate are refused, the running ones
/// kept.
#[test]
fn guardrails_changed_while_running_take_effect_at_the_next_tick_and_bad_ones_are_refused() {
    let world = two_nodes();
    let (faulty, mut engine) = engine(&world);
    tick_at(&mut engine, &faulty, NOW - 10_000);
    engine
        .change(Change::ReplaceGroup { group: "web".into(), at_once: 1, dry_run: false }, &ops(), NOW - 5_000)
        .unwrap();
    let mut frozen = engine.config.guardrails.clone();
    frozen.disruption_budget.windows =
        vec![serde_yaml::from_str("{schedule: \"0 0 * * *\", duration: 24h, nodes: 0}").unwrap()];
    let reload = |g: &crate::config::Guardrails| Change::Guardrails(Box::new(g.clone()));
    let done = engine.change(reload(&frozen), &ops(), NOW - 4_000);
    assert_eq!(done, Ok("guardrails: disruption-budget.windows changed".into()));
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "the freeze holds the roll");

    let mut bad = frozen.clone();
    bad.disruption_budget.percent = 150.0;
    let refused = engine.change(reload(&bad), &ops(), NOW);
    assert!(matches!(&refused, Err(ChangeError::InvalidGuardrails(e)) if e.contains("150")), "{refused:?}");
    assert_eq!(engine.config.guardrails, frozen, "the running guardrails stay");
}

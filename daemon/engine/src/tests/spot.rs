//! Spot interruption warnings: cordon, a replacement at once, evictions held until it is
//! Ready or the margin before the reclaim, and all of it across a restart.

use super::*;

fn warn(id: &str, at: u64) -> Interruption {
    Interruption::spot(id, at)
}

/// AWS Health's retirement of `id`'s instance, scheduled a day after `at`.
fn retirement(id: &str, at: u64) -> Interruption {
    Interruption {
        instance_id: id.into(),
        at_millis: at,
        deadline_millis: at + 86_400_000,
        cause: crate::ports::InterruptionCause::Scheduled("AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED".into()),
    }
}

/// EC2 took `node`'s instance: the node and its pod `pod` are gone.
fn reclaimed(world: &mut World, node: &str, pod: &str) {
    world.cluster.nodes.retain(|n| &*n.name != node);
    world.pods.retain(|p| &*p.name != pod);
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
    let records = host_decisions(&engine);
    assert_eq!(records.len(), 1, "the unknown instance is not a decision: {records:?}");
    assert_eq!(records[0].result, ActionResult::Started);
    let reason = &records[0].reason;
    assert!(reason.contains("spot interruption warning for i-w2"), "{reason}");
    assert!(reason.contains("web 4 -> 5"), "{reason}");
    assert!(reason.contains("its pods stay until the replacement is Ready, 45 s before the reclaim"), "{reason}");
    let announced = faulty.announced.lock().unwrap().clone();
    let event = (Subject::Node("w2".into()), "SpotInterrupted", true, reason.clone());
    assert_eq!(announced.into_iter().map(|a| (a.subject, a.reason, a.warning, a.note)).collect::<Vec<_>>(), [event]);
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

/// An instance retirement AWS Health schedules a day ahead goes the same way: cordoned, its
/// replacement at once, its pods held only until the replacement is Ready, not for the day.
#[test]
fn a_scheduled_retirement_is_replaced_at_once_and_its_pods_move_once_the_replacement_is_ready() {
    let mut world = World::default();
    let (faulty, mut engine) = engine(&world);
    faulty.interruptions.lock().unwrap().push(retirement("i-w2", NOW));
    assert_eq!(tick_at(&mut engine, &faulty, NOW), ["set web to 5", "mark w2"]);
    let reason = host_decisions(&engine).remove(0).reason;
    assert!(
        reason
            .starts_with("scheduled change AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED for i-w2 (due in 1day): cordoned w2"),
        "{reason}"
    );
    assert!(reason.ends_with("its pods stay until the replacement is Ready, for 5m at the most"), "{reason}");
    join(&mut world, "w5", NOW + 40_000);
    world.group_mut("web").desired_size = 5;
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 60_000), ["mark w2", "evict shop/web-2"], "a day early");
}

/// A retirement whose replacement never becomes Ready: its pods do not wait the day, nor
/// past the drain timeout (10 min) that would abandon the drain and leave the node to die
/// with them. Half that timeout on, they are evicted, and go where policies send them.
#[test]
fn a_retirement_whose_replacement_never_comes_is_drained_within_the_drain_timeout() {
    let world = World::default();
    let (faulty, mut engine) = engine(&world);
    faulty.interruptions.lock().unwrap().push(retirement("i-w2", NOW));
    assert_eq!(tick_at(&mut engine, &faulty, NOW), ["set web to 5", "mark w2"]);
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 299_000), Vec::<String>::new(), "still held");
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 300_000), ["mark w2", "evict shop/web-2"], "5 min on");
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
    // Its removal is counted as the spot interruption it was (the mark kept the cause).
    let causes: Vec<Option<String>> = restarted
        .recorder()
        .records()
        .filter_map(|r| match r {
            Record::Removal(r) => Some(r.cause),
            _ => None,
        })
        .collect();
    assert_eq!(causes, [Some("spot-interrupted".to_string())]);
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

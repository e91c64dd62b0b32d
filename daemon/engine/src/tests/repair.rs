//! Nodes lost or never come up: replaced with the group's size kept, or removed with a
//! decrement while the group backs off.

use super::*;

/// `w2` stopped being Ready `minutes` ago, long after it registered.
fn lost(world: &mut World, node: &str, minutes: u64) {
    let node = world.node_mut(node);
    node.ready = false;
    node.unready_since_millis = Some(NOW - minutes * 60_000);
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
    let backoff = crate::state::BackoffState { until: NOW + 600_000, reason: "launch failed".into() };
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
    let backoff = crate::state::BackoffState { until: NOW + 300_000, reason: "not Ready within 15m".into() };
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

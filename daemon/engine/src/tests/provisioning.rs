//! Provisioning times (contract 0.1.10): how long each group took from the tick that asked
//! it for a node to the first tick that saw that node Ready, as the policies' snapshot shows.

use super::*;
use ballast_sdk::Snapshot;

/// The `web` group's recent provisioning times in the last snapshot the policies saw.
fn timed(seen: &Seen) -> Vec<u32> {
    let snapshot = seen.lock().unwrap().last().cloned().expect("the policies ran");
    snapshot.provisioning_time_of("web").map(|t| t.recent_seconds.clone()).unwrap_or_default()
}

/// A node of group `web`, Ready.
fn ready(world: &mut World, name: &str) {
    world.cluster.nodes.push(crate::guard::fixture::node(name, Some(&format!("i-{name}")), Some("web")));
}

#[test]
fn each_node_a_group_delivers_is_timed_from_the_tick_that_asked_for_it_to_the_tick_that_saw_it_ready() {
    let mut world = World::default();
    let (faulty, mut engine) = engine(&world);
    let seen = Seen::default();
    engine.policies = Scripted(Vec::new(), seen.clone());
    tick_at(&mut engine, &faulty, NOW);
    assert_eq!(timed(&seen), [0u32; 0], "nothing delivered yet: the group is not listed");

    // Asked for two more after the tick at NOW; one is Ready 70 s on, the other 90 s on.
    world.group_mut("web").desired_size = 6;
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 10_000);
    ready(&mut world, "w5");
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 70_000);
    assert_eq!(timed(&seen), [70]);
    // The tick's record says what arrived and how long it took (the metric follows it).
    let mut delivered = engine.recorder.records().filter_map(|r| match r {
        Record::Tick(t) => t.saw.groups.iter().find(|g| g.id == "web").map(|g| g.delivered_seconds.clone()),
        _ => None,
    });
    assert_eq!(delivered.next_back(), Some(vec![70]));
    ready(&mut world, "w6");
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 90_000);
    assert_eq!(timed(&seen), [70, 90], "oldest first");

    // An ask taken back before its node came is no delivery; the node that comes later
    // without an ask (desired already met) is none either.
    world.group_mut("web").desired_size = 7;
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 100_000);
    world.group_mut("web").desired_size = 6;
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 110_000);
    assert_eq!(timed(&seen), [70, 90], "cancelled");

    // Only the last eight are kept.
    for i in 0..8u64 {
        let at = NOW + 200_000 + i * 100_000;
        tick_at(&mut engine, &faulty, at);
        world.group_mut("web").desired_size += 1;
        show(&world, &faulty);
        tick_at(&mut engine, &faulty, at + 10_000);
        ready(&mut world, &format!("n{i}"));
        show(&world, &faulty);
        tick_at(&mut engine, &faulty, at + 60_000);
    }
    assert_eq!(timed(&seen), [60; 8], "the last eight");
}

#[test]
fn nodes_asked_before_the_engine_looked_or_before_a_failure_are_not_timed() {
    // A group already waiting for a node when this engine first sees it: when it was asked
    // is unknown, so its arrival says nothing of the group's boot.
    let mut world = World::default();
    world.group_mut("web").desired_size = 5;
    let (faulty, mut engine) = engine(&world);
    let seen = Seen::default();
    engine.policies = Scripted(Vec::new(), seen.clone());
    tick_at(&mut engine, &faulty, NOW);
    ready(&mut world, "w5");
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 30_000);
    assert_eq!(timed(&seen), [0u32; 0], "asked before the engine looked");

    // Asked for two, both launched, then the group fails (a launch refused): the instances
    // it has keep its size, but whatever of them still arrives is no measure of a boot.
    world.group_mut("web").desired_size = 7;
    for id in ["i-w5", "i-w6", "i-w7"] {
        let instance = InstanceView {
            id: id.into(),
            zone: "us-east-1a".into(),
            instance_type: "m5.large".into(),
            lifecycle: InstanceLifecycle::InService,
            image: None,
            template: None,
        };
        world.group_mut("web").instances.push(instance);
    }
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 40_000);
    let failure =
        crate::ports::LaunchFailure { at_millis: NOW + 45_000, message: "InsufficientInstanceCapacity".into() };
    world.group_mut("web").last_launch_failure = Some(failure);
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 50_000);
    ready(&mut world, "w6");
    show(&world, &faulty);
    tick_at(&mut engine, &faulty, NOW + 400_000);
    assert_eq!(world.group_mut("web").desired_size, 7, "the size its instances hold");
    assert_eq!(timed(&seen), [0u32; 0], "asked before a failure");
}

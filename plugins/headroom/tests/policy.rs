//! headroom's logic, tested natively.

use ballast_sdk::prelude::*;
use ballast_sdk::testing::{
    GroupBuilder, Harness, NodeBuilder, SnapshotBuilder, buffer, cron_run, deployment, labels, scaled_to,
};
use headroom::Headroom;
use serde_json::json;

fn evaluate(snapshot: &SnapshotData, settings: serde_json::Value) -> Vec<Decision> {
    Harness::<Headroom>::with_settings(settings).unwrap().evaluate(snapshot).unwrap()
}

/// Two groups: m5 (2 CPU, $0.096) and c5 (4 CPU, $0.17: the cheaper slot for 1-CPU pods).
/// One m5 node has 1 CPU free.
fn cluster() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .at_millis(1_767_571_200_000 + 9 * 3_600_000)
        .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 1, 10))
        .group(GroupBuilder::asg("c5").instance_type("c5.xlarge", "4", "8Gi", 0.17).sizes(0, 0, 10))
        .node(NodeBuilder::new("m5-a", "m5").allocatable("2", "8Gi").requested("1", "1Gi", 3))
}

#[test]
fn a_short_reserve_grows_the_cheapest_slot_puts_the_rest_where_it_costs_least_and_counts_earlier_asks_as_taken() {
    let reserve = json!({"reserves": [{"count": 6, "cpu": "1", "memory": "1Gi"}]});
    // One slot free; five more: a c5 node (four slots at $0.0425 a slot), and the fifth on an
    // m5 node ($0.096), not on a second c5 ($0.17).
    let decisions = evaluate(&cluster().build(), reserve.clone());
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 1), ("m5".to_string(), 2)]);
    assert!(decisions[1].reason.contains("the cheapest for what is left over"), "{}", decisions[1].reason);
    // binpack asked for 3 c5 nodes for pending pods: the reserve comes on top.
    let busy = cluster()
        .proposal("binpack", Decision::new(Action::ScaleTo { group: "c5".into(), size: 3 }, "pending"))
        .build();
    assert_eq!(scaled_to(&evaluate(&busy, reserve)), [("c5".to_string(), 4), ("m5".to_string(), 2)]);
    // Seven short: one c5 node and three left over, cheaper on a second c5 ($0.17) than on
    // two m5 ($0.192).
    let seven = json!({"reserves": [{"count": 8, "cpu": "1", "memory": "1Gi"}]});
    assert_eq!(scaled_to(&evaluate(&cluster().build(), seven)), [("c5".to_string(), 2)]);
}

#[test]
fn an_exact_reserve_holds_its_group_and_an_ample_one_says_nothing() {
    let one = json!({"reserves": [{"count": 1, "cpu": "1", "memory": "1Gi"}]});
    let decisions = evaluate(&cluster().build(), one);
    assert_eq!(scaled_to(&decisions), [("m5".to_string(), 1)], "losing m5-a would leave no room");
    assert!(decisions[0].reason.contains("keeps spare room"), "{}", decisions[0].reason);
    let roomy = cluster().node(NodeBuilder::new("m5-b", "m5").allocatable("2", "8Gi")).build();
    let one = json!({"reserves": [{"count": 1, "cpu": "1", "memory": "1Gi"}]});
    assert!(evaluate(&roomy, one).is_empty(), "three slots on two nodes: any one can go");
}

#[test]
fn a_reserve_out_of_its_window_asks_for_nothing_and_bad_settings_name_the_field() {
    let evening = json!({"reserves": [{"count": 6, "cpu": "1", "memory": "1Gi", "schedule": [{"from": "18:00", "to": "23:00"}]}]});
    assert!(evaluate(&cluster().build(), evening).is_empty(), "09:00 is outside 18:00-23:00");
    let bad = json!({"reserves": [{"count": 1, "cpu": "1", "memory": "1Gi", "schedule": [{"from": "25:00", "to": "23:00"}]}]});
    let error = Harness::<Headroom>::with_settings(bad).err().unwrap();
    assert!(error.contains("reserves[0].schedule[0].from") && error.contains("`25:00`"), "{error}");
    let empty = json!({"reserves": [{"count": 1, "cpu": "0", "memory": "0"}]});
    assert!(Harness::<Headroom>::with_settings(empty).err().unwrap().contains("reserves[0]"));
}

#[test]
fn a_capacity_buffer_gets_room_in_the_groups_its_pods_may_use_unless_buffers_are_ignored() {
    // Six pods of 1 CPU, as the reserve above: one slot free, a c5 node and an m5 node more.
    let six = cluster().capacity_buffer(buffer("web", "spare", 6, "1", "1Gi")).build();
    let decisions = evaluate(&six, json!({}));
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 1), ("m5".to_string(), 2)]);
    assert!(
        decisions[0].reason.contains("CapacityBuffer web/spare (6 pods of 1 cpu / 1Gi memory)"),
        "{}",
        decisions[0].reason
    );
    assert!(evaluate(&six, json!({"ignore-capacity-buffers": true})).is_empty(), "another autoscaler keeps it");
    // Pods that select the general pool get their room there alone: five more slots are three
    // m5 nodes of two, though c5 slots are cheaper.
    let pools = SnapshotBuilder::new()
        .at_millis(1_767_571_200_000)
        .group(
            GroupBuilder::asg("m5")
                .instance_type("m5.large", "2", "8Gi", 0.096)
                .sizes(1, 1, 10)
                .label("pool", "general"),
        )
        .group(
            GroupBuilder::asg("c5")
                .instance_type("c5.xlarge", "4", "8Gi", 0.17)
                .sizes(0, 0, 10)
                .label("pool", "compute"),
        )
        .node(NodeBuilder::new("m5-a", "m5").allocatable("2", "8Gi").requested("1", "1Gi", 3));
    let general =
        CapacityBuffer { node_selector: labels(&[("pool", "general")]), ..buffer("web", "spare", 6, "1", "1Gi") };
    assert_eq!(scaled_to(&evaluate(&pools.capacity_buffer(general).build(), json!({}))), [("m5".to_string(), 4)]);
    // Room for one pod exactly: the group is held, so consolidation leaves the room; a buffer
    // of no pods asks for nothing.
    let one = cluster().capacity_buffer(buffer("web", "spare", 1, "1", "1Gi")).build();
    let decisions = evaluate(&one, json!({}));
    assert_eq!(scaled_to(&decisions), [("m5".to_string(), 1)]);
    assert!(decisions[0].reason.contains("keeps spare room for CapacityBuffer web/spare"), "{}", decisions[0].reason);
    assert!(evaluate(&cluster().capacity_buffer(buffer("web", "spare", 0, "1", "1Gi")).build(), json!({})).is_empty());
}

const MINUTE: u64 = 60_000;

/// The cluster `ms` after midnight, with the etl job's 12 pods of 1 CPU pending or not.
fn at(ms: u64, pending: bool) -> SnapshotData {
    let mut b = cluster().at_millis(1_767_571_200_000 + ms);
    if pending {
        b = b.pending_pods("data", "etl", 12, "1", "1Gi");
    }
    b.build()
}

/// A headroom that has seen the job's pods arrive at 0, 15 and 30 min, wait a tick, and get
/// nodes.
fn learnt_every_15_minutes() -> Harness<Headroom> {
    let mut policy = Harness::<Headroom>::with_settings(json!({"recurring": {}})).unwrap();
    for burst in [0, 15, 30] {
        assert!(policy.evaluate(&at(burst * MINUTE, true)).unwrap().is_empty(), "nothing learnt yet at {burst}");
        assert!(policy.evaluate(&at(burst * MINUTE + 20_000, false)).unwrap().is_empty());
    }
    policy
}

#[test]
fn a_burst_that_recurs_at_a_steady_period_gets_room_before_it_is_due() {
    let mut policy = learnt_every_15_minutes();
    let minute = MINUTE;
    // Due at 45 min; room is asked for from 2 min before: 12 slots, 1 free, so three c5 nodes.
    assert!(policy.evaluate(&at(42 * minute, false)).unwrap().is_empty(), "3 min ahead: not yet");
    let decisions = policy.evaluate(&at(43 * minute + 30_000, false)).unwrap();
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 3)]);
    assert!(decisions[0].reason.contains("the next burst of deployment/data/etl (12 pods"), "{}", decisions[0].reason);
    assert!(decisions[0].reason.contains("every 15 min"), "{}", decisions[0].reason);
    // Once it has arrived, it is pending pods' business (binpack's), not headroom's.
    assert!(policy.evaluate(&at(45 * minute, true)).unwrap().is_empty());
}

/// A burst the room took at once never shows as pending: it still counts as arrived, so the
/// next one gets its room a period later, and no more room is asked for once it is due.
#[test]
fn a_burst_absorbed_by_its_room_keeps_the_cadence_and_is_not_asked_for_twice() {
    let mut policy = learnt_every_15_minutes();
    let minute = MINUTE;
    assert_eq!(scaled_to(&policy.evaluate(&at(43 * minute + 30_000, false)).unwrap()), [("c5".to_string(), 3)]);
    // Due at 45 min, it lands on the room made for it: no pod is seen pending, and the room
    // is full. Headroom does not ask for the same burst again.
    assert!(policy.evaluate(&at(45 * minute, false)).unwrap().is_empty(), "due: no second helping");
    assert!(policy.evaluate(&at(46 * minute + 30_000, false)).unwrap().is_empty());
    // The next one is due at 60 min and gets its room.
    assert!(policy.evaluate(&at(57 * minute, false)).unwrap().is_empty(), "3 min ahead: not yet");
    let decisions = policy.evaluate(&at(58 * minute + 30_000, false)).unwrap();
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 3)], "the cadence was kept");
    assert!(decisions[0].reason.contains("due at 01:00:00 UTC"), "{}", decisions[0].reason);
}

/// `min-bursts: 2` guesses the period from the first interval: the third burst gets its
/// room, where the default waits for two intervals that agree. Other counts are refused.
#[test]
fn with_min_bursts_2_the_third_burst_gets_room_from_one_interval() {
    let minute = MINUTE;
    let after_two = |settings: serde_json::Value| {
        let mut policy = Harness::<Headroom>::with_settings(settings).unwrap();
        for burst in [0, 15] {
            policy.evaluate(&at(burst * minute, true)).unwrap();
            policy.evaluate(&at(burst * minute + 20_000, false)).unwrap();
        }
        policy.evaluate(&at(28 * minute + 30_000, false)).unwrap()
    };
    let guessed = after_two(json!({"recurring": {"min-bursts": 2}}));
    assert_eq!(scaled_to(&guessed), [("c5".to_string(), 3)]);
    assert!(guessed[0].reason.contains("due at 00:30:00 UTC (every 15 min)"), "{}", guessed[0].reason);
    assert!(after_two(json!({"recurring": {}})).is_empty(), "the default waits for a third burst");
    let error = Harness::<Headroom>::with_settings(json!({"recurring": {"min-bursts": 4}})).err().unwrap();
    assert!(error.contains("recurring.min-bursts") && error.contains('4'), "{error}");
}

/// A burst that lands in its room a little before it is due shows only as the workload's
/// replicas appearing: it counts as arrived then, so its room is not asked for a second
/// time, and the next one is due a period after it, with the room that was enough.
#[test]
fn a_burst_that_lands_early_in_its_room_is_counted_when_its_replicas_appear() {
    let mut policy = learnt_every_15_minutes();
    let minute = MINUTE;
    let etl = |ms: u64, replicas: u32| {
        cluster().at_millis(1_767_571_200_000 + ms).workload(deployment("data", "etl", replicas, "1", "1Gi")).build()
    };
    assert_eq!(scaled_to(&policy.evaluate(&etl(43 * minute + 30_000, 0)).unwrap()), [("c5".to_string(), 3)]);
    // 10 s before it is due, its 14 pods start in the room and the spare room beside it at
    // once: none is seen pending.
    assert!(policy.evaluate(&etl(44 * minute + 50_000, 14)).unwrap().is_empty(), "no second helping");
    assert!(policy.evaluate(&etl(45 * minute, 14)).unwrap().is_empty());
    // The next one is due 14 min 50 s later (the last two intervals agree within a minute).
    assert!(policy.evaluate(&etl(56 * minute, 0)).unwrap().is_empty(), "3 min 40 s ahead: not yet");
    // What was asked for was enough: the next room is for 12 again, not 14.
    let decisions = policy.evaluate(&etl(58 * minute, 0)).unwrap();
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 3)]);
    assert!(decisions[0].reason.contains("(12 pods"), "{}", decisions[0].reason);
    assert!(decisions[0].reason.contains("due at 00:59:40 UTC"), "{}", decisions[0].reason);
}

/// The cluster `seconds` after 09:00 with the storefront at `replicas`, `pending` of them
/// waiting (250m / 512Mi: sixteen to a c5 node, eight to an m5; m5-a has four free).
fn storefront(seconds: u64, replicas: u32, pending: usize) -> SnapshotData {
    storefront_at(seconds, replicas, pending).build()
}

fn storefront_at(seconds: u64, replicas: u32, pending: usize) -> SnapshotBuilder {
    cluster()
        .at_millis(1_767_571_200_000 + 9 * 3_600_000 + seconds * 1000)
        .workload(deployment("shop", "storefront", replicas, "250m", "512Mi"))
        .pending_pods("shop", "storefront", pending, "250m", "512Mi")
}

fn ramp() -> Harness<Headroom> {
    Harness::<Headroom>::with_settings(json!({"ramp": {}})).unwrap()
}

#[test]
fn a_climbing_workload_gets_room_for_what_its_rate_adds_within_the_lead_time() {
    let mut policy = ramp();
    // 4 replicas, then +4 every 10 s: by 30 s it has climbed 12 in 30 s in three steps.
    for (t, replicas) in [(0, 4), (10, 8), (20, 12)] {
        assert!(policy.evaluate(&storefront(t, replicas, 4)).unwrap().is_empty(), "not a ramp yet at {t} s");
    }
    let decisions = policy.evaluate(&storefront(30, 16, 4)).unwrap();
    // 12 in 30 s is 0.4 a second: 36 more within 90 s. Four 250m slots are free on m5-a;
    // 32 more is two c5 nodes (sixteen slots each, the cheapest slot).
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 2)]);
    let reason = &decisions[0].reason;
    assert!(reason.contains("the climb of deployment/shop/storefront (+12 replicas in 30 s): 36 more"), "{reason}");
    // On top of what binpack asked for the pods pending now.
    let busy = cluster()
        .at_millis(1_767_571_200_000 + 9 * 3_600_000 + 40_000)
        .workload(deployment("shop", "storefront", 20, "250m", "512Mi"))
        .proposal("binpack", Decision::new(Action::ScaleTo { group: "c5".into(), size: 1 }, "pending"))
        .build();
    let decisions = policy.evaluate(&busy).unwrap();
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 3)], "{decisions:?}");
}

#[test]
fn a_climb_into_groups_that_deliver_slowly_gets_room_for_what_it_adds_in_their_boot_time() {
    // The same climb (0.4 replicas a second), with every untainted group taking up to 180 s
    // to deliver lately: room for what it adds in 180 s (72), not in the setting's 90 s.
    let mut policy = ramp();
    let slow = |t, replicas| {
        storefront_at(t, replicas, 4).provisioned("c5", &[180, 170, 180]).provisioned("m5", &[90]).build()
    };
    for (t, replicas) in [(0, 4), (10, 8), (20, 12)] {
        assert!(policy.evaluate(&slow(t, replicas)).unwrap().is_empty());
    }
    let decisions = policy.evaluate(&slow(30, 16)).unwrap();
    let reason = &decisions[0].reason;
    assert!(reason.contains("72 more of") && reason.contains("within 180 s"), "{reason}");
    // 72 less the four free slots on m5-a: 68, four c5 nodes (64) and the four left over
    // on a new m5 ($0.096 against a fifth c5's $0.17).
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 4), ("m5".to_string(), 2)]);
}

/// The storefront climbs as above under a HorizontalPodAutoscaler with `max` replicas.
fn autoscaled_storefront(seconds: u64, replicas: u32, max: u32) -> SnapshotData {
    let target = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "storefront".into() };
    storefront_at(seconds, replicas, 4).autoscaled(target, 4, max).build()
}

#[test]
fn a_climb_expects_no_more_than_its_autoscaler_lets_it_reach() {
    let mut policy = ramp();
    for (t, replicas) in [(0, 4), (10, 8), (20, 12)] {
        assert!(policy.evaluate(&autoscaled_storefront(t, replicas, 24)).unwrap().is_empty());
    }
    // The rate says 36 more within 90 s; the autoscaler stops at 24, 8 above the 16 running.
    // Four fit on m5-a's free room; the four left are one m5 node ($0.096, eight slots),
    // not the two c5 nodes (32 slots) the rate alone asks for.
    let decisions = policy.evaluate(&autoscaled_storefront(30, 16, 24)).unwrap();
    assert_eq!(scaled_to(&decisions), [("m5".to_string(), 2)]);
    let reason = &decisions[0].reason;
    assert!(reason.contains(": 8 more of"), "{reason}");
    assert!(reason.contains("up to its autoscaler's max-replicas 24"), "{reason}");
    // At its max, a climb expects nothing, however fast it came.
    assert!(policy.evaluate(&autoscaled_storefront(40, 24, 24)).unwrap().is_empty(), "at max-replicas");
    // An autoscaler that leaves more room than the rate fills changes nothing.
    let mut policy = ramp();
    for (t, replicas) in [(0, 4), (10, 8), (20, 12)] {
        policy.evaluate(&autoscaled_storefront(t, replicas, 100)).unwrap();
    }
    assert_eq!(scaled_to(&policy.evaluate(&autoscaled_storefront(30, 16, 100)).unwrap()), [("c5".to_string(), 2)]);
}

#[test]
fn a_single_jump_or_a_climb_that_stopped_asks_for_nothing() {
    // One jump of 40 replicas: no rate to extrapolate; its pods are scale-up's business.
    let mut policy = ramp();
    assert!(policy.evaluate(&storefront(0, 4, 0)).unwrap().is_empty());
    assert!(policy.evaluate(&storefront(10, 44, 40)).unwrap().is_empty(), "a jump is not a ramp");
    assert!(policy.evaluate(&storefront(20, 44, 40)).unwrap().is_empty());

    // A climb that reached its top: room until the lead time after the last step, then none.
    let mut policy = ramp();
    for (t, replicas) in [(0, 4), (10, 8), (20, 12)] {
        policy.evaluate(&storefront(t, replicas, 4)).unwrap();
    }
    assert!(!policy.evaluate(&storefront(30, 16, 4)).unwrap().is_empty(), "climbing");
    // An autoscaler steps every 15-30 s, not every tick: a pause is not yet the top. Once
    // the last minute (the window) holds fewer than three steps of climb, it is.
    assert!(!policy.evaluate(&storefront(40, 16, 0)).unwrap().is_empty(), "10 s after the last step");
    assert!(!policy.evaluate(&storefront(65, 16, 0)).unwrap().is_empty(), "three steps in the last minute");
    assert!(policy.evaluate(&storefront(75, 16, 0)).unwrap().is_empty(), "two steps in the last minute: the top");
    // Nothing pending and no change for a window: forgotten, so a large cluster at rest keeps
    // no per-workload state (it crosses the plugin boundary on every call).
    policy.evaluate(&storefront(95, 16, 0)).unwrap();
    let state: serde_json::Value = serde_json::from_slice(policy.state().unwrap()).unwrap();
    assert_eq!(state["ramps"]["workloads"], json!({}), "{state}");

    // A workload on Fargate needs no EC2 room however it climbs.
    let mut policy = ramp();
    for (t, replicas) in [(0, 4), (10, 8), (20, 12), (30, 16)] {
        let mut on_fargate = deployment("shop", "storefront", replicas, "250m", "512Mi");
        on_fargate.placement = Placement::Fargate;
        let snapshot = cluster().at_millis(1_767_571_200_000 + t * 1000).workload(on_fargate).build();
        assert!(policy.evaluate(&snapshot).unwrap().is_empty(), "at {t} s");
    }
}

#[test]
fn ramp_settings_are_checked_and_a_state_saved_before_ramps_still_reads() {
    let error = Harness::<Headroom>::with_settings(json!({"ramp": {"window-seconds": 0}})).err().unwrap();
    assert!(error.contains("ramp.window-seconds"), "{error}");
    let error = Harness::<Headroom>::with_settings(json!({"ramp": {"lead": 90}})).err().unwrap();
    assert!(error.contains("unknown field `lead`"), "{error}");
    let old: headroom::State =
        serde_json::from_str(r#"{"shapes": {}, "waiting": ["deployment/data/etl 1 cpu"]}"#).unwrap();
    assert_eq!(old.bursts.waiting.len(), 1);
    assert!(old.ramps.workloads.is_empty());
}

/// The etl CronJob's next run: 12 pods of 1 CPU due `in_ms` from the cluster's 09:00.
fn with_run(in_ms: u64) -> SnapshotBuilder {
    let now = 1_767_571_200_000 + 9 * 3_600_000;
    cluster().scheduled_run(cron_run("data", "etl", now + in_ms, 12, "1", "1Gi"))
}

fn scheduled() -> serde_json::Value {
    json!({"scheduled": {"lead-seconds": 90}})
}

/// A run whose pods ask more disk than the cheaper slot's nodes offer gets room where its
/// pods fit by disk too (interface 0.1.15 hands policies a run's disk): 30Gi pods beside m5
/// nodes of 89Gi (two a node) and c5 nodes of 17Gi (none).
#[test]
fn a_run_gets_room_on_the_group_whose_disk_holds_its_pods() {
    let now = 1_767_571_200_000 + 9 * 3_600_000;
    let mut run = cron_run("data", "etl", now + 60_000, 12, "1", "1Gi");
    run.requests.ephemeral_storage_bytes = 30 << 30;
    let disks = |m5: &str, c5: &str| {
        SnapshotBuilder::new()
            .at_millis(now)
            .group(GroupBuilder::asg("m5").instance_type("m5.large", "2", "8Gi", 0.096).disk(m5).sizes(1, 1, 10))
            .group(GroupBuilder::asg("c5").instance_type("c5.xlarge", "4", "8Gi", 0.17).disk(c5).sizes(0, 0, 10))
            .node(NodeBuilder::new("m5-a", "m5").allocatable("2", "8Gi").requested("1", "1Gi", 3).disk(m5, "0"))
            .scheduled_run(run.clone())
            .build()
    };
    // m5-a holds one; 11 more at two a node.
    assert_eq!(scaled_to(&evaluate(&disks("89Gi", "17Gi"), scheduled())), [("m5".to_string(), 7)]);
    // Disks that hold what the CPUs do: the cheaper slot, as without disks.
    assert_eq!(scaled_to(&evaluate(&disks("200Gi", "200Gi"), scheduled())), [("c5".to_string(), 3)]);
}

#[test]
fn a_run_whose_pods_are_kept_apart_gets_room_a_node_at_most_its_limit() {
    let etl = WorkloadRef { kind: WorkloadKind::Job, namespace: "data".into(), name: "etl".into() };
    // Two pods a node: an m5 node holds two (the cheaper slot now), a c5 node two as well.
    // m5-a has one slot free; 11 more: five m5 nodes and one for the last pod.
    let two = with_run(60_000).per_node_limit(etl.clone(), 2).build();
    assert_eq!(scaled_to(&evaluate(&two, scheduled())), [("m5".to_string(), 7)]);
    // One a node: m5 takes nine more (its max), c5 the rest; an etl pod already on m5-a
    // leaves it no slot.
    let one = || with_run(60_000).per_node_limit(etl.clone(), 1);
    assert_eq!(scaled_to(&evaluate(&one().build(), scheduled())), [("c5".to_string(), 2), ("m5".to_string(), 10)]);
    let running_there = PodShape { owner: Some(etl.clone()), count: 1, moves_on_drain: true, ..PodShape::default() };
    let occupied = one().pods_on("m5-a", running_there).build();
    assert_eq!(scaled_to(&evaluate(&occupied, scheduled())), [("c5".to_string(), 3), ("m5".to_string(), 10)]);
    // A web pod on m5-a leaves its slot to etl, unless etl is kept off the web tier's nodes.
    let web = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "web".into() };
    let web_there = || PodShape { owner: Some(web.clone()), count: 1, moves_on_drain: true, ..PodShape::default() };
    let beside = one().pods_on("m5-a", web_there()).build();
    assert_eq!(scaled_to(&evaluate(&beside, scheduled())), [("c5".to_string(), 2), ("m5".to_string(), 10)]);
    let away = one().pods_on("m5-a", web_there()).kept_away(etl.clone(), web.clone()).build();
    assert_eq!(scaled_to(&evaluate(&away, scheduled())), [("c5".to_string(), 3), ("m5".to_string(), 10)]);
}

#[test]
fn a_scheduled_run_gets_room_for_all_its_pods_before_its_first_run() {
    // Nothing learnt, nothing pending: the schedule alone says 12 pods come in 60 s. One slot
    // is free; 11 more: two c5 nodes (8 slots) and three left over, cheaper on a third c5
    // ($0.17) than on two m5 ($0.192).
    let decisions = evaluate(&with_run(60_000).build(), scheduled());
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 3)]);
    assert!(
        decisions[0].reason.contains("the run of job/data/etl due at 09:01:00 UTC (12 pods"),
        "{}",
        decisions[0].reason
    );
    // Further off than the lead time, due already, or bound for Fargate: nothing.
    assert!(evaluate(&with_run(5 * MINUTE).build(), scheduled()).is_empty(), "due in 5 min: not yet");
    assert!(evaluate(&with_run(0).build(), scheduled()).is_empty(), "due now: its pods are binpack's");
    let now = 1_767_571_200_000 + 9 * 3_600_000;
    let fargate = ScheduledRun { on_fargate: true, ..cron_run("data", "etl", now + 60_000, 12, "1", "1Gi") };
    assert!(evaluate(&cluster().scheduled_run(fargate).build(), scheduled()).is_empty(), "Fargate needs no nodes");
    // Without `scheduled` in the settings the schedule is not read.
    assert!(evaluate(&with_run(60_000).build(), json!({})).is_empty());
    let zero = json!({"scheduled": {"lead-seconds": 0}});
    assert!(Harness::<Headroom>::with_settings(zero).err().unwrap().contains("scheduled.lead-seconds"));
}

#[test]
fn a_run_gets_its_room_as_far_ahead_as_the_groups_that_would_hold_it_took_to_deliver_lately() {
    // c5 (the cheapest slot) took 150 to 180 s to deliver its last nodes: room for a run due
    // in 170 s (its second slowest) is asked for now, where the 90-s setting alone would
    // still wait and leave the run's pods waiting for the rest of a boot; due in 180 s, not
    // yet: one delivery slower than the rest does not move the lead.
    let slow = |in_ms| with_run(in_ms).provisioned("c5", &[150, 180, 170, 160]).build();
    assert_eq!(scaled_to(&evaluate(&slow(170_000), scheduled())), [("c5".to_string(), 3)]);
    assert!(evaluate(&slow(180_000), scheduled()).is_empty(), "beyond the second slowest delivery");
    let outlier = |in_ms| with_run(in_ms).provisioned("c5", &[60, 600, 70]).build();
    assert!(evaluate(&outlier(100_000), scheduled()).is_empty(), "one 10-minute boot among fast ones");
    let fixed = json!({"scheduled": {"lead-seconds": 90}, "fixed-lead": true});
    assert!(evaluate(&slow(170_000), fixed.clone()).is_empty(), "fixed-lead keeps the setting");
    assert_eq!(scaled_to(&evaluate(&slow(90_000), fixed)), [("c5".to_string(), 3)]);

    // Groups faster than the setting keep its 90 s.
    let fast = |in_ms| with_run(in_ms).provisioned("c5", &[50]).provisioned("m5", &[40, 50]).build();
    assert_eq!(scaled_to(&evaluate(&fast(90_000), scheduled())), [("c5".to_string(), 3)]);
    assert!(evaluate(&fast(100_000), scheduled()).is_empty(), "100 s ahead");

    // Only the groups that admit the run's pods count: a tainted GPU group's 10-minute
    // boots do not pull the run's room ten minutes ahead.
    let beside_gpu = |in_ms| {
        let gpu = GroupBuilder::asg("gpu").instance_type("g5.xlarge", "4", "16Gi", 1.006).sizes(0, 0, 4).taint(
            "nvidia.com/gpu",
            "true",
            TaintEffect::NoSchedule,
        );
        with_run(in_ms).group(gpu).provisioned("c5", &[50]).provisioned("gpu", &[600]).build()
    };
    assert!(evaluate(&beside_gpu(170_000), scheduled()).is_empty(), "the GPU group's boots are not the run's");
    assert_eq!(scaled_to(&evaluate(&beside_gpu(90_000), scheduled())), [("c5".to_string(), 3)]);
}

#[test]
fn a_new_node_is_counted_without_the_room_its_daemonset_pods_take() {
    // A DaemonSet of 500m on every node: a new c5 holds 3 pods of 1 CPU, not 4. 11 short:
    // three c5 nodes (9) and two left over, cheaper on a fourth c5 ($0.17) than on two m5
    // nodes that hold one pod each ($0.192).
    let agent = Workload {
        id: WorkloadRef { kind: WorkloadKind::DaemonSet, namespace: "kube-system".into(), name: "agent".into() },
        replicas: 1,
        requests_per_replica: Resources::pod(500, 256 << 20),
        ..Workload::default()
    };
    let decisions = evaluate(&with_run(60_000).workload(agent).build(), scheduled());
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 4)]);
}

#[test]
fn a_workload_with_a_schedule_gets_room_by_its_schedule_not_by_its_learnt_bursts() {
    // The job's bursts came every 15 min and were learnt (as a Deployment's pods here), so the
    // next is expected at 45 min; but its schedule, now known, says the next run is at 60.
    let mut policy = Harness::<Headroom>::with_settings(json!({"recurring": {}, "scheduled": {}})).unwrap();
    for burst in [0, 15, 30] {
        policy.evaluate(&at(burst * MINUTE, true)).unwrap();
        policy.evaluate(&at(burst * MINUTE + 20_000, false)).unwrap();
    }
    let run = |at_minute: u64| ScheduledRun {
        owner: WorkloadRef { kind: WorkloadKind::Deployment, namespace: "data".into(), name: "etl".into() },
        ..cron_run("data", "etl", 1_767_571_200_000 + at_minute * MINUTE, 12, "1", "1Gi")
    };
    let mut before_45 = at(43 * MINUTE + 30_000, false);
    before_45.scheduled_runs.push(run(60));
    assert!(policy.evaluate(&before_45).unwrap().is_empty(), "no room for a burst the schedule does not have");
    let mut before_60 = at(58 * MINUTE + 30_000, false);
    before_60.scheduled_runs.push(run(60));
    let decisions = policy.evaluate(&before_60).unwrap();
    assert_eq!(scaled_to(&decisions), [("c5".to_string(), 3)]);
    assert!(
        decisions[0].reason.contains("the run of deployment/data/etl due at 01:00:00 UTC"),
        "{}",
        decisions[0].reason
    );
}

#[test]
fn a_group_is_not_held_while_the_host_refuses_removals_there_after_it_grew() {
    // Six slots wanted, one free: c5 grows to 1 and m5 to 2 (see the first test).
    let reserve = json!({"reserves": [{"count": 6, "cpu": "1", "memory": "1Gi"}]});
    let start = 1_767_571_200_000 + 9 * 3_600_000;
    // The host says when it grew each group and how long it then refuses to shrink it.
    let grown = |seconds: u64, cooldown: u64| {
        let mut s = cluster()
            .at_millis(start + seconds * 1000)
            .node(NodeBuilder::new("c5-a", "c5").allocatable("4", "8Gi"))
            .node(NodeBuilder::new("m5-b", "m5").allocatable("2", "8Gi"))
            .grown_at("c5", start, cooldown)
            .grown_at("m5", start, cooldown)
            .build();
        for (group, size) in s.node_groups.iter_mut().zip([2, 1]) {
            (group.desired_size, group.ready_nodes) = (size, size);
        }
        s
    };
    let mut policy = Harness::<Headroom>::with_settings(reserve.clone()).unwrap();
    assert_eq!(
        scaled_to(&policy.evaluate(&cluster().build()).unwrap()),
        [("c5".to_string(), 1), ("m5".to_string(), 2)]
    );
    // Exactly enough now: losing any node would leave too little, but the host refuses
    // removals in both groups for 600 s after they grew, so no hold is proposed meanwhile.
    assert!(policy.evaluate(&grown(10, 600)).unwrap().is_empty(), "within the cooldown");
    let held = policy.evaluate(&grown(600, 600)).unwrap();
    assert_eq!(scaled_to(&held), [("c5".to_string(), 1), ("m5".to_string(), 2)], "after it: both held");
    assert!(held.iter().all(|d| d.reason.contains("keeps spare room")), "{held:#?}");
    // A host configured with a shorter cooldown is read, not assumed: the hold comes then.
    assert_eq!(scaled_to(&policy.evaluate(&grown(10, 0)).unwrap()), [("c5".to_string(), 1), ("m5".to_string(), 2)]);
}

/// etl's run of 12 one-CPU pods, due in a minute, with a c5.xlarge group (four slots a node)
/// in each of three zones. Kept spread over zones with four pods already in us-east-1a, the
/// run's pods go five to us-east-1b, five to us-east-1c and two to us-east-1a, so the room is
/// made there, not all in the first group.
#[test]
fn a_run_of_pods_kept_spread_over_zones_gets_room_in_each_zone_for_its_share() {
    let etl = WorkloadRef { kind: WorkloadKind::Job, namespace: "data".into(), name: "etl".into() };
    let now = 1_767_571_200_000 + 9 * 3_600_000;
    let zoned = || {
        let mut snapshot = SnapshotBuilder::new().at_millis(now);
        for zone in ["a", "b", "c"] {
            let group = GroupBuilder::asg(&format!("1{zone}")).instance_type("c5.xlarge", "4", "8Gi", 0.17);
            snapshot = snapshot.group(group.sizes(0, 0, 10).zones(&[&format!("us-east-1{zone}")]));
        }
        snapshot.scheduled_run(cron_run("data", "etl", now + 60_000, 12, "1", "1Gi"))
    };
    assert_eq!(scaled_to(&evaluate(&zoned().build(), scheduled())), [("1a".to_string(), 3)], "spread nowhere");
    let spread = zoned().zone_spread(etl, 1, &[("us-east-1a", 4)]).build();
    let decisions = evaluate(&spread, scheduled());
    assert_eq!(scaled_to(&decisions), [("1a".to_string(), 1), ("1b".to_string(), 2), ("1c".to_string(), 2)]);
    assert!(decisions[1].reason.contains("(5 of them in us-east-1b, where the spread puts them)"), "{decisions:?}");
}

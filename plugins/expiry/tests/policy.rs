//! expiry's logic, tested natively: successor first, the old node once the successor is
//! Ready and the group may shrink, one at a time, outright where no successor can come.

use ballast_sdk::testing::{GroupBuilder, Harness, NodeBuilder, SnapshotBuilder, removed, scaled_to};
use expiry::Expiry;
use serde_json::json;

const DAY: u64 = 86_400;
const T0: u64 = 1_767_571_200_000;

/// Group `general` (desired 3, max 10): `old-a` 40 days old, `old-b` 35, `new` 2.
fn cluster(at_seconds: u64) -> SnapshotBuilder {
    sized(at_seconds, 3, 10)
}

/// The same nodes, `general` at `desired` of at most `max`.
fn sized(at_seconds: u64, desired: u32, max: u32) -> SnapshotBuilder {
    let age = |days: u64| days * DAY + at_seconds;
    SnapshotBuilder::new()
        .at_millis(T0 + at_seconds * 1000)
        .group(GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, desired, max))
        .node(NodeBuilder::new("old-a", "general").allocatable("2", "8Gi").age_seconds(age(40)))
        .node(NodeBuilder::new("old-b", "general").allocatable("2", "8Gi").age_seconds(age(35)))
        .node(NodeBuilder::new("new", "general").allocatable("2", "8Gi").age_seconds(age(2)))
}

fn harness(settings: serde_json::Value) -> Harness<Expiry> {
    Harness::<Expiry>::with_settings(settings).unwrap()
}

#[test]
fn the_oldest_expired_node_gets_its_successor_first_and_goes_once_it_is_ready_and_the_group_may_shrink() {
    let mut expiry = harness(json!({"expire-after-seconds": 30 * DAY}));
    let first = expiry.evaluate(&cluster(0).build()).unwrap();
    assert_eq!(scaled_to(&first), [("general".to_string(), 4)], "{first:?}");
    assert!(first[0].reason.contains("node old-a is 40d 0h old, past expire-after 30d 0h"), "{}", first[0].reason);

    // A minute on the successor boots; the group was grown at T0, and may shrink at T0 + 10 min.
    let booting = || sized(60, 4, 10).grown_at("general", T0, 600);
    let held = expiry.evaluate(&booting().build()).unwrap();
    assert_eq!(scaled_to(&held), [("general".to_string(), 4)], "kept at its size: {held:?}");
    assert!(held[0].reason.contains("its successor is not Ready yet"), "{}", held[0].reason);
    assert!(removed(&held).is_empty(), "old-b is expired too, but one rotation at a time");

    let ready = |at_millis: u64| {
        booting().node(NodeBuilder::new("successor", "general").age_seconds(10)).at_millis(at_millis).build()
    };
    let cooling = expiry.evaluate(&ready(T0 + 120_000)).unwrap();
    assert!(removed(&cooling).is_empty(), "the host would refuse: {cooling:?}");
    assert!(cooling[0].reason.contains("the host lets the group shrink from 00:10:00 UTC"), "{}", cooling[0].reason);

    let due = expiry.evaluate(&ready(T0 + 600_000)).unwrap();
    assert_eq!(removed(&due), ["old-a"], "{due:?}");
    assert!(due[0].reason.contains("its successor is Ready"), "{}", due[0].reason);
    assert_eq!(scaled_to(&due), [("general".to_string(), 4)], "the empty successor is held as the drain begins");
}

#[test]
fn a_rotation_holds_its_group_until_its_node_is_gone_and_the_next_begins() {
    let mut expiry = harness(json!({"expire-after-seconds": 30 * DAY}));
    expiry.evaluate(&cluster(0).build()).unwrap();
    let draining = || {
        SnapshotBuilder::new()
            .at_millis(T0 + 700_000)
            .group(GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 4, 10))
            .node(NodeBuilder::new("old-a", "general").age_seconds(40 * DAY).cordoned())
            .node(NodeBuilder::new("old-b", "general").age_seconds(35 * DAY))
            .node(NodeBuilder::new("successor", "general").age_seconds(600))
            .build()
    };
    let decisions = expiry.evaluate(&draining()).unwrap();
    assert_eq!(scaled_to(&decisions), [("general".to_string(), 4)], "held while old-a drains: {decisions:?}");
    assert!(decisions[0].reason.contains("node old-a is rotated: its removal is under way"), "{}", decisions[0].reason);
    let gone = || {
        SnapshotBuilder::new()
            .at_millis(T0 + 760_000)
            .group(GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 3, 10))
            .node(NodeBuilder::new("old-b", "general").age_seconds(35 * DAY))
            .node(NodeBuilder::new("successor", "general").age_seconds(660))
            .build()
    };
    let next = expiry.evaluate(&gone()).unwrap();
    assert_eq!(scaled_to(&next), [("general".to_string(), 4)], "old-a gone, old-b begins: {next:?}");
    assert!(next[0].reason.contains("node old-b"), "{}", next[0].reason);

    let mut two = harness(json!({"expire-after-seconds": 30 * DAY, "max-at-once": 2}));
    let next = two.evaluate(&draining()).unwrap();
    assert_eq!(scaled_to(&next), [("general".to_string(), 5)], "with two at once, old-b begins: {next:?}");
    assert!(next[0].reason.contains("node old-b"), "{}", next[0].reason);
}

#[test]
fn a_group_at_its_max_size_loses_the_node_outright_and_a_successor_that_never_comes_is_not_waited_for() {
    let full = sized(0, 3, 3).build();
    let decisions = harness(json!({"expire-after-seconds": 30 * DAY})).evaluate(&full).unwrap();
    assert_eq!(removed(&decisions), ["old-a"]);
    assert!(decisions[0].reason.contains("at its max-size of 3: no successor first"), "{}", decisions[0].reason);
    let fixed = SnapshotBuilder::new()
        .at_millis(T0)
        .group(GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(2, 2, 2))
        .node(NodeBuilder::new("old-a", "general").age_seconds(40 * DAY))
        .node(NodeBuilder::new("old-b", "general").age_seconds(35 * DAY))
        .build();
    let none = harness(json!({"expire-after-seconds": 30 * DAY})).evaluate(&fixed).unwrap();
    assert!(none.is_empty(), "min = max: no successor above, no loss below: {none:?}");

    let mut expiry = harness(json!({"expire-after-seconds": 30 * DAY, "successor-wait-seconds": 600}));
    expiry.evaluate(&cluster(0).build()).unwrap();
    let still = expiry.evaluate(&cluster(599).build()).unwrap();
    assert!(removed(&still).is_empty(), "{still:?}");
    let late = expiry.evaluate(&cluster(600).build()).unwrap();
    assert_eq!(removed(&late), ["old-a"], "{late:?}");
    assert!(late[0].reason.contains("its successor did not come in time"), "{}", late[0].reason);
}

/// T0 is Monday 00:00 UTC.
#[test]
fn rotations_begin_only_within_their_hours_and_one_begun_goes_on_past_them() {
    let night = json!({"expire-after-seconds": 30 * DAY, "hours": [{"from": "01:00", "to": "05:00", "days": ["mon"]}]});
    let mut expiry = harness(night.clone());
    assert!(expiry.evaluate(&cluster(0).build()).unwrap().is_empty(), "00:00 is before the window");
    let begun = expiry.evaluate(&cluster(3600).build()).unwrap();
    assert_eq!(scaled_to(&begun), [("general".to_string(), 4)], "01:00 Monday: {begun:?}");
    let after = sized(5 * 3600, 4, 10).node(NodeBuilder::new("successor", "general").age_seconds(600)).build();
    assert_eq!(removed(&expiry.evaluate(&after).unwrap()), ["old-a"], "05:00: the rotation begun goes on");
    let tuesday = harness(night).evaluate(&cluster(DAY + 3600).build()).unwrap();
    assert!(tuesday.is_empty(), "Tuesday is not in the window: {tuesday:?}");
}

#[test]
fn young_blocked_and_waiting_clusters_are_left_alone_and_bad_settings_name_the_field() {
    let young = harness(json!({"expire-after-seconds": 50 * DAY})).evaluate(&cluster(0).build()).unwrap();
    assert!(young.is_empty(), "{young:?}");

    let held = SnapshotBuilder::new()
        .at_millis(T0)
        .group(GroupBuilder::asg("general").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 2, 10))
        .node(NodeBuilder::new("pinned", "general").age_seconds(40 * DAY).blocked("PodDisruptionBudget shop/db"))
        .node(NodeBuilder::new("free", "general").age_seconds(31 * DAY))
        .build();
    let decisions = harness(json!({"expire-after-seconds": 30 * DAY})).evaluate(&held).unwrap();
    assert!(decisions[0].reason.contains("node free"), "the blocked node is older, the other goes: {decisions:?}");

    let waiting = cluster(0).pending_pods("shop", "web", 3, "1", "1Gi").build();
    let none = harness(json!({"expire-after-seconds": 30 * DAY})).evaluate(&waiting).unwrap();
    assert!(none.is_empty(), "pods wait for nodes: no rotation begins {none:?}");

    let error = Harness::<Expiry>::with_settings(json!({"hours": [{"from": "1am", "to": "05:00"}]})).err().unwrap();
    assert!(error.contains("hours[0].from: `1am` is not a time of day"), "{error}");
    let error = Harness::<Expiry>::with_settings(json!({"expire-after-seconds": 0})).err().unwrap();
    assert!(error.contains("expire-after-seconds must be more than 0, got 0"), "{error}");
    let error = Harness::<Expiry>::with_settings(json!({"expire-after": "30d"})).err().unwrap();
    assert!(error.contains("expire-after"), "{error}");
}

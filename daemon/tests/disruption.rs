//! What the default set disrupts on the simulator, and what it leaves alone: a lost node
//! repaired, spot warnings drained ahead of the reclaim, a disruption window, expired nodes
//! rotated, and a node kept by a pod that must not be disrupted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::path::Path;
use std::time::Duration;

use ballast::engine::record::{ActionResult, Record};
use ballast::sim::scenario::Scenario;
use serde_json::json;
use support::sim::{defaults, policy, recorded, recorded_with};

mod support;

/// Node repair end to end: one of three nodes is lost for good at 30 min (its kubelet dies).
/// Its pods are evicted at 35 min and get a new node at once (the lost node is not taken for
/// one booting), the group never backs off, and at 50 min the lost node's instance is
/// replaced; with repair off it stays, and costs, to the end.
#[test]
fn a_lost_node_is_replaced_after_twenty_minutes_and_its_pods_do_not_wait_for_it() {
    const LOSS: &str = "name: lost\nduration: 2h\nnode-groups:\n  - {id: general, instance-types: [m5.large], \
        min-size: 1, max-size: 10, desired-size: 3, node-losses: [{at: 30m, nodes: 1}]}\nworkloads:\n  \
        - {name: web, requests: {cpu: 500m, memory: 1Gi}, replicas: {constant: 9}}\n";
    let run = |repair: &str| {
        let text = format!("{LOSS}guardrails: {{replace-unready-after: {repair}}}\n");
        let scenario = Scenario::parse(Path::new("lost.yaml"), &text).unwrap();
        recorded_with(1, scenario, defaults())
    };
    let (repaired, recorder) = run("20m");
    let replaced: Vec<_> = recorder
        .records()
        .filter_map(|r| match r {
            Record::Decision(d) if d.plugin == "ballast" && d.reason.contains("has not been Ready since") => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_eq!(replaced[0].result, ActionResult::Done);
    let minute = (replaced[0].at_millis - recorder.records().next().map_or(0, |r| r.at_millis())) / 60_000;
    assert!((50..=51).contains(&minute), "replaced at minute {minute}");
    let backed_off = recorder
        .records()
        .any(|r| matches!(r, Record::Tick(t) if t.saw.groups.iter().any(|g| g.backoff_until_millis.is_some())));
    assert!(!backed_off, "a lost node is no launch failure");
    assert!(repaired.summary.worst_pending_seconds < 120.0, "{:?}", repaired.summary);

    let (kept, recorder) = run("0s");
    assert!(!recorder.records().any(|r| matches!(r, Record::Decision(d) if d.reason.contains("has not been Ready"))));
    assert!(repaired.summary.total_cost < kept.summary.total_cost, "{:?}\n{:?}", repaired.summary, kept.summary);
}

/// spot-storm: every warned node is drained and replaced before EC2 takes it, and when the
/// spot group cannot launch, the pods that tolerate spot go to on-demand at once.
#[test]
fn in_a_spot_storm_warned_nodes_are_drained_before_they_go_and_a_group_without_capacity_is_left_at_once() {
    let (report, recorder) = recorded("spot-storm");
    let s = &report.summary;
    assert!(s.spot_interruptions >= 5, "{s:?}");
    assert_eq!(s.reclaimed_undrained, 0, "every warned node was drained in its two minutes: {s:?}");
    let decisions: Vec<_> = recorder
        .records()
        .filter_map(|r| match r {
            Record::Decision(d) => Some(d),
            _ => None,
        })
        .collect();
    let warned = decisions.iter().filter(|d| d.plugin == "ballast" && d.reason.contains("spot interruption")).count();
    assert_eq!(warned as u64, s.spot_interruptions, "one record per warning");
    // From 2h30m the spot group cannot launch: while it backs off, every scale-up goes to
    // on-demand, and a warned spot node is not replaced in its own group.
    let mut backing_off = std::collections::BTreeSet::new();
    let mut during = Vec::new();
    for record in recorder.records() {
        match record {
            Record::Tick(t) => {
                let spot = t.saw.groups.iter().find(|g| g.id == "spot").unwrap();
                if spot.backoff_until_millis.is_some_and(|until| until > t.at_millis) {
                    backing_off.insert(t.tick);
                }
            }
            Record::Decision(d) if backing_off.contains(&d.tick) => during.push(d),
            _ => {}
        }
    }
    assert!(!backing_off.is_empty(), "the spot group's launch failures are seen");
    let scaled: Vec<&str> = during
        .iter()
        .filter(|d| d.plugin == "binpack")
        .filter_map(|d| match &d.proposed {
            ballast_sdk::Action::ScaleTo { group, .. } => Some(group.as_str()),
            _ => None,
        })
        .collect();
    assert!(scaled.contains(&"on-demand") && !scaled.contains(&"spot"), "{scaled:?}");
    assert!(
        during
            .iter()
            .filter(|d| d.reason.contains("spot interruption"))
            .all(|d| d.reason.contains("no replacement in spot"))
    );
    // Once spot launches again, consolidation replaces on-demand nodes whose pods tolerate
    // spot by spot nodes (launch first), and the replaced nodes are then removed.
    let replacements: Vec<_> = decisions
        .iter()
        .filter(|d| d.plugin == "consolidation" && d.reason.starts_with("replace "))
        .filter(|d| !backing_off.contains(&d.tick))
        .collect();
    assert!(!replacements.is_empty(), "no node was replaced by a cheaper one");
    for r in &replacements {
        assert!(matches!(&r.proposed, ballast_sdk::Action::ScaleTo { group, .. } if group == "spot"), "{r:?}");
        let node = r.reason.split_whitespace().nth(1).unwrap();
        let removed = decisions.iter().any(|d| {
            d.tick > r.tick
                && matches!(&d.proposed, ballast_sdk::Action::RemoveNodes { nodes } if nodes.iter().any(|n| n == node))
        });
        assert!(removed || r.tick + 60 > decisions.last().unwrap().tick, "{node} was replaced but never removed");
    }
}

/// A change freeze in business hours: a disruption window (`0 9 * * mon-fri`, 4 hours, no
/// node may leave) over a web tier that shrinks at 09:00. The nodes it no longer needs stay
/// until the window shuts at 13:00 and go then; without the window they go within the hour.
/// The policies see the window on every node and propose no removal it would refuse.
#[test]
fn a_disruption_window_keeps_every_node_until_it_shuts() {
    let text = |windows: &str| {
        format!(
            "name: freeze\nduration: 7h\nstart: \"08:00\"\nnode-groups:\n  - {{id: general, instance-types: [m5.large], min-size: 1, max-size: 20, desired-size: 1}}\nguardrails:\n  disruption-budget: {{windows: [{windows}]}}\nworkloads:\n  - {{name: agent, namespace: kube-system, kind: daemon-set, requests: {{cpu: 100m, memory: 128Mi}}}}\n  - {{name: web, requests: {{cpu: 900m, memory: 1Gi}}, replicas: {{linear: [{{at: 0s, replicas: 16}}, {{at: 1h, replicas: 16}}, {{at: 1h30m, replicas: 3}}, {{at: 7h, replicas: 3}}]}}}}\n"
        )
    };
    let removals_began = |windows: &str| {
        let scenario = Scenario::parse(Path::new("freeze.yaml"), &text(windows)).unwrap();
        let start = ballast::sim::world::EPOCH_MILLIS + scenario.start_of_day();
        let (report, recorder) = recorded_with(1, scenario, defaults());
        let mut began = Vec::new();
        let mut refused_for_the_window = 0;
        for record in recorder.records() {
            let Record::Decision(d) = record else { continue };
            if matches!(d.result, ActionResult::Started) {
                began.push(Duration::from_millis(d.at_millis - start));
            }
            if d.guard.rules().contains(&ballast::engine::rule::Rule::DisruptionWindow) {
                refused_for_the_window += 1;
            }
        }
        (began, refused_for_the_window, report.summary)
    };
    let (open, shut) = (Duration::from_secs(3600), Duration::from_secs(5 * 3600));

    let (free, _, free_summary) = removals_began("");
    assert!(free.iter().any(|t| *t > open && *t < shut), "without a window, removals by day: {free:?}");

    let (frozen, refused, frozen_summary) = removals_began("{schedule: '0 9 * * mon-fri', duration: 4h, nodes: 0}");
    assert!(frozen.iter().all(|t| *t < open || *t >= shut), "no removal began 09:00-13:00 UTC: {frozen:?}");
    assert!(frozen.iter().any(|t| *t >= shut), "the idle nodes went once the window shut: {frozen:?}");
    assert_eq!(refused, 0, "no policy proposed what the window holds");
    assert!(
        frozen_summary.total_cost > free_summary.total_cost,
        "the idle nodes cost until 13:00: ${:.2} frozen, ${:.2} not",
        frozen_summary.total_cost,
        free_summary.total_cost
    );
}

/// Node rotation (`expiry` at its defaults, before `consolidation` in the default chain):
/// nodes that started 719 hours old reach the 720 hours of `expire-after-seconds` an hour in
/// and are replaced one at a time, each group grown by one first and the old node drained once
/// the new one is Ready (and the host lets the group shrink), so the pods on it move to a
/// node already there and never wait for a boot; the successor, empty until then (and, with
/// no minimum node age, removable), is not taken by consolidation. In a group at its max-size there is no
/// room for a successor: each node goes outright, and its pods wait for the node launched
/// after it.
#[test]
fn expired_nodes_are_replaced_one_at_a_time_and_their_pods_do_not_wait_for_a_boot() {
    let run = |max_size: u32| {
        let text = format!(
            "name: rotation\nduration: 2h\nguardrails: {{min-node-age: 0s}}\nnode-groups:\n  - {{id: general, instance-types: [m5.large], min-size: 2, max-size: {max_size}, desired-size: 3, initial-node-age: 719h}}\nworkloads:\n  - {{name: agent, namespace: kube-system, kind: daemon-set, requests: {{cpu: 100m, memory: 128Mi}}}}\n  - {{name: web, requests: {{cpu: 900m, memory: 1Gi}}, replicas: {{constant: 5}}}}\n"
        );
        let mut chain = defaults();
        let at = chain.iter().position(|p| p.name == "consolidation").unwrap();
        chain.insert(at, policy("expiry", json!({})));
        let scenario = Scenario::parse(Path::new("rotation.yaml"), &text).unwrap();
        let start = ballast::sim::world::EPOCH_MILLIS + scenario.start_of_day();
        let (report, recorder) = recorded_with(1, scenario, chain);
        let records: Vec<_> = recorder
            .records()
            .filter_map(|r| match r {
                Record::Decision(d) if d.plugin == "expiry" => Some(d.clone()),
                _ => None,
            })
            .collect();
        let rotated: Vec<Duration> = records
            .iter()
            .filter(|d| matches!(d.result, ActionResult::Started))
            .map(|d| Duration::from_millis(d.at_millis - start))
            .collect();
        let records: Vec<String> = records.iter().map(|d| format!("tick {}: {}", d.tick, d.reason)).collect();
        (report.summary, rotated, records)
    };
    let (summary, rotated, records) = run(10);
    // Each rotation: its start, its removal, and each run of waits alike as its first record
    // and one for the rest of the run, folded: for the successor, the cooldown, the drain.
    // Unfolded, its 60-odd ticks of waiting would be a record each.
    assert!(records.len() <= 8 * 3, "a rotation's waits fold into a few records: {records:#?}");
    assert_eq!(rotated.len(), 3, "each of the three first nodes, once: {rotated:?}");
    assert!(rotated[0] >= Duration::from_secs(3600), "none before it is an hour old: {rotated:?}");
    assert!(rotated.windows(2).all(|w| w[1] - w[0] >= Duration::from_secs(600)), "one at a time: {rotated:?}");
    assert_eq!(summary.pending_pod_minutes, 0.0, "{summary:?}");
    assert_eq!(summary.peak_nodes, 4, "one successor at a time: {summary:?}");

    let (outright, rotated, _) = run(3);
    assert_eq!(rotated.len(), 3, "{rotated:?}");
    assert!(outright.pending_pod_minutes > 1.0, "the drained pods waited for a boot: {outright:?}");
}

/// Pods annotated `karpenter.sh/do-not-disrupt` (the scenario's `do-not-disrupt`) keep
/// their node: consolidation would replace the m5.large web runs on by a cheaper t3.medium
/// and move its pod; with the annotation the pod stays, and so does the dearer node.
#[test]
fn a_pod_that_must_not_be_disrupted_keeps_its_node_when_a_cheaper_one_would_do() {
    let run = |do_not_disrupt: bool| {
        let text = format!(
            "name: pinned\nduration: 1h\nnode-groups:\n  - {{id: general, instance-types: [m5.large], min-size: 0, max-size: 5, desired-size: 1}}\n  - {{id: small, instance-types: [t3.medium], min-size: 0, max-size: 5}}\nworkloads:\n  - {{name: web, do-not-disrupt: {do_not_disrupt}, requests: {{cpu: 500m, memory: 1Gi}}, replicas: {{constant: 1}}}}\n"
        );
        let scenario = Scenario::parse(Path::new("pinned.yaml"), &text).unwrap();
        recorded_with(1, scenario, defaults()).0.summary
    };
    let (free, kept) = (run(false), run(true));
    assert_eq!((free.pods_evicted, free.nodes_removed), (1, 1), "replaced by a t3.medium: {free:?}");
    assert_eq!((kept.pods_evicted, kept.nodes_removed), (0, 0), "the pod and its node stay: {kept:?}");
    assert!(kept.total_cost > free.total_cost, "${:.3} kept, ${:.3} replaced", kept.total_cost, free.total_cost);
}

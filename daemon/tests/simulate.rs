//! The simulator as users meet it: reports, baselines, scenario errors, the journal, the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ballast::bundled;
use ballast::engine::Mode;
use ballast::engine::journal;
use ballast::engine::record::{ActionResult, Record};
use ballast::policy::{HostConfig, PluginSpec, PolicyHost};
use ballast::sim::scenario::{self, Scenario};
use ballast::sim::{SimReport, Simulation};
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn host() -> PolicyHost {
    PolicyHost::new(HostConfig { deterministic: true, cache_dir: None, ..HostConfig::default() }).unwrap()
}

fn policy(name: &str, settings: serde_json::Value) -> PluginSpec {
    bundled::spec(name, settings).unwrap()
}

fn simulate(scenario: &str, seed: u64, policies: Vec<PluginSpec>) -> SimReport {
    let scenario = scenario::resolve(scenario).unwrap();
    let sim = Simulation { scenario, seed, policies, mode: Mode::Enforce, journal: None };
    sim.run(&host(), &mut |_, _| {}).unwrap()
}

fn defaults() -> Vec<PluginSpec> {
    bundled::default_specs()
}

/// A shipped scenario under the default set, with every record kept.
fn recorded(name: &str) -> (SimReport, ballast::engine::record::Recorder) {
    let scenario = scenario::resolve(name).unwrap();
    let sim = Simulation { seed: scenario.seed, scenario, policies: defaults(), mode: Mode::Enforce, journal: None };
    let recorder = ballast::engine::record::Recorder::new(1 << 20, None);
    let report = sim.run_until(&host(), &mut |_, _| {}, Some(recorder.clone()), &Default::default()).unwrap();
    (report, recorder)
}

/// Whether `headroom` grew a group, done, for a reason that says `why`.
fn headroom_acted(recorder: &ballast::engine::record::Recorder, why: &str) -> bool {
    recorder.records().any(|r| {
        matches!(r, Record::Decision(d) if d.plugin == "headroom"
            && d.reason.contains(why)
            && matches!(d.result, ActionResult::Done))
    })
}

#[test]
fn same_scenario_and_seed_give_the_same_report() {
    let a = simulate("mixed-fargate", 42, defaults());
    let b = simulate("mixed-fargate", 42, defaults());
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    assert!(a.summary.ticks > 2000 && a.summary.pods_on_ec2 > 0 && a.summary.pods_on_fargate > 0, "{:?}", a.summary);

    // The seed matters: boot times and spike times move.
    let c = simulate("mixed-fargate", 43, defaults());
    assert_ne!(a.summary, c.summary);
}

#[test]
fn on_spiky_batch_binpack_waits_less_than_static_min_and_costs_less_than_static_peak() {
    let binpack = simulate("spiky-batch", 3, vec![policy("binpack", json!(null))]);
    let static_min = simulate("spiky-batch", 3, vec![policy("static-size", json!({"otherwise": "min"}))]);
    let peak = json!({"sizes": binpack.peak_group_sizes, "otherwise": "min"});
    let static_peak = simulate("spiky-batch", 3, vec![policy("static-size", peak)]);

    let (b, min, max) = (&binpack.summary, &static_min.summary, &static_peak.summary);
    assert!(
        b.pending_pod_minutes < min.pending_pod_minutes,
        "binpack {} vs static-min {} pending pod-minutes",
        b.pending_pod_minutes,
        min.pending_pod_minutes
    );
    assert!(b.total_cost < max.total_cost, "binpack ${} vs static-peak ${}", b.total_cost, max.total_cost);
    // The baselines behave as baselines: static-peak never waits, static-min never pays for more.
    assert!(max.pending_pod_minutes < b.pending_pod_minutes);
    assert!(min.total_cost < b.total_cost);
}

/// One m5.large group ($0.096/h, 1930m CPU allocatable), a DaemonSet taking 100m of every
/// node, and for one hour two replicas of 915m: each replica is half of what the DaemonSet
/// leaves, so the bound is one node-hour, $0.096, whatever the policy. A Fargate-only workload
/// (its selector matches no group) adds its billed price: 4 pods of 0.25 vCPU / 1 GB
/// (250m / 512Mi plus 256 MiB overhead) at $0.04048 per vCPU-hour and $0.004445 per
/// GB-hour, $0.05826/h in all.
const BOUND_BY_HAND: &str = "name: bound\nduration: 1h\nfargate: {}\nnode-groups:\n  - {id: general, instance-types: [m5.large], min-size: 0, max-size: 5}\nworkloads:\n  - {name: agent, namespace: kube-system, kind: daemon-set, requests: {cpu: 100m, memory: 64Mi}}\n  - {name: web, requests: {cpu: 915m, memory: 100Mi}, replicas: {constant: 2}}\n  - {name: api, requests: {cpu: 250m, memory: 512Mi}, replicas: {constant: 4}, node-selector: {tier: serverless}}\n";

#[test]
fn the_lower_bound_of_a_tiny_scenario_is_what_it_is_by_hand_and_no_set_beats_it() {
    let scenario = Scenario::parse(Path::new("bound.yaml"), BOUND_BY_HAND).unwrap();
    let run = |policies| {
        let sim = Simulation { scenario: scenario.clone(), seed: 1, policies, mode: Mode::Enforce, journal: None };
        sim.run(&host(), &mut |_, _| {}).unwrap().summary
    };
    let default = run(defaults());
    let by_hand = 0.096 + 4.0 * (0.25 * 0.04048 + 1.0 * 0.004445);
    assert!((default.lower_bound_cost - by_hand).abs() < 1e-4, "{} vs {by_hand}", default.lower_bound_cost);
    assert!(default.total_cost >= default.lower_bound_cost, "{default:?}");
    let static_peak = run(vec![policy("static-size", json!({"sizes": {"general": 5}}))]);
    assert_eq!(static_peak.lower_bound_cost, default.lower_bound_cost, "the bound is the demand's, not the policy's");
    assert!(static_peak.cost_to_bound > default.cost_to_bound, "{static_peak:?}");
}

/// Every shipped scenario under the default set: the bound holds, and the journal stays
/// readable: no proposal that changed nothing (refused, unchanged) is more than a tenth of
/// the decision records, unless it is one folded run (its first record and its count).
#[test]
fn on_every_shipped_scenario_the_default_set_costs_above_the_bound_and_its_records_stay_readable() {
    for (name, _) in scenario::BUILT_IN {
        let (report, recorder) = recorded(name);
        let s = report.summary;
        assert!(s.lower_bound_cost > 0.0 && s.total_cost >= s.lower_bound_cost, "{name}: {s:?}");

        let mut noise: std::collections::BTreeMap<String, usize> = Default::default();
        let mut total = 0;
        for record in recorder.records() {
            if let Record::Decision(d) = record {
                total += 1;
                if matches!(d.result, ActionResult::NotApplied | ActionResult::Unchanged) {
                    *noise.entry(format!("{}: {}", d.plugin, d.proposed)).or_default() += 1;
                }
            }
        }
        for (proposal, n) in noise {
            assert!(n * 10 <= total || n <= 2, "{name}: `{proposal}` changed nothing {n} times in {total} records");
        }
    }
}

/// spiky-batch on seed 1: each crunch burst lands in the room `headroom` made for it a
/// second before it was due, so none of its pods is ever seen pending. The default set
/// does not take that for a burst still to come and ask for its room again: the group
/// stays under its max-size and the run costs at least a quarter less than `ca-like`.
#[test]
fn a_burst_that_lands_early_in_its_room_is_not_given_room_twice() {
    let default = simulate("spiky-batch", 1, defaults());
    let ca_like = simulate("spiky-batch", 1, vec![policy("binpack", json!(null))]);
    let max_size = scenario::resolve("spiky-batch").unwrap().node_groups[0].max_size;
    let peak = default.peak_group_sizes["general"];
    assert!(peak < max_size, "the group reached {peak} of {max_size}: room asked for twice");
    let (d, ca) = (default.summary.total_cost, ca_like.summary.total_cost);
    assert!(d < 0.75 * ca, "default ${d:.2} vs ca-like ${ca:.2}");
}

/// The summary counts the pods drains evicted, the disruption behind "nodes removed": on
/// steady-web `ca-like` removes no node and evicts nothing; the default set removes two
/// nodes that ran pods, and evicts at least one pod and at most what two nodes hold.
#[test]
fn the_summary_counts_the_pods_drains_evicted() {
    let ca_like = simulate("steady-web", 1, vec![policy("binpack", json!(null))]).summary;
    assert_eq!((ca_like.nodes_removed, ca_like.pods_evicted), (0, 0), "{ca_like:?}");
    let default = simulate("steady-web", 1, defaults()).summary;
    assert_eq!(default.nodes_removed, 2, "{default:?}");
    let most = default.nodes_removed * 29; // an m5.large's pod slots
    assert!((1..=most).contains(&default.pods_evicted), "{default:?}");
}

/// deploy/examples/scenarios/spot-mixed.yaml: a diversified spot group (m5.xlarge first,
/// the cheaper m5a.large after it) beside on-demand m5.xlarge. EC2 launches the cheapest spot
/// type, and the default set prices a spot node at it, so the hourly ETL job runs on spot.
/// Priced at the group's dearest type with the smallest type's room, a spot slot looked
/// dearer than an on-demand one: the job went on-demand, the spot group peaked at 6 nodes
/// against 9, and the run cost $5.05.
#[test]
fn a_diversified_spot_group_is_priced_at_the_type_ec2_launches_and_takes_the_batch() {
    let path = root().join("deploy/examples/scenarios/spot-mixed.yaml");
    let default = simulate(path.to_str().unwrap(), 4, defaults());
    let (spot, on_demand) = (default.peak_group_sizes["spot"], default.peak_group_sizes["on-demand"]);
    assert!(spot > 2 * on_demand, "spot peaked at {spot} nodes, on-demand at {on_demand}");
    let cost = default.summary.total_cost;
    assert!(cost < 4.5, "the run cost ${cost:.2}");
}

/// nightly-batch: the etl job runs on a schedule (a CronJob's, 40 pods every 15 minutes
/// from 01:00), so `headroom` makes room before each run is due, the first one included,
/// and `consolidation` does not take the room it removes between runs, bought back before
/// the next with no pod waiting, for regret. A run's nodes empty together and go together,
/// in one removal: an empty node disrupts nothing, so neither the policy nor the host's
/// disruption budget takes them one a tick. Pods barely wait (a tenth of Cluster
/// Autoscaler's pending time at most), for less than its spare room costs.
#[test]
fn a_scheduled_jobs_runs_find_their_room_ready_from_the_first_one_on() {
    let (default, recorder) = recorded("nightly-batch");
    let first = headroom_acted(&recorder, "the run of job/data/etl due at 01:00:00 UTC");
    assert!(first, "headroom grew a group before the first run was due");
    let all_at_once = |r: &Record| {
        matches!(r, Record::Decision(d) if d.plugin == "consolidation"
            && matches!(&d.proposed, ballast_sdk::Action::RemoveNodes { nodes } if nodes.len() >= 9)
            && matches!(d.guard, ballast::engine::record::GuardOutcome::Accepted))
    };
    let runs_removed_whole = recorder.records().filter(|r| all_at_once(r)).count();
    assert!(runs_removed_whole >= 12, "only {runs_removed_whole} of 13 runs' nodes went in one removal");
    let ca_like = simulate("nightly-batch", 11, vec![policy("binpack", serde_json::Value::Null)]);
    let (d, ca) = (&default.summary, &ca_like.summary);
    assert!(d.pending_pod_minutes * 10.0 < ca.pending_pod_minutes, "default {d:?}\nca-like {ca:?}");
    assert!(d.total_cost < ca.total_cost, "default {d:?}\nca-like {ca:?}");
}

/// flash-sale: the storefront climbs from 4 to 60 replicas in five minutes. The default set
/// makes room ahead of the climb (headroom's `ramp`), so its pods wait less than under
/// Cluster Autoscaler's spare room, for less than that room costs; and no room past the
/// storefront's autoscaler's max.
#[test]
fn in_a_flash_sale_room_comes_ahead_of_the_climb_and_pods_wait_less_than_under_ca_like() {
    let (default, recorder) = recorded("flash-sale");
    let ahead = headroom_acted(&recorder, "the climb of deployment/shop/storefront");
    assert!(ahead, "headroom grew a group ahead of the storefront's climb");
    let ca_like = simulate("flash-sale", 21, vec![policy("binpack", serde_json::Value::Null)]);
    let (d, ca) = (&default.summary, &ca_like.summary);
    assert!(d.pending_pod_minutes < ca.pending_pod_minutes, "default {d:?}\nca-like {ca:?}");
    assert!(d.total_cost < ca.total_cost, "default {d:?}\nca-like {ca:?}");

    // The storefront's HorizontalPodAutoscaler stops at 60 (contract 0.1.7): the room asked
    // near the top of the climb stops there too (the free slots cover what is left, so no
    // decision is made). Without it, the rate's last 90 s of room is bought past the top and
    // kept through the cooldown after a scale-up.
    let mut unbounded = scenario::resolve("flash-sale").unwrap();
    let storefront = unbounded.workloads.iter_mut().find(|w| w.name == "storefront").unwrap();
    assert!(storefront.autoscaler.take().is_some(), "the shipped storefront has its autoscaler");
    let sim = Simulation { seed: 21, scenario: unbounded, policies: defaults(), mode: Mode::Enforce, journal: None };
    let unbounded = sim.run(&host(), &mut |_, _| {}).unwrap().summary;
    assert!(d.total_cost < unbounded.total_cost, "bounded {d:?}\nunbounded {unbounded:?}");
    assert!(d.pending_pod_minutes <= unbounded.pending_pod_minutes, "bounded {d:?}\nunbounded {unbounded:?}");
}

/// morning-ramp: the web tier grows a pod or two at a time, each time onto the cheapest node
/// for what waits (an m5.large, three of its pods). Consolidation merges two such nodes into
/// one c5.xlarge, which holds six for 11% less, launching first; with merges off the ramp
/// stays on m5.large and costs more, and pods wait no less.
#[test]
fn in_a_morning_ramp_small_nodes_are_merged_into_fewer_cheaper_ones() {
    let (merged, recorder) = recorded("morning-ramp");
    let merges = recorder
        .records()
        .filter(|r| {
            matches!(r, Record::Decision(d) if d.plugin == "consolidation"
                && d.reason.starts_with("merge ")
                && d.reason.contains("into a new c5.xlarge in compute")
                && matches!(d.result, ActionResult::Done))
        })
        .count();
    assert!(merges > 0, "no merge was made");
    let mut unmerged = defaults();
    let consolidation = unmerged.iter_mut().find(|p| p.name == "consolidation").unwrap();
    consolidation.settings = json!({ "merge-max-nodes": 1 });
    let seed = scenario::resolve("morning-ramp").unwrap().seed;
    let unmerged = simulate("morning-ramp", seed, unmerged).summary;
    let m = &merged.summary;
    assert!(m.total_cost < unmerged.total_cost * 0.95, "merged {m:?}\nunmerged {unmerged:?}");
    assert!(m.pending_pod_minutes <= unmerged.pending_pod_minutes, "merged {m:?}\nunmerged {unmerged:?}");
}

/// The default set follows the host's cooldowns as configured (contract 0.1.6), not a copy of
/// their defaults: an operator who shortens `scale-down-after-scale-up` to 2 minutes on
/// spiky-batch (one group) sees nodes go sooner after a growth, and pays less.
#[test]
fn a_shorter_scale_down_cooldown_is_followed_by_the_default_set() {
    let run = |cooldown_seconds: u64| {
        let mut scenario = scenario::resolve("spiky-batch").unwrap();
        scenario.guardrails.cooldown.scale_down_after_scale_up = Duration::from_secs(cooldown_seconds);
        let sim =
            Simulation { seed: scenario.seed, scenario, policies: defaults(), mode: Mode::Enforce, journal: None };
        let recorder = ballast::engine::record::Recorder::new(1 << 20, None);
        let report = sim.run_until(&host(), &mut |_, _| {}, Some(recorder.clone()), &Default::default()).unwrap();
        (report, soonest_removal_after_growth(&recorder))
    };
    let (stock, stock_gap) = run(600);
    let (short, short_gap) = run(120);
    assert!(stock_gap.is_some_and(|gap| gap >= 600_000), "10-minute cooldown: {stock_gap:?}");
    assert!(short_gap.is_some_and(|gap| (120_000..600_000).contains(&gap)), "2-minute cooldown: {short_gap:?}");
    assert!(short.summary.total_cost < stock.summary.total_cost, "{:?}\n{:?}", short.summary, stock.summary);
}

/// The shortest time from a growth the host made to the next removal a policy began.
fn soonest_removal_after_growth(recorder: &ballast::engine::record::Recorder) -> Option<u64> {
    let mut grew_at = None;
    let mut soonest: Option<u64> = None;
    for record in recorder.records() {
        let Record::Decision(d) = record else { continue };
        match (&d.proposed, &d.result) {
            (ballast_sdk::Action::ScaleTo { .. }, ActionResult::Done) if d.plugin != "consolidation" => {
                grew_at = Some(d.at_millis)
            }
            (ballast_sdk::Action::RemoveNodes { .. }, ActionResult::Started) if d.plugin == "consolidation" => {
                if let Some(at) = grew_at.take() {
                    soonest = Some(soonest.map_or(d.at_millis - at, |s| s.min(d.at_millis - at)));
                }
            }
            _ => {}
        }
    }
    soonest
}

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
        let sim = Simulation { seed: 1, scenario, policies: defaults(), mode: Mode::Enforce, journal: None };
        let recorder = ballast::engine::record::Recorder::new(1 << 20, None);
        let report = sim.run_until(&host(), &mut |_, _| {}, Some(recorder.clone()), &Default::default()).unwrap();
        (report, recorder)
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

fn scenario_error(text: &str) -> String {
    Scenario::parse(Path::new("bad.yaml"), text).unwrap_err().to_string()
}

const GOOD: &str = "name: t\nduration: 1h\nnode-groups:\n  - {id: general, instance-types: [m5.large], min-size: 1, max-size: 5}\nworkloads:\n  - {name: web, requests: {cpu: 500m}, replicas: {constant: 3}, node-group: general}\n";

#[test]
fn a_bad_scenario_names_the_file_the_field_and_the_value() {
    assert!(Scenario::parse(Path::new("good.yaml"), GOOD).is_ok());

    let unknown_field = scenario_error(&GOOD.replace("min-size: 1,", "min-size: 1, min-nodes: 2,"));
    assert!(unknown_field.starts_with("bad.yaml: field `node-groups[0]"), "{unknown_field}");
    assert!(unknown_field.contains("unknown field `min-nodes`"), "{unknown_field}");

    let negative = scenario_error(&GOOD.replace("constant: 3", "constant: -3"));
    assert!(negative.starts_with("bad.yaml: field `workloads[0].replicas.constant`"), "{negative}");
    assert!(negative.contains("-3"), "{negative}");

    let unknown_group = scenario_error(&GOOD.replace("node-group: general", "node-group: gpu"));
    assert_eq!(unknown_group, "bad.yaml: field `workloads[0].node-group`: unknown node group `gpu`; known: general");

    let unknown_type = scenario_error(&GOOD.replace("m5.large", "m9.huge"));
    assert!(
        unknown_type.contains("node-groups[0].instance-types[0]") && unknown_type.contains("`m9.huge`"),
        "{unknown_type}"
    );

    let budget = |value: &str| {
        GOOD.replace(
            "node-group: general",
            &format!("node-group: general, disruption-budget: {{max-unavailable: {value}}}"),
        )
    };
    assert!(Scenario::parse(Path::new("good.yaml"), &budget("\"34%\"")).is_ok());
    let bad_percent = scenario_error(&budget("\"120%\""));
    assert!(bad_percent.contains("workloads[0].disruption-budget.max-unavailable"), "{bad_percent}");
    assert!(bad_percent.contains("`120%`"), "{bad_percent}");

    let late_loss = scenario_error(&GOOD.replace("max-size: 5", "max-size: 5, node-losses: [{at: 2h, nodes: 1}]"));
    assert_eq!(
        late_loss,
        "bad.yaml: field `node-groups[0].node-losses[0].at`: `2h` is not before the end of the run (1h)"
    );

    let upside_down =
        scenario_error(&GOOD.replace("node-group: general", "autoscaler: {min-replicas: 5, max-replicas: 3}"));
    assert_eq!(
        upside_down,
        "bad.yaml: field `workloads[0].autoscaler.max-replicas`: 3 must be at least 1 and at least min-replicas 5"
    );

    let bad_duration = scenario_error(&GOOD.replace("duration: 1h", "duration: soon"));
    assert!(bad_duration.contains("field `duration`") && bad_duration.contains("`soon`"), "{bad_duration}");
}

#[test]
fn every_shipped_scenario_and_the_reference_parse() {
    for (name, _) in scenario::BUILT_IN {
        scenario::resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let dir = root().join("deploy/examples/scenarios");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        files += 1;
    }
    assert!(files >= 5, "four scenarios and the reference");
}

fn ballast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(root())
        .env("BALLAST_CACHE_DIR", root().join("target/test-component-cache"))
        .env("COLUMNS", "200")
        .output()
        .expect("ballast runs")
}

#[test]
fn simulate_with_no_arguments_ends_with_the_summary_and_draws_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("chart.svg");
    let png = dir.path().join("chart.png");
    let out = ballast(&["simulate", "--chart", svg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("mixed-fargate"), "{text}");
    for needle in [
        "total cost",
        "cost per hour",
        "pending pod-minutes",
        "worst pending time",
        "scale-ups",
        "scale-downs",
        "nodes removed",
        "pods evicted (by drains)",
        "pods started on Fargate",
        "pods started on EC2",
        "mean utilisation",
    ] {
        assert!(text.contains(needle), "summary lacks {needle}: {text}");
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    for label in ["simulated time (hours)", "vCPU", "pending pods", "demand", "capacity", "cost ($/h)", "lower bound"] {
        assert!(chart.contains(label), "chart lacks the label {label:?}");
    }

    let out = ballast(&["simulate", "--scenario", "steady-web", "--chart", png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000);
}

#[test]
fn compare_prints_one_row_per_set() {
    let out =
        ballast(&["simulate", "--scenario", "steady-web", "--compare", "ca-like", "escalator-like", "static-min"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for set in ["ca-like", "escalator-like", "static-min"] {
        assert_eq!(text.lines().filter(|l| l.contains(&format!(" {set} "))).count(), 1, "{text}");
    }
    let out = ballast(&["simulate", "--compare", "no-such-set"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a built-in set"));
}

/// `--seeds`: every set on every seed; each run is the one `--seed` gives, and the table
/// says how each set fares across the seeds against the first. Without `--compare`, the
/// chain given, or the default set.
#[test]
fn compare_over_seeds_runs_every_set_on_every_seed_and_sums_them_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.yaml");
    std::fs::write(&file, GOOD.replace("constant: 3", "constant: 6")).unwrap();
    let scenario = file.to_str().unwrap();
    let compare = ["simulate", "--scenario", scenario, "--compare", "ca-like", "static-min", "--seeds", "1-3"];

    let out = ballast(&[&compare[..], &["-o", "json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let pairs: Vec<(&str, u64)> =
        runs.iter().map(|r| (r["set"].as_str().unwrap(), r["seed"].as_u64().unwrap())).collect();
    assert_eq!(
        pairs,
        [("ca-like", 1), ("ca-like", 2), ("ca-like", 3), ("static-min", 1), ("static-min", 2), ("static-min", 3)]
    );
    let alone = ballast(&["simulate", "--scenario", scenario, "--compare", "ca-like", "--seed", "2", "-o", "json"]);
    let alone: Vec<serde_json::Value> = serde_json::from_slice(&alone.stdout).unwrap();
    assert_eq!(runs[1]["summary"], alone[0]["summary"], "the sweep's seed 2 is --seed 2");

    let out = ballast(&compare);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("seeds 1, 2, 3") && text.contains("seeds no dearer than ca-like"), "{text}");
    let row = text.lines().find(|l| l.contains(" static-min ")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(" of 3"), "{row}");

    let clash = ballast(&[&compare[..], &["--seed", "4"]].concat());
    assert!(!clash.status.success() && String::from_utf8_lossy(&clash.stderr).contains("--seed"));

    // Without --compare: the --policy chain, else the default set.
    for (chain, set) in [(&["--policy", "binpack"][..], "binpack"), (&[][..], "default")] {
        let args = [&["simulate", "--scenario", scenario, "--seeds", "1,3", "-o", "json"][..], chain].concat();
        let out = ballast(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let pairs: Vec<(&str, u64)> =
            runs.iter().map(|r| (r["set"].as_str().unwrap(), r["seed"].as_u64().unwrap())).collect();
        assert_eq!(pairs, [(set, 1), (set, 3)]);
    }
}

#[test]
fn a_journal_survives_a_kill_in_the_middle_of_a_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("decisions.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["simulate", "--scenario", "morning-ramp", "--journal", journal_path.to_str().unwrap()])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a good number of records, then kill -9.
    let started = Instant::now();
    loop {
        let lines = std::fs::read(&journal_path).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0);
        if lines > 500 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the journal never grew");
        assert!(child.try_wait().unwrap().is_none(), "the simulation ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let bytes = std::fs::read(&journal_path).unwrap();
    let complete_lines = bytes.iter().filter(|&&c| c == b'\n').count();
    let contents = journal::read(&journal_path).unwrap();
    assert_eq!(contents.records.len(), complete_lines, "every complete line is a readable record");
    assert!(contents.skipped.len() <= 1, "at most a torn last line: {:?}", contents.skipped);
    assert!(contents.records.iter().any(|r| matches!(r, Record::Decision(_))));
    let ticks: Vec<u64> = contents.records.iter().map(Record::tick).collect();
    assert!(ticks.windows(2).all(|w| w[0] <= w[1]), "records are in tick order");

    // A torn tail does not break the reader or the next writer.
    std::fs::write(&journal_path, [bytes.as_slice(), b"{\"record\":\"tick\",\"ti"].concat()).unwrap();
    let mut journal = journal::Journal::open(&journal_path, false).unwrap();
    journal.append(&contents.records[0]).unwrap();
    drop(journal);
    let reread = journal::read(&journal_path).unwrap();
    assert_eq!(reread.records.len(), contents.records.len() + 1);
    assert_eq!(reread.skipped.len(), contents.skipped.len() + 1);

    let out = ballast(&["decisions", "--journal", journal_path.to_str().unwrap(), "--tail", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped an unreadable record"));
}

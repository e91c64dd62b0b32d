//! The simulator as users meet it: reports, baselines, scenario errors, the journal, the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ballast::engine::Mode;
use ballast::engine::journal;
use ballast::engine::record::Record;
use ballast::sim::Simulation;
use ballast::sim::scenario::{self, Scenario};
use serde_json::json;
use support::sim::{defaults, host, policy, recorded_with, root, simulate};

mod support;

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
/// GB-hour, $0.05826/h in all. A stateful set of 2-CPU pods on EBS can run nowhere (not on
/// Fargate, and no m5.large holds 2 CPUs): no policy can pay for it, so it adds nothing,
/// however cheap the CPU of the nodes its labels would allow.
const BOUND_BY_HAND: &str = "name: bound\nduration: 1h\nfargate: {}\nnode-groups:\n  - {id: general, instance-types: [m5.large], min-size: 0, max-size: 5}\nworkloads:\n  - {name: agent, namespace: kube-system, kind: daemon-set, requests: {cpu: 100m, memory: 64Mi}}\n  - {name: web, requests: {cpu: 915m, memory: 100Mi}, replicas: {constant: 2}}\n  - {name: api, requests: {cpu: 250m, memory: 512Mi}, replicas: {constant: 4}, node-selector: {tier: serverless}}\n  - {name: giant, kind: stateful-set, volume: ebs, requests: {cpu: 2, memory: 1Gi}, replicas: {constant: 3}}\n";

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

/// Pods that ask more ephemeral storage than any group's nodes offer buy no node: a node
/// bought for them would leave them waiting, its disk too small, and a policy that reads CPU
/// and memory alone would buy another, and another. Given a larger root volume, the group
/// grows for them.
#[test]
fn pods_asking_more_disk_than_any_group_offers_buy_no_node() {
    let run = |disk: &str| {
        let text = format!(
            "name: disk\nduration: 1h\nnode-groups:\n  - {{id: general, instance-types: [m5.large], min-size: 1, \
             max-size: 10, ephemeral-storage: {disk}}}\nworkloads:\n  - {{name: web, requests: {{cpu: 500m, memory: \
             1Gi}}, replicas: {{constant: 1}}}}\n  - {{name: runner, requests: {{cpu: 1, memory: 1Gi, \
             ephemeral-storage: 30Gi}}, replicas: {{constant: 3}}}}\n"
        );
        let scenario = Scenario::parse(Path::new("disk.yaml"), &text).unwrap();
        let sim = Simulation { scenario, seed: 1, policies: defaults(), mode: Mode::Enforce, journal: None };
        sim.run(&host(), &mut |_, _| {}).unwrap().summary
    };
    let small = run("20Gi");
    assert_eq!((small.scale_ups, small.peak_nodes), (0, 1), "17Gi a node holds no runner pod: {small:?}");
    assert!(small.pending_pod_minutes > 170.0, "the three wait the hour: {small:?}");
    let large = run("40Gi");
    assert_eq!(large.peak_nodes, 3, "one runner pod a node beside web, by CPU: {large:?}");
    assert!(large.pending_pod_minutes < 10.0, "{large:?}");
}

/// Pods that ask more disk than the cheaper group's nodes offer get nodes of the group whose
/// disk holds them (interface 0.1.14 hands policies the disks): CI runners asking 30Gi beside
/// `general` (m5.large, 20 GiB root volumes, cheaper a node) and `builders` (m5.xlarge,
/// 100 GiB) grow `builders` by two nodes (89Gi each holds two), and wait a boot.
#[test]
fn pods_asking_more_disk_than_the_cheaper_group_offers_get_the_group_whose_disk_holds_them() {
    let text = "name: disk\nduration: 1h\nnode-groups:\n  - {id: general, instance-types: [m5.large], min-size: 1, \
                max-size: 10, ephemeral-storage: 20Gi}\n  - {id: builders, instance-types: [m5.xlarge], min-size: 0, \
                max-size: 10, ephemeral-storage: 100Gi}\nworkloads:\n  - {name: web, requests: {cpu: 500m, memory: \
                1Gi}, replicas: {constant: 1}}\n  - {name: runner, requests: {cpu: 1, memory: 1Gi, ephemeral-storage: \
                30Gi}, replicas: {constant: 3}}\n";
    let scenario = Scenario::parse(Path::new("disk.yaml"), text).unwrap();
    let sim = Simulation { scenario, seed: 1, policies: defaults(), mode: Mode::Enforce, journal: None };
    let summary = sim.run(&host(), &mut |_, _| {}).unwrap().summary;
    assert_eq!((summary.scale_ups, summary.peak_nodes), (1, 3), "one scale-up of builders by two: {summary:?}");
    assert!(summary.pending_pod_minutes < 5.0, "the runners wait a boot: {summary:?}");
}

/// A scheduled job whose pods ask more disk than the cheaper group's nodes offer gets its
/// room ahead of each run on the group whose disk holds them (interface 0.1.15 hands
/// policies a run's disk): deploy/examples/scenarios/ci-builds.yaml, four 30Gi builds every
/// half hour beside `general` (m5.large, 20 GiB root volumes) and `builders` (m5.xlarge,
/// 100 GiB). Room bought on `general` would leave each run waiting a boot for binpack's
/// `builders` node.
#[test]
fn a_scheduled_runs_room_is_bought_where_its_pods_disk_fits() {
    let scenario = Scenario::load(&root().join("deploy/examples/scenarios/ci-builds.yaml")).unwrap();
    let sim = Simulation { scenario, seed: 1, policies: defaults(), mode: Mode::Enforce, journal: None };
    let summary = sim.run(&host(), &mut |_, _| {}).unwrap().summary;
    assert!(summary.pending_pod_minutes < 1.0, "each run's room is ready when it starts: {summary:?}");
}

/// The summary of deploy/examples/scenarios/`name`.yaml under the default set at `seed`.
fn shipped_under_defaults(name: &str, seed: u64) -> ballast::sim::Summary {
    let scenario = Scenario::load(&root().join(format!("deploy/examples/scenarios/{name}.yaml"))).unwrap();
    let sim = Simulation { scenario, seed, policies: defaults(), mode: Mode::Enforce, journal: None };
    sim.run(&host(), &mut |_, _| {}).unwrap().summary
}

/// A web tier kept on at least three nodes (maxSkew 1 over nodes, minDomains 3) from a
/// one-node night through a day's climb and fall, deploy/examples/scenarios/
/// at-least-three-nodes.yaml: the default set buys the nodes the scheduler will fill and
/// removes none it must buy back. Told nothing of minDomains (mutation-checked), it made 18
/// scale-ups and evicted 16 pods in the 6 h at this seed.
#[test]
fn a_web_tier_kept_on_three_nodes_gets_them_without_churn() {
    let summary = shipped_under_defaults("at-least-three-nodes", 1);
    assert_eq!(summary.pods_evicted, 0, "no web pod moved twice: {summary:?}");
    assert!(summary.scale_ups <= 5, "a node bought for the night's three, then for the climb: {summary:?}");
    assert!(summary.pending_pod_minutes < 10.0, "{summary:?}");
}

/// An indexer kept off the web tier's nodes through the web tier's morning peak,
/// deploy/examples/scenarios/kept-away.yaml: the default set never moves the indexer's pods
/// to a web node they may not run on. With the rule withheld from the policies (the
/// simulated scheduler still keeping it; mutation-checked) it made 8 scale-ups, removed 8
/// nodes and evicted 15 pods, for 17.2 pending pod-minutes.
#[test]
fn pods_kept_off_the_web_tiers_nodes_keep_a_node_they_may_run_on() {
    let summary = shipped_under_defaults("kept-away", 3);
    assert_eq!(summary.pods_evicted, 0, "no indexer pod moved where it waits: {summary:?}");
    assert!(summary.scale_ups <= 2, "{summary:?}");
    assert!(summary.pending_pod_minutes < 5.0, "{summary:?}");
}

/// A session cache kept on the web tier's nodes through the web tier's morning peak,
/// deploy/examples/scenarios/kept-beside.yaml: its pods wait for room beside web pods, which
/// no new node has, so the default set buys no node for them. Told nothing of the rule
/// (mutation-checked), it made 15 scale-ups and removed 16 nodes that stood empty, for $4.28
/// against $3.08.
#[test]
fn a_cache_kept_on_the_web_tiers_nodes_is_bought_no_node_it_cannot_use() {
    let summary = shipped_under_defaults("kept-beside", 3);
    assert!(summary.scale_ups <= 4, "for the web tier's climb alone: {summary:?}");
    assert!(summary.nodes_removed <= 4, "{summary:?}");
}

/// An API kept in its database's zone while the database has no pod (restored at 1 h): the
/// scheduler runs the API's pods nowhere, so no node is bought for them until the database's
/// pod runs, and then nodes in its zone. Told nothing of it (mutation-checked), the default
/// set grew both groups to their max for the API's waiting pods (16 scale-ups, 20 nodes
/// standing nearly empty), for $3.77 against $0.59.
#[test]
fn pods_kept_in_the_zone_of_a_database_not_yet_running_buy_no_node_until_it_runs() {
    let text = "name: restore\nduration: 2h\nnode-groups:\n  - {id: a, instance-types: [m5.large], min-size: 1, \
                max-size: 10, zones: [us-east-1a]}\n  - {id: b, instance-types: [m5.large], min-size: 0, max-size: 10, \
                zones: [us-east-1b]}\nworkloads:\n  - {name: db, kind: stateful-set, requests: {cpu: 500m, memory: \
                1Gi}, replicas: {steps: [{at: 0s, replicas: 0}, {at: 1h, replicas: 1}]}, node-group: b}\n  - {name: \
                api, requests: {cpu: 1, memory: 1Gi}, replicas: {constant: 4}, zone-affinity: [db]}\n";
    let scenario = Scenario::parse(Path::new("restore.yaml"), text).unwrap();
    let sim = Simulation { scenario, seed: 1, policies: defaults(), mode: Mode::Enforce, journal: None };
    let summary = sim.run(&host(), &mut |_, _| {}).unwrap().summary;
    assert!(summary.scale_ups <= 3, "the database's node, then the API's in its zone: {summary:?}");
    assert!(summary.peak_nodes <= 7, "{summary:?}");
}

/// A quorum kept one replica a zone, asked for five in a cluster with one zone and a Fargate
/// profile: Fargate could run it, but it is placed on EC2, where four replicas wait for a zone
/// whatever nodes are bought, so the group does not grow for them. Left pending because
/// Fargate could run them (mutation-checked), binpack grew the group to its max of 10 in 9
/// scale-ups, $0.90 an hour for one running pod.
#[test]
fn replicas_kept_one_a_zone_past_the_zones_buy_no_node_though_fargate_could_run_them() {
    let text = "name: quorum\nduration: 1h\nnode-groups:\n  - {id: general, instance-types: [m5.large], min-size: 1, \
                max-size: 10, zones: [us-east-1a]}\nfargate: {provisioning-delay: 45s}\nworkloads:\n  - {name: quorum, \
                requests: {cpu: 250m, memory: 512Mi}, replicas: {constant: 5}, max-per-zone: 1}\n";
    let scenario = Scenario::parse(Path::new("quorum.yaml"), text).unwrap();
    let policies = vec![policy("binpack", json!({}))];
    let sim = Simulation { scenario, seed: 1, policies, mode: Mode::Enforce, journal: None };
    let summary = sim.run(&host(), &mut |_, _| {}).unwrap().summary;
    assert_eq!((summary.scale_ups, summary.peak_nodes), (0, 1), "{summary:?}");
}

/// An API kept in its database's zone, beside three groups of one zone each,
/// deploy/examples/scenarios/near-the-database.yaml: the default set grows only the group in
/// the database's zone for it. With the pin withheld (mutation-checked) it balanced the
/// API's nodes over the three groups, where two thirds stood empty: 223 scale-ups, 208 nodes
/// removed and 447.6 pending pod-minutes, for $11.08 against $6.16.
#[test]
fn pods_kept_in_their_databases_zone_get_nodes_there() {
    let summary = shipped_under_defaults("near-the-database", 4);
    assert!(summary.scale_ups <= 3, "{summary:?}");
    assert!(summary.nodes_removed <= 2, "{summary:?}");
    assert!(summary.pending_pod_minutes < 30.0, "{summary:?}");
}

/// A quorum kept one replica a zone, asked for a fourth in three zones for an hour and then
/// losing its replica in us-east-1b with its node, deploy/examples/scenarios/one-a-zone.yaml:
/// the fourth waits for a zone and no node is bought for it, and the lost replica gets one
/// node, in us-east-1b, not in the cheaper us-east-1c that runs one already. Told nothing of
/// the rule (mutation-checked), the default set made 38 scale-ups; with the fourth passed over
/// but the lost one not pinned to its zone (mutation-checked), 11, for 72.3 pending
/// pod-minutes.
#[test]
fn a_quorum_kept_one_a_zone_is_bought_a_node_only_where_a_zone_has_room() {
    let summary = shipped_under_defaults("one-a-zone", 6);
    assert_eq!(summary.scale_ups, 1, "the lost replica's node alone: {summary:?}");
    assert!((60.0..63.0).contains(&summary.pending_pod_minutes), "the fourth waits its hour: {summary:?}");
}

/// Every shipped scenario under the default set: the bound holds, and the journal stays
/// readable: no proposal that changed nothing (refused, unchanged) is more than a tenth of
/// the decision records, unless it is one folded run (its first record and its count).
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

/// What a CapacityBuffer buys, before it is applied to a cluster: the example scenario's
/// spikes (1 to 8 web pods of one CPU on m5.large, one a node) with its buffer for 7 more
/// pods wait a fraction of the time they wait without it, for the room kept between them.
#[test]
fn a_capacity_buffer_in_a_scenario_shows_what_its_room_buys_and_costs() {
    let path = root().join("deploy/examples/scenarios/capacity-buffer.yaml");
    let with_buffer = std::fs::read_to_string(&path).unwrap();
    let line = "    capacity-buffer: {replicas: 7}\n";
    assert!(with_buffer.contains(line), "the example carries its buffer");
    let run = |text: &str| {
        let scenario = Scenario::parse(&path, text).unwrap();
        let policies = vec![policy("binpack", json!(null)), policy("headroom", json!(null))];
        let sim = Simulation { scenario, seed: 1, policies, mode: Mode::Enforce, journal: None };
        sim.run(&host(), &mut |_, _| {}).unwrap().summary
    };
    let with = run(&with_buffer);
    let without = run(&with_buffer.replace(line, ""));
    assert!(
        with.pending_pod_minutes * 4.0 < without.pending_pod_minutes,
        "pending pod-minutes {} with the buffer, {} without",
        with.pending_pod_minutes,
        without.pending_pod_minutes
    );
    assert!(with.total_cost > without.total_cost, "${} with, ${} without", with.total_cost, without.total_cost);
    let empty = scenario_error(&with_buffer.replace(line, "    capacity-buffer: {}\n"));
    assert!(empty.contains("workloads[0].capacity-buffer") && empty.contains("asks for no room"), "{empty}");
}

fn scenario_error(text: &str) -> String {
    Scenario::parse(Path::new("bad.yaml"), text).unwrap_err().to_string()
}

const GOOD: &str = "name: t\nduration: 1h\nnode-groups:\n  - {id: general, instance-types: [m5.large], min-size: 1, max-size: 5}\nworkloads:\n  - {name: web, requests: {cpu: 500m}, replicas: {constant: 3}, node-group: general}\n";

/// A workload placed on Fargate whose pods Fargate would not start is a mistake in the file,
/// named as one, not a run in which its pods wait for ever.
#[test]
fn a_workload_placed_on_fargate_that_cannot_run_there_is_named() {
    let placed = GOOD.replace("node-group: general", "placement: fargate");
    let profiled = |text: String| format!("{text}fargate: {{provisioning-delay: 45s}}\n");
    let with_profile = |requests: &str| profiled(placed.replace("cpu: 500m", requests));
    assert_eq!(
        scenario_error(&placed),
        "bad.yaml: field `workloads[0].placement`: `fargate` needs a `fargate:` profile in the scenario"
    );
    assert!(Scenario::parse(Path::new("good.yaml"), &with_profile("cpu: 500m, ephemeral-storage: 175Gi")).is_ok());
    assert_eq!(
        scenario_error(&with_profile("cpu: 500m, ephemeral-storage: 200Gi")),
        "bad.yaml: field `workloads[0].placement`: `fargate`, but its pods cannot run there: asks 200Gi of \
         ephemeral storage a pod, more than Fargate's 175Gi"
    );
    let ebs = scenario_error(&profiled(placed.replace("placement: fargate", "placement: fargate, volume: ebs")));
    assert!(ebs.ends_with("cannot run there: mounts an EBS-backed volume (Fargate supports EFS only)"), "{ebs}");
}

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
    let replacement =
        |r: &str| scenario_error(&GOOD.replace("max-size: 5", &format!("max-size: 5, replacements: [{r}]")));
    assert_eq!(
        replacement("{at: 1h}"),
        "bad.yaml: field `node-groups[0].replacements[0].at`: `1h` is not before the end of the run (1h)"
    );
    assert_eq!(
        replacement("{at: 10m, at-once: 0}"),
        "bad.yaml: field `node-groups[0].replacements[0].at-once`: must be at least 1, got 0"
    );
    let late_image = scenario_error(&GOOD.replace("max-size: 5", "max-size: 5, new-images: [{at: 30m}, {at: 90m}]"));
    assert_eq!(
        late_image,
        "bad.yaml: field `node-groups[0].new-images[1].at`: `1h 30m` is not before the end of the run (1h)"
    );

    let upside_down =
        scenario_error(&GOOD.replace("node-group: general", "autoscaler: {min-replicas: 5, max-replicas: 3}"));
    assert_eq!(
        upside_down,
        "bad.yaml: field `workloads[0].autoscaler.max-replicas`: 3 must be at least 1 and at least min-replicas 5"
    );

    let none_a_node = scenario_error(&GOOD.replace("node-group: general", "max-per-node: 0"));
    assert_eq!(none_a_node, "bad.yaml: field `workloads[0].max-per-node`: must be at least 1, got 0");
    let no_skew = scenario_error(&GOOD.replace("node-group: general", "max-zone-skew: 0"));
    assert_eq!(no_skew, "bad.yaml: field `workloads[0].max-zone-skew`: must be at least 1, got 0");
    let no_node_skew = scenario_error(&GOOD.replace("node-group: general", "max-node-skew: 0"));
    assert_eq!(no_node_skew, "bad.yaml: field `workloads[0].max-node-skew`: must be at least 1, got 0");
    let no_domains = scenario_error(&GOOD.replace("node-group: general", "max-node-skew: 1, min-node-domains: 0"));
    assert_eq!(no_domains, "bad.yaml: field `workloads[0].min-node-domains`: must be at least 1, got 0");
    let kept_from =
        |names: &str| scenario_error(&GOOD.replace("node-group: general", &format!("kept-away: [{names}]")));
    assert_eq!(kept_from("db"), "bad.yaml: field `workloads[0].kept-away[0]`: unknown workload `db`; known: web");
    assert_eq!(
        kept_from("web"),
        "bad.yaml: field `workloads[0].kept-away[0]`: `web` is this workload itself: to keep its pods one to a node, use `max-per-node: 1`"
    );
    let none_a_zone = scenario_error(&GOOD.replace("node-group: general", "max-per-zone: 0"));
    assert_eq!(none_a_zone, "bad.yaml: field `workloads[0].max-per-zone`: must be at least 1, got 0");
    let beside = scenario_error(&GOOD.replace("node-group: general", "kept-beside: [web]"));
    assert_eq!(
        beside,
        "bad.yaml: field `workloads[0].kept-beside[0]`: `web` is this workload itself: keeping all its pods on one node \
         is not simulated"
    );
    let near = scenario_error(&GOOD.replace("node-group: general", "zone-affinity: [web]"));
    assert_eq!(
        near,
        "bad.yaml: field `workloads[0].zone-affinity[0]`: `web` is this workload itself: its own pods alone are no zone \
         to keep to"
    );
    let no_zones = scenario_error(&GOOD.replace("node-group: general", "max-zone-skew: 1, min-zone-domains: 0"));
    assert_eq!(no_zones, "bad.yaml: field `workloads[0].min-zone-domains`: must be at least 1, got 0");
    let unspread = scenario_error(&GOOD.replace("node-group: general", "min-node-domains: 3"));
    assert_eq!(
        unspread,
        "bad.yaml: field `workloads[0].min-node-domains`: 3, but no max-node-skew: it is that spread's"
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

/// Runs the default set over `text` (seed 1); returns its summary and the host's decisions
/// whose reason starts with `reason`, each with its time since the start, and its control
/// records' changes.
fn rehearsed(text: &str, reason: &str) -> (ballast::sim::Summary, Vec<(Duration, String)>, Vec<String>) {
    let scenario = Scenario::parse(Path::new("rehearsal.yaml"), text).unwrap();
    let start = ballast::sim::world::EPOCH_MILLIS + scenario.start_of_day();
    let (report, recorder) = recorded_with(1, scenario, defaults());
    let (mut replaced, mut controls) = (Vec::new(), Vec::new());
    for record in recorder.records() {
        match record {
            Record::Decision(d) if d.reason.starts_with(reason) => {
                replaced.push((Duration::from_millis(d.at_millis - start), d.reason.clone()));
            }
            Record::Control(c) if c.caller == "ballast" => controls.push(c.change.clone()),
            _ => {}
        }
    }
    (report.summary, replaced, controls)
}

/// Four m5.large of group general under web's 7 replicas of 900m for 3 h, with `extra` in the
/// group's entry and `guardrails` at the top.
fn four_nodes_under_web(extra: &str, guardrails: &str) -> String {
    format!(
        "name: rehearsal\nduration: 3h\nguardrails: {{{guardrails}}}\nnode-groups:\n  - {{id: general, instance-types: [m5.large], min-size: 2, max-size: 10, desired-size: 4, {extra}}}\nworkloads:\n  - {{name: web, requests: {{cpu: 900m, memory: 1Gi}}, replicas: {{constant: 7}}}}\n"
    )
}

/// Replacements started at or after an hour in, one at a time, with no pod waiting and at
/// most one successor beside the four nodes.
fn one_at_a_time_from_the_hour(summary: &ballast::sim::Summary, replaced: &[(Duration, String)]) {
    assert!(replaced[0].0 >= Duration::from_secs(3600), "not before its hour: {replaced:#?}");
    assert!(replaced.windows(2).all(|w| w[1].0 > w[0].0), "one at a time: {replaced:#?}");
    assert_eq!(summary.pending_pod_minutes, 0.0, "no pod waited for a boot: {summary:?}");
    assert!(summary.peak_nodes <= 5, "one successor at a time: {summary:?}");
}

/// A rollout of a new AMI rehearsed (the scenario's `replacements`, as `ballast ctl replace
/// group` asks): under a steady web load, the default set's group is replaced one node at a
/// time an hour in, each node's successor launched before its pods move, so they never wait;
/// the nodes launched for the roll, and after it, are not replaced, and the roll ends.
#[test]
fn a_rehearsed_group_replacement_moves_every_node_once_and_no_pod_waits() {
    let text = four_nodes_under_web("replacements: [{at: 1h}]", "");
    let (summary, replaced, ended) = rehearsed(&text, "replacement asked by scenario");
    assert_eq!(ended, ["replace group general: done, 4 replaced"], "{replaced:#?}");
    assert_eq!(replaced.len(), 4, "each node once: {replaced:#?}");
    one_at_a_time_from_the_hour(&summary, &replaced);
}

/// A new AMI rehearsed (the scenario's `new-images`): with `guardrails.drift.replace`, the
/// four nodes launched from the old image are replaced one at a time from the hour the new
/// one comes, successors first, so no pod waits, and the successors (new image) are left;
/// without it, nothing is replaced.
#[test]
fn a_rehearsed_new_image_replaces_the_drifted_nodes_once_drift_replacement_is_on() {
    let run = |replace: bool| {
        let text = four_nodes_under_web("new-images: [{at: 1h}]", &format!("drift: {{replace: {replace}}}"));
        rehearsed(&text, "drifted (")
    };
    let (summary, replaced, _) = run(true);
    assert_eq!(replaced.len(), 4, "each old node once, no successor: {replaced:#?}");
    let why = "drifted (launched from general-image-1; its group now launches general-image-2): cordoned general-0001";
    assert!(replaced[0].1.starts_with(why), "{replaced:#?}");
    one_at_a_time_from_the_hour(&summary, &replaced);
    let (kept, none, _) = run(false);
    assert!(none.is_empty() && kept.nodes_removed == 0, "drift replacement off: {none:?} {kept:?}");
}

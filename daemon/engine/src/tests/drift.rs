//! Drifted nodes (of an image, type or template version their group no longer launches): reported always,
//! replaced only with `guardrails.drift.replace`, as a roll replaces them: oldest first,
//! `at-once` per group, within the disruption budget, not while the group backs off, never a
//! node that may not be disrupted.

use super::roll::two_nodes;
use super::*;
use ballast_sdk::Action;

/// `two_nodes` with group web launching `ami-new`, and `drifted` launched from `ami-old`.
fn drifted(drifted: &[&str]) -> World {
    let mut world = two_nodes();
    let web = world.group_mut("web");
    web.image = Some("ami-new".into());
    for instance in &mut web.instances {
        let old = drifted.iter().any(|n| instance.id == format!("i-{n}"));
        instance.image = Some(if old { "ami-old" } else { "ami-new" }.into());
    }
    world
}

fn drift_of(engine: &TestEngine, node: &str) -> Option<String> {
    let observed = engine.live.observed()?;
    observed.obs.nodes.get(node)?.drift.as_ref().map(ToString::to_string)
}

fn host_reasons(engine: &TestEngine) -> Vec<String> {
    host_decisions(engine).into_iter().map(|d| d.reason).collect()
}

#[test]
fn a_drifted_node_is_reported_and_left_alone_until_drift_replacement_is_on_then_replaced_first() {
    let world = drifted(&["w1"]);
    let (faulty, mut engine) = engine(&world);
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "off by default: nothing replaced");
    assert_eq!(drift_of(&engine, "w1").as_deref(), Some("launched from ami-old; its group now launches ami-new"));
    assert_eq!(drift_of(&engine, "w2"), None, "w2 runs the group's image");

    engine.config.guardrails.drift.replace = true;
    let calls = tick_at(&mut engine, &faulty, NOW + 10_000);
    assert_eq!(calls, ["set web to 3", "mark w1"], "its successor first, then w1 is cordoned");
    let reasons = host_reasons(&engine);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("drifted (launched from ami-old; its group now launches ami-new): cordoned w1"),
        "{reasons:?}"
    );
    let announced = faulty.announced.lock().unwrap().clone();
    let on_w1: Vec<_> = announced.iter().filter(|a| a.subject == Subject::Node("w1".into())).collect();
    assert_eq!(on_w1.len(), 1, "kubectl describe node w1 says why: {announced:?}");
    assert_eq!((on_w1[0].reason, on_w1[0].warning, &on_w1[0].note), ("Drifted", false, &reasons[0]));
}

#[test]
fn drifted_nodes_go_one_of_a_group_at_a_time_within_the_budget_and_not_while_it_backs_off() {
    let mut world = drifted(&["w1", "w2"]);
    let (faulty, mut engine) = engine(&world);
    engine.config.guardrails.drift.replace = true;
    engine.config.guardrails.disruption_budget.percent = 100.0;
    engine.state.group("web").backoff =
        Some(crate::state::BackoffState { until: NOW + 10_000, reason: "no capacity".into() });
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "a successor could not launch now");
    let calls = tick_at(&mut engine, &faulty, NOW + 10_000);
    assert_eq!(calls, ["set web to 3", "mark w1"], "the oldest; at-once 1");
    world.group_mut("web").desired_size = 3;
    show(&world, &faulty);
    assert_eq!(
        tick_at(&mut engine, &faulty, NOW + 20_000),
        Vec::<String>::new(),
        "at-once 1: w2 waits for w1 to go, though the budget has room"
    );

    let (faulty, mut engine) = super::engine(&drifted(&["w1", "w2"]));
    engine.config.guardrails.drift = crate::config::DriftReplacement { replace: true, at_once: 2 };
    let calls = tick_at(&mut engine, &faulty, NOW);
    assert_eq!(calls, ["set web to 3", "mark w1"], "at-once 2, but the budget (10% of two, at least 1) allows one");
    let (faulty, mut engine) = super::engine(&drifted(&["w1", "w2"]));
    engine.config.guardrails.drift = crate::config::DriftReplacement { replace: true, at_once: 2 };
    engine.config.guardrails.disruption_budget.percent = 100.0;
    let calls = tick_at(&mut engine, &faulty, NOW);
    assert_eq!(calls, ["set web to 3", "mark w1", "set web to 4", "mark w2"], "both, the budget allowing");
}

#[test]
fn a_drifted_node_running_a_do_not_disrupt_pod_of_unknown_image_or_in_an_eks_managed_group_is_not_replaced() {
    let mut world = drifted(&["w1", "w2"]);
    world.template_mut("web-1").do_not_disrupt = true;
    world.group_mut("web").instances[1].image = None;
    let (faulty, mut engine) = engine(&world);
    engine.config.guardrails.drift.replace = true;
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "w1 is kept; w2's image is not known");
    assert!(drift_of(&engine, "w1").is_some() && drift_of(&engine, "w2").is_none());

    let mut managed = drifted(&["w1"]);
    managed.group_mut("web").updates_itself = true;
    let (faulty, mut engine) = super::engine(&managed);
    engine.config.guardrails.drift.replace = true;
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "EKS rolls its managed node groups");
    assert!(drift_of(&engine, "w1").is_some(), "shown all the same");
}

/// A window that holds drift alone (Karpenter's budget `reasons`): drift waits, a group
/// replacement asked meanwhile does not.
#[test]
fn a_window_for_drift_alone_holds_drift_replacement_and_not_a_group_replacement() {
    let world = drifted(&["w1"]);
    let (faulty, mut engine) = engine(&world);
    engine.config.guardrails.drift.replace = true;
    let window = "{schedule: \"0 0 * * *\", duration: 24h, nodes: 0, reasons: [drift]}";
    engine.config.guardrails.disruption_budget.windows = vec![serde_yaml::from_str(window).unwrap()];
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "the window holds drift");
    let asked = crate::control::Asked { caller: "ops".into(), reason: "kernel".into() };
    let roll = crate::control::Change::ReplaceGroup { group: "web".into(), at_once: 1, dry_run: false };
    engine.change(roll, &asked, NOW + 1_000).unwrap();
    let calls = tick_at(&mut engine, &faulty, NOW + 10_000);
    assert_eq!(calls, ["set web to 3", "mark w1"], "the roll is not drift: the window lets it go");
    assert!(host_reasons(&engine)[0].starts_with("replacement asked by ops"), "{:?}", host_reasons(&engine));
}

/// Dry-run shows what drift replacement would do before it is turned on for real: the
/// would-be replacement is recorded, once however many ticks it stands, and nothing is done.
#[test]
fn in_dry_run_a_drifted_node_is_recorded_as_a_would_be_replacement_and_nothing_is_done() {
    let (faulty, mut engine) = engine(&drifted(&["w1"]));
    engine.config.guardrails.drift.replace = true;
    engine.set_mode(crate::Mode::DryRun);
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "dry-run replaces nothing");
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 10_000), Vec::<String>::new());
    let records = host_decisions(&engine);
    assert_eq!(records.len(), 1, "the same would-be replacement on two ticks is one record: {records:?}");
    assert_eq!(records[0].result, ActionResult::DryRun);
    assert_eq!(records[0].proposed, Action::RemoveNodes { nodes: vec!["w1".into()] });
    let reason = &records[0].reason;
    assert!(reason.starts_with("drifted (launched from ami-old"), "{reason:?}");
    assert!(reason.contains("would cordon w1; its replacement would start at once (web 2 -> 3)"), "{reason:?}");
    assert!(faulty.announced.lock().unwrap().is_empty(), "no Event says a node was taken");
}

/// A group whose types changed (a template's new type, overrides without the old one): its
/// nodes of another type have drifted, and are replaced like image drift. Types not all
/// known, or an instance's type unknown, judge nothing; an image drift is named first.
#[test]
fn a_node_of_an_instance_type_its_group_no_longer_launches_has_drifted_and_is_replaced() {
    let mut world = two_nodes();
    world.group_mut("web").launched_types = Some(vec!["m6i.large".into(), "m5.large".into()]);
    world.group_mut("web").instances[0].instance_type = "m4.large".into();
    world.group_mut("web").instances[1].instance_type = String::new();
    let (faulty, mut engine) = engine(&world);
    engine.config.guardrails.drift.replace = true;
    let calls = tick_at(&mut engine, &faulty, NOW);
    assert_eq!(calls, ["set web to 3", "mark w1"]);
    assert_eq!(
        drift_of(&engine, "w1").as_deref(),
        Some("launched as m4.large; its group now launches m6i.large, m5.large")
    );
    assert_eq!(drift_of(&engine, "w2"), None, "its type is not known");
    assert!(host_reasons(&engine)[0].starts_with("drifted (launched as m4.large; "), "{:?}", host_reasons(&engine));

    for types in [None, Some(Vec::new())] {
        world.group_mut("web").launched_types = types;
        let (faulty, mut engine) = super::engine(&world);
        engine.config.guardrails.drift.replace = true;
        assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "types not known: no drift");
    }
    let mut both = drifted(&["w1"]);
    both.group_mut("web").launched_types = Some(vec!["m6i.large".into()]);
    let (faulty, mut engine) = super::engine(&both);
    tick_at(&mut engine, &faulty, NOW);
    assert_eq!(drift_of(&engine, "w1").as_deref(), Some("launched from ami-old; its group now launches ami-new"));
    assert_eq!(drift_of(&engine, "w2").as_deref(), Some("launched as m5.large; its group now launches m6i.large"));
}

/// A new launch template version that changed neither image nor type (user data, security
/// groups): the nodes launched from the old version have drifted all the same. An image or
/// type difference is named first; a version unknown on either side judges nothing.
#[test]
fn a_node_launched_from_a_template_version_its_group_no_longer_launches_has_drifted() {
    let version = |version| Some(TemplateVersion { id: "lt-1".into(), version });
    let mut world = two_nodes();
    world.group_mut("web").template = version(4);
    world.group_mut("web").instances[0].template = version(3);
    world.group_mut("web").instances[1].template = version(4);
    let (faulty, mut engine) = engine(&world);
    engine.config.guardrails.drift.replace = true;
    assert_eq!(tick_at(&mut engine, &faulty, NOW), ["set web to 3", "mark w1"]);
    let expected = "launched from lt-1 version 3; its group now launches lt-1 version 4";
    assert_eq!(drift_of(&engine, "w1").as_deref(), Some(expected));
    assert_eq!(drift_of(&engine, "w2"), None, "the group's version");

    world.group_mut("web").instances[0].template = None;
    let (faulty, mut engine) = super::engine(&world);
    tick_at(&mut engine, &faulty, NOW);
    assert_eq!(drift_of(&engine, "w1"), None, "its version is not known");
    let mut both = drifted(&["w1"]);
    both.group_mut("web").template = version(4);
    both.group_mut("web").instances[0].template = version(3);
    let (faulty, mut engine) = super::engine(&both);
    tick_at(&mut engine, &faulty, NOW);
    assert_eq!(drift_of(&engine, "w1").as_deref(), Some("launched from ami-old; its group now launches ami-new"));
}

//! Node replacements asked for through the control API: handled as a retirement (the
//! replacement first, the pods held until it is Ready), answered with the tick's decision
//! record, refused with the rule and the node when the node may not be replaced.

use tokio::sync::oneshot;

use super::*;
use crate::control::{Asked, Change, ChangeError};
use crate::record::{DecisionRecord, GuardOutcome, Stamped, Trigger};
use crate::rule::Rule;

fn alice() -> Asked {
    Asked { caller: "alice".into(), reason: "kernel CVE-2026-1234".into() }
}

/// Asks for `node`'s replacement; the receiver gets the decision the next tick makes of it.
fn ask(engine: &mut TestEngine, node: &str) -> (Result<String, ChangeError>, oneshot::Receiver<Stamped>) {
    ask_how(engine, node, false)
}

fn ask_how(
    engine: &mut TestEngine,
    node: &str,
    dry_run: bool,
) -> (Result<String, ChangeError>, oneshot::Receiver<Stamped>) {
    let (answer, decided) = oneshot::channel();
    let done = engine.change(Change::ReplaceNode { node: node.into(), dry_run, answer }, &alice(), NOW);
    (done, decided)
}

fn decision(mut decided: oneshot::Receiver<Stamped>) -> DecisionRecord {
    match decided.try_recv().expect("the tick answered").record {
        Record::Decision(d) => d,
        other => panic!("not a decision: {other:?}"),
    }
}

#[test]
fn an_asked_replacement_ticks_at_once_launches_the_replacement_first_and_answers_with_its_record() {
    let mut world = World::default();
    // Too young for any scale-down: an asked replacement is not a policy's removal.
    world.node_mut("w2").created_at_millis = NOW - 60_000;
    let (faulty, mut engine) = engine(&world);
    tick_at(&mut engine, &faulty, NOW - 1_000);
    assert_eq!(engine.due(NOW), None, "nothing due a second after a tick");
    let (done, decided) = ask(&mut engine, "w2");
    assert_eq!(done, Ok("replace node w2".to_string()));
    assert_eq!(engine.due(NOW), Some(Trigger::Manual), "the request makes a tick due at once");
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW), ["set web to 5", "mark w2"], "the replacement first");
    assert_eq!(engine.due(NOW), None, "that tick covered the request");

    let d = decision(decided);
    assert_eq!((d.plugin.as_str(), &d.result), (crate::HOST, &ActionResult::Started));
    assert_eq!(d.proposed, ballast_sdk::Action::RemoveNodes { nodes: vec!["w2".into()] });
    assert!(
        d.reason.starts_with(
            "replacement asked by alice (kernel CVE-2026-1234): cordoned w2; its replacement started at once (web 4 -> 5)"
        ),
        "{}",
        d.reason
    );
    assert!(d.reason.ends_with("its pods stay until the replacement is Ready, for 5m at the most"), "{}", d.reason);
    let control = engine.recorder().records().find_map(|r| match r {
        Record::Control(c) => Some((c.caller, c.change, c.reason)),
        _ => None,
    });
    assert_eq!(control, Some(("alice".into(), "replace node w2".into(), "kernel CVE-2026-1234".into())));

    // The pods move once the replacement is Ready, not before.
    join(&mut world, "w5", NOW + 40_000);
    world.node_mut("w5").ready = false;
    world.group_mut("web").desired_size = 5;
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 60_000), Vec::<String>::new(), "held while it boots");
    world.node_mut("w5").ready = true;
    show(&world, &faulty);
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 70_000), ["mark w2", "evict shop/web-2"]);
}

#[test]
fn a_node_that_may_not_be_replaced_is_refused_with_the_rule_and_nothing_is_done() {
    type Setup = fn(&mut World);
    let cases: [(&str, &str, Setup, Rule, &str); 5] = [
        ("unknown", "w9", |_| {}, Rule::UnknownNode, "node w9: no such node in the cluster"),
        (
            "kept node",
            "w1",
            |w| w.node_mut("w1").kept_by = Some("karpenter.sh/do-not-disrupt"),
            Rule::RemovalBlocked,
            "node w1: annotated karpenter.sh/do-not-disrupt=true",
        ),
        (
            "do-not-disrupt pod",
            "w1",
            |w| w.template_mut("web-1").do_not_disrupt = true,
            Rule::RemovalBlocked,
            "node w1: pod shop/web-1 is annotated karpenter.sh/do-not-disrupt=true",
        ),
        (
            "not listed",
            "w1",
            |w| w.group_mut("web").instances.retain(|i| i.id != "i-w1"),
            Rule::NoInstance,
            "node w1: no instance of web is known behind it",
        ),
        (
            "no group",
            "w1",
            |w| {
                w.group_mut("web").instances.retain(|i| i.id != "i-w1");
                w.node_mut("w1").group_label = None;
            },
            Rule::GroupNotManaged,
            "node w1: not in a managed node group",
        ),
    ];
    for (case, node, setup, rule, message) in cases {
        let mut world = World::default();
        setup(&mut world);
        let (faulty, mut engine) = engine(&world);
        let (done, decided) = ask(&mut engine, node);
        assert!(done.is_ok(), "{case}: checked at the tick, against what it sees");
        assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "{case}: nothing done");
        let d = decision(decided);
        assert_eq!(d.result, ActionResult::NotApplied, "{case}");
        match &d.guard {
            GuardOutcome::Refused { why } => {
                assert_eq!(why[0].rule, rule, "{case}");
                assert!(why[0].message.starts_with(message), "{case}: {}", why[0].message);
            }
            other => panic!("{case}: not refused: {other:?}"),
        }
    }
}

#[test]
fn a_node_already_draining_is_refused_and_its_drain_goes_on() {
    let world = World::default();
    let (faulty, mut engine) = engine(&world);
    let mut world = world;
    draining(&mut world, &mut engine, &faulty);
    let (_, decided) = ask(&mut engine, "w9");
    let calls = tick_at(&mut engine, &faulty, NOW);
    assert!(!calls.iter().any(|c| c.starts_with("set web")), "no second replacement: {calls:?}");
    assert_eq!(decision(decided).guard.rules(), [Rule::AlreadyBeingRemoved]);
}

#[test]
fn a_paused_engine_or_a_standby_replica_refuses_the_request_and_dry_run_records_what_it_would_do() {
    let world = World::default();
    let (faulty, mut engine) = engine(&world);
    engine.set_mode(crate::Mode::Paused);
    assert_eq!(ask(&mut engine, "w2").0, Err(ChangeError::Paused));
    engine.set_mode(crate::Mode::Enforce);
    engine.gate = Some(Arc::new(|| false));
    assert_eq!(ask(&mut engine, "w2").0, Err(ChangeError::NotLeading));
    assert_eq!(engine.recorder().records().count(), 0, "a refused change records nothing");

    engine.gate = None;
    engine.set_mode(crate::Mode::DryRun);
    let (done, decided) = ask(&mut engine, "w2");
    assert!(done.is_ok());
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "dry-run changes nothing");
    let d = decision(decided);
    assert_eq!(d.result, ActionResult::DryRun);
    assert!(d.reason.contains("its replacement would start at once (web 4 -> 5)"), "what it would do: {}", d.reason);
}

#[test]
fn a_replacement_asked_as_a_dry_run_is_recorded_as_one_and_changes_nothing_in_an_enforcing_engine() {
    let world = World::default();
    let (faulty, mut engine) = engine(&world);
    let (done, decided) = ask_how(&mut engine, "w2", true);
    assert_eq!(done, Ok("replace node w2 (dry-run)".to_string()));
    assert_eq!(tick_at(&mut engine, &faulty, NOW), Vec::<String>::new(), "nothing done");
    let d = decision(decided);
    assert_eq!(d.result, ActionResult::DryRun);
    assert!(d.reason.contains("would cordon w2; its replacement would start at once (web 4 -> 5)"), "{}", d.reason);
    assert!(engine.state.drains.is_empty());
    // Asked again for real, it is done.
    let (_, decided) = ask(&mut engine, "w2");
    assert_eq!(tick_at(&mut engine, &faulty, NOW + 10_000), ["set web to 5", "mark w2"]);
    assert_eq!(decision(decided).result, ActionResult::Started);
}

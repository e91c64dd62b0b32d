//! DaemonSet pods asked to leave before their node goes, as Cluster Autoscaler asks them
//! (`--daemonset-eviction-for-occupied-nodes`, `--daemonset-eviction-for-empty-nodes`, a
//! pod's `enable-ds-eviction`), branch by branch.

use ballast_sdk::WorkloadKind;

use super::*;
use crate::config::Guardrails;
use crate::guard::fixture::{drain_since_now, node, pod, workload};
use crate::record::Trigger;
use crate::state::Drain;

/// Node w9 of `web`, holding only the DaemonSet pod `agent-w9` (its
/// `enable-ds-eviction` as `annotated`), being drained; it had pods to move when the drain
/// began if `occupied`.
fn agent_on_a_drained_node(occupied: bool, annotated: Option<bool>) -> (Faulty, TestEngine) {
    let mut world = World::default();
    world.cluster.nodes.push(node("w9", Some("i-w9"), Some("web")));
    let agent = workload(WorkloadKind::DaemonSet, "kube-system", "agent");
    world.pods.push(pod("agent-w9", Some("w9"), Some(agent), 100));
    world.template_mut("agent-w9").daemonset_eviction = annotated;
    let (faulty, mut engine) = engine(&world);
    engine.state.drains.insert("w9".into(), Drain { occupied, ..drain_since_now("web", "i-w9") });
    (faulty, engine)
}

/// What one tick of that drain called, under `rules`.
fn last_calls(occupied: bool, annotated: Option<bool>, rules: impl FnOnce(&mut Guardrails)) -> Vec<String> {
    let (faulty, mut engine) = agent_on_a_drained_node(occupied, annotated);
    rules(&mut engine.config.guardrails);
    block_on(engine.tick(NOW + 1000, Trigger::Manual));
    faulty.calls.lock().unwrap().clone()
}

const EVICTED_THEN_GONE: [&str; 2] = ["evict kube-system/agent-w9", "terminate i-w9 in web"];
const GONE: [&str; 1] = ["terminate i-w9 in web"];

#[test]
fn an_occupied_nodes_daemonset_pods_are_asked_to_leave_before_it_goes_unless_turned_off() {
    assert_eq!(last_calls(true, None, |_| {}), EVICTED_THEN_GONE, "Cluster Autoscaler's default");
    let off = |r: &mut Guardrails| r.daemonset_eviction_for_occupied_nodes = false;
    assert_eq!(last_calls(true, None, off), GONE);
    assert_eq!(last_calls(true, Some(true), off), EVICTED_THEN_GONE, "the pod asks for it");
    assert_eq!(last_calls(true, Some(false), |_| {}), GONE, "the pod declines");
}

#[test]
fn an_empty_nodes_daemonset_pods_are_left_unless_turned_on_or_the_pod_asks() {
    assert_eq!(last_calls(false, None, |_| {}), GONE, "Cluster Autoscaler's default");
    let on = |r: &mut Guardrails| r.daemonset_eviction_for_empty_nodes = true;
    assert_eq!(last_calls(false, None, on), EVICTED_THEN_GONE);
    assert_eq!(last_calls(false, Some(true), |_| {}), EVICTED_THEN_GONE, "the pod asks for it");
    assert_eq!(last_calls(false, Some(false), on), GONE, "the pod declines");
}

#[test]
fn daemonset_pods_are_asked_once_and_a_throttled_termination_does_not_ask_again() {
    let (faulty, mut engine) = agent_on_a_drained_node(true, None);
    *faulty.fail_terminate.lock().unwrap() = Some(AdapterErrorKind::Throttled);
    block_on(engine.tick(NOW + 1000, Trigger::Manual));
    *faulty.fail_terminate.lock().unwrap() = None;
    block_on(engine.tick(NOW + 2000, Trigger::Manual));
    let calls = faulty.calls.lock().unwrap().clone();
    assert_eq!(calls, ["evict kube-system/agent-w9", "terminate i-w9 in web", "terminate i-w9 in web"]);
    assert_eq!(removals(&engine), vec![RemovalOutcome::Completed { evicted: 0 }], "no workload pod counted");
}

/// Whether the node was occupied is in its removal mark: a replica that adopts the drain
/// after a restart asks the DaemonSet pods as the one that began it would have.
#[test]
fn an_adopted_drain_knows_from_its_mark_that_the_node_was_occupied() {
    let (faulty, mut engine) = agent_on_a_drained_node(true, None);
    let mark = engine.mark_of(&engine.state.drains["w9"]);
    assert!(mark.occupied, "{mark:?}");
    let text = serde_json::to_string(&mark).unwrap();
    let read: RemovalMark = serde_json::from_str(&text).unwrap();
    assert!(read.occupied, "{text}");
    let older: RemovalMark = serde_json::from_str(&text.replace(r#","occupied":true"#, "")).unwrap();
    assert!(!older.occupied, "a mark from before: taken as empty");

    engine.state.drains.clear();
    let mut view = faulty.view.lock().unwrap().clone();
    view.nodes.iter_mut().find(|n| &*n.name == "w9").unwrap().removal_mark = Some(read);
    *faulty.view.lock().unwrap() = view;
    block_on(engine.tick(NOW + 1000, Trigger::Manual));
    assert_eq!(*faulty.calls.lock().unwrap(), EVICTED_THEN_GONE);
}

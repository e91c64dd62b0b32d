//! The order a drain asks pods to leave in: a critical pod (`system-cluster-critical`,
//! `system-node-critical`) after the others, so cluster services keep serving while the rest
//! move.

use ballast_sdk::WorkloadKind;

use super::*;
use crate::guard::fixture::{node, pod, workload};
use crate::record::Trigger;

#[test]
fn a_critical_pod_is_evicted_once_the_others_have_left() {
    let mut world = World::default();
    world.cluster.nodes.push(node("w9", Some("i-w9"), Some("web")));
    world.pods.push(pod("web-9", Some("w9"), Some(crate::guard::fixture::web()), 500));
    let dns = workload(WorkloadKind::Deployment, "dns", "coredns");
    world.pods.push(pod("coredns-9", Some("w9"), Some(dns), 100));
    world.template_mut("coredns-9").critical = true;
    let (faulty, mut engine) = engine(&world);
    world.draining("w9");
    engine.state.drains = world.state.drains.clone();
    let evictions = |faulty: &Faulty| {
        let calls = std::mem::take(&mut *faulty.calls.lock().unwrap());
        calls.into_iter().filter(|c| c.starts_with("evict")).collect::<Vec<_>>()
    };

    block_on(engine.tick(NOW + 1000, Trigger::Manual));
    assert_eq!(evictions(&faulty), ["evict shop/web-9"], "DNS stays while the web pod moves");
    world.pods.retain(|p| &*p.name != "web-9");
    *faulty.view.lock().unwrap() = world.view();
    block_on(engine.tick(NOW + 2000, Trigger::Manual));
    assert_eq!(evictions(&faulty), ["evict dns/coredns-9"]);
}

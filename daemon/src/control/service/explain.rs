//! `Explain`: why a pod is pending, why a node is not removed, why a workload is not on
//! Fargate, from the last observation's facts and the records about the subject.

use std::sync::Arc;

use ballast_proto::v1 as pb;
use ballast_sdk::{NodeGroupKind, PendingPod, Placement, Snapshot, SnapshotData};
use tonic::{Request, Response, Status};

use super::super::ControlState;
use super::super::convert::{self, kebab};
use super::super::filter::{Filter, workload_name};
use super::super::settings::Access;
use crate::engine::live::Observed;

pub struct ExplainService(pub Arc<ControlState>);

/// Records about the subject an explanation includes at most.
const RECORDS: usize = 10;

impl ExplainService {
    /// The newest records any of `filters` wants, newest first.
    fn records(&self, filters: &[Filter]) -> Vec<pb::Record> {
        let mut found = Vec::new();
        self.0.recorder.scan_back(None, |s| {
            if filters.iter().any(|f| f.matches(&s.record)) {
                found.push(convert::record(s));
            }
            found.len() < RECORDS
        });
        found
    }

    fn answer(
        &self,
        observed: &Observed,
        subject: String,
        summary: String,
        facts: Vec<String>,
        filters: &[Filter],
    ) -> pb::Explanation {
        pb::Explanation {
            subject,
            summary,
            facts,
            records: self.records(filters),
            observed_unix_millis: observed.at_millis as i64,
        }
    }
}

#[tonic::async_trait]
impl pb::explain_server::Explain for ExplainService {
    async fn pod(&self, request: Request<pb::ExplainRequest>) -> Result<Response<pb::Explanation>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let name = request.into_inner().name;
        let (None, ns, pod) = workload_name("name", &name)? else {
            return Err(Status::invalid_argument(format!("name: '{name}' is not NAMESPACE/NAME")));
        };
        let observed = super::observed(&self.0)?;
        let snapshot = &observed.obs.snapshot;
        let subject = format!("pod {ns}/{pod}");
        let Some(p) = snapshot.pending_pods.iter().find(|p| p.namespace == ns && p.name == pod) else {
            let passed_over = observed.obs.passed_over.iter().find(|p| *p.namespace == ns && *p.name == pod);
            let summary = match passed_over {
                Some(passed) => format!("{subject} is pending, and no group grows for it: {}", passed.passed_over.why),
                None => format!("{subject} was not pending at the last observation"),
            };
            let facts = vec![format!("{} pods were pending", snapshot.pending_pods.len())];
            return Ok(Response::new(self.answer(&observed, subject, summary, facts, &[])));
        };
        let Waiting { summary, facts, admitting } = pending_pod(snapshot, &observed, p);
        let mut filters = Filter::about_groups(admitting);
        if let Some(owner) = &p.owner {
            filters.push(Filter::about_workload(owner));
        }
        Ok(Response::new(self.answer(&observed, subject, summary, facts, &filters)))
    }

    async fn node(&self, request: Request<pb::ExplainRequest>) -> Result<Response<pb::Explanation>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let name = request.into_inner().name;
        let observed = super::observed(&self.0)?;
        let Some(node) = observed.obs.snapshot.nodes.iter().find(|n| n.name == name) else {
            return Err(Status::not_found(format!("name: no node '{name}' at the last observation")));
        };
        let view = super::groups::node(node, &observed);
        let mut facts = vec![
            format!("group {}, {} in {}", view.group, view.instance_type, view.zone),
            format!("utilisation {:.0}% of allocatable, {} pods", view.utilisation * 100.0, view.pod_count),
        ];
        if node.cordoned {
            facts.push("cordoned".into());
        }
        if !view.drift.is_empty() {
            let eks = node.group.as_ref().and_then(|g| observed.obs.groups.get(g)).is_some_and(|g| g.updates_itself);
            let dry_run = self.0.live.mode() == crate::engine::Mode::DryRun;
            let then = match (eks, observed.guardrails.drift.replace, dry_run) {
                (true, _, _) => "EKS replaces a managed node group's nodes itself (UpdateNodegroupVersion)",
                (false, true, false) => {
                    "replaced in its turn (engine.guardrails.drift.replace), as the disruption budget allows"
                }
                (false, true, true) => "dry-run: its replacement is recorded in its turn, and not done",
                (false, false, _) => "it stays: drift replacement is off (engine.guardrails.drift.replace)",
            };
            facts.push(format!("drifted: {}; {then}", view.drift));
        }
        let summary = match (&node.removal_blocker, view.being_removed) {
            (_, true) => format!("node {name} is being removed (drain in progress)"),
            (Some(blocker), _) => format!("node {name} may not be removed: {blocker}"),
            (None, false) => format!(
                "node {name} may be removed; no policy has chosen it (utilisation {:.0}%)",
                view.utilisation * 100.0
            ),
        };
        Ok(Response::new(self.answer(&observed, format!("node {name}"), summary, facts, &[Filter::about_node(&name)])))
    }

    async fn workload(&self, request: Request<pb::ExplainRequest>) -> Result<Response<pb::Explanation>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let name = request.into_inner().name;
        let (kind, ns, wl) = workload_name("name", &name)?;
        let observed = super::observed(&self.0)?;
        let snapshot = &observed.obs.snapshot;
        let Some(w) = snapshot
            .workloads
            .iter()
            .find(|w| w.id.namespace == ns && w.id.name == wl && kind.as_ref().is_none_or(|k| *k == kebab(&w.id.kind)))
        else {
            return Err(Status::not_found(format!("name: no workload '{name}' at the last observation")));
        };
        let fargate = snapshot.node_groups.iter().any(|g| g.kind == NodeGroupKind::Fargate);
        let summary = match (&w.placement, &w.fargate_blocker) {
            (Placement::Fargate, _) => format!("{} runs on Fargate", w.id),
            (_, Some(blocker)) => format!("{} may not run on Fargate: {blocker}", w.id),
            (_, None) if !fargate => {
                format!("{} is eligible, but the cluster has no Fargate profile Ballast may use", w.id)
            }
            (_, None) => format!("{} is eligible for Fargate; no policy has moved it there", w.id),
        };
        let facts = vec![
            format!("placement: {}", kebab(&w.placement)),
            format!(
                "{} replicas of {} mCPU, {} MiB",
                w.replicas,
                w.requests_per_replica.cpu_millis,
                w.requests_per_replica.memory_bytes >> 20
            ),
        ];
        let filters = [Filter::about_workload(&w.id)];
        Ok(Response::new(self.answer(&observed, format!("workload {}", w.id), summary, facts, &filters)))
    }
}

/// Why a pending pod waits.
struct Waiting {
    summary: String,
    facts: Vec<String>,
    /// The groups that could run it.
    admitting: Vec<String>,
}

/// What a zone spread asks of a pod, with where its workload's pods run now.
fn kept_spread(spread: &ballast_sdk::ZoneSpread) -> String {
    let now: Vec<String> = spread.pods_by_zone.iter().map(|z| format!("{} in {}", z.pods, z.zone)).collect();
    let now = if now.is_empty() { "none on nodes yet".to_string() } else { now.join(", ") };
    format!(
        "kept spread over zones: at most {} more of {}'s pods in one zone than in the zone with the fewest \
         (a topology spread on topology.kubernetes.io/zone), so it needs room in a zone that runs fewer; now {now}",
        spread.max_skew, spread.workload
    )
}

/// Why a pending pod waits: which groups admit it, and what keeps each from giving it a node.
fn pending_pod(snapshot: &SnapshotData, observed: &Observed, p: &PendingPod) -> Waiting {
    let mut facts = vec![format!(
        "waiting {}s for {} mCPU, {} MiB",
        p.age_seconds,
        p.requests.cpu_millis,
        p.requests.memory_bytes >> 20
    )];
    if let Some((owner, max)) = p.owner.as_ref().and_then(|o| Some((o, snapshot.max_per_node(o)?))) {
        facts.push(match observed.obs.node_skews.get(owner) {
            Some(skew) => format!(
                "kept spread over nodes: at most {} more of {owner}'s pods on one node than on the node with \
                 the fewest (a topology spread on kubernetes.io/hostname{}), so at most {max} on one node now, once \
                 its waiting pods fill the nodes with the fewest; it needs a node that runs fewer",
                skew.max_skew,
                skew.min_domains.map_or(String::new(), |m| format!(
                    "; minDomains {m}: until {m} nodes count, none runs more than {}",
                    skew.max_skew
                )),
            ),
            None => format!(
                "kept apart: at most {max} of {owner}'s pods on one node (required pod anti-affinity on \
                 kubernetes.io/hostname), so it needs a node that runs fewer"
            ),
        });
    }
    if let Some(spread) = p.owner.as_ref().and_then(|o| snapshot.zone_spread(o)) {
        facts.push(kept_spread(spread));
    }
    if let Some(away) = p.owner.as_ref().map(|o| snapshot.kept_away_from(o)).filter(|a| !a.is_empty()) {
        let names: Vec<String> = away.iter().map(ToString::to_string).collect();
        facts.push(format!(
            "kept away from the pods of {} (required pod anti-affinity on kubernetes.io/hostname, its rule or \
             theirs), so it needs a node that runs none of them",
            names.join(", ")
        ));
    }
    if let Some(zone) = p.owner.as_ref().and_then(|o| observed.obs.zone_pins.get(o)) {
        facts.push(format!(
            "kept in {zone}, where the pods its required pod affinity on topology.kubernetes.io/zone takes in run, \
             so only a node in {zone} takes it"
        ));
    }
    let mut admitting = Vec::new();
    for g in snapshot.node_groups.iter().filter(|g| g.kind == NodeGroupKind::Asg) {
        if let Some(refusal) = g.refusal(p) {
            facts.push(format!("group {}: {refusal}", g.id));
            continue;
        }
        if !g.launch_allocatable().fits(&p.requests) {
            facts.push(format!("group {}: the pod does not fit on a node of the type it launches", g.id));
            continue;
        }
        admitting.push(g.id.clone());
        let backoff = observed.state.groups.get(&g.id).and_then(|s| s.backing_off(observed.at_millis));
        facts.push(match backoff {
            Some(b) => format!("group {}: admits it, but is backing off: {}", g.id, b.reason),
            None if g.desired_size >= g.max_size => {
                format!("group {}: admits it, but is at its max-size {}", g.id, g.max_size)
            }
            None if g.desired_size > g.ready_nodes => {
                format!(
                    "group {}: admits it; {} node(s) asked for are on their way",
                    g.id,
                    g.desired_size - g.ready_nodes
                )
            }
            None => format!("group {}: admits it and may grow ({} of max {})", g.id, g.desired_size, g.max_size),
        });
    }
    let summary = match admitting.len() {
        0 => format!("pod {}/{} is pending and no node group can run it", p.namespace, p.name),
        n => format!("pod {}/{} is pending; {n} node group(s) can run it", p.namespace, p.name),
    };
    Waiting { summary, facts, admitting }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::guard::fixture::{self, NOW};
    use crate::engine::state::BackoffState;

    /// The world observed at the fixture's time, as the control API holds it.
    /// Why web-9, a web pod of 500 mCPU, waits in the fixture cluster as `setup` leaves it.
    fn web9_waiting(setup: impl FnOnce(&mut fixture::World)) -> Waiting {
        let mut world = fixture::World::default();
        world.pods.push(fixture::pod("web-9", None, Some(fixture::web()), 500));
        setup(&mut world);
        let (obs, observed) = observed(&world);
        let web9 = obs.snapshot.pending_pods.iter().find(|p| p.name == "web-9").unwrap();
        pending_pod(&obs.snapshot, &observed, web9)
    }

    fn observed(world: &fixture::World) -> (Arc<crate::engine::observe::Observation>, Observed) {
        let obs = Arc::new(world.observe());
        let observed = Observed {
            at_millis: NOW,
            obs: obs.clone(),
            state: world.state.clone(),
            guardrails: world.config.clone(),
            unplaceable_pods: 0,
        };
        (obs, observed)
    }

    #[test]
    fn a_pending_pod_is_explained_group_by_group() {
        let mut world = fixture::World::default();
        world.pods.push(fixture::pod("web-9", None, Some(fixture::web()), 500));
        world.pods.push(fixture::pod("huge", None, Some(fixture::web()), 64_000));
        let mut arm = fixture::pod("arm-1", None, Some(fixture::web()), 500);
        let selector = [("kubernetes.io/arch".to_string(), "arm64".to_string())].into();
        arm.template = Arc::new(crate::engine::ports::PodTemplate { node_selector: selector, ..Default::default() });
        world.pods.push(arm);
        let backoff = BackoffState { until: NOW + 60_000, reason: "launch failed: no capacity".into() };
        world.state.group("batch").backoff = Some(backoff);
        let (obs, observed) = observed(&world);
        let pending = |name: &str| obs.snapshot.pending_pods.iter().find(|p| p.name == name).cloned().unwrap();

        let waiting = pending_pod(&obs.snapshot, &observed, &pending("web-9"));
        assert_eq!(waiting.admitting, ["batch", "web"]);
        assert!(waiting.summary.ends_with("is pending; 2 node group(s) can run it"), "{}", waiting.summary);
        assert!(
            waiting.facts.iter().any(|f| f == "group batch: admits it, but is backing off: launch failed: no capacity"),
            "{:?}",
            waiting.facts
        );
        assert!(
            waiting.facts.iter().any(|f| f == "group web: admits it and may grow (4 of max 10)"),
            "{:?}",
            waiting.facts
        );

        let arm = pending_pod(&obs.snapshot, &observed, &pending("arm-1"));
        assert!(
            arm.facts.iter().any(|f| f == "group web: its nodes do not carry kubernetes.io/arch=arm64"),
            "each group's refusal names the label: {:?}",
            arm.facts
        );

        let huge = pending_pod(&obs.snapshot, &observed, &pending("huge"));
        assert!(huge.admitting.is_empty() && huge.summary.ends_with("no node group can run it"), "{}", huge.summary);
        assert!(!waiting.facts.iter().any(|f| f.starts_with("kept ")), "{:?}", waiting.facts);
    }

    #[test]
    fn a_pending_pod_kept_apart_says_how_many_of_its_workloads_pods_a_node_may_run() {
        let waiting = web9_waiting(|world| world.cluster.workloads[0].max_per_node = Some(1));
        let told = "kept apart: at most 1 of deployment/shop/web's pods on one node (required pod anti-affinity on \
                    kubernetes.io/hostname), so it needs a node that runs fewer";
        assert!(waiting.facts.iter().any(|f| f == told), "{:?}", waiting.facts);
    }

    #[test]
    fn a_pending_pod_kept_off_anothers_nodes_names_that_workload() {
        let waiting = web9_waiting(|world| {
            let db = world.cluster.workloads[1].id.clone();
            world.cluster.workloads[0].kept_away = vec![db];
        });
        let told = "kept away from the pods of stateful-set/shop/db (required pod anti-affinity on \
                    kubernetes.io/hostname, its rule or theirs), so it needs a node that runs none of them";
        assert!(waiting.facts.iter().any(|f| f == told), "{:?}", waiting.facts);
    }

    #[test]
    fn a_pending_pod_kept_in_the_zone_of_anothers_pods_names_the_zone() {
        let waiting = web9_waiting(|world| {
            let db = world.cluster.workloads[1].id.clone();
            world.cluster.workloads[0].zone_affinity = vec![db.clone()];
            world.pods.push(fixture::pod("db-0", Some("w1"), Some(db), 100));
        });
        let told = "kept in us-east-1a, where the pods its required pod affinity on topology.kubernetes.io/zone takes \
                    in run, so only a node in us-east-1a takes it";
        assert!(waiting.facts.iter().any(|f| f == told), "{:?}", waiting.facts);
    }

    #[test]
    fn a_pending_pod_kept_spread_over_nodes_says_the_skew_and_the_cap_it_sets_now() {
        let waiting = web9_waiting(|world| world.cluster.workloads[0].max_node_skew = Some(1));
        let told = "kept spread over nodes: at most 1 more of deployment/shop/web's pods on one node than on the node \
                    with the fewest (a topology spread on kubernetes.io/hostname), so at most 2 on one node now, once \
                    its waiting pods fill the nodes with the fewest; it needs a node that runs fewer";
        assert!(waiting.facts.iter().any(|f| f == told), "{:?}", waiting.facts);
        let waiting = web9_waiting(|world| {
            world.cluster.workloads[0].max_node_skew = Some(1);
            world.cluster.workloads[0].min_node_domains = Some(9);
        });
        let told = "kept spread over nodes: at most 1 more of deployment/shop/web's pods on one node than on the node \
                    with the fewest (a topology spread on kubernetes.io/hostname; minDomains 9: until 9 nodes count, \
                    none runs more than 1), so at most 1 on one node now, once its waiting pods fill the nodes with \
                    the fewest; it needs a node that runs fewer";
        assert!(waiting.facts.iter().any(|f| f == told), "{:?}", waiting.facts);
    }

    #[test]
    fn a_pending_pod_kept_spread_over_zones_says_the_skew_and_where_its_workloads_pods_run() {
        let waiting = web9_waiting(|world| {
            world.cluster.workloads[0].max_zone_skew = Some(1);
            world.node_mut("w4").zone = "us-east-1b".into();
        });
        let told = "kept spread over zones: at most 1 more of deployment/shop/web's pods in one zone than in the zone \
                    with the fewest (a topology spread on topology.kubernetes.io/zone), so it needs room in a zone that \
                    runs fewer; now 3 in us-east-1a, 1 in us-east-1b";
        assert!(waiting.facts.iter().any(|f| f == told), "{:?}", waiting.facts);
    }
}

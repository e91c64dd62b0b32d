//! `NodeGroups`: each group as the last tick saw it, with its nodes.

use std::sync::Arc;

use ballast_proto::v1 as pb;
use ballast_sdk::{Node, NodeGroup};
use tonic::{Request, Response, Status};

use super::super::ControlState;
use super::super::convert::{self, kebab};
use super::super::settings::Access;
use crate::engine::live::Observed;
use crate::policy::Change;

pub struct NodeGroupsService(pub Arc<ControlState>);

#[tonic::async_trait]
impl pb::node_groups_server::NodeGroups for NodeGroupsService {
    async fn list(
        &self,
        request: Request<pb::ListNodeGroupsRequest>,
    ) -> Result<Response<pb::ListNodeGroupsResponse>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let body = request.into_inner();
        let observed = super::observed(&self.0)?;
        let snapshot = &observed.obs.snapshot;
        if !body.group.is_empty() && !snapshot.node_groups.iter().any(|g| g.id == body.group) {
            return Err(Status::not_found(format!("group: no node group '{}'", body.group)));
        }
        let groups = snapshot
            .node_groups
            .iter()
            .filter(|g| body.group.is_empty() || g.id == body.group)
            .map(|g| group(g, &observed, body.nodes))
            .collect();
        Ok(Response::new(pb::ListNodeGroupsResponse { groups, observed_unix_millis: observed.at_millis as i64 }))
    }

    async fn replace(
        &self,
        request: Request<pb::ReplaceNodeGroupRequest>,
    ) -> Result<Response<pb::ReplaceNodeGroupResponse>, Status> {
        let caller = self.0.credentials.authorize(&request, Access::Write)?;
        let body = request.into_inner();
        let group = required_group(&body.group)?;
        let asked = super::asked(caller, &body.reason)?;
        let change =
            super::apply(&self.0, Change::ReplaceGroup { group, at_once: body.at_once, dry_run: body.dry_run }, asked)
                .await?;
        Ok(Response::new(pb::ReplaceNodeGroupResponse { change }))
    }

    async fn cancel_replace(
        &self,
        request: Request<pb::CancelNodeGroupReplacementRequest>,
    ) -> Result<Response<pb::ReplaceNodeGroupResponse>, Status> {
        let caller = self.0.credentials.authorize(&request, Access::Write)?;
        let body = request.into_inner();
        let group = required_group(&body.group)?;
        let asked = super::asked(caller, &body.reason)?;
        let change = super::apply(&self.0, Change::CancelGroupReplacement(group), asked).await?;
        Ok(Response::new(pb::ReplaceNodeGroupResponse { change }))
    }
}

fn required_group(group: &str) -> Result<String, Status> {
    match group.trim() {
        "" => Err(Status::invalid_argument("group: required; the node group's id")),
        group => Ok(group.to_string()),
    }
}

fn group(g: &NodeGroup, observed: &Observed, with_nodes: bool) -> pb::NodeGroup {
    let nodes: Vec<&Node> =
        observed.obs.snapshot.nodes.iter().filter(|n| n.group.as_deref() == Some(g.id.as_str())).collect();
    let cost_per_hour = crate::engine::cost::group_cost(g, &observed.obs.snapshot);
    let state = observed.state.groups.get(&g.id);
    let backoff = state.and_then(|s| s.backing_off(observed.at_millis));
    pb::NodeGroup {
        id: g.id.clone(),
        kind: kebab(&g.kind),
        min_size: g.min_size,
        max_size: g.max_size,
        desired_size: g.desired_size,
        ready_nodes: g.ready_nodes,
        instance_types: g
            .instance_types
            .iter()
            .map(|t| pb::InstanceType {
                name: t.name.clone(),
                price_per_hour: t.price_per_hour,
                allocatable: Some(convert::resources(&t.allocatable)),
            })
            .collect(),
        backoff: backoff.map(|b| pb::Backoff { until_unix_millis: b.until as i64, reason: b.reason.clone() }),
        cost_per_hour,
        nodes: if with_nodes { nodes.iter().map(|n| node(n, observed)).collect() } else { Vec::new() },
        labels: g.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        zones: g.zones.clone(),
        recent_provisioning_seconds: state.map(|s| s.provisioned.clone()).unwrap_or_default(),
        drifted_nodes: nodes.iter().filter(|n| drift(&n.name, observed).is_some()).count() as u32,
        replacement: observed.state.rolls.get(&g.id).map(|r| pb::GroupReplacement {
            since_unix_millis: r.before_millis as i64,
            at_once: r.at_once,
            asked_by: r.caller.clone(),
            reason: r.reason.clone(),
            started: r.started,
        }),
    }
}

pub fn node(n: &Node, observed: &Observed) -> pb::Node {
    pb::Node {
        name: n.name.clone(),
        group: n.group.clone().unwrap_or_default(),
        instance_type: n.instance_type.clone(),
        zone: n.zone.clone(),
        ready: n.ready,
        cordoned: n.cordoned,
        allocatable: Some(convert::resources(&n.allocatable)),
        requested: Some(convert::resources(&n.requested)),
        usage: n.usage.as_ref().map(convert::resources),
        utilisation: n.utilisation(),
        removal_blocker: n.removal_blocker.clone().unwrap_or_default(),
        being_removed: observed.state.drains.contains_key(&n.name),
        age_seconds: n.age_seconds,
        pod_count: n.pod_count,
        drift: drift(&n.name, observed).map_or_else(String::new, ToString::to_string),
    }
}

fn drift<'o>(node: &str, observed: &'o Observed) -> Option<&'o crate::engine::drift::Drift> {
    observed.obs.nodes.get(node)?.drift.as_ref()
}

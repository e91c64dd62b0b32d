//! `Nodes`: an operator's replacement of one node, handled as an instance retirement.

use std::sync::Arc;
use std::time::Duration;

use ballast_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::super::ControlState;
use super::super::convert;
use super::super::settings::Access;
use crate::engine::record::{GuardOutcome, Record};
use crate::engine::rule::{self, Rule};
use crate::policy::Change;

pub struct NodesService(pub Arc<ControlState>);

/// How long an answer waits for the tick that acts on the request (run at once).
const DECISION_WAIT: Duration = Duration::from_secs(30);

#[tonic::async_trait]
impl pb::nodes_server::Nodes for NodesService {
    async fn replace(
        &self,
        request: Request<pb::ReplaceNodeRequest>,
    ) -> Result<Response<pb::ReplaceNodeResponse>, Status> {
        let caller = self.0.credentials.authorize(&request, Access::Write)?;
        let body = request.into_inner();
        let node = match body.name.trim() {
            "" => return Err(Status::invalid_argument("name: required; the name of the node to replace")),
            name => name.to_string(),
        };
        let asked = super::asked(caller, &body.reason)?;
        let (answer, decided) = tokio::sync::oneshot::channel();
        super::apply(&self.0, Change::ReplaceNode { node, dry_run: body.dry_run, answer }, asked).await?;
        let decision = match tokio::time::timeout(DECISION_WAIT, decided).await {
            Ok(Ok(stamped)) => stamped,
            // Not decided yet (a long tick), or the node went before the tick acted on it.
            _ => return Ok(Response::new(pb::ReplaceNodeResponse { decision: None })),
        };
        if let Record::Decision(d) = &decision.record
            && let GuardOutcome::Refused { why } = &d.guard
        {
            let message = rule::join(why);
            return Err(match why.first().map(|w| w.rule) {
                Some(Rule::UnknownNode) => Status::not_found(format!("name: {message}")),
                _ => Status::failed_precondition(format!("name: {message}")),
            });
        }
        Ok(Response::new(pb::ReplaceNodeResponse { decision: Some(convert::record(&decision)) }))
    }
}

//! One file per service of `ballast.v1`.

mod decisions;
mod explain;
mod groups;
mod nodes;
mod plugins;
mod simulate;
mod status;

use std::sync::Arc;

pub use decisions::DecisionsService;
pub use explain::ExplainService;
pub use groups::NodeGroupsService;
pub use nodes::NodesService;
pub use plugins::PluginsService;
pub use simulate::SimulateService;
pub use status::{ModeService, StatusService};
use tonic::Status;

use super::ControlState;
use crate::engine::control::ChangeError;
use crate::engine::live::Observed;
use crate::runner::Command;

/// The last observation, or UNAVAILABLE before the first tick has observed.
fn observed(state: &ControlState) -> Result<Arc<Observed>, Status> {
    state.live.observed().ok_or_else(|| Status::unavailable("nothing observed yet: the first tick has not run"))
}

/// Sends a change to the runner and waits for it to be applied (between ticks).
async fn apply(
    state: &ControlState,
    change: crate::policy::Change,
    asked: crate::engine::control::Asked,
) -> Result<String, Status> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    state
        .commands
        .send(Command { change, asked, reply })
        .await
        .map_err(|_| Status::unavailable("the engine loop is stopping"))?;
    match answer.await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(error)) => Err(refused(error)),
        Err(_) => Err(Status::unavailable("the engine loop stopped before applying the change")),
    }
}

/// The status of a change the engine refused.
fn refused(error: ChangeError) -> Status {
    match error {
        ChangeError::NoSuchPlugin(_) => Status::not_found(format!("name: {error}")),
        ChangeError::NoSuchGroup(_) => Status::not_found(format!("group: {error}")),
        ChangeError::NotReplacing(_) | ChangeError::AlreadyReplacing { .. } => {
            Status::failed_precondition(format!("group: {error}"))
        }
        ChangeError::Paused | ChangeError::NotLeading => Status::failed_precondition(error.to_string()),
        ChangeError::InvalidGuardrails(_) => Status::invalid_argument(error.to_string()),
    }
}

/// A reason is required on every change: it is what the record says.
fn reason(reason: &str) -> Result<String, Status> {
    match reason.trim() {
        "" => Err(Status::invalid_argument("reason: required; say why, it goes in the decision record")),
        r => Ok(r.to_string()),
    }
}

/// Who asked for a change (an authorised caller) and why ([`reason`]).
fn asked(caller: crate::control::auth::Caller, reason_given: &str) -> Result<crate::engine::control::Asked, Status> {
    Ok(crate::engine::control::Asked { caller: caller.name, reason: reason(reason_given)? })
}

//! What the engine does when an adapter call fails, decided in one place from the error's
//! kind (never from its wording):
//!
//! | kind | what it means here | what the engine does |
//! | --- | --- | --- |
//! | `NotFound` on terminate, evict or clear | the instance, pod or node is already gone | counts the step as done |
//! | `NotFound` otherwise | the group, node or workload went away | records a failure |
//! | `Throttled` | the API is rate limiting | counts it, records `throttled`, retries next tick |
//! | `Refused` | the API refused on purpose | records the server's message as a refusal |
//! | `Failed` | anything else | records the failure; the next tick decides again |

use super::ports::{AdapterError, AdapterErrorKind};
use super::record::{ActionResult, FailureKind};

/// The adapter call that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    SetSize,
    Mark,
    Clear,
    Evict,
    Terminate,
    Place,
}

/// What to make of a failed call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// What the call was for has already happened.
    AlreadyDone,
    /// Rate limited: try again next tick.
    Retry(String),
    /// The API said no, with its reason.
    Refused(String),
    Failed(String),
}

pub fn disposition(step: Step, error: &AdapterError) -> Disposition {
    let message = error.to_string();
    match error.kind {
        AdapterErrorKind::NotFound if matches!(step, Step::Terminate | Step::Evict | Step::Clear) => {
            Disposition::AlreadyDone
        }
        AdapterErrorKind::NotFound => Disposition::Failed(message),
        AdapterErrorKind::Throttled => Disposition::Retry(message),
        AdapterErrorKind::Refused => Disposition::Refused(message),
        AdapterErrorKind::Failed => Disposition::Failed(message),
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disposition::AlreadyDone => f.write_str("already done"),
            Disposition::Retry(e) => write!(f, "throttled, retried next tick: {e}"),
            Disposition::Refused(e) => write!(f, "refused: {e}"),
            Disposition::Failed(e) => f.write_str(e),
        }
    }
}

impl Disposition {
    /// The decision's result for a failed step; none when the step counts as done.
    pub fn result(&self) -> Option<ActionResult> {
        let (kind, error) = match self {
            Disposition::AlreadyDone => return None,
            Disposition::Retry(e) => (FailureKind::Throttled, e),
            Disposition::Refused(e) => (FailureKind::Refused, e),
            Disposition::Failed(e) => (FailureKind::Failed, e),
        };
        Some(ActionResult::Failed { error: error.clone(), kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: AdapterErrorKind) -> AdapterError {
        AdapterError::new(kind, "terminate i-1 in web", "server says so")
    }

    #[test]
    fn each_kind_has_one_disposition() {
        assert_eq!(disposition(Step::Terminate, &error(AdapterErrorKind::NotFound)), Disposition::AlreadyDone);
        assert_eq!(disposition(Step::Clear, &error(AdapterErrorKind::NotFound)), Disposition::AlreadyDone);
        assert!(matches!(disposition(Step::SetSize, &error(AdapterErrorKind::NotFound)), Disposition::Failed(_)));
        let retry = disposition(Step::SetSize, &error(AdapterErrorKind::Throttled));
        assert!(matches!(&retry, Disposition::Retry(m) if m.contains("server says so")));
        let refused = disposition(Step::Place, &error(AdapterErrorKind::Refused));
        assert_eq!(
            refused.result(),
            Some(ActionResult::Failed {
                error: "terminate i-1 in web: server says so".into(),
                kind: FailureKind::Refused
            })
        );
    }
}

//! A plugin built against `ballast:policy@0.1.0` as it was released (a frozen copy of its
//! WIT, not the SDK), to prove the evolution rule: a host serving a newer 0.1.x still loads
//! and runs it. It scales the first node group to the number of pending pods.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use ballast::policy::snapshot::Snapshot;
use ballast::policy::types::{Action, Decision, ScaleTo};
use exports::ballast::policy::policy::{Evaluation, Guest};

struct Old;

impl Guest for Old {
    fn validate_settings(_: String) -> Result<(), String> {
        Ok(())
    }

    fn evaluate(snapshot: &Snapshot) -> Result<Evaluation, String> {
        let pending = snapshot.pending_pods().len() as u32;
        let decisions = snapshot
            .node_groups()
            .into_iter()
            .take(1)
            .map(|g| Decision {
                action: Action::ScaleTo(ScaleTo { group: g.id, size: pending }),
                reason: "built against ballast:policy@0.1.0".into(),
            })
            .collect();
        Ok(Evaluation { decisions, state: None })
    }
}

export!(Old);

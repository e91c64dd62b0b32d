//! The policy's settings, with Karpenter's defaults.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    /// How long a node must stay removable before it is proposed.
    pub consolidate_after_seconds: u64,
    /// Also nodes that still run pods (false: empty nodes only, Karpenter's `WhenEmpty`).
    pub underutilised: bool,
    /// Fraction of the managed nodes that may be under removal at once (at least one).
    pub disruption_budget: f64,
    /// Empty nodes (DaemonSet pods only) use the budget too: Karpenter's default budget,
    /// which counts every reason. Off, they all go together, as Cluster Autoscaler deletes
    /// empty nodes, within the host's `max-step-down`.
    pub count_empty_nodes: bool,
    /// No removal in a group that grew within this many seconds, on top of the host's own
    /// cooldowns (which are always respected).
    pub stabilise_seconds: u64,
    /// A group that grows again this soon after a removal waits longer next time (0: off).
    pub churn_window_seconds: u64,
    /// The longest extra wait churn can add.
    pub max_wait_seconds: u64,
    /// Replace a node by a new one of a cheaper group when its pods fit there (and on the
    /// room the others have): Karpenter's replacement. Needs contract 0.1.4's `pods-on-node`.
    pub replace: bool,
    /// The least fraction of the node's price a replacement must save.
    pub replace_min_saving: f64,
    /// The most nodes one merge replaces by a single new node (Karpenter's multi-node
    /// consolidation); below 2, no merges.
    pub merge_max_nodes: u32,
    /// The least fraction of the merged nodes' prices together a merge must save.
    pub merge_min_saving: f64,
    /// A node that runs pods of a workload whose replicas fell within this many seconds is
    /// not drained (0: off): the workload's scale-in is emptying nodes itself ([`crate::shrink`]).
    pub shrink_wait_seconds: u64,
    /// A node that runs pods of a workload whose replicas fell within this many seconds is
    /// not replaced or merged (0: off), only removed when its pods fit elsewhere ([`crate::shrink`]).
    pub shrink_replace_wait_seconds: u64,
    /// A node is replaced or merged only if the host's cooldowns let its group shrink by the
    /// time the new node is Ready (`replace-ready-within-seconds`; off: Karpenter's way,
    /// launch first whenever). Launched sooner, the new node waits beside the node it replaces
    /// until the cooldown ends, and a climb that keeps resetting the cooldown takes its room
    /// meanwhile: the replacement is given up, the node stays.
    pub replace_after_cooldown: bool,
    /// How soon a replacement's new node is taken to be Ready, for `replace-after-cooldown`:
    /// a launch and a boot of the groups it may come from (one to three minutes on EC2;
    /// 0: the group must be free to shrink now).
    pub replace_ready_within_seconds: u64,
    /// No replacement or merge launches in a group whose launch failed within this many
    /// seconds and that has not delivered nodes since (contract 0.1.9 `launch-failures`;
    /// 0: off). Such a launch saves money only if the capacity came back, and another
    /// failure doubles the group's back-off, which pods that need the group then wait out.
    /// Karpenter keeps an offering it could not launch out of its choices for 3 minutes.
    pub failed_group_wait_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            consolidate_after_seconds: 0,
            underutilised: true,
            disruption_budget: 0.1,
            count_empty_nodes: false,
            stabilise_seconds: 0,
            churn_window_seconds: 0,
            max_wait_seconds: 900,
            replace: true,
            replace_min_saving: 0.2,
            merge_max_nodes: 3,
            merge_min_saving: 0.1,
            shrink_wait_seconds: 0,
            shrink_replace_wait_seconds: 0,
            replace_after_cooldown: false,
            replace_ready_within_seconds: 180,
            failed_group_wait_seconds: 900,
        }
    }
}

impl Settings {
    /// Refuses a fraction out of its range, naming the setting and the value.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.disruption_budget > 0.0 && self.disruption_budget <= 1.0) {
            return Err(format!("disruption-budget must be in (0, 1], got {}", self.disruption_budget));
        }
        if !(self.replace_min_saving > 0.0 && self.replace_min_saving < 1.0) {
            return Err(format!("replace-min-saving must be in (0, 1), got {}", self.replace_min_saving));
        }
        if !(self.merge_min_saving > 0.0 && self.merge_min_saving < 1.0) {
            return Err(format!("merge-min-saving must be in (0, 1), got {}", self.merge_min_saving));
        }
        if self.failed_group_wait_seconds > 86_400 {
            return Err(format!(
                "failed-group-wait-seconds must be at most 86400 (a day), got {}",
                self.failed_group_wait_seconds
            ));
        }
        Ok(())
    }
}

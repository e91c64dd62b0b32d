//! The guardrails' vocabulary: which rule changed or refused a proposal, with the sentence a
//! user reads. Records, the CLI and tests match the [`Rule`], never the wording.

use serde::{Deserialize, Serialize};

/// A guardrail, by what it protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The decision names a node group Ballast does not manage.
    UnknownGroup,
    /// A size was asked of the Fargate group, whose capacity follows its pods.
    FargateHasNoSize,
    /// Several plugins asked for one group; the largest target won.
    Superseded,
    /// The group failed to provision and is backing off.
    BackingOff,
    /// The group grew too recently to grow again.
    ScaleUpCooldown,
    /// The group is already at its max-size.
    AtMaxSize,
    /// The target was lowered to the group's max-size.
    ClampedToMaxSize,
    /// The growth was lowered to `max-step-up`.
    MaxStepUp,
    /// The growth was lowered or refused by a cluster-wide limit (`limits`).
    ClusterLimit,
    /// The group is already at its min-size.
    AtMinSize,
    /// The target was raised to the group's min-size.
    ClampedToMinSize,
    /// Too many nodes are unready for any scale-down.
    UnreadyBrake,
    /// The group grew too recently to shrink.
    ScaleDownAfterScaleUp,
    /// The group shrank too recently to shrink again.
    ScaleDownCooldown,
    /// A scale-down below the running instances became drains of chosen nodes.
    ConvertedToRemovals,
    /// Fewer nodes than asked could be removed.
    PartialRemoval,
    /// No node of the group could be removed.
    NoRemovableNode,
    /// The decision names a node the cluster does not have.
    UnknownNode,
    /// The node is already being removed.
    AlreadyBeingRemoved,
    /// The node has a removal blocker (PDB, no controller, local storage, safe-to-evict,
    /// scale-down-disabled, do-not-disrupt, too young, Fargate, unmanaged).
    RemovalBlocked,
    /// No Auto Scaling group instance is known behind the node.
    NoInstance,
    /// The node's group is not managed by Ballast.
    GroupNotManaged,
    /// The node's group grows this tick.
    GroupGrowing,
    /// Removing the node would take its group below min-size.
    BelowMinSize,
    /// The group already loses `max-step-down` nodes this tick.
    MaxStepDown,
    /// The cluster-wide disruption budget is spent.
    DisruptionBudget,
    /// A scheduled disruption window is open and its limit is reached.
    DisruptionWindow,
    /// The decision names a workload the cluster does not have.
    UnknownWorkload,
    /// An earlier decision placed the workload this tick.
    AlreadyPlaced,
    /// The cluster has no Fargate profile.
    NoFargateProfile,
    /// The workload cannot run on Fargate.
    FargateIneligible,
    /// An EC2 placement named the Fargate group.
    NotEc2,
    /// The workload moved too recently to move again.
    PlacementCooldown,
    /// A record written before rules were recorded.
    Unrecorded,
}

/// One reason a proposal was changed or refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WhyRepr")]
pub struct Why {
    pub rule: Rule,
    pub message: String,
}

impl Why {
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        Why { rule, message: message.into() }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Journals written before rules existed hold plain sentences; they still read back.
#[derive(Deserialize)]
#[serde(untagged)]
enum WhyRepr {
    Typed { rule: Rule, message: String },
    Text(String),
}

impl From<WhyRepr> for Why {
    fn from(repr: WhyRepr) -> Self {
        match repr {
            WhyRepr::Typed { rule, message } => Why { rule, message },
            WhyRepr::Text(message) => Why { rule: Rule::Unrecorded, message },
        }
    }
}

/// The messages of `why`, joined for one line of output.
pub fn join(why: &[Why]) -> String {
    why.iter().map(|w| w.message.as_str()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_reasons_and_old_plain_ones() {
        let typed: Why = serde_json::from_str(r#"{"rule":"max-step-up","message":"limited"}"#).unwrap();
        assert_eq!(typed, Why::new(Rule::MaxStepUp, "limited"));
        let old: Why = serde_json::from_str(r#""clamped to 20""#).unwrap();
        assert_eq!(old.rule, Rule::Unrecorded);
        let bad = serde_json::from_str::<Why>(r#"{"rule":"no-such-rule","message":"x"}"#);
        assert!(bad.is_err());
    }
}

//! What a policy proposes: actions with their reasons, and what earlier plugins proposed.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::WorkloadRef;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlacementTarget {
    Fargate,
    /// EC2, optionally in a named group.
    Ec2(Option<String>),
}

/// What a policy asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Set a node group's desired size.
    ScaleTo { group: String, size: u32 },
    /// Change a node group's desired size by a delta.
    ScaleBy { group: String, delta: i32 },
    /// Cordon, drain and terminate these nodes.
    RemoveNodes { nodes: Vec<String> },
    /// Run a workload on Fargate or EC2.
    Place { workload: WorkloadRef, target: PlacementTarget },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::ScaleTo { group, size } => write!(f, "scale {group} to {size}"),
            Action::ScaleBy { group, delta } => write!(f, "scale {group} by {delta:+}"),
            Action::RemoveNodes { nodes } => write!(f, "remove {}", nodes.join(", ")),
            Action::Place { workload, target: PlacementTarget::Fargate } => {
                write!(f, "place {workload} on fargate")
            }
            Action::Place { workload, target: PlacementTarget::Ec2(None) } => {
                write!(f, "place {workload} on ec2")
            }
            Action::Place { workload, target: PlacementTarget::Ec2(Some(group)) } => {
                write!(f, "place {workload} on ec2 group {group}")
            }
        }
    }
}

/// A proposed action and why, for people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Decision {
    pub action: Action,
    pub reason: String,
}

impl Decision {
    pub fn new(action: Action, reason: impl Into<String>) -> Self {
        Decision { action, reason: reason.into() }
    }
}

/// A decision an earlier plugin of the chain proposed this tick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Proposal {
    pub plugin: String,
    pub decision: Decision,
}

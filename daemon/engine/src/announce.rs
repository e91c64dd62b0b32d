//! What the engine tells the cluster's users about what it did: one announcement per object
//! an applied decision touched, naming the plugin and its reason, so `kubectl describe node`
//! or `kubectl get events` answers "why did the autoscaler do that?" without the journal.

use ballast_sdk::{Action, PlacementTarget};

use super::ports::{Announcement, InterruptionCause, Subject};
use super::record::RemovalOutcome;

/// The announcement on a node that is replaced for `cause` (warned of a spot reclaim or an
/// EC2 scheduled change, asked for, drifted), with the decision record's `reason`. A warning
/// when the instance itself is going, whatever Ballast does.
pub fn interrupted(node: &str, cause: &InterruptionCause, reason: &str) -> Announcement {
    let (reason_code, warning) = match cause {
        InterruptionCause::SpotReclaim => ("SpotInterrupted", true),
        InterruptionCause::Scheduled(_) => ("ScheduledChange", true),
        InterruptionCause::Asked { .. } => ("ReplacementAsked", false),
        InterruptionCause::Drifted(_) => ("Drifted", false),
    };
    Announcement { subject: Subject::Node(node.to_string()), reason: reason_code, note: reason.to_string(), warning }
}

/// Announcements for a decision that was applied (as the guardrails let it through).
pub fn applied(plugin: &str, actions: &[Action], reason: &str) -> Vec<Announcement> {
    let mut out = Vec::new();
    for action in actions {
        match action {
            Action::ScaleTo { group, size } => out.push(Announcement {
                subject: Subject::NodeGroup(group.clone()),
                reason: "ScaleTo",
                note: format!("desired size of {group} set to {size} for policy {plugin}: {reason}"),
                warning: false,
            }),
            Action::ScaleBy { group, delta } => out.push(Announcement {
                subject: Subject::NodeGroup(group.clone()),
                reason: "ScaleBy",
                note: format!("desired size of {group} changed by {delta:+} for policy {plugin}: {reason}"),
                warning: false,
            }),
            Action::RemoveNodes { nodes } => out.extend(nodes.iter().map(|node| Announcement {
                subject: Subject::Node(node.clone()),
                reason: "ScaleDown",
                note: format!("cordoned and draining for removal, for policy {plugin}: {reason}"),
                warning: false,
            })),
            Action::Place { workload, target } => {
                let to = match target {
                    PlacementTarget::Fargate => "Fargate".to_string(),
                    PlacementTarget::Ec2(None) => "EC2".to_string(),
                    PlacementTarget::Ec2(Some(group)) => format!("EC2 group {group}"),
                };
                out.push(Announcement {
                    subject: Subject::Workload(workload.clone()),
                    reason: "Placed",
                    note: format!("pods from now on go to {to}, for policy {plugin}: {reason}"),
                    warning: false,
                });
            }
        }
    }
    out
}

pub fn evicted(namespace: &str, pod: &str, node: &str) -> Announcement {
    Announcement {
        subject: Subject::Pod { namespace: namespace.to_string(), name: pod.to_string() },
        reason: "Evicted",
        note: format!("evicted to drain node {node} for removal"),
        warning: false,
    }
}

pub fn removal(node: &str, group: &str, outcome: &RemovalOutcome) -> Announcement {
    let (reason, note, warning) = match outcome {
        RemovalOutcome::Completed { evicted } => (
            "NodeRemoved",
            format!("drained ({evicted} pod(s) evicted); its instance is terminated and {group} shrinks by one"),
            false,
        ),
        RemovalOutcome::Abandoned { why } => {
            ("DrainAbandoned", format!("removal abandoned and node uncordoned: {why}"), true)
        }
    };
    Announcement { subject: Subject::Node(node.to_string()), reason, note, warning }
}

//! Checks on what a plugin returns, before anything downstream sees it: size first (cheap and
//! bounded), then that every decision names things that exist in the snapshot it saw.

use std::collections::HashSet;

use ballast_sdk::{Action, Decision, NodeGroupKind, PlacementTarget, SnapshotData};

use super::bindings::exports::ballast::policy::policy::Evaluation;
use super::bindings::types as w;
use super::error::CallError;
use super::limits::PluginLimits;

/// Longest reason kept per decision.
const MAX_REASON_BYTES: usize = 4096;

/// Refuses output over the plugin's caps.
///
/// # Errors
/// [`CallError::OutputTooLarge`] saying which cap and by how much.
pub fn output_size(evaluation: &Evaluation, limits: &PluginLimits) -> Result<(), CallError> {
    if evaluation.decisions.len() > limits.max_decisions {
        return Err(CallError::OutputTooLarge {
            what: format!("{} decisions, the limit is {}", evaluation.decisions.len(), limits.max_decisions),
        });
    }
    let bytes: usize =
        evaluation.decisions.iter().map(decision_bytes).sum::<usize>() + evaluation.state.as_ref().map_or(0, Vec::len);
    if bytes > limits.max_output_bytes() {
        return Err(CallError::OutputTooLarge {
            what: format!(
                "{} KiB of decisions and state, the limit is {} KiB",
                bytes.div_ceil(1024),
                limits.max_output_kib
            ),
        });
    }
    Ok(())
}

fn decision_bytes(d: &w::Decision) -> usize {
    let action = match &d.action {
        w::Action::ScaleTo(s) => s.group.len(),
        w::Action::ScaleBy(s) => s.group.len(),
        w::Action::RemoveNodes(nodes) => nodes.iter().map(String::len).sum(),
        w::Action::Place(p) => p.workload.namespace.len() + p.workload.name.len(),
    };
    d.reason.len() + action + 16
}

/// Refuses decisions that name unknown groups, nodes or workloads, or carry no reason.
///
/// # Errors
/// [`CallError::InvalidOutput`] naming the decision (by index and action) and the value.
pub fn decisions(decisions: &[Decision], snapshot: &SnapshotData) -> Result<(), CallError> {
    let groups: HashSet<&str> = snapshot.node_groups.iter().map(|g| g.id.as_str()).collect();
    // Built only if a decision removes nodes: most ticks propose none, and a 5,000-node set
    // is not free.
    let nodes = std::cell::OnceCell::new();
    let nodes = || nodes.get_or_init(|| snapshot.nodes.iter().map(|n| n.name.as_str()).collect::<HashSet<&str>>());
    for (index, decision) in decisions.iter().enumerate() {
        let invalid = |message: String| CallError::InvalidOutput {
            message: format!("decision {index} ({}): {message}", decision.action),
        };
        if decision.reason.trim().is_empty() {
            return Err(invalid("the reason is empty; every decision must say why".into()));
        }
        if decision.reason.len() > MAX_REASON_BYTES {
            return Err(invalid(format!(
                "the reason is {} bytes, the limit is {MAX_REASON_BYTES}",
                decision.reason.len()
            )));
        }
        let known_group = |group: &str| {
            if groups.contains(group) {
                Ok(())
            } else {
                let mut known: Vec<&str> = groups.iter().copied().collect();
                known.sort_unstable();
                Err(invalid(format!("unknown node group {group:?} (known: {})", known.join(", "))))
            }
        };
        match &decision.action {
            Action::ScaleTo { group, .. } | Action::ScaleBy { group, .. } => known_group(group)?,
            Action::RemoveNodes { nodes: names } => {
                if names.is_empty() {
                    return Err(invalid("no nodes named".into()));
                }
                let mut seen = HashSet::new();
                for name in names {
                    if !nodes().contains(name.as_str()) {
                        return Err(invalid(format!("unknown node {name:?}")));
                    }
                    if !seen.insert(name) {
                        return Err(invalid(format!("node {name:?} named twice")));
                    }
                }
            }
            Action::Place { workload, target } => {
                if !snapshot.workloads.iter().any(|w| &w.id == workload) {
                    return Err(invalid(format!("unknown workload {workload}")));
                }
                if let PlacementTarget::Ec2(Some(group)) = target {
                    known_group(group)?;
                    if snapshot.node_groups.iter().any(|g| &g.id == group && g.kind == NodeGroupKind::Fargate) {
                        return Err(invalid(format!("{group:?} is a Fargate profile, not an EC2 node group")));
                    }
                }
            }
        }
    }
    Ok(())
}

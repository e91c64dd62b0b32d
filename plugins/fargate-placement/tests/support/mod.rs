//! What the test files share: the placements decisions propose, and their reasons.

use ballast_sdk::prelude::*;

/// The placements among `decisions`, by workload name.
pub fn place(decisions: &[Decision]) -> Vec<(String, PlacementTarget)> {
    decisions
        .iter()
        .filter_map(|d| match &d.action {
            Action::Place { workload, target } => Some((workload.name.clone(), target.clone())),
            _ => None,
        })
        .collect()
}

/// The first decision's reason says `needle`.
pub fn assert_first_reason(decisions: &[Decision], needle: &str) {
    let reason = &decisions[0].reason;
    assert!(reason.contains(needle), "reason lacks {needle:?}: {reason}");
}

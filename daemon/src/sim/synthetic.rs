//! Synthetic scenarios of a given size, for benchmarks: `groups` node groups of
//! `nodes_per_group` m5.xlarge nodes, started full with `pods_per_node` pods of 100m / 256Mi
//! each, spread over workloads of 30 replicas pinned to their group. A fifth of the workloads
//! follow a daily curve (full at midnight, a third at noon) so that the day brings
//! drains, removals and scale-ups.

use std::fmt::Write;
use std::path::Path;

use super::scenario::Scenario;
use crate::input_file::InputError;

pub fn scenario(groups: u32, nodes_per_group: u32, pods_per_node: u32, hours: u32) -> Result<Scenario, InputError> {
    let mut text = format!("name: synthetic-{groups}x{nodes_per_group}\nduration: {hours}h\ntick: 10s\nnode-groups:\n");
    for g in 0..groups {
        let _ = writeln!(
            text,
            "  - {{id: g{g:03}, instance-types: [m5.xlarge], min-size: 1, max-size: {}, desired-size: {nodes_per_group}}}",
            nodes_per_group * 2
        );
    }
    text.push_str("workloads:\n");
    let replicas = 30;
    let per_group = (nodes_per_group * pods_per_node).div_ceil(replicas);
    for g in 0..groups {
        for w in 0..per_group {
            let trace = if w % 5 == 0 {
                format!("{{daily: {{min: {}, max: {replicas}, peak: \"00:00\"}}}}", replicas / 3)
            } else {
                format!("{{constant: {replicas}}}")
            };
            let _ = writeln!(
                text,
                "  - {{name: w{g:03}-{w:03}, requests: {{cpu: 100m, memory: 256Mi}}, replicas: {trace}, node-group: g{g:03}}}"
            );
        }
    }
    Scenario::parse(Path::new("<synthetic>"), &text)
}

//! Which group admits which pod shape, remembered for one evaluation.
//!
//! A shape's constraints (node selector, affinity keys, tolerations) recur on node after
//! node: the pods of one workload have the same ones wherever they run. Checking them
//! against every group's labels and taints on every trial was about a tenth of
//! consolidation's time at 5,000 nodes (BENCHMARKS.md, session 25); now each distinct set of
//! constraints is checked once an evaluation.

use std::collections::{BTreeMap, HashMap};

use ballast_sdk::prelude::*;

/// What decides whether a group admits a pod, and nothing else.
type Constraints = (BTreeMap<String, String>, Vec<String>, Vec<Toleration>);

/// Rows of "group `i` admits it", by constraints.
#[derive(Default)]
pub struct Admitted {
    rows: HashMap<Constraints, Vec<bool>>,
}

impl Admitted {
    /// For each of `shapes`, in order, which of `groups` (by index) admit it.
    pub fn rows(&mut self, groups: &[&NodeGroup], shapes: &[PodShape]) -> Vec<&[bool]> {
        let keys: Vec<Constraints> =
            shapes.iter().map(|s| (s.node_selector.clone(), s.affinity_keys.clone(), s.tolerations.clone())).collect();
        for (key, shape) in keys.iter().zip(shapes) {
            if !self.rows.contains_key(key) {
                self.rows.insert(key.clone(), groups.iter().map(|g| g.admits(shape)).collect());
            }
        }
        keys.iter().map(|key| self.rows.get(key).map_or(&[][..], Vec::as_slice)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, labels: &[(&str, &str)]) -> NodeGroup {
        NodeGroup {
            id: id.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..NodeGroup::default()
        }
    }

    fn shape(selector: &[(&str, &str)]) -> PodShape {
        PodShape {
            node_selector: selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..PodShape::default()
        }
    }

    #[test]
    fn each_shape_gets_the_row_of_its_own_constraints_whatever_was_asked_before() {
        let (a, b) = (group("a", &[("pool", "a")]), group("b", &[("pool", "b")]));
        let groups = [&a, &b];
        let mut admitted = Admitted::default();
        // Asked first for a shape that selects pool a, then for one that selects pool b:
        // a cache keyed too loosely would hand the second the first's row.
        assert_eq!(admitted.rows(&groups, &[shape(&[("pool", "a")])]), vec![&[true, false][..]]);
        let rows = admitted.rows(&groups, &[shape(&[("pool", "b")]), shape(&[]), shape(&[("pool", "a")])]);
        assert_eq!(rows, vec![&[false, true][..], &[true, true][..], &[true, false][..]]);
    }
}

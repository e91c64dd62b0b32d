//! Which group admits which pod shape, remembered for one evaluation.
//!
//! A shape's constraints (node selector, affinity keys, tolerations) recur on node after
//! node: the pods of one workload have the same ones wherever they run. Checking them
//! against every group's labels and taints on every trial was about a tenth of
//! consolidation's time at 5,000 nodes (BENCHMARKS.md, session 25); now each distinct set of
//! constraints is checked once an evaluation, and a shape tries only the targets of the
//! groups that admit it ([`positions`]). A set of constraints is checked against the
//! groups' labels through an index built once an evaluation (which groups carry each label,
//! by value), not group by group: with a hundred groups and a hundred workloads pinned each
//! to its own, group by group was a fifth of consolidation's time at 5,000 nodes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use ballast_sdk::prelude::*;

/// What decides whether a group admits a pod, and nothing else.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Constraints {
    node_selector: BTreeMap<String, String>,
    affinity_keys: Vec<String>,
    tolerations: Vec<Toleration>,
}

impl Constraints {
    fn of(shape: &PodShape) -> Self {
        Constraints {
            node_selector: shape.node_selector.clone(),
            affinity_keys: shape.affinity_keys.clone(),
            tolerations: shape.tolerations.clone(),
        }
    }
}

/// Rows of "group `i` admits it", by constraints.
#[derive(Default)]
pub struct Admitted {
    rows: HashMap<Constraints, Vec<bool>>,
    /// The groups' labels, indexed at the first row worked out.
    labels: Option<LabelIndex>,
}

impl Admitted {
    /// For each of `shapes`, in order, which of `groups` (by index) admit it.
    ///
    /// # Guarantees
    /// Each row is what [`NodeGroup::admits`] says of each group.
    pub fn rows(&mut self, groups: &[&NodeGroup], shapes: &[PodShape]) -> Vec<&[bool]> {
        let keys: Vec<Constraints> = shapes.iter().map(Constraints::of).collect();
        for key in &keys {
            if !self.rows.contains_key(key) {
                let labels = self.labels.get_or_insert_with(|| LabelIndex::of(groups));
                self.rows.insert(key.clone(), labels.row(groups, key));
            }
        }
        keys.iter().map(|key| self.rows.get(key).map_or(&[][..], Vec::as_slice)).collect()
    }
}

/// Which groups (by index) carry each label key, and each key with each value.
struct LabelIndex {
    with_key: HashMap<String, Vec<usize>>,
    with_pair: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl LabelIndex {
    fn of(groups: &[&NodeGroup]) -> Self {
        let mut index = LabelIndex { with_key: HashMap::new(), with_pair: HashMap::new() };
        for (i, g) in groups.iter().enumerate() {
            for (k, v) in &g.labels {
                index.with_key.entry(k.clone()).or_default().push(i);
                index.with_pair.entry(k.clone()).or_default().entry(v.clone()).or_default().push(i);
            }
        }
        index
    }

    /// [`NodeGroup::admits`] for every group: the selector's labels and the affinity's keys
    /// from the index, then the taints of the groups still in.
    fn row(&self, groups: &[&NodeGroup], c: &Constraints) -> Vec<bool> {
        let mut row = vec![true; groups.len()];
        let mut keep_only = |having: Option<&Vec<usize>>| {
            let mut has = vec![false; row.len()];
            having.into_iter().flatten().for_each(|&i| has[i] = true);
            row.iter_mut().zip(has).for_each(|(admits, has)| *admits &= has);
        };
        for (k, v) in &c.node_selector {
            keep_only(self.with_pair.get(k).and_then(|values| values.get(v)));
        }
        for k in &c.affinity_keys {
            keep_only(self.with_key.get(k));
        }
        for (admits, g) in row.iter_mut().zip(groups) {
            *admits = *admits
                && g.taints
                    .iter()
                    .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
                    .all(|t| c.tolerations.iter().any(|tol| tol.tolerates(t)));
        }
        row
    }
}

/// The positions (into the plan's targets, ascending: fullest first) of the targets in the
/// groups `row` admits, given each group's positions `by_group`; `everywhere` (all of them,
/// worked out once a plan) when every group admits it, which is what most pods ask.
pub fn positions<'a>(by_group: &[Vec<usize>], row: &[bool], everywhere: &'a [usize]) -> Cow<'a, [usize]> {
    if row.len() == by_group.len() && row.iter().all(|&admits| admits) {
        return Cow::Borrowed(everywhere);
    }
    let mut on: Vec<usize> =
        by_group.iter().zip(row).filter(|(_, admits)| **admits).flat_map(|(at, _)| at.iter().copied()).collect();
    on.sort_unstable();
    Cow::Owned(on)
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

    /// Every shape against every group: the index says what `NodeGroup::admits` says, for
    /// selectors, affinity keys, hard and soft taints, tolerations, and labels no group has.
    #[test]
    fn each_row_is_what_admits_says_of_each_group() {
        let taint = |key: &str, effect| Taint { key: key.into(), value: "x".into(), effect };
        let mut gpu = group("gpu", &[("pool", "gpu"), ("zone", "a")]);
        gpu.taints = vec![taint("gpu", TaintEffect::NoSchedule), taint("soft", TaintEffect::PreferNoSchedule)];
        let groups =
            [group("a", &[("pool", "a"), ("zone", "a")]), group("b", &[("pool", "b")]), gpu, group("bare", &[])];
        let refs: Vec<&NodeGroup> = groups.iter().collect();
        let tolerate = Toleration { key: "gpu".into(), operator_exists: true, ..Toleration::default() };
        let mut shapes = Vec::new();
        for selector in [vec![], vec![("pool", "a")], vec![("pool", "gpu")], vec![("zone", "a")], vec![("pool", "c")]] {
            for affinity in [vec![], vec!["zone".to_string()], vec!["rack".to_string()]] {
                for tolerations in [vec![], vec![tolerate.clone()]] {
                    shapes.push(PodShape { affinity_keys: affinity.clone(), tolerations, ..shape(&selector) });
                }
            }
        }
        let rows = Admitted::default().rows(&refs, &shapes).into_iter().map(<[bool]>::to_vec).collect::<Vec<_>>();
        for (shape, row) in shapes.iter().zip(rows) {
            let admits: Vec<bool> = groups.iter().map(|g| g.admits(shape)).collect();
            assert_eq!(row, admits, "{shape:?}");
        }
    }

    #[test]
    fn a_shape_tries_the_targets_of_the_groups_that_admit_it_in_the_plans_order() {
        // Targets 0 and 3 are group 0's, 1, 2 and 4 group 1's.
        let by_group = [vec![0, 3], vec![1, 2, 4]];
        let everywhere = [0, 1, 2, 3, 4];
        let on = |row: &[bool]| positions(&by_group, row, &everywhere).into_owned();
        assert_eq!(on(&[false, true]), [1, 2, 4]);
        assert_eq!(on(&[true, false]), [0, 3]);
        assert_eq!(on(&[true, true]), [0, 1, 2, 3, 4]);
        assert_eq!(on(&[false, false]), Vec::<usize>::new());
        // A row that does not cover the groups (none known) admits nowhere, not everywhere.
        assert_eq!(on(&[]), Vec::<usize>::new());
    }
}

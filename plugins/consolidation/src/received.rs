//! Pods of the nodes chosen to go this evaluation, by the node each is to move to. A node
//! that is to receive pods and is then chosen itself must find room for them too: without
//! this, a plan could count room on a node it removes in the same tick, and the pods moved
//! there would have nowhere to go.

use std::collections::{BTreeMap, BTreeSet};

use ballast_sdk::prelude::*;

use super::{Candidate, Taken};

/// Pods of the nodes chosen this evaluation, by the target each is to move to: a target
/// chosen after them must find them room too, or they would have nowhere to go.
#[derive(Default)]
pub(crate) struct Received {
    pods: BTreeMap<usize, Vec<PodShape>>,
    /// Targets that took pods known only by their total (from a host before 0.1.4).
    unknown: BTreeSet<usize>,
}

impl Received {
    /// Adds to `c` the pods its node is to receive; false if they are not known by shape,
    /// when `c` stays this tick.
    pub(crate) fn take_along(&mut self, c: &mut Candidate<'_>) -> bool {
        if self.unknown.contains(&c.target) {
            return false;
        }
        let Some(pods) = self.pods.remove(&c.target) else { return true };
        let Some(shapes) = c.shapes.as_mut() else { return false };
        for pod in pods {
            c.load.pods += pod.count;
            c.load.requests = c.load.requests.saturating_add(&pod.requests.times(pod.count));
            shapes.push(pod);
        }
        true
    }

    /// Notes where chosen `c`'s pods go.
    pub(crate) fn record(&mut self, c: &Candidate<'_>, taken: &Taken) {
        match &c.shapes {
            Some(shapes) => {
                for p in taken.placed() {
                    self.pods.entry(p.target).or_default().push(PodShape { count: p.count, ..shapes[p.shape].clone() });
                }
            }
            None => self.unknown.extend(taken.receivers()),
        }
    }
}

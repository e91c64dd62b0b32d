//! Which records a `List` or `Watch` wants, checked once per call.

use ballast_proto::v1 as pb;
use ballast_sdk::{Action, WorkloadRef};
use tonic::Status;

use super::convert::kebab;
use crate::engine::record::Record;

const OUTCOMES: [&str; 10] =
    ["accepted", "changed", "refused", "done", "started", "dry-run", "shadow", "unchanged", "not-applied", "failed"];

/// A checked [`pb::DecisionFilter`].
#[derive(Clone, Debug, Default)]
pub struct Filter {
    plugin: Option<String>,
    group: Option<String>,
    node: Option<String>,
    /// Kind (optional), namespace, name.
    workload: Option<WorkloadName>,
    outcome: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
    ticks: bool,
}

/// A workload named `NAMESPACE/NAME` or `KIND/NAMESPACE/NAME`: (kind, namespace, name).
pub type WorkloadName = (Option<String>, String, String);

/// Reads a workload's name; INVALID_ARGUMENT naming `field` and the value otherwise.
pub fn workload_name(field: &str, value: &str) -> Result<WorkloadName, Status> {
    match value.split('/').collect::<Vec<_>>()[..] {
        [ns, name] if !ns.is_empty() && !name.is_empty() => Ok((None, ns.to_string(), name.to_string())),
        [kind, ns, name] if !kind.is_empty() && !ns.is_empty() && !name.is_empty() => {
            Ok((Some(kind.to_string()), ns.to_string(), name.to_string()))
        }
        _ => Err(Status::invalid_argument(format!("{field}: '{value}' is not NAMESPACE/NAME or KIND/NAMESPACE/NAME"))),
    }
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl Filter {
    /// # Errors
    /// INVALID_ARGUMENT naming the field (under `field`) and the value.
    pub fn parse(f: Option<&pb::DecisionFilter>, field: &str) -> Result<Self, Status> {
        let Some(f) = f else { return Ok(Filter::default()) };
        let workload = match f.workload.as_str() {
            "" => None,
            name => Some(workload_name(&format!("{field}.workload"), name)?),
        };
        if !f.outcome.is_empty() && !OUTCOMES.contains(&f.outcome.as_str()) {
            return Err(Status::invalid_argument(format!(
                "{field}.outcome: '{}' is not one of {}",
                f.outcome,
                OUTCOMES.join(", ")
            )));
        }
        for (name, value) in [("since_unix_millis", f.since_unix_millis), ("until_unix_millis", f.until_unix_millis)] {
            if value < 0 {
                return Err(Status::invalid_argument(format!("{field}.{name}: {value} is before 1970")));
            }
        }
        Ok(Filter {
            plugin: nonempty(&f.plugin),
            group: nonempty(&f.group),
            node: nonempty(&f.node),
            workload,
            outcome: nonempty(&f.outcome),
            since: (f.since_unix_millis > 0).then_some(f.since_unix_millis as u64),
            until: (f.until_unix_millis > 0).then_some(f.until_unix_millis as u64),
            ticks: f.ticks,
        })
    }

    /// A filter on one subject, for Explain.
    pub fn about_node(node: &str) -> Self {
        Filter { node: Some(node.into()), ..Filter::default() }
    }

    pub fn about_workload(w: &WorkloadRef) -> Self {
        Filter { workload: Some((Some(kebab(&w.kind)), w.namespace.clone(), w.name.clone())), ..Filter::default() }
    }

    pub fn about_groups(groups: Vec<String>) -> Vec<Self> {
        groups.into_iter().map(|g| Filter { group: Some(g), ..Filter::default() }).collect()
    }

    pub fn matches(&self, record: &Record) -> bool {
        let at = record.at_millis();
        if self.since.is_some_and(|s| at < s) || self.until.is_some_and(|u| at >= u) {
            return false;
        }
        match record {
            Record::Tick(_) => self.ticks && self.is_unfiltered(),
            Record::Control(_) => {
                self.plugin.as_deref().is_none_or(|p| p == crate::engine::HOST) && self.is_unfiltered()
            }
            Record::Expander(e) => {
                self.plugin.as_ref().is_none_or(|p| e.chosen.iter().any(|c| c.plugin == *p))
                    && self.group.as_ref().is_none_or(|g| e.offered.iter().any(|o| o.group == *g))
                    && self.node.is_none()
                    && self.workload.is_none()
                    && self.outcome.as_ref().is_none_or(|o| *o == e.outcome())
            }
            Record::Removal(r) => {
                self.plugin.is_none()
                    && self.workload.is_none()
                    && self.outcome.is_none()
                    && self.group.as_ref().is_none_or(|g| *g == r.group)
                    && self.node.as_ref().is_none_or(|n| *n == r.node)
            }
            Record::Decision(d) => {
                let applied = d.guard.applied(&d.proposed);
                let actions = || std::iter::once(&d.proposed).chain(applied.iter());
                self.plugin.as_ref().is_none_or(|p| *p == d.plugin)
                    && self.group.as_ref().is_none_or(|g| actions().any(|a| names_group(a, g)))
                    && self.node.as_ref().is_none_or(|n| actions().any(|a| names_node(a, n)))
                    && self.workload.as_ref().is_none_or(|w| actions().any(|a| names_workload(a, w)))
                    && self.outcome.as_ref().is_none_or(|o| *o == d.guard.name() || *o == d.result.name())
            }
        }
    }

    /// No subject filter: tick and control records go with any time range only.
    fn is_unfiltered(&self) -> bool {
        self.group.is_none() && self.node.is_none() && self.workload.is_none() && self.outcome.is_none()
    }
}

fn names_group(action: &Action, group: &str) -> bool {
    match action {
        Action::ScaleTo { group: g, .. } | Action::ScaleBy { group: g, .. } => g == group,
        Action::Place { target: ballast_sdk::PlacementTarget::Ec2(Some(g)), .. } => g == group,
        _ => false,
    }
}

fn names_node(action: &Action, node: &str) -> bool {
    matches!(action, Action::RemoveNodes { nodes } if nodes.iter().any(|n| n == node))
}

fn names_workload(action: &Action, (kind, ns, name): &WorkloadName) -> bool {
    match action {
        Action::Place { workload, .. } => {
            workload.namespace == *ns
                && workload.name == *name
                && kind.as_ref().is_none_or(|k| *k == kebab(&workload.kind))
        }
        _ => false,
    }
}

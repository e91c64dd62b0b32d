//! A scenario's checks, run when it is read: each error names the field at fault (with its
//! index) and the value.

use std::path::Path;
use std::time::Duration;

use ballast_sdk::WorkloadKind;

use super::{GroupSpec, Scenario, Target, WorkloadSpec, catalogue};
use crate::duration;
use crate::input_file::InputError;
use crate::sim::trace::time_of_day;

/// A field whose value does not hold, and why.
struct Invalid {
    field: String,
    message: String,
}

/// A spread's `min-{over}-domains` is at least 1 and beside its `max-{over}-skew`, or why
/// not, at the field `at` names.
fn min_domains(min: Option<u32>, skew: Option<u32>, over: &str, at: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
    let field = at(&format!("min-{over}-domains"));
    match (min, skew) {
        (Some(0), _) => Err(invalid(field, "must be at least 1, got 0")),
        (Some(m), None) => Err(invalid(field, format!("{m}, but no max-{over}-skew: it is that spread's"))),
        _ => Ok(()),
    }
}

fn invalid(field: String, message: impl Into<String>) -> Invalid {
    Invalid { field, message: message.into() }
}

impl Scenario {
    pub(super) fn validate(&self, path: &Path) -> Result<(), InputError> {
        self.check().map_err(|Invalid { field, message }| InputError::Field {
            path: path.to_path_buf(),
            field,
            message,
        })
    }

    fn check(&self) -> Result<(), Invalid> {
        if self.duration.is_zero() {
            return Err(invalid("duration".into(), "must be more than 0s"));
        }
        if self.tick.is_zero() || self.tick > self.duration {
            let message = format!("`{}` must be more than 0s and at most the duration", duration::display(self.tick));
            return Err(invalid("tick".into(), message));
        }
        time_of_day(&self.start).map_err(|m| invalid("start".into(), m))?;
        if self.node_groups.is_empty() {
            return Err(invalid("node-groups".into(), "at least one node group is needed"));
        }
        let mut ids: Vec<&str> = Vec::new();
        for (i, g) in self.node_groups.iter().enumerate() {
            if ids.contains(&g.id.as_str()) {
                return Err(invalid(format!("node-groups[{i}].id"), format!("`{}` is used by two node groups", g.id)));
            }
            ids.push(g.id.as_str());
            self.check_group(i, g)?;
        }
        for (i, w) in self.workloads.iter().enumerate() {
            if self.workloads[..i].iter().any(|o| o.name == w.name) {
                return Err(invalid(format!("workloads[{i}].name"), format!("`{}` is used by two workloads", w.name)));
            }
            self.check_workload(i, w, &ids)?;
        }
        Ok(())
    }

    fn check_group(&self, i: usize, g: &GroupSpec) -> Result<(), Invalid> {
        let at = |f: &str| format!("node-groups[{i}].{f}");
        if g.instance_types.is_empty() {
            return Err(invalid(at("instance-types"), "at least one instance type is needed"));
        }
        for (j, name) in g.instance_types.iter().enumerate() {
            if self.instance_type(name).is_none() {
                let known: Vec<&str> = catalogue::names().collect();
                return Err(invalid(
                    at(&format!("instance-types[{j}]")),
                    format!(
                        "unknown instance type `{name}`; known: {} (or define it under instance-types)",
                        known.join(", ")
                    ),
                ));
            }
        }
        if g.min_size > g.max_size {
            return Err(invalid(at("min-size"), format!("{} is above max-size {}", g.min_size, g.max_size)));
        }
        if let Some(d) = g.desired_size
            && (d < g.min_size || d > g.max_size)
        {
            let message = format!("{d} is outside min-size {} and max-size {}", g.min_size, g.max_size);
            return Err(invalid(at("desired-size"), message));
        }
        if g.zones.is_empty() {
            return Err(invalid(at("zones"), "at least one zone is needed"));
        }
        self.check_group_events(i, g)
    }

    /// What happens to a group during the run: interruptions, node losses, replacements and
    /// new images.
    fn check_group_events(&self, i: usize, g: &GroupSpec) -> Result<(), Invalid> {
        let at = |f: String| format!("node-groups[{i}].{f}");
        if !g.interruptions.is_empty() && g.capacity_type != ballast_sdk::CapacityType::Spot {
            let message = "only spot instances are interrupted: set capacity-type: spot";
            return Err(invalid(at("interruptions".into()), message));
        }
        for (j, w) in g.interruptions.iter().enumerate() {
            if w.to <= w.from {
                let message =
                    format!("`{}` must be after from `{}`", duration::display(w.to), duration::display(w.from));
                return Err(invalid(at(format!("interruptions[{j}].to")), message));
            }
            if !(w.per_hour >= 0.0 && w.per_hour <= 60.0) {
                let message = format!("must be in [0, 60], got {}", w.per_hour);
                return Err(invalid(at(format!("interruptions[{j}].per-hour")), message));
            }
        }
        for (j, loss) in g.node_losses.iter().enumerate() {
            if loss.nodes == 0 {
                return Err(invalid(at(format!("node-losses[{j}].nodes")), "must be at least 1"));
            }
            self.before_end(loss.at).map_err(|m| invalid(at(format!("node-losses[{j}].at")), m))?;
        }
        for (j, r) in g.replacements.iter().enumerate() {
            if r.at_once == 0 {
                return Err(invalid(at(format!("replacements[{j}].at-once")), "must be at least 1, got 0"));
            }
            self.before_end(r.at).map_err(|m| invalid(at(format!("replacements[{j}].at")), m))?;
        }
        for (j, image) in g.new_images.iter().enumerate() {
            self.before_end(image.at).map_err(|m| invalid(at(format!("new-images[{j}].at")), m))?;
        }
        Ok(())
    }

    fn check_workload(&self, i: usize, w: &WorkloadSpec, groups: &[&str]) -> Result<(), Invalid> {
        let at = |f: &str| format!("workloads[{i}].{f}");
        if let Some(group) = &w.node_group
            && !groups.contains(&group.as_str())
        {
            let message = format!("unknown node group `{group}`; known: {}", groups.join(", "));
            return Err(invalid(at("node-group"), message));
        }
        if !(0.0..=1.0).contains(&w.usage) {
            return Err(invalid(at("usage"), format!("must be a fraction in [0, 1], got {}", w.usage)));
        }
        if w.requests.cpu_millis == 0 && w.requests.memory_bytes == 0 {
            return Err(invalid(at("requests"), "a pod must request some cpu or memory"));
        }
        check_kind(w, &at)?;
        if let Some(trace) = &w.replicas {
            trace.validate().map_err(|m| invalid(at("replicas"), m))?;
        }
        if let Some(a) = &w.autoscaler {
            if w.replicas.is_none() {
                let message = "an autoscaler scales `replicas`, which this workload has none of";
                return Err(invalid(at("autoscaler"), message));
            }
            if a.max_replicas == 0 || a.max_replicas < a.min_replicas {
                let message =
                    format!("{} must be at least 1 and at least min-replicas {}", a.max_replicas, a.min_replicas);
                return Err(invalid(at("autoscaler.max-replicas"), message));
            }
        }
        if let Some(b) = &w.batches
            && b.every.is_zero()
        {
            return Err(invalid(at("batches.every"), "must be more than 0s"));
        }
        if w.max_per_node == Some(0) {
            return Err(invalid(at("max-per-node"), "must be at least 1, got 0"));
        }
        if w.max_per_zone == Some(0) {
            return Err(invalid(at("max-per-zone"), "must be at least 1, got 0"));
        }
        if w.max_zone_skew == Some(0) {
            return Err(invalid(at("max-zone-skew"), "must be at least 1, got 0"));
        }
        if w.max_node_skew == Some(0) {
            return Err(invalid(at("max-node-skew"), "must be at least 1, got 0"));
        }
        self.check_kept_away(w, &at)?;
        min_domains(w.min_node_domains, w.max_node_skew, "node", &at)?;
        min_domains(w.min_zone_domains, w.max_zone_skew, "zone", &at)?;
        if w.placement == Target::Fargate {
            self.fits_fargate(w).map_err(|why| invalid(at("placement"), why))?;
        }
        check_buffer(w, &at)
    }

    /// Each workload a workload is kept away from, kept in the zones of, or kept beside, is
    /// another workload of the scenario.
    fn check_kept_away(&self, w: &WorkloadSpec, at: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
        const ONE_A_NODE: &str = "to keep its pods one to a node, use `max-per-node: 1`";
        const ANYWHERE: &str = "its own pods alone are no zone to keep to";
        const ONE_NODE: &str = "keeping all its pods on one node is not simulated";
        let away = w.kept_away.iter().enumerate().map(|(j, name)| (format!("kept-away[{j}]"), name, ONE_A_NODE));
        let near = w.zone_affinity.iter().enumerate().map(|(j, name)| (format!("zone-affinity[{j}]"), name, ANYWHERE));
        let beside = w.kept_beside.iter().enumerate().map(|(j, name)| (format!("kept-beside[{j}]"), name, ONE_NODE));
        for (field, name, itself) in away.chain(near).chain(beside) {
            let field = || at(&field);
            if name == &w.name {
                return Err(invalid(field(), format!("`{name}` is this workload itself: {itself}")));
            }
            if !self.workloads.iter().any(|o| &o.name == name) {
                let known: Vec<&str> = self.workloads.iter().map(|o| o.name.as_str()).collect();
                return Err(invalid(field(), format!("unknown workload `{name}`; known: {}", known.join(", "))));
            }
        }
        Ok(())
    }

    /// A workload placed on Fargate can run there, or why not.
    fn fits_fargate(&self, w: &WorkloadSpec) -> Result<(), String> {
        if self.fargate.is_none() {
            return Err("`fargate` needs a `fargate:` profile in the scenario".into());
        }
        let id = ballast_sdk::WorkloadRef { kind: w.kind, namespace: w.namespace.clone(), name: w.name.clone() };
        let pricing = ballast_sdk::FargatePricing::default();
        match crate::engine::observe::fargate_blocker(&id, &w.fargate_traits(), &w.requests, &pricing) {
            Some(blocker) => Err(format!("`fargate`, but its pods cannot run there: {blocker}")),
            None => Ok(()),
        }
    }

    /// `at` is within the run, or why not.
    fn before_end(&self, at: Duration) -> Result<(), String> {
        match at < self.duration {
            true => Ok(()),
            false => Err(format!(
                "`{}` is not before the end of the run ({})",
                duration::display(at),
                duration::display(self.duration)
            )),
        }
    }
}

/// A workload's CapacityBuffer asks for some room, and follows a workload with replicas.
fn check_buffer(w: &WorkloadSpec, at: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
    match &w.capacity_buffer {
        Some(buffer) if buffer.is_empty() => {
            Err(invalid(at("capacity-buffer"), "asks for no room: set replicas, percentage or limits"))
        }
        Some(_) if w.replicas.is_none() => Err(invalid(
            at("capacity-buffer"),
            format!("follows a workload's replicas, and a {:?} has none", w.kind).to_lowercase(),
        )),
        _ => Ok(()),
    }
}

/// A workload's kind against how its pods are counted: a job runs batches, a daemon-set one
/// pod a node, the others replicas. `at` names a field of the workload.
fn check_kind(w: &WorkloadSpec, at: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
    match (w.kind, &w.replicas, &w.batches) {
        (WorkloadKind::Job, _, None) => Err(invalid(at("batches"), "a job needs `batches`")),
        (WorkloadKind::Job, Some(_), _) => Err(invalid(at("replicas"), "a job runs `batches`, not `replicas`")),
        (WorkloadKind::DaemonSet, Some(_), _) | (WorkloadKind::DaemonSet, _, Some(_)) => {
            Err(invalid(at("kind"), "a daemon-set runs one pod per node: no replicas or batches"))
        }
        (WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::ReplicaSet, None, _) => {
            Err(invalid(at("replicas"), format!("a {:?} needs `replicas`", w.kind).to_lowercase()))
        }
        (WorkloadKind::Other, ..) => {
            Err(invalid(at("kind"), "`other` cannot be simulated; use deployment, stateful-set, daemon-set or job"))
        }
        _ => Ok(()),
    }
}

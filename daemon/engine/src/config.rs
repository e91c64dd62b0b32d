//! Engine settings: guardrails, timing and mode. Every field has a documented default, so an
//! empty config is a safe one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::window::DisruptionWindow;

/// What the engine does with the decisions that pass the guardrails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Act.
    #[default]
    Enforce,
    /// Evaluate, guard and record everything; never act.
    DryRun,
    /// Observe and record the tick; run no plugin, start no action, advance no drain.
    Paused,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry-run",
            Mode::Paused => "paused",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct EngineConfig {
    pub mode: Mode,
    /// Time between periodic ticks (Cluster Autoscaler scans every 10 s).
    #[serde(with = "duration")]
    pub tick_interval: Duration,
    pub batching: Batching,
    pub guardrails: Guardrails,
    /// Decision records kept in memory for `ballast decisions` and the gRPC API.
    pub ring_size: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mode: Mode::Enforce,
            tick_interval: Duration::from_secs(10),
            batching: Batching::default(),
            guardrails: Guardrails::default(),
            ring_size: 10_000,
        }
    }
}

/// New pending pods start a tick once arrivals pause for `idle` or `max` has passed since the
/// first, so a burst is planned as one batch (Karpenter's defaults: 1 s and 10 s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Batching {
    #[serde(with = "duration")]
    pub idle: Duration,
    #[serde(with = "duration")]
    pub max: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Batching { idle: Duration::from_secs(1), max: Duration::from_secs(10) }
    }
}

/// Limits the host enforces whatever the plugins propose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Guardrails {
    /// Most nodes one group may grow by in one tick.
    pub max_step_up: u32,
    /// Most nodes one group may lose in one tick.
    pub max_step_down: u32,
    pub cooldown: Cooldown,
    /// Nodes younger than this are never removed (they may not have received pods yet).
    #[serde(with = "duration")]
    pub min_node_age: Duration,
    pub disruption_budget: DisruptionBudget,
    /// A drain that has not emptied its node by then is abandoned and the node uncordoned.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// A node warned of a spot interruption is cordoned at once, but its pods stay until its
    /// replacement is Ready, and are evicted at the latest this long before the reclaim: the
    /// time they have to stop. Two minutes (EC2's notice) or more evicts at once.
    #[serde(with = "duration")]
    pub spot_eviction_margin: Duration,
    /// A node of a managed group that has not been Ready for this long is replaced: its
    /// instance is terminated and the group keeps its size, so it launches a new one
    /// (Cluster Autoscaler's `scale-down-unready-time`, which a group's
    /// `scaledownunreadytime` tag overrides). Zero: never. A node that never became Ready,
    /// once its group backs off for it (after `backoff.timeout`), goes sooner and with a
    /// decrement, as Cluster Autoscaler's `max-node-provision-time` removes it.
    #[serde(with = "duration")]
    pub replace_unready_after: Duration,
    pub backoff: Backoff,
    /// Above this fraction of unready nodes (and more than 3), nothing is removed: the
    /// cluster is unhealthy and utilisation figures cannot be trusted (Cluster Autoscaler: 45%).
    pub max_unready_fraction: f64,
    /// Cluster-wide ceilings on what the managed groups grow to (none by default).
    pub limits: ClusterLimits,
    pub drift: DriftReplacement,
    /// A pod with an emptyDir or hostPath volume (not named in its
    /// `safe-to-evict-local-volumes`) keeps its node, as Cluster Autoscaler's
    /// `--skip-nodes-with-local-storage` (same default). `false` lets the node go, the data
    /// in those volumes lost with the pod, as Karpenter does.
    pub skip_nodes_with_local_storage: bool,
    /// A kube-system pod without a PodDisruptionBudget keeps its node, as Cluster
    /// Autoscaler's `--skip-nodes-with-system-pods` (same default). `false` lets it be
    /// evicted like any other pod, as Karpenter does.
    pub skip_nodes_with_system_pods: bool,
    /// A pod whose controller is a custom one (a kind other than ReplicaSet, StatefulSet,
    /// DaemonSet, Job and ReplicationController, e.g. a KubeVirt VirtualMachineInstance)
    /// keeps its node, as Cluster Autoscaler's `--skip-nodes-with-custom-controller-pods`
    /// (same default): evicted, it may not come back. `false` lets it be evicted, as
    /// Karpenter does. `safe-to-evict: "true"` on the pod lets it go either way.
    pub skip_nodes_with_custom_controller_pods: bool,
    /// A node that had pods to move has its DaemonSet pods asked to leave (through the
    /// Eviction API, best effort and not waited for) once the rest are gone and before its
    /// instance goes, so agents such as log shippers stop gracefully; as Cluster
    /// Autoscaler's `--daemonset-eviction-for-occupied-nodes` (same default). A pod's
    /// `cluster-autoscaler.kubernetes.io/enable-ds-eviction` decides for itself.
    pub daemonset_eviction_for_occupied_nodes: bool,
    /// The same for a node that had nothing to move (Cluster Autoscaler's
    /// `--daemonset-eviction-for-empty-nodes`, same default: off).
    pub daemonset_eviction_for_empty_nodes: bool,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            max_step_up: 100,
            max_step_down: 10,
            cooldown: Cooldown::default(),
            min_node_age: Duration::from_secs(600),
            disruption_budget: DisruptionBudget::default(),
            drain_timeout: Duration::from_secs(600),
            spot_eviction_margin: Duration::from_secs(45),
            replace_unready_after: Duration::from_secs(1200),
            backoff: Backoff::default(),
            max_unready_fraction: 0.45,
            limits: ClusterLimits::default(),
            drift: DriftReplacement::default(),
            skip_nodes_with_local_storage: true,
            skip_nodes_with_system_pods: true,
            skip_nodes_with_custom_controller_pods: true,
            daemonset_eviction_for_occupied_nodes: true,
            daemonset_eviction_for_empty_nodes: false,
        }
    }
}

/// The most nodes, CPU and memory the Auto Scaling groups Ballast manages may come to,
/// whatever the policies ask: Cluster Autoscaler's `--max-nodes-total`, `--cores-total` and
/// `--memory-total` (their maxima), Karpenter's NodePool `limits`. Counted at the groups'
/// desired sizes, each node as its group's launch type's capacity (as Karpenter counts its
/// limits). A scale-up that would pass one is lowered to what fits, or refused when nothing
/// does, naming the limit; nothing is removed to get back under a limit that was lowered.
///
/// # Caveats
/// A replacement (a spot warning's, drift's, a repair's, a roll's) adds a node for one that
/// is leaving, and may pass a limit while the old one drains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    #[serde(rename = "cpu", skip_serializing_if = "Option::is_none", with = "crate::buffer::optional::cpu")]
    pub cpu_millis: Option<u64>,
    #[serde(rename = "memory", skip_serializing_if = "Option::is_none", with = "crate::buffer::optional::memory")]
    pub memory_bytes: Option<u64>,
}

impl ClusterLimits {
    /// No limit is set (the default): growth is not counted.
    pub fn is_unset(&self) -> bool {
        *self == ClusterLimits::default()
    }
}

/// Nodes of a machine image (AMI), instance type or launch template version their group no
/// longer launches, after a new version, launch configuration or overrides ([`crate::drift`]), are
/// always reported;
/// with `replace` they are replaced as `ballast ctl replace group` replaces a group: oldest
/// first, each successor launched before the node's pods are evicted, at most `at-once` of
/// a group's nodes leaving at a time, within the disruption budget and windows (Karpenter
/// replaces drifted nodes the same way). Off by default, so that upgrading Ballast never
/// starts replacing a fleet whose template moved on long ago.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct DriftReplacement {
    pub replace: bool,
    /// How many of a group's nodes may be leaving at once (drains of any cause count).
    pub at_once: u32,
}

impl Default for DriftReplacement {
    fn default() -> Self {
        DriftReplacement { replace: false, at_once: 1 }
    }
}

/// Per group. Defaults follow Cluster Autoscaler's scale-down delays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Cooldown {
    /// No scale-up of a group sooner than this after its last one. Zero by default: policies
    /// count booting nodes, and waiting leaves pods pending.
    #[serde(with = "duration")]
    pub after_scale_up: Duration,
    /// No scale-down of a group sooner than this after it grew (`scale-down-delay-after-add`).
    #[serde(with = "duration")]
    pub scale_down_after_scale_up: Duration,
    /// No scale-down of a group sooner than this after its last one
    /// (`scale-down-delay-after-delete`).
    #[serde(with = "duration")]
    pub after_scale_down: Duration,
    /// No new placement of a workload sooner than this after it was moved, so that policies
    /// cannot flap workloads between Fargate and EC2 (each move restarts every pod).
    #[serde(with = "duration")]
    pub placement: Duration,
}

impl Default for Cooldown {
    fn default() -> Self {
        Cooldown {
            after_scale_up: Duration::ZERO,
            scale_down_after_scale_up: Duration::from_secs(600),
            after_scale_down: Duration::from_secs(10),
            placement: Duration::from_secs(1800),
        }
    }
}

/// Nodes being removed at once, across the cluster: the larger of `percent` of the nodes and
/// `min` (Karpenter's default: 10%, at least 1).
///
/// A node with no pod a drain would evict (DaemonSet pods only) disrupts nothing: unless
/// `count-empty-nodes` is set, such nodes are not held to the budget and go together, at most
/// `max-step-down` per group per tick, as Cluster Autoscaler deletes empty nodes in parallel
/// (its `max-scale-down-parallelism`, 10) while it drains one node at a time. Set it for
/// Karpenter's default budget, which counts empty nodes too.
///
/// `windows` adds scheduled limits beside it (see [`crate::window`]).
///
/// # Caveats
/// Empty is judged on the tick's snapshot: a pod the scheduler binds to such a node before
/// it is cordoned is evicted by its drain outside the budget (its PDB still applies).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct DisruptionBudget {
    pub percent: f64,
    pub min: u32,
    pub count_empty_nodes: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<DisruptionWindow>,
}

impl Default for DisruptionBudget {
    fn default() -> Self {
        DisruptionBudget { percent: 10.0, min: 1, count_empty_nodes: false, windows: Vec::new() }
    }
}

impl DisruptionBudget {
    pub fn allowed(&self, nodes: usize) -> usize {
        ((nodes as f64 * self.percent / 100.0).floor() as usize).max(self.min as usize)
    }
}

/// After a group fails to provision (a launch error, or nodes not ready within `timeout`), it
/// takes no scale-up for `initial`, doubling on each further failure up to `max`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Backoff {
    #[serde(with = "duration")]
    pub timeout: Duration,
    #[serde(with = "duration")]
    pub initial: Duration,
    #[serde(with = "duration")]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { timeout: Duration::from_secs(900), initial: Duration::from_secs(300), max: Duration::from_secs(1800) }
    }
}

impl Guardrails {
    /// The fields (`cooldown.after-scale-down`, `disruption-budget.windows`) whose values
    /// differ in `new`, as the configuration names them.
    pub fn changed_fields(&self, new: &Guardrails) -> Vec<String> {
        let (Ok(old), Ok(new)) = (serde_json::to_value(self), serde_json::to_value(new)) else { return Vec::new() };
        let mut changed = Vec::new();
        differences("", &old, &new, &mut changed);
        changed
    }
}

/// The paths under `prefix` at which `a` and `b` differ, one level of nesting deep.
fn differences(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::Object;
    match (a, b) {
        (Object(a), Object(b)) if prefix.matches('.').count() < 1 => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let null = serde_json::Value::Null;
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                differences(&path, a.get(key).unwrap_or(&null), b.get(key).unwrap_or(&null), out);
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

impl EngineConfig {
    /// Checks values serde cannot: each error names the field and the value.
    pub fn validate(&self) -> Result<(), String> {
        let g = &self.guardrails;
        if self.tick_interval.is_zero() {
            return Err("tick-interval: must be more than 0".into());
        }
        if !(0.0..=100.0).contains(&g.disruption_budget.percent) {
            return Err(format!(
                "guardrails.disruption-budget.percent: must be in [0, 100], got {}",
                g.disruption_budget.percent
            ));
        }
        if let Some(i) = g.disruption_budget.windows.iter().position(|w| w.duration.is_zero()) {
            return Err(format!("guardrails.disruption-budget.windows[{i}].duration: must be more than 0, got 0s"));
        }
        if !(0.0..=1.0).contains(&g.max_unready_fraction) {
            return Err(format!("guardrails.max-unready-fraction: must be in [0, 1], got {}", g.max_unready_fraction));
        }
        if g.backoff.initial > g.backoff.max {
            return Err(format!(
                "guardrails.backoff.initial: {} is longer than backoff.max {}",
                duration::display(g.backoff.initial),
                duration::display(g.backoff.max)
            ));
        }
        if g.drift.at_once == 0 {
            return Err("guardrails.drift.at-once: must be at least 1, got 0".into());
        }
        if self.ring_size == 0 {
            return Err("ring-size: must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_limits_read_as_quantities_and_a_bad_one_is_named() {
        let read = |yaml: &str| serde_yaml::from_str::<Guardrails>(yaml).map(|g| g.limits);
        let limits = read("limits: {nodes: 200, cpu: '800', memory: 3Ti}").unwrap();
        assert_eq!((limits.nodes, limits.cpu_millis, limits.memory_bytes), (Some(200), Some(800_000), Some(3 << 40)));
        assert!(read("{}").unwrap().is_unset());
        let error = read("limits: {cpu: lots}").unwrap_err().to_string();
        assert!(error.contains("limits.cpu") && error.contains("lots"), "{error}");
        assert!(read("limits: {cores: 8}").unwrap_err().to_string().contains("cores"));
    }

    #[test]
    fn changed_fields_names_what_differs_as_the_configuration_does() {
        let old = Guardrails::default();
        let mut new = old.clone();
        new.min_node_age = Duration::from_secs(60);
        new.cooldown.after_scale_down = Duration::ZERO;
        new.disruption_budget.percent = 20.0;
        let changed = old.changed_fields(&new);
        assert_eq!(changed, ["cooldown.after-scale-down", "disruption-budget.percent", "min-node-age"]);
        assert!(old.changed_fields(&old).is_empty());
        new.drift.replace = true;
        assert!(old.changed_fields(&new).contains(&"drift.replace".to_string()));
    }

    #[test]
    fn drift_replacement_is_off_unless_asked_and_at_once_zero_is_refused_by_name() {
        let config: EngineConfig = serde_yaml::from_str("guardrails: {drift: {at-once: 0}}").unwrap();
        assert!(!config.guardrails.drift.replace, "off by default");
        assert_eq!(config.validate(), Err("guardrails.drift.at-once: must be at least 1, got 0".into()));
        let typo = serde_yaml::from_str::<EngineConfig>("guardrails: {drift: {replace: true, at_one: 2}}");
        assert!(typo.unwrap_err().to_string().contains("at_one"), "an unknown field is refused");
    }
}

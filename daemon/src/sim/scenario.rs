//! Scenario files: the cluster, its workloads and their traces, and how long to simulate.
//! `deploy/examples/scenarios/reference.yaml` shows every field.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ballast_sdk::{InstanceType, Resources, Taint, Toleration, WorkloadKind};
use serde::{Deserialize, Serialize};

use super::catalogue;

mod validate;
use super::trace::{Trace, time_of_day};
use crate::duration;
use crate::engine::buffer::BufferSize;
use crate::engine::config::{Batching, Guardrails};
use crate::input_file::{self, InputError};

/// The label every simulated node carries with its group's id, as EKS managed node groups do.
pub const NODE_GROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(with = "duration")]
    pub duration: Duration,
    /// Time between periodic engine ticks.
    #[serde(default = "ten_seconds", with = "duration")]
    pub tick: Duration,
    /// Seed used when `--seed` is not given.
    #[serde(default)]
    pub seed: u64,
    /// Time of day (UTC) the simulation starts at, `HH:MM`; daily traces and time-aware
    /// policies see it.
    #[serde(default = "midnight")]
    pub start: String,
    #[serde(default)]
    pub batching: Batching,
    #[serde(default)]
    pub guardrails: Guardrails,
    /// Instance types beyond the built-in catalogue.
    #[serde(default)]
    pub instance_types: Vec<InstanceType>,
    pub node_groups: Vec<GroupSpec>,
    /// The cluster's Fargate profile; without it nothing runs on Fargate.
    #[serde(default)]
    pub fargate: Option<FargateSpec>,
    pub workloads: Vec<WorkloadSpec>,
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

fn midnight() -> String {
    "00:00".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GroupSpec {
    pub id: String,
    /// Names from the catalogue or from the scenario's `instance-types`; the first is primary.
    pub instance_types: Vec<String>,
    pub min_size: u32,
    pub max_size: u32,
    /// Size at the start; `min-size` when absent.
    #[serde(default)]
    pub desired_size: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    #[serde(default = "default_zones")]
    pub zones: Vec<String>,
    /// From launch to Ready; each node varies by up to ±20% (seeded).
    #[serde(default = "sixty_seconds", with = "duration")]
    pub provisioning_delay: Duration,
    /// Each node's ephemeral storage, its root volume (`20Gi`, the EKS default): pods get it
    /// less 1 GiB and 10%, as the EKS AMI's kubelet keeps. Absent, not known: a node then
    /// holds any pod's request, as a real group at zero whose tags and launch template say
    /// no disk.
    #[serde(default, with = "optional_quantity")]
    pub ephemeral_storage: Option<u64>,
    /// Windows in which launches fail (insufficient capacity).
    #[serde(default)]
    pub launch_failures: Vec<Window>,
    /// `on-demand` or `spot`: spot instances cost a fraction of the on-demand price
    /// ([`catalogue::SPOT_PRICE_RATIO`]) and may be interrupted.
    #[serde(default)]
    pub capacity_type: ballast_sdk::CapacityType,
    /// Spot only: windows in which each instance is interrupted at a rate per hour (seeded),
    /// with EC2's two-minute warning.
    #[serde(default)]
    pub interruptions: Vec<RateWindow>,
    /// Moments at which Ready nodes of the group stop being Ready for good (their kubelet
    /// dies): they stay, cost and count in the group until something replaces them.
    #[serde(default)]
    pub node_losses: Vec<NodeLoss>,
    /// How long the nodes Ready at the start have been running (their Node objects' age):
    /// what node rotation (`expiry`) reads.
    #[serde(default, with = "duration")]
    pub initial_node_age: Duration,
    /// Moments at which an operator replaces every node of the group
    /// (`ballast ctl replace group`), to rehearse a rollout of a new AMI.
    #[serde(default)]
    pub replacements: Vec<GroupReplacement>,
    /// Moments (after the start) at which the group's launch template gets a new machine
    /// image: the nodes launched before have drifted, and are replaced when the engine's
    /// `guardrails.drift.replace` is set, to rehearse drift replacement.
    #[serde(default)]
    pub new_images: Vec<NewImage>,
}

/// The group's launch template gets a new machine image `at` a time after the start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NewImage {
    #[serde(with = "duration")]
    pub at: Duration,
}

/// The group is replaced node by node `at` a time after the start, `at-once` at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GroupReplacement {
    #[serde(with = "duration")]
    pub at: Duration,
    #[serde(default = "one")]
    pub at_once: u32,
}

/// `nodes` Ready nodes of a group (picked at random, seeded) lost `at` a time after the start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeLoss {
    #[serde(with = "duration")]
    pub at: Duration,
    pub nodes: u32,
}

/// A window with an interruption rate: the chance per instance per hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RateWindow {
    #[serde(with = "duration")]
    pub from: Duration,
    #[serde(with = "duration")]
    pub to: Duration,
    pub per_hour: f64,
}

fn default_zones() -> Vec<String> {
    vec!["us-east-1a".into(), "us-east-1b".into()]
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Window {
    #[serde(with = "duration")]
    pub from: Duration,
    #[serde(with = "duration")]
    pub to: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FargateSpec {
    /// From scheduling to running, per pod (a fresh micro-VM every time).
    #[serde(default = "forty_five_seconds", with = "duration")]
    pub provisioning_delay: Duration,
}

fn forty_five_seconds() -> Duration {
    Duration::from_secs(45)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    #[default]
    Ec2,
    Fargate,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Volume {
    #[default]
    None,
    Ebs,
    Efs,
}

/// A PodDisruptionBudget: `{min-available: N}` or `{max-unavailable: N}`, N a count or a
/// percentage of the workload's replicas (`"20%"`), as in the Kubernetes object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Budget {
    MinAvailable(Pods),
    MaxUnavailable(Pods),
}

/// A number of pods, or a percentage of a workload's replicas (Kubernetes' IntOrString).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PodsText", into = "PodsText")]
pub enum Pods {
    Count(u32),
    Percent(u32),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum PodsText {
    Count(u32),
    Text(String),
}

impl TryFrom<PodsText> for Pods {
    type Error = String;

    fn try_from(text: PodsText) -> Result<Self, String> {
        match text {
            PodsText::Count(n) => Ok(Pods::Count(n)),
            PodsText::Text(s) => s
                .strip_suffix('%')
                .and_then(|p| p.parse::<u32>().ok())
                .filter(|p| *p <= 100)
                .map(Pods::Percent)
                .ok_or_else(|| format!("`{s}` is neither a number of pods nor a percentage from 0% to 100%")),
        }
    }
}

impl From<Pods> for PodsText {
    fn from(pods: Pods) -> Self {
        match pods {
            Pods::Count(n) => PodsText::Count(n),
            Pods::Percent(p) => PodsText::Text(format!("{p}%")),
        }
    }
}

impl Pods {
    /// The count for a workload of `replicas`: a percentage rounds up, as the disruption
    /// controller rounds both fields.
    pub fn of(self, replicas: u32) -> u32 {
        match self {
            Pods::Count(n) => n,
            Pods::Percent(p) => (u64::from(replicas) * u64::from(p)).div_ceil(100) as u32,
        }
    }
}

/// A HorizontalPodAutoscaler on a workload: the bounds plugins see
/// (`horizontal-autoscalers`), which its replicas stay within whatever its trace says, as
/// the autoscaler keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Autoscaler {
    #[serde(default = "one")]
    pub min_replicas: u32,
    pub max_replicas: u32,
}

fn one() -> u32 {
    1
}

impl Autoscaler {
    /// The replicas the autoscaler would keep when `wanted` are asked for.
    pub fn bound(&self, wanted: u32) -> u32 {
        wanted.clamp(self.min_replicas, self.max_replicas)
    }
}

/// Pods created at `start`, then every `every`; each runs for `run-for` once started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Batches {
    #[serde(default, with = "duration")]
    pub start: Duration,
    #[serde(with = "duration")]
    pub every: Duration,
    pub pods: u32,
    #[serde(with = "duration")]
    pub run_for: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WorkloadSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub kind: WorkloadKind,
    /// Per pod; `pods` is set to 1.
    pub requests: Resources,
    /// Fraction of requests actually used, for usage metrics.
    #[serde(default = "default_usage")]
    pub usage: f64,
    /// Deployments and StatefulSets: replicas over time.
    #[serde(default)]
    pub replicas: Option<Trace>,
    /// A HorizontalPodAutoscaler's bounds on `replicas`.
    #[serde(default)]
    pub autoscaler: Option<Autoscaler>,
    /// Jobs: batches of pods that run to completion.
    #[serde(default)]
    pub batches: Option<Batches>,
    /// Where pods start out.
    #[serde(default)]
    pub placement: Target,
    /// Pins pods to one node group (a selector on its `eks.amazonaws.com/nodegroup` label).
    #[serde(default)]
    pub node_group: Option<String>,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub volume: Volume,
    #[serde(default)]
    pub local_storage: bool,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub host_network: bool,
    /// `cluster-autoscaler.kubernetes.io/safe-to-evict`.
    #[serde(default)]
    pub safe_to_evict: Option<bool>,
    /// `karpenter.sh/do-not-disrupt: "true"`.
    #[serde(default)]
    pub do_not_disrupt: bool,
    #[serde(default)]
    pub disruption_budget: Option<Budget>,
    /// At most this many of its pods on one node (1: a required pod anti-affinity on
    /// `kubernetes.io/hostname` against its own pods). The scheduler keeps to it.
    #[serde(default)]
    pub max_per_node: Option<u32>,
    /// At most this many more of its pods in one zone than in the zone with the fewest (a
    /// topology spread on `topology.kubernetes.io/zone` with `whenUnsatisfiable:
    /// DoNotSchedule` and this `maxSkew`). The scheduler keeps to it.
    #[serde(default)]
    pub max_zone_skew: Option<u32>,
    /// That spread's `minDomains`: while fewer zones with a Ready node its pods may run on
    /// count, the scheduler takes the fewest as none, so each zone holds at most
    /// `max-zone-skew` of them.
    #[serde(default)]
    pub min_zone_domains: Option<u32>,
    /// At most this many more of its pods on one node than on the node with the fewest (a
    /// topology spread on `kubernetes.io/hostname` with `whenUnsatisfiable: DoNotSchedule`
    /// and this `maxSkew`). The scheduler keeps to it.
    #[serde(default)]
    pub max_node_skew: Option<u32>,
    /// That spread's `minDomains`: while fewer nodes its pods may run on are Ready, the
    /// scheduler takes the fewest as none, so each node runs at most `max-node-skew` of them.
    #[serde(default)]
    pub min_node_domains: Option<u32>,
    /// The workloads (by name) whose pods its pods may not share a node with (a required pod
    /// anti-affinity on `kubernetes.io/hostname` against their pods). The scheduler keeps it
    /// both ways, as it keeps such a rule.
    #[serde(default)]
    pub kept_away: Vec<String>,
    /// The workloads (by name) whose pods its pods must share a zone with (a required pod
    /// affinity on `topology.kubernetes.io/zone` taking in their pods). The scheduler keeps it:
    /// a pod goes only to a zone with a node that runs one of theirs.
    #[serde(default)]
    pub zone_affinity: Vec<String>,
    /// The workloads (by name) on whose pods' nodes its pods must run (a required pod
    /// affinity on `kubernetes.io/hostname` taking in their pods). The scheduler keeps it: a
    /// pod goes only to a node that runs one of theirs.
    #[serde(default)]
    pub kept_beside: Vec<String>,
    /// At most this many of its pods in one zone (1: a required pod anti-affinity on
    /// `topology.kubernetes.io/zone` against its own pods). The scheduler keeps to it.
    #[serde(default)]
    pub max_per_zone: Option<u32>,
    /// A CapacityBuffer that follows the workload (its `scalableRef`): spare room for more of
    /// its pods, sized as in a cluster.
    #[serde(default)]
    pub capacity_buffer: Option<BufferSize>,
}

fn default_namespace() -> String {
    "default".into()
}

fn default_usage() -> f64 {
    0.6
}

impl WorkloadSpec {
    /// What in the workload keeps it off Fargate, as the kube adapter reads it from a pod
    /// template.
    pub fn fargate_traits(&self) -> crate::engine::ports::FargateTraits {
        crate::engine::ports::FargateTraits {
            ebs_volume: self.volume == Volume::Ebs,
            privileged: self.privileged,
            host_network: self.host_network,
            gpu: self.requests.gpus > 0,
            unsupported_platform: false,
            pinned_by_owner: self.node_group.clone(),
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    ///
    /// # Errors
    /// [`InputError`] naming the file, the field and the value.
    pub fn load(path: &Path) -> Result<Scenario, InputError> {
        let scenario: Scenario = input_file::load(path)?;
        scenario.validate(path)?;
        Ok(scenario)
    }

    /// Parses and checks scenario text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, InputError> {
        let scenario: Scenario = input_file::parse(path, text)?;
        scenario.validate(path)?;
        Ok(scenario)
    }

    /// An instance type by name, from the scenario's own list first.
    pub fn instance_type(&self, name: &str) -> Option<InstanceType> {
        self.instance_types.iter().find(|t| t.name == name).cloned().or_else(|| catalogue::instance_type(name))
    }

    /// Milliseconds after midnight at which the simulation starts.
    pub fn start_of_day(&self) -> u64 {
        time_of_day(&self.start).unwrap_or(0)
    }
}

/// The scenario `ballast simulate` runs when given none.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../deploy/examples/scenarios/mixed-fargate.yaml");

/// Scenarios shipped in the binary, by name.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("steady-web", include_str!("../../../deploy/examples/scenarios/steady-web.yaml")),
    ("morning-ramp", include_str!("../../../deploy/examples/scenarios/morning-ramp.yaml")),
    ("spiky-batch", include_str!("../../../deploy/examples/scenarios/spiky-batch.yaml")),
    ("mixed-fargate", DEFAULT_SCENARIO),
    ("nightly-batch", include_str!("../../../deploy/examples/scenarios/nightly-batch.yaml")),
    ("flash-sale", include_str!("../../../deploy/examples/scenarios/flash-sale.yaml")),
    ("zone-outage", include_str!("../../../deploy/examples/scenarios/zone-outage.yaml")),
    ("spot-storm", include_str!("../../../deploy/examples/scenarios/spot-storm.yaml")),
];

/// Loads `arg` as a built-in scenario name or a file path.
pub fn resolve(arg: &str) -> Result<Scenario, InputError> {
    match BUILT_IN.iter().find(|(name, _)| *name == arg) {
        Some((name, text)) => Scenario::parse(Path::new(&format!("<built-in {name}>")), text),
        None => Scenario::load(Path::new(arg)),
    }
}

/// An optional quantity of bytes (`20Gi`), as the SDK writes memory.
mod optional_quantity {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Bytes(#[serde(with = "ballast_sdk::quantity::memory")] u64);

    pub fn serialize<S: Serializer>(bytes: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        bytes.map(Bytes).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(Option::<Bytes>::deserialize(d)?.map(|b| b.0))
    }
}

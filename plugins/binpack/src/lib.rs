//! `binpack`: a Cluster Autoscaler-like policy.
//!
//! - **Scale up**: bin-packs pending pods (first-fit decreasing on CPU, memory and pod
//!   slots) onto new nodes of each Auto Scaling group that admits them, counting nodes
//!   already on their way, and picks a group by `expander`: `most-pods` (the default, as
//!   Cluster Autoscaler: the group that places the most pods, then the lowest hourly cost)
//!   or `price` (the lowest cost per pod placed, as Karpenter: pods that tolerate a cheap
//!   spot group go there even when an on-demand group could take everything). Repeats for
//!   pods the chosen group cannot take (a GPU pod, a selector).
//! - **Priorities** (`priorities`, none by default, as Cluster Autoscaler's priority
//!   expander and in its ConfigMap's form, `{50: [".*-spot-.*"], 10: [".*"]}`): groups of the
//!   highest priority that can place pending pods are chosen from first, by `expander`
//!   (see [`priority`]).
//! - **Scale down**: a node whose requests stay below `utilisation-threshold` of its
//!   allocatable for `unneeded-seconds` is proposed for removal, if the pods a drain moves
//!   fit in the spare room of the nodes that stay (its DaemonSet and static pods go with it,
//!   as in Cluster Autoscaler's simulation), and each pod of a workload that limits its pods
//!   per node (a required pod anti-affinity) has a node that stays below that limit.
//!   Defaults are Cluster Autoscaler's (0.5, 10 min).
//!   Nothing while pods wait that a new node would hold; a pod no group can hold (too big
//!   for every launch type, a selector no group carries) holds nothing back.
//!
//! - **Balance** (`balance-similar-groups.enabled`, off by default, as Cluster Autoscaler's
//!   `--balance-similar-node-groups`): groups alike but for their zone (or a label in
//!   `ignore-labels`) grow together, each new node to the smallest (see [`balance`]).
//!
//! - **Growth** (`growth.horizon-seconds`, off by default): a workload whose pods keep
//!   waiting as it grows has each group priced by what its new nodes will hold once the
//!   workload has grown for the horizon at its recent rate (see [`growth`]).
//!
//! Scale-up puts at most as many pods of a workload on one new node as it limits its pods
//! per node to (contract 0.1.12 `per-node-limits`): a Deployment kept one to a node by
//! anti-affinity gets a node a pod. A workload the scheduler keeps spread over zones
//! (contract 0.1.13 `zone-spreads`) has its waiting pods shared over the zones as the
//! scheduler will fill them, a group in one zone taking its zone's share; scale-down lets
//! its pods go only to room in their own zone (see [`zones`]).
//!
//! Mixed-instances groups are sized and priced by the type EC2 launches for them (a spot
//! group's cheapest, an on-demand group's first: `launch_type`), as Cluster Autoscaler sizes
//! them by their first type. Sized by their smallest type instead, a group whose types
//! differ in size was bought twice the nodes its pods needed (an on-demand m5.2xlarge group
//! that also lists c5.xlarge), and consolidation removed the extras minutes later.

pub mod balance;
pub mod growth;
mod kept_apart;
pub mod priority;
mod scale_down;
mod scale_up;
mod zones;

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    /// Nodes whose requests are below this fraction of allocatable are candidates for removal.
    pub utilisation_threshold: f64,
    /// How long a node must stay under the threshold before it is proposed for removal.
    pub unneeded_seconds: u64,
    /// Turn scale-down off entirely.
    pub scale_down: bool,
    /// Leave DaemonSet pods out of a node's utilisation, as Cluster Autoscaler's
    /// `--ignore-daemonsets-utilization` (same default: off); a group's
    /// `ignoredaemonsetsutilization` tag says it for its own nodes.
    pub ignore_daemonsets_utilization: bool,
    /// Fraction of spare room kept free on remaining nodes when checking a removal.
    pub headroom: f64,
    /// How scale-up picks among the groups that fit pending pods.
    pub expander: Expander,
    /// Groups preferred by id, as Cluster Autoscaler's priority expander: the highest
    /// priority among the groups that fit is chosen from first.
    pub priorities: priority::Priorities,
    /// How a workload's recent growth weighs in choosing a group.
    pub growth: growth::Growth,
    /// Spread scale-ups over similar groups (one per zone), as Cluster Autoscaler's
    /// `--balance-similar-node-groups`.
    pub balance_similar_groups: balance::Balance,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expander {
    /// The group that places the most pods, then the cheapest (Cluster Autoscaler-like).
    #[default]
    MostPods,
    /// The lowest hourly cost per pod placed, then the most pods.
    Price,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            utilisation_threshold: 0.5,
            unneeded_seconds: 600,
            scale_down: true,
            ignore_daemonsets_utilization: false,
            headroom: 0.1,
            expander: Expander::MostPods,
            priorities: priority::Priorities::default(),
            growth: growth::Growth::default(),
            balance_similar_groups: balance::Balance::default(),
        }
    }
}

/// What binpack remembers between ticks.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct State {
    /// Since when (snapshot millis) each node has been under the threshold.
    pub under: scale_down::Under,
    /// The recent replica counts of workloads whose pods waited lately.
    pub growth: growth::Followed,
}

pub struct Binpack;

impl Policy for Binpack {
    type Settings = Settings;
    type State = State;

    fn validate(settings: &Settings) -> Result<(), String> {
        if !(settings.utilisation_threshold > 0.0 && settings.utilisation_threshold <= 1.0) {
            return Err(format!("utilisation-threshold must be in (0, 1], got {}", settings.utilisation_threshold));
        }
        if !(0.0..1.0).contains(&settings.headroom) {
            return Err(format!("headroom must be in [0, 1), got {}", settings.headroom));
        }
        settings.priorities.compile()?;
        settings.growth.validate()
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, state: &mut State) -> Result<Vec<Decision>, String> {
        if settings.growth.horizon_seconds > 0 {
            state.growth.observe(snapshot, snapshot.taken_at_millis(), &settings.growth);
        }
        let expected = |owner: &WorkloadRef| state.growth.expected(snapshot, owner, &settings.growth);
        let choice = scale_up::Choice { expander: settings.expander, priorities: &settings.priorities.compile()? };
        let mut decisions = scale_up::plan(snapshot, &choice, &settings.balance_similar_groups, &expected);
        // Never shrink while pods wait for room a new node would give; a pod no group can
        // hold waits whatever runs, and must not keep idle nodes for as long as it waits.
        if settings.scale_down && !snapshot.pods_wait_for_nodes() {
            decisions.extend(scale_down::plan(snapshot, settings, &mut state.under));
        } else {
            state.under.clear();
        }
        Ok(decisions)
    }
}

ballast_sdk::export_policy!(Binpack);
